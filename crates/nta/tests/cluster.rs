//! NTA on a 3-node JetStream cluster (testkit::NatsCluster) with replicated streams: a replay
//! through agent -> ingestor/windower/predictor survives the SIGKILL of the NTA_PACKETS leader
//! (every frame stored once, windows equal to `nta analyze`, no alert doubled), and the cluster
//! files a user gets in infra/nats/cluster form a cluster that `nta streams` manages.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::NatsCluster;

/// (view, key, window_start, window_size).
type WindowId = (String, String, i64, i64);
/// Window -> feature values by name.
type Windows = BTreeMap<WindowId, BTreeMap<String, Option<f64>>>;

/// A few hundred thousand generated frames with a real port scan merged in (shifted into the
/// same minute), so that the predictor has alerts to open.
fn capture(dir: &Path, frames: usize) -> std::path::PathBuf {
    let generated = dir.join("generated.pcap");
    let out =
        nta().args(["bench", "gen-pcap", "--frames", &frames.to_string(), "-o"]).arg(&generated).output().unwrap();
    assert!(out.status.success(), "gen-pcap: {}", String::from_utf8_lossy(&out.stderr));
    // The scan starts 2023-07-04 06:44:50; generated traffic at 1_700_000_000 (2023-11-14).
    let scan = dir.join("scan.pcap");
    let shift = (1_700_000_005 - 1_688_453_090).to_string();
    let st = Command::new("editcap")
        .args(["-t", &shift])
        .arg(testkit::pcaps_dir().join("port_scan-syn-1000ports.pcap"))
        .arg(&scan)
        .status()
        .expect("editcap (installed with tshark)");
    assert!(st.success());
    let merged = dir.join("merged.pcap");
    let st = Command::new("mergecap").args(["-F", "pcap", "-w"]).arg(&merged).arg(&generated).arg(&scan).status();
    assert!(st.expect("mergecap (installed with tshark)").success());
    merged
}

fn frame_count(file: &Path) -> i64 {
    let out = Command::new("capinfos").args(["-c", "-M", "-T", "-r"]).arg(file).output().expect("capinfos");
    String::from_utf8_lossy(&out.stdout).split_whitespace().last().unwrap().parse().unwrap()
}

/// `nta analyze --format jsonl --features` as [`Windows`].
fn analyzed(file: &Path) -> Windows {
    let out = nta().arg("analyze").arg(file).args(["--format", "jsonl", "--features"]).output().unwrap();
    assert!(out.status.success(), "analyze: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let w: serde_json::Value = serde_json::from_str(l).unwrap();
            let id = (
                w["view"].as_str().unwrap().to_string(),
                w["src_ip"].as_str().unwrap().to_string(),
                w["window_start"].as_i64().unwrap(),
                w["window_size"].as_i64().unwrap(),
            );
            let features = w["features"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_f64())).collect();
            (id, features)
        })
        .collect()
}

/// `window_features`: (view, key, window_start, window_size) -> the row as JSON.
async fn stored_windows(db: &tokio_postgres::Client) -> BTreeMap<WindowId, serde_json::Value> {
    let rows = db
        .query(
            "SELECT view, key, extract(epoch FROM window_start)::int8, window_size::int8, to_jsonb(w)::text \
             FROM window_features w",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| ((r.get(0), r.get(1), r.get(2), r.get(3)), serde_json::from_str(r.get(4)).unwrap())).collect()
}

/// The features `expected` names, from a stored row (features without a column of their own
/// are kept in `extra`, jsonb); `None` when one is missing.
fn stored_features(
    row: &serde_json::Value,
    expected: &BTreeMap<String, Option<f64>>,
) -> Option<BTreeMap<String, Option<f64>>> {
    expected.keys().map(|n| Some((n.clone(), row.get(n).or_else(|| row["extra"].get(n))?.as_f64()))).collect()
}

/// Equal features, up to the last bits of a sum: some (e.g. `avg_subdomain_entropy`) add terms
/// in hash-map order, which differs between processes.
fn same(a: &BTreeMap<String, Option<f64>>, b: &BTreeMap<String, Option<f64>>) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((ka, va), (kb, vb))| {
            ka == kb
                && match (va, vb) {
                    (Some(x), Some(y)) => (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1.0),
                    _ => va == vb,
                }
        })
}

/// The leader of `stream` by its info, once it has one.
async fn stream_leader(js: &async_nats::jetstream::Context, stream: &str) -> Option<(String, u64)> {
    let mut s = js.get_stream(stream).await.ok()?;
    let info = s.info().await.ok()?;
    let leader = info.cluster.as_ref()?.leader.clone().filter(|l| !l.is_empty())?;
    Some((leader, info.state.messages))
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_survives_sigkill_of_the_packets_leader() {
    let mut dir = tempfile::tempdir().unwrap();
    let file = capture(dir.path(), 200_000);
    let frames = frame_count(&file);
    let expected = analyzed(&file);

    let mut cluster = NatsCluster::start(3).unwrap();
    let db = TestDb::create().await.unwrap();
    let client = db.client().await.unwrap();
    let urls = cluster.urls();
    let role_log = dir.path().join("roles.log");
    let metrics = format!("127.0.0.1:{}", free_port());
    let _roles = Role(
        nta()
            .args(["run", "--target", "ingestor,windower,predictor", "--nats-url", &urls, "--stream-replicas", "3"])
            .args(["--database-url", &db.url, "--metrics-addr", &metrics])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&role_log).unwrap())
            .spawn()
            .unwrap(),
    );
    // The agent starts once the roles are up, so that the node dies mid-replay (a role starting
    // during an election is not what this test is about).
    let nats = async_nats::connect(urls.split(',').collect::<Vec<_>>()).await.unwrap();
    let js = async_nats::jetstream::new(nats);
    let consumers = |name: &'static str| {
        let js = js.clone();
        async move { Some(js.get_stream(name).await.ok()?.info().await.ok()?.state.consumer_count) }
    };
    let up = wait_for(Duration::from_secs(90), || async {
        // Ingestor (packets and rollup) and windower; predictor.
        (consumers(bus::PACKETS_STREAM).await? >= 3 && consumers(bus::WINDOWS_STREAM).await? >= 1).then_some(())
    })
    .await;
    assert!(up.is_some(), "the roles did not start: {}", std::fs::read_to_string(&role_log).unwrap());
    let started = Instant::now();
    let agent_log = dir.path().join("agent.log");
    let mut agent = nta()
        .args(["run", "--target", "agent", "--agent-id", "r3", "--nats-url", &urls, "--stream-replicas", "3"])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port()), "--read"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&agent_log).unwrap())
        .spawn()
        .unwrap();

    // SIGKILL the node leading NTA_PACKETS a third of the way in; back 5 s later.
    let batches = (frames as u64).div_ceil(500);
    let (leader, at) = wait_for(Duration::from_secs(90), || async {
        stream_leader(&js, bus::PACKETS_STREAM).await.filter(|(_, n)| *n >= batches / 3)
    })
    .await
    .expect("NTA_PACKETS never got a third of the replay");
    let victim = cluster.index_of(&leader).unwrap();
    cluster.kill(victim);
    let killed_at = started.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (new_leader, _) = wait_for(Duration::from_secs(30), || stream_leader(&js, bus::PACKETS_STREAM))
        .await
        .expect("no new leader of NTA_PACKETS");
    assert_ne!(new_leader, leader);
    cluster.restart(victim).unwrap();

    let status = testkit::wait_exit(&mut agent, Duration::from_secs(120));
    let stderr = std::fs::read_to_string(&agent_log).unwrap();
    assert!(status.success(), "agent: {status:?}\n{stderr}");
    let summary = stderr.lines().find(|l| l.starts_with("agent:")).expect("agent summary");
    assert!(summary.ends_with(" 0 records dropped"), "{summary}");
    assert!(at < batches, "the node died after the replay ({at}/{batches} batches in)");
    eprintln!(
        "killed {leader} (NTA_PACKETS leader, {at}/{batches} batches in) at {killed_at:?}, {new_leader} took over; \
         agent done in {:?} with {} publications retried: {summary}",
        started.elapsed(),
        stderr.matches("publish failed").count()
    );

    let rows = wait_for(Duration::from_secs(60), || async {
        let n = count(&client, "SELECT count(*) FROM raw_packets").await;
        (n >= frames).then_some(n)
    })
    .await;
    assert_eq!(rows, Some(frames), "rows in raw_packets");
    // The windower publishes and stores what end-of-input closed before the predictor drains.
    let stored = wait_for(Duration::from_secs(60), || async {
        let w = stored_windows(&client).await;
        (w.len() >= expected.len()).then_some(w)
    })
    .await;
    if stored.is_none() {
        let w = stored_windows(&client).await;
        let missing: Vec<_> = expected.keys().filter(|k| !w.contains_key(*k)).collect();
        eprintln!("stored {} windows, {} missing: {:?}", w.len(), missing.len(), &missing[..missing.len().min(20)]);
    }
    let stored = stored.unwrap_or_else(|| {
        dir.disable_cleanup(true);
        panic!("fewer windows stored than `nta analyze` finds ({}); log in {}", expected.len(), role_log.display())
    });
    let differing: Vec<_> = expected
        .iter()
        .filter(|(k, v)| !stored.get(*k).and_then(|row| stored_features(row, v)).is_some_and(|s| same(v, &s)))
        .map(|(k, _)| k)
        .collect();
    if let Some(k) = differing.first() {
        let s = stored.get(*k).and_then(|r| stored_features(r, &expected[*k]));
        dir.disable_cleanup(true);
        eprintln!("{k:?}\n analyze {:?}\n stored  {s:?}\nlogs in {}", expected[*k], dir.path().display());
    }
    // 5 s source windows do not overlap: their packet counts add up to what the windower fed.
    let fed = |w: &dyn Fn(&WindowId) -> Option<f64>| -> f64 {
        expected.keys().filter(|k| k.0 == "source" && k.3 == 5).filter_map(w).sum()
    };
    let analyzed_packets = fed(&|k| expected[k]["packet_count"]);
    let stored_packets = fed(&|k| stored.get(k)?.get("packet_count")?.as_f64());
    if !differing.is_empty() {
        // What the windower says it fed, and dropped as late.
        let text = reqwest::get(format!("http://{metrics}/metrics")).await.unwrap().text().await.unwrap();
        text.lines().filter(|l| l.starts_with("nta_windower_") && l.contains("records")).for_each(|l| eprintln!("{l}"));
    }
    assert!(
        differing.is_empty(),
        "{} windows differ from nta analyze, e.g. {:?}; the windows hold {stored_packets} packets, \
         nta analyze's {analyzed_packets} (a batch is 500)",
        differing.len(),
        &differing[..3.min(differing.len())]
    );
    assert_eq!(stored.len(), expected.len(), "windows nta analyze does not find");

    let predictions = wait_for(Duration::from_secs(60), || async {
        let n = count(&client, "SELECT count(*) FROM predictions").await;
        (n == expected.len() as i64).then_some(n)
    })
    .await;
    assert_eq!(predictions, Some(expected.len() as i64), "every window predicted once");
    let alerts = count(&client, "SELECT count(*) FROM alerts").await;
    let distinct = count(&client, "SELECT count(DISTINCT (view, key, class, first_seen)) FROM alerts").await;
    assert!(alerts > 0, "the port scan raised no alert");
    assert_eq!(alerts, distinct, "an alert was doubled");
    let scan = count(&client, "SELECT count(*) FROM alerts WHERE key = '10.0.0.140' AND class = 'port_scan'").await;
    assert_eq!(scan, 1, "one port_scan alert for the scanner");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&client, "SELECT count(*) FROM raw_packets").await, frames, "late duplicates");
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_files_form_a_cluster_managed_by_nta_streams() {
    let root = testkit::workspace_root();
    let configs: Vec<String> =
        (1..=3).map(|n| std::fs::read_to_string(root.join(format!("infra/nats/cluster/n{n}.conf"))).unwrap()).collect();
    // The files' fixed ports (clients, routes, monitoring) move to free ones for the test.
    let cluster = NatsCluster::start_with_configs(&configs, &[4222, 4223, 4224, 6222, 6223, 6224, 8222, 8223, 8224])
        .expect("infra/nats/cluster/*.conf do not form a cluster");
    assert!(cluster.meta_leader().is_some());
    let urls = cluster.urls();
    let streams = |args: &[&str]| {
        let out = nta().args(["streams", "--nats-url", &urls]).args(args).output().unwrap();
        assert!(out.status.success(), "nta streams {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(streams(&[]).contains("NTA_PACKETS: does not exist"));

    // An agent creates NTA_PACKETS with one replica; a later one asking for 3 leaves it so and
    // says how to change it.
    let file = testkit::pcaps_dir().join("port_scan-nmap-syn.pcap");
    replay(&urls, &file, "one");
    let out = nta()
        .args(["run", "--target", "agent", "--agent-id", "three", "--stream-replicas", "3", "--nats-url", &urls])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port()), "--read"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("nta streams --replicas 3 --stream NTA_PACKETS"), "no replica warning: {stderr}");
    let before = streams(&[]);
    assert!(before.contains("NTA_PACKETS: 1 replica(s)"), "{before}");

    let changed = streams(&["--replicas", "3"]);
    assert!(changed.contains("NTA_PACKETS: replicas 1 -> 3"), "{changed}");
    assert!(changed.contains("NTA_WINDOWS: does not exist"), "{changed}");
    // The new followers catch up with the leader.
    let caught_up = wait_for(Duration::from_secs(30), || async {
        let s = streams(&[]);
        let line = s.lines().find(|l| l.starts_with("NTA_PACKETS:"))?.to_string();
        (line.starts_with("NTA_PACKETS: 3 replica(s), leader n") && line.matches(" current lag 0").count() == 2)
            .then_some(s)
    })
    .await;
    let report = caught_up.unwrap_or_else(|| streams(&[]));
    assert!(report.contains("current lag 0"), "followers never caught up: {report}");
}
