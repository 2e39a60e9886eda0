//! Several windower processes sharing the key partitions of one durable (real NATS JetStream
//! and PostgreSQL): together they store and publish exactly the offline path's windows; one of
//! them SIGKILLed mid-replay is taken over by the other (takeover time printed); a windower
//! group whose partition count changed resumes key by key from the old checkpoints.

mod common;
use common::*;
use std::net::IpAddr;
use std::path::Path;

const DURABLES_OF_2: [&str; 2] = ["nta-windower-0-of-2", "nta-windower-1-of-2"];

#[tokio::test]
#[ignore = "child process of the partition tests"]
async fn child_windower() {
    child_main().await
}

/// The partitions (`partition=i/n`) of the lines of a child's `log` that contain `event`, in
/// order.
fn logged(log: &Path, event: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(event))
        .filter_map(|l| l.split("partition=").nth(1).map(|p| p.split_whitespace().next().unwrap_or("").to_string()))
        .collect()
}

/// Partitions the windower logging to `log` took and has not handed back (a windower that
/// starts alone takes every partition and hands some back when the others register).
fn taken(log: &Path) -> Vec<String> {
    let mut held = logged(log, "took partition");
    for p in logged(log, "handing a partition back") {
        if let Some(i) = held.iter().position(|h| *h == p) {
            held.remove(i);
        }
    }
    held
}

/// A child windower killed when the test ends, passed or not.
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(nats: &NatsServer, db: &TestDb, partitions: u32, log: Option<&Path>) -> Proc {
    Proc(start_child_with(nats, db, None, partitions, log))
}

fn stop_child(child: &mut Proc) {
    let child = &mut child.0;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = wait_exit(child, Duration::from_secs(30));
    assert!(status.success(), "child windower exited with {status:?}");
}

#[tokio::test]
async fn two_windowers_share_the_partitions_and_equal_one() {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let js = jetstream(&nats).await;
    let data = batches();
    let expected = offline(&data, &WindowerConfig::default());
    assert_core_emits(&expected);
    publish_all(&js, &data).await;
    let dir = tempfile::tempdir().unwrap();
    let logs = [dir.path().join("a.log"), dir.path().join("b.log")];
    let mut a = start(&nats, &db, 2, Some(&logs[0]));
    let mut b = start(&nats, &db, 2, Some(&logs[1]));
    let client = db.client().await.unwrap();
    wait_all_stored(&expected, &client, Duration::from_secs(120)).await;
    wait_acked_by(&js, &DURABLES_OF_2).await;
    stop_child(&mut a);
    stop_child(&mut b);
    check_against(&expected, &client, &js).await;
    // Each process ran one partition (the first to start may hold both until the second
    // registers, then hands one back).
    let (ta, tb) = (taken(&logs[0]), taken(&logs[1]));
    assert!(!ta.is_empty() && !tb.is_empty(), "partitions taken: a {ta:?}, b {tb:?}");
    let cps = count(&client, "SELECT count(*) FROM windower_checkpoint WHERE durable LIKE 'nta-windower-%-of-2'").await;
    assert_eq!(cps, 2);
}

#[tokio::test]
async fn a_windower_killed_mid_replay_is_taken_over() {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let js = jetstream(&nats).await;
    let data = batches();
    let expected = offline(&data, &WindowerConfig::default());
    assert_core_emits(&expected);
    let half = data.len() / 2;
    publish_all(&js, &data[..half]).await;
    let dir = tempfile::tempdir().unwrap();
    let logs = [dir.path().join("a.log"), dir.path().join("b.log")];
    let mut a = start(&nats, &db, 2, Some(&logs[0]));
    // The first to start takes both partitions and hands one back once the second registers.
    wait_until("the first windower holds both partitions", Duration::from_secs(60), || async {
        taken(&logs[0]).len() == 2
    })
    .await;
    let mut b = start(&nats, &db, 2, Some(&logs[1]));
    let client = db.client().await.unwrap();
    // Both at work: each holds one partition and has stored windows.
    wait_until("each windower holds a partition", Duration::from_secs(120), || async {
        taken(&logs[0]).len() == 1 && taken(&logs[1]).len() == 1
    })
    .await;
    wait_until("both partitions checkpointed", Duration::from_secs(120), || async {
        count(&client, "SELECT count(*) FROM windower_checkpoint WHERE durable LIKE 'nta-windower-%-of-2'").await == 2
    })
    .await;
    let at_kill = count(&client, "SELECT count(*) FROM window_features").await;
    a.0.kill().unwrap(); // SIGKILL
    a.0.wait().unwrap();
    let killed_at = Instant::now();
    let lost = taken(&logs[0]).pop().unwrap();
    wait_until("the survivor takes the dead windower's partition", Duration::from_secs(30), || async {
        taken(&logs[1]).contains(&lost)
    })
    .await;
    let takeover = killed_at.elapsed();
    publish_all(&js, &data[half..]).await;
    wait_all_stored(&expected, &client, Duration::from_secs(120)).await;
    let caught_up = killed_at.elapsed();
    wait_acked_by(&js, &DURABLES_OF_2).await;
    stop_child(&mut b);
    eprintln!(
        "takeover: partition {lost} taken {:.2} s after the SIGKILL ({at_kill} of {} windows stored at the kill); \
         all windows stored {:.2} s after it",
        takeover.as_secs_f64(),
        expected.len(),
        caught_up.as_secs_f64()
    );
    assert!((at_kill as usize) < expected.len(), "the kill came after everything was stored");
    check_against(&expected, &client, &js).await;
}

#[tokio::test]
async fn changing_the_partition_count_resumes_key_by_key() {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let js = jetstream(&nats).await;
    let data = batches();
    let expected = offline(&data, &WindowerConfig::default());
    assert_core_emits(&expected);
    let client = db.client().await.unwrap();
    let (third, two_thirds) = (data.len() / 3, 2 * data.len() / 3);

    // One windower over the first third, then two partitions, then three.
    publish_all(&js, &data[..third]).await;
    let mut one = start(&nats, &db, 1, None);
    wait_until("some windows stored", Duration::from_secs(60), || async {
        count(&client, "SELECT count(*) FROM window_features").await > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_child(&mut one);

    publish_all(&js, &data[third..two_thirds]).await;
    let mut two = [start(&nats, &db, 2, None), start(&nats, &db, 2, None)];
    // Both partitions past the first 3 min window (T0 + 180), so both replay points moved on.
    wait_until("two partitions checkpointed past the single one", Duration::from_secs(60), || async {
        count(
            &client,
            &format!(
                "SELECT count(*) FROM windower_checkpoint n, windower_checkpoint o
                 WHERE n.durable LIKE 'nta-windower-%-of-2' AND o.durable = 'nta-windower'
                   AND n.closed_through_5 > o.closed_through_5 AND n.closed_through_180 >= {}",
                T0 as i64 + 180
            ),
        )
        .await
            == 2
    })
    .await;
    two.iter_mut().for_each(stop_child);

    publish_all(&js, &data[two_thirds..]).await;
    let mut three = start(&nats, &db, 3, None);
    wait_all_stored(&expected, &client, Duration::from_secs(120)).await;
    wait_acked_by(&js, &["nta-windower-0-of-3", "nta-windower-1-of-3", "nta-windower-2-of-3"]).await;
    stop_child(&mut three);
    check_against(&expected, &client, &js).await;
    // The last partitioning resumed from the previous one's checkpoints, not from the start
    // (the first third of the data closes no 3 min window: the second starts at the beginning).
    let stream = js.get_stream(bus::PACKETS_STREAM).await.unwrap();
    for durable in ["nta-windower-0-of-3", "nta-windower-1-of-3", "nta-windower-2-of-3"] {
        let policy = stream.consumer_info(durable).await.unwrap().config.deliver_policy;
        assert!(
            matches!(policy, jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence } if start_sequence > 1),
            "{durable} started at {policy:?}"
        );
    }
}

/// Throughput of one windower process against two sharing two partitions, on the same stream
/// (2 M records from 1 000 sources, already in NTA_PACKETS): records / time until every batch
/// is acknowledged. A benchmark, not a test (run in release):
/// `cargo test --release -p windower --test partitioned_service -- --ignored bench --nocapture`
#[tokio::test]
#[ignore = "benchmark"]
async fn bench_one_vs_two_windower_processes() {
    const RECORDS: usize = 2_000_000;
    let mut rng = Lcg(11);
    let mut data = Vec::new();
    let per_batch = 500;
    for (n, chunk) in (0..RECORDS).collect::<Vec<_>>().chunks(per_batch).enumerate() {
        let mut b = PacketBatch::new("bench", "boot", n as u64);
        for &i in chunk {
            let mut r = PacketRecord::new(T0 + i as f64 * 120.0 / RECORDS as f64, 60 + rng.below(1400) as u32);
            r.protocol = Protocol::Tcp;
            r.src_ip = Some(IpAddr::from([10, 0, (i % 1000 / 250) as u8, (i % 250) as u8]));
            r.dst_ip = Some(IpAddr::from([10, 1, 0, rng.below(200) as u8]));
            r.src_port = Some(1024 + rng.below(60000) as u16);
            r.dst_port = Some([22, 80, 443, 53][rng.below(4) as usize]);
            r.set_tcp_flags(if rng.below(5) == 0 { 0x02 } else { 0x18 });
            b.records.push(r);
        }
        data.push(b);
    }
    // Far ahead in event time: every window of the data closes, every batch but this is acked.
    let mut b = PacketBatch::new("bench", "boot", data.len() as u64);
    let mut r = PacketRecord::new(T0 + 1000.0, 60);
    r.protocol = Protocol::Udp;
    r.src_ip = ip(SENTINEL_SRC);
    r.dst_ip = ip(SENTINEL_DST);
    b.records.push(r);
    data.push(b);
    let mut rates = Vec::new();
    for processes in [1u32, 2] {
        let nats = NatsServer::start().unwrap();
        let db = TestDb::create().await.unwrap();
        let js = jetstream(&nats).await;
        publish_all(&js, &data).await;
        std::env::set_var(STEP_ENV, "256");
        let started = Instant::now();
        let mut children: Vec<_> = (0..processes).map(|_| start(&nats, &db, processes, None)).collect();
        let durables: Vec<String> =
            (0..processes).map(|i| store::windows::partition_durable("nta-windower", i, processes)).collect();
        let durables: Vec<&str> = durables.iter().map(String::as_str).collect();
        wait_until("the stream windowed", Duration::from_secs(600), || async {
            for d in &durables {
                let stream = js.get_stream(bus::PACKETS_STREAM).await.unwrap();
                match stream.consumer_info(*d).await {
                    Ok(i) if i.num_pending == 0 && i.num_ack_pending <= 1 => {}
                    _ => return false,
                }
            }
            true
        })
        .await;
        let secs = started.elapsed().as_secs_f64();
        children.iter_mut().for_each(stop_child);
        rates.push(RECORDS as f64 / secs);
        eprintln!(
            "{processes} windower process(es): {RECORDS} records in {secs:.2} s = {:.0} records/s",
            rates.last().unwrap()
        );
    }
    eprintln!("two processes / one: {:.2}x", rates[1] / rates[0]);
}
