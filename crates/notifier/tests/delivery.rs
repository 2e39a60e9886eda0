//! The notifier against real local receivers and a private nats-server: every output gets each
//! notified event once; a receiver down then back gets everything; a 400 is dead-lettered while
//! the rest is delivered; a SIGKILLed notifier loses nothing and resends only the event it had
//! not acknowledged. Run with `cargo build -p nta && cargo test -p notifier --test delivery`.

mod common;

use common::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(120);

fn s(x: &str) -> String {
    x.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_output_gets_each_notified_event_once() {
    let nats = testkit::NatsServer::start().unwrap();
    let http = HttpReceiver::start(testkit::free_port(), None, Duration::ZERO).await;
    let (syslog_port, smtp_port) = (testkit::free_port(), testkit::free_port());
    let (syslog, syslog_lines) = (Seen::default(), Arc::new(Mutex::new(Vec::new())));
    syslog_tcp(syslog_port, syslog.clone(), syslog_lines.clone()).await;
    let (mail, mails) = (Seen::default(), Arc::new(Mutex::new(Vec::new())));
    smtp(smtp_port, mail.clone(), mails.clone()).await;

    // Alert 3's key is attacker-controlled text: every output must carry it escaped.
    let nasty = "10.0.0.9\"] <b>x</b>|=\\ \nCEF:0|forged";
    let events = vec![
        (1, alert(1, "opened", "HIGH", "10.0.0.1")),
        (2, alert(2, "opened", "HIGH", "10.0.0.2")),
        (3, alert(3, "opened", "HIGH", nasty)),
        // Updates every 5 s with the same severity: inside the quiet period.
        (4, alert(1, "updated", "HIGH", "10.0.0.1")),
        (5, alert(1, "updated", "HIGH", "10.0.0.1")),
        (6, alert(1, "updated", "HIGH", "10.0.0.1")),
        // A severity increase notifies.
        (7, alert(2, "updated", "CRITICAL", "10.0.0.2")),
        (8, alert(2, "updated", "CRITICAL", "10.0.0.2")),
        // Below the minimum severity.
        (9, alert(9, "opened", "LOW", "10.0.0.99")),
        (10, alert(3, "resolved", "HIGH", nasty)),
    ];
    let ids = publish(&nats.url, &events).await;
    let expected: Vec<String> = [1, 2, 3, 7, 10].iter().map(|&i| ids[i - 1].clone()).collect();

    let dir = tempfile_dir();
    let log = dir.join("notifier.log");
    let token = "123456:SECRET-token-never-logged";
    let args = vec![
        s("--webhook"),
        http.url(),
        s("--syslog"),
        format!("tcp://127.0.0.1:{syslog_port}"),
        s("--syslog-format"),
        s("cef"),
        s("--smtp"),
        format!("smtp://127.0.0.1:{smtp_port}"),
        s("--mail-to"),
        s("ops@example.org,soc@example.org"),
        s("--notify-min-severity"),
        s("MEDIUM"),
    ];
    let env = [
        ("NTA_TELEGRAM_TOKEN", token.to_string()),
        ("NTA_TELEGRAM_CHAT_IDS", s("111,-222")),
        ("NTA_TELEGRAM_API_URL", format!("http://127.0.0.1:{}", http.port)),
    ];
    let mut child = notifier(&nats.url, &args, &env, &log);
    testkit::wait_until("every notification delivered and acknowledged", WAIT, || async {
        http.webhook.distinct() >= 5
            && http.telegram.distinct() >= 10
            && syslog.distinct() >= 5
            && mail.distinct() >= 5
            && drained(&nats.url).await
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();

    assert_eq!(http.webhook.keys(), sorted(&expected));
    assert_eq!(http.webhook.total(), 5, "each event once");
    let mut tg: Vec<String> = expected.iter().flat_map(|k| [format!("111|{k}"), format!("-222|{k}")]).collect();
    tg.sort();
    assert_eq!(http.telegram.keys(), tg);
    assert_eq!(http.telegram.total(), 10);
    assert!(http.tokens.lock().unwrap().iter().all(|t| t == &format!("bot{token}")), "token in the URL path");
    assert_eq!(syslog.keys(), sorted(&expected));
    assert_eq!(syslog.total(), 5);
    assert_eq!(mail.keys(), sorted(&expected));
    assert_eq!(mail.total(), 5);

    // The nasty key arrives intact in the structured data, and cannot forge CEF fields.
    let lines = syslog_lines.lock().unwrap().clone();
    let line = lines.iter().find(|l| l.contains("nta-alert-event-3")).unwrap();
    let (pri, params, msg) = parse_5424(line);
    assert_eq!(pri, 16 * 8 + 3, "local0.err for HIGH");
    assert_eq!(params["key"], "10.0.0.9\"] <b>x</b>|=\\ CEF:0|forged");
    assert!(!line.contains('\n'));
    assert!(msg.starts_with("CEF:0|NTA|nta|"), "{msg}");
    let fields = cef_header_fields(&msg);
    assert_eq!(fields.len(), 8, "{msg}");
    assert_eq!(fields[4], "port_scan");
    assert_eq!(fields[6], "8", "CEF severity of HIGH");
    assert!(fields[7].starts_with("act=opened cat=port_scan "), "{msg}");
    assert!(msg.contains("cs1=10.0.0.9\"] <b>x</b>|\\=\\\\ \\nCEF:0|forged"), "{msg}");

    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains("SECRET-token"), "the Telegram token was logged:\n{logged}");
    assert!(mails.lock().unwrap().iter().all(|m| m.contains("To: ops@example.org, soc@example.org")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receiver_down_rejection_and_sigkill() {
    let nats = testkit::NatsServer::start().unwrap();
    // Webhook 0 answers 400 to event 7; webhook 1 is down for the first 30 s.
    let a = HttpReceiver::start(testkit::free_port(), Some("event-7"), Duration::from_millis(20)).await;
    let mut b = HttpReceiver::start(testkit::free_port(), None, Duration::ZERO).await;
    b.down().await;
    let down_since = Instant::now();
    let syslog_port = testkit::free_port();
    let (syslog, lines) = (Seen::default(), Arc::new(Mutex::new(Vec::new())));
    syslog_udp(syslog_port, syslog.clone(), lines.clone()).await;

    let events: Vec<(i64, wire::AlertEvent)> =
        (1..=12).map(|i| (i, alert(i, "opened", "HIGH", &format!("10.0.1.{i}")))).collect();
    let ids = publish(&nats.url, &events).await;

    let dir = tempfile_dir();
    let log = dir.join("notifier.log");
    let args = vec![
        s("--webhook"),
        format!("{},{}", a.url(), b.url()),
        s("--syslog"),
        format!("udp://127.0.0.1:{syslog_port}"),
        s("--notifier-retry-max-ms"),
        s("1000"),
    ];
    let mut child = notifier(&nats.url, &args, &[], &log);
    // Mid-way: event 1 reached webhook 0 and syslog, webhook 1 is still down.
    testkit::wait_until("the first event at the receivers that are up", WAIT, || async {
        a.webhook.distinct() >= 1 && syslog.distinct() >= 1
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let mut child = notifier(&nats.url, &args, &[], &log);
    let down_for = Duration::from_secs(30).saturating_sub(down_since.elapsed());
    tokio::time::sleep(down_for).await;
    b.up().await;
    // Not `testkit::wait_until`: a failure must say which half is missing (it flaked once in
    // CI with nothing to go on).
    let back = Instant::now();
    loop {
        let (got, drained) = (b.webhook.distinct(), drained(&nats.url).await);
        if got >= 12 && drained {
            break;
        }
        assert!(
            back.elapsed() < WAIT,
            "{WAIT:?} after the receiver came back: webhook 1 has {got} of 12 events, consumer drained: \
             {drained}, webhook 0 {} syslog {}; notifier log:\n{}",
            a.webhook.distinct(),
            syslog.distinct(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let all = sorted(&ids);
    let mut but7 = all.clone();
    but7.retain(|k| k != &ids[6]);
    assert_eq!(b.webhook.keys(), all, "the receiver that was down got everything");
    assert_eq!(syslog.keys(), all);
    assert_eq!(a.webhook.keys(), but7, "the rejected event is not counted as delivered");
    assert_eq!(a.rejected.keys(), vec![ids[6].clone()]);
    assert_eq!(a.rejected.total(), 1, "a 400 is never retried");
    // Only the event in progress at the SIGKILL may be sent again; acknowledged ones never are.
    for seen in [&a.webhook, &syslog] {
        let dup = seen.duplicated();
        assert!(dup.is_empty() || dup == vec![ids[0].clone()], "{dup:?}");
    }
    assert_eq!(b.webhook.total(), 12, "webhook 1 accepted each event once");
    let dead = dead_letters(&nats.url).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].contains("output webhook:0") && dead[0].contains("400"), "{dead:?}");
}

/// The 7 header fields and the extension of a CEF message, split on unescaped `|`.
fn cef_header_fields(msg: &str) -> Vec<String> {
    let (mut fields, mut cur, mut chars) = (Vec::new(), String::new(), msg.chars());
    while let Some(c) = chars.next() {
        match c {
            '\\' if fields.len() < 7 => cur.extend([c].into_iter().chain(chars.next())),
            '|' if fields.len() < 7 => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("nta-notifier-test-{}-{}", std::process::id(), testkit::free_port()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Each output's verdict on real answers: SMTP 550 is permanent, a refused connection is not.
#[tokio::test]
async fn outputs_classify_real_answers() {
    use notifier::outputs::{email::Email, telegram::Telegram, webhook::Webhook, Outcome};
    let n = notifier::Notification::new(alert(1, "opened", "HIGH", "10.0.0.1"), Some("k1"));
    let smtp_port = testkit::free_port();
    let (mail, mails) = (Seen::default(), Arc::new(Mutex::new(Vec::new())));
    smtp(smtp_port, mail.clone(), mails).await;
    let t = Duration::from_secs(10);
    let url = format!("smtp://127.0.0.1:{smtp_port}");
    let ok = Email::new(&url, "nta@example.org", &[s("soc@example.org")], None, t).unwrap();
    assert_eq!(ok.deliver(&n).await, Outcome::Delivered);
    assert_eq!(mail.keys(), vec![s("k1")], "the idempotency key is the Message-ID");
    let bounce = Email::new(&url, "nta@example.org", &[s("bounce@example.org")], None, t).unwrap();
    assert!(matches!(bounce.deliver(&n).await, Outcome::Reject(r) if r.contains("550")));
    let closed = format!("smtp://127.0.0.1:{}", testkit::free_port());
    let down = Email::new(&closed, "nta@example.org", &[s("soc@example.org")], None, t).unwrap();
    assert!(matches!(down.deliver(&n).await, Outcome::Retry(_)));

    let client = reqwest::Client::new();
    let refused = format!("http://127.0.0.1:{}/hook", testkit::free_port());
    assert!(matches!(Webhook::new(0, &refused, client.clone()).unwrap().deliver(&n).await, Outcome::Retry(_)));
    // A token in the URL never shows in a failure reason.
    let api = format!("http://127.0.0.1:{}", testkit::free_port());
    let tg = Telegram::new(&api, "99:very-secret", vec![s("1")], client).unwrap();
    assert!(matches!(tg.deliver(&n).await, Outcome::Retry(r) if !r.contains("very-secret")));
}
