//! Crash tests with the real `nta` binary: the ingestor process aborts (like SIGKILL: no
//! unwinding, no acks) at a failpoint between COPY and ack; after a restart every packet must
//! be stored exactly once. Needs `nta` built (`cargo build -p nta`, or NTA_BIN).

use crate::common::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use testkit::{wait_exit, NatsServer, TestDb};

const BATCHES: u64 = 40;
const RECORDS: usize = 50;

fn start_nta(nats: &NatsServer, db: &TestDb, failpoint: Option<&str>) -> Child {
    let mut cmd = Command::new(testkit::nta_bin());
    cmd.args(["run", "--target", "ingestor", "--nats-url", &nats.url, "--database-url", &db.url])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    match failpoint {
        Some(f) => cmd.env(ingestor::FAILPOINT_ENV, f),
        None => cmd.env_remove(ingestor::FAILPOINT_ENV),
    };
    cmd.spawn().expect("starting nta")
}

async fn crash_and_recover(failpoint: &str) {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let js = jetstream(&nats).await;
    // Short ack_wait so the messages the crashed process held come back quickly.
    precreate_consumer(&js, "nta-ingestor", Duration::from_secs(2)).await;
    precreate_consumer(&js, "nta-ingestor-rollup", Duration::from_secs(2)).await;
    // Current timestamps, so no retention setting of the binary can drop them.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    for s in 0..BATCHES {
        let mut b = small_batch("crash", s, RECORDS);
        for (i, r) in b.records.iter_mut().enumerate() {
            r.timestamp = now - 60.0 + i as f64 * 0.01;
        }
        publish(&js, &b).await;
    }

    let mut child = start_nta(&nats, &db, Some(failpoint));
    let status = wait_exit(&mut child, Duration::from_secs(60));
    assert!(!status.success(), "nta should have aborted at {failpoint}, got {status:?}");

    let client = db.client().await.unwrap();
    let ledger = count(&client, "SELECT count(*) FROM ingested_batches").await;
    let rows = count(&client, "SELECT count(*) FROM raw_packets").await;
    match failpoint {
        // Died before commit: the transaction (ledger and rows) rolled back.
        "after_copy" => assert_eq!((ledger, rows), (0, 0)),
        // Died after commit, before ack: stored, and will be redelivered.
        _ => {
            assert!(ledger >= 1, "nothing committed before the abort");
            assert_eq!(rows, ledger * RECORDS as i64);
        }
    }

    let mut child = start_nta(&nats, &db, None);
    let want = (BATCHES as usize * RECORDS) as i64;
    wait_until("all batches after restart", Duration::from_secs(60), || async {
        count(&client, "SELECT count(*) FROM ingested_batches").await == BATCHES as i64
    })
    .await;
    wait_ingested(&js, Duration::from_secs(30)).await;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    wait_exit(&mut child, Duration::from_secs(20));

    assert_eq!(count(&client, "SELECT count(*) FROM raw_packets").await, want);
    assert_eq!(count(&client, "SELECT count(DISTINCT (batch_id, idx)) FROM raw_packets").await, want);
    assert_rollup_matches_packets(&client).await;
}

#[tokio::test]
async fn abort_after_commit_before_ack() {
    crash_and_recover("after_commit").await;
}

#[tokio::test]
async fn abort_after_copy_before_commit() {
    crash_and_recover("after_copy").await;
}

/// A real SIGKILL at an arbitrary moment of a busy ingestion (no failpoint): whatever the
/// process was doing (fetching, COPY, commit, acks), a restart ends with every packet once.
#[tokio::test]
async fn sigkill_mid_ingestion() {
    const MANY: u64 = 400;
    const ROWS: usize = 200;
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let js = jetstream(&nats).await;
    precreate_consumer(&js, "nta-ingestor", Duration::from_secs(2)).await;
    precreate_consumer(&js, "nta-ingestor-rollup", Duration::from_secs(2)).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    for s in 0..MANY {
        let mut b = small_batch("kill", s, ROWS);
        for (i, r) in b.records.iter_mut().enumerate() {
            r.timestamp = now - 60.0 + i as f64 * 0.001;
        }
        publish(&js, &b).await;
    }
    let client = db.client().await.unwrap();
    let mut child = start_nta(&nats, &db, None);
    // Kill once some, but not all, batches are in.
    wait_until("first batches stored", Duration::from_secs(60), || async {
        count(&client, "SELECT count(*) FROM ingested_batches").await > 0
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // One snapshot for both counts: the killed client's last COMMIT may still be completing in
    // its server backend, and a batch's rows and ledger row land together or not at all.
    let row = client
        .query_one("SELECT (SELECT count(*) FROM ingested_batches), (SELECT count(*) FROM raw_packets)", &[])
        .await
        .unwrap();
    let (at_kill, rows): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(rows, at_kill * ROWS as i64);

    let mut child = start_nta(&nats, &db, None);
    wait_until("all batches after restart", Duration::from_secs(90), || async {
        count(&client, "SELECT count(*) FROM ingested_batches").await == MANY as i64
    })
    .await;
    wait_ingested(&js, Duration::from_secs(30)).await;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    wait_exit(&mut child, Duration::from_secs(20));
    let want = (MANY as usize * ROWS) as i64;
    assert_eq!(count(&client, "SELECT count(*) FROM raw_packets").await, want);
    assert_eq!(count(&client, "SELECT count(DISTINCT (batch_id, idx)) FROM raw_packets").await, want);
    assert_rollup_matches_packets(&client).await;
    eprintln!("killed with {at_kill}/{MANY} batches stored; after restart all {MANY} exactly once");
}
