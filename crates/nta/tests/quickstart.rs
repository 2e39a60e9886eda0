//! The quick start as a new user runs it: `bash infra/quickstart.sh` replays Zeek's 2015 SSH
//! trace through every role in one process. Signed in with the dashboard's default range (the
//! last hour of wall-clock time, empty for a 2015 capture), the Overview must show the capture's
//! traffic without the range selector being touched, and say which range it shows; the link the
//! quick start prints must open the same range. Screenshots land in
//! `$CARGO_TARGET_DIR/dashboard-e2e/`.

mod common;

use common::*;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;
use testkit::browser::Driver;

const PASSWORD: &str = "quickstart-password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_overview_shows_the_replayed_capture() {
    let Some(d) = Driver::start().await else { return };
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let root = testkit::workspace_root();
    let port = |url: &str| url.rsplit(':').next().unwrap().split('/').next().unwrap().to_string();
    let mut quickstart = Command::new("bash");
    quickstart
        .arg(root.join("infra/quickstart.sh"))
        .current_dir(&root)
        // The debug binary the tests use, instead of the release build the script makes.
        .env("NTA_BIN", nta_bin())
        .env("NTA_NATS_URL", &nats.url)
        .env("NTA_NATS_PORT", port(&nats.url))
        .env("NTA_DATABASE_URL", &db.url)
        .env("NTA_PG_PORT", port(&db.url))
        .env("NTA_DASHBOARD_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("NTA_DASHBOARD_PASSWORD", PASSWORD)
        .env("NTA_METRICS_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("NTA_LOG", "warn")
        .stdout(Stdio::piped());
    // The script execs nta: the child is the stack, stopped on drop.
    let mut stack = Role(quickstart.spawn().expect("running infra/quickstart.sh"));
    let stdout = stack.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("quickstart: {line}");
            if let Some(rest) = line.strip_prefix("dashboard: ") {
                let _ = tx.send(rest.split(' ').next().unwrap().to_string());
            }
        }
    });
    let link = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(300)))
        .await
        .unwrap()
        .expect("the quick start printed no dashboard link");
    assert!(link.ends_with("/#/overview?range=latest"), "{link}");
    let base = link.split("/#").next().unwrap().to_string();

    // What the Overview must show: every packet of the capture summed in the 5 s source windows.
    let pg = db.client().await.unwrap();
    let packets: i64 = pg
        .query_one("SELECT coalesce(sum(packet_count), 0)::int8 FROM window_features WHERE view = 'source' AND window_size = 5", &[])
        .await
        .unwrap()
        .get(0);
    let stored: i64 = pg.query_one("SELECT count(*) FROM raw_packets", &[]).await.unwrap().get(0);
    assert!(packets > 0 && stored > 0, "nothing landed: {packets} packets in windows, {stored} stored");

    // A new user: signs in, never touches the range selector.
    d.goto(&format!("{base}/")).await;
    d.wait_for("document.getElementById('password')", Duration::from_secs(10)).await;
    d.type_into("#password", PASSWORD).await;
    d.click("#login-btn").await;
    let kpi = "[...document.querySelectorAll('.kpi')].find(k => k.querySelector('.l').textContent === 'packets')";
    d.wait_for(kpi, Duration::from_secs(20)).await;
    let shown = d.exec(&format!("return {kpi}.querySelector('.v').textContent;")).await;
    let digits: String = shown.as_str().unwrap().chars().filter(char::is_ascii_digit).collect();
    assert_eq!(digits, packets.to_string(), "Overview shows {shown} packets");
    let note = d.exec("const n = document.getElementById('range-note'); return n.hidden ? '' : n.textContent;").await;
    let note = note.as_str().unwrap();
    assert!(note.starts_with("Around the latest data: 2015-"), "{note}");
    assert!(note.ends_with("There is nothing in the last hour."), "{note}");
    assert_eq!(d.exec("return document.getElementById('range-select').value;").await, "latest");
    assert_eq!(d.exec("return document.querySelectorAll('.chart-box canvas').length;").await, 2, "charts missing");
    let shot = d.screenshot("quickstart-overview.png").await;
    eprintln!("screenshot: {}", shot.display());

    // The printed link: the same range, chosen rather than a fallback.
    d.goto(&link).await;
    // A fragment navigation: the previous page stays up until the new route replaces the banner.
    let note = "document.getElementById('range-note').textContent";
    d.wait_for(
        &format!("{note}.startsWith('Around the latest data') && !{note}.includes('nothing in the')"),
        Duration::from_secs(20),
    )
    .await;
    d.wait_for(
        &format!("{kpi} && {kpi}.querySelector('.v').textContent === {}", serde_json::json!(shown)),
        Duration::from_secs(20),
    )
    .await;

    // The alert the replay raised links to its host over the alert's span: its windows and
    // verdicts are there even with a range picked by hand that holds nothing (the last 15 min).
    let (id, key): (i64, String) = {
        let r = pg.query_one("SELECT id, key FROM alerts WHERE class = 'ssh_brute' ORDER BY id LIMIT 1", &[]).await;
        let r = r.expect("the quick start raised no ssh_brute alert");
        (r.get(0), r.get(1))
    };
    d.exec("const s = document.getElementById('range-select'); s.value = '15m'; s.dispatchEvent(new Event('change')); return 0;")
        .await;
    d.exec(&format!("location.hash = '#/alerts/{id}'; return 0;")).await;
    let host_link = "[...document.querySelectorAll('#main a')].find(a => a.textContent.startsWith('Host page of'))";
    d.wait_for(host_link, Duration::from_secs(10)).await;
    d.exec(&format!("{host_link}.click(); return 0;")).await;
    let verdicts = format!(
        "document.querySelector('#main h1') && document.querySelector('#main h1').textContent === 'Host {key}' \
         && [...document.querySelectorAll('#main section')].some(c => c.querySelector('h2').textContent.startsWith('Verdicts') \
              && c.querySelectorAll('tbody tr td').length >= 5)"
    );
    d.wait_for(&verdicts, Duration::from_secs(10)).await;
    d.screenshot("quickstart-alert-host.png").await;
    d.quit().await;
}
