//! Engine settings of the windower (`[windower]`, shared with the service settings in
//! `service::config`); see the `settings` crate for the rules.

use std::time::Duration;

settings::settings! {
    /// Parameters of the windowing engine, the same in the service, `nta analyze` and training.
    #[derive(Debug, Clone)]
    pub struct WindowerConfig {
        /// Allowed lateness behind each agent's newest packet, in ms: the watermark is the largest
        /// event time seen from an agent minus this.
        #[setting(flag = "allowed-lateness-ms")]
        pub allowed_lateness_ms: u64 = 2000,
        /// An agent silent (in processing time) this long (s) stops holding windows back.
        #[setting(flag = "idle-agent-timeout-s")]
        pub idle_agent_timeout_s: u64 = 30,
        /// Distinct members kept exactly per set (per key and window) before the set becomes a
        /// bottom-k sample of this size. Must be the same in every path whose outputs are compared.
        pub distinct_cap: usize = 4096,
        /// Source-view key states (a key in one open window) kept exactly. Past it, source keys
        /// new to a 3-minute period are not given state for the rest of that period but counted
        /// in aggregate (`shed_records`, `shed_sources` on its source windows,
        /// `nta_windower_shed_records_total`, a warning); the destination view and keys already
        /// held stay exact. 0: a quarter of the memory available (physical or cgroup limit) at
        /// the measured bytes per state.
        pub max_open_keys: usize = 0,
    }
}

/// Peak memory per *full* source-view state with its map entry and the destination view's
/// share (`nta bench windows` before compact slots: peak RSS / open states of the 1 M
/// spoofed-source case). The automatic key budget divides memory by it, so it holds even when
/// every state is full (a flood of DNS queries, say); the compact states of a SYN flood take
/// about 200 bytes (see `crate::slot`).
pub const BYTES_PER_SOURCE_STATE: usize = 700;

/// The automatic key budget never goes below this (small containers still window a LAN).
const MIN_AUTO_BUDGET: usize = 100_000;

/// Memory the process may use: the smaller of MemTotal and the cgroup v2 limit (bytes).
fn memory_limit() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok()?;
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok().and_then(|s| s.trim().parse::<u64>().ok());
    Some(cgroup.map_or(kib * 1024, |c| c.min(kib * 1024)))
}

impl WindowerConfig {
    pub fn allowed_lateness(&self) -> Duration {
        Duration::from_millis(self.allowed_lateness_ms)
    }

    /// The source-view state budget: `max_open_keys`, or when 0 a quarter of the memory limit
    /// divided by [`BYTES_PER_SOURCE_STATE`] (4 GiB assumed when the limit is unknown).
    pub fn key_budget(&self) -> usize {
        if self.max_open_keys > 0 {
            return self.max_open_keys;
        }
        let mem = memory_limit().unwrap_or(4 << 30);
        ((mem / 4) as usize / BYTES_PER_SOURCE_STATE).max(MIN_AUTO_BUDGET)
    }

    pub fn idle_agent_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_agent_timeout_s)
    }
}
