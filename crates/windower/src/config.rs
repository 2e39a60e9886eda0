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
    }
}

impl WindowerConfig {
    pub fn allowed_lateness(&self) -> Duration {
        Duration::from_millis(self.allowed_lateness_ms)
    }

    pub fn idle_agent_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_agent_timeout_s)
    }
}
