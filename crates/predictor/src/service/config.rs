//! Settings of the predictor role (`[predictor]`); see the `settings` crate for the rules.

use bus::StreamLimits;
use std::path::PathBuf;
use std::time::Duration;

use crate::decide::{MIN_CONFIDENCE, RULE_CONFIDENCE, SUSTAIN_CONFIDENCE};
use crate::rules::RuleThresholds;

settings::settings! {
    /// Configuration of the predictor role.
    #[derive(Debug, Clone)]
    pub struct PredictorServiceConfig {
        /// Durable consumer on NTA_WINDOWS; replicas with the same name share the windows.
        pub durable: String = "nta-predictor".into(),
        /// Model file; unset: the installed default model (`../share/nta/models/default.nta-model`
        /// beside the binary: /usr/share/nta/models/ for the package), else the repository's
        /// crates/predictor/models/default.nta-model (see Installing).
        #[setting(
            flag = "model",
            env = "NTA_MODEL",
            default_doc = "installed default model, else `crates/predictor/models/default.nta-model`"
        )]
        pub model: Option<PathBuf> = None,
        /// Smallest model confidence that raises an alert (model verdicts other than Normal alert
        /// from this probability on).
        #[setting(flag = "min-confidence")]
        pub min_confidence: f64 = MIN_CONFIDENCE,
        /// An open alert is kept (extended) by a window of its key whose model probability of the
        /// alert's class reaches this; it never opens an alert (see `crates/predictor/README.md`).
        #[setting(flag = "sustain-confidence")]
        pub sustain_confidence: f64 = SUSTAIN_CONFIDENCE,
        /// Confidence credited to a rule hit (the model's probability of that class when higher):
        /// 0.75 makes a rule-only alert HIGH.
        pub rule_confidence: f64 = RULE_CONFIDENCE,
        /// An alert with no new window for this long (s, processing time) is closed, and a window
        /// this long (event time) after an alert's last one opens a new alert.
        #[setting(flag = "alert-quiet-s")]
        pub alert_quiet_s: u64 = 300,
        /// How often (ms) quiet alerts are looked for.
        pub close_interval_ms: u64 = 10_000,
        /// How often (ms) the alert-event outbox is checked for events not yet on NTA_ALERTS
        /// (a dashboard's resolutions, events left by a crash); a batch's own events go out
        /// right after its commit.
        pub outbox_interval_ms: u64 = 1000,
        /// Windows fetched and predicted together.
        pub batch_size: usize = 256,
        /// Server-side redelivery timer (s) of unacked windows.
        pub ack_wait_s: u64 = 60,
        /// Unacked windows allowed in flight across the replicas.
        pub max_ack_pending: i64 = 20_000,
        /// Period (ms) of the nta_predictor_consumer_pending_messages refresh.
        pub pending_refresh_ms: u64 = 5000,
        /// Recorded with each prediction (predictions.instance).
        #[setting(default_doc = "`<host>-<pid>`")]
        pub instance: String = default_instance(),
    }
    runtime {
        /// NATS server and credentials (the top-level `nats_url` and the `[nats]` settings).
        pub nats: bus::Nats = bus::Nats::new(settings::DEFAULT_NATS_URL),
        /// PostgreSQL (the top-level `database_url`); created with its schema if missing.
        pub database_url: String = settings::DEFAULT_DATABASE_URL.into(),
        /// Limits applied if this process creates `NTA_WINDOWS` (the `[stream]` settings).
        pub stream_limits: StreamLimits = StreamLimits::default(),
        /// Limits applied if this process creates `NTA_ALERTS` (the `[alerts]` settings).
        pub alert_limits: bus::AlertLimits = bus::AlertLimits::default(),
        /// Rule baselines (tuned in code, not settings).
        pub rules: RuleThresholds = RuleThresholds::default(),
    }
}

impl PredictorServiceConfig {
    /// The alert decision these settings describe (also `nta rescore`'s).
    pub fn policy(&self) -> crate::decide::AlertPolicy {
        crate::decide::AlertPolicy {
            min_confidence: self.min_confidence,
            sustain_confidence: self.sustain_confidence,
            rule_confidence: self.rule_confidence,
            quiet_period_secs: self.quiet_period().as_secs_f64(),
        }
    }

    pub fn quiet_period(&self) -> Duration {
        Duration::from_secs(self.alert_quiet_s)
    }

    pub fn close_interval(&self) -> Duration {
        Duration::from_millis(self.close_interval_ms)
    }

    pub fn outbox_interval(&self) -> Duration {
        Duration::from_millis(self.outbox_interval_ms.max(1))
    }

    pub fn ack_wait(&self) -> Duration {
        Duration::from_secs(self.ack_wait_s)
    }

    pub fn pending_refresh(&self) -> Duration {
        Duration::from_millis(self.pending_refresh_ms)
    }
}

/// `<host>-<pid>`.
fn default_instance() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_string()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "predictor".into());
    format!("{host}-{}", std::process::id())
}
