//! Settings of the dashboard role (`[dashboard]`); see the `settings` crate for the rules.

use std::net::SocketAddr;

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
}
