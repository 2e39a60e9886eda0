//! `NTA_FRAMES`: the captured frames, kept as a rolling buffer for pcap exports (like n2disk's).
//! Nothing consumes it, so when it is full the oldest frames go (`DiscardPolicy::Old`): aging
//! out is its retention, not a loss, and capture never waits for forensics.

use async_nats::jetstream::{self, stream};
use std::time::Duration;

use crate::subjects::{FRAMES_STREAM, FRAMES_SUBJECT_PREFIX};

settings::settings! {
    /// Retention of `NTA_FRAMES` (`[frames]`), applied by the role that creates the stream (an
    /// existing stream keeps its configuration).
    #[derive(Debug, Clone, PartialEq)]
    pub struct FrameLimits {
        /// NTA_FRAMES maximum age in hours (applied when the stream is created): frames older
        /// than this cannot be exported.
        pub max_age_hours: u64 = 7 * 24,
        /// NTA_FRAMES maximum size in GB of 10^9 bytes (applied when the stream is created); the
        /// oldest frames are deleted beyond it. Unset asks for 10 GiB but settles for what
        /// JetStream can reserve.
        #[setting(default_doc = "10 GiB or what JetStream can reserve")]
        pub max_gb: Option<f64> = None,
        /// Copies of NTA_FRAMES on distinct nodes of a JetStream cluster (applied when the stream
        /// is created).
        pub replicas: usize = 1,
    }
}

impl FrameLimits {
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_hours * 3600)
    }

    pub fn max_bytes(&self) -> Option<i64> {
        self.max_gb.map(|g| (g * 1e9) as i64)
    }
}

/// Creates `NTA_FRAMES` (`nta.frames.>`, file storage, the oldest messages discarded at the
/// limits, re-published batches dropped within two minutes as on `NTA_PACKETS`) unless it exists.
pub async fn ensure_frames_stream(
    js: &jetstream::Context,
    limits: &FrameLimits,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    let config = stream::Config {
        name: FRAMES_STREAM.to_string(),
        subjects: vec![format!("{FRAMES_SUBJECT_PREFIX}.>")],
        num_replicas: limits.replicas,
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        max_age: limits.max_age(),
        discard: stream::DiscardPolicy::Old,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    super::create_fitting(js, config, limits.max_bytes()).await
}
