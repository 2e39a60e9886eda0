//! PostgreSQL connection, versioned migrations, day partitions and retention.

use anyhow::{Context, Result};
use std::collections::HashSet;
use std::str::FromStr;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};
use tracing::{info, warn};

/// Embedded migrations, applied in order; a version is never edited once released, only
/// followed by a new one.
const MIGRATIONS: &[(i32, &str, &str)] =
    &[
        (1, "raw_packets", include_str!("../migrations/0001_raw_packets.sql")),
        (2, "traffic_rollup", include_str!("../migrations/0002_traffic_rollup.sql")),
    ];

/// Number of migrations this build applies.
pub const MIGRATION_COUNT: usize = MIGRATIONS.len();

/// Key of the advisory lock serialising concurrent `migrate` calls (any constant unique to us).
const MIGRATION_LOCK_KEY: i64 = 0x4e54_415f_4d49_4752; // "NTA_MIGR"

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

pub(crate) async fn connect_cfg(cfg: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = cfg.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            warn!(error = %e, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Hides a password in a URL meant for logs.
pub(crate) fn redact(url: &str) -> String {
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

/// Applies the embedded migrations not yet recorded in `schema_migrations`, all in one
/// transaction under an advisory lock, so several services starting at once apply each
/// migration exactly once and nobody sees a half-migrated schema.
pub async fn migrate(client: &mut Client) -> Result<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY]).await?;
    // Checked first rather than CREATE ... IF NOT EXISTS, which logs a notice at every start.
    let exists: bool = tx.query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[]).await?.get(0);
    if !exists {
        tx.batch_execute(
            "CREATE TABLE schema_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    }
    let applied: HashSet<i32> =
        tx.query("SELECT version FROM schema_migrations", &[]).await?.iter().map(|r| r.get(0)).collect();
    for &(version, name, sql) in MIGRATIONS {
        if applied.contains(&version) {
            continue;
        }
        tx.batch_execute(sql).await.with_context(|| format!("migration {version:04}_{name}"))?;
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[&version, &name])
            .await?;
        info!(version, name, "applied migration");
    }
    tx.commit().await?;
    Ok(())
}

/// Day number (days since 1970-01-01 UTC) of a timestamp in microseconds since the epoch.
pub(crate) fn day_of_micros(micros: i64) -> i32 {
    micros.div_euclid(86_400_000_000) as i32
}

/// Remembers which day partitions exist so the hot path asks PostgreSQL only for new days.
#[derive(Default)]
pub struct PartitionCache {
    known: HashSet<i32>,
}

impl PartitionCache {
    /// Creates (outside any data transaction, since creating a partition locks the parent)
    /// the partitions for `days` not known to exist.
    pub async fn ensure(&mut self, client: &Client, days: impl IntoIterator<Item = i32>) -> Result<()> {
        let mut missing: Vec<i32> = days.into_iter().filter(|d| !self.known.contains(d)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        missing.sort_unstable();
        missing.dedup();
        for &day in &missing {
            client
                .execute("SELECT nta_ensure_raw_partition(DATE '1970-01-01' + $1::integer)", &[&day])
                .await
                .with_context(|| format!("creating the raw_packets partition of day {day}"))?;
        }
        self.known.extend(missing);
        Ok(())
    }

    /// Forgets everything, e.g. after a write failed because retention dropped a partition.
    pub fn clear(&mut self) {
        self.known.clear();
    }
}

/// Drops the day partitions of `raw_packets` entirely older than `keep_days` days, and the
/// rollup rows of those days; returns the partitions' names.
pub async fn drop_expired_partitions(client: &Client, keep_days: u32) -> Result<Vec<String>> {
    let keep = i32::try_from(keep_days).unwrap_or(i32::MAX);
    let rows = client.query("SELECT nta_drop_old_raw_partitions($1)", &[&keep]).await?;
    // The rollup rows of the same days go too (the cutoff is the function's: midnight UTC,
    // keep_days ago), so no figure outlives the packets it summarises.
    client
        .execute(
            "DELETE FROM traffic_rollup WHERE bucket < \
             ((((now() AT TIME ZONE 'UTC') - make_interval(days => $1))::date)::timestamp AT TIME ZONE 'UTC')",
            &[&keep],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Forgets ledger entries (packets' and rollup's) older than `keep`; returns how many went.
pub async fn prune_ledger(client: &Client, keep: std::time::Duration) -> Result<u64> {
    let secs = keep.as_secs_f64();
    Ok(client
        .execute("DELETE FROM ingested_batches WHERE ingested_at < now() - make_interval(secs => $1)", &[&secs])
        .await?
        + client.execute("DELETE FROM rolled_up_batches WHERE rolled_at < now() - make_interval(secs => $1)", &[&secs]).await?)
}

/// Creates today's and tomorrow's partitions ahead of time so the first batch after midnight
/// does not pay for (and lock the parent for) a CREATE TABLE.
pub async fn precreate_partitions(client: &Client) -> Result<()> {
    client
        .batch_execute(
            "SELECT nta_ensure_raw_partition((now() AT TIME ZONE 'UTC')::date);
             SELECT nta_ensure_raw_partition((now() AT TIME ZONE 'UTC')::date + 1);",
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_redaction() {
        assert_eq!(day_of_micros(0), 0);
        assert_eq!(day_of_micros(-1), -1);
        assert_eq!(day_of_micros(86_400_000_000), 1);
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
