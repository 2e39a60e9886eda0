//! End to end in headless Chromium, driven over WebDriver (raw HTTP to chromedriver): sign in,
//! watch an alert raised through SQL + NATS appear live, open its detail page, and check that
//! hostile DNS names, HTTP paths and TLS server names render as text with no script run, and
//! that packets are found by application protocol and server name.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test is skipped with a
//! message, unless `NTA_REQUIRE_BROWSER=1` (or `CI`) is set, in which case it fails.

use crate::common::*;
use serde_json::json;
use std::time::Duration;
use testkit::browser::Driver;

const PASSWORD: &str = "browser-test-password";

/// Opens the dashboard and signs in with [`PASSWORD`].
async fn sign_in(d: &Driver, f: &Fixture) {
    d.goto(&format!("{}/", f.base)).await;
    d.wait_for("document.getElementById('password')", Duration::from_secs(10)).await;
    d.type_into("#password", PASSWORD).await;
    d.click("#login-btn").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_login_live_alert_detail_and_xss() {
    let Some(d) = Driver::start().await else { return };
    let f = Fixture::start(Some(PASSWORD), None).await;

    // Sign in.
    sign_in(&d, &f).await;
    d.wait_for(
        "document.getElementById('live-text') && document.getElementById('live-text').textContent === 'live'",
        Duration::from_secs(10),
    )
    .await;
    d.wait_for("document.querySelector('.kpi')", Duration::from_secs(10)).await;
    let shot = d.screenshot("overview.png").await;
    eprintln!("screenshot: {}", shot.display());

    // Alerts page; mark the document so that a reload would be noticed.
    d.exec("location.hash = '#/alerts'; window.__noReload = 42; return 0;").await;
    d.wait_for(
        &format!("document.querySelector('#alerts-table tr[data-alert-id=\"{}\"]')", f.alert_id),
        Duration::from_secs(10),
    )
    .await;
    let nats = async_nats::connect(&f.nats.url).await.unwrap();
    wait_for_follower(&nats).await;
    let mut db = f.db.client().await.unwrap();
    let id = raise_alert(&mut db, &nats, "10.0.0.2", "syn_flood", "CRITICAL").await;
    let took = d
        .wait_for(
            &format!("document.querySelector('#alerts-table tr[data-alert-id=\"{id}\"]')"),
            Duration::from_secs(5),
        )
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
    d.wait_for(
        "!document.getElementById('resolve-btn') && document.getElementById('alert-detail')",
        Duration::from_secs(10),
    )
    .await;
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

    // Application protocol and TLS server name: shown, filterable from the form, and a server
    // name carrying markup stays text.
    let app_rows = insert_app_packets(&db, now(), 20.0).await;
    d.exec(&format!("location.hash = '#/packets?ip={APP_CLIENT}'; return 0;")).await;
    d.wait_for(
        &format!("document.querySelectorAll('#packets-table tbody tr').length === {app_rows}"),
        Duration::from_secs(10),
    )
    .await;
    let text = d.exec("return document.getElementById('packets-table').innerText;").await;
    let text = text.as_str().unwrap();
    assert!(text.contains(&format!("TLS ClientHello, server name {XSS_SNI}")), "{text}");
    assert!(text.contains("TLS ClientHello, server name api.example.org"), "{text}");
    let apps = d.exec("return [...document.querySelectorAll('#packets-table td.app')].map(t => t.textContent);").await;
    assert_eq!(apps, json!(["tls", "tls", "tls", "ssh", "quic"]));
    assert_eq!(d.exec("return typeof window.__xss;").await, json!("undefined"), "injected script ran");
    assert_eq!(d.exec("return document.querySelectorAll('#main img, #main script, #main b').length;").await, json!(0));
    d.exec("document.getElementById('pf-app_proto').value = 'tls'; document.getElementById('pf-sni').value = 'onerror'; return 0;")
        .await;
    d.click("#packet-filters button[type=submit]").await;
    d.wait_for(
        "location.hash.includes('sni=onerror') && document.querySelectorAll('#packets-table tbody tr').length === 1",
        Duration::from_secs(10),
    )
    .await;
    let text = d.exec("return document.getElementById('packets-table').innerText;").await;
    assert!(text.as_str().unwrap().contains(XSS_SNI), "{text}");
    d.screenshot("packets-sni.png").await;
    // The client's host page lists the names it asked for, as text, each a link to its packets.
    d.exec(&format!("location.hash = '#/hosts/{APP_CLIENT}'; return 0;")).await;
    d.wait_for("document.querySelectorAll('#sni-requested tbody tr a').length === 2", Duration::from_secs(10)).await;
    let names = d
        .exec("return [...document.querySelectorAll('#sni-requested tbody tr a')].map(a => a.textContent).sort();")
        .await;
    assert_eq!(names, json!([XSS_SNI, "api.example.org"]));
    assert_eq!(d.exec("return document.querySelectorAll('#main img, #main script, #main b').length;").await, json!(0));
    d.click("#sni-requested tbody tr a").await;
    d.wait_for(
        "location.hash.startsWith('#/packets') && document.querySelectorAll('#packets-table tbody tr').length === 1",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(d.exec("return typeof window.__xss;").await, json!("undefined"));

    // The host page renders (chart + tables).
    d.exec("location.hash = '#/hosts/10.0.0.1'; return 0;").await;
    d.wait_for(
        "document.querySelector('#main canvas') && document.querySelectorAll('#main table').length >= 5",
        Duration::from_secs(10),
    )
    .await;
    d.screenshot("host.png").await;
    assert_eq!(d.exec("return typeof window.__xss;").await, json!("undefined"));
    d.quit().await;
    f.stop().await;
}

/// The runs page: the list, a run's comparison with the live alerts (a key carrying markup
/// stays text), and the delete button (CSRF-checked DELETE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_runs_page() {
    let Some(d) = Driver::start().await else { return };
    let f = Fixture::start(Some(PASSWORD), None).await;
    sign_in(&d, &f).await;
    d.wait_for("document.querySelector('.kpi')", Duration::from_secs(10)).await;

    d.exec("location.hash = '#/runs'; return 0;").await;
    d.wait_for("document.querySelector('#runs-table tbody tr a')", Duration::from_secs(10)).await;
    d.click("#runs-table tbody tr a").await;
    d.wait_for("document.querySelector('#run-alerts tbody tr')", Duration::from_secs(10)).await;
    let per_class = d.exec("return document.getElementById('run-per-class').innerText;").await;
    assert!(per_class.as_str().unwrap().contains("ssh_brute"), "{per_class}");
    let only = d.exec("return document.getElementById('run-only').innerText;").await;
    assert!(only.as_str().unwrap().contains(XSS_HOST), "{only}");
    let live = d.exec("return document.getElementById('live-only').innerText;").await;
    assert!(live.as_str().unwrap().contains("10.0.0.7"), "{live}");
    assert_eq!(d.exec("return document.querySelectorAll('#main img, #main script, #main b').length;").await, json!(0));
    assert_eq!(d.exec("return typeof window.__xss;").await, json!("undefined"));
    d.screenshot("run.png").await;

    d.exec("window.confirm = () => true; return 0;").await;
    d.click("#delete-run-btn").await;
    d.wait_for(
        "location.hash === '#/runs' && document.querySelector('#runs-table td[colspan]')",
        Duration::from_secs(10),
    )
    .await;
    let c = f.db.client().await.unwrap();
    assert_eq!(testkit::count(&c, "SELECT count(*) FROM runs").await, 0);
    d.quit().await;
    f.stop().await;
}

/// The dashboard goes away under an open alerts page (the browser's live connection drops),
/// alerts are raised meanwhile, and it comes back: Chromium's EventSource reconnects with
/// `Last-Event-ID` and the page shows the missed alerts from the replay, without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_live_alert_view_after_a_dropped_connection_shows_the_events_it_missed() {
    let Some(d) = Driver::start().await else { return };
    // Open on loopback: sessions live in the dashboard's memory and would not survive its restart.
    let mut f = Fixture::start(None, None).await;
    let nats = async_nats::connect(&f.nats.url).await.unwrap();
    let mut db = f.db.client().await.unwrap();
    d.goto(&format!("{}/#/alerts", f.base)).await;
    let live = "document.getElementById('live-text') && document.getElementById('live-text').textContent === 'live'";
    d.wait_for(live, Duration::from_secs(10)).await;
    d.exec("window.__noReload = 42; return 0;").await;
    wait_for_follower(&nats).await;
    let row = |id: i64| format!("document.querySelector('#alerts-table tr[data-alert-id=\"{id}\"]')");
    let a1 = raise_alert(&mut db, &nats, "10.0.3.1", "syn_flood", "CRITICAL").await;
    d.wait_for(&row(a1), Duration::from_secs(10)).await;

    f.stop_server().await;
    d.wait_for("document.getElementById('live-text').textContent !== 'live'", Duration::from_secs(10)).await;
    let a2 = raise_alert(&mut db, &nats, "10.0.3.2", "port_scan", "HIGH").await;
    let a3 = raise_alert(&mut db, &nats, "10.0.3.3", "syn_flood", "MEDIUM").await;
    f.start_server().await;

    d.wait_for(&format!("{} && {}", row(a2), row(a3)), Duration::from_secs(30)).await;
    assert_eq!(d.exec("return window.__noReload;").await, json!(42), "the page was reloaded");
    // The rows came as alert events (stream sequences 2 and 3), not from a list reload.
    assert_eq!(d.exec("return S.lastSeq;").await, json!(3));
    d.screenshot("alerts-after-reconnect.png").await;
    f.stop().await;
}
