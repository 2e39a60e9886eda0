//! `nta bench notify`: alert-to-notification latency. Alert events are published into
//! `NTA_ALERTS` of a private nats-server (as the predictor's outbox relay does), an `nta run
//! --target notifier` process sends them to a webhook receiver in this process, and the time
//! from the publish to the receiver reading the request is measured per event.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::e2e::stack::{NtaProcess, PrivateNats};

pub struct NotifyBenchOptions {
    pub events: usize,
    /// Pause between two events (an alert stream is sparse; 0 = as fast as possible).
    pub interval: Duration,
    pub nta_bin: PathBuf,
    pub timeout: Duration,
}

type Arrivals = Arc<Mutex<HashMap<String, (Instant, usize)>>>;

pub async fn run_notify_bench(o: &NotifyBenchOptions) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let nats = PrivateNats::start(&dir.path().join("nats")).await?;
    let arrivals: Arrivals = Arc::default();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/hook", listener.local_addr()?);
    let receiver = tokio::spawn(serve(listener, arrivals.clone()));
    // The notifier's database_url is never used (it has no database).
    let mut notifier = NtaProcess::spawn(
        &o.nta_bin,
        dir.path(),
        "notifier",
        &nats.url,
        "postgres://unused@127.0.0.1:1/unused",
        &["--webhook", &hook],
    )?;
    let client = async_nats::connect(&nats.url).await?;
    let js = async_nats::jetstream::new(client.clone());
    bus::streams::ensure_alerts_stream(&js, &bus::AlertLimits::default()).await?;
    let ready = Instant::now();
    while bus::consume::backlog(&client, bus::ALERTS_STREAM, "nta-notifier").await?.is_none() {
        notifier.check_alive()?;
        if ready.elapsed() > o.timeout {
            bail!("the notifier did not create its consumer within {:?}", o.timeout);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut sent = HashMap::new();
    for i in 0..o.events {
        let event_id = i as i64 + 1;
        let a = event(event_id);
        let id = bus::alert_event_msg_id(event_id);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        let body = serde_json::to_vec(&a)?;
        sent.insert(id, Instant::now());
        js.publish_with_headers(bus::alert_subject(&a.class), headers, body.into()).await?.await?;
        if !o.interval.is_zero() {
            tokio::time::sleep(o.interval).await;
        }
    }
    let start = Instant::now();
    while arrivals.lock().unwrap().len() < o.events {
        notifier.check_alive()?;
        if start.elapsed() > o.timeout {
            bail!("{} of {} notifications after {:?}", arrivals.lock().unwrap().len(), o.events, o.timeout);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    notifier.kill().await;
    receiver.abort();
    nats.stop().await;

    let arrivals = arrivals.lock().unwrap().clone();
    let duplicates = arrivals.values().filter(|(_, n)| *n > 1).count();
    if duplicates > 0 || arrivals.len() != o.events {
        bail!("{} distinct keys for {} events, {duplicates} received more than once", arrivals.len(), o.events);
    }
    let mut lat: Vec<f64> = sent
        .iter()
        .map(|(k, t)| arrivals.get(k).map(|(a, _)| a.duration_since(*t).as_secs_f64() * 1e3).context("missing"))
        .collect::<Result<_>>()?;
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    Ok(format!(
        "notify: {} alert events published into NTA_ALERTS every {} ms, delivered by `nta run --target notifier` to a \
         local webhook\n  alert-to-notification latency: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms; {} keys received \
         more than once\n",
        o.events,
        o.interval.as_millis(),
        q(0.5),
        q(0.95),
        q(1.0),
        duplicates
    ))
}

fn event(id: i64) -> wire::AlertEvent {
    let key = format!("10.9.{}.{}", id / 250, id % 250 + 1);
    wire::AlertEvent {
        id,
        event: "opened".into(),
        view: wire::View::Source,
        summary: wire::alert::summary(wire::View::Source, &key, "port_scan", None),
        key,
        class: "port_scan".into(),
        state: "open".into(),
        severity: "HIGH".into(),
        detected_by: "model".into(),
        first_seen: 1.7e9,
        last_seen: 1.7e9,
        window_count: 1,
        peak_confidence: 0.9,
        packets: 100,
        bytes: 6000,
        distinct_sources: None,
        event_id: Some(id),
    }
}

/// A minimal HTTP/1.1 server: records each request's `Idempotency-Key` and answers 200.
async fn serve(listener: TcpListener, arrivals: Arrivals) {
    while let Ok((conn, _)) = listener.accept().await {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            let (r, mut w) = conn.into_split();
            let mut r = BufReader::new(r);
            loop {
                let (mut len, mut key) = (0usize, None);
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = l.split_once(':') {
                        match name.trim().to_ascii_lowercase().as_str() {
                            "content-length" => len = value.trim().parse().unwrap_or(0),
                            "idempotency-key" => key = Some(value.trim().to_string()),
                            _ => {}
                        }
                    }
                }
                let now = Instant::now();
                let mut body = vec![0u8; len];
                if r.read_exact(&mut body).await.is_err() {
                    return;
                }
                if let Some(k) = key {
                    arrivals.lock().unwrap().entry(k).and_modify(|(_, n)| *n += 1).or_insert((now, 1));
                }
                if w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.is_err() {
                    return;
                }
            }
        });
    }
}
