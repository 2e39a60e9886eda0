//! The service's way of feeding the windower (batches of 500 records, `poll_closed` after each)
//! gives exactly the windows of the offline path, on every shared capture.

use agent::records_from_file;
use std::time::Instant;
use windower::{windows_from_records, Windower, WindowerConfig};

#[test]
fn batched_pushes_with_polls_equal_the_offline_path() {
    let cfg = WindowerConfig::default();
    for path in testkit::shared_pcaps() {
        let records = records_from_file(&path).unwrap();
        let offline = windows_from_records(records.clone(), &cfg);
        let mut w = Windower::new(cfg.clone());
        let mut online = Vec::new();
        for chunk in records.chunks(500) {
            w.push_batch("agent", chunk, Instant::now());
            online.extend(w.poll_closed(Instant::now()));
        }
        online.extend(w.finish());
        let key = |x: &wire::WindowRecord| x.window_id();
        let mut a: Vec<_> = offline.iter().map(key).collect();
        let mut b: Vec<_> = online.iter().map(key).collect();
        a.sort();
        b.sort();
        assert_eq!(a.len(), b.len(), "{}: offline {} windows, batched {}", path.display(), a.len(), b.len());
        assert_eq!(a, b, "{}", path.display());
    }
}

/// Without `finish`, the watermark alone closes every window that ends before it.
#[test]
fn watermark_closes_everything_before_it() {
    let cfg = WindowerConfig::default();
    let path = testkit::pcaps_dir().join("syn_flood-ecn-cwr.pcapng");
    let records = records_from_file(&path).unwrap();
    let offline = windows_from_records(records.clone(), &cfg);
    let mut w = Windower::new(cfg.clone());
    let mut online = Vec::new();
    for chunk in records.chunks(500) {
        w.push_batch("agent", chunk, Instant::now());
        online.extend(w.poll_closed(Instant::now()));
    }
    let wm = w.watermark(Instant::now()).unwrap();
    let due: Vec<_> = offline.iter().filter(|x| (x.window_start + x.window_size as i64) as f64 <= wm).collect();
    assert_eq!(online.len(), due.len(), "watermark {wm}: {} closed, {} due", online.len(), due.len());
}

/// An agent's end-of-input marker closes what the watermark would hold open: the windows equal
/// the offline path's, which finishes at the end of the file.
#[test]
fn end_of_input_closes_the_rest() {
    let cfg = WindowerConfig::default();
    let path = testkit::pcaps_dir().join("syn_flood-ecn-cwr.pcapng");
    let records = records_from_file(&path).unwrap();
    let offline = windows_from_records(records.clone(), &cfg);
    let mut w = Windower::new(cfg.clone());
    let mut online = Vec::new();
    for chunk in records.chunks(500) {
        w.push_batch("a", chunk, Instant::now());
        online.extend(w.poll_closed(Instant::now()));
    }
    assert!(online.len() < offline.len(), "the flood's last windows are still open");
    w.end_of_input("a");
    online.extend(w.poll_closed(Instant::now()));
    assert_eq!(online, offline);
}
