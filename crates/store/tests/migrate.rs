//! The one migration runner against a real PostgreSQL: a fresh database gets every table, a
//! database of an older release (three ledgers) is adopted without re-running anything, and
//! roles starting at once apply each migration exactly once.

use store::{migrate, MIGRATION_COUNT};

async fn versions(c: &tokio_postgres::Client) -> Vec<i32> {
    c.query("SELECT version FROM schema_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn exists(c: &tokio_postgres::Client, table: &str) -> bool {
    c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table]).await.unwrap().get(0)
}

#[tokio::test]
async fn fresh_database_gets_every_table_once() {
    let db = testkit::TestDb::create().await.unwrap();
    let mut c = db.client().await.unwrap();
    migrate(&mut c).await.unwrap();
    migrate(&mut c).await.unwrap();
    assert_eq!(versions(&c).await, (1..=MIGRATION_COUNT as i32).collect::<Vec<_>>());
    for t in [
        "raw_packets",
        "ingested_batches",
        "traffic_rollup",
        "window_features",
        "windower_checkpoint",
        "predictions",
        "alerts",
        "alert_windows",
    ] {
        assert!(exists(&c, t).await, "{t} missing");
    }
}

#[tokio::test]
async fn legacy_ledgers_are_adopted_not_rerun() {
    let db = testkit::TestDb::create().await.unwrap();
    let mut c = db.client().await.unwrap();
    migrate(&mut c).await.unwrap();
    // What an older release left: its tables (without what 0006 and later add), `schema_migrations`
    // with the ingestor's two versions, and the windower's and predictor's own ledgers.
    c.batch_execute(
        "ALTER TABLE raw_packets DROP COLUMN app_proto, DROP COLUMN tls_sni;
         DROP TABLE run_alert_windows, run_alerts, run_predictions, runs, alert_events;
         DELETE FROM schema_migrations WHERE version > 2;
         CREATE TABLE windower_schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now());
         INSERT INTO windower_schema_migrations (version, name) VALUES (1, 'window_features');
         CREATE TABLE predictor_schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now());
         INSERT INTO predictor_schema_migrations (version, name) VALUES (1, 'predictions_alerts'), (2, 'predictor_service');",
    )
    .await
    .unwrap();
    // Re-running 0003..0005 would fail on the existing tables: adoption must prevent it.
    migrate(&mut c).await.unwrap();
    assert_eq!(versions(&c).await, (1..=MIGRATION_COUNT as i32).collect::<Vec<_>>());
    assert!(!exists(&c, "windower_schema_migrations").await);
    assert!(!exists(&c, "predictor_schema_migrations").await);

    // A legacy version this build does not know is an error, not a silent skip.
    c.batch_execute(
        "CREATE TABLE predictor_schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now());
         INSERT INTO predictor_schema_migrations (version, name) VALUES (9, 'future');",
    )
    .await
    .unwrap();
    let err = migrate(&mut c).await.unwrap_err();
    assert!(format!("{err:#}").contains("version 9"), "{err:#}");
}

#[tokio::test]
async fn concurrent_roles_migrate_once() {
    let db = testkit::TestDb::create().await.unwrap();
    let runs = (0..4).map(|_| {
        let url = db.url.clone();
        tokio::spawn(async move { store::open(&url).await.map(drop) })
    });
    for r in futures::future::join_all(runs).await {
        r.unwrap().unwrap();
    }
    let c = db.client().await.unwrap();
    assert_eq!(versions(&c).await.len(), MIGRATION_COUNT);
}

/// 0006 on a database that already holds packets (partitions included): the two columns are
/// added to every partition and the rows stored before read NULL.
#[tokio::test]
async fn app_proto_and_sni_columns_reach_existing_partitions() {
    let db = testkit::TestDb::create().await.unwrap();
    let mut c = db.client().await.unwrap();
    migrate(&mut c).await.unwrap();
    // The schema as release 5 left it, with a day partition and a row in it.
    c.batch_execute(
        "ALTER TABLE raw_packets DROP COLUMN app_proto, DROP COLUMN tls_sni;
         DROP TABLE run_alert_windows, run_alerts, run_predictions, runs, alert_events;
         DELETE FROM schema_migrations WHERE version >= 6;
         SELECT nta_ensure_raw_partition(DATE '2026-01-01');
         INSERT INTO raw_packets (ts, interface, protocol, length, agent_id, batch_id, idx)
             VALUES ('2026-01-01 12:00:00+00', 'eth0', 'TCP', 60, 'a', 'a.b.0', 0);",
    )
    .await
    .unwrap();
    migrate(&mut c).await.unwrap();
    assert_eq!(versions(&c).await, (1..=MIGRATION_COUNT as i32).collect::<Vec<_>>());
    let row = c.query_one("SELECT app_proto, tls_sni FROM raw_packets_p20260101", &[]).await.unwrap();
    assert_eq!((row.get::<_, Option<String>>(0), row.get::<_, Option<String>>(1)), (None, None));
    c.execute(
        "INSERT INTO raw_packets (ts, interface, protocol, length, agent_id, batch_id, idx, app_proto, tls_sni)
             VALUES ('2026-01-01 12:00:01+00', 'eth0', 'TCP', 60, 'a', 'a.b.0', 1, 'tls', $1)",
        &[&"sni.example"],
    )
    .await
    .unwrap();
    let n: i64 = c
        .query_one("SELECT count(*) FROM raw_packets WHERE app_proto = 'tls' AND tls_sni = 'sni.example'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}
