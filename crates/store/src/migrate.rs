//! The one migration runner: every table NTA keeps is created by the numbered SQL files in
//! `crates/store/migrations/`, embedded in the binary and applied in order under one advisory
//! lock, each recorded in `schema_migrations`. A released file is never edited, only followed
//! by a new one.

use anyhow::{Context, Result};
use std::collections::HashSet;
use tokio_postgres::{Client, Transaction};
use tracing::info;

/// (version, name, SQL), in the order they are applied.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "raw_packets", include_str!("../migrations/0001_raw_packets.sql")),
    (2, "traffic_rollup", include_str!("../migrations/0002_traffic_rollup.sql")),
    (3, "window_features", include_str!("../migrations/0003_window_features.sql")),
    (4, "predictions_alerts", include_str!("../migrations/0004_predictions_alerts.sql")),
    (5, "predictor_service", include_str!("../migrations/0005_predictor_service.sql")),
    (6, "app_proto_sni", include_str!("../migrations/0006_app_proto_sni.sql")),
    (7, "runs", include_str!("../migrations/0007_runs.sql")),
    (8, "alert_events", include_str!("../migrations/0008_alert_events.sql")),
];

/// Number of migrations this build applies.
pub const MIGRATION_COUNT: usize = MIGRATIONS.len();

/// Key of the advisory lock serialising concurrent `migrate` calls ("NTA_MIGR").
const MIGRATION_LOCK_KEY: i64 = 0x4e54_415f_4d49_4752;

/// Ledgers of databases migrated before the runners were merged into this one: the windower
/// and the predictor each kept their own, with their own version numbers. Each entry maps a
/// legacy (table, version) to the version it became here.
const LEGACY_LEDGERS: &[(&str, &[(i32, i32)])] =
    &[("windower_schema_migrations", &[(1, 3)]), ("predictor_schema_migrations", &[(1, 4), (2, 5)])];

/// Applies the migrations not yet recorded in `schema_migrations`, all in one transaction under
/// an advisory lock, so several roles starting at once apply each exactly once and nobody sees
/// a half-migrated schema.
pub async fn migrate(client: &mut Client) -> Result<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY]).await?;
    // Checked first rather than CREATE ... IF NOT EXISTS, which logs a notice at every start.
    if !table_exists(&tx, "schema_migrations").await? {
        tx.batch_execute(
            "CREATE TABLE schema_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    }
    adopt_legacy_ledgers(&tx).await?;
    let applied: HashSet<i32> =
        tx.query("SELECT version FROM schema_migrations", &[]).await?.iter().map(|r| r.get(0)).collect();
    for &(version, name, sql) in MIGRATIONS {
        if applied.contains(&version) {
            continue;
        }
        tx.batch_execute(sql).await.with_context(|| format!("migration {version:04}_{name}"))?;
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[&version, &name]).await?;
        info!(version, name, "applied migration");
    }
    tx.commit().await?;
    Ok(())
}

async fn table_exists(tx: &Transaction<'_>, name: &str) -> Result<bool> {
    Ok(tx.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name]).await?.get(0))
}

/// Moves what a legacy ledger recorded into `schema_migrations` (under the new numbers) and
/// drops it, so a database from an older release is not migrated twice.
async fn adopt_legacy_ledgers(tx: &Transaction<'_>) -> Result<()> {
    for &(table, map) in LEGACY_LEDGERS {
        if !table_exists(tx, table).await? {
            continue;
        }
        // applied_at travels as epoch seconds, so no date-time type is needed for one copy.
        let done: Vec<(i32, f64)> = tx
            .query(&format!("SELECT version, extract(epoch FROM applied_at)::float8 FROM {table}"), &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for (old, at) in done {
            let Some(&(_, new)) = map.iter().find(|(o, _)| *o == old) else {
                anyhow::bail!("{table} records version {old}, which this build does not know (newer release?)");
            };
            let name = MIGRATIONS.iter().find(|m| m.0 == new).map_or("", |m| m.1);
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, to_timestamp($3))
                 ON CONFLICT (version) DO NOTHING",
                &[&new, &name, &at],
            )
            .await?;
        }
        tx.batch_execute(&format!("DROP TABLE {table}")).await?;
        info!(table, "merged a legacy migration ledger into schema_migrations");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_dense_and_legacy_targets_exist() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.0 as usize, i + 1, "migration versions are 1, 2, 3, ...");
        }
        for (_, map) in LEGACY_LEDGERS {
            for (_, new) in *map {
                assert!(MIGRATIONS.iter().any(|m| m.0 == *new));
            }
        }
    }

    #[test]
    fn window_features_migration_has_every_feature_column() {
        let sql = MIGRATIONS[2].2;
        for name in crate::windows::FEATURE_COLUMNS {
            assert!(sql.contains(&format!("\n    {name} double precision,")), "{name} missing from the migration");
        }
    }
}
