//! The hand-written MessagePack encoder writes exactly what `rmp_serde` writes, on records
//! built to reach every branch: each optional field absent and present, IPv4 and IPv6,
//! integers at the boundaries of their encodings, strings at the boundaries of theirs.
//! (Every record of the shared captures is compared in `agent/tests/msgpack_identity.rs`.)

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use wire::{AppProto, MacAddr, PacketBatch, PacketRecord, Protocol, TcpFlags};

fn serde_compact(r: &PacketRecord) -> Vec<u8> {
    rmp_serde::to_vec(r).unwrap()
}

fn serde_named(r: &PacketRecord) -> Vec<u8> {
    let mut v = Vec::new();
    rmp_serde::encode::write_named(&mut v, r).unwrap();
    v
}

/// Asserts both forms of `r` are byte-identical to `rmp_serde`'s and read back equal.
fn assert_identical(r: &PacketRecord) {
    let mut compact = Vec::new();
    r.encode_msgpack(&mut compact);
    assert_eq!(compact, serde_compact(r), "compact form of {r:?}");
    let mut named = Vec::new();
    r.encode_msgpack_named(&mut named);
    assert_eq!(named, serde_named(r), "named form of {r:?}");
    assert_eq!(&rmp_serde::from_slice::<PacketRecord>(&compact).unwrap(), r);
    assert_eq!(&rmp_serde::from_slice::<PacketRecord>(&named).unwrap(), r);
}

/// Values at and around every switch of the unsigned integer encodings.
const U64_EDGES: &[u64] =
    &[0, 1, 127, 128, 255, 256, 65535, 65536, u32::MAX as u64 - 1, u32::MAX as u64, u32::MAX as u64 + 1, u64::MAX];

/// Strings at and around every switch of the string encodings (fixstr, str8, str16, str32).
fn string_edges() -> Vec<String> {
    let mut v: Vec<String> = [0usize, 1, 31, 32, 255, 256, 65535, 65536].iter().map(|&n| "x".repeat(n)).collect();
    v.push("é".repeat(16)); // 32 bytes, 16 characters: lengths count bytes
    v.push("ünïcødé/路径?q=1".into());
    v
}

fn edge_ips() -> Vec<IpAddr> {
    vec![
        IpAddr::V4(Ipv4Addr::new(0, 0, 0, 0)),
        IpAddr::V4(Ipv4Addr::new(10, 127, 128, 255)),
        IpAddr::V4(Ipv4Addr::BROADCAST),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        IpAddr::V6("2001:db8::7f:80ff".parse().unwrap()),
        IpAddr::V6(Ipv6Addr::from([0xff; 16])),
        IpAddr::V6("::ffff:192.168.1.200".parse().unwrap()),
    ]
}

/// Every optional field present, with varied values.
fn full_record() -> PacketRecord {
    let mut r = PacketRecord::new(1_767_225_600.123_456_7, 1514);
    r.interface = Arc::from("eth0");
    r.src_ip = Some("192.168.1.10".parse().unwrap());
    r.dst_ip = Some("2001:db8::1".parse().unwrap());
    r.protocol = Protocol::Tcp;
    r.src_port = Some(443);
    r.dst_port = Some(65535);
    r.set_tcp_flags(0xff);
    r.seq = Some(u32::MAX);
    r.ack = Some(128);
    r.icmp_type = Some(255);
    r.icmp_code = Some(127);
    r.arp_op = Some(2);
    r.arp_psrc = Some("10.0.0.1".parse().unwrap());
    r.arp_pdst = Some("::1".parse().unwrap());
    r.arp_hwsrc = Some(MacAddr([0, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e]));
    r.arp_hwdst = Some(MacAddr([0xff; 6]));
    r.dns_query = Some(false);
    r.dns_qname = Some("example.com".into());
    r.dns_qtype = Some(28);
    r.dns_response = Some(true);
    r.dns_answer_count = Some(300);
    r.dns_answer_size = Some(70_000);
    r.http_method = Some("GET".into());
    r.http_path = Some("/index.html?x=1".into());
    r.http_status_code = Some(200);
    r.http_host = Some("www.example.com".into());
    r.src_mac = Some(MacAddr([2, 0, 0, 0, 0, 1]));
    r.dst_mac = Some(MacAddr([0x80, 0x7f, 0, 0xff, 1, 2]));
    r.vlan = Some(4095);
    r.app_proto = Some(AppProto::Tls);
    r.tls_sni = Some("sni.example.org".into());
    r
}

#[test]
fn all_absent_and_all_present() {
    assert_identical(&PacketRecord::default());
    assert_identical(&PacketRecord::new(0.0, 0));
    assert_identical(&full_record());
    for p in [Protocol::Tcp, Protocol::Udp, Protocol::Icmp, Protocol::Icmpv6, Protocol::Arp, Protocol::Other] {
        let mut r = full_record();
        r.protocol = p;
        assert_identical(&r);
    }
    for p in AppProto::ALL.into_iter().map(Some).chain([None]) {
        for base in [PacketRecord::default(), full_record()] {
            let mut r = base;
            r.app_proto = p;
            assert_identical(&r);
        }
    }
}

/// Each optional field alone set to each of its edge values, and alone absent.
#[test]
fn every_field_at_its_edges() {
    type Set = fn(&mut PacketRecord, u64);
    let ints: [Set; 13] = [
        |r, v| r.length = v as u32,
        |r, v| r.src_port = Some(v as u16),
        |r, v| r.dst_port = Some(v as u16),
        |r, v| r.tcp_flags = Some(TcpFlags(v as u8)),
        |r, v| r.seq = Some(v as u32),
        |r, v| r.ack = Some(v as u32),
        |r, v| r.icmp_type = Some(v as u8),
        |r, v| r.icmp_code = Some(v as u8),
        |r, v| r.arp_op = Some(v as u16),
        |r, v| r.dns_qtype = Some(v as u16),
        |r, v| r.dns_answer_count = Some(v as u16),
        |r, v| r.dns_answer_size = Some(v as u32),
        |r, v| r.http_status_code = Some(v as u16),
    ];
    for set in ints {
        for &v in U64_EDGES {
            for base in [PacketRecord::default(), full_record()] {
                let mut r = base;
                set(&mut r, v);
                assert_identical(&r);
            }
        }
    }
    assert_identical(&PacketRecord { vlan: Some(u16::MAX), ..Default::default() });

    type SetStr = fn(&mut PacketRecord, Option<String>);
    let strings: [SetStr; 6] = [
        |r, s| r.interface = Arc::from(s.unwrap_or_default()),
        |r, s| r.dns_qname = s,
        |r, s| r.http_method = s,
        |r, s| r.http_path = s,
        |r, s| r.http_host = s,
        |r, s| r.tls_sni = s,
    ];
    for set in strings {
        for s in string_edges().into_iter().map(Some).chain([None]) {
            for base in [PacketRecord::default(), full_record()] {
                let mut r = base;
                set(&mut r, s.clone());
                assert_identical(&r);
            }
        }
    }

    type SetIp = fn(&mut PacketRecord, Option<IpAddr>);
    let ips: [SetIp; 4] = [|r, a| r.src_ip = a, |r, a| r.dst_ip = a, |r, a| r.arp_psrc = a, |r, a| r.arp_pdst = a];
    for set in ips {
        for a in edge_ips().into_iter().map(Some).chain([None]) {
            for base in [PacketRecord::default(), full_record()] {
                let mut r = base;
                set(&mut r, a);
                assert_identical(&r);
            }
        }
    }

    type SetBool = fn(&mut PacketRecord, Option<bool>);
    let bools: [SetBool; 7] = [
        |r, b| r.tcp_syn = b,
        |r, b| r.tcp_ack = b,
        |r, b| r.tcp_fin = b,
        |r, b| r.tcp_rst = b,
        |r, b| r.tcp_psh = b,
        |r, b| r.dns_query = b,
        |r, b| r.dns_response = b,
    ];
    for set in bools {
        for b in [Some(false), Some(true), None] {
            let mut r = full_record();
            set(&mut r, b);
            assert_identical(&r);
        }
    }

    type SetMac = fn(&mut PacketRecord, Option<MacAddr>);
    let macs: [SetMac; 4] =
        [|r, m| r.arp_hwsrc = m, |r, m| r.arp_hwdst = m, |r, m| r.src_mac = m, |r, m| r.dst_mac = m];
    for set in macs {
        for m in [Some(MacAddr([0; 6])), Some(MacAddr([0x7f, 0x80, 0xff, 1, 2, 3])), None] {
            let mut r = PacketRecord::default();
            set(&mut r, m);
            assert_identical(&r);
        }
    }
}

/// Timestamps: the float is always written as a float 64, whatever its value.
#[test]
fn timestamps() {
    for ts in [
        0.0,
        -0.0,
        1.0,
        1.5,
        -1.5,
        1e-9,
        1_767_225_600.000_000_001,
        wire::MIN_TIMESTAMP,
        wire::MAX_TIMESTAMP,
        f64::MIN_POSITIVE,
        f64::MAX,
        f64::MIN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ] {
        let mut r = full_record();
        r.timestamp = ts;
        assert_identical(&r);
    }
}

/// Pseudo-random records (a fixed xorshift sequence) mixing all of the above.
#[test]
fn random_records_and_batches() {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let strings = string_edges();
    let ips = edge_ips();
    let mut records = Vec::new();
    for _ in 0..3000 {
        let mut r = PacketRecord::new(f64::from_bits(next() >> 2), next() as u32);
        let mut pick = |n: u64| next() % n;
        r.interface = Arc::from(strings[pick(strings.len() as u64) as usize].as_str());
        r.protocol = [Protocol::Tcp, Protocol::Udp, Protocol::Icmp, Protocol::Icmpv6, Protocol::Arp, Protocol::Other]
            [pick(6) as usize];
        let some = |b: u64| !b.is_multiple_of(3);
        let int = |v: u64| U64_EDGES[(v % U64_EDGES.len() as u64) as usize] ^ (v >> 60);
        if some(pick(99)) {
            r.src_ip = Some(ips[pick(ips.len() as u64) as usize]);
        }
        if some(pick(99)) {
            r.dst_ip = Some(ips[pick(ips.len() as u64) as usize]);
        }
        if some(pick(99)) {
            r.src_port = Some(int(pick(u64::MAX)) as u16);
        }
        if some(pick(99)) {
            r.set_tcp_flags(pick(256) as u8);
            r.seq = Some(int(pick(u64::MAX)) as u32);
            r.ack = Some(int(pick(u64::MAX)) as u32);
        }
        if some(pick(99)) {
            r.dns_qname = Some(strings[pick(strings.len() as u64) as usize].clone());
            r.dns_answer_size = Some(int(pick(u64::MAX)) as u32);
            r.dns_response = Some(pick(2) == 1);
        }
        if some(pick(99)) {
            r.http_path = Some(strings[pick(strings.len() as u64) as usize].clone());
            r.http_status_code = Some(int(pick(u64::MAX)) as u16);
        }
        if some(pick(99)) {
            r.app_proto = Some(AppProto::ALL[pick(AppProto::ALL.len() as u64) as usize]);
            if some(pick(99)) {
                r.tls_sni = Some(strings[pick(strings.len() as u64) as usize].clone());
            }
        }
        if some(pick(99)) {
            r.src_mac = Some(MacAddr((pick(u64::MAX) << 16).to_be_bytes()[..6].try_into().unwrap()));
            r.vlan = Some(pick(4096) as u16);
        }
        assert_identical(&r);
        records.push(r);
    }

    // Batches: empty, one record, and sizes around the array encodings' switches.
    for (n, agent, boot, seq) in [
        (0, "a", "b", 0u64),
        (1, "agent-1", "boot", 1),
        (15, "", "", 127),
        (16, "x", "y", 65536),
        (3000, "a", "b", u64::MAX),
    ] {
        let mut b = PacketBatch::new(agent, boot, seq);
        b.records = records[..n].to_vec();
        assert_eq!(b.encode().unwrap(), rmp_serde::to_vec(&b).unwrap(), "batch of {n}");
        let mut appended = vec![1, 2, 3];
        b.encode_into(&mut appended);
        assert_eq!(&appended[3..], &b.encode().unwrap()[..]);
        assert_eq!(PacketBatch::decode(&b.encode().unwrap()).unwrap(), b);
    }
    let mut b = PacketBatch::new("a".repeat(40), "b".repeat(300), 7);
    b.v = 200;
    b.records = records[..1000].to_vec();
    assert_eq!(b.encode().unwrap(), rmp_serde::to_vec(&b).unwrap());
}

/// More records than an array16 holds: the batch switches to array32.
#[test]
fn batch_of_more_than_65535_records() {
    let mut b = PacketBatch::new("a", "b", 1);
    b.records = vec![full_record(); 65_536];
    assert_eq!(b.encode().unwrap(), rmp_serde::to_vec(&b).unwrap());
}
