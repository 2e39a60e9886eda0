//! Settings of the notifier role (`[notifier]`); see the `settings` crate for the rules. Lists
//! (webhook URLs, chat ids, recipients, classes) are comma-separated, as `nats_url` is; their
//! flags may also be repeated.

use std::time::Duration;

settings::settings! {
    /// Configuration of the notifier role.
    #[derive(Debug, Clone)]
    pub struct NotifierConfig {
        /// Durable consumer on NTA_ALERTS; replicas with the same name share the alert events.
        pub durable: String = "nta-notifier".into(),
        /// Webhook URLs (comma-separated; the flag may be repeated): each gets a JSON POST per
        /// notification.
        #[setting(flag = "webhook", env = "NTA_WEBHOOK_URL", list = true)]
        pub webhook: Option<String> = None,
        /// Telegram bot token (enables the Telegram output with `telegram_chat_ids`).
        #[setting(secret = true, env = "NTA_TELEGRAM_TOKEN")]
        pub telegram_token: Option<String> = None,
        /// Telegram chat ids (comma-separated; the flag may be repeated) the bot writes to.
        #[setting(env = "NTA_TELEGRAM_CHAT_IDS", list = true)]
        pub telegram_chat_ids: Option<String> = None,
        /// Telegram Bot API base URL (a proxy or a test server).
        #[setting(env = "NTA_TELEGRAM_API_URL")]
        pub telegram_api_url: String = "https://api.telegram.org".into(),
        /// Syslog receiver: `udp://HOST:PORT` or `tcp://HOST:PORT` (RFC 5424; TCP framed by octet
        /// counting, RFC 6587).
        #[setting(flag = "syslog")]
        pub syslog: Option<String> = None,
        /// Syslog message body: `text` (RFC 5424 structured data + summary) or `cef`.
        #[setting(flag = "syslog-format")]
        pub syslog_format: String = "text".into(),
        /// SMTP server: `smtp://HOST:PORT` (STARTTLS when offered) or `smtps://HOST:PORT`.
        #[setting(flag = "smtp")]
        pub smtp: Option<String> = None,
        /// Sender address of the e-mails.
        #[setting(flag = "mail-from")]
        pub mail_from: String = "nta@localhost".into(),
        /// Recipients (comma-separated; the flag may be repeated).
        #[setting(flag = "mail-to", list = true)]
        pub mail_to: Option<String> = None,
        /// SMTP login user (with `smtp_password`).
        #[setting(secret = true)]
        pub smtp_user: Option<String> = None,
        /// SMTP login password.
        #[setting(secret = true)]
        pub smtp_password: Option<String> = None,
        /// Alerts below this severity (LOW, MEDIUM, HIGH, CRITICAL) are not notified.
        #[setting(flag = "notify-min-severity")]
        pub min_severity: String = "LOW".into(),
        /// Classes notified (comma-separated; the flag may be repeated); unset: all.
        #[setting(flag = "notify-classes", list = true)]
        pub classes: Option<String> = None,
        /// Quiet period (s) per (view, key, class): an update of an alert is notified only when
        /// its severity rose or this long after the last notification of that alert.
        #[setting(flag = "notify-quiet-s")]
        pub quiet_s: u64 = 300,
        /// Notify alerts that were resolved or closed.
        pub notify_resolved: bool = true,
        /// First retry delay (ms) of an output that failed; doubles up to `retry_max_ms`.
        pub retry_min_ms: u64 = 500,
        /// Longest retry delay (ms).
        pub retry_max_ms: u64 = 30_000,
        /// An output still failing after this long (s) on one event gives up: the event is
        /// dead-lettered for that output (0: retry until it works).
        pub give_up_after_s: u64 = 3600,
        /// Timeout (ms) of one delivery attempt.
        pub timeout_ms: u64 = 10_000,
        /// Server-side redelivery timer (s) of an unacked event (kept alive while retrying).
        pub ack_wait_s: u64 = 60,
        /// Syslog HOSTNAME field (RFC 5424).
        #[setting(default_doc = "the host name")]
        pub hostname: String = default_hostname(),
    }
    runtime {
        /// NATS server and credentials (the top-level `nats_url` and the `[nats]` settings).
        pub nats: bus::Nats = bus::Nats::new(settings::DEFAULT_NATS_URL),
        /// Limits of `NTA_DEADLETTER` if this process creates it (the `[stream]` settings).
        pub stream_limits: bus::StreamLimits = bus::StreamLimits::default(),
        /// Limits applied if this process creates `NTA_ALERTS` (the `[alerts]` settings).
        pub alert_limits: bus::AlertLimits = bus::AlertLimits::default(),
    }
}

impl NotifierConfig {
    pub fn quiet(&self) -> Duration {
        Duration::from_secs(self.quiet_s)
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }
    pub fn ack_wait(&self) -> Duration {
        Duration::from_secs(self.ack_wait_s.max(1))
    }
    pub fn backoff(&self) -> bus::Backoff {
        bus::Backoff::new(Duration::from_millis(self.retry_min_ms.max(1)), Duration::from_millis(self.retry_max_ms))
    }
    /// True when at least one output is configured.
    pub fn has_outputs(&self) -> bool {
        let set = |s: &Option<String>| s.as_deref().is_some_and(|v| !v.trim().is_empty());
        set(&self.webhook) || set(&self.telegram_token) || set(&self.syslog) || set(&self.smtp)
    }

    pub fn give_up_after(&self) -> Option<Duration> {
        (self.give_up_after_s > 0).then(|| Duration::from_secs(self.give_up_after_s))
    }
}

/// Items of a comma-separated list, trimmed, empty ones dropped.
pub fn list(s: Option<&str>) -> Vec<String> {
    s.unwrap_or_default().split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect()
}

fn default_hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_string()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "nta".into())
}
