//! The ingestor's integration tests, one binary (one link, one shared `common` set-up): each
//! test starts its own nats-server and database, so they run in parallel safely.

mod common;
mod crash;
mod ingest;
