//! The predictor service against real NATS JetStream and PostgreSQL (private instances,
//! nothing mocked): predictions, the alert lifecycle (open, extend, event-time split, quiet
//! close, resolve), idempotent redelivery, two replicas sharing a durable, dead letters.

use async_nats::jetstream;
use futures::StreamExt;
use linfa::prelude::*;
use predictor::forest::ForestParams;
use predictor::model::{feature_matrix, Model, ViewModel};
use predictor::service::{self, PredictorServiceConfig};
use std::path::Path;
use std::time::{Duration, Instant};
use testkit::{NatsServer, TestDb};
use tokio::sync::oneshot;
use wire::{AlertEvent, View, WindowRecord};

/// 2026-01-01T00:00:00Z, a multiple of 180.
const T0: i64 = 1_767_225_600;
const VICTIM: &str = "10.0.0.5";
const SCANNER: &str = "10.0.0.66";
const GUESSER: &str = "10.0.0.77";

fn window(view: View, key: &str, start: i64, size: u32, feats: &[(&str, f64)]) -> WindowRecord {
    WindowRecord {
        v: wire::BATCH_FORMAT_VERSION,
        view,
        key: key.into(),
        window_start: start,
        window_size: size,
        features: feats.iter().map(|(k, v)| (k.to_string(), Some(*v))).collect(),
    }
}

/// A destination window of a spoofed SYN flood: `sources` distinct sources, 2000 SYN/s.
fn flood(start: i64, size: u32, sources: f64) -> WindowRecord {
    let d = size as f64;
    window(
        View::Destination,
        VICTIM,
        start,
        size,
        &[
            ("packet_count", 2000.0 * d),
            ("byte_count", 120_000.0 * d),
            ("syn_in_count", 2000.0 * d),
            ("syn_in_rate_pps", 2000.0),
            ("half_open_count", 1990.0 * d),
            ("unique_src_ips", sources),
            ("unique_dst_ports", 1.0),
        ],
    )
}

fn quiet_dst(key: &str, start: i64, size: u32, i: u64) -> WindowRecord {
    let d = size as f64;
    let r = (i % 7) as f64;
    window(
        View::Destination,
        key,
        start,
        size,
        &[
            ("packet_count", (20.0 + r) * d),
            ("byte_count", 9000.0 * d),
            ("syn_in_count", r),
            ("syn_in_rate_pps", r / d),
            ("half_open_count", 0.0),
            ("unique_src_ips", 1.0 + r),
            ("unique_dst_ports", 2.0),
        ],
    )
}

fn scan(start: i64) -> WindowRecord {
    window(
        View::Source,
        SCANNER,
        start,
        5,
        &[
            ("packet_count", 1000.0),
            ("byte_count", 60_000.0),
            ("unique_dst_ports", 950.0),
            ("half_open_count", 940.0),
            ("tcp_count", 1000.0),
            ("tcp_syn_count", 1000.0),
            ("tcp_ack_count", 0.0),
        ],
    )
}

fn quiet_src(key: &str, start: i64, size: u32, i: u64) -> WindowRecord {
    let r = (i % 5) as f64;
    window(
        View::Source,
        key,
        start,
        size,
        &[
            ("packet_count", 30.0 + r),
            ("byte_count", 4000.0),
            ("unique_dst_ports", 1.0 + r),
            ("half_open_count", 0.0),
            ("tcp_count", 25.0),
            ("tcp_syn_count", 1.0),
            ("tcp_ack_count", 24.0),
            ("ssh_connection_attempts", if i.is_multiple_of(3) { 1.0 } else { 0.0 }),
        ],
    )
}

/// A tiny model: destination forest Normal vs syn_flood, source forest Normal vs port_scan
/// (it knows nothing of SSH guessing: that is left to the rule).
fn train_model(path: &Path) -> Model {
    let dst_features: Vec<String> =
        ["syn_in_rate_pps", "unique_src_ips", "half_open_count", "window_size"].map(String::from).to_vec();
    let src_features: Vec<String> =
        ["unique_dst_ports", "half_open_count", "tcp_syn_count", "ssh_connection_attempts"].map(String::from).to_vec();
    let (mut dst, mut dy, mut src, mut sy) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..300u64 {
        let start = T0 + 5 * i as i64;
        if i % 2 == 0 {
            dst.push(flood(start, 5, 500.0 + i as f64 * 30.0));
            dy.push(7usize);
            src.push(scan(start));
            sy.push(4usize);
        } else {
            dst.push(quiet_dst("10.9.9.9", start, [5, 30, 180][i as usize % 3], i));
            dy.push(0);
            src.push(quiet_src("10.9.9.8", start, 5, i));
            sy.push(0);
        }
    }
    let params = ForestParams { n_trees: 10, threads: 1, ..Default::default() };
    let fd = params.fit(&Dataset::new(feature_matrix(&dst_features, &dst), ndarray::Array1::from(dy))).unwrap();
    let fs = params.fit(&Dataset::new(feature_matrix(&src_features, &src), ndarray::Array1::from(sy))).unwrap();
    let model = Model::new(
        Some(ViewModel::new(src_features, fs).unwrap()),
        Some(ViewModel::new(dst_features, fd).unwrap()),
        "synthetic",
        serde_json::json!({"n_trees": 10}),
        serde_json::json!({}),
    )
    .unwrap();
    model.save(path).unwrap();
    model
}

struct Env {
    nats: NatsServer,
    db: TestDb,
    _dir: tempfile::TempDir,
    model_path: std::path::PathBuf,
    model: Model,
}

async fn env() -> Env {
    let _ = tracing_subscriber::fmt().with_env_filter("predictor=debug,warn").with_test_writer().try_init();
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model_path = dir.path().join("test.nta-model");
    let model = train_model(&model_path);
    Env { nats, db, _dir: dir, model_path, model }
}

impl Env {
    fn cfg(&self) -> PredictorServiceConfig {
        PredictorServiceConfig {
            nats: bus::Nats::new(self.nats.url.clone()),
            database_url: self.db.url.clone(),
            model: Some(self.model_path.clone()),
            close_interval_ms: 200,
            pending_refresh_ms: 500,
            ..Default::default()
        }
    }

    async fn js(&self) -> jetstream::Context {
        let c = async_nats::connect(&self.nats.url).await.unwrap();
        let js = jetstream::new(c);
        bus::streams::ensure_windows_stream(&js, &Default::default()).await.unwrap();
        js
    }
}

/// Starts a predictor; send on the returned channel (or drop it) to stop it.
fn start(cfg: PredictorServiceConfig) -> (oneshot::Sender<()>, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let (tx, rx) = oneshot::channel::<()>();
    let h = tokio::spawn(service::run(cfg, async move {
        let _ = rx.await;
    }));
    (tx, h)
}

async fn publish(js: &jetstream::Context, windows: &[WindowRecord], id_suffix: &str) {
    let mut acks = Vec::new();
    for w in windows {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", format!("{}{id_suffix}", w.window_id()).as_str());
        acks.push(js.publish_with_headers(bus::window_subject(w), h, w.encode().unwrap().into()).await.unwrap());
    }
    for a in acks {
        a.await.unwrap();
    }
}

async fn count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

async fn wait_for(c: &tokio_postgres::Client, sql: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // The schema may not exist yet while the service starts.
        if let Ok(r) = c.query_one(sql, &[]).await {
            let n: i64 = r.get(0);
            if n == want {
                return;
            }
            assert!(Instant::now() < deadline, "{sql}: {n}, want {want}");
        }
        assert!(Instant::now() < deadline, "{sql}: timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads alert events up to the next one matching `pred`; every event read is kept in `seen`.
async fn next_matching(
    sub: &mut async_nats::Subscriber,
    seen: &mut Vec<AlertEvent>,
    pred: impl Fn(&AlertEvent) -> bool,
) -> AlertEvent {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), sub.next()).await.expect("alert event").unwrap();
        let e: AlertEvent = serde_json::from_slice(&msg.payload).unwrap();
        seen.push(e.clone());
        if pred(&e) {
            return e;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_open_extend_split_close_and_resolve() {
    let env = env().await;
    let js = env.js().await;
    let nc = async_nats::connect(&env.nats.url).await.unwrap();
    let mut events = nc.subscribe(format!("{}.>", bus::ALERTS_SUBJECT_PREFIX)).await.unwrap();
    nc.flush().await.unwrap();
    let mut cfg = env.cfg();
    cfg.alert_quiet_s = 6;
    let (stop, task) = start(cfg);
    let mut c = env.db.client().await.unwrap();

    // Three 5 s flood windows, their 30 s window, an SSH guesser (rule only), quiet traffic.
    let mut batch =
        vec![flood(T0, 5, 3000.0), flood(T0 + 5, 5, 9_600.0), flood(T0 + 10, 5, 4000.0), flood(T0, 30, 9_000.0)];
    batch.push(window(
        View::Source,
        GUESSER,
        T0,
        5,
        &[("ssh_connection_attempts", 25.0), ("packet_count", 200.0), ("byte_count", 20_000.0)],
    ));
    for i in 0..20u64 {
        batch.push(quiet_dst(&format!("10.1.0.{i}"), T0, 5, i));
        batch.push(quiet_src(&format!("10.2.0.{i}"), T0, 5, i));
    }
    publish(&js, &batch, "").await;
    wait_for(&c, "SELECT count(*) FROM predictions", batch.len() as i64).await;

    let p = c
        .query_one(
            "SELECT label, confidence, probabilities, model_version, rules, decided_by FROM predictions
             WHERE view = 'destination' AND key = $1 AND window_size = 5 AND window_start = to_timestamp($2)",
            &[&VICTIM, &(T0 as f64)],
        )
        .await
        .unwrap();
    assert_eq!(p.get::<_, String>(0), "syn_flood");
    assert!(p.get::<_, f64>(1) > 0.9);
    let proba: serde_json::Value = p.get(2);
    assert_eq!(proba.as_object().unwrap().len(), 9);
    assert_eq!(p.get::<_, String>(3), env.model.model_version);
    assert_eq!(p.get::<_, Vec<String>>(4), vec!["syn_flood_victim".to_string()]);
    assert_eq!(p.get::<_, String>(5), "model");
    assert_eq!(count(&c, "SELECT count(*) FROM predictions WHERE label <> 'Normal' AND key LIKE '10.1.%'").await, 0);

    // One open alert per (view, key, class): the flood and the guesser.
    assert_eq!(count(&c, "SELECT count(*) FROM alerts").await, 2);
    let a = c
        .query_one(
            "SELECT id, state, severity, detected_by, extract(epoch FROM first_seen)::int8, extract(epoch FROM last_seen)::int8,
                    window_count, packets, bytes, distinct_sources, summary, rules, evidence, packets_5, packets_30
             FROM alerts WHERE view = 'destination' AND key = $1 AND class = 'syn_flood'",
            &[&VICTIM],
        )
        .await
        .unwrap();
    let flood_id: i64 = a.get(0);
    assert_eq!(a.get::<_, String>(1), "open");
    assert_eq!(a.get::<_, String>(2), "CRITICAL");
    assert_eq!(a.get::<_, String>(3), "both");
    assert_eq!((a.get::<_, i64>(4), a.get::<_, i64>(5)), (T0, T0 + 30));
    assert_eq!(a.get::<_, i32>(6), 4);
    // 5 s windows: 3 x 10,000 packets; the 30 s window: 60,000 -> the larger tiling wins.
    assert_eq!((a.get::<_, i64>(13), a.get::<_, i64>(14)), (30_000, 60_000));
    assert_eq!(a.get::<_, i64>(7), 60_000);
    assert_eq!(a.get::<_, i64>(8), 3_600_000);
    assert_eq!(a.get::<_, Option<i32>>(9), Some(9_600));
    assert_eq!(a.get::<_, String>(10), "syn_flood against 10.0.0.5 from 9,600 sources");
    assert_eq!(a.get::<_, Vec<String>>(11), vec!["syn_flood_victim".to_string()]);
    let evidence: serde_json::Value = a.get(12);
    assert!(evidence["syn_flood_victim"]["syn_in_rate_pps"].is_number(), "{evidence}");
    let decisive = evidence["model"]["top_features"].as_object().unwrap_or_else(|| panic!("{evidence}"));
    assert!(!decisive.is_empty() && decisive.len() <= 5, "{evidence}");
    assert_eq!(count(&c, &format!("SELECT count(*) FROM alert_windows WHERE alert_id = {flood_id}")).await, 4);

    let g = c
        .query_one("SELECT severity, detected_by, peak_confidence, summary FROM alerts WHERE key = $1", &[&GUESSER])
        .await
        .unwrap();
    assert_eq!((g.get::<_, String>(0), g.get::<_, String>(1)), ("HIGH".into(), "rule".into()));
    assert_eq!(g.get::<_, f64>(2), 0.75);
    assert_eq!(g.get::<_, String>(3), "ssh_brute from 10.0.0.77");

    // Events: the flood's first one opened it, the last one carries its state after the batch.
    let mut seen = Vec::new();
    let fe = next_matching(&mut events, &mut seen, |e| e.id == flood_id && e.window_count == 4).await;
    assert_eq!(seen.iter().find(|e| e.id == flood_id).unwrap().event, "opened");
    assert_eq!((fe.severity.as_str(), fe.distinct_sources, fe.first_seen), ("CRITICAL", Some(9_600), T0 as f64));
    if !seen.iter().any(|e| e.class == "ssh_brute" && e.event == "opened") {
        next_matching(&mut events, &mut seen, |e| e.class == "ssh_brute" && e.event == "opened").await;
    }

    // A later window extends the same alert; more sources update the summary.
    publish(&js, &[flood(T0 + 15, 5, 12_345.0)], "").await;
    let e = next_matching(&mut events, &mut seen, |e| e.class == "syn_flood").await;
    assert_eq!((e.event.as_str(), e.id, e.window_count), ("updated", flood_id, 5));
    assert_eq!(e.summary, "syn_flood against 10.0.0.5 from 12,345 sources");
    assert_eq!(e.packets, 60_000);
    assert_eq!(count(&c, "SELECT count(*) FROM alerts WHERE state = 'open'").await, 2);

    // The same window again under another message id: predicted already, nothing changes.
    publish(&js, &[flood(T0 + 15, 5, 12_345.0)], ".again").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&c, &format!("SELECT window_count::int8 FROM alerts WHERE id = {flood_id}")).await, 5);
    assert_eq!(count(&c, "SELECT count(*) FROM predictions").await, batch.len() as i64 + 1);

    // Long after in event time: the old alert closes and a new one opens.
    publish(&js, &[flood(T0 + 3600, 5, 100.0)], "").await;
    let e1 = next_matching(&mut events, &mut seen, |e| e.class == "syn_flood").await;
    let e2 = next_matching(&mut events, &mut seen, |e| e.class == "syn_flood").await;
    assert_eq!((e1.event.as_str(), e1.id), ("closed", flood_id));
    assert_eq!(e2.event, "opened");
    assert_ne!(e2.id, flood_id);
    assert_eq!(e2.summary, "syn_flood against 10.0.0.5 from 100 sources");

    // An operator resolves the new one.
    assert!(service::resolve_alert(&mut c, e2.id).await.unwrap());
    assert!(!service::resolve_alert(&mut c, e2.id).await.unwrap());
    // The resolution (made outside the predictor, as a dashboard does) reaches the stream
    // through the outbox the predictor relays.
    let e = next_matching(&mut events, &mut seen, |e| e.event == "resolved").await;
    assert_eq!(e.id, e2.id);

    // Quiet period (processing time): the guesser's alert closes.
    let e = next_matching(&mut events, &mut seen, |e| e.class == "ssh_brute" && e.event == "closed").await;
    assert_eq!(e.state, "closed");
    assert_eq!(count(&c, "SELECT count(*) FROM alerts WHERE state = 'open'").await, 0);
    assert_eq!(count(&c, "SELECT count(*) FROM alerts WHERE state = 'resolved' AND resolved_at IS NOT NULL").await, 1);
    assert_eq!(count(&c, "SELECT count(*) FROM alerts WHERE state = 'closed' AND closed_at IS NOT NULL").await, 2);

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

/// Hysteresis: a window the model alone flags (here: below `min_confidence`, above
/// `sustain_confidence`) keeps an open alert of its key and class but never opens one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustaining_windows_extend_an_open_alert_but_never_open_one() {
    let env = env().await;
    let js = env.js().await;
    let cfg = PredictorServiceConfig { min_confidence: 1.01, sustain_confidence: 0.5, ..env.cfg() };
    let (stop, task) = start(cfg);
    let c = env.db.client().await.unwrap();
    // The model reads a scan (it does not look at targets); the rule does not: one port per host.
    let model_only = |start: i64| {
        let mut w = scan(start);
        w.features.insert("unique_dst_ips".into(), Some(950.0));
        w
    };
    publish(&js, &[model_only(T0)], "").await;
    wait_for(&c, "SELECT count(*) FROM predictions", 1).await;
    assert_eq!(count(&c, "SELECT count(*) FROM alerts").await, 0, "sustaining alone opened an alert");
    // The rule opens it; the model-only window after it keeps it.
    publish(&js, &[scan(T0 + 5)], "").await;
    wait_for(&c, "SELECT count(*) FROM alerts WHERE state = 'open' AND window_count = 1", 1).await;
    publish(&js, &[model_only(T0 + 10)], "").await;
    wait_for(&c, "SELECT count(*) FROM alerts WHERE state = 'open' AND window_count = 2", 1).await;
    assert_eq!(count(&c, "SELECT count(*) FROM alert_windows").await, 2);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_predict_every_window_exactly_once() {
    let env = env().await;
    let js = env.js().await;
    let mut cfg = env.cfg();
    cfg.batch_size = 16;
    let mut a = cfg.clone();
    a.instance = "replica-a".into();
    let mut b = cfg.clone();
    b.instance = "replica-b".into();
    let (stop_a, task_a) = start(a);
    let (stop_b, task_b) = start(b);
    let c = env.db.client().await.unwrap();
    // Both consumers attached before anything is published.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stream = js.get_stream(bus::WINDOWS_STREAM).await.unwrap();
        if let Ok(mut consumer) = stream.get_consumer::<jetstream::consumer::pull::Config>("nta-predictor").await {
            if consumer.info().await.unwrap().num_waiting >= 2 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "replicas did not attach");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut windows = Vec::new();
    for i in 0..400u64 {
        windows.push(quiet_src(&format!("10.3.{}.{}", i / 200, i % 200), T0 + 5 * (i as i64 % 4), 5, i));
    }
    // 60 flood windows of one victim, spread over both replicas: one alert, every window counted.
    for i in 0..60i64 {
        windows.push(flood(T0 + 5 * i, 5, 1000.0 + i as f64));
    }
    let n = windows.len() as i64;
    for chunk in windows.chunks(40) {
        publish(&js, chunk, "").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for(&c, "SELECT count(*) FROM predictions", n).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&c, "SELECT count(*) FROM predictions").await, n);
    assert_eq!(
        count(&c, "SELECT count(*) FROM (SELECT DISTINCT view, key, window_start, window_size FROM predictions) d")
            .await,
        n
    );
    assert_eq!(count(&c, "SELECT count(DISTINCT instance) FROM predictions").await, 2, "both replicas worked");
    assert_eq!(count(&c, "SELECT count(*) FROM alerts").await, 1);
    assert_eq!(count(&c, "SELECT window_count::int8 FROM alerts").await, 60);
    assert_eq!(count(&c, "SELECT count(*) FROM alert_windows").await, 60);
    assert_eq!(count(&c, "SELECT packets FROM alerts").await, 60 * 10_000);
    // Nothing left unacknowledged.
    let stream = js.get_stream(bus::WINDOWS_STREAM).await.unwrap();
    let mut consumer = stream.get_consumer::<jetstream::consumer::pull::Config>("nta-predictor").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = consumer.info().await.unwrap();
        if info.num_ack_pending == 0 && info.num_pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "unacked: {info:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every alert event once on NTA_ALERTS, whichever replica relayed it.
    wait_for(&c, "SELECT count(*) FROM alert_events WHERE published_at IS NULL", 0).await;
    let events = count(&c, "SELECT count(*) FROM alert_events").await;
    assert!(events >= 2, "{events} alert events");
    let ids = alert_msg_ids(&js).await;
    assert_eq!(ids.len() as i64, events, "{ids:?}");
    assert_eq!(ids.iter().collect::<std::collections::BTreeSet<_>>().len() as i64, events, "{ids:?}");
    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    task_a.await.unwrap().unwrap();
    task_b.await.unwrap().unwrap();
}

/// The `Nats-Msg-Id` of every message in NTA_ALERTS, in stream order.
async fn alert_msg_ids(js: &jetstream::Context) -> Vec<String> {
    let mut stream = js.get_stream(bus::ALERTS_STREAM).await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut ids = Vec::new();
    for seq in state.first_sequence..=state.last_sequence {
        if state.messages == 0 {
            break;
        }
        let m = stream.get_raw_message(seq).await.unwrap();
        ids.push(m.headers.get("Nats-Msg-Id").expect("an alert event without Nats-Msg-Id").to_string());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_and_the_pipeline_goes_on() {
    let env = env().await;
    let js = env.js().await;
    bus::streams::ensure_deadletter_stream(&js, &Default::default()).await.unwrap();
    let (stop, task) = start(env.cfg());
    let c = env.db.client().await.unwrap();

    js.publish("nta.windows.5s", b"\x93not a window".as_ref().into()).await.unwrap().await.unwrap();
    let mut newer = quiet_src("10.4.0.1", T0, 5, 1);
    newer.v = 99;
    js.publish("nta.windows.5s", newer.encode().unwrap().into()).await.unwrap().await.unwrap();
    let mut nul = quiet_src("10.4.0.1", T0, 5, 1);
    nul.key = "bad\0key".into();
    js.publish("nta.windows.5s", nul.encode().unwrap().into()).await.unwrap().await.unwrap();
    publish(&js, &[quiet_src("10.4.0.2", T0, 5, 2), scan(T0)], "").await;

    wait_for(&c, "SELECT count(*) FROM predictions", 2).await;
    assert_eq!(count(&c, "SELECT count(*) FROM alerts WHERE class = 'port_scan' AND detected_by = 'both'").await, 1);
    let mut dl = js.get_stream(bus::DEADLETTER_STREAM).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while dl.info().await.unwrap().state.messages < 3 {
        assert!(Instant::now() < deadline, "dead letters missing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = dl.get_raw_message(1).await.unwrap();
    let h = first.headers;
    assert_eq!(h.get(bus::DEADLETTER_SUBJECT_HEADER).unwrap().as_str(), "nta.windows.5s");
    assert!(h.get(bus::DEADLETTER_REASON_HEADER).unwrap().as_str().contains("decode"), "{h:?}");
    let second = dl.get_raw_message(2).await.unwrap();
    assert!(second.headers.get(bus::DEADLETTER_REASON_HEADER).unwrap().as_str().contains("version 99"));

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn missing_or_foreign_model_files_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nope.nta-model");
    let e = Model::load_configured(Some(&p)).unwrap_err();
    assert!(format!("{e:#}").contains("nope.nta-model"), "{e:#}");
    std::fs::write(&p, b"NTAMODEL\x02\x00\x00\x00rest").unwrap();
    let e = Model::load_configured(Some(&p)).unwrap_err();
    assert!(format!("{e:#}").contains("format version 2, but this build reads version 1"), "{e:#}");
    let cfg = PredictorServiceConfig { model: Some(p), ..Default::default() };
    assert!(service::run(cfg, std::future::pending()).await.is_err());
}
