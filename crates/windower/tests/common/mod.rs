//! Shared by the windower service tests: synthetic traffic of two agents, the offline
//! reference, services in-process or as child processes, and the checks against the offline path.
#![allow(dead_code)]

pub use async_nats::jetstream::{self, consumer::pull};
pub use futures::StreamExt;
pub use std::collections::{BTreeMap, HashMap, HashSet};
pub use std::net::IpAddr;
pub use std::process::{Child, Command, Stdio};
pub use std::sync::Arc;
pub use std::time::{Duration, Instant};
pub use testkit::{wait_exit, wait_until, NatsServer, TestDb};
pub use windower::service::{self, WindowerServiceConfig, FEATURE_COLUMNS};
pub use windower::{Windower, WindowerConfig};
pub use wire::{PacketBatch, PacketRecord, Protocol, WindowRecord};

/// 2026-01-01T00:00:00Z, a multiple of 180.
pub const T0: f64 = 1_767_225_600.0;
/// Seconds of event time per agent.
pub const SPAN: u32 = 420;
/// Sentinel keys: their windows stay open (or not) depending on processing time, so they are
/// left out of the comparisons.
pub const SENTINEL_SRC: &str = "192.0.2.254";
pub const SENTINEL_DST: &str = "192.0.2.253";

pub type Features = BTreeMap<String, Option<f64>>;

// ---------------------------------------------------------------------------------------------
// Data

pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

/// One second of traffic seen by `agent` at second `sec`: a scanner, web clients, DNS (some
/// high-entropy names), ICMP and ARP, with keys shared between the two agents.
pub fn second_of_traffic(agent: u8, sec: u32, rng: &mut Lcg) -> Vec<PacketRecord> {
    let iface: Arc<str> = Arc::from(if agent == 0 { "eth0" } else { "eth1" });
    let mut out = Vec::new();
    let n = 8 + rng.below(10) as u32;
    for i in 0..n {
        let ts = T0 + sec as f64 + (i as f64 + rng.below(1000) as f64 / 1000.0) / (n as f64 + 1.0);
        let mut r = PacketRecord::new(ts, 60 + rng.below(1400) as u32);
        r.interface = iface.clone();
        match rng.below(6) {
            0 => {
                r.protocol = Protocol::Tcp;
                r.src_ip = ip("10.0.0.66");
                r.dst_ip = ip(&format!("10.1.0.{}", 1 + rng.below(4)));
                r.src_port = Some(40000);
                r.dst_port = Some((sec * 7 + i) as u16 % 1024 + 1);
                r.set_tcp_flags(0x02);
            }
            1 => {
                r.protocol = Protocol::Tcp;
                r.src_ip = ip(&format!("10.0.{agent}.{}", 10 + rng.below(3)));
                r.dst_ip = ip("10.1.0.80");
                r.src_port = Some(50000 + rng.below(100) as u16);
                r.dst_port = Some(if rng.below(3) == 0 { 22 } else { 80 });
                r.set_tcp_flags(if rng.below(4) == 0 { 0x02 } else { 0x18 });
                if r.dst_port == Some(80) && rng.below(3) == 0 {
                    r.http_method = Some("POST".into());
                    r.http_path = Some(if rng.below(2) == 0 { "/login".into() } else { "/index.html".into() });
                }
            }
            2 => {
                r.protocol = Protocol::Udp;
                r.src_ip = ip(&format!("10.0.{agent}.{}", 10 + rng.below(3)));
                r.dst_ip = ip("10.1.0.53");
                r.src_port = Some(30000 + rng.below(1000) as u16);
                r.dst_port = Some(53);
                r.dns_query = Some(true);
                r.dns_response = Some(false);
                r.dns_qtype = Some(if rng.below(5) == 0 { 16 } else { 1 });
                r.dns_qname = Some(if rng.below(3) == 0 {
                    format!("x{:x}q{:x}.tunnel.example", rng.next(), rng.next())
                } else {
                    "www.example.com".into()
                });
            }
            3 => {
                r.protocol = Protocol::Udp;
                r.src_ip = ip("10.1.0.53");
                r.dst_ip = ip(&format!("10.0.{agent}.{}", 10 + rng.below(3)));
                r.src_port = Some(53);
                r.dst_port = Some(30000 + rng.below(1000) as u16);
                r.dns_query = Some(false);
                r.dns_response = Some(true);
                r.dns_qname = Some("www.example.com".into());
                r.dns_qtype = Some(1);
                r.dns_answer_count = Some(1);
                r.dns_answer_size = Some(4);
            }
            4 => {
                r.protocol = Protocol::Icmp;
                r.src_ip = ip(&format!("10.0.{agent}.{}", 10 + rng.below(3)));
                r.dst_ip = ip("10.1.0.1");
                r.icmp_type = Some(8);
                r.icmp_code = Some(0);
            }
            _ => {
                r.protocol = Protocol::Arp;
                r.arp_op = Some(1 + rng.below(2) as u16);
                r.arp_psrc = ip(&format!("10.0.{agent}.1"));
                r.arp_pdst = ip(&format!("10.0.{agent}.{}", 10 + rng.below(3)));
                r.arp_hwsrc = Some(wire::MacAddr([2, 0, 0, 0, agent, rng.below(2) as u8]));
                r.arp_hwdst = Some(wire::MacAddr([0; 6]));
            }
        }
        out.push(r);
    }
    out
}

/// Batches of one second per agent, interleaved as the agents would publish them, then one
/// sentinel batch per agent far ahead in event time that pushes the watermark past the data.
pub fn batches() -> Vec<PacketBatch> {
    let mut rng = Lcg(7);
    let mut out = Vec::new();
    for sec in 0..SPAN {
        for agent in 0..2u8 {
            let mut b = PacketBatch::new(format!("agent-{agent}"), "boot1", sec as u64);
            b.records = second_of_traffic(agent, sec, &mut rng);
            out.push(b);
        }
    }
    for agent in 0..2u8 {
        let mut b = PacketBatch::new(format!("agent-{agent}"), "boot1", SPAN as u64);
        let mut r = PacketRecord::new(T0 + SPAN as f64 + 900.0, 60);
        r.protocol = Protocol::Udp;
        r.src_ip = ip(SENTINEL_SRC);
        r.dst_ip = ip(SENTINEL_DST);
        b.records.push(r);
        out.push(b);
    }
    out
}

pub fn is_sentinel(key: &str) -> bool {
    key == SENTINEL_SRC || key == SENTINEL_DST
}

/// The offline path: the same records through a `Windower`, then `finish()`.
pub fn offline(batches: &[PacketBatch], cfg: &WindowerConfig) -> HashMap<String, WindowRecord> {
    let mut w = Windower::new(cfg.clone());
    let now = Instant::now();
    let mut out = Vec::new();
    for b in batches {
        for r in &b.records {
            w.push(&b.agent_id, r, now);
        }
        out.extend(w.poll_closed(now));
    }
    out.extend(w.finish());
    let mut map = HashMap::new();
    for win in out.into_iter().filter(|w| !is_sentinel(&w.key)) {
        let id = win.window_id();
        assert!(map.insert(id.clone(), win).is_none(), "offline path emitted {id} twice");
    }
    map
}

// ---------------------------------------------------------------------------------------------
// Services

pub fn config(nats: &NatsServer, db: &TestDb) -> WindowerServiceConfig {
    WindowerServiceConfig {
        nats: bus::Nats::new(nats.url.clone()),
        database_url: db.url.clone(),
        pending_refresh_ms: 500,
        ..Default::default()
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

pub struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

pub fn spawn(cfg: WindowerServiceConfig) -> Running {
    init_tracing();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(service::run(cfg, async move {
        let _ = rx.await;
    }));
    Running { stop: Some(tx), task }
}

impl Running {
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("windower did not stop")
            .expect("windower task panicked")
            .expect("windower failed");
    }
}

pub async fn jetstream(nats: &NatsServer) -> jetstream::Context {
    let js = jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    bus::streams::ensure_packets_stream(&js, &Default::default()).await.unwrap();
    js
}

pub async fn publish_raw(js: &jetstream::Context, subject: &str, msg_id: &str, payload: Vec<u8>) {
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nats-Msg-Id", msg_id);
    js.publish_with_headers(subject.to_string(), h, payload.into()).await.unwrap().await.unwrap();
}

pub async fn publish_all(js: &jetstream::Context, batches: &[PacketBatch]) {
    for b in batches {
        publish_raw(js, &bus::packets_subject(&b.agent_id), &b.batch_id(), b.encode().unwrap()).await;
    }
}

/// Stored windows by id (sentinels left out): the 63 columns (NULL = None) plus `extra`.
pub async fn stored(client: &tokio_postgres::Client) -> HashMap<String, Features> {
    let sql = format!(
        "SELECT view, key, extract(epoch FROM window_start)::int8, window_size,
                array(SELECT k FROM jsonb_each_text(extra) AS e(k, v) ORDER BY k),
                array(SELECT v FROM jsonb_each_text(extra) AS e(k, v) ORDER BY k), {}
         FROM window_features",
        FEATURE_COLUMNS.join(", ")
    );
    let rows = match client.query(&sql, &[]).await {
        Ok(r) => r,
        Err(_) => return HashMap::new(), // not migrated yet
    };
    let mut out = HashMap::new();
    for row in rows {
        let (view, key, start, size): (String, String, i64, i32) = (row.get(0), row.get(1), row.get(2), row.get(3));
        if is_sentinel(&key) {
            continue;
        }
        let mut f = Features::new();
        for (i, name) in FEATURE_COLUMNS.iter().enumerate() {
            f.insert(name.to_string(), row.get::<_, Option<f64>>(6 + i));
        }
        // `extra` as text, parsed by Rust (exact), not by a JSON library's float parser.
        let names: Vec<String> = row.get(4);
        let values: Vec<Option<String>> = row.get(5);
        for (k, v) in names.into_iter().zip(values) {
            f.insert(k, v.map(|v| v.parse::<f64>().unwrap()));
        }
        out.insert(format!("{view}.{size}.{start}.{key}"), f);
    }
    out
}

pub async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.map(|r| r.get(0)).unwrap_or(-1)
}

/// Every message of NTA_WINDOWS, decoded.
pub async fn published(js: &jetstream::Context) -> Vec<WindowRecord> {
    let mut stream = match js.get_stream(bus::WINDOWS_STREAM).await {
        Ok(s) => s,
        Err(_) => return Vec::new(),
    };
    let total = stream.info().await.unwrap().state.messages as usize;
    if total == 0 {
        return Vec::new();
    }
    let consumer = stream
        .create_consumer(pull::Config { ack_policy: jetstream::consumer::AckPolicy::None, ..Default::default() })
        .await
        .unwrap();
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        let mut msgs = consumer.fetch().max_messages(1000).expires(Duration::from_secs(2)).messages().await.unwrap();
        let before = out.len();
        while let Some(m) = msgs.next().await {
            out.push(WindowRecord::decode(&m.unwrap().payload).expect("window decodes"));
        }
        assert!(out.len() > before, "NTA_WINDOWS: read {} of {total}", out.len());
    }
    out
}

/// Checks the table and the stream against the offline windows: same set, same features, no
/// duplicate on the stream.
pub async fn check_against(
    expected: &HashMap<String, WindowRecord>,
    client: &tokio_postgres::Client,
    js: &jetstream::Context,
) {
    let got = stored(client).await;
    let missing: Vec<_> = expected.keys().filter(|k| !got.contains_key(*k)).take(5).collect();
    let extra: Vec<_> = got.keys().filter(|k| !expected.contains_key(*k)).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty(), "table differs: missing {missing:?}, unexpected {extra:?}");
    for (id, w) in expected {
        let row = &got[id];
        for (name, v) in &w.features {
            assert_eq!(row.get(name), Some(v), "{id}: feature {name}");
        }
        for (name, v) in row {
            if !w.features.contains_key(name) {
                assert_eq!(*v, None, "{id}: column {name} set but not a feature of the window");
            }
        }
    }
    let msgs = published(js).await;
    let mut ids = HashSet::new();
    for w in &msgs {
        assert!(ids.insert(w.window_id()), "{} published twice", w.window_id());
        assert_eq!(bus::window_subject(w), format!("nta.windows.{}", wire::window::size_token(w.window_size)));
        if !is_sentinel(&w.key) {
            assert_eq!(Some(w), expected.get(&w.window_id()), "published window differs from the offline one");
        }
    }
    let published_real = msgs.iter().filter(|w| !is_sentinel(&w.key)).count();
    assert_eq!(published_real, expected.len(), "NTA_WINDOWS holds a different number of windows");
    let rows = count(client, "SELECT count(*) FROM window_features").await;
    let distinct =
        count(client, "SELECT count(DISTINCT (view, key, window_start, window_size)) FROM window_features").await;
    assert_eq!(rows, distinct);
}

pub async fn wait_all_stored(
    expected: &HashMap<String, WindowRecord>,
    client: &tokio_postgres::Client,
    timeout: Duration,
) {
    wait_until("every window stored", timeout, || async {
        let got = stored(client).await;
        expected.keys().all(|k| got.contains_key(k))
    })
    .await;
}

pub async fn consumer_state(js: &jetstream::Context, durable: &str) -> (u64, usize) {
    let stream = js.get_stream(bus::PACKETS_STREAM).await.unwrap();
    let i = stream.consumer_info(durable).await.unwrap();
    (i.num_pending, i.num_ack_pending)
}

/// Nothing left to deliver and at most the two sentinel batches held (their windows may stay
/// open: nothing comes after them).
pub async fn wait_acked(js: &jetstream::Context) {
    wait_acked_by(js, &["nta-windower"]).await
}

/// [`wait_acked`] for every consumer in `durables`.
pub async fn wait_acked_by(js: &jetstream::Context, durables: &[&str]) {
    wait_until("batches acknowledged", Duration::from_secs(30), || async {
        for d in durables {
            let (pending, ack_pending) = consumer_state(js, d).await;
            if pending != 0 || ack_pending > 2 {
                return false;
            }
        }
        true
    })
    .await;
}

pub fn assert_core_emits(expected: &HashMap<String, WindowRecord>) {
    assert!(
        !expected.is_empty(),
        "the windower core emitted no window for {} s of traffic (core not implemented yet?)",
        SPAN
    );
}

pub const CHILD_ENV: &str = "NTA_WSVC_CHILD";

/// Partitions of a child windower (`NTA_WSVC_PARTITIONS`, default 1).
const PARTITIONS_ENV: &str = "NTA_WSVC_PARTITIONS";
/// Messages per step of a child windower (`NTA_WSVC_STEP`, default 16).
pub const STEP_ENV: &str = "NTA_WSVC_STEP";

/// Body of the child process (each test binary selects its ignored `child_windower` test,
/// which calls this).
pub async fn child_main() {
    if std::env::var(CHILD_ENV).is_err() {
        return;
    }
    init_tracing();
    let cfg = WindowerServiceConfig {
        nats: bus::Nats::new(std::env::var("NTA_NATS_URL").unwrap()),
        database_url: std::env::var("NTA_DATABASE_URL").unwrap(),
        // Small steps: many flushes per replay, so a failpoint at the N-th lands mid-way.
        max_messages_per_step: std::env::var(STEP_ENV).map_or(16, |p| p.parse().unwrap()),
        partitions: std::env::var(PARTITIONS_ENV).map_or(1, |p| p.parse().unwrap()),
        claim_interval_ms: 200,
        ..Default::default()
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    service::run(cfg, async move {
        term.recv().await;
    })
    .await
    .unwrap();
}

pub fn start_child(nats: &NatsServer, db: &TestDb, failpoint: Option<&str>) -> Child {
    start_child_with(nats, db, failpoint, 1, None)
}

/// A child windower with `partitions`, its log (info level) appended to `log` if given.
pub fn start_child_with(
    nats: &NatsServer,
    db: &TestDb,
    failpoint: Option<&str>,
    partitions: u32,
    log: Option<&std::path::Path>,
) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child_windower", "--exact", "--ignored", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, "1")
        .env(PARTITIONS_ENV, partitions.to_string())
        .env("NTA_NATS_URL", &nats.url)
        .env("NTA_DATABASE_URL", &db.url)
        .stdin(Stdio::null());
    match log {
        Some(path) => {
            let f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
            cmd.env("RUST_LOG", "windower=info").stdout(f);
        }
        None => {
            cmd.stdout(Stdio::null());
        }
    }
    match failpoint {
        Some(f) => cmd.env(service::FAILPOINT_ENV, f),
        None => cmd.env_remove(service::FAILPOINT_ENV),
    };
    cmd.spawn().expect("starting the child windower")
}
