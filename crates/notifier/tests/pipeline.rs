//! The stack end to end: `port_scan-nmap-syn.pcap` replayed by an agent through ingestor,
//! windower and predictor (which publishes alert events into `NTA_ALERTS`), and a notifier with
//! every output: each alert the predictor opened reaches the webhook, Telegram, syslog and
//! e-mail receivers exactly once as an `opened` notification.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replayed_scan_notifies_each_alert_opening_once_per_output() {
    let nats = testkit::NatsServer::start().unwrap();
    let db = testkit::TestDb::create().await.unwrap();
    let http = HttpReceiver::start(testkit::free_port(), None, Duration::ZERO).await;
    let (syslog_port, smtp_port) = (testkit::free_port(), testkit::free_port());
    let (syslog, lines) = (Seen::default(), Arc::new(Mutex::new(Vec::new())));
    syslog_udp(syslog_port, syslog.clone(), lines.clone()).await;
    let (mail, mails) = (Seen::default(), Arc::new(Mutex::new(Vec::new())));
    smtp(smtp_port, mail.clone(), mails.clone()).await;

    let dir = std::env::temp_dir().join(format!("nta-notifier-e2e-{}", testkit::free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let args: Vec<String> = [
        "--webhook",
        &http.url(),
        "--syslog",
        &format!("udp://127.0.0.1:{syslog_port}"),
        "--smtp",
        &format!("smtp://127.0.0.1:{smtp_port}"),
        "--mail-to",
        "soc@example.org",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let env = [
        ("NTA_TELEGRAM_TOKEN", "42:token".to_string()),
        ("NTA_TELEGRAM_CHAT_IDS", "7".to_string()),
        ("NTA_TELEGRAM_API_URL", format!("http://127.0.0.1:{}", http.port)),
    ];
    let mut notifier = notifier(&nats.url, &args, &env, &dir.join("notifier.log"));
    let mut stack = Command::new(testkit::nta_bin())
        .args(["run", "--target", "ingestor,windower,predictor", "--nats-url", &nats.url, "--database-url", &db.url])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", testkit::free_port())])
        .env("NTA_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let capture = testkit::pcaps_dir().join("port_scan-nmap-syn.pcap");
    let out = Command::new(testkit::nta_bin())
        .args(["run", "--target", "agent", "--nats-url", &nats.url, "--read"])
        .arg(&capture)
        .args(["--metrics-addr", &format!("127.0.0.1:{}", testkit::free_port())])
        .env("NTA_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "agent: {}", String::from_utf8_lossy(&out.stderr));

    let client = db.client().await.unwrap();
    let nats_client = async_nats::connect(&nats.url).await.unwrap();
    testkit::wait_until("the scan alerted and every alert event notified", Duration::from_secs(180), || async {
        let alerts = testkit::count(&client, "SELECT count(*) FROM alerts").await as usize;
        let windows_done =
            matches!(bus::consume::backlog(&nats_client, bus::WINDOWS_STREAM, "nta-predictor").await, Ok(Some(0)));
        let opened = http.events.keys().iter().filter(|k| k.starts_with("opened|")).count();
        alerts > 0 && windows_done && opened >= alerts && drained(&nats.url).await
    })
    .await;
    let rows = client.query("SELECT id FROM alerts ORDER BY id", &[]).await.unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let classes = testkit::count(&client, "SELECT count(*) FROM alerts WHERE class = 'port_scan'").await;
    assert!(classes > 0, "the scan was alerted as a port scan");
    let _ = notifier.kill();
    let _ = notifier.wait();
    let _ = stack.kill();
    let _ = stack.wait();

    // Webhook: one `opened` request per alert.
    let opened: Vec<String> = ids.iter().map(|id| format!("opened|{id}")).collect();
    let got: Vec<String> = http.events.keys().into_iter().filter(|k| k.starts_with("opened|")).collect();
    assert_eq!(got, sorted_strings(&opened), "webhook");
    assert!(opened.iter().all(|k| http.events.count(k) == 1), "webhook: an opening sent twice");
    // Syslog: the same, read from the RFC 5424 structured data.
    let mut per_alert: BTreeMap<String, usize> = BTreeMap::new();
    for line in lines.lock().unwrap().iter() {
        let (_, params, _) = parse_5424(line);
        if params["event"] == "opened" {
            *per_alert.entry(params["id"].clone()).or_default() += 1;
        }
    }
    let expect: BTreeMap<String, usize> = ids.iter().map(|id| (id.to_string(), 1)).collect();
    assert_eq!(per_alert, expect, "syslog");
    // E-mail: one message per opening, its body naming the alert.
    let mut per_alert: BTreeMap<String, usize> = BTreeMap::new();
    for m in mails.lock().unwrap().iter() {
        if m.contains("(opened,") {
            let id = m.lines().find_map(|l| l.strip_prefix("alert ")).and_then(|l| l.split(':').next()).unwrap();
            *per_alert.entry(id.to_string()).or_default() += 1;
        }
    }
    assert_eq!(per_alert, expect, "e-mail");
    // Telegram: one message per opening in the one chat.
    let texts = http.texts.lock().unwrap().clone();
    assert_eq!(texts.iter().filter(|t| t.contains("(opened,")).count(), ids.len(), "telegram: {texts:?}");
}

fn sorted_strings(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}
