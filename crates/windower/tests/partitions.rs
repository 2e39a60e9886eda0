//! Partitioned windowers: on every shared capture, the union of the windows of partitions
//! `0..n` equals the single windower's (no window lost, none doubled, features identical,
//! including the ARP join across partitions), and a windower resuming from another
//! partitioning's checkpoints emits exactly the windows after each key's old checkpoint.

use agent::records_from_file;
use std::collections::BTreeMap;
use windower::{windows_from_records, Partition, Windower, WindowerConfig};
use wire::{PacketRecord, WindowRecord};

type Index = BTreeMap<(String, String, u32, i64), WindowRecord>;

fn index(ws: Vec<WindowRecord>) -> Index {
    let mut out = BTreeMap::new();
    for w in ws {
        let k = (w.view.as_str().to_string(), w.key.clone(), w.window_size, w.window_start);
        assert!(out.insert(k.clone(), w).is_none(), "window {k:?} emitted twice");
    }
    out
}

fn captures() -> Vec<(String, Vec<PacketRecord>)> {
    let mut out = Vec::new();
    for p in testkit::shared_pcaps() {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        // Malformed captures are decode tests; whatever decodes of them is fine here too.
        if let Ok(recs) = records_from_file(&p) {
            out.push((name, recs));
        }
    }
    assert!(out.len() >= 15, "shared captures missing: {}", out.len());
    out
}

#[test]
fn partitions_together_equal_one_windower_on_every_capture() {
    let cfg = WindowerConfig::default();
    for (name, recs) in captures() {
        let whole = index(windows_from_records(recs.clone(), &cfg));
        for count in [2u32, 3] {
            let mut union = Index::new();
            for i in 0..count {
                let part = Partition::new(i, count).unwrap();
                let (ws, _) = Windower::for_partition(cfg.clone(), part).run_to_end(recs.clone());
                for (k, w) in index(ws) {
                    assert!(part.owns(&w.key.parse().unwrap()), "{name}: {k:?} emitted by {part}");
                    assert!(union.insert(k.clone(), w).is_none(), "{name}: {k:?} emitted by two partitions");
                }
            }
            assert_eq!(union.len(), whole.len(), "{name}: {count} partitions");
            assert!(union == whole, "{name}: {count} partitions give other features");
        }
    }
}

#[test]
fn resuming_from_another_partitioning_emits_what_each_old_owner_had_not() {
    let cfg = WindowerConfig::default();
    for (name, recs) in captures() {
        let (Some(first), Some(last)) = (recs.first(), recs.last()) else { continue };
        let whole = index(windows_from_records(recs.clone(), &cfg));
        // Two old partitions stopped at different points inside the capture.
        let t0 = first.timestamp.floor() as i64;
        let span = (last.timestamp.floor() as i64 - t0).max(1);
        let at = |frac: i64| {
            let t = t0 + span * frac / 4;
            [t.div_euclid(5) * 5, t.div_euclid(30) * 30, t.div_euclid(180) * 180]
        };
        let old = vec![at(1), at(3)];
        let mut w = Windower::new(cfg.clone());
        w.resume_by_owner(old.clone());
        let (ws, _) = w.run_to_end(recs.clone());
        let got = index(ws);
        let sizes = [5u32, 30, 180];
        let want: Index = whole
            .into_iter()
            .filter(|(_, w)| {
                let owner = Partition::of(&w.key.parse().unwrap(), 2) as usize;
                let i = sizes.iter().position(|&s| s == w.window_size).unwrap();
                w.window_start + w.window_size as i64 > old[owner][i]
            })
            .collect();
        assert!(got == want, "{name}: {} windows, want {}", got.len(), want.len());
    }
}
