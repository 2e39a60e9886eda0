//! Operational robustness of separately started roles: start-up before NATS, default metrics
//! addresses on one host, a packet stream too small for the replay, permanent publish errors.

mod common;
use common::*;
use std::process::Stdio;
use std::time::Duration;

fn capture() -> std::path::PathBuf {
    testkit::pcaps_dir().join("port_scan-syn-1000ports.pcap")
}

/// A role process whose log goes to a file (a pipe nobody reads would block it).
struct Logged {
    role: Role,
    log: tempfile::NamedTempFile,
}

impl Logged {
    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap()
    }

    fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.role.0.try_wait().unwrap() {
            panic!("{what} exited ({status}):\n{}", self.log());
        }
    }
}

/// `nta run --target ROLE` against `nats_url` and `db_url`.
fn role(target: &str, nats_url: &str, db_url: &str, extra: &[&str]) -> Logged {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut c = nta();
    c.args(["run", "--target", target, "--nats-url", nats_url, "--database-url", db_url])
        .args(extra)
        .env("NTA_LOG", "info,async_nats=off")
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap());
    Logged { role: Role(c.spawn().unwrap_or_else(|e| panic!("starting {target}: {e}"))), log }
}

async fn scrape(port: u16) -> Option<String> {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.ok()?.text().await.ok()
}

/// The value of `metric` (full name with labels) in the exposition `text`.
fn metric(text: &str, metric: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(metric)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_started_before_nats_wait_for_it_and_then_work() {
    let db = TestDb::create().await.unwrap();
    let nats_port = free_port();
    let nats_url = format!("nats://127.0.0.1:{nats_port}");
    let metrics: Vec<(&str, u16)> = ["ingestor", "windower", "predictor"].iter().map(|r| (*r, free_port())).collect();
    let mut roles: Vec<Logged> = metrics
        .iter()
        .map(|(r, port)| role(r, &nats_url, &db.url, &["--metrics-addr", &format!("127.0.0.1:{port}")]))
        .collect();
    // Longer than one JetStream request timeout: before, the roles exited here.
    tokio::time::sleep(Duration::from_secs(12)).await;
    for ((name, port), r) in metrics.iter().zip(roles.iter_mut()) {
        r.assert_running(name);
        let text = scrape(*port).await.unwrap_or_default();
        assert_eq!(metric(&text, &format!("nta_ready{{role=\"{name}\"}}")), Some(0.0), "{name}:\n{text}");
    }
    let nats = NatsServer::start_on(nats_port).unwrap();
    for (name, port) in &metrics {
        let ready = wait_for(Duration::from_secs(30), || async {
            let text = scrape(*port).await?;
            (metric(&text, &format!("nta_ready{{role=\"{name}\"}}")) == Some(1.0)).then_some(())
        })
        .await;
        assert!(ready.is_some(), "{name} not ready after NATS came up");
    }
    replay(&nats.url, &capture(), "late-nats");
    let client = db.client().await.unwrap();
    let frames = tshark_frame_count(&capture()) as i64;
    let stored = wait_for(Duration::from_secs(60), || async {
        let n = count(&client, "SELECT count(*) FROM raw_packets").await;
        (n == frames).then_some(n)
    })
    .await;
    assert_eq!(stored, Some(frames), "every frame stored");
    let windows = wait_for(Duration::from_secs(60), || async {
        let n = count(&client, "SELECT count(*) FROM predictions").await;
        (n > 0).then_some(n)
    })
    .await;
    assert!(windows.is_some(), "windows closed and predicted");
    for r in &roles {
        // bus::startup's line, or the stream creation's own retry (bus::streams::admin) when
        // NATS comes up within it.
        let log = r.log();
        let logged = log.contains("waiting for NATS JetStream") || log.contains("JetStream not answering");
        assert!(logged, "the wait is logged:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_role_runs_as_its_own_process_with_default_metrics_addresses() {
    let db = TestDb::create().await.unwrap();
    let nats = NatsServer::start().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut roles = [
        ("ingestor", role("ingestor", &nats.url, &db.url, &[])),
        ("windower", role("windower", &nats.url, &db.url, &[])),
        // A second windower of the same durable waits for the first; it must not exit either.
        ("second windower", role("windower", &nats.url, &db.url, &[])),
        ("predictor", role("predictor", &nats.url, &db.url, &[])),
        ("dashboard", role("dashboard", &nats.url, &db.url, &["--listen", &listen])),
    ];
    let agent = nta()
        .args(["run", "--target", "agent", "--agent-id", "defaults", "--nats-url", &nats.url, "--read"])
        .arg(capture())
        .output()
        .unwrap();
    assert!(agent.status.success(), "agent: {}", String::from_utf8_lossy(&agent.stderr));
    let client = db.client().await.unwrap();
    let frames = tshark_frame_count(&capture()) as i64;
    let stored = wait_for(Duration::from_secs(60), || async {
        (count(&client, "SELECT count(*) FROM raw_packets").await == frames).then_some(())
    })
    .await;
    assert!(stored.is_some(), "the separately started pipeline stored the replay");
    for (name, r) in roles.iter_mut() {
        r.assert_running(name);
    }
    // Whoever got the windower's default port, the other windower fell back to an ephemeral
    // one (unless something else on this host holds the default: then both did).
    let logs: Vec<String> = roles[1..3].iter().map(|(_, r)| r.log()).collect();
    let fallbacks = logs.iter().filter(|l| l.contains("ephemeral port")).count();
    assert!(fallbacks >= 1, "a windower should have said where its metrics went:\n{}\n{}", logs[0], logs[1]);
}

/// Records in the replay's summary line: `agent: ... ; N records dropped (...)`.
fn dropped_in_summary(stderr: &str) -> (usize, String) {
    let line = stderr.lines().find(|l| l.starts_with("agent:")).expect("summary").to_string();
    let n = line.split(" records dropped").next().unwrap().rsplit("; ").next().unwrap().trim().parse().unwrap();
    (n, line)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_smaller_than_the_replay_stores_or_counts_every_frame() {
    let db = TestDb::create().await.unwrap();
    let nats = NatsServer::start().unwrap();
    // 100 kB of stream for ~5 k frames: most of the replay cannot be kept.
    let small = ["--stream-max-gb", "0.0001"];
    let _ingestor = role("ingestor", &nats.url, &db.url, &small);
    let out = nta()
        .args(["run", "--target", "agent", "--agent-id", "small", "--nats-url", &nats.url, "--batch-size", "100"])
        .args(small)
        .env("NTA_AGENT_DRAIN_GRACE_S", "1")
        .arg("--read")
        .arg(capture())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a full stream is not an error: {stderr}");
    let (dropped, line) = dropped_in_summary(&stderr);
    assert!(line.contains("stream_full"), "{line}");
    assert!(stderr.contains("is full and refuses batches"), "logged: {stderr}");
    let client = db.client().await.unwrap();
    let frames = tshark_frame_count(&capture());
    // The ingestor is done when what the stream holds is stored; nothing else will arrive.
    let stored = wait_for(Duration::from_secs(60), || async {
        let n = count(&client, "SELECT count(*) FROM raw_packets").await as usize;
        (n > 0 && n + dropped == frames).then_some(n)
    })
    .await;
    let n = count(&client, "SELECT count(*) FROM raw_packets").await;
    assert!(stored.is_some(), "stored {n} + dropped {dropped} != {frames} frames ({line})");
    assert!(dropped > 0, "{line}");
}

/// Replays into a server whose `NTA_PACKETS` was set up (`setup`) so that publishing fails
/// for good; the agent must exit non-zero with a message containing `expect`.
async fn replay_fails_with(setup: async_nats::jetstream::stream::Config, expect: &str) {
    let nats = NatsServer::start().unwrap();
    let js = async_nats::jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    js.create_stream(setup).await.unwrap();
    replay_fails_on(&nats.url, expect);
}

fn replay_fails_on(nats_url: &str, expect: &str) {
    let capture = capture();
    let read = ["--agent-id", "doomed", "--read", capture.to_str().unwrap()];
    let mut agent = role("agent", nats_url, "postgres://unused", &read);
    let status = testkit::wait_exit(&mut agent.role.0, Duration::from_secs(60));
    let err = agent.log();
    assert!(!status.success(), "the replay should fail: {err}");
    assert!(err.contains(expect) && err.contains("the replay stopped"), "message: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_stops_on_a_permanent_publish_error() {
    use async_nats::jetstream::stream::Config;
    // Batches larger than the stream accepts: JetStream error 10054, never cured by waiting.
    let tiny_messages = Config {
        name: bus::PACKETS_STREAM.into(),
        subjects: vec!["nta.packets.>".into()],
        max_message_size: 64,
        ..Default::default()
    };
    replay_fails_with(tiny_messages, "JetStream refused a batch").await;
    // A stream of that name that does not store the agent's subject: no stream answers.
    let elsewhere =
        Config { name: bus::PACKETS_STREAM.into(), subjects: vec!["elsewhere.>".into()], ..Default::default() };
    replay_fails_with(elsewhere, "no JetStream stream stores subject").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_stops_when_nats_denies_its_subject() {
    // The JetStream API is allowed (the stream gets created), the agent's subject is not: the
    // publication only times out, the reason comes as a server error on the connection.
    let conf = r#"
        authorization {
          users = [
            { user: agent, password: secret,
              permissions: { publish: { allow: ["$JS.API.>"] }, subscribe: { allow: ["_INBOX.>"] } } }
          ]
        }
    "#;
    let nats = NatsServer::start_with_config(conf, &[]).unwrap();
    replay_fails_on(&format!("nats://agent:secret@127.0.0.1:{}", nats.port), "does not let this agent publish");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_packet_stream_that_discards_old_messages_is_warned_about() {
    use async_nats::jetstream::stream::{Config, DiscardPolicy};
    let nats = NatsServer::start().unwrap();
    let js = async_nats::jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    // As an earlier release created it.
    let old = Config {
        name: bus::PACKETS_STREAM.into(),
        subjects: vec!["nta.packets.>".into()],
        discard: DiscardPolicy::Old,
        ..Default::default()
    };
    js.create_stream(old).await.unwrap();
    let capture = capture();
    let mut agent =
        role("agent", &nats.url, "postgres://unused", &["--agent-id", "old", "--read", capture.to_str().unwrap()]);
    let status = testkit::wait_exit(&mut agent.role.0, Duration::from_secs(60));
    assert!(status.success(), "{}", agent.log());
    assert!(agent.log().contains("discards its oldest messages when full"), "{}", agent.log());
    // The stream is left as configured.
    let info = js.get_stream(bus::PACKETS_STREAM).await.unwrap().cached_info().clone();
    assert_eq!(info.config.discard, DiscardPolicy::Old);
}
