//! JetStream streams and consumers NTA relies on. Every service that writes to or reads from a stream calls
//! the matching `ensure_*` at start, so whichever starts first creates it and nobody depends on
//! a manual set-up step. An existing stream is left as configured by the operator.

use async_nats::jetstream::{self, stream};
use std::time::Duration;

use crate::subjects::{
    ALERTS_SUBJECT_PREFIX, DEADLETTER_STREAM, DEADLETTER_SUBJECT, PACKETS_STREAM, PACKETS_SUBJECT_PREFIX,
    WINDOWS_STREAM, WINDOWS_SUBJECT_PREFIX,
};

mod admin;
mod alerts;
mod frames;
mod limits;
pub mod usage;
pub use admin::{report, reset_consumer, set_replicas, ReplicaChange};
pub use alerts::{ensure_alerts_stream, AlertLimits, ALERTS_DUPLICATE_WINDOW};
pub use frames::{ensure_frames_stream, FrameLimits};
pub use limits::StreamLimits;

/// Size a stream asks for when none is configured.
pub const DEFAULT_MAX_BYTES: i64 = 10 * 1024 * 1024 * 1024;

/// Smallest size an unconfigured stream settles for before giving up.
const MIN_FITTED_BYTES: i64 = 64 * 1024 * 1024;

/// Creates a stream unless it exists. JetStream reserves a stream's `max_bytes` against the
/// server's file-store limit, which by default is 75% of the disk space free when nats-server
/// started, so the same default that fits on a server can fail on a laptop with 20 GB free. With
/// no size configured the request is halved until the server accepts it (down to 64 MiB) and a
/// warning says what was kept; a configured size is never silently shrunk.
pub async fn create_fitting(
    js: &jetstream::Context,
    config: stream::Config,
    max_bytes: Option<i64>,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    create_fitting_from(js, config, max_bytes, DEFAULT_MAX_BYTES).await
}

/// [`create_fitting`] asking for `default_bytes` when no size is configured.
pub async fn create_fitting_from(
    js: &jetstream::Context,
    mut config: stream::Config,
    max_bytes: Option<i64>,
    default_bytes: i64,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    config.max_bytes = max_bytes.unwrap_or(default_bytes);
    loop {
        match admin::get_or_create(js, config.clone()).await {
            Err(e) if storage_exceeded(&e) => {
                if max_bytes.is_some() || config.max_bytes / 2 < MIN_FITTED_BYTES {
                    tracing::error!(
                        stream = %config.name,
                        max_bytes = config.max_bytes,
                        "JetStream cannot reserve this much file storage; lower stream.max_gb or \
                         raise nats-server's jetstream max_file_store"
                    );
                    return Err(e);
                }
                config.max_bytes /= 2;
            }
            Ok(s) => {
                if max_bytes.is_none() && config.max_bytes < default_bytes {
                    tracing::warn!(
                        stream = %config.name,
                        max_bytes = config.max_bytes,
                        default_bytes,
                        "JetStream could not reserve the default size; the stream keeps less history \
                         (set its max_gb, or give nats-server more max_file_store)"
                    );
                }
                return Ok(s);
            }
            Err(e) => return Err(e),
        }
    }
}

fn storage_exceeded(e: &jetstream::context::CreateStreamError) -> bool {
    matches!(e.kind(), jetstream::context::CreateStreamErrorKind::JetStream(err)
        if err.error_code() == jetstream::ErrorCode::STORAGE_RESOURCES_EXCEEDED)
}

/// Creates `NTA_PACKETS` (file storage, limits by age and bytes) unless it exists. JetStream
/// drops a re-published batch whose `Nats-Msg-Id` it saw within the last two minutes. When full
/// it refuses new batches (`DiscardPolicy::New`) rather than deleting stored ones nobody may
/// have read yet: the agent then sees the refusal, retries and counts what it drops.
pub async fn ensure_packets_stream(
    js: &jetstream::Context,
    limits: &StreamLimits,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    let mut config = limited_stream(PACKETS_STREAM, PACKETS_SUBJECT_PREFIX, limits, Duration::from_secs(120));
    config.discard = stream::DiscardPolicy::New;
    create_fitting(js, config, limits.max_bytes()).await
}

/// Warns (as `role`) when `NTA_PACKETS` was created, by an older NTA or by hand, with
/// `DiscardPolicy::Old`: a full stream then deletes batches consumers may not have read, and
/// nothing counts them.
pub fn warn_discard_old(packets: &stream::Stream, role: &str) {
    if packets.cached_info().config.discard == stream::DiscardPolicy::Old {
        tracing::warn!(
            role,
            "{PACKETS_STREAM} discards its oldest messages when full: batches not yet stored would be lost \
             without a count; switch it to refuse new ones (`nats stream edit {PACKETS_STREAM} --discard new`, \
             see the README, Streams)"
        );
    }
}

/// A file stream of `<prefix>.>` bounded by `limits` (oldest messages discarded first).
fn limited_stream(name: &str, prefix: &str, limits: &StreamLimits, duplicate_window: Duration) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        subjects: vec![format!("{prefix}.>")],
        num_replicas: limits.replicas,
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        max_age: limits.max_age(),
        discard: stream::DiscardPolicy::Old,
        duplicate_window,
        ..Default::default()
    }
}

/// Configuration of a durable pull consumer of every agent's batches (`nta.packets.>`) with
/// explicit acks; callers add what is theirs (deliver policy, description) by struct update.
pub fn packets_consumer_config(
    durable: &str,
    ack_wait: Duration,
    max_ack_pending: i64,
) -> jetstream::consumer::pull::Config {
    durable_config(durable, format!("{PACKETS_SUBJECT_PREFIX}.>"), ack_wait, max_ack_pending)
}

/// The same for windows of every size (`nta.windows.>`).
pub fn windows_consumer_config(
    durable: &str,
    ack_wait: Duration,
    max_ack_pending: i64,
) -> jetstream::consumer::pull::Config {
    durable_config(durable, format!("{WINDOWS_SUBJECT_PREFIX}.>"), ack_wait, max_ack_pending)
}

/// The same for alert events of every class (`nta.alerts.>`).
pub fn alerts_consumer_config(
    durable: &str,
    ack_wait: Duration,
    max_ack_pending: i64,
) -> jetstream::consumer::pull::Config {
    durable_config(durable, format!("{ALERTS_SUBJECT_PREFIX}.>"), ack_wait, max_ack_pending)
}

fn durable_config(
    durable: &str,
    filter_subject: String,
    ack_wait: Duration,
    max_ack_pending: i64,
) -> jetstream::consumer::pull::Config {
    jetstream::consumer::pull::Config {
        durable_name: Some(durable.to_string()),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait,
        max_ack_pending,
        filter_subject,
        ..Default::default()
    }
}

/// Creates `NTA_DEADLETTER` on subject `nta.deadletter` unless it exists (only the replicas
/// of `limits` apply to it).
pub async fn ensure_deadletter_stream(
    js: &jetstream::Context,
    limits: &StreamLimits,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    admin::get_or_create(
        js,
        stream::Config {
            name: DEADLETTER_STREAM.to_string(),
            subjects: vec![DEADLETTER_SUBJECT.to_string()],
            num_replicas: limits.replicas,
            storage: stream::StorageType::File,
            max_age: Duration::from_secs(30 * 24 * 3600),
            ..Default::default()
        },
    )
    .await
}

/// Creates `NTA_WINDOWS` (windows of every size, `nta.windows.>`) unless it exists. Its
/// duplicate window is long because a restarted windower re-publishes the windows it rebuilds
/// from redelivered packets, up to the longest window plus the allowed lateness later.
pub async fn ensure_windows_stream(
    js: &jetstream::Context,
    limits: &StreamLimits,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    let config = limited_stream(WINDOWS_STREAM, WINDOWS_SUBJECT_PREFIX, limits, Duration::from_secs(30 * 60));
    create_fitting(js, config, limits.max_bytes()).await
}
