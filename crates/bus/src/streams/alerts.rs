//! `NTA_ALERTS`: alert events (opened, updated, resolved, closed) as a durable stream, so a
//! consumer that was down (a notifier, a dashboard's live view) resumes where it left off
//! instead of missing them for good. Events are published from the store's outbox with a
//! `Nats-Msg-Id` derived from the outbox row, so a re-publish after a restart is dropped by
//! JetStream within the duplicate window.

use async_nats::jetstream::{self, stream};
use std::time::Duration;

use crate::subjects::{ALERTS_STREAM, ALERTS_SUBJECT_PREFIX};

/// How long JetStream remembers a `Nats-Msg-Id`: longer than a predictor takes to come back
/// and re-publish the outbox rows it had not marked as published.
pub const ALERTS_DUPLICATE_WINDOW: Duration = Duration::from_secs(3600);

/// Size `NTA_ALERTS` asks for when none is configured: some million events.
pub const DEFAULT_ALERTS_MAX_BYTES: i64 = 1_000_000_000;

settings::settings! {
    /// Retention of `NTA_ALERTS` (`[alerts]`), applied by the role that creates the stream (an
    /// existing stream keeps its configuration).
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct AlertLimits {
        /// NTA_ALERTS maximum age in hours (applied when the stream is created): a consumer down
        /// for longer misses the older events (the alerts table keeps every alert).
        pub max_age_hours: u64 = 30 * 24,
        /// NTA_ALERTS maximum size in GB of 10^9 bytes (applied when the stream is created); the
        /// oldest events are deleted beyond it. Unset asks for 1 GB but settles for what
        /// JetStream can reserve.
        #[setting(default_doc = "1 GB or what JetStream can reserve")]
        pub max_gb: Option<f64> = None,
        /// Copies of NTA_ALERTS on distinct nodes of a JetStream cluster (applied when the stream
        /// is created).
        pub replicas: usize = 1,
    }
}

impl AlertLimits {
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_hours * 3600)
    }

    /// Bytes; `None` asks for [`DEFAULT_ALERTS_MAX_BYTES`] but settles for what the server can
    /// reserve (see [`create_fitting`](super::create_fitting)).
    pub fn max_bytes(&self) -> Option<i64> {
        self.max_gb.map(|g| (g * 1e9) as i64)
    }
}

/// Creates `NTA_ALERTS` (`nta.alerts.>`, file storage, the oldest events discarded at the
/// limits, duplicates dropped within [`ALERTS_DUPLICATE_WINDOW`]) unless it exists.
pub async fn ensure_alerts_stream(
    js: &jetstream::Context,
    limits: &AlertLimits,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    let config = stream::Config {
        name: ALERTS_STREAM.to_string(),
        subjects: vec![format!("{ALERTS_SUBJECT_PREFIX}.>")],
        num_replicas: limits.replicas,
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        max_age: limits.max_age(),
        discard: stream::DiscardPolicy::Old,
        duplicate_window: ALERTS_DUPLICATE_WINDOW,
        ..Default::default()
    };
    super::create_fitting_from(js, config, limits.max_bytes(), DEFAULT_ALERTS_MAX_BYTES).await
}
