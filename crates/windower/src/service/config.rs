//! Settings of the windower service (`[windower]`, with the engine's [`WindowerConfig`]
//! flattened into the same section); see the `settings` crate for the rules.

use bus::StreamLimits;
use std::time::Duration;

use crate::WindowerConfig;

settings::settings! {
    /// Configuration of the windower role.
    #[derive(Debug, Clone)]
    pub struct WindowerServiceConfig {
        /// Durable consumer on NTA_PACKETS; with several partitions, partition i of n uses
        /// `<durable>-<i>-of-<n>`. The windower processes of one name share its partitions.
        pub durable: String = "nta-windower".into(),
        /// Key partitions shared by the windower processes of this durable (the same number in
        /// every one): each process runs about partitions / processes of them, and takes over
        /// those of a process that dies. 1: one windower works, the others stand by.
        pub partitions: u32 = 1,
        /// How often (ms) a windower checks for free partitions and for processes that joined
        /// or died (the takeover delay after a crash is at most about this).
        pub claim_interval_ms: u64 = 1000,
        /// How often (ms) closed windows are collected when no message arrives (processing-time
        /// flushing: idle agents stop holding windows back).
        pub poll_interval_ms: u64 = 200,
        /// Server-side redelivery timer (s); must exceed the time a batch is held (longest window
        /// + allowed lateness + idle agent timeout + margin).
        pub ack_wait_s: u64 = 600,
        /// Unacked batches allowed: at least the batches of the longest window plus lateness.
        pub max_ack_pending: i64 = 100_000,
        /// Messages taken from the consumer before windows are collected and flushed.
        pub max_messages_per_step: usize = 256,
        /// Period (ms) of the nta_windower_consumer_pending_messages refresh.
        pub pending_refresh_ms: u64 = 5000,
    }
    flatten {
        /// Engine parameters (same section).
        pub windower: WindowerConfig,
    }
    runtime {
        /// NATS server and credentials (the top-level `nats_url` and the `[nats]` settings).
        pub nats: bus::Nats = bus::Nats::new(settings::DEFAULT_NATS_URL),
        /// PostgreSQL (the top-level `database_url`); created with its schema if missing.
        pub database_url: String = settings::DEFAULT_DATABASE_URL.into(),
        /// Limits applied if this process creates `NTA_PACKETS` or `NTA_WINDOWS` (`[stream]`).
        pub stream_limits: StreamLimits = StreamLimits::default(),
    }
}

impl WindowerServiceConfig {
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    pub fn ack_wait(&self) -> Duration {
        Duration::from_secs(self.ack_wait_s)
    }

    pub fn claim_interval(&self) -> Duration {
        Duration::from_millis(self.claim_interval_ms)
    }

    pub fn pending_refresh(&self) -> Duration {
        Duration::from_millis(self.pending_refresh_ms)
    }
}
