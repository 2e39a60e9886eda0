//! Settings of the dashboard role (`[dashboard]`); see the `settings` crate for the rules.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default listen address (`dashboard.listen`, `--listen`, `NTA_DASHBOARD_ADDR`).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

settings::settings! {
    /// Configuration of the dashboard role.
    #[derive(Debug, Clone)]
    pub struct DashboardConfig {
        /// Dashboard listen address; anything but a loopback address requires a password or a token.
        #[setting(flag = "listen", env = "NTA_DASHBOARD_ADDR")]
        pub listen: SocketAddr = DEFAULT_LISTEN.parse().expect("default address"),
        /// Browser login password; empty counts as unset. A secret: environment or file only.
        #[setting(secret = true)]
        pub password: Option<String> = None,
        /// Bearer token of API clients (`Authorization: Bearer`); empty counts as unset. A
        /// secret: environment or file only.
        #[setting(secret = true)]
        pub token: Option<String> = None,
        /// PEM certificate chain for built-in HTTPS (together with `tls_key`); unset: plain HTTP.
        #[setting(flag = "tls-cert")]
        pub tls_cert: Option<PathBuf> = None,
        /// PEM private key of `tls_cert`.
        #[setting(flag = "tls-key")]
        pub tls_key: Option<PathBuf> = None,
        /// Mark session cookies `Secure` without built-in TLS, for a TLS-terminating reverse
        /// proxy in front (always on with `tls_cert`).
        pub secure_cookies: bool = false,
        /// A browser session not used for this long is signed out (seconds).
        pub session_idle_s: u64 = 1800,
        /// Failed logins from one client address before it is locked out.
        pub login_max_failures: u32 = 5,
        /// How long a client address stays locked out after too many failed logins (seconds).
        pub login_lockout_s: u64 = 300,
        /// Time a client gets to send a request's headers (and, with TLS, the handshake); also
        /// closes keep-alive connections idle this long (milliseconds).
        pub header_timeout_ms: u64 = 10_000,
        /// Open connections served at once; further connections are closed at once.
        pub max_connections: usize = 256,
        /// Live-alert (SSE) streams served at once; further requests get 503.
        pub max_sse_streams: usize = 64,
        /// Largest pcap a "Download pcap" produces, in MB (the file is built in memory; a larger
        /// export is a 400 naming `nta export-pcap`, which has no limit).
        pub pcap_max_mb: f64 = 256.0,
        /// Longest capture-time range a "Download pcap" covers, in seconds.
        pub pcap_max_range_s: u64 = 24 * 3600,
    }
    runtime {
        /// PostgreSQL (the top-level `database_url` setting).
        pub database_url: String = settings::DEFAULT_DATABASE_URL.into(),
        /// NATS server and credentials (the top-level `nats_url` and the `[nats]` settings).
        pub nats: bus::Nats = bus::Nats::new(settings::DEFAULT_NATS_URL),
    }
}

impl DashboardConfig {
    pub fn new(listen: SocketAddr, database_url: impl Into<String>, nats_url: impl Into<String>) -> Self {
        DashboardConfig {
            listen,
            database_url: database_url.into(),
            nats: bus::Nats::new(nats_url),
            ..Default::default()
        }
    }

    pub fn session_idle(&self) -> Duration {
        Duration::from_secs(self.session_idle_s.max(1))
    }

    pub fn login_lockout(&self) -> Duration {
        Duration::from_secs(self.login_lockout_s.max(1))
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms.max(1))
    }

    /// Whether session cookies get `Secure`: with built-in TLS, or when forced for a proxy.
    pub fn cookies_secure(&self) -> bool {
        self.secure_cookies || self.tls_cert.is_some()
    }
}
