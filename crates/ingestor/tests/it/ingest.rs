//! End-to-end tests of the ingestor against a private nats-server and a fresh database.

use crate::common::*;
use std::time::Duration;
use testkit::{NatsServer, TestDb};

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn stores_every_column_exactly() {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let js = jetstream(&nats).await;
    let batches: Vec<_> = (0..3).map(|s| varied_batch("agent-a", s)).collect();
    for b in &batches {
        publish(&js, b).await;
    }
    let ing = spawn(config(&nats, &db));
    let client = db.client().await.unwrap();
    let total = batches.iter().map(|b| b.records.len()).sum::<usize>() as i64;
    wait_until("rows stored", T, || async { count(&client, "SELECT count(*) FROM raw_packets").await == total }).await;
    wait_ingested(&js, T).await;
    ing.stop().await;

    assert_eq!(count(&client, "SELECT count(*) FROM raw_packets").await, total);
    for b in &batches {
        let stored = stored_records(&client, &b.batch_id()).await;
        assert_eq!(stored.len(), b.records.len());
        for ((agent, ts, mut got), want) in stored.into_iter().zip(&b.records) {
            assert_eq!(agent, b.agent_id);
            assert!((ts - want.timestamp).abs() < 1e-6, "ts {ts} vs {}", want.timestamp);
            got.timestamp = want.timestamp;
            let mut want = want.clone();
            // PostgreSQL text cannot hold NUL; it is stored as U+FFFD.
            want.dns_qname = want.dns_qname.map(|q| q.replace('\0', "\u{FFFD}"));
            want.tls_sni = want.tls_sni.map(|q| q.replace('\0', "\u{FFFD}"));
            assert_eq!(got, want);
        }
    }
    // ARP rows have no IP addresses: NULL, not a placeholder.
    assert_eq!(count(&client, "SELECT count(*) FROM raw_packets WHERE protocol = 'ARP' AND src_ip IS NULL").await, 3);
    assert_eq!(count(&client, "SELECT count(*) FROM raw_packets WHERE src_port = 0 OR tcp_flags = '0'").await, 0);
    let ledger: Vec<(String, String, i32)> = client
        .query("SELECT batch_id, agent_id, records FROM ingested_batches ORDER BY batch_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let want: Vec<_> = batches.iter().map(|b| (b.batch_id(), b.agent_id.clone(), b.records.len() as i32)).collect();
    assert_eq!(ledger, want);
    // Partitioned by day, with the schema version recorded.
    assert!(count(&client, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'raw_packets'::regclass").await >= 1);
    assert_eq!(count(&client, "SELECT count(*) FROM schema_migrations").await, store::MIGRATION_COUNT as i64);
    assert_rollup_matches_packets(&client).await;
}

#[tokio::test]
async fn redelivered_batch_is_stored_once() {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let js = jetstream(&nats).await;
    let b = varied_batch("agent-r", 7);
    let subject = bus::packets_subject("agent-r");
    // Twice before the ingestor runs (same transaction), then again after it stored it.
    publish_raw(&js, &subject, "m1", b.encode().unwrap()).await;
    publish_raw(&js, &subject, "m2", b.encode().unwrap()).await;
    let ing = spawn(config(&nats, &db));
    let client = db.client().await.unwrap();
    wait_ingested(&js, T).await;
    publish_raw(&js, &subject, "m3", b.encode().unwrap()).await;
    let other = small_batch("agent-r", 8, 5);
    publish(&js, &other).await;
    wait_until("second batch", T, || async { count(&client, "SELECT count(*) FROM ingested_batches").await == 2 })
        .await;
    wait_ingested(&js, T).await;
    ing.stop().await;
    let n = b.records.len() as i64;
    assert_eq!(count(&client, "SELECT count(*) FROM raw_packets WHERE batch_id = 'agent-r.boot1.7'").await, n);
    assert_eq!(count(&client, "SELECT count(*) FROM raw_packets").await, n + 5);
    assert_rollup_matches_packets(&client).await;
}

#[tokio::test]
async fn poison_message_is_dead_lettered_and_pipeline_continues() {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let js = jetstream(&nats).await;
    publish_raw(&js, "nta.packets.x", "garbage-1", b"\x93not msgpack at all".to_vec()).await;
    // Decodes, but with a timestamp no capture can have: also poison.
    let mut bad_ts = small_batch("x", 1, 2);
    bad_ts.records[1].timestamp = f64::NAN;
    publish(&js, &bad_ts).await;
    // A well-formed batch claiming another agent's id than its subject's: forged.
    let forged = small_batch("victim", 7, 5);
    publish_raw(&js, "nta.packets.x", &forged.batch_id(), forged.encode().unwrap()).await;
    let good = small_batch("x", 2, 10);
    publish(&js, &good).await;
    let ing = spawn(config(&nats, &db));
    let client = db.client().await.unwrap();
    wait_until("good batch stored", T, || async { count(&client, "SELECT count(*) FROM raw_packets").await == 10 })
        .await;

    let dl = js.get_stream(bus::DEADLETTER_STREAM).await.unwrap();
    let mut msgs = Vec::new();
    let start = std::time::Instant::now();
    for seq in 1..=3 {
        loop {
            if let Ok(m) = dl.get_raw_message(seq).await {
                msgs.push(m);
                break;
            }
            assert!(start.elapsed() < T, "dead letter {seq} missing");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Several writers dead-letter concurrently: the order of the three is not fixed.
    let reason = |m: &async_nats::jetstream::message::StreamMessage| {
        m.headers.get(bus::DEADLETTER_REASON_HEADER).unwrap().as_str().to_string()
    };
    for m in &msgs {
        assert_eq!(m.subject.as_str(), bus::DEADLETTER_SUBJECT);
        assert_eq!(m.headers.get(bus::DEADLETTER_SUBJECT_HEADER).unwrap().as_str(), "nta.packets.x");
        assert!(!reason(m).is_empty());
    }
    assert!(msgs.iter().any(|m| &m.payload[..] == b"\x93not msgpack at all"), "the undecodable batch");
    assert!(msgs.iter().any(|m| reason(m).contains("timestamp")), "the impossible timestamp");
    assert!(
        msgs.iter().any(|m| reason(m).contains("victim") && reason(m).contains("nta.packets.x")),
        "the forged agent id"
    );
    wait_ingested(&js, T).await;
    ing.stop().await;
    assert_eq!(count(&client, "SELECT count(*) FROM ingested_batches").await, 1);
}

#[tokio::test]
async fn two_ingestors_share_the_work_without_duplicates() {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let js = jetstream(&nats).await;
    let mut cfg = config(&nats, &db);
    cfg.batches_per_txn = 8;
    let a = spawn(cfg.clone());
    let b = spawn(cfg);
    let n_batches = 200u64;
    for s in 0..n_batches {
        publish(&js, &small_batch(&format!("agent{}", s % 3), s, 20)).await;
    }
    let client = db.client().await.unwrap();
    let want = n_batches as i64 * 20;
    wait_until("all rows", Duration::from_secs(60), || async {
        count(&client, "SELECT count(*) FROM raw_packets").await >= want
    })
    .await;
    wait_ingested(&js, T).await;
    a.stop().await;
    b.stop().await;
    assert_eq!(count(&client, "SELECT count(*) FROM raw_packets").await, want);
    assert_eq!(count(&client, "SELECT count(DISTINCT (batch_id, idx)) FROM raw_packets").await, want);
    assert_eq!(count(&client, "SELECT count(*) FROM ingested_batches").await, n_batches as i64);
    assert_rollup_matches_packets(&client).await;
}

#[tokio::test]
async fn retention_drops_old_partitions() {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let js = jetstream(&nats).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let mut b = small_batch("ret", 1, 4);
    b.records[0].timestamp = now - 40.0 * 86400.0;
    b.records[1].timestamp = now - 20.0 * 86400.0;
    b.records[2].timestamp = now - 86400.0;
    b.records[3].timestamp = now;
    publish(&js, &b).await;
    let mut cfg = config(&nats, &db);
    cfg.retention_days = 10;
    cfg.retention_interval_ms = 200;
    let ing = spawn(cfg);
    let client = db.client().await.unwrap();
    wait_until("batch stored", T, || async { count(&client, "SELECT count(*) FROM ingested_batches").await == 1 })
        .await;
    wait_until("old partitions dropped", T, || async { count(&client, "SELECT count(*) FROM raw_packets").await == 2 })
        .await;
    // The rollup rows of the dropped days go with them.
    wait_until("rollup of the dropped days deleted", T, || async {
        matches!(testkit::rollup_vs_packets(&client).await, Ok((0, 2)))
    })
    .await;
    ing.stop().await;
    let parts: Vec<String> = client
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'raw_packets'::regclass ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Yesterday, today and (pre-created) tomorrow remain.
    assert_eq!(parts.len(), 3, "{parts:?}");

    // The boundary: a day is dropped only once all of it is older than the retention.
    let mut c2 = db.client().await.unwrap();
    store::migrate(&mut c2).await.unwrap();
    c2.batch_execute(
        "SELECT nta_ensure_raw_partition((now() AT TIME ZONE 'UTC')::date - d) FROM unnest(ARRAY[12, 11, 10, 9]) d",
    )
    .await
    .unwrap();
    let mut dropped = store::packets::drop_expired_partitions(&c2, 10).await.unwrap();
    dropped.sort();
    assert_eq!(dropped.len(), 2, "{dropped:?}");
}

#[tokio::test]
async fn migrations_and_database_creation_are_safe_concurrently() {
    let db = TestDb::create().await.unwrap();
    // A database that does not exist yet: connect_creating creates it (racing with itself).
    let fresh = format!("{}_new", db.name);
    let url = db.url.replace(&db.name, &fresh);
    let results = futures::future::join_all((0..3).map(|_| {
        let url = url.clone();
        async move {
            let mut c = store::connect_creating(&url).await?;
            store::migrate(&mut c).await?;
            anyhow::Ok(c)
        }
    }))
    .await;
    let clients: Vec<_> = results.into_iter().collect::<Result<_, _>>().unwrap();
    let n: i64 = clients[0].query_one("SELECT count(*) FROM schema_migrations", &[]).await.unwrap().get(0);
    assert_eq!(n, store::MIGRATION_COUNT as i64);
    drop(clients);
    let admin = db.client().await.unwrap();
    admin.batch_execute(&format!("DROP DATABASE {fresh} WITH (FORCE)")).await.unwrap();
}
