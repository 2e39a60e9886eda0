//! `nta rescore`: two attack captures replayed through the live pipeline (agent -> ingestor,
//! windower, predictor), then re-scored from NTA_PACKETS into runs. The live tables stay
//! byte-for-byte the same, nothing is published on NATS, the shipped model reproduces the live
//! alerts, a rules-only model's differences are listed, reruns are idempotent, runs delete,
//! and bad inputs fail with a clear message.

mod common;
use common::*;
use futures::StreamExt;
use predictor::model::Model;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

/// Every role but the dashboard on one capture; exits once its alerts are stored.
fn live_replay(nats: &str, db: &str, file: &Path, agent: &str) {
    let out = nta()
        .args(["run", "--target", "agent,ingestor,windower,predictor", "--nats-url", nats, "--database-url", db])
        .args(["--agent-id", agent, "--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .arg("--read")
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "replay of {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
}

fn rescore(nats: &str, db: &str, args: &[&str]) -> Output {
    nta().arg("rescore").args(["--nats-url", nats, "--database-url", db]).args(args).output().unwrap()
}

/// A run's comparison (`--json`), asserting success.
fn run_json(nats: &str, db: &str, args: &[&str]) -> Value {
    let out = rescore(nats, db, &[args, &["--json"]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "nta rescore {args:?}: {err}");
    eprintln!("{err}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// md5 of a table's rows in a fixed order (every column).
async fn digest(c: &tokio_postgres::Client, table: &str, order: &str, filter: &str) -> String {
    let sql = format!("SELECT coalesce(md5(string_agg(t::text, ',' ORDER BY {order})), '') FROM {table} t {filter}");
    c.query_one(&sql, &[]).await.unwrap().get(0)
}

async fn live_digests(c: &tokio_postgres::Client) -> Vec<String> {
    vec![
        digest(c, "predictions", "view, key, window_start, window_size, model_version", "").await,
        digest(c, "alerts", "id", "").await,
        digest(c, "alert_windows", "alert_id, view, key, window_start, window_size", "").await,
    ]
}

async fn run_digests(c: &tokio_postgres::Client, run: &str) -> Vec<String> {
    let f = format!("WHERE run = '{run}'");
    vec![
        digest(c, "run_predictions", "view, key, window_start, window_size", &f).await,
        digest(c, "run_alerts", "seq", &f).await,
        digest(c, "run_alert_windows", "seq, window_start, window_size", &f).await,
        digest(
            c,
            "(SELECT name, model_version, model_sha256, range_from, range_to, agent_id, messages, records, \
             late_records, windows, alerts FROM runs) ",
            "name",
            &format!("WHERE name = '{run}'"),
        )
        .await,
    ]
}

/// (view, key, class) of the alerts in a comparison list (`both` entries: their run alert).
fn triples(list: &Value) -> BTreeSet<(String, String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| if a["run"].is_object() { &a["run"] } else { a })
        .map(|a| {
            let s = |f: &str| a[f].as_str().unwrap().to_string();
            (s("view"), s("key"), s("class"))
        })
        .collect()
}

fn t(view: &str, key: &str, class: &str) -> (String, String, String) {
    (view.into(), key.into(), class.into())
}

#[tokio::test(flavor = "multi_thread")]
async fn rescoring_leaves_live_results_alone_and_lists_differences() {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let pcaps = testkit::pcaps_dir();
    live_replay(&nats.url, &db.url, &pcaps.join("port_scan-nmap-syn.pcap"), "scan");
    live_replay(&nats.url, &db.url, &pcaps.join("ssh_brute-guessing.pcap"), "ssh");
    let c = db.client().await.unwrap();
    let live_before = live_digests(&c).await;
    assert!(count(&c, "SELECT count(*) FROM alerts").await >= 2, "live alerts of both captures");

    let dir = tempfile::tempdir().unwrap();
    let shipped = testkit::workspace_root().join("crates/predictor/models/default.nta-model");
    let rules_only = dir.path().join("rules-only.nta-model");
    Model::new(None, None, "rules-only", serde_json::json!({}), serde_json::json!({}))
        .unwrap()
        .save(&rules_only)
        .unwrap();
    let (shipped, rules_only) = (shipped.to_str().unwrap(), rules_only.to_str().unwrap());
    // Both captures: the port scan of 2010 and the SSH guessing of 2015.
    let range = ["--from", "2010-07-04T00:00:00Z", "--to", "2015-03-31T00:00:00Z"];

    // Anything on NATS subjects of NTA during the runs would be a leak into the live pipeline.
    let client = async_nats::connect(&nats.url).await.unwrap();
    let mut sub = client.subscribe("nta.>").await.unwrap();
    client.flush().await.unwrap();

    // The shipped model reproduces the live alerts exactly.
    let same = run_json(&nats.url, &db.url, &[&range[..], &["--model", shipped, "--run", "same"]].concat());
    assert_eq!(same["run_only"], serde_json::json!([]), "{same:#}");
    assert_eq!(same["live_only"], serde_json::json!([]), "{same:#}");
    assert_eq!(
        triples(&same["both"]),
        BTreeSet::from([t("source", "172.16.0.8", "port_scan"), t("source", "192.168.56.1", "ssh_brute")])
    );
    let live_windows = count(&c, "SELECT count(*) FROM window_features").await;
    assert_eq!(count(&c, "SELECT windows FROM runs WHERE name = 'same'").await, live_windows);
    // Same verdicts as live, window by window.
    let differing = count(
        &c,
        "SELECT count(*) FROM run_predictions r FULL JOIN predictions p USING (view, key, window_start, window_size)
         WHERE r.run IS DISTINCT FROM 'same' OR p.label IS DISTINCT FROM r.label
            OR p.confidence IS DISTINCT FROM r.confidence OR p.rules IS DISTINCT FROM r.rules",
    )
    .await;
    assert_eq!(differing, 0, "run predictions differ from the live ones");

    // Rules only: the SSH guessing goes unnoticed (the forest found it), the port scan stays.
    let rules = run_json(&nats.url, &db.url, &[&range[..], &["--model", rules_only, "--run", "rules"]].concat());
    assert_eq!(triples(&rules["both"]), BTreeSet::from([t("source", "172.16.0.8", "port_scan")]), "{rules:#}");
    assert_eq!(triples(&rules["live_only"]), BTreeSet::from([t("source", "192.168.56.1", "ssh_brute")]));
    assert_eq!(rules["run_only"], serde_json::json!([]));
    assert_eq!(rules["per_class"]["ssh_brute"], serde_json::json!({"run_only": 0, "live_only": 1, "both": 0}));
    assert_eq!(rules["per_class"]["port_scan"], serde_json::json!({"run_only": 0, "live_only": 0, "both": 1}));
    let table = rescore(&nats.url, &db.url, &[&range[..], &["--model", rules_only, "--run", "rules2"]].concat());
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(table.contains("only live:") && table.contains("192.168.56.1"), "{table}");

    // Same name, same inputs: identical rows.
    let first = run_digests(&c, "rules").await;
    assert!(count(&c, "SELECT count(*) FROM run_predictions WHERE run = 'rules'").await > 0);
    run_json(&nats.url, &db.url, &[&range[..], &["--model", rules_only, "--run", "rules"]].concat());
    assert_eq!(run_digests(&c, "rules").await, first, "a rerun changed the run's rows");

    // One agent: only its packets, compared with the live alerts of the keys it saw.
    let ssh =
        run_json(&nats.url, &db.url, &[&range[..], &["--model", shipped, "--run", "ssh", "--agent", "ssh"]].concat());
    assert_eq!(ssh["live_alerts"], 1, "{ssh:#}");
    assert_eq!(triples(&ssh["both"]), BTreeSet::from([t("source", "192.168.56.1", "ssh_brute")]));
    let scan_packets = count(&c, "SELECT count(*) FROM raw_packets WHERE agent_id = 'ssh'").await;
    assert_eq!(count(&c, "SELECT records FROM runs WHERE name = 'ssh'").await, scan_packets);

    // Bad inputs: a clear error and a failing exit code, and nothing written.
    let runs_before = count(&c, "SELECT count(*) FROM runs").await;
    for (args, want) in [
        (vec!["--from", "2015-03-31T00:00:00Z", "--to", "2010-07-04T00:00:00Z"], "--from must not be after --to"),
        (vec!["--from", "last tuesday", "--to", "2010-07-04T00:00:00Z"], "neither RFC 3339"),
        (vec!["--from", "2000-01-01T00:00:00Z", "--to", "2000-01-02T00:00:00Z"], "NTA_PACKETS holds"),
    ] {
        let out = rescore(&nats.url, &db.url, &[&args[..], &["--model", shipped, "--run", "bad"]].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{args:?}: {err}");
    }
    for (args, want) in [
        (vec!["--model", "/nonexistent.nta-model", "--run", "bad"], "reading model file"),
        (vec!["--model", shipped, "--run", "a/b"], "run name must be"),
        (vec!["--model", shipped, "--run", "bad", "--agent", "a.b"], "not a subject token"),
    ] {
        let out = rescore(&nats.url, &db.url, &[&range[..], &args[..]].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{args:?}: {err}");
    }
    assert_eq!(count(&c, "SELECT count(*) FROM runs").await, runs_before);

    // Delete: the run and its rows go; an unknown name is an error.
    let out = rescore(&nats.url, &db.url, &["--delete", "rules"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(count(&c, "SELECT count(*) FROM run_predictions WHERE run = 'rules'").await, 0);
    assert_eq!(count(&c, "SELECT count(*) FROM run_alerts WHERE run = 'rules'").await, 0);
    assert_eq!(count(&c, "SELECT count(*) FROM runs WHERE name = 'rules'").await, 0);
    let out = rescore(&nats.url, &db.url, &["--delete", "rules"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no run named"));

    // The live tables never changed, and nothing went out on nta.*.
    assert_eq!(live_digests(&c).await, live_before, "live predictions/alerts/alert_windows changed");
    client.flush().await.unwrap();
    let leaked = tokio::time::timeout(Duration::from_millis(500), sub.next()).await;
    assert!(leaked.is_err(), "published during a rescore: {:?}", leaked.ok().flatten().map(|m| m.subject));
}
