//! Live capture on a veth pair whose far end lives in a private network namespace: traffic
//! generated there is captured by the agent and stored by the ingestor; two agents on two
//! namespaces feed one windower.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

struct Netns {
    name: String,
    host_if: String,
    peer_if: String,
    /// The host's end is `<subnet>.1/30`, the namespace's `<subnet>.2/30`.
    subnet: String,
}

impl Netns {
    /// A namespace under a tag no other test (of this or another process) holds: `ip netns
    /// add` fails when the name exists, so whoever creates it first owns the tag. Tags picked
    /// at random collided when two tests ran at once.
    fn create() -> Netns {
        let first = (std::process::id() % 250) as u16;
        let tag = (0..250)
            .map(|i| (first + i) % 250 + 1)
            .find(|tag| {
                Command::new("ip")
                    .args(["netns", "add", &format!("nta-t{tag}")])
                    .stderr(Stdio::null())
                    .status()
                    .unwrap()
                    .success()
            })
            .expect("a free network namespace name nta-t1..nta-t250");
        let name = format!("nta-t{tag}");
        let host_if = format!("ntah{tag}");
        let peer_if = format!("ntap{tag}");
        let sh = |args: &str| {
            let ok = Command::new("sh").arg("-c").arg(args).status().unwrap().success();
            assert!(ok, "failed: {args}");
        };
        let subnet = format!("10.213.{}", tag % 250);
        let ns =
            Netns { name: name.clone(), host_if: host_if.clone(), peer_if: peer_if.clone(), subnet: subnet.clone() };
        sh(&format!("ip link add {host_if} type veth peer name {peer_if}"));
        sh(&format!("ip link set {peer_if} netns {name}"));
        sh(&format!("ip addr add {subnet}.1/30 dev {host_if} && ip link set {host_if} up"));
        sh(&format!(
            "ip netns exec {name} sh -c 'ip addr add {subnet}.2/30 dev {peer_if} && ip link set {peer_if} up && ip link set lo up'"
        ));
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.host_if]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn traffic_on_a_veth_is_captured_and_stored() {
    // Creating namespaces needs root (CAP_NET_ADMIN); CI runs as root.
    if unsafe_geteuid() != 0 {
        panic!("live capture test needs root (CAP_NET_ADMIN/CAP_NET_RAW)");
    }
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let ns = Netns::create();
    let subnet = ns.subnet.clone();
    let _ingestor = start_ingestor(&nats.url, &db.url, &[]);
    let metrics_port = free_port();
    let _agent = Role(
        nta()
            .args(["run", "--target", "agent", "--agent-id", "live", "--nats-url", &nats.url])
            .args(["--interface", &ns.host_if, "--batch-timeout-ms", "200"])
            .args(["--bpf", &format!("net {subnet}.0/30")])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    // ICMP echo both ways and a UDP datagram from the namespace.
    let ping = Command::new("ip")
        .args(["netns", "exec", &ns.name, "ping", "-c", "5", "-i", "0.2", &format!("{subnet}.1")])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(ping.success());
    let udp = Command::new("ip")
        .args(["netns", "exec", &ns.name, "bash", "-c", &format!("echo hello > /dev/udp/{subnet}.1/9999")])
        .status()
        .unwrap();
    assert!(udp.success());

    let client = db.client().await.unwrap();
    let sql = format!(
        "SELECT count(*) FROM raw_packets WHERE agent_id = 'live' AND interface = '{}' AND \
         ((protocol = 'ICMP' AND src_ip = '{subnet}.2' AND icmp_type = 8) OR \
          (protocol = 'UDP' AND dst_port = 9999 AND src_ip = '{subnet}.2'))",
        ns.host_if
    );
    let got = wait_for(Duration::from_secs(30), || async {
        let n = count(&client, &sql).await;
        (n >= 6).then_some(n)
    })
    .await;
    assert_eq!(got, Some(6), "5 echo requests and 1 UDP datagram stored");
    let replies = count(
        &client,
        &format!(
            "SELECT count(*) FROM raw_packets WHERE protocol = 'ICMP' AND icmp_type = 0 AND dst_ip = '{subnet}.2'"
        ),
    )
    .await;
    assert_eq!(replies, 5, "echo replies captured too");

    // The agent's Prometheus endpoint tells the same story, kernel counters included. The
    // agent reads libpcap's counters once a second: wait for the reading after the last frame.
    let value_in = |metrics: &str, name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{metrics}"))
    };
    let metrics = wait_for(Duration::from_secs(10), || async {
        let metrics = scrape(metrics_port);
        (value_in(&metrics, "nta_agent_kernel_received_packets_total") >= 11.0).then_some(metrics)
    })
    .await
    .expect("libpcap's received counter reaches the 11 frames");
    let value = |name: &str| value_in(&metrics, name);
    assert!(value("nta_agent_frames_captured_total") >= 11.0);
    assert!(value("nta_agent_records_acked_total") >= 11.0);
    assert!(value("nta_agent_kernel_received_packets_total") >= 11.0);
    assert_eq!(value("nta_agent_kernel_dropped_packets_total"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_a_live_agent_on_a_quiet_interface() {
    if unsafe_geteuid() != 0 {
        panic!("live capture test needs root (CAP_NET_ADMIN/CAP_NET_RAW)");
    }
    let nats = NatsServer::start().unwrap();
    let ns = Netns::create();
    // No traffic passes the filter: libpcap's read waits for a frame that never comes. Before
    // the capture was woken on stop, the agent then only ended at `nta run`'s forced exit
    // (status 130, no summary).
    let mut agent = nta()
        .args(["run", "--target", "agent", "--agent-id", "quiet", "--nats-url", &nats.url])
        .args(["--interface", &ns.host_if, "--bpf", "udp port 7"])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(Command::new("kill").args(["-TERM", &agent.id().to_string()]).status().unwrap().success());
    let status = testkit::wait_exit(&mut agent, Duration::from_secs(90));
    let out = agent.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("agent: 0 frames")), "{stderr}");
}

/// Two namespaces, each captured live by its own agent, send to the same multicast group: the
/// windower merges both agents' packets into the group's destination windows (every window's
/// packet count equals the stored packets of both agents), and once one agent stops, the other
/// keeps closing windows after the idle-agent timeout instead of waiting for it.
#[tokio::test(flavor = "multi_thread")]
async fn two_live_agents_feed_one_windower() {
    if unsafe_geteuid() != 0 {
        panic!("live capture test needs root (CAP_NET_ADMIN/CAP_NET_RAW)");
    }
    const GROUP: &str = "239.7.7.7";
    const IDLE_S: u64 = 3;
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let nss = [Netns::create(), Netns::create()];
    for ns in &nss {
        let ok = Command::new("ip")
            .args(["netns", "exec", &ns.name, "ip", "route", "add", "239.0.0.0/8", "dev", &ns.peer_if])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    let _ingestor = start_ingestor(&nats.url, &db.url, &[]);
    let _windower = Role(
        nta()
            .args(["run", "--target", "windower", "--nats-url", &nats.url, "--database-url", &db.url])
            .args(["--idle-agent-timeout-s", &IDLE_S.to_string(), "--allowed-lateness-ms", "500"])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let agent = |id: &str, ns: &Netns| {
        nta()
            .args(["run", "--target", "agent", "--agent-id", id, "--nats-url", &nats.url])
            .args(["--interface", &ns.host_if, "--batch-timeout-ms", "200", "--bpf", &format!("dst host {GROUP}")])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut left = Role(agent("left", &nss[0]));
    let _right = Role(agent("right", &nss[1]));
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A datagram to the group about every 100 ms from each namespace: 80 from the left one, 300
    // from the right one (which goes on for 20 s after the left one stopped).
    let send = |ns: &Netns, n: u32| {
        Command::new("ip")
            .args(["netns", "exec", &ns.name, "bash", "-c"])
            .arg(format!("for i in $(seq {n}); do echo x > /dev/udp/{GROUP}/9999; sleep 0.1; done"))
            .spawn()
            .unwrap()
    };
    let mut senders = [send(&nss[0], 80), send(&nss[1], 300)];
    senders[0].wait().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(Command::new("kill").args(["-TERM", &left.0.id().to_string()]).status().unwrap().success());
    testkit::wait_exit(&mut left.0, Duration::from_secs(30));
    let stopped = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();

    // While the right agent still sends, windows after the left one went idle close.
    let client = db.client().await.unwrap();
    let after_idle = format!(
        "SELECT count(*) FROM window_features WHERE view = 'destination' AND key = '{GROUP}' AND window_size = 5
         AND extract(epoch FROM window_start) >= {}",
        stopped + IDLE_S as f64
    );
    let closed =
        wait_for(Duration::from_secs(16), || async { (count(&client, &after_idle).await > 0).then_some(()) }).await;
    let right_still_sending = senders[1].try_wait().unwrap().is_none();
    if closed.is_none() {
        for sql in [
            "SELECT count(*) FROM raw_packets WHERE agent_id = 'left'".to_string(),
            "SELECT count(*) FROM raw_packets WHERE agent_id = 'right'".to_string(),
            "SELECT count(*) FROM window_features".to_string(),
            format!("SELECT max(extract(epoch FROM window_start))::int8 FROM window_features WHERE key = '{GROUP}'"),
        ] {
            eprintln!("{sql}: {}", count(&client, &sql).await);
        }
        eprintln!("stopped at {stopped}");
    }
    assert!(closed.is_some(), "no window closed after the stopped agent's idle timeout");
    assert!(right_still_sending, "the window closed only once every agent was idle");
    senders[1].wait().unwrap();

    // Every 5 s window of the group counts exactly the stored packets of both agents.
    let windows_match = wait_for(Duration::from_secs(30), || async {
        let rows = client
            .query(
                &format!(
                    "SELECT extract(epoch FROM w.window_start)::int8, w.packet_count::int8,
                            (SELECT count(*) FROM raw_packets p WHERE p.dst_ip = '{GROUP}'
                              AND p.ts >= w.window_start AND p.ts < w.window_end),
                            (SELECT count(DISTINCT agent_id) FROM raw_packets p WHERE p.dst_ip = '{GROUP}'
                              AND p.ts >= w.window_start AND p.ts < w.window_end)
                     FROM window_features w
                     WHERE w.view = 'destination' AND w.key = '{GROUP}' AND w.window_size = 5
                     ORDER BY 1"
                ),
                &[],
            )
            .await
            .ok()?;
        // Every packet before the end of the last closed window is in a window (the window of
        // the right agent's last packets stays open: a live agent never says its input ended).
        let stored = count(
            &client,
            &format!(
                "SELECT count(*) FROM raw_packets WHERE dst_ip = '{GROUP}' AND ts < (SELECT max(window_end)
                 FROM window_features WHERE view = 'destination' AND key = '{GROUP}' AND window_size = 5)"
            ),
        )
        .await;
        let in_windows: i64 = rows.iter().map(|r| r.get::<_, i64>(1)).sum();
        (stored >= 200 && in_windows == stored).then_some(rows)
    })
    .await
    .expect("every stored packet of the group in a closed window");
    for r in &windows_match {
        let (start, in_window, stored): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
        assert_eq!(in_window, stored, "window at {start}: packet_count {in_window}, stored {stored}");
    }
    assert!(windows_match.iter().any(|r| r.get::<_, i64>(3) == 2), "no window merged both agents");
}

fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics endpoint");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

fn unsafe_geteuid() -> u32 {
    // Avoids a libc dependency for one call: /proc tells the effective uid.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2)?.parse().ok()))
        .unwrap_or(u32::MAX)
}
