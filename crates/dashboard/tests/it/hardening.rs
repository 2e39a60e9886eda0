//! Hardening (issue 9): open-mode Host/Origin rules, login throttling, slow clients, caps,
//! TLS, idle sessions, generic errors, CSV injection and the streamed export.

use crate::common::*;
use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, COOKIE, HOST, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "test-token-0123456789";
const PASSWORD: &str = "correct horse battery staple";

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A value of the public `/metrics`, on a connection that the server closes after answering.
async fn metric(f: &Fixture, name: &str) -> u64 {
    let r = client().get(format!("{}/metrics", f.base)).header("connection", "close").send().await.unwrap();
    let m = r.text().await.unwrap();
    m.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in {m}"))
        .parse()
        .unwrap()
}

async fn alert_state(f: &Fixture) -> String {
    let db = f.db.client().await.unwrap();
    db.query_one("SELECT state FROM alerts WHERE id = $1", &[&f.alert_id]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_mode_refuses_foreign_hosts_and_cross_origin_posts() {
    let f = Fixture::start(None, None).await;
    let c = client();
    let port = f.base.rsplit(':').next().unwrap().to_string();
    let alerts = format!("{}/api/alerts", f.base);
    assert_eq!(c.get(&alerts).send().await.unwrap().status(), StatusCode::OK);
    for host in [format!("localhost:{port}"), "localhost".into(), format!("127.0.0.2:{port}")] {
        let r = c.get(&alerts).header(HOST, &host).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "Host: {host}");
    }
    // DNS rebinding: the browser sends the attacker's name as Host.
    for host in [format!("rebind.evil.example:{port}"), "evil.example".into(), format!("10.1.2.3:{port}")] {
        for path in ["/api/alerts", "/health", "/"] {
            let r = c.get(format!("{}{path}", f.base)).header(HOST, &host).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "Host: {host} {path}");
        }
    }

    // A page elsewhere POSTing a form: refused by Origin, Referer or Sec-Fetch-Site.
    let resolve = format!("{}/api/alerts/{}/resolve", f.base, f.alert_id);
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("referer", "http://evil.example/page.html"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let r = c.post(&resolve).header(name, value).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name}: {value}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "forbidden");
    }
    assert_eq!(alert_state(&f).await, "open", "no refused request changed anything");
    // The dashboard's own page (same origin) resolves.
    let r =
        c.post(&resolve).header("origin", f.base.clone()).header("sec-fetch-site", "same-origin").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(alert_state(&f).await, "resolved");
    f.stop().await;
}

/// `POST /login` from 127.0.0.1: (status, Retry-After, Set-Cookie).
async fn try_login(base: &str, password: &str) -> (StatusCode, Option<u64>, Option<String>) {
    let r = client().post(format!("{base}/login")).header("origin", base).form(&[("password", password)]).send().await;
    let r = r.unwrap();
    let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
    (r.status(), h("retry-after").map(|s| s.parse().unwrap()), h(SET_COOKIE.as_str()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_throttled_and_locks_out() {
    let f = Fixture::start_cfg(Some(PASSWORD), None, true, |c| {
        c.login_max_failures = 3;
        c.login_lockout_s = 3;
    })
    .await;
    // 25 parallel guesses: they queue behind each other, so only the first 3 are checked
    // (each answered after a growing delay) and the rest find the client locked out.
    let t0 = Instant::now();
    let guesses: Vec<_> = (0..25)
        .map(|i| {
            let base = f.base.clone();
            tokio::spawn(async move { try_login(&base, &format!("guess {i}")).await })
        })
        .collect();
    let mut answers = Vec::new();
    for g in guesses {
        answers.push(g.await.unwrap());
    }
    let elapsed = t0.elapsed();
    let checked = answers.iter().filter(|a| a.0 == StatusCode::SEE_OTHER).count();
    let locked: Vec<_> = answers.iter().filter(|a| a.0 == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(checked + locked.len(), 25, "{answers:?}");
    assert!(checked <= 3, "{checked} guesses were checked: {answers:?}");
    assert!(locked.len() >= 22);
    assert!(locked.iter().all(|a| a.1.is_some_and(|s| (1..=3).contains(&s))), "Retry-After: {answers:?}");
    assert!(answers.iter().all(|a| a.2.is_none()), "no session for a guess");
    // 250 + 500 + 1000 ms of delays at least, one after the other (a lower bound only).
    assert!(elapsed >= Duration::from_millis(1500), "25 guesses answered in {elapsed:?}");

    // Locked out: even the right password is refused until the lockout ends.
    let (st, retry, cookie) = try_login(&f.base, PASSWORD).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    assert!(cookie.is_none());
    tokio::time::sleep(Duration::from_secs(retry.unwrap()) + Duration::from_millis(300)).await;
    let (st, _, cookie) = try_login(&f.base, PASSWORD).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let cookie = cookie.expect("signed in after the lockout");
    assert!(cookie.contains("HttpOnly") && !cookie.contains("Secure"), "plain HTTP: {cookie}");

    // Nothing about logins on the public metrics.
    let m = client().get(format!("{}/metrics", f.base)).send().await.unwrap().text().await.unwrap();
    assert!(!m.contains("login"), "{m}");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off() {
    let f = Fixture::start_cfg(None, Some(TOKEN), false, |c| c.header_timeout_ms = 500).await;
    // A live-alert stream is a response in progress, not a slow request: it stays open.
    let stream = open_stream(&f.base).await;
    assert_eq!(stream.status(), StatusCode::OK);
    let mut body = stream.bytes_stream();
    assert!(body.next().await.unwrap().unwrap().starts_with(b"event: hello"));
    let t0 = Instant::now(); // the server's clock starts after this
    let mut s = tokio::net::TcpStream::connect(f.addr()).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").await.unwrap();
    let mut buf = Vec::new();
    // Closed (EOF or reset) well before this generous bound, without an answer.
    let r = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "half-sent request still open after {:?}", t0.elapsed());
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"), "{}", String::from_utf8_lossy(&buf));
    assert!(t0.elapsed() >= Duration::from_millis(450), "cut before the timeout: {:?}", t0.elapsed());
    assert!(metric(&f, "nta_dashboard_header_timeouts_total").await >= 1);
    // A client that sends its request in time is served.
    let mut s = tokio::net::TcpStream::connect(f.addr()).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf));
    // Well past the header timeout, the stream is still open (nothing to read, not ended).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let next = tokio::time::timeout(Duration::from_millis(500), body.next()).await;
    assert!(next.is_err(), "the SSE stream ended: {next:?}");
    f.stop().await;
}

async fn open_stream(base: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{base}/api/alerts/stream"))
        .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_and_stream_caps() {
    let f = Fixture::start_cfg(None, Some(TOKEN), false, |c| {
        c.max_connections = 3;
        c.max_sse_streams = 2;
    })
    .await;
    // The fixture's start-up probe may still hold a slot: wait until only this query's is taken.
    let t0 = Instant::now();
    while metric(&f, "nta_dashboard_open_connections").await > 1 {
        assert!(t0.elapsed() < Duration::from_secs(10), "connections left open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s1 = open_stream(&f.base).await;
    let s2 = open_stream(&f.base).await;
    assert_eq!((s1.status(), s2.status()), (StatusCode::OK, StatusCode::OK));
    // The third stream is refused, on the third and last connection (which its client keeps).
    let third = reqwest::Client::new();
    let r = third
        .get(format!("{}/api/alerts/stream", f.base))
        .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "unavailable");
    // A fourth connection is closed without an answer.
    let mut s = tokio::net::TcpStream::connect(f.addr()).await.unwrap();
    let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "connection beyond the cap left open");
    assert!(buf.is_empty(), "{}", String::from_utf8_lossy(&buf));
    // Freeing a stream and a connection makes room again.
    drop((s1, third));
    let mut again = None;
    for _ in 0..100 {
        if let Ok(r) = reqwest::Client::new()
            .get(format!("{}/api/alerts/stream", f.base))
            .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
            .send()
            .await
        {
            if r.status() == StatusCode::OK {
                again = Some(r);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = again.expect("a stream once one ended");
    drop((again, s2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(metric(&f, "nta_dashboard_connections_refused_total").await >= 1);
    assert!(metric(&f, "nta_dashboard_sse_refused_total").await >= 1);
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serving_and_secure_cookie() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();

    // Half a TLS configuration is an error, not plain HTTP.
    let mut cfg = dashboard::DashboardConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        "postgres://x@127.0.0.1/x",
        "nats://127.0.0.1:1",
    );
    cfg.tls_cert = Some(cert_path.clone());
    let err = dashboard::run(cfg, async {}).await.unwrap_err();
    assert!(err.to_string().contains("tls_key"), "{err}");

    let f = Fixture::start_cfg(Some(PASSWORD), None, true, |c| {
        c.tls_cert = Some(cert_path.clone());
        c.tls_key = Some(key_path.clone());
    })
    .await;
    assert!(f.base.starts_with("https://localhost:"));
    let port: u16 = f.base.rsplit(':').next().unwrap().parse().unwrap();
    let c = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let v: Value = c.get(format!("{}/health", f.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["service"], "nta-dashboard");
    let r = c.post(format!("{}/login", f.base)).header("origin", &f.base).form(&[("password", PASSWORD)]).send();
    let r = r.await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let session = cookie.split(';').next().unwrap();
    let r = c.get(format!("{}/api/session", f.base)).header(COOKIE, session).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{port}/health")).send().await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_end_and_cookies_can_be_forced_secure() {
    let f = Fixture::start_cfg(Some(PASSWORD), None, true, |c| {
        c.session_idle_s = 1;
        c.secure_cookies = true; // behind a TLS-terminating proxy
    })
    .await;
    let (st, _, cookie) = try_login(&f.base, PASSWORD).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let cookie = cookie.unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_string();
    let get = || client().get(format!("{}/api/session", f.base)).header(COOKIE, &session).send();
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(get().await.unwrap().status(), StatusCode::UNAUTHORIZED, "idle session still valid");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_errors_do_not_leak_database_text() {
    let f = Fixture::start(None, Some(TOKEN)).await;
    let db = f.db.client().await.unwrap();
    db.batch_execute("ALTER TABLE alerts DROP COLUMN summary CASCADE").await.unwrap();
    let r = client()
        .get(format!("{}/api/alerts", f.base))
        .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let text = r.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"], "internal");
    let id = v["id"].as_str().unwrap();
    assert!(id.len() == 8 && id.chars().all(|c| c.is_ascii_hexdigit()), "{text}");
    for leak in ["summary", "column", "does not exist", "alerts"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
    f.stop().await;
}

/// Attacker-controlled names and paths a spreadsheet would run as formulas.
const CSV_PAYLOADS: [&str; 8] = [
    " =1+1",
    "\u{FF1D}HYPERLINK(\"http://evil\")",
    "@SUM(1+1)",
    "+cmd|' /C calc'!A0",
    "-2+3",
    "\t=1",
    "\r\n=2",
    "\n=3",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_export_is_neutralised_and_streamed() {
    let f = Fixture::start(None, Some(TOKEN)).await;
    let db = f.db.client().await.unwrap();
    for (i, p) in CSV_PAYLOADS.iter().enumerate() {
        db.execute(
            "INSERT INTO raw_packets (ts, interface, src_ip, dst_ip, protocol, length, dns_qname, http_path, agent_id, batch_id, idx)
             VALUES (to_timestamp($1::float8 - 40), 'eth0', '10.0.0.4', '10.0.0.80', 'TCP', 100, $2, $2, 'a', 'csv', $3)",
            &[&f.now, p, &(i as i32)],
        )
        .await
        .unwrap();
    }
    let export = |q: &str| {
        client().get(format!("{}/api/packets.csv?{q}", f.base)).header(AUTHORIZATION, format!("Bearer {TOKEN}")).send()
    };
    let csv = export("ip=10.0.0.4").await.unwrap().text().await.unwrap();
    for p in CSV_PAYLOADS {
        let cell = format!("\"'{}\"", p.replace('"', "\"\""));
        assert_eq!(csv.matches(&cell).count(), 2, "dns_qname and http_path of {p:?} in {csv}");
        assert!(!csv.contains(&format!(",\"{}", p.replace('"', "\"\""))), "{p:?} unescaped in {csv}");
    }

    // Many rows: streamed (chunked, no Content-Length), all there, bounded by the limit.
    db.execute(
        "INSERT INTO raw_packets (ts, interface, src_ip, dst_ip, protocol, length, agent_id, batch_id, idx)
         SELECT to_timestamp($1::float8 - 100 - g * 0.01), 'eth0', '10.0.0.5', '10.0.0.6', 'UDP', 64, 'a', 'many', g
         FROM generate_series(1, 30000) g",
        &[&f.now],
    )
    .await
    .unwrap();
    let r = export("src=10.0.0.5&limit=100000").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("content-length").is_none(), "{:?}", r.headers());
    assert_eq!(r.headers()["transfer-encoding"], "chunked");
    let csv = r.text().await.unwrap();
    assert_eq!(csv.lines().count(), 30_001);
    assert!(csv.lines().skip(1).all(|l| l.contains("\"10.0.0.5\"")));
    let csv = export("src=10.0.0.5&limit=1234").await.unwrap().text().await.unwrap();
    assert_eq!(csv.lines().count(), 1235);
    f.stop().await;
}
