//! JetStream streams NTA relies on. Every service that writes to or reads from a stream calls
//! the matching `ensure_*` at start, so whichever starts first creates it and nobody depends on
//! a manual set-up step. An existing stream is left as configured by the operator.

use async_nats::jetstream::{self, stream};
use std::time::Duration;

use crate::{DEADLETTER_SUBJECT, PACKETS_STREAM, PACKETS_SUBJECT_PREFIX};

/// Connects to NATS under a client `name`, waiting for the server rather than failing when a
/// role starts before it (the client keeps reconnecting afterwards too).
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new().name(name).retry_on_initial_connect().connect(url).await
}

/// Stream of dead-lettered messages (kept so they can be inspected and replayed).
pub const DEADLETTER_STREAM: &str = "NTA_DEADLETTER";

/// Retention limits of the packet stream.
#[derive(Debug, Clone)]
pub struct StreamLimits {
    pub max_age: Duration,
    /// Bytes; the oldest batches are discarded beyond it.
    pub max_bytes: i64,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits { max_age: Duration::from_secs(7 * 24 * 3600), max_bytes: 10 * 1024 * 1024 * 1024 }
    }
}

/// Creates `NTA_PACKETS` (file storage, limits by age and bytes) unless it exists.
pub async fn ensure_packets_stream(
    js: &jetstream::Context,
    limits: &StreamLimits,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    js.get_or_create_stream(stream::Config {
        name: PACKETS_STREAM.to_string(),
        subjects: vec![format!("{PACKETS_SUBJECT_PREFIX}.>")],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        max_age: limits.max_age,
        max_bytes: limits.max_bytes,
        discard: stream::DiscardPolicy::Old,
        // JetStream drops a re-published batch whose Nats-Msg-Id it saw within this window.
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
}

/// Creates `NTA_DEADLETTER` on subject `nta.deadletter` unless it exists.
pub async fn ensure_deadletter_stream(
    js: &jetstream::Context,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    js.get_or_create_stream(stream::Config {
        name: DEADLETTER_STREAM.to_string(),
        subjects: vec![DEADLETTER_SUBJECT.to_string()],
        storage: stream::StorageType::File,
        max_age: Duration::from_secs(30 * 24 * 3600),
        ..Default::default()
    })
    .await
}

/// Creates `NTA_WINDOWS` (windows of every size, `nta.windows.>`) unless it exists. Its
/// duplicate window is long because a restarted windower re-publishes the windows it rebuilds
/// from redelivered packets, up to the longest window plus the allowed lateness later.
pub async fn ensure_windows_stream(
    js: &jetstream::Context,
    limits: &StreamLimits,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    js.get_or_create_stream(stream::Config {
        name: crate::window::WINDOWS_STREAM.to_string(),
        subjects: vec![format!("{}.>", crate::window::WINDOWS_SUBJECT_PREFIX)],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        max_age: limits.max_age,
        max_bytes: limits.max_bytes,
        discard: stream::DiscardPolicy::Old,
        duplicate_window: Duration::from_secs(30 * 60),
        ..Default::default()
    })
    .await
}
