//! The key budget (`windower.max_open_keys`): past it, source keys new to a 3-minute period are
//! counted in aggregate; every window still emitted is exact, the destination view whole, and
//! the shedding shows in the stats and on the source windows of the windows that shed.

use agent::records_from_file;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;
use windower::level::{SHED_RECORDS, SHED_SOURCES};
use windower::{windows_from_records_with_stats, Windower, WindowerConfig};
use wire::{PacketRecord, Protocol, View, WindowRecord};

/// 2026-01-01T00:00:00Z, a multiple of 180.
const T0: f64 = 1_767_225_600.0;
const TARGET: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

fn syn(ts: f64, src: u32, port: u16) -> PacketRecord {
    let mut r = PacketRecord::new(ts, 60);
    r.protocol = Protocol::Tcp;
    r.src_ip = Some(IpAddr::V4(Ipv4Addr::from(0x2000_0000 + src)));
    r.dst_ip = Some(IpAddr::V4(TARGET));
    r.src_port = Some(port);
    r.dst_port = Some(80);
    r.set_tcp_flags(0x02);
    r
}

/// The target's SYN-ACK to `src`: it updates the "received" part of `src`'s source state.
fn synack(ts: f64, src: u32, port: u16) -> PacketRecord {
    let mut r = syn(ts, src, port);
    std::mem::swap(&mut r.src_ip, &mut r.dst_ip);
    r.src_port = Some(80);
    r.dst_port = Some(port);
    r.set_tcp_flags(0x12);
    r
}

fn cfg(budget: usize) -> WindowerConfig {
    WindowerConfig { max_open_keys: budget, ..WindowerConfig::default() }
}

type Index = BTreeMap<String, WindowRecord>;

fn index(ws: &[WindowRecord], view: View) -> Index {
    ws.iter().filter(|w| w.view == view).map(|w| (w.window_id(), w.clone())).collect()
}

fn without_flag(w: &WindowRecord) -> WindowRecord {
    let mut w = w.clone();
    w.features.remove(SHED_RECORDS);
    w.features.remove(SHED_SOURCES);
    w
}

/// Checks the invariants of a budgeted run against the unbudgeted one: equal destination view,
/// every source window emitted equal (the flag aside), and returns the budgeted source windows.
fn check_exact(budgeted: &[WindowRecord], full: &[WindowRecord]) -> Index {
    assert_eq!(index(budgeted, View::Destination), index(full, View::Destination));
    let full_src = index(full, View::Source);
    let src = index(budgeted, View::Source);
    for (id, w) in &src {
        let f = full_src.get(id).unwrap_or_else(|| panic!("{id}: a window the unbudgeted run has not"));
        assert_eq!(&without_flag(w), f, "{id}");
    }
    src
}

#[test]
fn keys_past_the_budget_are_shed_for_their_period_and_the_rest_stays_exact() {
    // Period 1 (180 s): 10 sources send a SYN in the first 5 s window, then every source sends
    // one per 5 s window for a minute, and the target answers source 9. Period 2: all again.
    let mut recs = Vec::new();
    for s in 0..10 {
        recs.push(syn(T0 + 0.1 * s as f64, s, 1000 + s as u16));
    }
    for k in 1..12 {
        for s in 0..10 {
            recs.push(syn(T0 + 5.0 * k as f64 + 0.1 * s as f64, s, 2000 + s as u16));
        }
    }
    recs.push(synack(T0 + 61.0, 9, 2009));
    recs.push(synack(T0 + 61.5, 2, 2002));
    for s in 0..10 {
        recs.push(syn(T0 + 200.0 + 0.1 * s as f64, s, 3000 + s as u16));
    }
    let (full, full_stats) = windows_from_records_with_stats(recs.clone(), &cfg(1_000_000));
    assert_eq!(full_stats.shed_records, 0);
    assert!(full.iter().all(|w| !w.features.contains_key(SHED_RECORDS)), "no flag under the budget");

    let (got, stats) = windows_from_records_with_stats(recs.clone(), &cfg(4));
    let src = check_exact(&got, &full);
    // Sources 0..3 took the 4 states; 4..9 are shed for all of period 1: 6 in the first window,
    // 6 in each of the 11 next, and both SYN-ACKs (the target is a new source key; the one to
    // source 2 still updates source 2's received part, the one to source 9 does not); then 6
    // sources again in period 2.
    assert_eq!(stats.shed_records, 6 + 6 * 11 + 2 + 6);
    assert_eq!(stats.overload_periods, 2, "period 2 starts with 10 new keys over a budget of 4 too");
    let keys_in = |start: i64, size: u32| -> Vec<String> {
        let mut k: Vec<String> =
            src.values().filter(|w| w.window_start == start && w.window_size == size).map(|w| w.key.clone()).collect();
        k.sort();
        k
    };
    let first4: Vec<String> = (0..4).map(|s| Ipv4Addr::from(0x2000_0000 + s).to_string()).collect();
    let t0 = T0 as i64;
    assert_eq!(keys_in(t0, 5), first4);
    assert_eq!(keys_in(t0 + 55, 5), first4);
    assert_eq!(keys_in(t0, 30), first4);
    assert_eq!(keys_in(t0, 180), first4);
    // Period 2 is a new period: it admits 4 keys again (whichever come first).
    assert_eq!(keys_in(t0 + 180, 180), first4);
    // The flag: records and distinct sources shed in the window.
    let w = &src[&format!("source.5.{t0}.32.0.0.0")];
    assert_eq!(w.features[SHED_RECORDS], Some(6.0));
    assert_eq!(w.features[SHED_SOURCES], Some(6.0));
    let w = &src[&format!("source.180.{t0}.32.0.0.0")];
    assert_eq!(w.features[SHED_RECORDS], Some(74.0));
    assert_eq!(w.features[SHED_SOURCES], Some(7.0), "sources 4..9 and the target");
    let w = &src[&format!("source.5.{}.32.0.0.2", t0 + 15)];
    assert_eq!(w.features[SHED_RECORDS], Some(6.0));
}

#[test]
fn a_key_held_before_the_freeze_keeps_all_its_records() {
    // Source 0 appears in the first 5 s window, the budget is hit in the second; source 0's
    // state is then in the 30 s accumulator only, and it is still admitted in later windows.
    let mut recs = vec![syn(T0, 0, 1000)];
    for s in 1..20 {
        recs.push(syn(T0 + 6.0 + 0.01 * s as f64, s, 1000));
    }
    for k in 2..40 {
        recs.push(syn(T0 + 5.0 * k as f64, 0, 1000 + k as u16));
    }
    let (full, _) = windows_from_records_with_stats(recs.clone(), &cfg(0));
    let (got, stats) = windows_from_records_with_stats(recs, &cfg(3));
    let src = check_exact(&got, &full);
    assert_eq!(stats.shed_records, 17);
    let zero = Ipv4Addr::from(0x2000_0000).to_string();
    let w180 = src.values().find(|w| w.key == zero && w.window_size == 180).expect("source 0's 180 s window");
    assert_eq!(w180.features["packet_count"], Some(35.0));
    // Period 2 counts its own states: source 0 is admitted again at its start.
    let w = src.values().find(|w| w.key == zero && w.window_start == T0 as i64 + 180 && w.window_size == 180);
    assert_eq!(w.expect("source 0 in period 2").features["packet_count"], Some(4.0));
}

#[test]
fn a_key_held_in_the_previous_30s_window_is_admitted_in_the_next() {
    // Source 0 sends at T0 and again at T0 + 31, when the 30 s window [T0, T0 + 30) is still
    // open (not yet merged into the 180 s accumulator) and no open 5 s window holds source 0.
    // (Source 1 at T0 + 28 closes the 5 s windows before T0 + 25.)
    let recs = vec![
        syn(T0, 0, 1000),
        syn(T0 + 1.0, 1, 1000),
        syn(T0 + 2.0, 2, 1000),
        syn(T0 + 28.0, 1, 1001),
        syn(T0 + 31.0, 0, 1001),
    ];
    let (full, _) = windows_from_records_with_stats(recs.clone(), &cfg(0));
    let (got, stats) = windows_from_records_with_stats(recs, &cfg(2));
    let src = check_exact(&got, &full);
    assert_eq!(stats.shed_records, 1, "only source 2");
    let zero = Ipv4Addr::from(0x2000_0000).to_string();
    let w180 = src.values().find(|w| w.key == zero && w.window_size == 180).expect("source 0's 180 s window");
    assert_eq!(w180.features["packet_count"], Some(2.0));
}

/// The shared spoofed SYN flood (9 701 sources to one target) under a small key budget, fed as
/// the service does (batches, polls): the target's destination windows equal the unbudgeted
/// ones, so does every source window still emitted, and the shedding is counted.
#[test]
fn the_shared_spoofed_flood_under_a_small_budget() {
    let path = testkit::pcaps_dir().join("syn_flood-ecn-cwr.pcapng");
    let records = records_from_file(&path).unwrap();
    let (full, full_stats) = windows_from_records_with_stats(records.clone(), &WindowerConfig::default());
    assert_eq!(full_stats.shed_records, 0, "the default budget holds the capture");
    for budget in [50, 1000] {
        let mut w = Windower::new(cfg(budget));
        let mut got = Vec::new();
        for chunk in records.chunks(500) {
            w.push_batch("agent", chunk, Instant::now());
            got.extend(w.poll_closed(Instant::now()));
        }
        w.end_of_input("agent");
        got.extend(w.poll_closed(Instant::now()));
        let stats = w.stats().clone();
        let src = check_exact(&got, &full);
        let full_src = index(&full, View::Source);
        eprintln!(
            "budget {budget}: {} records shed in {} periods; {} of {} source windows emitted",
            stats.shed_records,
            stats.overload_periods,
            src.len(),
            full_src.len()
        );
        assert!(stats.shed_records > 0 && stats.overload_periods > 0);
        assert!(src.len() < full_src.len());
        let flagged: f64 = src
            .values()
            .filter(|w| w.window_size == 180)
            .filter_map(|w| w.features.get(SHED_RECORDS).copied().flatten())
            .fold(0.0, f64::max);
        assert!(flagged > 0.0, "the 180 s source windows say records were shed");
        // The flood's target is the destination with the most SYNs, budget or not.
        let target = |ws: &[WindowRecord]| {
            ws.iter()
                .filter(|w| w.view == View::Destination)
                .max_by(|a, b| a.features["syn_in_count"].partial_cmp(&b.features["syn_in_count"]).unwrap())
                .map(|w| w.key.clone())
        };
        assert_eq!(target(&got), target(&full));
    }
}
