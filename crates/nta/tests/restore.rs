//! Restoring an older database dump (README, Backing up): what was stored after the dump is
//! still on `NTA_PACKETS`, and `nta streams --reset-consumer nta-ingestor`, with the ingestor
//! stopped, makes the next ingestor read the whole stream again; its ledger skips what the
//! restored database holds, so every packet ends up stored exactly once. The command refuses a
//! consumer a running role pulls from, and names an unknown one.

mod common;

use common::*;
use std::time::Duration;

fn streams(nats_url: &str, args: &[&str]) -> std::process::Output {
    nta().args(["streams", "--nats-url", nats_url]).args(args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_consumer_refills_a_restored_database_exactly_once() {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let pcaps = testkit::workspace_root().join("testdata/pcaps");
    let ingestor = start_ingestor(&nats.url, &db.url, &[]);
    replay(&nats.url, &pcaps.join("arp_spoof-unsolicited-replies.pcap"), "before-dump");
    replay(&nats.url, &pcaps.join("ssh_brute-guessing.pcap"), "after-dump");
    let pg = db.client().await.unwrap();
    let count = |sql: &'static str| {
        let pg = &pg;
        // -1 until the ingestor has created the tables.
        async move { pg.query_one(sql, &[]).await.map(|r| r.get::<_, i64>(0)).unwrap_or(-1) }
    };
    let all = "SELECT count(*) FROM raw_packets";
    let stored = wait_for(Duration::from_secs(60), || async { (count(all).await == 36 + 431).then_some(()) }).await;
    assert!(stored.is_some(), "{} packets stored, expected 467", count(all).await);

    // The restored dump predates the second capture: neither its packets nor their ledger rows.
    pg.batch_execute(
        "DELETE FROM raw_packets WHERE agent_id = 'after-dump'; DELETE FROM ingested_batches WHERE agent_id = 'after-dump'",
    )
    .await
    .unwrap();
    assert_eq!(count(all).await, 36);

    let busy = streams(&nats.url, &["--reset-consumer", "nta-ingestor"]);
    assert!(!busy.status.success(), "reset a consumer in use");
    assert!(String::from_utf8_lossy(&busy.stderr).contains("is in use"), "{}", String::from_utf8_lossy(&busy.stderr));
    let unknown = streams(&nats.url, &["--reset-consumer", "nta-nobody"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no consumer named nta-nobody"));

    drop(ingestor);
    // The stopped ingestor's pull requests go when its connection does.
    let reset = wait_for(Duration::from_secs(20), || async {
        let out = streams(&nats.url, &["--reset-consumer", "nta-ingestor"]);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).to_string())
    })
    .await
    .expect("the consumer stayed in use after the ingestor stopped");
    assert!(reset.contains("deleted consumer nta-ingestor of NTA_PACKETS"), "{reset}");

    let _ingestor = start_ingestor(&nats.url, &db.url, &[]);
    let refilled = wait_for(Duration::from_secs(60), || async { (count(all).await == 467).then_some(()) }).await;
    assert!(refilled.is_some(), "{} packets after the refill, expected 467", count(all).await);
    assert_eq!(count("SELECT count(DISTINCT (batch_id, idx)) FROM raw_packets").await, 467);
    assert_eq!(count("SELECT count(*) FROM raw_packets WHERE agent_id = 'after-dump'").await, 431);
    // Nothing more arrives later (a duplicate would).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(all).await, 467);
}
