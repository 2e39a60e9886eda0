//! Connecting to PostgreSQL: the database is created on first use, passwords never reach logs.

use anyhow::{Context, Result};
use std::str::FromStr;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};
use tracing::{info, warn};

/// Connects to `url`, creating its database first if it does not exist (through the
/// `postgres` maintenance database of the same server).
pub async fn connect_creating(url: &str) -> Result<Client> {
    let cfg = Config::from_str(url).with_context(|| format!("bad database url {url:?}"))?;
    match connect_cfg(&cfg).await {
        Ok(c) => return Ok(c),
        Err(e) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {}
        Err(e) => return Err(anyhow::Error::new(e).context(format!("connecting to {}", redact(url)))),
    }
    let db = cfg
        .get_dbname()
        .map(str::to_string)
        .or_else(|| cfg.get_user().map(str::to_string))
        .context("database url names no database")?;
    let mut admin_cfg = cfg.clone();
    admin_cfg.dbname("postgres");
    let admin = connect_cfg(&admin_cfg).await.context("connecting to the postgres database")?;
    let sql = format!("CREATE DATABASE {}", quote_ident(&db));
    match admin.batch_execute(&sql).await {
        Ok(()) => info!(database = %db, "created database"),
        // Another process created it between our two attempts (reported as either code).
        Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) || e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {}
        Err(e) => return Err(anyhow::Error::new(e).context(format!("creating database {db}"))),
    }
    drop(admin);
    connect_cfg(&cfg).await.with_context(|| format!("connecting to {}", redact(url)))
}

pub async fn connect_cfg(cfg: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = cfg.connect(NoTls).await?;
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

/// Hides a password in a URL meant for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
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
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
