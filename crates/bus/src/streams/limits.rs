//! Settings of the `[stream]` section: retention limits of the packet and window streams, and
//! the replica count of every NTA stream.

use std::time::Duration;

settings::settings! {
    /// Retention limits of `NTA_PACKETS` and `NTA_WINDOWS` and the replicas of every NTA
    /// stream, applied by whichever role creates the stream (an existing stream keeps its
    /// configuration).
    #[derive(Debug, Clone, PartialEq)]
    pub struct StreamLimits {
        /// NTA_PACKETS / NTA_WINDOWS maximum age in hours (applied when the stream is created).
        pub max_age_hours: u64 = 7 * 24,
        /// NTA_PACKETS / NTA_WINDOWS maximum size in GB of 10^9 bytes (applied when the stream is
        /// created); unset asks for 10 GiB but settles for what JetStream can reserve, a
        /// configured size is kept or fails.
        #[setting(default_doc = "10 GiB or what JetStream can reserve")]
        pub max_gb: Option<f64> = None,
        /// Copies of each NTA stream (NTA_PACKETS, NTA_WINDOWS, NTA_DEADLETTER) on distinct nodes
        /// of a JetStream cluster: 3 survives the loss of one node (applied when a stream is
        /// created; `nta streams --replicas N` changes existing ones).
        pub replicas: usize = 1,
    }
}

impl StreamLimits {
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_hours * 3600)
    }

    /// Bytes; the oldest messages are discarded beyond it. `None` asks for
    /// [`DEFAULT_MAX_BYTES`](super::DEFAULT_MAX_BYTES) but settles for what the server can reserve
    /// (see [`create_fitting`](super::create_fitting)); an explicit size is taken as is or fails
    /// with a clear error.
    pub fn max_bytes(&self) -> Option<i64> {
        self.max_gb.map(|g| (g * 1e9) as i64)
    }
}
