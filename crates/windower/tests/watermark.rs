//! Watermark, lateness, idle agents, restart (resume) and window alignment.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use windower::{windows_from_records, PushOutcome, Windower, WindowerConfig};
use wire::{PacketRecord, Protocol, View, WindowRecord};

fn rec(ts: f64, src: u8) -> PacketRecord {
    let mut r = PacketRecord::new(ts, 100);
    r.protocol = Protocol::Udp;
    r.src_ip = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, src)));
    r.dst_ip = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)));
    r.src_port = Some(1000);
    r.dst_port = Some(2000);
    r
}

fn pc(w: &WindowRecord) -> f64 {
    w.features["packet_count"].unwrap()
}

/// A multiple of 180 (so of 5 and 30 too).
const T: f64 = 1_700_000_100.0;

#[test]
fn late_records_are_counted_not_merged() {
    let now = Instant::now();
    let mut w = Windower::new(WindowerConfig::default());
    for i in 0..100 {
        assert_eq!(w.push("a", &rec(T + i as f64 * 0.1, 1), now), PushOutcome::Accepted);
    }
    // Event time reaches T+20: watermark T+18 closes the 5 s windows ending by T+15.
    w.push("a", &rec(T + 20.0, 1), now);
    let closed = w.poll_closed(now);
    assert!(closed.iter().any(|x| x.window_size == 5 && x.window_start as f64 == T));
    // A record of the closed window [T, T+5): late, counted, merged nowhere.
    assert_eq!(w.push("a", &rec(T + 1.0, 1), now), PushOutcome::Late);
    // A record of a window still open (watermark not past its end) is fine, however old
    // relative to the newest record.
    assert_eq!(w.push("a", &rec(T + 16.0, 1), now), PushOutcome::Accepted);
    let mut all = closed;
    all.extend(w.finish());
    assert_eq!(w.stats().late, 1);
    let total_5s: f64 = all.iter().filter(|x| x.window_size == 5 && x.view == View::Source).map(pc).sum();
    let total_180: f64 = all.iter().filter(|x| x.window_size == 180 && x.view == View::Source).map(pc).sum();
    assert_eq!(total_5s, 102.0);
    // The long window is exactly the merge of the emitted 5 s windows: the late record is
    // not in it either.
    assert_eq!(total_180, 102.0);
}

#[test]
fn idle_agent_stops_holding_windows_back() {
    let t0 = Instant::now();
    let cfg = WindowerConfig { idle_agent_timeout_s: 10, ..Default::default() };
    let mut w = Windower::new(cfg);
    w.push("a", &rec(T, 1), t0);
    w.push("b", &rec(T, 2), t0);
    // Agent a moves on to T+60; b stays silent.
    for i in 0..=60 {
        w.push("a", &rec(T + i as f64, 1), t0 + Duration::from_secs(1));
    }
    // b is still active (heard 1 s ago): the watermark is b's, T-2, nothing closes.
    assert!(w.poll_closed(t0 + Duration::from_secs(2)).is_empty());
    assert_eq!(w.watermark(t0 + Duration::from_secs(2)), Some(T - 2.0));
    // b silent for more than 10 s: a alone sets the watermark (T+58) and windows close.
    let now = t0 + Duration::from_secs(11);
    let closed = w.poll_closed(now);
    assert!(!closed.is_empty());
    let ends: Vec<i64> = closed.iter().map(|x| x.window_start + x.window_size as i64).collect();
    assert_eq!(*ends.iter().max().unwrap(), (T + 55.0) as i64);
    assert_eq!(w.closed_through()[0], (T + 55.0) as i64);
    // b comes back with old data: its windows are closed, so it is late.
    assert_eq!(w.push("b", &rec(T + 1.0, 2), now), PushOutcome::Late);
    // b's new record at T+60 holds the watermark at T+58 again (b active): no regression.
    w.push("b", &rec(T + 60.0, 2), now);
    assert!(w.poll_closed(now).is_empty());
}

#[test]
fn windows_align_to_epoch_and_rates_use_the_real_length() {
    let start = T as i64;
    assert_eq!(start % 180, 0);
    // 10 packets per second for 180 s, except a silent gap [start+40, start+50).
    let recs: Vec<PacketRecord> = (0..1800)
        .map(|i| start as f64 + i as f64 * 0.1)
        .filter(|t| !(*t >= (start + 40) as f64 && *t < (start + 50) as f64))
        .map(|t| rec(t, 1))
        .collect();
    let ws = windows_from_records(recs, &WindowerConfig::default());
    let src: Vec<&WindowRecord> = ws.iter().filter(|w| w.view == View::Source).collect();
    assert_eq!(src.iter().filter(|w| w.window_size == 5).count(), 36 - 2);
    assert_eq!(src.iter().filter(|w| w.window_size == 30).count(), 6);
    assert_eq!(src.iter().filter(|w| w.window_size == 180).count(), 1);
    for w in &src {
        assert_eq!(w.window_start % w.window_size as i64, 0);
        let want = if w.window_size == 30 && w.window_start == start + 30 {
            200.0
        } else if w.window_size == 180 {
            1700.0
        } else {
            10.0 * w.window_size as f64
        };
        assert_eq!(pc(w), want, "{} {}", w.window_size, w.window_start);
        assert_eq!(w.features["packet_rate_pps"], Some(want / w.window_size as f64));
        assert_eq!(w.features["packet_size_variance"], Some(0.0));
        assert_eq!(w.features["avg_answer_size"], None);
    }
    // Deterministic order: by window end, then size, then view, then key.
    let order: Vec<(i64, u32)> = ws.iter().map(|w| (w.window_start + w.window_size as i64, w.window_size)).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
}

#[test]
fn resume_never_repeats_emitted_windows_and_keeps_feeding_long_ones() {
    let start = T as i64 + 7; // not aligned: the first windows are partial
    let recs: Vec<PacketRecord> = (0..4000).map(|i| rec(start as f64 + i as f64 * 0.1, 1 + (i % 3) as u8)).collect();
    let cfg = WindowerConfig::default();
    let reference = windows_from_records(recs.clone(), &cfg);

    // First run: half the records, then a "crash" after emitting what had closed.
    let now = Instant::now();
    let mut w = Windower::new(cfg.clone());
    let mut emitted = Vec::new();
    for r in &recs[..2500] {
        w.push("a", r, now);
        emitted.extend(w.poll_closed(now));
    }
    let ct = w.closed_through();
    assert!(ct[0] > ct[1] && ct[1] > ct[2], "{ct:?}");

    // Restart: replay everything from the start of the oldest open 180 s window.
    let mut w = Windower::new(cfg);
    w.resume(ct);
    let (mut accepted, mut already) = (0, 0);
    for r in &recs {
        match w.push("a", r, now) {
            PushOutcome::Accepted => accepted += 1,
            PushOutcome::AlreadyEmitted => already += 1,
            PushOutcome::Late => panic!("late on replay"),
        }
        emitted.extend(w.poll_closed(now));
    }
    emitted.extend(w.finish());
    assert!(already > 0 && accepted > 0);
    // Every window exactly once, equal to the uninterrupted run.
    let key = |w: &WindowRecord| (w.window_start + w.window_size as i64, w.window_size, w.view, w.key.clone());
    emitted.sort_by_key(key);
    let mut reference = reference;
    reference.sort_by_key(key);
    assert_eq!(emitted, reference);
}
