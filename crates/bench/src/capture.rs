//! A deterministic synthetic capture for benchmarks and tests (`nta bench gen-pcap`).

use anyhow::{Context, Result};
use etherparse::PacketBuilder;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Small deterministic PRNG (xorshift64*): the same capture on every run and platform.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn dns_query(id: u16, name: &str) -> Vec<u8> {
    use simple_dns::{Name, Packet, Question, CLASS, QCLASS, QTYPE, TYPE};
    let mut p = Packet::new_query(id);
    p.questions.push(Question::new(Name::new_unchecked(name), QTYPE::TYPE(TYPE::A), QCLASS::CLASS(CLASS::IN), false));
    p.build_bytes_vec_compressed().expect("dns query")
}

fn dns_response(id: u16, name: &str, answers: u8) -> Vec<u8> {
    use simple_dns::rdata::{RData, A};
    use simple_dns::{Name, Packet, PacketFlag, Question, ResourceRecord, CLASS, QCLASS, QTYPE, TYPE};
    let mut p = Packet::new_reply(id);
    p.set_flags(PacketFlag::RESPONSE);
    p.questions.push(Question::new(Name::new_unchecked(name), QTYPE::TYPE(TYPE::A), QCLASS::CLASS(CLASS::IN), false));
    for i in 0..answers {
        p.answers.push(ResourceRecord::new(
            Name::new_unchecked(name),
            CLASS::IN,
            300,
            RData::A(A { address: u32::from_be_bytes([93, 184, 216, i]) }),
        ));
    }
    p.build_bytes_vec_compressed().expect("dns response")
}

/// A TLS record holding a ClientHello with a server_name extension for `sni` among others, as a
/// TLS 1.3 client sends it.
pub fn tls_client_hello(sni: &str) -> Vec<u8> {
    fn ext(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }
    let mut exts = Vec::new();
    ext(&mut exts, 0x000a, &[0, 4, 0, 0x1d, 0, 0x17]); // supported_groups
    let mut names = vec![0];
    names.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    names.extend_from_slice(sni.as_bytes());
    let mut server_name = (names.len() as u16).to_be_bytes().to_vec();
    server_name.extend_from_slice(&names);
    ext(&mut exts, 0x0000, &server_name);
    ext(&mut exts, 0x0010, b"\x00\x0c\x02h2\x08http/1.1"); // ALPN
    ext(&mut exts, 0x002b, &[2, 3, 4]); // supported_versions
    ext(&mut exts, 0x0033, &[0; 38]); // key_share (zeros: never used)
    let mut body = vec![3, 3];
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(32);
    body.extend_from_slice(&[0x24; 32]); // session id
    body.extend_from_slice(&[0, 6, 0x13, 0x01, 0x13, 0x02, 0x13, 0x03]);
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![22, 3, 1];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

/// The start of a QUIC version 1 Initial packet (long header, 8-byte connection ids, no
/// token) padded to 1200 bytes, its protected payload filler.
pub fn quic_initial() -> Vec<u8> {
    let mut p = vec![0xc3, 0, 0, 0, 1, 8];
    p.extend_from_slice(&[0x11; 8]);
    p.push(8);
    p.extend_from_slice(&[0x22; 8]);
    p.push(0); // token length
    p.extend_from_slice(&[0x44, 0x9e]); // payload length 1182
    p.resize(1200, 0x5a);
    p
}

/// Writes a pcap (microsecond, Ethernet) of `frames` varied frames: TCP handshakes and data
/// (some HTTP requests and responses, TLS ClientHellos and records, SSH identification
/// strings), UDP DNS queries and responses, QUIC Initials and other UDP, ICMP echo, ARP, IPv6
/// TCP/UDP/ICMPv6 and 802.1Q-tagged traffic. Deterministic.
pub fn generate_capture(path: &Path, frames: usize) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    // Global header: magic, v2.4, thiszone 0, sigfigs 0, snaplen 65535, LINKTYPE_ETHERNET.
    w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&[0u8; 8])?;
    w.write_all(&65535u32.to_le_bytes())?;
    w.write_all(&1u32.to_le_bytes())?;

    let names = ["example.com", "www.wikipedia.org", "api.github.com", "cdn.jsdelivr.net", "mail.google.com"];
    let queries: Vec<Vec<u8>> = names.iter().enumerate().map(|(i, n)| dns_query(i as u16, n)).collect();
    let responses: Vec<Vec<u8>> =
        names.iter().enumerate().map(|(i, n)| dns_response(i as u16, n, 1 + (i as u8 % 3))).collect();
    let http_req: &[u8] =
        b"GET /index.html?q=1 HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n";
    let http_resp: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1024\r\n\r\n<html><body>hello</body></html>";
    let data = [0x5au8; 1400];
    let hellos: Vec<Vec<u8>> = names.iter().map(|n| tls_client_hello(n)).collect();
    let mut tls_data = vec![23, 3, 3, 0, 115];
    tls_data.extend_from_slice(&data[..115]);
    let ssh_banner: &[u8] = b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\r\n";
    let quic = quic_initial();

    let mut rng = Prng(0x9e37_79b9_7f4a_7c15);
    let mut frame = Vec::with_capacity(2048);
    let mut ts_us: u64 = 1_700_000_000_000_000;
    for i in 0..frames {
        frame.clear();
        ts_us += 1 + rng.below(200);
        let host = rng.below(250) as u8 + 1;
        let client = [10, 0, (host % 16), host];
        let server = [192, 0, 2, (host % 32) + 1];
        let cmac = [0x02, 0, 0, 0, 0, host];
        let smac = [0x02, 0, 0, 0, 1, 1];
        let sport = 32768 + rng.below(28000) as u16;
        let seq = rng.next() as u32;
        let ack = rng.next() as u32;
        let eth = PacketBuilder::ethernet2(cmac, smac);
        let res = match i % 20 {
            // Bulk TCP: data segments (some starting with a TLS record) and pure ACKs.
            0..=5 => {
                let payload = match i % 6 {
                    0 | 1 => &data[..0],
                    2 => &data[..536],
                    5 => &tls_data[..],
                    _ => &data[..],
                };
                eth.ipv4(client, server, 64).tcp(sport, 443, seq, 64240).ack(ack).psh().write(&mut frame, payload)
            }
            6 => eth.ipv4(client, server, 64).tcp(sport, 443, seq, 64240).syn().write(&mut frame, &[]),
            7 => eth.ipv4(server, client, 64).tcp(443, sport, seq, 65535).syn().ack(ack).write(&mut frame, &[]),
            8 => eth.ipv4(client, server, 64).tcp(sport, 80, seq, 64240).ack(ack).psh().write(&mut frame, http_req),
            9 => eth.ipv4(server, client, 64).tcp(80, sport, seq, 64240).ack(ack).psh().write(&mut frame, http_resp),
            10 | 11 => eth.ipv4(client, [8, 8, 8, 8], 64).udp(sport, 53).write(&mut frame, &queries[i % queries.len()]),
            12 => eth.ipv4([8, 8, 8, 8], client, 60).udp(53, sport).write(&mut frame, &responses[i % responses.len()]),
            13 => {
                eth.ipv4(client, server, 64).icmpv4_echo_request(host as u16, i as u16).write(&mut frame, &data[..56])
            }
            14 => {
                let arp = etherparse::ArpPacket::new(
                    etherparse::ArpHardwareId::ETHERNET,
                    etherparse::EtherType::IPV4,
                    etherparse::ArpOperation::REQUEST,
                    &cmac,
                    &client,
                    &[0; 6],
                    &server,
                )
                .expect("arp");
                PacketBuilder::ethernet2(cmac, [0xff; 6]).arp(arp).write(&mut frame)
            }
            15 => {
                let (s6, d6) = (v6(host), v6(1));
                eth.ipv6(s6, d6, 64).tcp(sport, 443, seq, 64240).ack(ack).write(&mut frame, &data[..200])
            }
            16 => eth.ipv6(v6(host), v6(53), 64).udp(sport, 53).write(&mut frame, &queries[i % queries.len()]),
            17 => eth.ipv6(v6(host), v6(1), 64).icmpv6_echo_request(1, i as u16).write(&mut frame, &data[..32]),
            18 => eth
                .single_vlan(((host as u16) % 4000 + 1).try_into().expect("vlan id"))
                .ipv4(client, server, 64)
                .tcp(sport, 22, seq, 64240)
                .ack(ack)
                .write(&mut frame, if (i / 20) % 4 == 0 { ssh_banner } else { &data[..64] }),
            _ => match (i / 20) % 4 {
                0 => eth.ipv4(client, server, 64).udp(sport, 443).write(&mut frame, &quic),
                1 => eth
                    .ipv4(client, server, 64)
                    .tcp(sport, 443, seq, 64240)
                    .ack(ack)
                    .psh()
                    .write(&mut frame, &hellos[(i / 80) % hellos.len()]),
                _ => eth.ipv4(client, server, 64).udp(sport, 443).write(&mut frame, &data[..1200]),
            },
        };
        res.map_err(|e| anyhow::anyhow!("building frame {i}: {e}"))?;
        let len = frame.len() as u32;
        w.write_all(&((ts_us / 1_000_000) as u32).to_le_bytes())?;
        w.write_all(&((ts_us % 1_000_000) as u32).to_le_bytes())?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(&frame)?;
    }
    w.flush()?;
    Ok(())
}

fn v6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[15] = last;
    a
}
