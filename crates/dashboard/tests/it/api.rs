//! API integration tests against a real PostgreSQL and NATS with fixture rows.

use crate::common::*;
use reqwest::header::{AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

pub(crate) const TOKEN: &str = "test-token-0123456789";
const PASSWORD: &str = "correct horse battery staple";

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn get(f: &Fixture, path: &str) -> (StatusCode, Value) {
    let r = client()
        .get(format!("{}{path}", f.base))
        .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    let st = r.status();
    let text = r.text().await.unwrap();
    (st, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub(crate) async fn get_ok(f: &Fixture, path: &str) -> Value {
    let (st, v) = get(f, path).await;
    assert_eq!(st, StatusCode::OK, "{path}: {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_return_fixture_data() {
    let f = Fixture::start(None, Some(TOKEN)).await;

    let v = get_ok(&f, "/health").await;
    assert_eq!(v["database_available"], true);

    // Newest packets: SYNs 3, 5, 7, 9 s ago, then the ARP request 10 s ago.
    let v = get_ok(&f, "/api/last10").await;
    assert_eq!(v["count"], 10);
    assert_eq!(v["packets"][0]["dst_port"], 1);
    assert_eq!(v["packets"][4]["protocol"], "ARP");
    assert_eq!(v["packets"][4]["arp_hwsrc"], "02:00:00:00:00:01");
    assert_eq!(v["packets"][4]["arp_psrc"], "10.0.0.1");
    let v = get_ok(&f, "/api/raw_packets/last/1000").await;
    assert_eq!(v["count"], 305, "every packet, yesterday's included");

    // Search: filters, pagination, hostile strings returned verbatim as JSON strings.
    let v = get_ok(&f, "/api/packets?ip=10.0.0.1&per_page=50&page=2").await;
    assert_eq!(v["total"], 300);
    assert_eq!(v["pages"], 6);
    assert_eq!(v["packets"].as_array().unwrap().len(), 50);
    let v = get_ok(&f, "/api/packets?dns=script").await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["packets"][0]["dns_qname"], XSS_QNAME);
    let v = get_ok(&f, "/api/packets?http_path=onerror&protocol=tcp").await;
    assert_eq!(v["packets"][0]["http_path"], XSS_PATH);
    assert_eq!(v["packets"][0]["http_host"], XSS_HOST);
    let v = get_ok(&f, "/api/packets?dns=%25").await; // a literal %, not a wildcard
    assert_eq!(v["total"], 0);
    let v = get_ok(&f, "/api/alltraffic?port=80&limit=5").await;
    assert_eq!(v["total"], 2, "SYN to port 80 and the HTTP request");
    let v = get_ok(&f, "/api/packets?range=24h&src=10.9.9.9").await;
    assert_eq!(v["total"], 1);

    // CSV: formula-looking cells are prefixed with a quote.
    let r = client()
        .get(format!("{}/api/packets.csv?ip=10.0.0.3", f.base))
        .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("time,ts,interface,src_ip"), "{csv}");
    assert_eq!(csv.lines().count(), 4);
    assert!(csv.contains("\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\""), "{csv}");
    assert!(!csv.contains(",\"=HYPERLINK"));

    // Overview.
    let v = get_ok(&f, "/api/traffic?range=15m").await;
    assert_eq!(v["bucket_seconds"], 5);
    assert_eq!(v["totals"]["packets"], 2.5 * 120.0, "sum of the 5 s source windows in range");
    let v = get_ok(&f, "/api/traffic?range=15m&source=packets").await;
    assert_eq!(v["totals"]["packets"], 304.0);
    let v = get_ok(&f, "/api/protocols").await;
    assert_eq!(v["labels"][0], "TCP");
    assert_eq!(v["values"][0], 301);
    assert_eq!(v["total"], 304);
    let v = get_ok(&f, "/api/top-sources?limit=2").await;
    assert_eq!(v["items"][0]["ip"], "10.0.0.1");
    assert_eq!(v["items"][0]["packet_count"], 300);
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    let v = get_ok(&f, "/api/top-destinations").await;
    assert_eq!(v["items"][0]["ip"], "10.0.0.2");
    let v = get_ok(&f, "/api/top-ports?limit=100").await;
    let p80 = v["items"].as_array().unwrap().iter().find(|i| i["port"] == 80).unwrap();
    assert_eq!(p80["service"], "HTTP");
    assert_eq!(p80["packet_count"], 2);
    // Over 15 minutes aggregates read the rollup, which agrees with the packets they summarise
    // (the range widened to whole minutes, which adds nothing here).
    for view in ["protocols", "top-sources", "top-destinations", "top-ports"] {
        let rolled = get_ok(&f, &format!("/api/{view}?range=1h")).await;
        assert_eq!(rolled["source"], "rollup", "{view}");
        let exact = get_ok(&f, &format!("/api/{view}?range=1h&source=packets")).await;
        assert_eq!(exact["source"], "packets");
        for k in ["labels", "values", "bytes", "items", "total"] {
            assert_eq!(rolled[k], exact[k], "{view} {k}");
        }
    }
    let v = get_ok(&f, "/api/traffic?range=24h").await;
    assert_eq!((v["source"].as_str(), v["bucket_seconds"].as_i64()), (Some("rollup"), Some(300)));
    assert_eq!(v["totals"]["packets"], 305.0, "yesterday's packet 24 h - 60 s ago is in range");
    let exact = get_ok(&f, "/api/traffic?range=24h&source=packets").await;
    assert_eq!(exact["totals"], v["totals"]);
    let v = get_ok(&f, "/api/traffic?range=24h&source=windows").await;
    assert_eq!(v["totals"]["packets"], 150.0, "24 h of windows summed from the 30 s level");
    let (st, _) = get(&f, "/api/traffic?range=1h&source=rollup").await;
    assert_eq!(st, 400, "15 s buckets cannot come from minute rows");

    let v = get_ok(&f, "/api/pipeline").await;
    assert_eq!(v["model_version"], "rf-test-1");
    assert_eq!(v["database_available"], true);
    // Windowers running with two partitions: the pipeline lists their two consumers.
    let db = f.db.client().await.unwrap();
    db.batch_execute(
        "INSERT INTO windower_checkpoint (durable, closed_through_5, closed_through_30, closed_through_180, replay_seq, updated_at)
         VALUES ('nta-windower', 0, 0, 0, 1, now() - interval '1 hour'),
                ('nta-windower-0-of-2', 5, 0, 0, 1, now()), ('nta-windower-1-of-2', 5, 0, 0, 1, now())",
    )
    .await
    .unwrap();
    let start = std::time::Instant::now();
    let names = loop {
        let v = get_ok(&f, "/api/pipeline").await;
        let names: Vec<String> =
            v["consumers"].as_array().unwrap().iter().map(|c| c["consumer"].as_str().unwrap().to_string()).collect();
        if names.iter().any(|n| n.ends_with("-of-2")) || start.elapsed() > std::time::Duration::from_secs(15) {
            break names;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert!(
        names.contains(&"nta-windower-1-of-2".to_string()) && !names.contains(&"nta-windower".to_string()),
        "{names:?}"
    );

    // Alerts.
    let v = get_ok(&f, "/api/alerts").await;
    assert_eq!(v["total"], 2);
    let v = get_ok(&f, "/api/alerts?severity=high&state=open").await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["alerts"][0]["id"], f.alert_id);
    let v = get_ok(&f, "/api/alerts?resolved=true").await;
    assert_eq!(v["alerts"][0]["class"], "dns_tunnel");
    let v = get_ok(&f, "/api/alerts?class=port_scan&range=15m").await;
    assert_eq!(v["total"], 1);
    let v = get_ok(&f, "/api/alerts/summary").await;
    assert_eq!(v["open_by_severity"]["HIGH"], 1);
    assert_eq!(v["by_state"]["resolved"], 1);
    let v = get_ok(&f, &format!("/api/alerts/{}", f.alert_id)).await;
    assert_eq!(v["alert"]["evidence"]["distinct_ports"], 300);
    let wins = v["windows"].as_array().unwrap();
    assert_eq!(wins.len(), 10);
    assert_eq!(wins[0]["label"], "port_scan");
    assert_eq!(wins[0]["rules"][0], "syn_scan");
    assert_eq!(wins[0]["features"]["syn_only_ratio"], 1.0);
    assert_eq!(wins[0]["features"]["extra"]["scan_entropy"], 0.5);
    assert!(wins[0]["features"].get("key").is_none());

    // Host page.
    let v = get_ok(&f, "/api/hosts/10.0.0.1?range=15m").await;
    assert_eq!(v["window_size"], 5);
    assert_eq!(v["windows"].as_array().unwrap().len(), 120);
    assert_eq!(v["windows"].as_array().unwrap().last().unwrap()["label"], "port_scan");
    assert_eq!(v["peers"]["sent_to"][0]["peer"], "10.0.0.2");
    assert_eq!(v["ports"]["contacted"].as_array().unwrap().len(), 25);
    assert_eq!(v["alerts"][0]["id"], f.alert_id);
    // The other side of the scan: 300 packets received from 10.0.0.1, on 25 of its ports.
    let v = get_ok(&f, "/api/hosts/10.0.0.2?range=15m").await;
    assert_eq!(v["peers"]["received_from"][0]["peer"], "10.0.0.1");
    assert_eq!(v["peers"]["received_from"][0]["packets"], 300);
    assert_eq!(v["ports"]["served"].as_array().unwrap().len(), 25);
    assert!(v["peers"]["sent_to"].as_array().unwrap().is_empty());

    // Pages and assets.
    let r = client().get(format!("{}/", f.base)).header(AUTHORIZATION, format!("Bearer {TOKEN}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
    let r = client().get(format!("{}/assets/vendor/chart.umd.min.js", f.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("Chart.js v4"));
    f.stop().await;
}

/// `app_proto` and `sni` filters (bound parameters, LIKE wildcards taken literally), the two
/// fields in search results, the CSV and the newest packets, and the host page's server names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_by_app_proto_and_server_name() {
    let f = Fixture::start(None, Some(TOKEN)).await;
    let db = f.db.client().await.unwrap();
    let rows = insert_app_packets(&db, f.now, 40.0).await;
    let ip = APP_CLIENT;

    let v = get_ok(&f, &format!("/api/packets?ip={ip}")).await;
    assert_eq!(v["total"], rows);
    let v = get_ok(&f, &format!("/api/packets?ip={ip}&app_proto=tls")).await;
    assert_eq!(v["total"], 3);
    assert_eq!(v["filters"]["app_proto"], "tls");
    assert_eq!(v["packets"][0]["tls_sni"], XSS_SNI, "returned verbatim as a JSON string");
    assert_eq!(v["packets"][0]["app_proto"], "tls");
    assert!(v["packets"][2]["tls_sni"].is_null());
    let v = get_ok(&f, "/api/packets?app_proto=SSH").await;
    assert_eq!((v["total"].as_i64(), v["packets"][0]["dst_port"].as_i64()), (Some(1), Some(22)));
    let v = get_ok(&f, "/api/packets?app_proto=quic").await;
    assert_eq!(v["packets"][0]["protocol"], "UDP");
    let v = get_ok(&f, "/api/packets?app_proto=http").await;
    assert_eq!(v["total"], 0, "the fixture's HTTP row was stored without app_proto");
    let (st, v) = get(&f, "/api/packets?app_proto=ftp").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["message"].as_str().unwrap().contains("app_proto"), "{v}");

    // Substrings, case-insensitive; `%` and `_` are characters, not wildcards; quotes and
    // markup are only data.
    let v = get_ok(&f, "/api/packets?sni=ONERROR").await;
    assert_eq!((v["total"].as_i64(), v["packets"][0]["tls_sni"].as_str()), (Some(1), Some(XSS_SNI)));
    let v = get_ok(&f, "/api/packets?sni=api.example&app_proto=tls&dst=10.0.0.44").await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["filters"]["sni"], "api.example");
    for literal in ["%25", "'%20OR%20'1'='1", "%5C"] {
        let v = get_ok(&f, &format!("/api/packets?sni={literal}")).await;
        assert_eq!(v["total"], 0, "sni={literal}");
    }
    // As a wildcard `_` would match both names; only XSS_SNI has one (`__xss`).
    let v = get_ok(&f, "/api/packets?sni=_").await;
    assert_eq!((v["total"].as_i64(), v["packets"][0]["tls_sni"].as_str()), (Some(1), Some(XSS_SNI)));
    let (st, _) = get(&f, "/api/packets?sni=%01").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "control characters");

    let r = client()
        .get(format!("{}/api/packets.csv?app_proto=tls", f.base))
        .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    let csv = r.text().await.unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert!(header.contains(&"app_proto") && header.contains(&"tls_sni"), "{csv}");
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.contains("\"api.example.org\""), "{csv}");
    let v = get_ok(&f, "/api/raw_packets/last/1000").await;
    assert!(v["packets"].as_array().unwrap().iter().any(|p| p["tls_sni"] == XSS_SNI));

    // Host page: the names a client asked for, and those asked of a server.
    let v = get_ok(&f, &format!("/api/hosts/{ip}?range=15m")).await;
    let requested = v["server_names"]["requested"].as_array().unwrap();
    assert_eq!(requested.len(), 2, "{v}");
    let mut names: Vec<&str> = requested.iter().map(|r| r["sni"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, [XSS_SNI, "api.example.org"]);
    assert!(requested.iter().all(|r| r["packets"] == 1));
    assert!(v["server_names"]["served"].as_array().unwrap().is_empty());
    let v = get_ok(&f, &format!("/api/hosts/{TLS_SERVER}?range=15m")).await;
    assert_eq!(v["server_names"]["served"].as_array().unwrap().len(), 2);
    assert!(v["server_names"]["requested"].as_array().unwrap().is_empty());
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_every_route() {
    let f = Fixture::start(None, Some(TOKEN)).await;
    let doc = get_ok(&f, "/api/openapi.json").await;
    let paths: Vec<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    // Every route of the router (lib.rs) is documented...
    let src = include_str!("../../src/lib.rs");
    let routed: Vec<&str> = src
        .lines()
        .filter_map(|l| l.trim().strip_prefix(".route(\""))
        .map(|l| l.split('"').next().unwrap())
        .filter(|p| *p == "/health" || *p == "/metrics" || p.starts_with("/api/"))
        .collect();
    assert!(routed.len() >= 20);
    for r in &routed {
        assert!(paths.iter().any(|p| p == r), "route {r} missing from openapi.json");
    }
    // ...and every documented path is routed and answers (not the fallback 404). A pcap needs
    // frames kept: one batch in the alert's range.
    let frame = crate::pcap::tcp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
    crate::pcap::keep_frames(&f.nats.url, "a1", 1, &[((f.now as i64 - 20) * 1_000_000_000, frame)]).await;
    for p in &paths {
        assert!(routed.contains(&p.as_str()), "openapi.json documents {p}, which is not routed");
        let item = &doc["paths"][p];
        let concrete = p
            .replace("{count}", "5")
            .replace("{id}", &f.alert_id.to_string())
            .replace("{ip}", "10.0.0.1")
            .replace("{name}", RUN);
        let concrete = if p == "/api/pcap" { format!("{p}?alert={}", f.alert_id) } else { concrete };
        if item.get("get").is_some() && !p.ends_with("/stream") {
            let (st, v) = get(&f, &concrete).await;
            assert_eq!(st, StatusCode::OK, "GET {concrete}: {v}");
        }
    }
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_400_with_a_message() {
    let f = Fixture::start(None, Some(TOKEN)).await;
    for path in [
        "/api/raw_packets/last/0",
        "/api/raw_packets/last/1001",
        "/api/raw_packets/last/abc",
        "/api/raw_packets/last/-5",
        "/api/packets?range=2y",
        "/api/packets?from=abc",
        "/api/packets?from=1700000900&to=1700000000",
        "/api/packets?from=1600000000&to=1700000000",
        "/api/packets?from=1700000000000",
        "/api/packets?range=1h&from=1700000000",
        "/api/packets?ip=not-an-ip",
        "/api/packets?port=70000",
        "/api/packets?protocol=SCTP",
        "/api/packets?per_page=0",
        "/api/packets?per_page=501",
        "/api/packets?page=5000&per_page=500",
        "/api/packets.csv?limit=100001",
        "/api/traffic?source=magic",
        "/api/top-sources?limit=0",
        "/api/top-ports?limit=many",
        "/api/alerts?severity=urgent",
        "/api/alerts?state=maybe",
        "/api/alerts?limit=100000",
        "/api/alerts?state=open&resolved=true",
        "/api/alerts/0",
        "/api/alerts/xyz",
        "/api/hosts/999.1.1.1",
    ] {
        let (st, v) = get(&f, path).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert_eq!(v["error"], "bad_request", "{path}");
        assert!(v["message"].as_str().unwrap().len() > 5, "{path}");
    }
    let (st, v) = get(&f, "/api/alerts/999999").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (st, _) = get(&f, "/api/nope").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // A hostile filter is a bound parameter: no error, no match.
    let (st, v) = get(&f, "/api/packets?dns=%27%3B%20DROP%20TABLE%20raw_packets%3B--").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["total"], 0);
    assert_eq!(get_ok(&f, "/api/packets?ip=10.0.0.1").await["total"], 300);
    f.stop().await;
}

async fn login(f: &Fixture, password: &str) -> Option<String> {
    let r = client()
        .post(format!("{}/login", f.base))
        .header("origin", f.base.clone())
        .form(&[("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers().get(SET_COOKIE).map(|c| c.to_str().unwrap().to_string());
    match cookie {
        Some(c) => {
            assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict"), "{c}");
            assert_eq!(r.headers()[LOCATION], "/");
            Some(c.split(';').next().unwrap().to_string())
        }
        None => {
            assert_eq!(r.headers()[LOCATION], "/login?failed=1");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_csrf() {
    let f = Fixture::start(Some(PASSWORD), Some(TOKEN)).await;
    let c = client();
    let url = |p: &str| format!("{}{p}", f.base);

    // Public: health, metrics, login page, assets.
    for p in ["/health", "/metrics", "/login", "/assets/app.js"] {
        assert_eq!(c.get(url(p)).send().await.unwrap().status(), StatusCode::OK, "{p}");
    }
    // Everything else needs credentials.
    for p in ["/api/alerts", "/api/last10", "/api/openapi.json", "/api/alerts/stream"] {
        let r = c.get(url(p)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{p}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
    let r = c.get(url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/login");
    let r = c.get(url("/api/alerts")).header(AUTHORIZATION, "Bearer wrong").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c.get(url("/api/alerts")).header(AUTHORIZATION, format!("Bearer {TOKEN}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A wrong bearer token is refused even with a valid cookie.
    let cookie = login(&f, PASSWORD).await.expect("login works");
    let r =
        c.get(url("/api/alerts")).header(AUTHORIZATION, "Bearer wrong").header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Cookie login.
    assert!(login(&f, "wrong password").await.is_none());
    let r = c.get(url("/")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let s: Value = c.get(url("/api/session")).header(COOKIE, &cookie).send().await.unwrap().json().await.unwrap();
    assert_eq!(s["via"], "cookie");
    let csrf = s["csrf"].as_str().unwrap().to_string();
    assert_eq!(csrf.len(), 64);
    // Cross-origin login refused.
    let r = c
        .post(url("/login"))
        .header("origin", "http://evil.example")
        .form(&[("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // CSRF: a cookie POST needs the token and the same origin; bearer POSTs need neither.
    let resolve = url(&format!("/api/alerts/{}/resolve", f.alert_id));
    let r = c.post(&resolve).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c.post(&resolve).header(COOKIE, &cookie).header("x-csrf-token", "0".repeat(64)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post(&resolve)
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post(&resolve)
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .header("origin", f.base.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Logout ends the session.
    let r = c.post(url("/logout")).header(COOKIE, &cookie).header("x-csrf-token", &csrf).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = c.get(url("/api/alerts")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let m = c.get(url("/metrics")).send().await.unwrap().text().await.unwrap();
    // Public: nothing about logins (failures and lockouts are on the operator's metrics_addr).
    assert!(m.contains("nta_dashboard_http_requests_total") && !m.contains("login"), "{m}");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_alerts_and_resolve() {
    let f = Fixture::start(None, Some(TOKEN)).await;
    let (mut events, _sse) = sse_alerts(&f, TOKEN, None).await;
    let nats = async_nats::connect(&f.nats.url).await.unwrap();
    let mut db = f.db.client().await.unwrap();
    // The dashboard follows NTA_ALERTS from new events: wait until its consumer exists.
    wait_for_follower(&nats).await;
    let t0 = Instant::now();
    let id = raise_alert(&mut db, &nats, "10.0.0.2", "syn_flood", "CRITICAL").await;
    let (at, _, ev) = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
    let latency = at.duration_since(t0);
    assert!(latency < Duration::from_secs(1), "alert reached SSE after {latency:?}");
    assert_eq!(ev["id"], id);
    assert_eq!(ev["event"], "opened");
    assert_eq!(ev["view"], "destination");
    eprintln!("alert event to SSE client in {latency:?}");

    // Malformed messages on the stream are not relayed.
    nats.publish(bus::alert_subject("syn_flood"), "<script>".into()).await.unwrap();

    // Resolve: 200, the row changes, the event goes out; again: 409; unknown: 404.
    let c = client();
    let resolve = |id: i64| {
        c.post(format!("{}/api/alerts/{id}/resolve", f.base)).header(AUTHORIZATION, format!("Bearer {TOKEN}")).send()
    };
    let r = resolve(id).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "resolved");
    assert_eq!(v["alert"]["state"], "resolved");
    let st: String = db.query_one("SELECT state FROM alerts WHERE id = $1", &[&id]).await.unwrap().get(0);
    assert_eq!(st, "resolved");
    // The resolution is in the outbox, committed with the change; the predictor's relay takes
    // it to NTA_ALERTS (the dashboard publishes nothing).
    assert_eq!(store::alert_events::unpublished_count(&db).await.unwrap(), 1);
    assert_eq!(relay(&mut db, &nats).await, 1);
    let (_, _, ev) = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
    assert_eq!(ev["event"], "resolved");
    assert_eq!(ev["id"], id);
    assert_eq!(resolve(id).await.unwrap().status(), StatusCode::CONFLICT);
    assert_eq!(resolve(987654).await.unwrap().status(), StatusCode::NOT_FOUND);
    // The malformed message produced no event.
    assert!(events.try_recv().is_err());
    // Shutdown ends the open SSE stream instead of waiting for it.
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_database_gives_empty_answers() {
    let f = Fixture::start_with(None, Some(TOKEN), false).await;
    let v = get_ok(&f, "/health").await;
    assert_eq!(v["database_available"], true);
    for p in [
        "/api/last10",
        "/api/packets",
        "/api/traffic",
        "/api/protocols",
        "/api/top-sources",
        "/api/top-ports",
        "/api/alerts",
        "/api/alerts/summary",
    ] {
        let v = get_ok(&f, p).await;
        assert_eq!(v["status"], "missing_table", "{p}: {v}");
        assert!(v["detail"].as_str().unwrap().contains("does not exist"), "{p}: {v}");
    }
    let v = get_ok(&f, "/api/hosts/10.0.0.1").await;
    assert_eq!(v["windows"].as_array().unwrap().len(), 0);
    assert!(!v["notes"].as_array().unwrap().is_empty());
    let v = get_ok(&f, "/api/pipeline").await;
    assert_eq!(v["model_version"], Value::Null);
    let r = client()
        .get(format!("{}/api/packets.csv", f.base))
        .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap().lines().count(), 1);
    f.stop().await;
}

#[tokio::test]
async fn refuses_an_open_dashboard_off_loopback() {
    let cfg =
        dashboard::DashboardConfig::new("0.0.0.0:0".parse().unwrap(), "postgres://x@127.0.0.1/x", "nats://127.0.0.1:1");
    let err = dashboard::run(cfg, async {}).await.unwrap_err();
    assert!(err.to_string().contains("without authentication"), "{err}");
    let mut cfg = dashboard::DashboardConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        "postgres://x@127.0.0.1/x",
        "nats://127.0.0.1:1",
    );
    cfg.token = Some(String::new()); // empty counts as unset: still open, allowed on loopback
    dashboard::run(cfg, async {}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_shown_compared_and_deleted() {
    let f = Fixture::start(None, Some(TOKEN)).await;
    let list = get_ok(&f, "/api/runs").await;
    assert_eq!(list["runs"][0]["name"], RUN);
    assert_eq!(list["runs"][0]["model_version"], "rf-test-2");

    let detail = get_ok(&f, &format!("/api/runs/{RUN}")).await;
    assert_eq!(detail["run"]["records"], 300);
    let cmp = &detail["comparison"];
    // The port scan is in both (same view, key, class, overlapping); the run's SSH alert only in
    // the run; the (resolved) live dns_tunnel alert of the range only live.
    assert_eq!(cmp["per_class"]["port_scan"], serde_json::json!({"run_only": 0, "live_only": 0, "both": 1}));
    assert_eq!(cmp["per_class"]["ssh_brute"], serde_json::json!({"run_only": 1, "live_only": 0, "both": 0}));
    assert_eq!(cmp["both"][0]["live_ids"][0], f.alert_id);
    assert_eq!(cmp["run_only"][0]["key"], XSS_HOST);
    assert_eq!(cmp["per_class"]["dns_tunnel"], serde_json::json!({"run_only": 0, "live_only": 1, "both": 0}));
    assert_eq!(cmp["live_only"][0]["key"], "10.0.0.7");

    let alerts = get_ok(&f, &format!("/api/runs/{RUN}/alerts?limit=1&offset=1")).await;
    assert_eq!((alerts["total"].as_i64(), alerts["alerts"][0]["seq"].as_i64()), (Some(2), Some(2)));

    // Bad names are 400, unknown ones 404, for every method.
    for bad in ["a%20b", "%3Cx%3E", &"x".repeat(65)] {
        for path in [format!("/api/runs/{bad}"), format!("/api/runs/{bad}/alerts")] {
            assert_eq!(get(&f, &path).await.0, StatusCode::BAD_REQUEST, "{path}");
        }
    }
    for path in ["/api/runs/nope", "/api/runs/nope/alerts"] {
        assert_eq!(get(&f, path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(get(&f, "/api/runs/x/alerts?limit=0").await.0, StatusCode::BAD_REQUEST);
    let del = |path: String| {
        let client = reqwest::Client::new();
        let req = client.delete(format!("{}{path}", f.base)).header(AUTHORIZATION, format!("Bearer {TOKEN}"));
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(del("/api/runs/a%20b".into()).await, StatusCode::BAD_REQUEST);
    assert_eq!(del("/api/runs/nope".into()).await, StatusCode::NOT_FOUND);
    // Unauthenticated: refused before anything is deleted.
    let anon = reqwest::Client::new().delete(format!("{}/api/runs/{RUN}", f.base)).send().await.unwrap();
    assert_eq!(anon.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(del(format!("/api/runs/{RUN}")).await, StatusCode::OK);
    assert_eq!(get(&f, &format!("/api/runs/{RUN}")).await.0, StatusCode::NOT_FOUND);
    let c = f.db.client().await.unwrap();
    assert_eq!(testkit::count(&c, "SELECT count(*) FROM run_alerts").await, 0);
    // The live alerts are untouched.
    assert_eq!(testkit::count(&c, "SELECT count(*) FROM alerts").await, 2);
    f.stop().await;
}
