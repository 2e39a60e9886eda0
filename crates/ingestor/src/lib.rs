//! Ingestor: stores every packet batch published on `NTA_PACKETS` into PostgreSQL
//! (`raw_packets`) exactly once.
//!
//! Exactly-once comes from the database, not from NATS: each batch's id goes into the
//! `ingested_batches` ledger in the same transaction as its rows, messages are acked only after
//! the commit, and a redelivered batch whose id is already in the ledger is skipped. Crashing
//! anywhere therefore yields either "nothing stored, message redelivered" or "stored, redelivery
//! skipped". Several ingestors may share one durable consumer: the ledger's primary key makes a
//! second transaction holding the same batch wait for the first and then skip it.

pub mod bench;
mod config;
mod consumer;
pub mod copy;
pub mod db;
mod deadletter;
pub mod failpoint;
pub mod metrics;
pub mod rollup;

use std::future::Future;

pub use bench::run_ingest_bench;
pub use config::IngestorConfig;
pub use failpoint::{Failpoint, FAILPOINT_ENV};

/// Durable consumer of the rollup worker of the ingestors sharing `durable`.
pub fn rollup_durable(durable: &str) -> String {
    format!("{durable}-rollup")
}

/// Runs the ingestor until `shutdown` completes; the transaction in progress is finished
/// (committed and acked) before returning. Reads [`FAILPOINT_ENV`] once at start.
pub async fn run(cfg: IngestorConfig, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    consumer::run(cfg, Failpoint::from_env(), shutdown).await
}
