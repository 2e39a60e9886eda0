//! Real local receivers for the notifier tests: an HTTP server (webhooks and Telegram's
//! `sendMessage`), syslog over UDP and TCP, and a small SMTP server; plus publishing alert events
//! into `NTA_ALERTS` the way the predictor does and running `nta run --target notifier`.
#![allow(dead_code)]

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};
use wire::{AlertEvent, View};

/// What a receiver got: idempotency key -> times received.
#[derive(Clone, Default)]
pub struct Seen(pub Arc<Mutex<BTreeMap<String, usize>>>);

impl Seen {
    pub fn add(&self, key: &str) {
        *self.0.lock().unwrap().entry(key.to_string()).or_default() += 1;
    }
    pub fn distinct(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    pub fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }
    pub fn keys(&self) -> Vec<String> {
        self.0.lock().unwrap().keys().cloned().collect()
    }
    pub fn duplicated(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().filter(|(_, n)| **n > 1).map(|(k, _)| k.clone()).collect()
    }
    pub fn count(&self, key: &str) -> usize {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

#[derive(Clone)]
struct Http {
    webhook: Seen,
    events: Seen,
    texts: Arc<Mutex<Vec<String>>>,
    telegram: Seen,
    /// Requests answered 400 (idempotency keys containing this text).
    reject: Option<String>,
    rejected: Seen,
    delay: Duration,
}

/// An HTTP receiver on `port`: `POST /hook` (webhook, counted by its `Idempotency-Key` header,
/// which must match the body's) and `POST /bot<token>/sendMessage` (Telegram's shape).
pub struct HttpReceiver {
    pub port: u16,
    pub webhook: Seen,
    /// `<event>|<alert id>` of each webhook request.
    pub events: Seen,
    /// Texts of the Telegram messages.
    pub texts: Arc<Mutex<Vec<String>>>,
    pub telegram: Seen,
    pub rejected: Seen,
    pub tokens: Arc<Mutex<Vec<String>>>,
    task: Option<tokio::task::JoinHandle<()>>,
    reject: Option<String>,
    delay: Duration,
}

impl HttpReceiver {
    pub async fn start(port: u16, reject: Option<&str>, delay: Duration) -> HttpReceiver {
        let mut r = HttpReceiver {
            port,
            webhook: Seen::default(),
            events: Seen::default(),
            texts: Arc::default(),
            telegram: Seen::default(),
            rejected: Seen::default(),
            tokens: Arc::default(),
            task: None,
            reject: reject.map(str::to_string),
            delay,
        };
        r.up().await;
        r
    }

    /// Starts listening (again).
    pub async fn up(&mut self) {
        let state = Http {
            webhook: self.webhook.clone(),
            events: self.events.clone(),
            texts: self.texts.clone(),
            telegram: self.telegram.clone(),
            reject: self.reject.clone(),
            rejected: self.rejected.clone(),
            delay: self.delay,
        };
        let tokens = self.tokens.clone();
        let app = Router::new()
            .route("/hook", post(hook))
            .route(
                "/{bot}/sendMessage",
                post(move |s: State<Http>, bot: Path<String>, body: Json<Value>| {
                    tokens.lock().unwrap().push(bot.0.clone());
                    telegram(s, body)
                }),
            )
            .with_state(state);
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.task = Some(tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        }));
    }

    /// Stops listening: connections are refused until [`up`].
    pub async fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }
}

async fn hook(State(s): State<Http>, headers: HeaderMap, Json(body): Json<Value>) -> StatusCode {
    tokio::time::sleep(s.delay).await;
    let key = headers.get("Idempotency-Key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert_eq!(body["idempotency_key"].as_str(), Some(key.as_str()), "header and body keys differ");
    assert!(body["text"].as_str().is_some_and(|t| t.starts_with("[NTA] ")), "{body}");
    serde_json::from_value::<AlertEvent>(body["alert"].clone()).expect("the alert field is an AlertEvent");
    if s.reject.as_deref().is_some_and(|r| key.contains(r)) {
        s.rejected.add(&key);
        return StatusCode::BAD_REQUEST;
    }
    s.webhook.add(&key);
    s.events.add(&format!("{}|{}", body["event"].as_str().unwrap_or_default(), body["alert"]["id"]));
    StatusCode::OK
}

async fn telegram(State(s): State<Http>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let text = body["text"].as_str().unwrap_or_default();
    let key = text.rsplit_once("\nid: ").map(|(_, k)| k.to_string()).unwrap_or_default();
    if body["chat_id"].is_null() || key.is_empty() {
        let err = json!({"ok": false, "error_code": 400, "description": "Bad Request: message text is empty"});
        return (StatusCode::BAD_REQUEST, Json(err));
    }
    s.telegram.add(&format!("{}|{key}", body["chat_id"]));
    s.texts.lock().unwrap().push(text.to_string());
    (StatusCode::OK, Json(json!({"ok": true, "result": {"message_id": 1, "text": text}})))
}

/// The RFC 5424 parts the tests look at: PRI, version, the SD parameters and the message.
pub fn parse_5424(line: &str) -> (u8, BTreeMap<String, String>, String) {
    let rest = line.strip_prefix('<').expect("<PRI>");
    let (pri, rest) = rest.split_once('>').unwrap();
    let rest = rest.strip_prefix("1 ").expect("VERSION 1");
    // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
    let mut it = rest.splitn(6, ' ');
    for _ in 0..5 {
        it.next().unwrap();
    }
    let sd_and_msg = it.next().unwrap();
    let sd = sd_and_msg.strip_prefix('[').expect("structured data");
    let (_id, mut rest) = sd.split_once(' ').unwrap();
    let mut params = BTreeMap::new();
    loop {
        let (name, after) = rest.split_once("=\"").unwrap();
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next().expect("unterminated value");
            match c {
                '\\' => value.push(chars.next().unwrap().1),
                '"' => break i,
                c => value.push(c),
            }
        };
        params.insert(name.trim().to_string(), value);
        rest = &after[end + 1..];
        if let Some(msg) = rest.strip_prefix("] ") {
            return (pri.parse().unwrap(), params, msg.to_string());
        }
        rest = rest.strip_prefix(' ').expect("parameters separated by a space");
    }
}

/// Syslog over UDP on `port`: one message per datagram.
pub async fn syslog_udp(port: u16, seen: Seen, lines: Arc<Mutex<Vec<String>>>) {
    let sock = UdpSocket::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = sock.recv(&mut buf).await {
            let line = String::from_utf8_lossy(&buf[..n]).to_string();
            let (_, params, _) = parse_5424(&line);
            seen.add(&params["idempotency_key"]);
            lines.lock().unwrap().push(line);
        }
    });
}

/// Syslog over TCP on `port`, octet-counting framing (`LEN SP MSG`).
pub async fn syslog_tcp(port: u16, seen: Seen, lines: Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let (seen, lines) = (seen.clone(), lines.clone());
            tokio::spawn(async move {
                let mut r = BufReader::new(conn);
                loop {
                    let mut len = Vec::new();
                    if r.read_until(b' ', &mut len).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let len: usize = std::str::from_utf8(&len[..len.len() - 1]).unwrap().parse().expect("octet count");
                    let mut msg = vec![0u8; len];
                    r.read_exact(&mut msg).await.unwrap();
                    let line = String::from_utf8(msg).unwrap();
                    let (_, params, _) = parse_5424(&line);
                    seen.add(&params["idempotency_key"]);
                    lines.lock().unwrap().push(line);
                }
            });
        }
    });
}

/// A small SMTP server (RFC 5321 without extensions, so no STARTTLS is offered): counts each
/// accepted message by its Message-ID.
pub async fn smtp(port: u16, seen: Seen, mails: Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let (seen, mails) = (seen.clone(), mails.clone());
            tokio::spawn(async move {
                let (r, mut w) = conn.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"220 test ESMTP\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(d) = data.as_mut() {
                        if line == "." {
                            let id = d
                                .lines()
                                .find_map(|l| l.strip_prefix("Message-ID: "))
                                .expect("Message-ID header")
                                .trim()
                                .to_string();
                            seen.add(id.trim_start_matches('<').trim_end_matches("@nta>"));
                            mails.lock().unwrap().push(data.take().unwrap());
                            w.write_all(b"250 OK queued\r\n").await.unwrap();
                        } else {
                            d.push_str(line.strip_prefix('.').unwrap_or(&line));
                            d.push('\n');
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250 test\r\n",
                        "HELO" | "MAIL" | "RSET" | "NOOP" => b"250 OK\r\n",
                        "RCPT" if line.contains("bounce@") => b"550 no such user\r\n",
                        "RCPT" => b"250 OK\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"502 not implemented\r\n",
                    };
                    w.write_all(reply).await.unwrap();
                }
            });
        }
    });
}

pub fn alert(id: i64, event: &str, severity: &str, key: &str) -> AlertEvent {
    AlertEvent {
        id,
        event: event.into(),
        view: View::Source,
        key: key.into(),
        class: "port_scan".into(),
        state: if event == "opened" || event == "updated" { "open" } else { event }.into(),
        severity: severity.into(),
        detected_by: "model".into(),
        first_seen: 1_700_000_000.0,
        last_seen: 1_700_000_000.0 + id as f64,
        window_count: 1,
        peak_confidence: 0.93,
        packets: 100,
        bytes: 6000,
        distinct_sources: None,
        summary: wire::alert::summary(View::Source, key, "port_scan", None),
        event_id: None,
    }
}

/// Publishes `events` into `NTA_ALERTS` (created as the roles create it) the way the predictor
/// does: subject per class, `Nats-Msg-Id` = the event id. Returns the ids.
pub async fn publish(nats_url: &str, events: &[(i64, AlertEvent)]) -> Vec<String> {
    let client = async_nats::connect(nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    bus::streams::ensure_alerts_stream(&js, &bus::AlertLimits::default()).await.unwrap();
    let mut ids = Vec::new();
    for (event_id, a) in events {
        let mut a = a.clone();
        a.event_id = Some(*event_id);
        let id = bus::alert_event_msg_id(*event_id);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        let body = serde_json::to_vec(&a).unwrap();
        js.publish_with_headers(bus::alert_subject(&a.class), headers, body.into()).await.unwrap().await.unwrap();
        ids.push(id);
    }
    ids
}

/// Dead letters: (reason header, payload) of every message in `NTA_DEADLETTER`.
pub async fn dead_letters(nats_url: &str) -> Vec<String> {
    let client = async_nats::connect(nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let Ok(stream) = js.get_stream(bus::DEADLETTER_STREAM).await else { return vec![] };
    let mut out = Vec::new();
    let last = stream.get_info().await.map(|i| i.state.last_sequence).unwrap_or(0);
    for seq in 1..=last {
        if let Ok(m) = stream.get_raw_message(seq).await {
            let reason =
                m.headers.get(bus::DEADLETTER_REASON_HEADER).map(|v| v.as_str().to_string()).unwrap_or_default();
            out.push(reason);
        }
    }
    out
}

/// True once the notifier consumer has every event acknowledged.
pub async fn drained(nats_url: &str) -> bool {
    let client = async_nats::connect(nats_url).await.unwrap();
    matches!(bus::consume::backlog(&client, bus::ALERTS_STREAM, "nta-notifier").await, Ok(Some(0)))
}

/// `nta run --target notifier` with `args` and `env` (secrets), logging to a file.
pub fn notifier(nats_url: &str, args: &[String], env: &[(&str, String)], log: &std::path::Path) -> Running {
    let mut cmd = Command::new(testkit::nta_bin());
    cmd.args([
        "run",
        "--target",
        "notifier",
        "--nats-url",
        nats_url,
        "--metrics-addr",
        &format!("127.0.0.1:{}", testkit::free_port()),
    ])
    .args(args)
    .env("NTA_LOG", "info,async_nats=warn")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Running(cmd.spawn().expect("starting nta"))
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A role process killed when dropped: a test that fails half-way leaves no notifier running
/// (one kept retrying a deleted nats-server for minutes after a failed CI run).
pub struct Running(pub Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
