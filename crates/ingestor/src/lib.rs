//! Ingestor: stores every packet batch published on `NTA_PACKETS` into PostgreSQL
//! (`raw_packets`) exactly once.
//!
//! Exactly-once comes from the database, not from NATS: each batch's id goes into the
//! `ingested_batches` ledger in the same transaction as its rows, messages are acked only after
//! the commit, and a redelivered batch whose id is already in the ledger is skipped. Crashing
//! anywhere therefore yields either "nothing stored, message redelivered" or "stored, redelivery
//! skipped". Several ingestors may share one durable consumer: the ledger's primary key makes a
//! second transaction holding the same batch wait for the first and then skip it.

mod consumer;
pub mod metrics;

use std::future::Future;
use std::time::Duration;

/// Crash-test hook read once at start: `after_copy` aborts after the COPY and before the
/// commit, `after_commit` after the commit and before the acks (see `bus::failpoint`).
pub const FAILPOINT_ENV: &str = "NTA_INGESTOR_FAILPOINT";

#[derive(Debug, Clone)]
pub struct IngestorConfig {
    pub nats_url: String,
    /// Created (with its schema) if missing.
    pub database_url: String,
    /// Durable consumer name; ingestors sharing it share the work.
    pub durable: String,
    /// Batches fetched and written per transaction.
    pub max_batches_per_txn: usize,
    /// Batches the rollup worker (durable `<durable>-rollup`) folds into one transaction.
    pub rollup_batches_per_txn: usize,
    /// Concurrent fetch-and-write loops, each with its own PostgreSQL connection. PostgreSQL
    /// spends most of a COPY maintaining indexes on one core per connection, so a second
    /// writer raises throughput markedly even on small machines.
    pub writers: usize,
    /// How long one fetch waits to fill a transaction when traffic is low (bounds latency).
    pub fetch_wait: Duration,
    /// Day partitions of `raw_packets` entirely older than this many days (by packet
    /// timestamp, UTC days) are dropped; `None` (the default) keeps everything. Off by default
    /// because replaying an old capture would otherwise store packets only to drop them.
    pub retention_days: Option<u32>,
    /// How often the retention job (and partition pre-creation) runs.
    pub retention_interval: Duration,
    /// Limits applied if this process creates `NTA_PACKETS`.
    pub stream_limits: bus::streams::StreamLimits,
    /// Time the server waits for an ack before redelivering; only applied when this process
    /// creates the consumer. Longer than any sane transaction, so a slow commit does not cause
    /// (harmless but wasteful) redeliveries.
    pub ack_wait: Duration,
    /// Unacked messages allowed in flight across all ingestors of the consumer.
    pub max_ack_pending: i64,
    /// Period of the `nta_ingestor_consumer_pending_messages` refresh.
    pub pending_refresh: Duration,
}

/// Durable consumer of the rollup worker of the ingestors sharing `durable`.
pub fn rollup_durable(durable: &str) -> String {
    format!("{durable}-rollup")
}

impl Default for IngestorConfig {
    fn default() -> Self {
        IngestorConfig {
            nats_url: "nats://127.0.0.1:4222".into(),
            database_url: "postgres://postgres@127.0.0.1:5432/nta".into(),
            durable: "nta-ingestor".into(),
            max_batches_per_txn: 16,
            rollup_batches_per_txn: 256,
            writers: 2,
            fetch_wait: Duration::from_millis(500),
            retention_days: None,
            retention_interval: Duration::from_secs(3600),
            stream_limits: bus::streams::StreamLimits::default(),
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 1024,
            pending_refresh: Duration::from_secs(5),
        }
    }
}

/// Runs the ingestor until `shutdown` completes; the transaction in progress is finished
/// (committed and acked) before returning. Reads [`FAILPOINT_ENV`] once at start.
pub async fn run(cfg: IngestorConfig, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let failpoint = bus::Failpoint::from_env(FAILPOINT_ENV, &["after_copy", "after_commit"]);
    consumer::run(cfg, failpoint, shutdown).await
}
