//! Alert events survive a predictor crash, exactly once on `NTA_ALERTS`: the real `nta` binary
//! aborts (like SIGKILL) right after the batch's commit, before relaying its events, or right
//! after JetStream acknowledged them, before they were marked published. After a restart every
//! event is on the stream once. Needs `nta` built (`cargo build -p nta`, or NTA_BIN).

use async_nats::jetstream;
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testkit::{wait_exit, NatsServer, TestDb};
use wire::{View, WindowRecord};

const T0: i64 = 1_767_225_600;
const SCANNERS: usize = 5;

/// A 5 s source window of a SYN port scan (the port_scan rule fires on it).
fn scan(key: &str) -> WindowRecord {
    let features = [
        ("packet_count", 1000.0),
        ("byte_count", 60_000.0),
        ("unique_dst_ports", 950.0),
        ("unique_dst_ips", 1.0),
        ("half_open_count", 940.0),
        ("tcp_count", 1000.0),
        ("tcp_syn_count", 1000.0),
        ("tcp_ack_count", 0.0),
    ];
    WindowRecord {
        v: wire::BATCH_FORMAT_VERSION,
        view: View::Source,
        key: key.into(),
        window_start: T0,
        window_size: 5,
        features: features.iter().map(|(k, v)| (k.to_string(), Some(*v))).collect(),
    }
}

fn start_nta(nats: &NatsServer, db: &TestDb, failpoint: Option<&str>) -> Child {
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default.nta-model");
    let mut cmd = Command::new(testkit::nta_bin());
    cmd.args(["run", "--target", "predictor", "--nats-url", &nats.url, "--database-url", &db.url])
        .args(["--metrics-addr", "127.0.0.1:0", "--model", model])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    match failpoint {
        Some(f) => cmd.env(predictor::service::FAILPOINT_ENV, f),
        None => cmd.env_remove(predictor::service::FAILPOINT_ENV),
    };
    cmd.spawn().expect("starting nta")
}

async fn count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

/// The `Nats-Msg-Id` of every message in NTA_ALERTS.
async fn alert_msg_ids(js: &jetstream::Context) -> Vec<String> {
    let mut stream = js.get_stream(bus::ALERTS_STREAM).await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut ids = Vec::new();
    if state.messages == 0 {
        return ids;
    }
    for seq in state.first_sequence..=state.last_sequence {
        let m = stream.get_raw_message(seq).await.unwrap();
        ids.push(m.headers.get("Nats-Msg-Id").expect("an alert event without Nats-Msg-Id").to_string());
    }
    ids
}

async fn crash_and_recover(failpoint: &str) {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").with_test_writer().try_init();
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let js = jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    let stream = bus::streams::ensure_windows_stream(&js, &Default::default()).await.unwrap();
    // Short ack_wait, so the windows the crashed process held come back quickly.
    let config = bus::streams::windows_consumer_config("nta-predictor", Duration::from_secs(2), 1000);
    stream.create_consumer(config).await.unwrap();
    for i in 0..SCANNERS {
        let w = scan(&format!("10.9.0.{i}"));
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", w.window_id().as_str());
        js.publish_with_headers(bus::window_subject(&w), h, w.encode().unwrap().into()).await.unwrap().await.unwrap();
    }

    let mut child = start_nta(&nats, &db, Some(failpoint));
    let status = wait_exit(&mut child, Duration::from_secs(60));
    assert!(!status.success(), "nta should have aborted at {failpoint}, got {status:?}");

    let c = db.client().await.unwrap();
    // One opened event per scanner of the first batch, committed before the abort.
    let events = count(&c, "SELECT count(*) FROM alert_events").await;
    assert!((1..=SCANNERS as i64).contains(&events), "{events} events");
    assert_eq!(count(&c, "SELECT count(*) FROM alert_events WHERE published_at IS NULL").await, events);
    let before = alert_msg_ids(&js).await.len() as i64;
    match failpoint {
        // Died before relaying: nothing on the stream yet.
        predictor::service::AFTER_ALERT_COMMIT => assert_eq!(before, 0),
        // Died after JetStream stored them, before marking: they will be sent again.
        _ => assert_eq!(before, events),
    }

    let mut child = start_nta(&nats, &db, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = format!(
        "SELECT count(*) FROM alert_events WHERE published_at IS NOT NULL HAVING count(*) = {SCANNERS} \
         AND count(*) = (SELECT count(*) FROM alert_events)"
    );
    while c.query_opt(&done, &[]).await.unwrap().is_none() {
        assert!(Instant::now() < deadline, "the outbox was not relayed after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    wait_exit(&mut child, Duration::from_secs(20));

    let ids = alert_msg_ids(&js).await;
    assert_eq!(ids.len(), SCANNERS, "{ids:?}");
    let want: BTreeSet<String> = c
        .query("SELECT id FROM alert_events", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| bus::alert_event_msg_id(r.get(0)))
        .collect();
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), want);
}

#[tokio::test]
async fn abort_between_commit_and_publish() {
    crash_and_recover(predictor::service::AFTER_ALERT_COMMIT).await;
}

#[tokio::test]
async fn abort_between_publish_and_mark() {
    crash_and_recover(predictor::service::AFTER_ALERT_PUBLISH).await;
}
