//! End to end in headless Chromium, driven over WebDriver (raw HTTP to chromedriver): sign in,
//! watch an alert raised through SQL + NATS appear live, open its detail page, and check that
//! hostile DNS names and HTTP paths render as text with no script run.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test is skipped with a
//! message, unless `NTA_REQUIRE_BROWSER=1` (or `CI`) is set, in which case it fails.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "browser-test-password";
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    http: reqwest::Client,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_bin(names: &[&str]) -> Option<PathBuf> {
    names.iter().map(PathBuf::from).find(|p| p.exists()).or_else(|| {
        names.iter().find_map(|n| {
            let out = Command::new("which").arg(n).output().ok()?;
            out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string()))
        })
    })
}

impl Driver {
    async fn start() -> Option<Driver> {
        let driver = find_bin(&["/usr/bin/chromedriver", "chromedriver"]);
        let chrome = find_bin(&["/usr/bin/chromium", "chromium", "/usr/bin/chromium-browser"]);
        let (Some(driver), Some(chrome)) = (driver, chrome) else {
            if std::env::var_os("NTA_REQUIRE_BROWSER").is_some() || std::env::var_os("CI").is_some() {
                panic!("chromium and chromium-driver are required (apt-get install chromium chromium-driver)");
            }
            eprintln!("SKIPPED: chromium / chromedriver not installed (apt-get install chromium chromium-driver)");
            return None;
        };
        let port = testkit::free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let start = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1400,1000".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chrome.to_string_lossy(), "args": args}
        }}});
        let r: Value = http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let session = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("new session: {r}")).to_string();
        Some(Driver { child, http, base, session, _profile: profile })
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let req = self.http.request(method.clone(), url);
        let req = if method == reqwest::Method::GET { req } else { req.json(&body) };
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        if r["value"].get("error").is_some() {
            panic!("webdriver {path}: {}", r["value"]);
        }
        r["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", json!({ "url": url })).await;
    }

    async fn exec(&self, script: &str) -> Value {
        self.cmd(reqwest::Method::POST, "/execute/sync", json!({"script": script, "args": []})).await
    }

    async fn find(&self, css: &str) -> String {
        let v = self.cmd(reqwest::Method::POST, "/element", json!({"using": "css selector", "value": css})).await;
        v[ELEMENT_KEY].as_str().unwrap_or_else(|| panic!("find {css}: {v}")).to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{e}/value"), json!({ "text": text })).await;
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{e}/click"), json!({})).await;
    }

    /// Polls `script` (an expression) until it is truthy; returns how long it took.
    async fn wait_for(&self, expr: &str, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let v = self.exec(&format!("return !!({expr});")).await;
            if v == Value::Bool(true) {
                return start.elapsed();
            }
            assert!(start.elapsed() < timeout, "timed out waiting for {expr}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.cmd(reqwest::Method::GET, "/screenshot", Value::Null).await;
        let png = base64_decode(b64.as_str().unwrap());
        assert_eq!(&png[1..4], b"PNG");
        let dir = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| testkit::workspace_root().join("target"))
            .join("dashboard-e2e");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }

    async fn quit(&self) {
        let _ = self.http.delete(format!("{}/session/{}", self.base, self.session)).send().await;
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64"),
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_login_live_alert_detail_and_xss() {
    let Some(d) = Driver::start().await else { return };
    let f = Fixture::start(Some(PASSWORD), None).await;

    // Sign in.
    d.goto(&format!("{}/", f.base)).await;
    d.wait_for("document.getElementById('password')", Duration::from_secs(10)).await;
    d.type_into("#password", PASSWORD).await;
    d.click("#login-btn").await;
    d.wait_for("document.getElementById('live-text') && document.getElementById('live-text').textContent === 'live'", Duration::from_secs(10))
        .await;
    d.wait_for("document.querySelector('.kpi')", Duration::from_secs(10)).await;
    let shot = d.screenshot("overview.png").await;
    eprintln!("screenshot: {}", shot.display());

    // Alerts page; mark the document so that a reload would be noticed.
    d.exec("location.hash = '#/alerts'; window.__noReload = 42; return 0;").await;
    d.wait_for(&format!("document.querySelector('#alerts-table tr[data-alert-id=\"{}\"]')", f.alert_id), Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let nats = async_nats::connect(&f.nats.url).await.unwrap();
    let db = f.db.client().await.unwrap();
    let id = raise_alert(&db, &nats, "10.0.0.2", "syn_flood", "CRITICAL").await;
    let took = d
        .wait_for(&format!("document.querySelector('#alerts-table tr[data-alert-id=\"{id}\"]')"), Duration::from_secs(5))
        .await;
    eprintln!("alert visible in the browser {took:?} after it was published");
    assert!(took < Duration::from_secs(1), "alert took {took:?} to appear");
    assert_eq!(d.exec("return window.__noReload;").await, json!(42), "the page was reloaded");
    let row_text = d.exec(&format!("return document.querySelector('tr[data-alert-id=\"{id}\"]').innerText;")).await;
    assert!(row_text.as_str().unwrap().contains("syn_flood against 10.0.0.2"), "{row_text}");
    d.screenshot("alerts-live.png").await;

    // Detail page of the fixture alert: evidence and the windows that raised it.
    d.click(&format!("tr[data-alert-id=\"{}\"] a", f.alert_id)).await;
    d.wait_for("document.getElementById('alert-detail')", Duration::from_secs(10)).await;
    let evidence = d.exec("return document.getElementById('alert-evidence').textContent;").await;
    assert!(evidence.as_str().unwrap().contains("\"distinct_ports\": 300"), "{evidence}");
    let windows = d.exec("return document.querySelectorAll('details.window').length;").await;
    assert_eq!(windows, json!(10));
    d.exec("document.querySelector('details.window').open = true; return 0;").await;
    let shot = d.screenshot("alert-detail.png").await;
    eprintln!("screenshot: {}", shot.display());

    // Resolve from the detail page (cookie session: CSRF token sent by the page).
    d.click("#resolve-btn").await;
    d.wait_for("!document.getElementById('resolve-btn') && document.getElementById('alert-detail')", Duration::from_secs(10)).await;
    let st: String = db.query_one("SELECT state FROM alerts WHERE id = $1", &[&f.alert_id]).await.unwrap().get(0);
    assert_eq!(st, "resolved");

    // Hostile strings in packets render as text; no script runs.
    d.exec("location.hash = '#/packets?ip=10.0.0.3'; return 0;").await;
    d.wait_for("document.querySelector('#packets-table td.info')", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = d.exec("return document.getElementById('packets-table').innerText;").await;
    let text = text.as_str().unwrap();
    assert!(text.contains(XSS_QNAME), "{text}");
    assert!(text.contains(XSS_PATH), "{text}");
    assert!(text.contains(XSS_HOST), "{text}");
    assert_eq!(d.exec("return typeof window.__xss;").await, json!("undefined"), "injected script ran");
    assert_eq!(d.exec("return document.querySelectorAll('#main img, #main script, #main b').length;").await, json!(0));
    let shot = d.screenshot("packets-xss.png").await;
    eprintln!("screenshot: {}", shot.display());

    // The host page renders (chart + tables).
    d.exec("location.hash = '#/hosts/10.0.0.1'; return 0;").await;
    d.wait_for("document.querySelector('#main canvas') && document.querySelectorAll('#main table').length >= 5", Duration::from_secs(10))
        .await;
    d.screenshot("host.png").await;
    assert_eq!(d.exec("return typeof window.__xss;").await, json!("undefined"));
    d.quit().await;
    f.stop().await;
}
