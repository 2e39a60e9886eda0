//! `nta analyze` with the shipped default model on other people's captures (the shared set,
//! none of which the model was trained on): attack captures name the attacker and its class,
//! benign captures raise nothing.

mod common;
use common::*;
use std::collections::BTreeSet;

/// (view, key, class) of every alert the capture raises.
fn detections(file: &str) -> BTreeSet<(String, String, String)> {
    let path = testkit::pcaps_dir().join(file);
    let out = nta().arg("analyze").arg(&path).args(["--format", "jsonl"]).output().expect("nta analyze");
    assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .flat_map(|w| {
            let (view, key) = (w["view"].as_str().unwrap().to_string(), w["src_ip"].as_str().unwrap().to_string());
            let classes: Vec<String> =
                w["alerts"].as_array().unwrap().iter().map(|a| a["class"].as_str().unwrap().to_string()).collect();
            classes.into_iter().map(move |c| (view.clone(), key.clone(), c))
        })
        .collect()
}

#[test]
fn attack_captures_name_the_attacker_and_class() {
    let cases = [
        ("port_scan-nmap-syn.pcap", "source", "172.16.0.8", "port_scan"),
        ("port_scan-syn-1000ports.pcap", "source", "10.0.0.140", "port_scan"),
        ("port_scan-nmap-version-tcp.pcap", "source", "192.168.126.228", "port_scan"),
        ("ssh_brute-guessing.pcap", "source", "192.168.56.1", "ssh_brute"),
        ("dns_tunnel-iodine.pcap", "source", "10.0.2.30", "dns_tunnel"),
        ("syn_flood-ecn-cwr.pcapng", "destination", "10.10.10.10", "syn_flood"),
    ];
    let mut failures = Vec::new();
    for (file, view, key, class) in cases {
        let found = detections(file);
        if !found.contains(&(view.to_string(), key.to_string(), class.to_string())) {
            failures.push(format!("{file}: expected {class} for {view} {key}, got {found:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn arp_spoofing_capture_flags_the_claimed_addresses() {
    let found = detections("arp_spoof-unsolicited-replies.pcap");
    assert!(found.iter().any(|(v, _, c)| v == "source" && c == "arp_spoof"), "{found:?}");
}

#[test]
fn benign_captures_raise_nothing() {
    let mut noisy = Vec::new();
    let mut names: Vec<String> = testkit::benign_corpus()
        .iter()
        .map(|p| format!("benign-corpus/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    for path in testkit::shared_pcaps() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("benign-") {
            names.push(name);
        }
    }
    for name in names {
        let found = detections(&name);
        if !found.is_empty() {
            noisy.push(format!("{name}: {found:?}"));
        }
    }
    assert!(noisy.is_empty(), "false positives:\n{}", noisy.join("\n"));
}

/// The installed layout (README, Installing): a binary in `PREFIX/bin` loads
/// `PREFIX/share/nta/models/default.nta-model` when no model is configured, before the
/// repository's model of the checkout it was built from; without that file it falls back to
/// the repository's.
#[test]
fn installed_binary_loads_the_model_beside_it() {
    let prefix = tempfile::tempdir().unwrap();
    let (bin, models) = (prefix.path().join("bin"), prefix.path().join("share/nta/models"));
    std::fs::create_dir_all(&bin).unwrap();
    // A hard link keeps /proc/self/exe in the prefix (a symlink would resolve to target/).
    let exe = bin.join("nta");
    std::fs::hard_link(nta_bin(), &exe).or_else(|_| std::fs::copy(nta_bin(), &exe).map(|_| ())).unwrap();
    let loaded = || {
        let capture = testkit::workspace_root().join("testdata/pcaps/ssh_brute-guessing.pcap");
        let out = std::process::Command::new(&exe)
            .arg("analyze")
            .arg(capture)
            .current_dir(prefix.path())
            .env_remove("NTA_MODEL")
            .env("NTA_LOG", "info")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr.lines().find(|l| l.contains("model loaded")).unwrap_or_else(|| panic!("{stderr}")).to_owned()
    };
    let repo_model = testkit::workspace_root().join("crates/predictor/models/default.nta-model");
    assert!(loaded().contains(&repo_model.display().to_string()), "without an installed model: the repository's");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::copy(&repo_model, models.join("default.nta-model")).unwrap();
    let installed = models.join("default.nta-model").display().to_string();
    let line = loaded();
    assert!(line.contains(&installed), "expected {installed}: {line}");
}
