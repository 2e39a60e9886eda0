//! Settings of the ingestor role (`[ingestor]`); see the `settings` crate for the rules.

use bus::StreamLimits;
use std::time::Duration;

settings::settings! {
    /// Configuration of the ingestor role.
    #[derive(Debug, Clone)]
    pub struct IngestorConfig {
        /// Durable consumer name shared by all ingestor replicas, which share the work (their
        /// rollup worker uses NAME-rollup).
        pub durable: String = "nta-ingestor".into(),
        /// Batches fetched and written per transaction.
        #[setting(flag = "batches-per-txn")]
        pub batches_per_txn: usize = 16,
        /// Batches the rollup worker (durable NAME-rollup) folds into one transaction.
        pub rollup_batches_per_txn: usize = 256,
        /// Concurrent fetch-and-write loops, each with its own PostgreSQL connection. PostgreSQL
        /// spends most of a COPY maintaining indexes on one core per connection, so a second
        /// writer raises throughput markedly even on small machines.
        pub writers: usize = 2,
        /// How long (ms) one fetch waits to fill a transaction when traffic is low (bounds latency).
        pub fetch_wait_ms: u64 = 500,
        /// Drop raw_packets day partitions entirely older than this many days (by packet
        /// timestamp, UTC days); 0 keeps everything (the default, because replaying an old
        /// capture would otherwise store packets only to drop them).
        #[setting(flag = "retention-days", env = "NTA_RETENTION_DAYS", default_doc = "0 (keep all)")]
        pub retention_days: u32 = 0,
        /// How often (ms) the retention job and partition pre-creation run.
        pub retention_interval_ms: u64 = 3_600_000,
        /// Time (s) the server waits for an ack before redelivering; applied when this process
        /// creates the consumer. Longer than any sane transaction, so a slow commit does not
        /// cause (harmless but wasteful) redeliveries.
        pub ack_wait_s: u64 = 30,
        /// Unacked messages allowed in flight across all ingestors of the consumer.
        pub max_ack_pending: i64 = 1024,
        /// Period (ms) of the nta_ingestor_consumer_pending_messages refresh.
        pub pending_refresh_ms: u64 = 5000,
    }
    runtime {
        /// NATS server and credentials (the top-level `nats_url` and the `[nats]` settings).
        pub nats: bus::Nats = bus::Nats::new(settings::DEFAULT_NATS_URL),
        /// PostgreSQL (the top-level `database_url`); created with its schema if missing.
        pub database_url: String = settings::DEFAULT_DATABASE_URL.into(),
        /// Limits applied if this process creates `NTA_PACKETS` (the `[stream]` settings).
        pub stream_limits: StreamLimits = StreamLimits::default(),
    }
}

impl IngestorConfig {
    pub fn fetch_wait(&self) -> Duration {
        Duration::from_millis(self.fetch_wait_ms)
    }

    /// Days of raw packets kept; `None` keeps everything.
    pub fn retention(&self) -> Option<u32> {
        (self.retention_days > 0).then_some(self.retention_days)
    }

    pub fn retention_interval(&self) -> Duration {
        Duration::from_millis(self.retention_interval_ms)
    }

    pub fn ack_wait(&self) -> Duration {
        Duration::from_secs(self.ack_wait_s)
    }

    pub fn pending_refresh(&self) -> Duration {
        Duration::from_millis(self.pending_refresh_ms)
    }
}
