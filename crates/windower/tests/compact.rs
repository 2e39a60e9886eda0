//! Compact source slots (`windower::slot`) change memory, never windows: on every shared
//! capture, the benign corpus and a synthetic mix built to cross every compact/full boundary,
//! the windows equal those of a windower that gives every key a full state from its first
//! packet (the path before compact slots existed), bit for bit.

use agent::records_from_file;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use windower::{Windower, WindowerConfig};
use wire::{AppProto, PacketRecord, Protocol, WindowRecord};

fn both(recs: &[PacketRecord]) -> (Vec<WindowRecord>, Vec<WindowRecord>) {
    let cfg = WindowerConfig::default();
    let (compact, _) = Windower::new(cfg.clone()).run_to_end(recs.to_vec());
    let (full, _) = Windower::new(cfg).with_full_states().run_to_end(recs.to_vec());
    (compact, full)
}

#[test]
fn compact_slots_give_the_windows_of_full_states_on_every_shared_capture() {
    let mut files = testkit::shared_pcaps();
    files.extend(testkit::benign_corpus());
    assert!(files.len() > 60, "shared captures missing: {}", files.len());
    let mut windows = 0;
    for p in files {
        // Malformed captures are decode tests; whatever decodes of them counts here too.
        let Ok(recs) = records_from_file(&p) else { continue };
        let (compact, full) = both(&recs);
        assert_eq!(compact.len(), full.len(), "{}", p.display());
        for (a, b) in compact.iter().zip(&full) {
            assert_eq!(a, b, "{}", p.display());
        }
        windows += compact.len();
    }
    assert!(windows > 10_000, "{windows} windows compared");
}

/// Keys with 1, 2, 3 and more packets per 5 s window, spread so that compact slots merge with
/// compact and full ones in both orders in the 30 s and 180 s windows; every protocol, v4 and
/// v6, received answers (SYN-ACK, RST, UDP, ICMP unreachable) and the packets a compact slot
/// refuses (DNS, HTTP, SSH, ARP) arriving after compact ones.
#[test]
fn compact_slots_give_the_windows_of_full_states_across_every_boundary() {
    const T0: f64 = 1_767_225_600.0;
    let mut recs = Vec::new();
    let mut x = 7u64;
    let mut rnd = |n: u64| {
        x = windower::hash::mix64(x);
        x % n
    };
    for i in 0..40_000u64 {
        let ts = T0 + i as f64 * 0.009;
        let key = rnd(300) as u32;
        let mut r = PacketRecord::new(ts, 40 + rnd(1400) as u32);
        let v6 = key.is_multiple_of(7);
        let ip = |k: u32| {
            if v6 {
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, k as u16))
            } else {
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + k))
            }
        };
        r.src_ip = Some(ip(key));
        r.dst_ip = Some(ip(rnd(20) as u32 + 1000));
        r.src_port = Some(1024 + rnd(8) as u16);
        r.dst_port = Some([22, 53, 80, 443, 3389, 8080][rnd(6) as usize]);
        match rnd(12) {
            0..=4 => {
                r.protocol = Protocol::Tcp;
                r.set_tcp_flags([0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x00, 0x29][rnd(8) as usize]);
            }
            5 | 6 => r.protocol = Protocol::Udp,
            7 => {
                r.protocol = if v6 { Protocol::Icmpv6 } else { Protocol::Icmp };
                r.icmp_type = Some([0, 3, 8, 1, 129][rnd(5) as usize]);
                r.src_port = None;
                r.dst_port = None;
            }
            8 => {
                r.protocol = Protocol::Udp;
                r.dns_query = Some(rnd(2) == 0);
                r.dns_response = r.dns_query.map(|q| !q);
                r.dns_qtype = Some(16);
                r.dns_qname = Some(format!("x{}.example.org", rnd(50)));
                r.dns_answer_size = Some(rnd(300) as u32);
            }
            9 => {
                r.protocol = Protocol::Tcp;
                r.set_tcp_flags(0x18);
                if rnd(2) == 0 {
                    r.http_method = Some("POST".into());
                    r.http_path = Some("/login".into());
                } else {
                    r.http_status_code = Some([200, 401][rnd(2) as usize]);
                }
            }
            10 => {
                r.protocol = Protocol::Tcp;
                r.set_tcp_flags(0x18);
                r.app_proto = Some(AppProto::Ssh);
            }
            _ => {
                r.protocol = Protocol::Other;
                r.src_port = None;
                r.dst_port = None;
            }
        }
        recs.push(r);
    }
    let (compact, full) = both(&recs);
    assert!(compact.len() > 1000);
    assert_eq!(compact, full);
}
