//! Decode benchmark: a deterministic synthetic capture, then decode + MessagePack batch
//! encoding on one thread, as the agent does (records into a [`wire::PacketBatch`] of 500,
//! encoded with `batch.encode()`).

use crate::decode::Decoder;
use crate::source::{Next, Source};
use anyhow::{Context, Result};
use etherparse::PacketBuilder;
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Default number of frames of a generated capture.
pub const DEFAULT_FRAMES: usize = 2_000_000;
const BATCH: usize = 500;

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
    p.questions.push(Question::new(
        Name::new_unchecked(name),
        QTYPE::TYPE(TYPE::A),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    p.build_bytes_vec_compressed().expect("dns query")
}

fn dns_response(id: u16, name: &str, answers: u8) -> Vec<u8> {
    use simple_dns::rdata::{RData, A};
    use simple_dns::{
        Name, Packet, PacketFlag, Question, ResourceRecord, CLASS, QCLASS, QTYPE, TYPE,
    };
    let mut p = Packet::new_reply(id);
    p.set_flags(PacketFlag::RESPONSE);
    p.questions.push(Question::new(
        Name::new_unchecked(name),
        QTYPE::TYPE(TYPE::A),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    for i in 0..answers {
        p.answers.push(ResourceRecord::new(
            Name::new_unchecked(name),
            CLASS::IN,
            300,
            RData::A(A {
                address: u32::from_be_bytes([93, 184, 216, i]),
            }),
        ));
    }
    p.build_bytes_vec_compressed().expect("dns response")
}

/// Writes a pcap (microsecond, Ethernet) of `frames` varied frames: TCP handshakes and data
/// (some HTTP requests and responses), UDP DNS queries and responses, other UDP, ICMP echo,
/// ARP, IPv6 TCP/UDP/ICMPv6 and 802.1Q-tagged traffic. Deterministic.
pub fn generate_capture(path: &Path, frames: usize) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    // Global header: magic, v2.4, thiszone 0, sigfigs 0, snaplen 65535, LINKTYPE_ETHERNET.
    w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&[0u8; 8])?;
    w.write_all(&65535u32.to_le_bytes())?;
    w.write_all(&1u32.to_le_bytes())?;

    let names = [
        "example.com",
        "www.wikipedia.org",
        "api.github.com",
        "cdn.jsdelivr.net",
        "mail.google.com",
    ];
    let queries: Vec<Vec<u8>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| dns_query(i as u16, n))
        .collect();
    let responses: Vec<Vec<u8>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| dns_response(i as u16, n, 1 + (i as u8 % 3)))
        .collect();
    let http_req: &[u8] = b"GET /index.html?q=1 HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n";
    let http_resp: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1024\r\n\r\n<html><body>hello</body></html>";
    let data = [0x5au8; 1400];

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
            // Bulk TCP: data segments and pure ACKs.
            0..=5 => {
                let len = [0usize, 0, 536, 1400, 1400, 120][i % 6];
                eth.ipv4(client, server, 64)
                    .tcp(sport, 443, seq, 64240)
                    .ack(ack)
                    .psh()
                    .write(&mut frame, &data[..len])
            }
            6 => eth
                .ipv4(client, server, 64)
                .tcp(sport, 443, seq, 64240)
                .syn()
                .write(&mut frame, &[]),
            7 => eth
                .ipv4(server, client, 64)
                .tcp(443, sport, seq, 65535)
                .syn()
                .ack(ack)
                .write(&mut frame, &[]),
            8 => eth
                .ipv4(client, server, 64)
                .tcp(sport, 80, seq, 64240)
                .ack(ack)
                .psh()
                .write(&mut frame, http_req),
            9 => eth
                .ipv4(server, client, 64)
                .tcp(80, sport, seq, 64240)
                .ack(ack)
                .psh()
                .write(&mut frame, http_resp),
            10 | 11 => eth
                .ipv4(client, [8, 8, 8, 8], 64)
                .udp(sport, 53)
                .write(&mut frame, &queries[i % queries.len()]),
            12 => eth
                .ipv4([8, 8, 8, 8], client, 60)
                .udp(53, sport)
                .write(&mut frame, &responses[i % responses.len()]),
            13 => eth
                .ipv4(client, server, 64)
                .icmpv4_echo_request(host as u16, i as u16)
                .write(&mut frame, &data[..56]),
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
                PacketBuilder::ethernet2(cmac, [0xff; 6])
                    .arp(arp)
                    .write(&mut frame)
            }
            15 => {
                let (s6, d6) = (v6(host), v6(1));
                eth.ipv6(s6, d6, 64)
                    .tcp(sport, 443, seq, 64240)
                    .ack(ack)
                    .write(&mut frame, &data[..200])
            }
            16 => eth
                .ipv6(v6(host), v6(53), 64)
                .udp(sport, 53)
                .write(&mut frame, &queries[i % queries.len()]),
            17 => eth
                .ipv6(v6(host), v6(1), 64)
                .icmpv6_echo_request(1, i as u16)
                .write(&mut frame, &data[..32]),
            18 => eth
                .single_vlan(((host as u16) % 4000 + 1).try_into().expect("vlan id"))
                .ipv4(client, server, 64)
                .tcp(sport, 22, seq, 64240)
                .ack(ack)
                .write(&mut frame, &data[..64]),
            _ => eth
                .ipv4(client, server, 64)
                .udp(sport, 443)
                .write(&mut frame, &data[..1200]),
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

/// Frames of a capture held in memory (one buffer, offsets).
struct InMemory {
    bytes: Vec<u8>,
    frames: Vec<(f64, u32, usize, usize)>,
    linktype: i32,
}

fn load(path: &Path) -> Result<InMemory> {
    let mut src = Source::open_file(path)?;
    let mut m = InMemory {
        bytes: Vec::new(),
        frames: Vec::new(),
        linktype: src.linktype,
    };
    loop {
        match src.next_frame()? {
            Next::Frame(f) => {
                let start = m.bytes.len();
                m.bytes.extend_from_slice(f.data);
                m.frames
                    .push((f.timestamp, f.wire_len, start, m.bytes.len()));
            }
            Next::Idle => continue,
            Next::End => break,
        }
    }
    Ok(m)
}

#[derive(Default)]
struct Counts {
    frames: u64,
    decoded: u64,
    malformed: u64,
    batches: u64,
    encoded_bytes: u64,
}

/// Decode, batch and encode like the agent's capture loop.
struct Pipeline {
    decoder: Decoder,
    interface: Arc<str>,
    batch: wire::PacketBatch,
    counts: Counts,
}

impl Pipeline {
    fn new(linktype: i32, interface: Arc<str>) -> Self {
        let mut batch = wire::PacketBatch::new("bench", "bench-boot", 0);
        batch.records.reserve(BATCH);
        Pipeline {
            decoder: Decoder::new(linktype),
            interface,
            batch,
            counts: Counts::default(),
        }
    }

    #[inline]
    fn frame(&mut self, ts: f64, wire_len: u32, data: &[u8]) -> Result<()> {
        self.counts.frames += 1;
        match self.decoder.decode(ts, wire_len, data) {
            Ok(mut rec) => {
                rec.interface = self.interface.clone();
                self.counts.decoded += 1;
                self.batch.records.push(rec);
                if self.batch.records.len() >= BATCH {
                    self.flush()?;
                }
            }
            Err(_) => self.counts.malformed += 1,
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.batch.records.is_empty() {
            return Ok(());
        }
        let bytes = self.batch.encode()?;
        self.counts.encoded_bytes += bytes.len() as u64;
        self.counts.batches += 1;
        self.batch.seq += 1;
        self.batch.records.clear();
        Ok(())
    }
}

/// Runs the decode benchmark on `file`, or on a generated capture of `frames` frames (default
/// [`DEFAULT_FRAMES`] when `frames` is 0). Returns a human-readable report.
pub fn run_decode_bench(frames: usize, file: Option<&Path>) -> Result<String> {
    let mut report = String::new();
    let mut generated: Option<PathBuf> = None;
    let path: PathBuf = match file {
        Some(p) => p.to_path_buf(),
        None => {
            let n = if frames == 0 { DEFAULT_FRAMES } else { frames };
            let p = std::env::temp_dir()
                .join(format!("nta-decode-bench-{}-{n}.pcap", std::process::id()));
            let t = Instant::now();
            generate_capture(&p, n)?;
            writeln!(
                report,
                "generated {n} frames into {} in {:.2} s",
                p.display(),
                t.elapsed().as_secs_f64()
            )?;
            generated = Some(p.clone());
            p
        }
    };
    let result = bench_file(&path, &mut report);
    if let Some(p) = generated {
        let _ = std::fs::remove_file(p);
    }
    result?;
    Ok(report)
}

fn bench_file(path: &Path, report: &mut String) -> Result<()> {
    let mem = load(path)?;
    let interface: Arc<str> = Arc::from(
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    writeln!(
        report,
        "capture: {} ({} frames, {:.1} MB, linktype {})",
        path.display(),
        mem.frames.len(),
        mem.bytes.len() as f64 / 1e6,
        mem.linktype
    )?;

    // 1. In memory: decode + encode only.
    let mut p = Pipeline::new(mem.linktype, interface.clone());
    let t = Instant::now();
    for &(ts, wl, s, e) in &mem.frames {
        p.frame(ts, wl, &mem.bytes[s..e])?;
    }
    p.flush()?;
    let secs = t.elapsed().as_secs_f64();
    let c = &p.counts;
    writeln!(
        report,
        "decode+encode (in memory, 1 thread): {} frames in {:.3} s = {:.2} M frames/s ({} decoded, {} malformed, {} batches of {BATCH}, {:.1} MB MessagePack)",
        c.frames,
        secs,
        c.frames as f64 / secs / 1e6,
        c.decoded,
        c.malformed,
        c.batches,
        c.encoded_bytes as f64 / 1e6
    )?;

    // 2. Decode only (no encoding), for reference.
    let decoder = Decoder::new(mem.linktype);
    let t = Instant::now();
    let mut ok = 0u64;
    for &(ts, wl, s, e) in &mem.frames {
        ok += decoder.decode(ts, wl, &mem.bytes[s..e]).is_ok() as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    writeln!(
        report,
        "decode only (in memory): {:.2} M frames/s ({ok} decoded)",
        mem.frames.len() as f64 / secs / 1e6
    )?;
    drop(mem);

    // 3. With I/O: libpcap reading the file, decode, encode.
    let t = Instant::now();
    let mut src = Source::open_file(path)?;
    let mut p = Pipeline::new(src.linktype, interface);
    loop {
        match src.next_frame()? {
            Next::Frame(f) => p.frame(f.timestamp, f.wire_len, f.data)?,
            Next::Idle => continue,
            Next::End => break,
        }
    }
    p.flush()?;
    let secs = t.elapsed().as_secs_f64();
    writeln!(
        report,
        "read+decode+encode (libpcap from file): {} frames in {:.3} s = {:.2} M frames/s",
        p.counts.frames,
        secs,
        p.counts.frames as f64 / secs / 1e6
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_generated_bench_runs_and_decodes_everything() {
        let dir = std::env::temp_dir().join(format!("nta-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gen.pcap");
        generate_capture(&path, 2000).unwrap();
        let mut out = Vec::new();
        let stats =
            crate::offline::decode_file(&path, crate::offline::OutputFormat::Jsonl, &mut out)
                .unwrap();
        assert_eq!(
            (stats.frames, stats.decoded, stats.malformed),
            (2000, 2000, 0)
        );
        let text = String::from_utf8(out).unwrap();
        for needle in [
            "\"http_method\":\"GET\"",
            "\"http_status_code\":200",
            "\"dns_answer_size\":",
            "\"protocol\":\"ARP\"",
            "\"vlan\":",
            "\"protocol\":\"ICMPv6\"",
        ] {
            assert!(text.contains(needle), "no {needle} in generated capture");
        }
        let report = run_decode_bench(0, Some(&path)).unwrap();
        assert!(report.contains("2000 frames"), "{report}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
