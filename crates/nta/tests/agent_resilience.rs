//! The agent while NATS is away: it keeps capturing into its bounded queue, delivers everything
//! once NATS comes back, and when the queue overflows it drops the oldest batches and says so.

mod common;
use common::*;
use std::process::Stdio;
use std::time::Duration;

fn capture() -> std::path::PathBuf {
    testkit::pcaps_dir().join("port_scan-syn-1000ports.pcap")
}

/// Messages stored in NTA_PACKETS and the records they hold.
async fn stream_contents(nats_url: &str) -> (u64, usize) {
    let client = async_nats::connect(nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(bus::PACKETS_STREAM).await.unwrap();
    let msgs = stream.info().await.unwrap().state.messages;
    let mut records = 0;
    for seq in 1..=msgs {
        let m = stream.get_raw_message(seq).await.unwrap();
        records += wire::PacketBatch::decode(&m.payload).unwrap().records.len();
    }
    (msgs, records)
}

fn agent_cmd(port: u16, extra: &[&str]) -> std::process::Command {
    let mut c = nta();
    c.args(["run", "--target", "agent", "--agent-id", "late", "--nats-url", &format!("nats://127.0.0.1:{port}")])
        .arg("--read")
        .arg(capture())
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn delivers_everything_when_nats_comes_back() {
    let port = free_port();
    let agent = agent_cmd(port, &["--batch-size", "100"]).spawn().unwrap();
    // NATS is down while the whole file is read into the queue.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let nats = NatsServer::start_on(port).unwrap();
    let out = agent.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (msgs, records) = stream_contents(&nats.url).await;
    let frames = tshark_frame_count(&capture());
    assert_eq!(records, frames, "every frame delivered after the outage");
    // Every data batch plus the end-of-input marker.
    assert_eq!(msgs as usize, frames.div_ceil(100) + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn full_queue_drops_oldest_and_counts_it() {
    let port = free_port();
    // 50 kB budget, 10-record batches: the ~5 k-frame file (~250 kB encoded) cannot all wait.
    let agent = agent_cmd(port, &["--batch-size", "10", "--queue-mb", "0.05"]).spawn().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let nats = NatsServer::start_on(port).unwrap();
    let out = agent.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("agent:")).expect("summary");
    let dropped: usize =
        line.split("records dropped").next().unwrap().rsplit("; ").next().unwrap().trim().parse().unwrap();
    let (_, records) = stream_contents(&nats.url).await;
    let frames = tshark_frame_count(&capture());
    // Nothing vanishes silently: delivered + counted drops = every frame.
    assert_eq!(records + dropped, frames, "{line}");
    assert!(dropped > 0, "the queue should have overflowed: {line}");
}

fn sigterm(child: &std::process::Child) {
    let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_an_agent_waiting_for_nats_and_counts_what_it_drops() {
    // NATS never comes: before this was fixed, the agent ignored SIGTERM and SIGINT here.
    let mut agent = agent_cmd(free_port(), &["--batch-size", "100"]).spawn().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    sigterm(&agent);
    let status = testkit::wait_exit(&mut agent, Duration::from_secs(60));
    let out = agent.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("agent:")).expect("summary");
    let dropped: usize =
        line.split("records dropped").next().unwrap().rsplit("; ").next().unwrap().trim().parse().unwrap();
    assert_eq!(dropped, tshark_frame_count(&capture()), "every queued record counted as dropped: {line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_a_consumer_whose_nats_went_away() {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let mut ingestor = start_ingestor(&nats.url, &db.url, &[]);
    let client = db.client().await.unwrap();
    let migrated = wait_for(Duration::from_secs(60), || async {
        (count(&client, "SELECT count(*) FROM ingested_batches").await >= 0).then_some(())
    })
    .await;
    assert!(migrated.is_some(), "ingestor did not start");
    drop(nats);
    tokio::time::sleep(Duration::from_secs(1)).await;
    sigterm(&ingestor.0);
    // Generous: a clean stop takes well under a second, the forced one ~30 s.
    testkit::wait_exit(&mut ingestor.0, Duration::from_secs(90));
}
