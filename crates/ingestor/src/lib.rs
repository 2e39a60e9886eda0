//! Ingestor: stores every packet batch published on `NTA_PACKETS` into PostgreSQL
//! (`raw_packets`) exactly once.
//!
//! Exactly-once comes from the database, not from NATS: each batch's id goes into the
//! `ingested_batches` ledger in the same transaction as its rows, messages are acked only after
//! the commit, and a redelivered batch whose id is already in the ledger is skipped. Crashing
//! anywhere therefore yields either "nothing stored, message redelivered" or "stored, redelivery
//! skipped". Several ingestors may share one durable consumer: the ledger's primary key makes a
//! second transaction holding the same batch wait for the first and then skip it.

mod config;
mod consumer;
pub mod metrics;

use std::future::Future;

/// Crash-test hook read once at start: `after_copy` aborts after the COPY and before the
/// commit, `after_commit` after the commit and before the acks (see `bus::failpoint`).
pub const FAILPOINT_ENV: &str = "NTA_INGESTOR_FAILPOINT";

pub use config::IngestorConfig;

/// Durable consumer of the rollup worker of the ingestors sharing `durable`.
pub fn rollup_durable(durable: &str) -> String {
    format!("{durable}-rollup")
}

/// Runs the ingestor until `shutdown` completes; the transaction in progress is finished
/// (committed and acked) before returning. Reads [`FAILPOINT_ENV`] once at start.
pub async fn run(cfg: IngestorConfig, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let failpoint = bus::Failpoint::from_env(FAILPOINT_ENV, &["after_copy", "after_commit"]);
    consumer::run(cfg, failpoint, shutdown).await
}
