//! Lab smoke test: the quick lab profile (one short run of every attack class with real tools
//! in network namespaces), then training on its captures, then the shipped model on a fresh
//! lab flood. The full lab is `python3 infra/lab/lab.py`, a command, not a test. Needs root
//! and the lab's packages (`infra/lab/setup.sh`, which `infra/test.sh` runs).

mod common;
use common::*;
use std::collections::BTreeSet;
use std::process::Command;

#[test]
fn quick_lab_run_trains_and_is_detected() {
    let root = testkit::workspace_root();
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("quick");
    let status = Command::new("python3")
        .arg(root.join("infra/lab/lab.py"))
        .args(["--quick", "--out"])
        .arg(&run)
        .status()
        .expect("python3");
    assert!(status.success(), "lab --quick failed");

    // Every class of the project has labelled intervals and non-empty captures.
    let labels = std::fs::read_to_string(run.join("labels.jsonl")).unwrap();
    let mut classes = BTreeSet::new();
    for line in labels.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let capture = run.join(v["capture"].as_str().unwrap());
        assert!(std::fs::metadata(&capture).unwrap().len() > 24, "{} is empty", capture.display());
        classes.insert(v["class"].as_str().unwrap().to_string());
    }
    // Every class the project detects, as the model names them.
    for c in predictor::CLASSES {
        assert!(classes.contains(c), "no {c} interval in {labels}");
    }

    // Training runs end to end on the fresh captures.
    let model = out.path().join("smoke.nta-model");
    let train = nta().args(["train", "--trees", "20", "--lab"]).arg(&run).arg("-o").arg(&model).output().unwrap();
    assert!(train.status.success(), "{}", String::from_utf8_lossy(&train.stderr));
    assert!(std::fs::metadata(&model).unwrap().len() > 0);

    // The shipped model sees the fresh lab's (spoofed) SYN flood on the victim.
    let flood = labels
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["class"] == "syn_flood")
        .unwrap();
    let capture = run.join(flood["capture"].as_str().unwrap());
    let victim = flood["target_ips"][0].as_str().unwrap().to_string();
    let analyze = nta().arg("analyze").arg(&capture).args(["--format", "jsonl"]).output().unwrap();
    assert!(analyze.status.success());
    let hit = String::from_utf8(analyze.stdout).unwrap().lines().any(|l| {
        let w: serde_json::Value = serde_json::from_str(l).unwrap();
        w["view"] == "destination" && w["src_ip"] == victim.as_str() && w["label"] == "syn_flood"
    });
    assert!(hit, "no syn_flood verdict for {victim} in {}", capture.display());

    // The shipped model and rules alert on the attacker of the quick run's scans and guessing,
    // including the styles the first lab lacked (UDP, FIN, masscan bursts, sshd on 2222).
    let mut missed = Vec::new();
    for v in labels.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()) {
        let class = v["class"].as_str().unwrap();
        if !["port_scan", "ssh_brute"].contains(&class) {
            continue;
        }
        let attacker = v["attacker_ips"][0].as_str().unwrap().to_string();
        let capture = run.join(v["capture"].as_str().unwrap());
        let out = nta().arg("analyze").arg(&capture).args(["--format", "jsonl"]).output().unwrap();
        assert!(out.status.success());
        let alerted = String::from_utf8(out.stdout).unwrap().lines().any(|l| {
            let w: serde_json::Value = serde_json::from_str(l).unwrap();
            w["view"] == "source"
                && w["src_ip"] == attacker.as_str()
                && w["alerts"].as_array().unwrap().iter().any(|a| a["class"] == class)
        });
        if !alerted {
            missed.push(format!("{} ({class})", v["variation"]));
        }
    }
    assert!(missed.is_empty(), "no alert of the right class for the attacker in: {missed:?}");

    // No alert names a benign client, in any capture; the benign-only capture raises none.
    let mut noisy = Vec::new();
    for v in labels.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()) {
        if v["class"] != "Normal" {
            continue;
        }
        let clients: Vec<&str> = v["attacker_ips"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        let benign_only = v["scenario"] == "normal";
        let capture = run.join(v["capture"].as_str().unwrap());
        let out = nta().arg("analyze").arg(&capture).args(["--format", "jsonl"]).output().unwrap();
        assert!(out.status.success());
        for l in String::from_utf8(out.stdout).unwrap().lines() {
            let w: serde_json::Value = serde_json::from_str(l).unwrap();
            let key = w["src_ip"].as_str().unwrap();
            if !w["alerts"].as_array().unwrap().is_empty() && (benign_only || clients.contains(&key)) {
                noisy.push(format!("{}: {key} {}", v["variation"], w["alerts"]));
            }
        }
    }
    assert!(noisy.is_empty(), "alerts on benign lab traffic: {noisy:?}");
}
