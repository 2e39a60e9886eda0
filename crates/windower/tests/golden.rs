//! Golden tests on the shared captures: expectations are computed independently, straight
//! from the decoded records (plain sets and counts, no windower code).

use agent::records_from_file;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use windower::{windows_from_records, WindowerConfig};
use wire::{MacAddr, PacketRecord, Protocol, View, WindowRecord};

fn pcap(name: &str) -> PathBuf {
    testkit::pcaps_dir().join(name)
}

fn f(w: &WindowRecord, name: &str) -> Option<f64> {
    *w.features.get(name).unwrap_or_else(|| panic!("no feature {name}"))
}

fn windows(recs: &[PacketRecord]) -> Vec<WindowRecord> {
    // Captures are replayed as one agent; a lateness above the capture's reordering keeps
    // every record (tested separately: the default drops nothing on these files either).
    windows_from_records(recs.to_vec(), &WindowerConfig::default())
}

#[test]
fn nmap_syn_scan_distinct_ports_per_window() {
    let recs = records_from_file(&pcap("port_scan-nmap-syn.pcap")).unwrap();
    // Independent expectation: per source and 5 s / 30 s window, the set of dst ports.
    let mut expect: BTreeMap<(IpAddr, u32, i64), BTreeSet<u16>> = BTreeMap::new();
    for r in &recs {
        let (Some(s), Some(p)) = (r.src_ip, r.dst_port) else { continue };
        for size in [5u32, 30, 180] {
            let start = (r.timestamp.floor() as i64).div_euclid(size as i64) * size as i64;
            expect.entry((s, size, start)).or_default().insert(p);
        }
    }
    let scanner = expect.iter().max_by_key(|(_, v)| v.len()).map(|((s, _, _), _)| *s).unwrap();
    let ws = windows(&recs);
    // The scanner's windows are exactly those where it sent something, with the expected
    // number of distinct destination ports in each.
    let got: BTreeMap<(u32, i64), f64> = ws
        .iter()
        .filter(|w| w.view == View::Source && w.key == scanner.to_string())
        .map(|w| ((w.window_size, w.window_start), f(w, "unique_dst_ports").unwrap()))
        .collect();
    let want: BTreeMap<(u32, i64), f64> = expect
        .iter()
        .filter(|((s, _, _), _)| *s == scanner)
        .map(|((_, size, start), ports)| ((*size, *start), ports.len() as f64))
        .collect();
    assert_eq!(got, want);
    assert_eq!(got.len(), 4, "two 5 s, one 30 s, one 180 s window");
    let big = ws
        .iter()
        .filter(|w| w.key == scanner.to_string() && w.view == View::Source && w.window_size == 180)
        .map(|w| f(w, "unique_dst_ports").unwrap())
        .sum::<f64>();
    assert!(big >= 1000.0, "nmap's top-1000 ports: {big}");
    // A SYN scan leaves nearly all its (target, port) pairs half-open.
    let w30 = ws
        .iter()
        .filter(|w| w.key == scanner.to_string() && w.view == View::Source && w.window_size == 30)
        .max_by(|a, b| f(a, "packet_count").partial_cmp(&f(b, "packet_count")).unwrap())
        .unwrap();
    assert!(f(w30, "half_open_count").unwrap() > 0.8 * f(w30, "unique_dst_ports").unwrap());
}

#[test]
fn arp_spoof_one_mac_claims_two_ips_and_flaps_are_counted() {
    let mut recs = records_from_file(&pcap("arp_spoof-unsolicited-replies.pcap")).unwrap();
    assert!(recs.iter().all(|r| r.protocol == Protocol::Arp));
    let ws = windows(&recs);
    // The capture: MAC 00:e0:4d:3c:25:7b sends unsolicited replies for both 10.0.0.153 and
    // 10.0.0.157. Keyed by sender, never "0"; each key sees the shared MAC.
    let keys: HashSet<&str> = ws.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(keys, HashSet::from(["10.0.0.153", "10.0.0.157"]));
    for w in &ws {
        assert_eq!(f(w, "arp_request_count"), Some(0.0));
        assert_eq!(f(w, "arp_reply_without_request_count"), f(w, "arp_reply_count"));
        assert_eq!(f(w, "duplicate_mac_ips"), Some(2.0), "{w:?}");
        assert_eq!(f(w, "mac_ip_ratio"), Some(0.5));
        // The capture itself never changes a binding.
        assert_eq!(f(w, "arp_binding_flap_count"), Some(0.0));
    }
    // The victims' own (genuine) replies interleaved: now the MAC claiming each IP changes.
    let spoofed = recs.clone();
    for r in &spoofed {
        let mut g = r.clone();
        g.timestamp += 0.5;
        let IpAddr::V4(a) = r.arp_psrc.unwrap() else { unreachable!() };
        g.arp_hwsrc = Some(MacAddr([0x02, 0, 0, 0, 0, a.octets()[3]]));
        recs.push(g);
    }
    recs.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
    let ws = windows(&recs);
    // Independent count: per key and 180 s window, MAC changes in time order.
    let mut seqs: BTreeMap<(String, i64), Vec<MacAddr>> = BTreeMap::new();
    for r in &recs {
        let start = (r.timestamp.floor() as i64).div_euclid(180) * 180;
        seqs.entry((r.arp_psrc.unwrap().to_string(), start)).or_default().push(r.arp_hwsrc.unwrap());
    }
    let mut total = 0.0;
    for w in ws.iter().filter(|w| w.window_size == 180) {
        let s = &seqs[&(w.key.clone(), w.window_start)];
        let want = s.windows(2).filter(|p| p[0] != p[1]).count() as f64;
        assert_eq!(f(w, "arp_binding_flap_count"), Some(want));
        total += want;
        assert_eq!(f(w, "unique_macs_per_ip_max"), Some(2.0));
        assert_eq!(f(w, "suspicious_mac_changes"), Some(2.0));
    }
    assert!(total > 10.0);
}

#[test]
fn iodine_dns_tunnel_high_entropy_long_names_null_queries() {
    let recs = records_from_file(&pcap("dns_tunnel-iodine.pcap")).unwrap();
    let ws = windows(&recs);
    // The tunnel client: the source with the most DNS queries.
    let client = recs
        .iter()
        .filter(|r| r.dns_query == Some(true))
        .fold(BTreeMap::<IpAddr, usize>::new(), |mut m, r| {
            *m.entry(r.src_ip.unwrap()).or_default() += 1;
            m
        })
        .into_iter()
        .max_by_key(|e| e.1)
        .unwrap()
        .0;
    let qtypes: BTreeSet<u16> = recs.iter().filter(|r| r.src_ip == Some(client)).filter_map(|r| r.dns_qtype).collect();
    let w = ws
        .iter()
        .filter(|w| w.view == View::Source && w.key == client.to_string() && w.window_size == 180)
        .max_by(|a, b| f(a, "dns_query_count").partial_cmp(&f(b, "dns_query_count")).unwrap())
        .unwrap();
    let q = f(w, "dns_query_count").unwrap();
    assert!(q > 50.0, "{q}");
    // Whole-name entropy (the original's formula) of iodine's names is depressed by the
    // decoder's lossy UTF-8 (every non-UTF-8 byte of its raw-encoded labels becomes U+FFFD,
    // one character); still above ordinary resolver traffic, with a quarter above 3.5 bits.
    assert!(f(w, "avg_subdomain_entropy").unwrap() > 3.2, "{:?}", f(w, "avg_subdomain_entropy"));
    assert!(f(w, "pct_high_entropy_queries").unwrap() > 0.2);
    assert!(f(w, "avg_subdomain_length").unwrap() > 30.0, "{:?}", f(w, "avg_subdomain_length"));
    assert!(f(w, "max_subdomain_length").unwrap() > 200.0);
    assert!(f(w, "unique_qnames_count").unwrap() > 0.8 * q);
    assert!(f(w, "null_record_count").unwrap() + f(w, "txt_record_count").unwrap() > 0.5 * q);
    assert_eq!(f(w, "distinct_record_types"), Some(qtypes.len() as f64));
    assert!(qtypes.contains(&10) || qtypes.contains(&16), "{qtypes:?}");
    // Answers received by the client: NULL records carry the downstream data.
    assert!(f(w, "avg_answer_size").unwrap() > 50.0, "{:?}", f(w, "avg_answer_size"));
    assert!(f(w, "avg_query_interval_ms").is_some());
}

#[test]
fn syn_flood_one_hot_destination_with_many_sources() {
    let recs = records_from_file(&pcap("syn_flood-ecn-cwr.pcapng")).unwrap();
    // Independent: distinct sources per destination over the whole capture.
    let mut srcs: BTreeMap<IpAddr, HashSet<IpAddr>> = BTreeMap::new();
    for r in &recs {
        if let (Some(s), Some(d)) = (r.src_ip, r.dst_ip) {
            srcs.entry(d).or_default().insert(s);
        }
    }
    let (target, all) = srcs.iter().max_by_key(|e| e.1.len()).unwrap();
    assert!(all.len() > 9000, "{}", all.len());
    let ws = windows(&recs);
    let dst180: Vec<&WindowRecord> =
        ws.iter().filter(|w| w.view == View::Destination && w.window_size == 180).collect();
    // One hot destination: the target, with the sources of its window (sketch bound: the
    // default cap 4096 gives 1.6 % relative standard error; allow 5 %).
    let hot: Vec<&&WindowRecord> = dst180.iter().filter(|w| f(w, "unique_src_ips").unwrap() > 100.0).collect();
    assert_eq!(hot.len(), 1, "{:?}", hot.iter().map(|w| &w.key).collect::<Vec<_>>());
    let w = hot[0];
    assert_eq!(w.key, target.to_string());
    let mut want: HashSet<IpAddr> = HashSet::new();
    for r in &recs {
        let t = r.timestamp.floor() as i64;
        if r.dst_ip == Some(*target) && t >= w.window_start && t < w.window_start + 180 {
            want.insert(r.src_ip.unwrap());
        }
    }
    let got = f(w, "unique_src_ips").unwrap();
    let n = want.len() as f64;
    assert!((got - n).abs() < 0.05 * n, "estimate {got}, true {n}");
    assert!(f(w, "half_open_count").unwrap() > 0.9 * n * 0.95);
    assert!(f(w, "syn_in_count").unwrap() > 9000.0);
    assert!(f(w, "src_ip_diversity").unwrap() > 0.9);
    // In the source view every spoofed source is tiny: nothing stands out per source.
    let max_src = ws
        .iter()
        .filter(|w| w.view == View::Source && w.window_size == 180 && w.key != target.to_string())
        .map(|w| f(w, "packet_count").unwrap())
        .fold(0.0, f64::max);
    assert!(max_src < 50.0, "{max_src}");
}

#[test]
fn every_shared_capture_windows_without_late_records() {
    for p in testkit::shared_pcaps() {
        let recs = records_from_file(&p).unwrap();
        let n = recs.len();
        let (ws, stats) = windower::windows_from_records_with_stats(recs, &WindowerConfig::default());
        assert_eq!(stats.late, 0, "{}", p.display());
        assert_eq!(stats.accepted + stats.skipped_no_address, n as u64, "{}", p.display());
        // Every emitted source window has packets; every feature has its documented name.
        for w in &ws {
            assert!(f(w, "packet_count").unwrap() >= 1.0);
            let names: Vec<&str> = w.features.keys().map(|s| s.as_str()).collect();
            let mut want: Vec<&str> = wire::features::names(w.view).collect();
            want.sort();
            assert_eq!(names, want);
        }
    }
}

/// Per (key, size, start) of every record addressed to a key: the independent expectation of
/// the "received" features.
fn by_window<T: Default>(
    recs: &[PacketRecord],
    key: impl Fn(&PacketRecord) -> Option<IpAddr>,
    mut add: impl FnMut(&mut T, &PacketRecord),
) -> BTreeMap<(String, u32, i64), T> {
    let mut out: BTreeMap<(String, u32, i64), T> = BTreeMap::new();
    for r in recs {
        let Some(k) = key(r) else { continue };
        for size in [5u32, 30, 180] {
            let start = (r.timestamp.floor() as i64).div_euclid(size as i64) * size as i64;
            add(out.entry((k.to_string(), size, start)).or_default(), r);
        }
    }
    out
}

#[test]
fn scans_collect_refusals_and_silence() {
    // SYN scan: the closed ports answer with RSTs; the scanner's refused ports are the RSTs'
    // source ports, its RSTs received their number.
    let recs = records_from_file(&pcap("port_scan-nmap-syn.pcap")).unwrap();
    let rst = |r: &PacketRecord| r.tcp_rst == Some(true);
    let want = by_window(
        &recs,
        |r| rst(r).then_some(r.dst_ip).flatten(),
        |s: &mut (u64, BTreeSet<u16>), r| {
            s.0 += 1;
            s.1.insert(r.src_port.unwrap());
        },
    );
    let ws = windows(&recs);
    let mut checked = 0;
    for w in ws.iter().filter(|w| w.view == View::Source) {
        let (n, ports) = want.get(&(w.key.clone(), w.window_size, w.window_start)).cloned().unwrap_or_default();
        assert_eq!(f(w, "tcp_rst_received_count"), Some(n as f64), "{} {}", w.key, w.window_start);
        assert_eq!(f(w, "tcp_refused_ports"), Some(ports.len() as f64));
        checked += (n > 0) as usize;
    }
    assert!(checked >= 3, "the scanner's windows saw RSTs");
    let scanner =
        ws.iter().filter(|w| w.view == View::Source).max_by_key(|w| f(w, "tcp_refused_ports").unwrap() as u64);
    // The target filters most ports: five RSTs from four closed ports came back.
    assert_eq!(f(scanner.unwrap(), "tcp_refused_ports"), Some(4.0));

    // UDP version scan: the probed ports that never sent a UDP packet back.
    let recs = records_from_file(&pcap("port_scan-nmap-version-udp.pcap")).unwrap();
    let udp = |r: &PacketRecord| r.protocol == Protocol::Udp;
    let sent = by_window(
        &recs,
        |r| udp(r).then_some(r.src_ip).flatten(),
        |s: &mut BTreeSet<u16>, r| {
            s.insert(r.dst_port.unwrap());
        },
    );
    let answered = by_window(
        &recs,
        |r| udp(r).then_some(r.dst_ip).flatten(),
        |s: &mut BTreeSet<u16>, r| {
            s.insert(r.src_port.unwrap());
        },
    );
    let unreachable = by_window(
        &recs,
        |r| (r.protocol == Protocol::Icmp && r.icmp_type == Some(3)).then_some(r.dst_ip).flatten(),
        |n: &mut u64, _| *n += 1,
    );
    let mut most = 0.0f64;
    for w in windows(&recs).iter().filter(|w| w.view == View::Source) {
        let k = (w.key.clone(), w.window_size, w.window_start);
        let ports = sent.get(&k).cloned().unwrap_or_default();
        let back = answered.get(&k).cloned().unwrap_or_default();
        let want = ports.difference(&back).count() as f64;
        assert_eq!(f(w, "udp_unanswered_ports"), Some(want), "{k:?}");
        assert_eq!(f(w, "icmp_unreachable_received_count"), Some(unreachable.get(&k).copied().unwrap_or(0) as f64));
        most = most.max(want);
    }
    assert!(most >= 10.0, "the version scan probes silent ports: {most}");
}

#[test]
fn tcp_probes_without_syn_or_ack_are_counted() {
    // A FIN, a NULL and an Xmas probe, a RST and an ordinary ACK: three probes.
    let mut recs = Vec::new();
    for (i, flags) in [0x01u8, 0x00, 0x29, 0x04, 0x10].into_iter().enumerate() {
        let mut r = PacketRecord::new(1_000.0 + i as f64, 60);
        r.protocol = Protocol::Tcp;
        r.src_ip = Some("10.0.0.66".parse().unwrap());
        r.dst_ip = Some("10.0.0.10".parse().unwrap());
        r.src_port = Some(40_000);
        r.dst_port = Some(100 + i as u16);
        r.set_tcp_flags(flags);
        recs.push(r);
    }
    let ws = windows(&recs);
    let w = ws.iter().find(|w| w.view == View::Source && w.window_size == 5).unwrap();
    assert_eq!(f(w, "tcp_nosyn_noack_count"), Some(3.0));
    assert_eq!(f(w, "tcp_conns_without_syn"), Some(5.0));
}

#[test]
fn arp_replies_to_requests_for_the_key_are_solicited() {
    // skype.pcap: 192.168.1.34 answers its neighbours' who-has for its address; it asks for
    // few addresses itself, which made every answer look unsolicited.
    let recs = records_from_file(&testkit::pcaps_dir().join("benign-corpus/skype.pcap")).unwrap();
    let key: IpAddr = "192.168.1.34".parse().unwrap();
    let replies = recs.iter().filter(|r| r.arp_op == Some(2) && r.arp_psrc == Some(key)).count();
    let asked = recs.iter().filter(|r| r.arp_op == Some(1) && r.arp_pdst == Some(key)).count();
    assert!(replies >= 4 && asked >= replies, "replies {replies}, requests for it {asked}");
    for w in windows(&recs).iter().filter(|w| w.view == View::Source && w.key == key.to_string()) {
        assert_eq!(f(w, "arp_reply_without_request_count"), Some(0.0), "{}", w.window_start);
    }
}

#[test]
fn ssh_sessions_are_counted_by_what_they_speak_on_any_port() {
    // Two guesser connections to sshd on 2222: SYN, then the client's identification string;
    // the server's own identification string goes back on a connection it did not open.
    let (client, server): (IpAddr, IpAddr) = ("10.0.0.66".parse().unwrap(), "10.0.0.10".parse().unwrap());
    let tcp = |t: f64, from: IpAddr, to: IpAddr, sport: u16, dport: u16, flags: u8, ssh: bool| {
        let mut r = PacketRecord::new(t, 80);
        r.protocol = Protocol::Tcp;
        (r.src_ip, r.dst_ip, r.src_port, r.dst_port) = (Some(from), Some(to), Some(sport), Some(dport));
        r.set_tcp_flags(flags);
        r.app_proto = ssh.then_some(wire::AppProto::Ssh);
        r
    };
    let mut recs = Vec::new();
    for (i, port) in [41_000u16, 41_002].into_iter().enumerate() {
        let t = 1_000.0 + i as f64;
        recs.push(tcp(t, client, server, port, 2222, 0x02, false));
        recs.push(tcp(t + 0.01, server, client, 2222, port, 0x12, false));
        recs.push(tcp(t + 0.02, server, client, 2222, port, 0x18, true));
        recs.push(tcp(t + 0.03, client, server, port, 2222, 0x18, true));
    }
    // An SSH banner on a connection the key did not open (e.g. captured mid-stream): not counted.
    recs.push(tcp(1_003.0, client, "10.0.0.11".parse().unwrap(), 41_004, 22, 0x18, true));
    let ws = windows(&recs);
    let src = |k: IpAddr| ws.iter().find(|w| w.view == View::Source && w.window_size == 5 && w.key == k.to_string());
    assert_eq!(f(src(client).unwrap(), "ssh_sessions_opened"), Some(2.0));
    assert_eq!(f(src(client).unwrap(), "ssh_connection_attempts"), Some(0.0), "not port 22");
    assert_eq!(f(src(server).unwrap(), "ssh_sessions_opened"), Some(0.0));
}

#[test]
fn echo_replies_and_tcp_source_ports() {
    // A ping flood's victim answers with echo replies; a client's DNS lookups use UDP source
    // ports that are no TCP connections.
    let (a, b): (IpAddr, IpAddr) = ("10.0.0.66".parse().unwrap(), "10.0.0.10".parse().unwrap());
    let mut recs = Vec::new();
    for i in 0..10u16 {
        let t = 1_000.0 + f64::from(i) * 0.1;
        for (from, to, ty) in [(a, b, 8u8), (b, a, 0)] {
            let mut r = PacketRecord::new(t, 98);
            (r.protocol, r.src_ip, r.dst_ip, r.icmp_type) = (Protocol::Icmp, Some(from), Some(to), Some(ty));
            recs.push(r);
        }
        let mut q = PacketRecord::new(t, 70);
        (q.protocol, q.src_ip, q.dst_ip, q.src_port, q.dst_port) =
            (Protocol::Udp, Some(a), Some(b), Some(50_000 + i), Some(53));
        recs.push(q);
        let mut s = PacketRecord::new(t, 60);
        (s.protocol, s.src_ip, s.dst_ip, s.src_port, s.dst_port) =
            (Protocol::Tcp, Some(a), Some(b), Some(40_000 + i % 3), Some(80));
        s.set_tcp_flags(0x10);
        recs.push(s);
    }
    let ws = windows(&recs);
    let w = |view: View, k: IpAddr| {
        ws.iter().find(|w| w.view == view && w.window_size == 5 && w.key == k.to_string()).unwrap()
    };
    assert_eq!(f(w(View::Source, b), "icmp_echo_reply_count"), Some(10.0));
    assert_eq!(f(w(View::Source, a), "icmp_echo_reply_count"), Some(0.0));
    assert_eq!(f(w(View::Destination, a), "icmp_echo_reply_count"), Some(10.0));
    assert_eq!(f(w(View::Source, a), "tcp_src_port_count"), Some(3.0));
    assert_eq!(f(w(View::Source, a), "unique_src_ports"), Some(13.0));
}
