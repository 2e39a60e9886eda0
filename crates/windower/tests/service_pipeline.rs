//! The windower service against real NATS JetStream and PostgreSQL (private instances, nothing
//! mocked): windows in `window_features` and on NTA_WINDOWS equal the offline path's, exactly
//! once, across graceful restarts, SIGKILL and failpoint aborts; poison messages are
//! dead-lettered without stopping the pipeline.
//!
//! The crash tests run the service in a child process: this test binary itself, started with
//! the ignored test `child_windower` selected and `NTA_WSVC_CHILD=1` (no dependency on how the
//! `nta` binary wires its roles).

mod common;
use common::*;

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn windows_equal_the_offline_path_exactly_once() {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let js = jetstream(&nats).await;
    let data = batches();
    let cfg = config(&nats, &db);
    let expected = offline(&data, &cfg.windower);
    assert_core_emits(&expected);
    publish_all(&js, &data).await;

    let running = spawn(cfg);
    let client = db.client().await.unwrap();
    wait_all_stored(&expected, &client, Duration::from_secs(120)).await;
    wait_acked(&js).await;
    running.stop().await;
    check_against(&expected, &client, &js).await;
    let cp = count(&client, "SELECT closed_through_180 FROM windower_checkpoint WHERE durable = 'nta-windower'").await;
    assert!(cp >= T0 as i64 + 360, "checkpoint {cp}");
}

/// Stops (gracefully) half-way through, restarts: same windows, none twice. Then publishes
/// nothing new and restarts again: nothing is emitted again.
#[tokio::test]
async fn graceful_restart_mid_stream() {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let js = jetstream(&nats).await;
    let data = batches();
    let cfg = config(&nats, &db);
    let expected = offline(&data, &cfg.windower);
    assert_core_emits(&expected);
    let client = db.client().await.unwrap();

    // First half of the traffic, then stop.
    let half = data.len() / 2;
    publish_all(&js, &data[..half]).await;
    let running = spawn(cfg.clone());
    wait_until("some windows stored", Duration::from_secs(60), || async {
        count(&client, "SELECT count(*) FROM window_features").await > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.stop().await;
    let (_, held) = consumer_state(&js, "nta-windower").await;
    assert!(held > 0, "open windows must keep their batches unacknowledged");

    publish_all(&js, &data[half..]).await;
    let running = spawn(cfg.clone());
    wait_all_stored(&expected, &client, Duration::from_secs(120)).await;
    wait_acked(&js).await;
    running.stop().await;
    check_against(&expected, &client, &js).await;

    let before = published(&js).await.len();
    let running = spawn(cfg);
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.stop().await;
    assert_eq!(published(&js).await.len(), before, "a restart re-published windows");
    check_against(&expected, &client, &js).await;
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_and_the_pipeline_goes_on() {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let js = jetstream(&nats).await;
    let data = batches();
    let cfg = config(&nats, &db);
    let expected = offline(&data, &cfg.windower);
    assert_core_emits(&expected);

    let third = data.len() / 3;
    publish_all(&js, &data[..third]).await;
    publish_raw(&js, "nta.packets.agent-0", "poison-1", b"\x93not a batch".to_vec()).await;
    let mut newer = PacketBatch::new("agent-1", "boot9", 0);
    newer.v = 99;
    publish_raw(&js, "nta.packets.agent-1", "poison-2", newer.encode().unwrap()).await;
    let mut bad_ts = PacketBatch::new("agent-0", "boot9", 1);
    bad_ts.records.push(PacketRecord::new(f64::NAN, 60));
    publish_raw(&js, "nta.packets.agent-0", "poison-3", bad_ts.encode().unwrap()).await;
    // Valid, but published on another agent's subject than its id's: forged.
    let mut forged = PacketBatch::new("agent-0", "boot9", 2);
    forged.records.push(data[0].records[0].clone());
    publish_raw(&js, "nta.packets.agent-1", "poison-4", forged.encode().unwrap()).await;
    publish_all(&js, &data[third..]).await;

    let running = spawn(cfg);
    let client = db.client().await.unwrap();
    wait_all_stored(&expected, &client, Duration::from_secs(120)).await;
    wait_acked(&js).await;
    running.stop().await;
    check_against(&expected, &client, &js).await;

    let mut dl = js.get_stream(bus::DEADLETTER_STREAM).await.unwrap();
    assert_eq!(dl.info().await.unwrap().state.messages, 4);
    let mut subjects = Vec::new();
    for seq in 1..=4 {
        let m = dl.get_raw_message(seq).await.unwrap();
        let reason = m.headers.get(bus::DEADLETTER_REASON_HEADER).expect("reason header").to_string();
        assert!(!reason.is_empty());
        subjects.push(m.headers.get(bus::DEADLETTER_SUBJECT_HEADER).unwrap().to_string());
    }
    assert_eq!(subjects, ["nta.packets.agent-0", "nta.packets.agent-1", "nta.packets.agent-0", "nta.packets.agent-1"]);
}

/// Messages deleted from the stream before the windower read them (a gap in the stream
/// sequence that no delivery will fill) are passed over: the windows are those of the
/// batches left, and the windower neither stalls nor restarts in a loop.
#[tokio::test]
async fn messages_deleted_before_reading_are_passed_over() {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let js = jetstream(&nats).await;
    let mut data = batches();
    publish_all(&js, &data).await;
    let stream = js.get_stream(bus::PACKETS_STREAM).await.unwrap();
    // Stream sequences are 1-based in publication order; delete 3 batches mid-stream.
    for seq in [101u64, 102, 250] {
        assert!(stream.delete_message(seq).await.unwrap());
    }
    for i in [249usize, 101, 100] {
        data.remove(i);
    }
    let cfg = config(&nats, &db);
    let expected = offline(&data, &cfg.windower);
    assert_core_emits(&expected);
    let running = spawn(cfg);
    let client = db.client().await.unwrap();
    wait_all_stored(&expected, &client, Duration::from_secs(120)).await;
    wait_acked(&js).await;
    running.stop().await;
    check_against(&expected, &client, &js).await;
}

// ---------------------------------------------------------------------------------------------
// Crash tests (child processes)

/// Entry point of the child process (selected explicitly by the crash tests).
#[tokio::test]
#[ignore = "child process of the crash tests"]
async fn child_windower() {
    child_main().await
}

/// Replays the stream in a child that dies (failpoint abort; or SIGKILL once `kill_after`
/// windows are stored, with only the first half of the stream published so that the kill
/// always comes before the end), restarts it, and compares with the offline path.
async fn crash_and_recover(failpoint: Option<&str>, kill_after: i64) {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let js = jetstream(&nats).await;
    let data = batches();
    let expected = offline(&data, &WindowerConfig::default());
    assert_core_emits(&expected);
    let half = data.len() / 2;
    let first = if failpoint.is_some() { data.len() } else { half };
    publish_all(&js, &data[..first]).await;
    let client = db.client().await.unwrap();

    let mut child = start_child(&nats, &db, failpoint);
    if failpoint.is_some() {
        let status = wait_exit(&mut child, Duration::from_secs(120));
        assert!(!status.success(), "the child should have aborted at {failpoint:?}, got {status:?}");
    } else {
        let start = Instant::now();
        while count(&client, "SELECT count(*) FROM window_features").await < kill_after {
            assert!(start.elapsed() < Duration::from_secs(120), "no windows stored before the kill");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let at_crash = count(&client, "SELECT count(*) FROM window_features").await.max(0);
    assert!(
        (at_crash as usize) < expected.len(),
        "the crash came after everything was stored ({at_crash} rows); the test proves nothing"
    );
    let (_, held) = consumer_state(&js, "nta-windower").await;
    eprintln!("crash ({failpoint:?}): {at_crash} of {} windows stored, {held} batches unacked", expected.len());
    assert!(held > 0, "the dead windower held no batch");
    publish_all(&js, &data[first..]).await;

    let mut child = start_child(&nats, &db, None);
    wait_all_stored(&expected, &client, Duration::from_secs(180)).await;
    wait_acked(&js).await;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert!(status.success(), "child windower exited with {status:?}");
    check_against(&expected, &client, &js).await;
}

#[tokio::test]
async fn sigkill_mid_replay() {
    crash_and_recover(None, 200).await;
}

#[tokio::test]
async fn abort_after_store_before_ack() {
    crash_and_recover(Some("after_store:5"), 0).await;
}

#[tokio::test]
async fn abort_after_publish_before_store() {
    crash_and_recover(Some("after_publish:5"), 0).await;
}

/// A real capture with ~9.6 k spoofed single-packet sources (the shared SYN flood), replayed
/// through the service as the agent would batch it: the same windows as the offline path.
#[tokio::test]
async fn real_capture_with_spoofed_sources_equals_offline() {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let js = jetstream(&nats).await;
    let records = agent::records_from_file(&testkit::pcaps_dir().join("syn_flood-ecn-cwr.pcapng")).unwrap();
    let last = records.iter().map(|r| r.timestamp).fold(0.0, f64::max);
    let mut data: Vec<PacketBatch> = records
        .chunks(500)
        .enumerate()
        .map(|(i, c)| {
            let mut b = PacketBatch::new("flood", "boot", i as u64);
            b.records = c.to_vec();
            b
        })
        .collect();
    // A sentinel far ahead pushes the watermark past every window of the capture.
    let mut s = PacketRecord::new(last + 1000.0, 60);
    s.src_ip = ip(SENTINEL_SRC);
    s.dst_ip = ip(SENTINEL_DST);
    s.protocol = Protocol::Udp;
    let mut b = PacketBatch::new("flood", "boot", data.len() as u64);
    b.records = vec![s];
    data.push(b);
    let cfg = config(&nats, &db);
    let expected = offline(&data, &cfg.windower);
    assert!(expected.len() > 9_000, "offline windows {}", expected.len());
    publish_all(&js, &data).await;
    let running = spawn(cfg);
    let client = db.client().await.unwrap();
    wait_all_stored(&expected, &client, Duration::from_secs(120)).await;
    running.stop().await;
    check_against(&expected, &client, &js).await;
}
