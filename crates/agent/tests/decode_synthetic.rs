//! Decoder unit tests on synthetic frames (etherparse's PacketBuilder plus hand-made headers
//! for what it cannot build): link types, VLAN stacks, IPv6 extension headers, fragments,
//! tunnels, ICMP errors, DNS and HTTP, and the malformed / truncated cases.

use agent::decode::{DecodeError, Decoder};
use etherparse::PacketBuilder;
use simple_dns::rdata::{RData, A};
use simple_dns::{Name, Packet, PacketFlag, Question, ResourceRecord, CLASS, QCLASS, QTYPE, TYPE};
use std::net::IpAddr;
use wire::{AppProto, PacketRecord, Protocol};

const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

fn dns_query(name: &str, qtype: TYPE) -> Vec<u8> {
    let mut p = Packet::new_query(0x1234);
    p.questions.push(Question::new(Name::new_unchecked(name), QTYPE::TYPE(qtype), QCLASS::CLASS(CLASS::IN), false));
    p.build_bytes_vec().unwrap()
}

fn dns_response(name: &str, answers: &[[u8; 4]]) -> Vec<u8> {
    let mut p = Packet::new_reply(0x1234);
    p.set_flags(PacketFlag::RESPONSE);
    p.questions.push(Question::new(Name::new_unchecked(name), QTYPE::TYPE(TYPE::A), QCLASS::CLASS(CLASS::IN), false));
    for a in answers {
        p.answers.push(ResourceRecord::new(
            Name::new_unchecked(name),
            CLASS::IN,
            60,
            RData::A(A { address: u32::from_be_bytes(*a) }),
        ));
    }
    p.build_bytes_vec().unwrap()
}

/// IPv4 + UDP packet (no link layer).
fn ipv4_udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).udp(sport, dport).write(&mut v, payload).unwrap();
    v
}

fn ipv4_tcp_syn() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 443, 1000, 64240)
        .syn()
        .write(&mut v, &[])
        .unwrap();
    v
}

fn ipv6_udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(v6(1), v6(2), 64).udp(sport, dport).write(&mut v, payload).unwrap();
    v
}

fn v6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0x20;
    a[1] = 0x01;
    a[2] = 0x0d;
    a[3] = 0xb8;
    a[15] = last;
    a
}

fn eth(ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&DST_MAC);
    v.extend_from_slice(&SRC_MAC);
    v.extend_from_slice(&ether_type.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn decode(linktype: i32, frame: &[u8]) -> PacketRecord {
    Decoder::new(linktype).decode(1_700_000_000.5, frame.len() as u32, frame).expect("decodes")
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[test]
fn ethernet_tcp_syn() {
    let f = eth(0x0800, &ipv4_tcp_syn());
    let r = decode(1, &f);
    assert_eq!(r.protocol, Protocol::Tcp);
    assert_eq!((r.src_ip, r.dst_ip), (ip("10.0.0.1"), ip("10.0.0.2")));
    assert_eq!((r.src_port, r.dst_port), (Some(40000), Some(443)));
    assert_eq!(r.tcp_flags.unwrap().to_string(), "SYN");
    assert_eq!((r.tcp_syn, r.tcp_ack), (Some(true), Some(false)));
    assert_eq!(r.seq, Some(1000));
    assert_eq!(r.src_mac.unwrap().0, SRC_MAC);
    assert_eq!(r.dst_mac.unwrap().0, DST_MAC);
    assert_eq!(r.length, f.len() as u32);
    assert_eq!(r.timestamp, 1_700_000_000.5);
    assert!(r.interface.is_empty());
}

#[test]
fn qinq_gives_outer_vlan() {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .double_vlan(100.try_into().unwrap(), 200.try_into().unwrap())
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(5000, 53)
        .write(&mut f, &dns_query("example.com", TYPE::A))
        .unwrap();
    let r = decode(1, &f);
    assert_eq!(r.vlan, Some(100));
    assert_eq!(r.protocol, Protocol::Udp);
    assert_eq!(r.dns_qname.as_deref(), Some("example.com"));

    // 0x9100 outer tag, 0x8100 inner tag, then IPv4.
    let mut tags = Vec::new();
    tags.extend_from_slice(&[0x00, 0x07, 0x81, 0x00, 0x00, 0x08, 0x08, 0x00]);
    tags.extend_from_slice(&ipv4_tcp_syn());
    let r = decode(1, &eth(0x9100, &tags));
    assert_eq!(r.vlan, Some(7));
    assert_eq!(r.protocol, Protocol::Tcp);
}

#[test]
fn linux_sll_v1_and_v2() {
    let pkt = ipv4_udp(5353, 5353, &dns_query("printer.local", TYPE::PTR));
    // SLL v1: packet type, ARPHRD_ETHER, addr len 6, addr (8 bytes), protocol.
    let mut v1 = vec![0, 0, 0, 1, 0, 6];
    v1.extend_from_slice(&SRC_MAC);
    v1.extend_from_slice(&[0, 0, 0x08, 0x00]);
    v1.extend_from_slice(&pkt);
    let r = decode(113, &v1);
    assert_eq!(r.src_mac.unwrap().0, SRC_MAC);
    assert_eq!(r.dst_mac, None);
    assert_eq!(r.dns_qname.as_deref(), Some("printer.local"));
    assert_eq!(r.dns_qtype, Some(12));
    assert_eq!(r.dns_query, Some(true));

    // SLL v2: protocol, reserved, ifindex, ARPHRD_ETHER, packet type, addr len, addr (8 bytes).
    let mut v2 = vec![0x86, 0xdd, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6];
    v2.extend_from_slice(&SRC_MAC);
    v2.extend_from_slice(&[0, 0]);
    v2.extend_from_slice(&ipv6_udp(40000, 53, &dns_query("example.org", TYPE::AAAA)));
    let r = decode(276, &v2);
    assert_eq!(r.src_mac.unwrap().0, SRC_MAC);
    assert_eq!(r.src_ip, ip("2001:db8::1"));
    assert_eq!(r.dns_qname.as_deref(), Some("example.org"));
    assert_eq!(r.dns_qtype, Some(28));
}

#[test]
fn raw_ip_link_types() {
    for dlt in [101, 12, 14, 228] {
        let r = decode(dlt, &ipv4_tcp_syn());
        assert_eq!(r.protocol, Protocol::Tcp, "dlt {dlt}");
        assert_eq!(r.src_mac, None);
    }
    for dlt in [101, 229] {
        let r = decode(dlt, &ipv6_udp(1, 2, b"x"));
        assert_eq!(r.protocol, Protocol::Udp, "dlt {dlt}");
        assert_eq!(r.dst_ip, ip("2001:db8::2"));
    }
}

#[test]
fn bsd_loopback_null_and_loop() {
    let v4 = ipv4_tcp_syn();
    let v6 = ipv6_udp(1, 2, b"x");
    let with = |hdr: [u8; 4], p: &[u8]| [&hdr[..], p].concat();
    // NULL, little-endian host: AF_INET = 2, AF_INET6 = 30 (macOS) / 24 / 28.
    assert_eq!(decode(0, &with([2, 0, 0, 0], &v4)).protocol, Protocol::Tcp);
    for af in [30u8, 24, 28] {
        assert_eq!(decode(0, &with([af, 0, 0, 0], &v6)).protocol, Protocol::Udp);
    }
    // NULL written by a big-endian host.
    assert_eq!(decode(0, &with([0, 0, 0, 2], &v4)).protocol, Protocol::Tcp);
    // LOOP: network byte order.
    assert_eq!(decode(108, &with([0, 0, 0, 2], &v4)).protocol, Protocol::Tcp);
    assert_eq!(decode(108, &with([0, 0, 0, 24], &v6)).src_ip, ip("2001:db8::1"));
    // Unknown family: a record with no IP fields.
    let r = decode(0, &with([99, 0, 0, 0], &v4));
    assert_eq!((r.protocol, r.src_ip), (Protocol::Other, None));
}

/// IPv6 header with `next` as first next-header, then `exts` (already chained) and payload.
fn ipv6_with(next: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    v.push(next);
    v.push(64);
    v.extend_from_slice(&v6(1));
    v.extend_from_slice(&v6(2));
    v.extend_from_slice(rest);
    v
}

fn udp_bytes(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}

#[test]
fn ipv6_extension_headers_are_walked() {
    // Hop-by-hop (8 bytes, next = destination options) -> destination options (8 bytes,
    // next = UDP) -> UDP DNS response.
    let dns = dns_response("example.com", &[[1, 2, 3, 4], [5, 6, 7, 8]]);
    let mut rest = vec![60, 0, 1, 4, 0, 0, 0, 0]; // HBH: next=60 (dest opts), len 0, PadN
    rest.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]); // dest opts: next=17
    rest.extend_from_slice(&udp_bytes(53, 33000, &dns));
    let r = decode(229, &ipv6_with(0, &rest));
    assert_eq!(r.protocol, Protocol::Udp);
    assert_eq!((r.src_port, r.dst_port), (Some(53), Some(33000)));
    assert_eq!(r.dns_response, Some(true));
    assert_eq!(r.dns_query, Some(false));
    assert_eq!(r.dns_qname.as_deref(), Some("example.com"));
    assert_eq!(r.dns_answer_count, Some(2));
    assert_eq!(r.dns_answer_size, Some(8));

    // Hop-by-hop + ICMPv6 neighbour solicitation: every ICMPv6 type is ICMPv6.
    let mut rest = vec![58, 0, 1, 4, 0, 0, 0, 0];
    rest.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
    let r = decode(229, &ipv6_with(0, &rest));
    assert_eq!(r.protocol, Protocol::Icmpv6);
    assert_eq!((r.icmp_type, r.icmp_code), (Some(135), Some(0)));
}

#[test]
fn fragments_only_first_has_ports() {
    // IPv4: first fragment (MF, offset 0) has ports, a later one (offset 185*8) has none.
    let mut first = ipv4_udp(5000, 6000, &[0u8; 32]);
    first[6] = 0x20; // MF
    let r = decode(101, &first);
    assert_eq!((r.protocol, r.src_port), (Protocol::Udp, Some(5000)));
    let mut later = ipv4_udp(5000, 6000, &[0u8; 32]);
    later[6] = 0x00;
    later[7] = 185;
    let r = decode(101, &later);
    assert_eq!(r.protocol, Protocol::Udp);
    assert_eq!((r.src_port, r.dst_port), (None, None));
    assert_eq!(r.src_ip, ip("10.0.0.1"));

    // IPv6 fragment header: offset 0 (with M) -> ports; offset > 0 -> none.
    let frag = |offset_units: u16, more: bool| {
        let off = (offset_units << 3) | more as u16;
        let mut rest = vec![17, 0];
        rest.extend_from_slice(&off.to_be_bytes());
        rest.extend_from_slice(&[0, 0, 0, 1]);
        rest.extend_from_slice(&udp_bytes(5353, 5353, &[0u8; 16]));
        ipv6_with(44, &rest)
    };
    let r = decode(229, &frag(0, true));
    assert_eq!((r.protocol, r.src_port), (Protocol::Udp, Some(5353)));
    let r = decode(229, &frag(100, false));
    assert_eq!((r.protocol, r.src_port), (Protocol::Udp, None));

    // A later fragment of a packet whose fragmentable part starts with a destination-options
    // header (next header 60): its data may look like an extension header (here one announcing
    // UDP) but is not walked; the protocol is the fragment header's (60 -> OTHER), as tshark.
    let mut rest = vec![60, 0];
    rest.extend_from_slice(&((100u16 << 3).to_be_bytes()));
    rest.extend_from_slice(&[0, 0, 0, 1]);
    rest.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
    rest.extend_from_slice(&udp_bytes(53, 53, &[0u8; 8]));
    let r = decode(229, &ipv6_with(44, &rest));
    assert_eq!((r.protocol, r.src_port), (Protocol::Other, None));
}

#[test]
fn tunnels_use_the_inner_packet() {
    // 6in4: IPv4 protocol 41 carrying IPv6/UDP.
    let inner = ipv6_udp(1234, 53, &dns_query("tunnel.example", TYPE::A));
    let mut outer = Vec::new();
    PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64).write(&mut outer, 41.into(), &inner).unwrap();
    let r = decode(1, &eth(0x0800, &outer));
    assert_eq!((r.src_ip, r.dst_ip), (ip("2001:db8::1"), ip("2001:db8::2")));
    assert_eq!(r.protocol, Protocol::Udp);
    assert_eq!(r.dns_qname.as_deref(), Some("tunnel.example"));

    // IP-in-IP.
    let mut outer = Vec::new();
    PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64).write(&mut outer, 4.into(), &ipv4_tcp_syn()).unwrap();
    let r = decode(101, &outer);
    assert_eq!((r.src_ip, r.protocol), (ip("10.0.0.1"), Protocol::Tcp));
}

#[test]
fn icmp_error_keeps_outer_addresses() {
    // Destination unreachable (3/3) quoting the UDP packet it answers.
    let quoted = ipv4_udp(5000, 161, b"probe");
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&quoted);
    let mut f = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64).write(&mut f, 1.into(), &icmp).unwrap();
    let r = decode(101, &f);
    assert_eq!(r.protocol, Protocol::Icmp);
    assert_eq!((r.src_ip, r.dst_ip), (ip("10.0.0.2"), ip("10.0.0.1")));
    assert_eq!((r.icmp_type, r.icmp_code), (Some(3), Some(3)));
    assert_eq!((r.src_port, r.dst_port), (None, None));
}

fn ipv4_tcp_data(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(sport, dport, 1, 64240)
        .ack(7)
        .psh()
        .write(&mut v, payload)
        .unwrap();
    v
}

#[test]
fn http_on_any_port_both_directions() {
    let r = decode(101, &ipv4_tcp_data(8888, 50000, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
    assert_eq!(r.http_status_code, Some(404));
    assert_eq!(r.http_method, None);
    assert_eq!(r.tcp_flags.unwrap().to_string(), "PSH,ACK");
    assert_eq!(r.ack, Some(7));

    let r = decode(
        101,
        &ipv4_tcp_data(50000, 9999, b"POST /api/v1?x=1 HTTP/1.0\r\nhOsT:  example.com \r\nAccept: */*\r\n\r\nbody"),
    );
    assert_eq!(r.http_method.as_deref(), Some("POST"));
    assert_eq!(r.http_path.as_deref(), Some("/api/v1?x=1"));
    assert_eq!(r.http_host.as_deref(), Some("example.com"));

    // Headers cut by the segment boundary (httparse Partial): first line and Host still read.
    let r = decode(101, &ipv4_tcp_data(50000, 80, b"GET /index.html HTTP/1.1\r\nHost: a.example\r\nUser-Ag"));
    assert_eq!(r.http_method.as_deref(), Some("GET"));
    assert_eq!(r.http_path.as_deref(), Some("/index.html"));
    assert_eq!(r.http_host.as_deref(), Some("a.example"));

    // An invalid header line later on: the request line is still taken.
    let r = decode(101, &ipv4_tcp_data(50000, 80, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"));
    assert_eq!((r.http_method.as_deref(), r.http_path.as_deref()), (Some("GET"), Some("/")));

    // Not HTTP: binary data, TLS, a bare word.
    for p in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03abcdef"[..],
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
    ] {
        let r = decode(101, &ipv4_tcp_data(50000, 80, p));
        assert_eq!((r.http_method.clone(), r.http_status_code), (None, None), "{p:?}");
    }
}

/// `app_proto` comes from the payload on any port, in either direction; DNS from the DNS
/// decode; nothing from the ports alone.
#[test]
fn app_proto_by_content_on_any_port() {
    let hello = bench::capture::tls_client_hello("api.example.org");
    for (sport, dport) in [(50000, 443), (50000, 8443), (443, 50000), (50000, 22)] {
        let r = decode(101, &ipv4_tcp_data(sport, dport, &hello));
        assert_eq!(r.app_proto, Some(AppProto::Tls), "{sport}->{dport}");
        assert_eq!(r.tls_sni.as_deref(), Some("api.example.org"), "{sport}->{dport}");
        assert_eq!((r.http_method.as_deref(), r.http_status_code), (None, None));
    }
    let mut f = Vec::new();
    PacketBuilder::ipv6(v6(1), v6(2), 64).tcp(50000, 993, 1, 1000).write(&mut f, &hello).unwrap();
    let r = decode(101, &f);
    assert_eq!((r.app_proto, r.tls_sni.as_deref()), (Some(AppProto::Tls), Some("api.example.org")));

    let r = decode(101, &ipv4_tcp_data(2222, 50000, b"SSH-2.0-OpenSSH_9.6\r\n"));
    assert_eq!((r.app_proto, r.tls_sni), (Some(AppProto::Ssh), None));
    let r = decode(101, &ipv4_tcp_data(50000, 8080, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    assert_eq!(r.app_proto, Some(AppProto::Http));
    let r = decode(101, &ipv4_tcp_data(8080, 50000, b"HTTP/1.1 204 No Content\r\n\r\n"));
    assert_eq!(r.app_proto, Some(AppProto::Http));
    let r = decode(101, &ipv4_udp(40000, 53, &dns_query("x.example", TYPE::A)));
    assert_eq!(r.app_proto, Some(AppProto::Dns));
    let r = decode(101, &ipv4_udp(40000, 4433, &bench::capture::quic_initial()));
    assert_eq!(r.app_proto, Some(AppProto::Quic));

    // The well-known ports with other content, or none, are nothing.
    for (sport, dport, payload) in [
        (50000, 443, &b"\x5a\x5a\x5a\x5a\x5a\x5a"[..]),
        (50000, 22, b"hello there, not a banner"),
        (50000, 80, b"GET / HTTP/2.0\r\n\r\n"),
        (50000, 443, b""),
    ] {
        let r = decode(101, &ipv4_tcp_data(sport, dport, payload));
        assert_eq!((r.app_proto, r.tls_sni.clone()), (None, None), "{dport} {payload:?}");
    }
    let r = decode(101, &ipv4_udp(40000, 443, &[0x5a; 1200]));
    assert_eq!(r.app_proto, None);
    let r = decode(101, &ipv4_udp(40000, 53, b"\x01\x02g"));
    assert_eq!(r.app_proto, None, "too short for DNS");
    // A TLS record inside an ICMP error's quote is not this frame's payload.
    let mut quoted = ipv4_tcp_data(50000, 443, &hello);
    quoted.truncate(20 + 20 + 8);
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&quoted);
    let mut f = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64).write(&mut f, 1.into(), &icmp).unwrap();
    assert_eq!(decode(101, &f).app_proto, None);
}

/// A ClientHello cut by the snap length: the frame keeps what was captured, the server name
/// is read when all of it was.
#[test]
fn client_hello_cut_by_the_snap_length() {
    let hello = bench::capture::tls_client_hello("cut.example.net");
    let frame = eth(0x0800, &ipv4_tcp_data(50000, 443, &hello));
    let name_end = frame.windows(15).position(|w| w == b"cut.example.net").unwrap() + 15;
    for snap in 14 + 20 + 20..=frame.len() {
        let r = Decoder::new(1).decode(1.0, frame.len() as u32, &frame[..snap]).unwrap();
        assert_eq!(r.length, frame.len() as u32);
        let want = (snap >= name_end).then_some("cut.example.net");
        assert_eq!(r.tls_sni.as_deref(), want, "snap {snap}");
        assert_eq!(r.app_proto, (snap >= 14 + 40 + 5).then_some(AppProto::Tls), "snap {snap}");
    }
}

#[test]
fn dns_on_llmnr_and_bad_dns_payload() {
    let r = decode(101, &ipv4_udp(5355, 40000, &dns_response("host", &[[10, 0, 0, 9]])));
    assert_eq!(r.dns_response, Some(true));
    assert_eq!(r.dns_answer_count, Some(1));
    assert_eq!(r.dns_answer_size, Some(4));
    // A query has no answer count/size.
    let r = decode(101, &ipv4_udp(40000, 53, &dns_query("x.example", TYPE::MX)));
    assert_eq!((r.dns_answer_count, r.dns_answer_size, r.dns_qtype), (None, None, Some(15)));
    // Too short for even the flags on port 53: DNS fields null, the record stands.
    let r = decode(101, &ipv4_udp(40000, 53, b"\x01\x02g"));
    assert_eq!(r.protocol, Protocol::Udp);
    assert_eq!((r.dns_query, r.dns_qname), (None, None));
    // Cut inside the header (as tshark does, what is there is read): flags, no question.
    let r = decode(101, &ipv4_udp(40000, 53, b"\x01\x02\x81\x80\x00\x01\x00\x03garb"));
    assert_eq!((r.dns_response, r.dns_answer_count, r.dns_answer_size), (Some(true), Some(3), None));
    assert_eq!((r.dns_qname, r.dns_qtype), (None, None));
    // DNS on another port is not parsed.
    let r = decode(101, &ipv4_udp(40000, 5354, &dns_query("x.example", TYPE::A)));
    assert_eq!(r.dns_qname, None);
}

#[test]
fn arp_and_non_ip() {
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 2];
    arp.extend_from_slice(&SRC_MAC);
    arp.extend_from_slice(&[192, 168, 0, 1]);
    arp.extend_from_slice(&DST_MAC);
    arp.extend_from_slice(&[192, 168, 0, 2]);
    let r = decode(1, &eth(0x0806, &arp));
    assert_eq!(r.protocol, Protocol::Arp);
    assert_eq!((r.src_ip, r.dst_ip), (None, None));
    assert_eq!(r.arp_op, Some(2));
    assert_eq!((r.arp_psrc, r.arp_pdst), (ip("192.168.0.1"), ip("192.168.0.2")));
    assert_eq!(r.arp_hwsrc.unwrap().0, SRC_MAC);
    assert_eq!(r.arp_hwdst.unwrap().0, DST_MAC);

    // EAPOL and an 802.3/LLC frame: OTHER records with MACs only.
    for (t, p) in [(0x888eu16, vec![1, 3, 0, 0]), (0x0026, vec![0x42, 0x42, 3, 0, 0])] {
        let r = decode(1, &eth(t, &p));
        assert_eq!(r.protocol, Protocol::Other);
        assert_eq!(r.src_ip, None);
        assert_eq!(r.src_mac.unwrap().0, SRC_MAC);
    }
}

#[test]
fn malformed_frames_are_errors_truncated_upper_layers_are_not() {
    let d = Decoder::new(1);
    let err = |f: &[u8]| d.decode(0.0, f.len() as u32, f).unwrap_err();
    assert_eq!(err(&[0u8; 10]).kind(), "truncated"); // Ethernet header
    assert_eq!(err(&eth(0x8100, &[0, 1])).kind(), "truncated"); // VLAN tag
    assert_eq!(err(&eth(0x0800, &ipv4_tcp_syn()[..12])).kind(), "truncated"); // IPv4 header
    assert_eq!(err(&eth(0x86dd, &ipv6_udp(1, 2, b"")[..30])).kind(), "truncated"); // IPv6 header
    assert_eq!(err(&eth(0x0806, &[0, 1, 8, 0, 6, 4])).kind(), "truncated"); // ARP
    let mut bad_ihl = ipv4_tcp_syn();
    bad_ihl[0] = 0x43;
    assert_eq!(err(&eth(0x0800, &bad_ihl)).kind(), "invalid");
    assert!(matches!(err(&eth(0x0800, &ipv6_udp(1, 2, b"x"))), DecodeError::Invalid(..)));

    // TCP header cut after 14 bytes (snap length): the record keeps ports, seq, ack, flags.
    let syn = ipv4_tcp_syn();
    let r = d.decode(0.0, 74, &eth(0x0800, &syn[..20 + 14])).unwrap();
    assert_eq!((r.protocol, r.src_port, r.seq), (Protocol::Tcp, Some(40000), Some(1000)));
    assert_eq!(r.tcp_syn, Some(true));
    assert_eq!(r.length, 74);
    // UDP header cut after 4 bytes.
    let r = d.decode(0.0, 60, &eth(0x0800, &ipv4_udp(7, 9, b"")[..24])).unwrap();
    assert_eq!((r.protocol, r.src_port, r.dst_port), (Protocol::Udp, Some(7), Some(9)));

    // Found by fuzzing (`read_capture`): pcapng timestamps are 64-bit, libpcap hands over
    // whatever they say; a record from the year 500000 would get its batch dead-lettered.
    for ts in [18_446_733_135_919.965, f64::NAN, f64::INFINITY, wire::MAX_TIMESTAMP + 1.0, wire::MIN_TIMESTAMP - 1.0] {
        let e = d.decode(ts, 60, &eth(0x0800, &syn)).unwrap_err();
        assert_eq!(e.kind(), "timestamp", "{ts}");
    }
    assert!(d.decode(wire::MAX_TIMESTAMP, 60, &eth(0x0800, &syn)).is_ok());
    assert!(d.decode(wire::MIN_TIMESTAMP, 60, &eth(0x0800, &syn)).is_ok());

    let e = Decoder::new(147).decode(0.0, 1, &[0]).unwrap_err();
    assert_eq!(e.kind(), "unsupported_linktype");
    assert!(!Decoder::supports(147));
    assert!(Decoder::supports(276));
}

/// A DNS query (RD set) for the name made of `labels`, written by hand: simple-dns refuses to
/// build the names these tests need (raw bytes, over-long).
fn raw_dns_query(labels: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in labels {
        m.push(l.len() as u8);
        m.extend_from_slice(l);
    }
    m.extend_from_slice(&[0, 0, 16, 0, 1]); // root, TXT, IN
    m
}

/// Runs `f` with a Prometheus recorder local to this thread and returns the rendered metrics.
fn with_metrics(f: impl FnOnce()) -> String {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, f);
    handle.render()
}

fn truncated_count(rendered: &str, field: &str) -> Option<u64> {
    let prefix = format!("nta_agent_fields_truncated_total{{field=\"{field}\"}} ");
    rendered.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| v.trim().parse().unwrap())
}

#[test]
fn oversized_http_fields_are_cut_and_counted() {
    use wire::limits::{MAX_HTTP_HOST_LEN, MAX_HTTP_PATH_LEN};
    // A 900 KB path cannot fit one frame; 40 KB is as absurd and still a single IPv4 packet.
    let path = format!("/{}", "p".repeat(40_000));
    // The host cap falls inside the two bytes of the 'é': the whole character goes.
    let host = format!("{}é{}", "h".repeat(MAX_HTTP_HOST_LEN - 1), "h".repeat(100));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let frame = eth(0x0800, &ipv4_tcp_data(50000, 80, req.as_bytes()));
    let mut r = PacketRecord::default();
    let rendered = with_metrics(|| r = decode(1, &frame));
    assert_eq!(r.http_method.as_deref(), Some("GET"));
    assert_eq!(r.http_path.as_deref(), Some(&path[..MAX_HTTP_PATH_LEN]));
    assert_eq!(r.http_host.as_deref(), Some(&host[..MAX_HTTP_HOST_LEN - 1]));
    assert_eq!(truncated_count(&rendered, "http_path"), Some(1), "{rendered}");
    assert_eq!(truncated_count(&rendered, "http_host"), Some(1), "{rendered}");
    assert_eq!(truncated_count(&rendered, "http_method"), None, "{rendered}");

    // The request line alone (a bad header follows): the path is cut there too.
    let req = format!("GET {path} HTTP/1.1\r\nBad Header\r\n\r\n");
    r = decode(1, &eth(0x0800, &ipv4_tcp_data(50000, 80, req.as_bytes())));
    assert_eq!(r.http_path.as_ref().map(|p| p.len()), Some(MAX_HTTP_PATH_LEN));

    // What the agent publishes passes the consumers' validation.
    let mut batch = wire::PacketBatch::new("a", "b", 0);
    batch.records.push(decode(1, &frame));
    assert_eq!(batch.validate(), Ok(()));

    // At the cap nothing is cut or counted.
    let path = format!("/{}", "p".repeat(MAX_HTTP_PATH_LEN - 1));
    let req = format!("GET {path} HTTP/1.1\r\nHost: example.com\r\n\r\n");
    let frame = eth(0x0800, &ipv4_tcp_data(50000, 80, req.as_bytes()));
    let rendered = with_metrics(|| r = decode(1, &frame));
    assert_eq!(r.http_path.as_deref(), Some(path.as_str()));
    assert_eq!(truncated_count(&rendered, "http_path"), None, "{rendered}");
}

#[test]
fn dns_names_are_bounded_by_rfc_1035() {
    // The longest name RFC 1035 allows (255 octets on the wire) in raw bytes, as a tunnel
    // sends it: escaped to \DDD it is four times as long, and still kept whole.
    let labels: Vec<Vec<u8>> = [63, 63, 63, 61].iter().map(|&n| vec![0xff; n]).collect();
    let mut r = PacketRecord::default();
    let frame = ipv4_udp(40000, 53, &raw_dns_query(&labels));
    let rendered = with_metrics(|| r = decode(101, &frame));
    let want = labels.iter().map(|l| "\\255".repeat(l.len())).collect::<Vec<_>>().join(".");
    assert_eq!(want.len(), 1003);
    assert!(want.len() <= wire::limits::MAX_DNS_QNAME_LEN);
    assert_eq!(r.dns_qname.as_deref(), Some(want.as_str()));
    assert_eq!(truncated_count(&rendered, "dns_qname"), None, "{rendered}");

    // One octet more is not a DNS name: the query is still seen, without a name to store.
    let labels: Vec<Vec<u8>> = [63, 63, 63, 62].iter().map(|&n| vec![b'a'; n]).collect();
    let r = decode(101, &ipv4_udp(40000, 53, &raw_dns_query(&labels)));
    assert_eq!((r.protocol, r.dns_query), (Protocol::Udp, Some(true)));
    assert_eq!(r.dns_qname, None);
    // Far over (a forged 600-octet name): the same.
    let labels: Vec<Vec<u8>> = (0..10).map(|_| vec![b'x'; 59]).collect();
    let r = decode(101, &ipv4_udp(40000, 53, &raw_dns_query(&labels)));
    assert_eq!((r.dns_query, r.dns_qname), (Some(true), None));
}

#[test]
fn long_interface_names_are_cut_once() {
    use agent::records::FrameDecoder;
    use agent::source::RawFrame;
    let max = wire::limits::MAX_INTERFACE_LEN;
    // A file name made UTF-8 with replacement characters (3 bytes each) can exceed NAME_MAX.
    let name = "\u{fffd}".repeat(100);
    let mut rec = None;
    let frame = ipv4_udp(1, 2, b"x");
    let rendered = with_metrics(|| {
        let d = FrameDecoder::new(101, name.clone().into());
        for n in 0..3 {
            rec = d.record(&RawFrame { timestamp: 1.0, ts_ns: 1_000_000_000, wire_len: 29, data: &frame }, n);
        }
    });
    assert_eq!(&*rec.unwrap().interface, &name[..max]);
    assert_eq!(truncated_count(&rendered, "interface"), Some(1), "{rendered}");
}

/// Found by fuzzing (`decode_frame`): a hop-by-hop header after the first extension header
/// stops etherparse's lax parse there, and iterating the extension headers it kept then read
/// the "next" hop-by-hop header beyond the end of the frame (undefined behaviour, caught by
/// the standard library's debug precondition checks as an abort).
#[test]
fn misplaced_hop_by_hop_header_is_not_read_past_the_frame() {
    // HBH (next = HBH again, not allowed after the first) and nothing after it.
    let frame = ipv6_with(0, &[0, 0, 1, 4, 0, 0, 0, 0]);
    let r = decode(229, &frame);
    assert_eq!((r.src_ip, r.dst_ip), (ip("2001:db8::1"), ip("2001:db8::2")));
    assert_eq!((r.src_port, r.dst_port), (None, None));
    // The same with bytes following that are not a header: still within the frame.
    let r = decode(229, &ipv6_with(0, &[0, 0, 1, 4, 0, 0, 0, 0, 0xff]));
    assert_eq!(r.src_port, None);
    // Destination options then a later fragment: the fragment is still found.
    let mut rest = vec![44, 0, 1, 4, 0, 0, 0, 0];
    rest.extend_from_slice(&[17, 0, 0x03, 0x20, 0, 0, 0, 1]);
    rest.extend_from_slice(&udp_bytes(5353, 5353, &[0u8; 8]));
    let r = decode(229, &ipv6_with(60, &rest));
    assert_eq!((r.protocol, r.src_port), (Protocol::Udp, None));
}
