//! Settings of the agent role (`[agent]`); see the `settings` crate for the rules.

use anyhow::{bail, Result};
use bus::{FrameLimits, StreamLimits};
use std::path::PathBuf;
use std::time::Duration;

use crate::capture::BatchPolicy;
use crate::service::{default_agent_id, Input};
use crate::source::LiveOptions;

/// Kernel capture buffer of a live capture.
const CAPTURE_BUFFER_BYTES: i32 = 32 * 1024 * 1024;

settings::settings! {
    /// Configuration of the agent role.
    #[derive(Debug, Clone)]
    pub struct AgentConfig {
        /// Agent id (subject `nta.packets.<id>`); made subject-safe.
        #[setting(flag = "agent-id", env = "NTA_AGENT_ID", default_doc = "host name")]
        pub agent_id: String = default_agent_id(),
        /// Live capture interface (libpcap name, e.g. eth0); `nta run --read FILE` replays a
        /// capture instead.
        #[setting(flag = "interface", short = 'i', env = "NTA_INTERFACE")]
        pub interface: Option<String> = None,
        /// BPF capture filter (live capture).
        #[setting(flag = "bpf")]
        pub bpf: Option<String> = None,
        /// Bytes captured per frame (live capture).
        #[setting(flag = "snaplen")]
        pub snaplen: i32 = 65535,
        /// Put the interface in promiscuous mode.
        #[setting(flag = "promisc")]
        pub promisc: bool = false,
        /// Records per batch.
        #[setting(flag = "batch-size")]
        pub batch_size: usize = 500,
        /// Longest time a partial batch waits, in ms.
        #[setting(flag = "batch-timeout-ms")]
        pub batch_timeout_ms: u64 = 1000,
        /// In-memory send queue budget in MB (fractions allowed); the oldest batches are dropped
        /// beyond it.
        #[setting(flag = "queue-mb")]
        pub queue_mb: f64 = 128.0,
        /// Bytes of each captured frame kept on `NTA_FRAMES` for pcap exports: unset keeps the
        /// whole captured frame, 0 keeps no frames, N the first N bytes.
        #[setting(flag = "frame-bytes", default_doc = "whole frame")]
        pub frame_bytes: Option<u64> = None,
        /// Send queue budget of the frames in MB, apart from the packet batches' (its overflow
        /// drops the oldest frames, counted in `nta_agent_dropped_frames_total`).
        #[setting(flag = "frames-queue-mb")]
        pub frames_queue_mb: f64 = 256.0,
        /// Publications awaiting their PubAck at once.
        #[setting(flag = "max-pending-acks")]
        pub max_pending_acks: usize = 64,
        /// After a stop request, or once a replay's input ended with `NTA_PACKETS` full, how
        /// long (s) to keep trying to publish what is queued (the rest is counted as dropped).
        pub drain_grace_s: u64 = 10,
    }
    runtime {
        /// NATS server and credentials (the top-level `nats_url` and the `[nats]` settings).
        pub nats: bus::Nats = bus::Nats::new(settings::DEFAULT_NATS_URL),
        /// Limits applied if this process creates `NTA_PACKETS` (the `[stream]` settings).
        pub stream_limits: StreamLimits = StreamLimits::default(),
        /// Limits applied if this process creates `NTA_FRAMES` (the `[frames]` settings).
        pub frame_limits: FrameLimits = FrameLimits::default(),
        /// Replay this capture file instead of capturing live (`nta run --read`); the agent
        /// exits once everything is acknowledged.
        pub read: Option<PathBuf> = None,
        /// With `read`: pace the replay by the capture's timestamps (`--realtime`).
        pub realtime: bool = false,
    }
}

impl AgentConfig {
    /// What to capture: `read` if set, else the live `interface`.
    pub fn input(&self) -> Result<Input> {
        Ok(match (&self.read, &self.interface) {
            (Some(path), _) => Input::File { path: path.clone(), realtime: self.realtime },
            (None, Some(interface)) => Input::Live(LiveOptions {
                interface: interface.clone(),
                bpf: self.bpf.clone(),
                snaplen: self.snaplen,
                promisc: self.promisc,
                buffer_size: CAPTURE_BUFFER_BYTES,
            }),
            (None, None) => bail!("the agent needs --interface IF or --read FILE"),
        })
    }

    pub fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy { max_records: self.batch_size.max(1), max_age: Duration::from_millis(self.batch_timeout_ms) }
    }

    /// Byte budget of the in-memory send queue.
    pub fn queue_max_bytes(&self) -> usize {
        ((self.queue_mb * 1024.0 * 1024.0) as usize).max(1)
    }

    /// Bytes of each frame kept for exports: `None` keeps none, `Some(None)` whole frames.
    pub fn frames_kept(&self) -> Option<Option<usize>> {
        match self.frame_bytes {
            Some(0) => None,
            Some(n) => Some(Some(n.min(wire::frames::MAX_FRAME_BYTES as u64) as usize)),
            None => Some(None),
        }
    }

    pub fn frames_queue_max_bytes(&self) -> usize {
        ((self.frames_queue_mb * 1024.0 * 1024.0) as usize).max(1)
    }

    pub fn drain_grace(&self) -> Duration {
        Duration::from_secs(self.drain_grace_s)
    }
}
