//! Connecting to PostgreSQL: TLS as the URL's `sslmode` asks ([`crate::tls`]), the database
//! created on first use, passwords never in logs.

use anyhow::{Context, Result};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;
use tracing::{info, warn};

pub use crate::tls::{DbConfig, SslMode};

/// Connects to `url`, creating its database first if it does not exist (through the
/// `postgres` maintenance database of the same server).
pub async fn connect_creating(url: &str) -> Result<Client> {
    let cfg = DbConfig::parse(url)?;
    match connect_cfg(&cfg).await {
        Ok(c) => return Ok(c),
        Err(e) if sql_state(&e) == Some(&SqlState::INVALID_CATALOG_NAME) => {}
        Err(e) => return Err(e.context(format!("connecting to {}", settings::redact_url(url)))),
    }
    let db = cfg
        .pg
        .get_dbname()
        .map(str::to_string)
        .or_else(|| cfg.pg.get_user().map(str::to_string))
        .context("database url names no database")?;
    let mut admin_cfg = cfg.clone();
    admin_cfg.pg.dbname("postgres");
    let admin = connect_cfg(&admin_cfg).await.context("connecting to the postgres database")?;
    let sql = format!("CREATE DATABASE {}", quote_ident(&db));
    match admin.batch_execute(&sql).await {
        Ok(()) => info!(database = %db, "created database"),
        // Another process created it between our two attempts (reported as either code).
        Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) || e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {}
        Err(e) => return Err(anyhow::Error::new(e).context(format!("creating database {db}"))),
    }
    drop(admin);
    connect_cfg(&cfg).await.with_context(|| format!("connecting to {}", settings::redact_url(url)))
}

/// Whether `e` (from [`connect_creating`] or [`crate::open`]) means the server is not reachable
/// or not ready yet (refused or timed-out connection, closed socket, "starting up", "shutting
/// down"), so that waiting may help; a refusal such as a wrong password or a bad URL does not.
pub fn unreachable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        if c.is::<std::io::Error>() {
            return true;
        }
        let Some(pg) = c.downcast_ref::<tokio_postgres::Error>() else { return false };
        match pg.code() {
            Some(code) => {
                [SqlState::CANNOT_CONNECT_NOW, SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN].contains(code)
            }
            None => pg.is_closed() || std::error::Error::source(pg).is_some_and(|s| s.is::<std::io::Error>()),
        }
    })
}

fn sql_state(e: &anyhow::Error) -> Option<&SqlState> {
    e.downcast_ref::<tokio_postgres::Error>().and_then(|e| e.code())
}

/// Connects with `cfg`'s TLS settings. A TLS configuration that cannot be built (unreadable
/// certificate files) is an error here, before anything goes over the network.
pub async fn connect_cfg(cfg: &DbConfig) -> Result<Client> {
    let (client, conn) = cfg.pg.connect(cfg.tls()?).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            warn!(error = %e, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A connection that is made again when it was lost (PostgreSQL restarted, network cut).
pub struct Reconnecting {
    url: String,
    client: Option<Client>,
}

impl Reconnecting {
    /// Starts with an already open connection.
    pub fn new(url: impl Into<String>, client: Client) -> Reconnecting {
        Reconnecting { url: url.into(), client: Some(client) }
    }

    /// The connection, and whether it is new (a caller holding session state such as an
    /// advisory lock must take it again).
    pub async fn get(&mut self) -> Result<(&mut Client, bool)> {
        let mut fresh = false;
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.client = None;
            let c = connect_creating(&self.url).await?;
            info!("reconnected to PostgreSQL");
            self.client = Some(c);
            fresh = true;
        }
        Ok((self.client.as_mut().expect("connected above"), fresh))
    }

    /// Forgets the connection (e.g. its session lock was lost); the next [`Self::get`] reconnects.
    pub fn reset(&mut self) {
        self.client = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_and_quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[tokio::test]
    async fn a_server_not_listening_is_waited_for_a_refusal_is_not() {
        let port = testkit::free_port();
        let e = connect_creating(&format!("postgres://postgres@127.0.0.1:{port}/nta")).await.unwrap_err();
        assert!(unreachable(&e), "{e:#}");
        let admin = testkit::pg_admin_url();
        // A role that does not exist: the server answered, waiting will not help.
        let url = admin.replacen("postgres://postgres@", "postgres://no_such_role_nta@", 1);
        let e = connect_creating(&url).await.unwrap_err();
        assert!(!unreachable(&e), "{e:#}");
        let e = connect_creating("postgres://h:notaport/db").await.unwrap_err();
        assert!(!unreachable(&e), "{e:#}");
    }
}
