//! The whole stack in headless Chromium. `nta run` with the ingestor, windower, predictor and
//! dashboard roles (password login); an agent replays a shared attack capture while the alerts
//! page is open, and the alert must appear without a reload within a second of its publication;
//! its detail page must show the windows that raised it. Then an agent replays a capture made
//! here whose DNS names, HTTP path and Host and TLS server name carry script payloads: the
//! packets page must show them as text, with no element injected and no script run, and find
//! the ClientHellos by application protocol and server name. Screenshots land in
//! `$CARGO_TARGET_DIR/dashboard-e2e/`.

mod common;

use common::*;
use futures::StreamExt;
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use testkit::browser::Driver;

const PASSWORD: &str = "e2e-password";
const ATTACK: &str = "port_scan-nmap-syn.pcap";
const ATTACKER: &str = "172.16.0.8";
const HOSTILE_SRC: [u8; 4] = [10, 66, 0, 5];
const QNAME_IMG: &str = "<img src=x onerror=window.__xss=1>.evil.test";
const QNAME_SCRIPT: &str = "<script>window.__xss=2</script>.evil.test";
const HTTP_PATH: &str = "/search?q=<script>window.__xss=3</script>";
const HTTP_HOST: &str = "<b onmouseover=window.__xss=4>evil</b>";
const SNI_IMG: &str = "<img src=x onerror=window.__xss=5>.sni.test";
const SNI_PLAIN: &str = "www.example.org";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_attack_alerts_live_and_hostile_names_render_as_text() {
    let Some(d) = Driver::start().await else { return };
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _stack = Role(
        nta()
            .args([
                "run",
                "--target",
                "ingestor",
                "--target",
                "windower",
                "--target",
                "predictor",
                "--target",
                "dashboard",
            ])
            .args(["--nats-url", &nats.url, "--database-url", &db.url, "--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
            .env("NTA_DASHBOARD_PASSWORD", PASSWORD)
            .stdout(Stdio::null())
            .spawn()
            .expect("starting nta"),
    );
    let http = reqwest::Client::new();
    let up = wait_for(Duration::from_secs(60), || async {
        http.get(format!("{base}/health")).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())
    })
    .await;
    assert!(up.is_some(), "dashboard did not come up");

    // Sign in and open the alerts page; a reload would lose the marker.
    d.goto(&format!("{base}/")).await;
    d.wait_for("document.getElementById('password')", Duration::from_secs(10)).await;
    d.type_into("#password", PASSWORD).await;
    d.click("#login-btn").await;
    d.wait_for(
        "document.getElementById('live-text') && document.getElementById('live-text').textContent === 'live'",
        Duration::from_secs(10),
    )
    .await;
    d.exec("location.hash = '#/alerts'; window.__noReload = 42; return 0;").await;
    d.wait_for("document.querySelector('#alerts-table tbody')", Duration::from_secs(10)).await;

    // Note when the predictor publishes the first alert on the attacker, to time the browser.
    let client = async_nats::connect(&nats.url).await.unwrap();
    let mut sub = client.subscribe(format!("{}.>", bus::ALERTS_SUBJECT_PREFIX)).await.unwrap();
    let published = tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let ev: serde_json::Value = serde_json::from_slice(&m.payload).unwrap_or_default();
            if ev["key"] == ATTACKER && ev["class"] == "port_scan" {
                return (Instant::now(), ev["id"].as_i64().unwrap());
            }
        }
        panic!("alert subscription ended");
    });

    let capture = testkit::pcaps_dir().join(ATTACK);
    replay(&nats.url, &capture, "e2e-attack");
    let (at, id) =
        tokio::time::timeout(Duration::from_secs(120), published).await.expect("no port_scan alert published").unwrap();
    let row = format!("document.querySelector('#alerts-table tr[data-alert-id=\"{id}\"]')");
    d.wait_for(&row, Duration::from_secs(10)).await;
    let took = at.elapsed();
    eprintln!("alert {id} visible in the browser at most {took:?} after it was published");
    assert!(took < Duration::from_secs(1), "alert took {took:?} to appear");
    assert_eq!(d.exec("return window.__noReload;").await, json!(42), "the page was reloaded");
    let text = d.exec(&format!("return {row}.innerText;")).await;
    assert!(text.as_str().unwrap().contains("port_scan"), "{text}");
    d.screenshot("e2e-alert-live.png").await;

    // Its detail page: the windows and feature values that raised it.
    d.click(&format!("tr[data-alert-id=\"{id}\"] a")).await;
    d.wait_for(
        "document.getElementById('alert-detail') && document.querySelector('details.window')",
        Duration::from_secs(10),
    )
    .await;
    d.exec("document.querySelector('details.window').open = true; return 0;").await;
    let features = d.exec("return document.querySelector('details.window').innerText;").await;
    assert!(features.as_str().unwrap().contains("unique_dst_ports"), "{features}");
    let shot = d.screenshot("e2e-alert-detail.png").await;
    eprintln!("screenshot: {}", shot.display());
    alert_pcap_holds_the_attackers_frames(&d, &http, &base, id).await;

    // Hostile names, through the same agent -> NATS -> ingestor path.
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("hostile.pcap");
    let frames = write_hostile_capture(&pcap);
    let decoded = String::from_utf8(nta().args(["decode"]).arg(&pcap).output().unwrap().stdout).unwrap();
    for s in [QNAME_IMG, QNAME_SCRIPT, HTTP_PATH, HTTP_HOST, SNI_IMG, SNI_PLAIN] {
        assert!(decoded.contains(&serde_json::to_string(s).unwrap()), "decoder lost {s:?}: {decoded}");
    }
    replay(&nats.url, &pcap, "e2e-hostile");
    let pg = db.client().await.unwrap();
    let stored = wait_for(Duration::from_secs(60), || async {
        let n = count(&pg, "SELECT count(*) FROM raw_packets WHERE agent_id = 'e2e-hostile'").await;
        (n == frames as i64).then_some(n)
    })
    .await;
    assert!(stored.is_some(), "hostile capture not stored");
    let ip = std::net::Ipv4Addr::from(HOSTILE_SRC);
    d.exec(&format!("location.hash = '#/packets?ip={ip}'; return 0;")).await;
    d.wait_for("document.querySelectorAll('#packets-table tbody tr').length >= 5", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let table = d.exec("return document.getElementById('packets-table').innerText;").await;
    let table = table.as_str().unwrap();
    for s in [QNAME_IMG, QNAME_SCRIPT, HTTP_PATH, HTTP_HOST, SNI_IMG, SNI_PLAIN] {
        assert!(table.contains(s), "{s:?} not shown as text: {table}");
    }
    assert_eq!(d.exec("return typeof window.__xss;").await, json!("undefined"), "injected script ran");
    assert_eq!(d.exec("return document.querySelectorAll('#main img, #main script, #main b').length;").await, json!(0));
    let shot = d.screenshot("e2e-hostile-packets.png").await;
    eprintln!("screenshot: {}", shot.display());
    // The ClientHellos by application protocol (identified by content: one is on port 8443),
    // then one of them by its server name.
    d.exec(&format!("location.hash = '#/packets?ip={ip}&app_proto=tls'; return 0;")).await;
    d.wait_for(
        "document.querySelectorAll('#packets-table td.app').length === 2 \
         && [...document.querySelectorAll('#packets-table td.app')].every(t => t.textContent === 'tls')",
        Duration::from_secs(10),
    )
    .await;
    d.exec(&format!("location.hash = '#/packets?ip={ip}&sni=example.org'; return 0;")).await;
    d.wait_for(
        "document.querySelectorAll('#packets-table td.app').length === 1 \
         && document.getElementById('packets-table').innerText.includes('server name www.example.org')",
        Duration::from_secs(10),
    )
    .await;
    d.quit().await;
}

/// The detail page's "Download pcap", fetched with the browser's session cookie: a file tshark
/// opens, whose every frame is to or from the attacker, and as many as tshark counts in the
/// original capture over the alert's span.
async fn alert_pcap_holds_the_attackers_frames(d: &Driver, http: &reqwest::Client, base: &str, id: i64) {
    let href =
        d.exec("const a = document.getElementById('alert-pcap'); return a ? a.getAttribute('href') : null;").await;
    let href = href.as_str().expect("a Download pcap link on the alert page").to_string();
    assert_eq!(href, format!("/api/pcap?alert={id}"));
    let cookies = d.cmd(reqwest::Method::GET, "/cookie", serde_json::Value::Null).await;
    let cookie = cookies
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{}={}", c["name"].as_str().unwrap(), c["value"].as_str().unwrap()))
        .collect::<Vec<_>>()
        .join("; ");
    let alert: serde_json::Value = http
        .get(format!("{base}/api/alerts/{id}"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (first, last) = (alert["alert"]["first_seen"].as_f64().unwrap(), alert["alert"]["last_seen"].as_f64().unwrap());
    let r = http.get(format!("{base}{href}")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert!(r.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alert.pcap");
    std::fs::write(&file, r.bytes().await.unwrap()).unwrap();
    let out = std::process::Command::new("tshark")
        .arg("-r")
        .arg(&file)
        .args(["-T", "fields", "-e", "ip.src", "-e", "ip.dst"])
        .output()
        .unwrap();
    assert!(out.status.success(), "tshark cannot read the download: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    assert!(!lines.is_empty(), "the alert's pcap is empty");
    assert!(lines.iter().all(|l| l.split(['\t', ',']).any(|a| a == ATTACKER)), "a frame not of {ATTACKER}");
    let original = std::process::Command::new("tshark")
        .arg("-r")
        .arg(testkit::pcaps_dir().join(ATTACK))
        .arg("-Y")
        .arg(format!("ip.addr == {ATTACKER} && frame.time_epoch >= {first:.6} && frame.time_epoch <= {last:.6}"))
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&original.stdout).lines().count();
    assert_eq!(lines.len(), expected, "frames of {ATTACKER} between {first} and {last}");
    eprintln!("alert {id}: Download pcap holds {} frames of {ATTACKER}, as tshark counts in the capture", lines.len());
}

/// Writes a pcap (Ethernet, IPv4) from 10.66.0.5: two DNS queries whose names carry markup, an
/// HTTP request with markup in its path and Host and two TLS ClientHellos (one server name
/// with markup), timestamped now so the default range shows them. Returns the number of frames.
fn write_hostile_capture(path: &Path) -> usize {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let (dns_server, web) = ([10, 66, 0, 53], [10, 66, 0, 80]);
    let mut frames = Vec::new();
    for (i, name) in [QNAME_IMG, QNAME_SCRIPT].iter().enumerate() {
        let mut dns = vec![0x12, 0x34 + i as u8, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            dns.push(label.len() as u8);
            dns.extend_from_slice(label.as_bytes());
        }
        dns.extend_from_slice(&[0, 0, 1, 0, 1]);
        let mut udp = Vec::new();
        udp.extend_from_slice(&(50000 + i as u16).to_be_bytes());
        udp.extend_from_slice(&53u16.to_be_bytes());
        udp.extend_from_slice(&((8 + dns.len()) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(&dns);
        frames.push(ethernet_ipv4(17, HOSTILE_SRC, dns_server, &udp));
    }
    let http = format!("GET {HTTP_PATH} HTTP/1.1\r\nHost: {HTTP_HOST}\r\nUser-Agent: e2e\r\n\r\n");
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&40000u16.to_be_bytes());
    tcp.extend_from_slice(&80u16.to_be_bytes());
    tcp.extend_from_slice(&1000u32.to_be_bytes());
    tcp.extend_from_slice(&2000u32.to_be_bytes());
    tcp.extend_from_slice(&[5 << 4, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend_from_slice(http.as_bytes());
    frames.push(ethernet_ipv4(6, HOSTILE_SRC, web, &tcp));
    for (i, (name, port)) in [(SNI_IMG, 8443u16), (SNI_PLAIN, 443)].into_iter().enumerate() {
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&(41000 + i as u16).to_be_bytes());
        tcp.extend_from_slice(&port.to_be_bytes());
        tcp.extend_from_slice(&3000u32.to_be_bytes());
        tcp.extend_from_slice(&4000u32.to_be_bytes());
        tcp.extend_from_slice(&[5 << 4, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        tcp.extend_from_slice(&bench::capture::tls_client_hello(name));
        frames.push(ethernet_ipv4(6, HOSTILE_SRC, web, &tcp));
    }

    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for (i, f) in frames.iter().enumerate() {
        let t = now + Duration::from_millis(10 * i as u64);
        out.extend_from_slice(&(t.as_secs() as u32).to_le_bytes());
        out.extend_from_slice(&t.subsec_micros().to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).unwrap();
    frames.len()
}

fn ethernet_ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00];
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let sum = ip.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum::<u32>();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(payload);
    f
}
