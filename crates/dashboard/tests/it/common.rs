//! Fixture: a fresh PostgreSQL database with the real schema (`store::migrate`), a private
//! NATS server, fixture rows, and the dashboard serving on a free port.
#![allow(dead_code)]

use dashboard::DashboardConfig;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use testkit::{NatsServer, TestDb};

/// A DNS name and an HTTP path an attacker controls: both would set `window.__xss` if a page
/// ever rendered them as markup.
pub const XSS_QNAME: &str = "<script>window.__xss=1</script>.evil.example";
pub const XSS_PATH: &str = "/<img src=x onerror=\"window.__xss=2\">";
pub const XSS_HOST: &str = "<b onmouseover=alert(1)>host</b>";
pub const CSV_QNAME: &str = "=HYPERLINK(\"http://evil\",\"x\")";
/// A TLS server name a client chose: any bytes the ClientHello carried.
pub const XSS_SNI: &str = "<img src=x onerror=window.__xss=3>.sni.example";
/// Where [`insert_app_packets`] puts its rows.
pub const APP_CLIENT: &str = "10.0.0.4";
pub const TLS_SERVER: &str = "10.0.0.44";

/// Packets identified by content, from [`APP_CLIENT`], `secs_ago` seconds before `now`: two
/// ClientHellos to [`TLS_SERVER`] (server names [`XSS_SNI`] and `api.example.org`), a TLS
/// record without one, an SSH identification string and a QUIC Initial. Not in the shared
/// fixture, whose counts other tests check. Returns the number of rows.
pub async fn insert_app_packets(c: &tokio_postgres::Client, now: f64, secs_ago: f64) -> i64 {
    c.execute(
        "INSERT INTO raw_packets (ts, interface, src_ip, dst_ip, protocol, length, src_port, dst_port, app_proto, tls_sni, agent_id, batch_id, idx)
         VALUES (to_timestamp($1::float8 - $2), 'eth0', $3::text::inet, $4::text::inet, 'TCP', 583, 51000, 443, 'tls', $5, 'a', 'b6', 0),
                (to_timestamp($1::float8 - $2 - 1), 'eth0', $3::text::inet, $4::text::inet, 'TCP', 517, 51001, 443, 'tls', 'api.example.org', 'a', 'b6', 1),
                (to_timestamp($1::float8 - $2 - 2), 'eth0', $3::text::inet, $4::text::inet, 'TCP', 120, 51001, 443, 'tls', NULL, 'a', 'b6', 2),
                (to_timestamp($1::float8 - $2 - 3), 'eth0', $3::text::inet, '10.0.0.22', 'TCP', 80, 51002, 22, 'ssh', NULL, 'a', 'b6', 3),
                (to_timestamp($1::float8 - $2 - 4), 'eth0', $3::text::inet, $4::text::inet, 'UDP', 1242, 51003, 443, 'quic', NULL, 'a', 'b6', 4)",
        &[&now, &secs_ago, &APP_CLIENT, &TLS_SERVER, &XSS_SNI],
    )
    .await
    .unwrap();
    5
}

pub struct Fixture {
    pub db: TestDb,
    pub nats: NatsServer,
    pub base: String,
    pub now: f64,
    pub alert_id: i64,
    cfg: DashboardConfig,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

impl Fixture {
    /// Schemas and rows, dashboard started with this auth.
    pub async fn start(password: Option<&str>, token: Option<&str>) -> Fixture {
        Self::start_with(password, token, true).await
    }

    pub async fn start_with(password: Option<&str>, token: Option<&str>, schema: bool) -> Fixture {
        Self::start_cfg(password, token, schema, |_| {}).await
    }

    /// Like [`Fixture::start_with`], with the configuration adjusted by `tweak` (limits, TLS).
    /// `base` is `https://localhost:PORT` when `tweak` sets a TLS certificate (issued for
    /// localhost), else `http://127.0.0.1:PORT`.
    pub async fn start_cfg(
        password: Option<&str>,
        token: Option<&str>,
        schema: bool,
        tweak: impl FnOnce(&mut DashboardConfig),
    ) -> Fixture {
        let _ = tracing_subscriber::fmt().with_env_filter("warn").with_test_writer().try_init();
        let db = TestDb::create().await.unwrap();
        let nats = NatsServer::start().unwrap();
        // The predictor creates NTA_ALERTS in production; the dashboard only reads it.
        let nc = async_nats::connect(&nats.url).await.unwrap();
        bus::ensure_alerts_stream(&async_nats::jetstream::new(nc), &bus::AlertLimits::default()).await.unwrap();
        let now = now().floor();
        let mut alert_id = 0;
        if schema {
            let mut c = db.client().await.unwrap();
            store::migrate(&mut c).await.unwrap();
            alert_id = insert_rows(&c, now).await;
        }
        let port = testkit::free_port();
        let mut cfg =
            DashboardConfig::new(format!("127.0.0.1:{port}").parse().unwrap(), db.url.clone(), nats.url.clone());
        cfg.password = password.map(str::to_string);
        cfg.token = token.map(str::to_string);
        tweak(&mut cfg);
        let tls = cfg.tls_cert.is_some();
        let base = if tls { format!("https://localhost:{port}") } else { format!("http://127.0.0.1:{port}") };
        let mut f = Fixture { db, nats, base, now, alert_id, cfg, shutdown: None, task: None };
        f.start_server().await;
        f
    }

    /// Starts the dashboard (again, on the same address) and waits until it accepts connections.
    pub async fn start_server(&mut self) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(dashboard::run(self.cfg.clone(), async move {
            let _ = rx.await;
        }));
        let port = self.cfg.listen.port();
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        (self.shutdown, self.task) = (Some(tx), Some(task));
    }

    /// Stops the dashboard (its open SSE streams end: every browser loses its connection).
    pub async fn stop_server(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t).await.expect("dashboard shuts down").unwrap().unwrap();
        }
    }

    /// Host and port of the server, for raw TCP tests.
    pub fn addr(&self) -> String {
        self.base.rsplit('/').next().unwrap().replace("localhost", "127.0.0.1")
    }

    pub async fn stop(mut self) {
        self.stop_server().await;
    }
}

/// Packets over the last 10 minutes from 10.0.0.1 (a SYN scan of 10.0.0.2), 10.0.0.3 (DNS,
/// HTTP with hostile strings), ARP; 5 s windows of 10.0.0.1 with predictions; one open alert.
pub async fn insert_rows(c: &tokio_postgres::Client, now: f64) -> i64 {
    c.execute("SELECT nta_ensure_raw_partition((to_timestamp($1::float8) AT TIME ZONE 'UTC')::date)", &[&now])
        .await
        .unwrap();
    c.execute("SELECT nta_ensure_raw_partition((to_timestamp($1::float8 - 86400) AT TIME ZONE 'UTC')::date)", &[&now])
        .await
        .unwrap();
    // 300 SYNs to ports 1..300, one every 2 s back from now - 1 s.
    c.execute(
        "INSERT INTO raw_packets (ts, interface, src_ip, dst_ip, protocol, length, src_port, dst_port, tcp_flags, tcp_syn, agent_id, batch_id, idx)
         SELECT to_timestamp($1::float8 - 1 - 2 * g), 'eth0', '10.0.0.1', '10.0.0.2', 'TCP', 60, 40000, g, 'SYN', true, 'a', 'b1', g
         FROM generate_series(1, 300) g",
        &[&now],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO raw_packets (ts, interface, src_ip, dst_ip, protocol, length, src_port, dst_port, dns_query, dns_qname, dns_qtype, agent_id, batch_id, idx)
         VALUES (to_timestamp($1::float8 - 30), 'eth0', '10.0.0.3', '10.0.0.53', 'UDP', 90, 5353, 53, true, $2, 1, 'a', 'b2', 0),
                (to_timestamp($1::float8 - 31), 'eth0', '10.0.0.3', '10.0.0.53', 'UDP', 95, 5354, 53, true, $3, 16, 'a', 'b2', 1)",
        &[&now, &XSS_QNAME, &CSV_QNAME],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO raw_packets (ts, interface, src_ip, dst_ip, protocol, length, src_port, dst_port, tcp_flags, http_method, http_path, http_host, agent_id, batch_id, idx)
         VALUES (to_timestamp($1::float8 - 20), 'eth0', '10.0.0.3', '10.0.0.80', 'TCP', 400, 51000, 80, 'PSH,ACK', 'GET', $2, $3, 'a', 'b3', 0)",
        &[&now, &XSS_PATH, &XSS_HOST],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO raw_packets (ts, interface, protocol, length, arp_op, arp_psrc, arp_pdst, arp_hwsrc, agent_id, batch_id, idx)
         VALUES (to_timestamp($1::float8 - 10), 'eth0', 'ARP', 42, 1, '10.0.0.1', '10.0.0.9', '02:00:00:00:00:01', 'a', 'b4', 0)",
        &[&now],
    )
    .await
    .unwrap();
    // An old packet, yesterday: outside the default range.
    c.execute(
        "INSERT INTO raw_packets (ts, interface, src_ip, dst_ip, protocol, length, agent_id, batch_id, idx)
         VALUES (to_timestamp($1::float8 - 86400 + 60), 'eth0', '10.9.9.9', '10.0.0.2', 'ICMP', 98, 'a', 'b5', 0)",
        &[&now],
    )
    .await
    .unwrap();
    // The per-minute and per-hour counts the ingestor keeps as it stores packets; its tests
    // check that its incremental counts equal this recomputation.
    c.execute("INSERT INTO traffic_rollup SELECT * FROM nta_traffic_rollup_of('-infinity', 'infinity')", &[])
        .await
        .unwrap();
    // 5 s source windows of 10.0.0.1 over the scan (each with 2.5 SYNs on average) and one
    // destination window of 10.0.0.2.
    let ws = (now / 5.0).floor() * 5.0;
    c.execute(
        "INSERT INTO window_features (view, key, window_start, window_end, window_size, packet_count, byte_count,
                                      packet_rate_pps, byte_rate_bps, tcp_count, tcp_syn_count, unique_dst_ports, syn_only_ratio, extra)
         SELECT 'source', '10.0.0.1', to_timestamp($1::float8 - 5 * g), to_timestamp($1::float8 - 5 * g + 5), 5, 2.5, 150, 0.5, 240, 2.5, 2.5, 2.5, 1.0,
                '{\"scan_entropy\": 0.5}'::jsonb
         FROM generate_series(1, 120) g",
        &[&ws],
    )
    .await
    .unwrap();
    // The cascade's 30 s windows, for the last 5 minutes only (so an answer shows which level
    // it read).
    c.execute(
        "INSERT INTO window_features (view, key, window_start, window_end, window_size, packet_count, byte_count)
         SELECT 'source', '10.0.0.1', to_timestamp($1::float8 - 30 * g), to_timestamp($1::float8 - 30 * g + 30), 30, 15, 900
         FROM generate_series(1, 10) g",
        &[&((now / 30.0).floor() * 30.0)],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO window_features (view, key, window_start, window_end, window_size, packet_count, byte_count)
         VALUES ('destination', '10.0.0.2', to_timestamp($1::float8 - 5), to_timestamp($1::float8), 5, 3, 180)",
        &[&ws],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO predictions (view, key, window_start, window_size, label, confidence, probabilities, model_version, rules)
         SELECT 'source', '10.0.0.1', to_timestamp($1::float8 - 5 * g), 5, CASE WHEN g <= 10 THEN 'port_scan' ELSE 'Normal' END,
                0.93, '{\"port_scan\": 0.93, \"Normal\": 0.07}'::jsonb, 'rf-test-1', CASE WHEN g <= 10 THEN '{syn_scan}'::text[] ELSE '{}' END
         FROM generate_series(1, 120) g",
        &[&ws],
    )
    .await
    .unwrap();
    let id: i64 = c
        .query_one(
            "INSERT INTO alerts (view, key, class, severity, detected_by, first_seen, last_seen, window_count, peak_confidence,
                                 packets, bytes, summary, evidence, model_version)
             VALUES ('source', '10.0.0.1', 'port_scan', 'HIGH', 'both', to_timestamp($1::float8 - 50), to_timestamp($1::float8), 10, 0.93,
                     25, 1500, 'port_scan from 10.0.0.1 to 300 ports', '{\"rule\": \"syn_scan\", \"distinct_ports\": 300}', 'rf-test-1')
             RETURNING id",
            &[&ws],
        )
        .await
        .unwrap()
        .get(0);
    c.execute(
        "INSERT INTO alert_windows (alert_id, view, key, window_start, window_size)
         SELECT $2, 'source', '10.0.0.1', to_timestamp($1::float8 - 5 * g), 5 FROM generate_series(1, 10) g",
        &[&ws, &id],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO alerts (view, key, class, state, severity, detected_by, first_seen, last_seen, peak_confidence, summary, resolved_at)
         VALUES ('source', '10.0.0.7', 'dns_tunnel', 'resolved', 'LOW', 'model', to_timestamp($1::float8 - 3000), to_timestamp($1::float8 - 2900), 0.6, 'old', now())",
        &[&ws],
    )
    .await
    .unwrap();
    insert_run(c, ws).await;
    id
}

/// Name of the fixture's re-scoring run.
pub const RUN: &str = "fixture-run";

/// A re-scoring run over the last hour: the live port scan of 10.0.0.1 again (in both), and an
/// alert only the run raised, whose key is markup (keys come from captured traffic).
async fn insert_run(c: &tokio_postgres::Client, ws: f64) {
    c.batch_execute(&format!(
        "INSERT INTO runs (name, model_version, model_path, model_sha256, range_from, range_to, messages, records,
                           windows, alerts)
         VALUES ('{RUN}', 'rf-test-2', '/models/other.nta-model', 'ab', to_timestamp({ws} - 3600), to_timestamp({ws}),
                 3, 300, 12, 2);
         INSERT INTO run_alerts (run, seq, view, key, class, severity, detected_by, first_seen, last_seen, window_count,
                                 peak_confidence, packets, bytes, summary)
         VALUES ('{RUN}', 1, 'source', '10.0.0.1', 'port_scan', 'HIGH', 'model', to_timestamp({ws} - 40),
                 to_timestamp({ws}), 8, 0.8, 20, 1200, 'port_scan from 10.0.0.1'),
                ('{RUN}', 2, 'source', '{key}', 'ssh_brute', 'CRITICAL', 'model', to_timestamp({ws} - 30),
                 to_timestamp({ws}), 3, 0.95, 9, 900, 'ssh_brute from {key}');",
        key = XSS_HOST.replace('\'', "''"),
    ))
    .await
    .unwrap();
}

/// Inserts an open alert and its `opened` event (outbox) as the predictor would, and publishes
/// it with the predictor's relay; returns its id.
pub async fn raise_alert(
    c: &mut tokio_postgres::Client,
    nats: &async_nats::Client,
    key: &str,
    class: &str,
    severity: &str,
) -> i64 {
    let tx = c.transaction().await.unwrap();
    let row = tx
        .query_one(
            "INSERT INTO alerts (view, key, class, severity, detected_by, first_seen, last_seen, window_count, peak_confidence,
                                 packets, bytes, summary, evidence)
             VALUES ('destination', $1, $2, $3, 'rule', now() - interval '5 seconds', now(), 1, 0.99, 9600, 576000,
                     $4, '{\"rule\": \"syn_flood\"}')
             RETURNING id, extract(epoch from first_seen)::float8, extract(epoch from last_seen)::float8",
            &[&key, &class, &severity, &format!("{class} against {key}")],
        )
        .await
        .unwrap();
    let id: i64 = row.get(0);
    let ev = wire::AlertEvent {
        id,
        event: "opened".into(),
        view: wire::View::Destination,
        key: key.into(),
        class: class.into(),
        state: "open".into(),
        severity: severity.into(),
        detected_by: "rule".into(),
        first_seen: row.get(1),
        last_seen: row.get(2),
        window_count: 1,
        peak_confidence: 0.99,
        packets: 9600,
        bytes: 576000,
        distinct_sources: Some(9600),
        summary: format!("{class} against {key}"),
        event_id: None,
    };
    store::alert_events::record(&tx, &[ev]).await.unwrap();
    tx.commit().await.unwrap();
    relay(c, nats).await;
    id
}

/// Publishes the outbox (alert events not yet on `NTA_ALERTS`) with the predictor's relay.
pub async fn relay(c: &mut tokio_postgres::Client, nats: &async_nats::Client) -> usize {
    predictor::service::relay_outbox(c, &async_nats::jetstream::new(nats.clone())).await.unwrap()
}

/// Waits until the dashboard follows `NTA_ALERTS` (its ordered consumer exists), so that an
/// event published next reaches the live view.
pub async fn wait_for_follower(nats: &async_nats::Client) {
    let js = async_nats::jetstream::new(nats.clone());
    for _ in 0..400 {
        let mut s = js.get_stream(bus::ALERTS_STREAM).await.unwrap();
        if s.info().await.unwrap().state.consumer_count > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the dashboard never followed {}", bus::ALERTS_STREAM);
}

/// One SSE `alert` event as a test client read it: when, its `id` (stream sequence), its data.
pub type SseAlert = (std::time::Instant, u64, serde_json::Value);

/// Opens the live stream with bearer `token` (resuming after `last_id` when given) and reads its
/// `alert` events into a channel; returns once `hello` arrived. Aborting the task drops the
/// connection. A `lagged` event fails the test.
pub async fn sse_alerts(
    f: &Fixture,
    token: &str,
    last_id: Option<u64>,
) -> (tokio::sync::mpsc::UnboundedReceiver<SseAlert>, tokio::task::JoinHandle<()>) {
    use futures::StreamExt;
    let mut req = reqwest::Client::new()
        .get(format!("{}/api/alerts/stream", f.base))
        .header(reqwest::header::AUTHORIZATION, format!("Bearer {token}"));
    if let Some(id) = last_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (hello_tx, hello_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut body = r.bytes_stream();
        let mut buf = String::new();
        let mut hello = Some(hello_tx);
        while let Some(Ok(chunk)) = body.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(i) = buf.find("\n\n") {
                let ev: String = buf.drain(..i + 2).collect();
                let field = |name: &str| ev.lines().find_map(|l| l.strip_prefix(name)).map(str::to_string);
                match field("event: ").as_deref() {
                    Some("hello") => {
                        if let Some(h) = hello.take() {
                            let _ = h.send(());
                        }
                    }
                    Some("alert") => {
                        let id = field("id: ").expect("an alert event without id").parse().unwrap();
                        let data = serde_json::from_str(&field("data: ").unwrap()).unwrap();
                        let _ = tx.send((std::time::Instant::now(), id, data));
                    }
                    Some("lagged") => panic!("unexpected lagged event: {ev}"),
                    _ => {}
                }
            }
        }
    });
    hello_rx.await.unwrap();
    (rx, task)
}
