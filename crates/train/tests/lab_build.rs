//! Training data from a small lab made of shared captures (labels written here, captures read
//! through the agent and windowed by the windower): every attack class gets its windows, the
//! split and a forest run end to end.

use std::collections::BTreeSet;
use train::{build, held_out, lab, train_view, CLASSES};
use windower::WindowerConfig;

/// One `labels.jsonl` line covering the whole capture.
fn line(capture: &str, variation: &str, class: &str, extra: &str) -> String {
    let path = testkit::pcaps_dir().join(capture);
    format!(
        r#"{{"capture":{:?},"variation":"{variation}","class":"{class}",{extra}"start_epoch":0,"end_epoch":1e12}}"#,
        path.to_str().unwrap()
    )
}

#[test]
fn shared_captures_make_labelled_windows_and_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let labels = [
        line("arp_spoof-unsolicited-replies.pcap", "arp1", "arp_spoof", r#""attacker_macs":["00:E0:4D:3C:25:7B"],"#),
        line("port_scan-nmap-syn.pcap", "scan1", "port_scan", r#""attacker_ips":["172.16.0.8"],"#),
        line("port_scan-syn-1000ports.pcap", "scan2", "port_scan", r#""attacker_ips":["10.0.0.140"],"#),
        line("syn_flood-ecn-cwr.pcapng", "flood1", "syn_flood", r#""target_ips":["10.10.10.10"],"spoofed":true,"#),
    ];
    std::fs::write(dir.path().join("labels.jsonl"), labels.join("\n")).unwrap();
    let intervals = lab::load(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(intervals.len(), 4);

    let data = build(&intervals, &WindowerConfig::default()).unwrap();
    let class = |name: &str| CLASSES.iter().position(|c| *c == name).unwrap();
    let classes = |y: &[usize]| y.iter().map(|&i| CLASSES[i]).collect::<BTreeSet<_>>();
    // ARP claims come from the packets: the attacker's MAC claimed two addresses.
    assert_eq!(classes(&data.source.y), BTreeSet::from(["arp_spoof", "port_scan"]));
    assert!(data.source.y.iter().filter(|&&y| y == class("arp_spoof")).count() >= 2);
    // The spoofed flood labels its target (destination view) and nothing in the source view.
    assert!(classes(&data.destination.y).contains("syn_flood"));
    assert_eq!(data.source.names.last().map(String::as_str), Some("window_size"));
    for ex in [&data.source, &data.destination] {
        assert!(ex.x.iter().all(|row| row.len() == ex.names.len()));
    }

    let test = held_out(&data.variation_class);
    assert_eq!(test.len(), 1, "one of the two port scans is held out: {test:?}");
    let params = predictor::ForestParams { n_trees: 5, threads: 1, ..Default::default() };
    let m = train_view(&data.source, &test, &params).unwrap().expect("training rows");
    assert_eq!(m.names, data.source.names);
    assert!(m.train_rows > 0 && m.train_rows < data.source.y.len());
}
