//! The monitoring kit (infra/monitoring/) against a real Prometheus: every role as its own
//! process on a private NATS and a fresh database, Debian's `prometheus` scraping them every
//! second with the repository's rule files, a port scan replayed. Through Prometheus' HTTP API:
//! every rule group loads and evaluates without error, every metric a rule names has series,
//! and every expression of every Grafana dashboard returns data.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Roles started as separate processes, with the job names of infra/monitoring/prometheus.yml.
const ROLES: &[&str] = &["ingestor", "windower", "predictor", "dashboard", "notifier", "agent"];

fn monitoring_dir() -> PathBuf {
    testkit::workspace_root().join("infra/monitoring")
}

/// Debian's prometheus binary, or None to skip (outside CI only: infra/setup.sh installs it).
fn prometheus_bin() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("prometheus")).find(|p| p.is_file()));
    if found.is_none() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "prometheus not installed (bash infra/monitoring/install-prometheus.sh)"
        );
        eprintln!("skipping: prometheus not installed (bash infra/monitoring/install-prometheus.sh)");
    }
    found
}

/// A Prometheus scraping `targets` (job, port) every second with the repository's rules.
fn start_prometheus(bin: &Path, dir: &Path, port: u16, targets: &[(String, u16)]) -> Role {
    let rules = monitoring_dir().join("rules/nta.rules.yml");
    let mut conf = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [{}]\nscrape_configs:\n",
        rules.display()
    );
    for (job, port) in targets {
        conf += &format!("  - job_name: {job}\n    static_configs: [{{targets: [\"127.0.0.1:{port}\"]}}]\n");
    }
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, conf).unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", path.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting prometheus");
    Role(child)
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn get(&self, path: &str, params: &[(&str, String)]) -> Option<Value> {
        let r = self.http.get(format!("{}{path}", self.base)).query(params).send().await.ok()?;
        let body: Value = r.json().await.ok()?;
        assert_eq!(body["status"], "success", "{path} {params:?}: {body}");
        Some(body["data"].clone())
    }

    /// Whether `expr` returned at least one sample between `start` and now.
    async fn has_data(&self, expr: &str, start: f64) -> bool {
        let params = [
            ("query", expr.to_string()),
            ("start", start.to_string()),
            ("end", now().to_string()),
            ("step", "2".to_string()),
        ];
        let data = self.get("/api/v1/query_range", &params).await;
        data.is_some_and(|d| d["result"].as_array().is_some_and(|r| r.iter().any(|s| s["values"] != Value::Null)))
    }
}

/// The last lines of every log in `dir` (roles and Prometheus), for a failure message.
fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out += &format!("--- {}\n{}\n", path.display(), lines[lines.len().saturating_sub(15)..].join("\n"));
        }
    }
    out
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Every query of every dashboard, with the Grafana variables as "All" would set them.
fn dashboard_exprs() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let dir = monitoring_dir().join("grafana/dashboards");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for panel in d["panels"].as_array().unwrap() {
            for t in panel["targets"].as_array().unwrap() {
                let expr = t["expr"].as_str().unwrap();
                // 30 s: a few scrapes at 1 s, and the agent's series stay within reach after it ends.
                out.insert(expr.replace("$__rate_interval", "30s").replace("$job", ".*").replace("$instance", ".*"));
            }
        }
    }
    assert!(out.len() > 50, "only {} dashboard expressions found in {}", out.len(), dir.display());
    out
}

/// Metric names in a PromQL expression: `up` and NTA's own (recorded series contain ':').
fn metric_names(expr: &str) -> impl Iterator<Item = &str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| (t.starts_with("nta_") || *t == "up") && !t.contains(':'))
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboards_and_rules_work_against_a_real_prometheus() {
    let Some(prometheus) = prometheus_bin() else { return };
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let dir = tempfile::tempdir().unwrap();

    // NTA_DEADLETTER with a message limit, as an operator may set one: NTA keeps an existing
    // stream as it is, and the rules' message-limit branch (nta_stream_max_messages) gets data.
    let js = async_nats::jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: bus::DEADLETTER_STREAM.into(),
        subjects: vec![bus::DEADLETTER_SUBJECT.into()],
        max_messages: 1_000_000,
        ..Default::default()
    })
    .await
    .unwrap();

    // The notifier needs an output: syslog over UDP to a socket nobody reads.
    let syslog = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let syslog_url = format!("udp://{}", syslog.local_addr().unwrap());
    let listen = format!("127.0.0.1:{}", free_port());
    let ports: Vec<(String, u16)> = ROLES.iter().map(|r| (format!("nta-{r}"), free_port())).collect();
    let prom_port = free_port();
    let _prometheus = start_prometheus(&prometheus, dir.path(), prom_port, &ports);
    let start = now();

    let api = Api { http: reqwest::Client::new(), base: format!("http://127.0.0.1:{prom_port}") };
    let mut roles = Vec::new();
    for (role, (_, port)) in ROLES.iter().zip(&ports) {
        if *role == "agent" {
            // Prometheus applies new targets every 5 s: the agent, which ends with its replay,
            // starts once the others are scraped, so that it is scraped too.
            let up = "count(up{job=~\"nta-.*\"} == 1)".to_string();
            let scraped = wait_for(Duration::from_secs(60), || async {
                let d = api.get("/api/v1/query", &[("query", up.clone())]).await?;
                (d["result"][0]["value"][1].as_str() == Some(&(ROLES.len() - 1).to_string())).then_some(())
            })
            .await;
            if scraped.is_none() {
                let up = api.get("/api/v1/query", &[("query", "up".into())]).await;
                panic!("Prometheus does not scrape every role: {up:?}\n{}", logs(dir.path()));
            }
        }
        let log = std::fs::File::create(dir.path().join(format!("{role}.log"))).unwrap();
        let mut c = nta();
        c.args(["run", "--target", role, "--nats-url", &nats.url, "--database-url", &db.url])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .env("NTA_LOG", "info,async_nats=off")
            .stdout(Stdio::null())
            .stderr(log);
        match *role {
            // Windows close as soon as the replay's agent is silent, not 30 s later.
            "windower" => c.args(["--idle-agent-timeout-s", "1"]),
            "dashboard" => c.args(["--listen", &listen]),
            "notifier" => c.args(["--syslog", &syslog_url]),
            // A port scan of 6 s, paced: the agent lives long enough for several scrapes.
            "agent" => c
                .args(["--agent-id", "mon", "--realtime", "--read"])
                .arg(testkit::pcaps_dir().join("port_scan-syn-1000ports.pcap")),
            _ => &mut c,
        };
        roles.push((role, Role(c.spawn().unwrap_or_else(|e| panic!("starting {role}: {e}")))));
    }

    // Rules and dashboards have data once the replay went through every stage; a missing
    // series never appears, so the wait ends with the list of what is still empty.
    let exprs = dashboard_exprs();
    let mut missing: Vec<String> = exprs.iter().cloned().collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while !missing.is_empty() && std::time::Instant::now() < deadline {
        let mut still = Vec::new();
        for e in missing {
            if !api.has_data(&e, start).await {
                still.push(e);
            }
        }
        missing = still;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    for (role, r) in roles.iter_mut() {
        if **role != "agent" {
            assert!(r.0.try_wait().unwrap().is_none(), "{role} exited\n{}", logs(dir.path()));
        }
    }
    assert!(missing.is_empty(), "dashboard expressions without data:\n{}\n{}", missing.join("\n"), logs(dir.path()));

    // Every rule of the repository's file loaded and evaluated without error.
    let rules_file = std::fs::read_to_string(monitoring_dir().join("rules/nta.rules.yml")).unwrap();
    let declared = rules_file
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:") || l.trim_start().starts_with("- record:"))
        .count();
    let groups = api.get("/api/v1/rules", &[]).await.expect("rules API");
    let mut loaded = 0;
    let mut names = BTreeSet::new();
    for g in groups["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            loaded += 1;
            assert_eq!(r["health"], "ok", "rule {} of group {}: {r}", r["name"], g["name"]);
            assert!(r.get("lastError").is_none_or(|e| e.as_str() == Some("")), "rule {}: {r}", r["name"]);
            names.extend(metric_names(r["query"].as_str().unwrap()).map(str::to_string));
        }
    }
    assert_eq!(loaded, declared, "rules loaded by Prometheus vs declared in nta.rules.yml");

    // Every metric a rule reads exists (a typo or a renamed metric would make a rule silent).
    assert!(names.len() > 20, "metric names found in the rules: {names:?}");
    let mut absent = Vec::new();
    for name in &names {
        let params = [("match[]", name.clone()), ("start", start.to_string()), ("end", now().to_string())];
        let series = api.get("/api/v1/series", &params).await.expect("series API");
        if series.as_array().is_none_or(|s| s.is_empty()) {
            absent.push(name.clone());
        }
    }
    assert!(absent.is_empty(), "metrics named by the rules without any series: {absent:?}");

    // Build info of every role still running (the agent ended with its replay).
    let info = api.get("/api/v1/query", &[("query", "nta_build_info".into())]).await.unwrap();
    let roles_seen: BTreeSet<&str> =
        info["result"].as_array().unwrap().iter().filter_map(|s| s["metric"]["role"].as_str()).collect();
    for role in ROLES.iter().filter(|r| **r != "agent") {
        assert!(roles_seen.contains(role), "no nta_build_info for {role}: {info}");
    }
    drop(syslog);
}
