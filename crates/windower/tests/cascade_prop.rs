//! Property: 30 s and 180 s windows built by the cascade equal the features computed directly
//! over the same packets as one window (and so do 5 s windows), for random traffic over about
//! ten minutes: random addresses from a small pool, ports (sometimes absent), TCP flags, DNS
//! queries and answers, HTTP requests and responses, ARP with changing MACs, frames without
//! address. Exact for counts and sets; floating sums within 1e-9 relative. With a tiny
//! distinct cap the sketches are exercised too: they merge to exactly the direct sketch.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use windower::{direct_window, windows_from_records, WindowerConfig};
use wire::{MacAddr, PacketRecord, Protocol, View, WindowRecord};

const T0: f64 = 1_700_000_000.0 - (1_700_000_000 % 180) as f64;

fn ip(i: u64) -> IpAddr {
    match i % 6 {
        5 => IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1 + (i % 2) as u16)),
        k => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + k as u8)),
    }
}

/// One record from a seed and a time offset: every field choice is a slice of the seed.
fn record(seed: u64, dt: f64) -> PacketRecord {
    let mut bits = seed;
    let mut take = |n: u64| {
        let v = bits % n;
        bits /= n;
        v
    };
    let mut r = PacketRecord::new(T0 + dt, 40 + take(1500) as u32);
    r.src_ip = Some(ip(take(6)));
    r.dst_ip = Some(ip(take(6)));
    let port = |v: u64| [22u16, 21, 53, 80, 81, 82, 443, 3389, 6001, 5353][v as usize];
    match take(8) {
        0..=2 => {
            r.protocol = Protocol::Tcp;
            r.src_port = Some(port(take(10)));
            r.dst_port = if take(8) == 0 { None } else { Some(port(take(10))) };
            r.set_tcp_flags([0x02, 0x12, 0x10, 0x18, 0x04, 0x11][take(6) as usize]);
            match take(6) {
                0 => {
                    r.http_method = Some("GET".into());
                    r.http_path = Some(["/login", "/x", "/Auth/y"][take(3) as usize].into());
                }
                1 => r.http_status_code = Some([200, 401, 403][take(3) as usize]),
                _ => {}
            }
        }
        3..=4 => {
            r.protocol = Protocol::Udp;
            r.src_port = Some(port(take(10)));
            r.dst_port = if take(8) == 0 { None } else { Some(port(take(10))) };
            match take(3) {
                0 => {
                    r.dns_query = Some(true);
                    r.dns_response = Some(false);
                    r.dns_qtype = Some([1, 16, 10, 28][take(4) as usize]);
                    r.dns_qname = match take(5) {
                        0 => None,
                        1 => Some(String::new()),
                        k => Some(["a.b.example.com", "x9fk2p0qzv7.t.io", "host"][k as usize - 2].into()),
                    };
                }
                1 => {
                    r.dns_query = Some(false);
                    r.dns_response = Some(true);
                    r.dns_answer_size = if take(3) == 0 { None } else { Some(take(300) as u32) };
                }
                _ => {}
            }
        }
        5 => {
            r.protocol = if take(2) == 0 { Protocol::Icmp } else { Protocol::Icmpv6 };
        }
        6 => {
            r.protocol = Protocol::Arp;
            r.src_ip = None;
            r.dst_ip = None;
            r.arp_op = Some(1 + take(2) as u16);
            r.arp_psrc = Some(ip(take(3)));
            r.arp_pdst = Some(ip(take(3)));
            r.arp_hwsrc = Some(MacAddr([2, 0, 0, 0, 0, take(3) as u8]));
        }
        _ => {
            r.protocol = Protocol::Other;
            if take(2) == 0 {
                r.src_ip = None;
                r.dst_ip = None;
            }
        }
    }
    r
}

type Key = (View, String, i64, u32);

fn index(ws: Vec<WindowRecord>) -> BTreeMap<Key, BTreeMap<String, Option<f64>>> {
    ws.into_iter().map(|w| ((w.view, w.key, w.window_start, w.window_size), w.features)).collect()
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
        _ => false,
    }
}

fn check(recs: Vec<PacketRecord>, cfg: &WindowerConfig) -> Result<(), TestCaseError> {
    let cascade = index(windows_from_records(recs.clone(), cfg));
    let mut direct = BTreeMap::new();
    for size in [5u32, 30, 180] {
        let mut spans: BTreeMap<i64, Vec<PacketRecord>> = BTreeMap::new();
        for r in &recs {
            let s = (r.timestamp.floor() as i64).div_euclid(size as i64) * size as i64;
            spans.entry(s).or_default().push(r.clone());
        }
        for (s, rs) in spans {
            direct.extend(index(direct_window(&rs, s, size, cfg.distinct_cap)));
        }
    }
    prop_assert_eq!(cascade.keys().collect::<Vec<_>>(), direct.keys().collect::<Vec<_>>());
    for (k, f) in &cascade {
        let g = &direct[k];
        prop_assert_eq!(f.keys().collect::<Vec<_>>(), g.keys().collect::<Vec<_>>());
        for (name, v) in f {
            prop_assert!(close(*v, g[name]), "{:?} {}: cascade {:?} direct {:?}", k, name, v, g[name]);
        }
    }
    Ok(())
}

fn cfg(cap: usize, lateness_s: u64) -> WindowerConfig {
    WindowerConfig { allowed_lateness_ms: lateness_s * 1000, distinct_cap: cap, ..Default::default() }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// In time order with the default lateness: windows close while records keep coming.
    #[test]
    fn cascade_equals_direct_in_order(mut recs in prop::collection::vec((any::<u64>(), 0.0..600.0f64), 0..400)) {
        recs.sort_by(|a, b| a.1.total_cmp(&b.1));
        check(recs.into_iter().map(|(s, t)| record(s, t)).collect(), &cfg(4096, 2))?;
    }

    /// Any arrival order (nothing late: lateness above the span), and a distinct cap of 3 so
    /// that sets become bottom-k samples: the merged sketch still equals the direct one.
    #[test]
    fn cascade_equals_direct_any_order_tiny_cap(recs in prop::collection::vec((any::<u64>(), 0.0..600.0f64), 0..400)) {
        check(recs.into_iter().map(|(s, t)| record(s, t)).collect(), &cfg(3, 100_000))?;
    }
}

/// Dense traffic in one 180 s window: many records per key, so every merge path is used.
#[test]
fn dense_single_window() {
    let mut recs: Vec<PacketRecord> =
        (0..20_000u64).map(|i| record(windower::hash::mix64(i), (i as f64 * 0.009) % 180.0)).collect();
    recs.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
    check(recs.clone(), &cfg(4096, 2)).unwrap();
    check(recs, &cfg(16, 2)).unwrap();
}
