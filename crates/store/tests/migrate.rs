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
    // What an older release left: its tables, `schema_migrations` with the ingestor's two
    // versions, and the windower's and predictor's own ledgers.
    c.batch_execute(
        "DELETE FROM schema_migrations WHERE version > 2;
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
