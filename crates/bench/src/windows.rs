//! `nta bench windows`: windower throughput (5 s features plus the cascade, one core) on a
//! synthetic in-memory stream, and peak memory with a million spoofed sources.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;
use windower::hash::mix64;
use windower::{ClosedWindow, Windower, WindowerConfig};
use wire::{PacketRecord, Protocol};

/// Deterministic pseudo-random numbers (no dependency, reproducible streams).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A pool of varied records (TCP with all flag mixes, UDP, DNS queries and answers, HTTP,
/// ICMP, ARP); the timed loop only rewrites their timestamp and source.
fn templates(n: usize, rng: &mut Rng) -> Vec<PacketRecord> {
    let iface: Arc<str> = Arc::from("bench");
    (0..n)
        .map(|_| {
            let mut r = PacketRecord::new(0.0, 60 + rng.below(1400) as u32);
            r.interface = iface.clone();
            r.dst_ip = Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + rng.below(2000) as u32)));
            match rng.below(100) {
                0..=69 => {
                    r.protocol = Protocol::Tcp;
                    r.src_port = Some(1024 + rng.below(60000) as u16);
                    r.dst_port = Some([22, 80, 443, 8080, 3389][rng.below(5) as usize]);
                    r.set_tcp_flags([0x02, 0x12, 0x10, 0x18, 0x11, 0x04][rng.below(6) as usize]);
                    if rng.below(20) == 0 {
                        r.http_method = Some("POST".into());
                        r.http_path = Some("/login".into());
                    }
                }
                70..=89 => {
                    r.protocol = Protocol::Udp;
                    r.src_port = Some(1024 + rng.below(60000) as u16);
                    r.dst_port = Some(if rng.below(2) == 0 { 53 } else { rng.below(65535) as u16 });
                    if r.dst_port == Some(53) {
                        r.dns_query = Some(true);
                        r.dns_response = Some(false);
                        r.dns_qtype = Some([1, 28, 16, 10][rng.below(4) as usize]);
                        r.dns_qname = Some(format!("h{:x}.example.com", rng.next() >> 24));
                    }
                }
                90..=96 => {
                    r.protocol = Protocol::Icmp;
                    r.icmp_type = Some(8);
                }
                _ => {
                    r.protocol = Protocol::Arp;
                    r.dst_ip = None;
                    r.arp_op = Some(1 + rng.below(2) as u16);
                    r.arp_pdst = Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0001)));
                    r.arp_hwsrc = Some(wire::MacAddr([2, 0, 0, 0, 0, rng.below(3) as u8]));
                }
            }
            r
        })
        .collect()
}

fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Runs both cases and returns a human-readable report.
///
/// 1. `packets` records from `sources` sources over 360 s of event time (so 5 s, 30 s and
///    180 s windows all close), flow-structured (each source uses 8 flows to 4 peers; TCP,
///    UDP, DNS, HTTP, ICMP, ARP mixed), pushed and closed on one thread: records per second.
/// 2. A SYN flood from 1 000 000 distinct spoofed sources to one target (2 M records over
///    20 s): time, peak RSS (VmHWM, reset between the cases where the kernel allows) and bytes
///    per open key state, with the default key budget and with a budget of 100 000 (overload
///    mode: shed records counted). Skipped when `NTA_BENCH_SKIP_SPOOFED` is set.
pub fn run_window_bench(packets: usize, sources: usize) -> String {
    let mut out = String::new();
    let mut rng = Rng(42);
    let mut pool = templates(1 << 16, &mut rng);
    let mask = pool.len() - 1;
    let sources = sources.max(1) as u64;
    let t0 = 1_700_000_000.0;
    let span = 360.0;
    let mut w = Windower::new(WindowerConfig::default());
    let now = Instant::now();
    let started = Instant::now();
    let mut windows = 0usize;
    let mut convert = 0.0;
    // Windows are streamed out; converting each into a `wire::WindowRecord` (a map of
    // `String` names, what the service publishes) is timed separately.
    let mut emit = |c: &ClosedWindow| {
        windows += 1;
        let t = Instant::now();
        std::hint::black_box(c.to_record());
        convert += t.elapsed().as_secs_f64();
    };
    for i in 0..packets {
        let r = &mut pool[i & mask];
        r.timestamp = t0 + span * i as f64 / packets as f64;
        // Flow-structured like real traffic: each source talks to a few peers over a few
        // flows (source port and destination derive from the source and a flow number).
        let h = mix64(i as u64);
        let s = (h % sources) as u32;
        let flow = (h >> 40) as u32 % 8;
        let src = IpAddr::V4(Ipv4Addr::from(0xc0a8_0000u32 + s));
        if r.protocol == Protocol::Arp {
            r.arp_psrc = Some(src);
        } else {
            r.src_ip = Some(src);
            r.dst_ip = Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (s.wrapping_mul(7) + flow % 4) % 5000)));
            if r.src_port.is_some() {
                r.src_port = Some(32768 + ((s * 8 + flow) % 28000) as u16);
            }
        }
        w.push("bench", r, now);
        if i & 0xfff == 0 {
            w.poll_closed_with(now, &mut emit);
        }
    }
    w.finish_with(&mut emit);
    let secs = started.elapsed().as_secs_f64() - convert;
    let _ = writeln!(
        out,
        "windows: {packets} records, {sources} sources, 360 s of event time, one core: \
         {:.2} M records/s for 5 s features + cascade ({secs:.2} s, {windows} windows); \
         converting the windows to wire::WindowRecord adds {convert:.2} s ({:.2} M records/s overall)",
        packets as f64 / secs / 1e6,
        packets as f64 / (secs + convert) / 1e6,
    );
    let _ = writeln!(out, "  peak RSS so far: {} MiB", peak_rss_kib().unwrap_or(0) / 1024);
    drop(w);
    drop(pool);

    if std::env::var_os("NTA_BENCH_SKIP_SPOOFED").is_some() {
        return out;
    }
    // Case 2: one million spoofed sources, with a budget of 100 000 states (overload mode) and
    // with the default key budget (which holds their 2 M states with 6 GB of memory or more). The
    // small case first: memory freed by a case stays with the process and would count in the
    // next one's peak.
    let budget = 100_000;
    spoofed(
        &mut out,
        WindowerConfig { max_open_keys: budget, ..WindowerConfig::default() },
        &format!("windower.max_open_keys = {budget}"),
    );
    spoofed(&mut out, WindowerConfig::default(), "default key budget");
    out
}

fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A SYN flood from 1 000 000 distinct spoofed sources to one target (2 M records over 20 s):
/// records/s, peak RSS (VmHWM, reset before where the kernel allows) and the peak memory per
/// open key state above the RSS at the start.
fn spoofed(out: &mut String, cfg: WindowerConfig, label: &str) {
    let reset = reset_peak_rss();
    let base = rss_kib().unwrap_or(0);
    let t0 = 1_700_000_000.0;
    let now = Instant::now();
    let n = 2_000_000usize;
    let mut w = Windower::new(cfg);
    let mut r = PacketRecord::new(0.0, 60);
    r.protocol = Protocol::Tcp;
    r.dst_ip = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)));
    r.dst_port = Some(80);
    r.set_tcp_flags(0x02);
    let started = Instant::now();
    let mut windows = 0usize;
    let mut max_keys = 0usize;
    let mut target_syns = 0.0f64;
    let mut emit = |c: &ClosedWindow| {
        windows += 1;
        if c.view == wire::View::Destination && c.window_size == 5 {
            target_syns = target_syns.max(c.get("syn_in_count").flatten().unwrap_or(0.0));
        }
    };
    for i in 0..n {
        r.timestamp = t0 + 20.0 * i as f64 / n as f64;
        r.src_ip = Some(IpAddr::V4(Ipv4Addr::from(0x2000_0000u32 + (i % 1_000_000) as u32)));
        r.src_port = Some((i as u16) | 1024);
        w.push("bench", &r, now);
        if i & 0xffff == 0 {
            max_keys = max_keys.max(w.open_keys());
            w.poll_closed_with(now, &mut emit);
        }
    }
    max_keys = max_keys.max(w.open_keys());
    w.finish_with(&mut emit);
    let secs = started.elapsed().as_secs_f64();
    let peak = peak_rss_kib().unwrap_or(0);
    let stats = w.stats().clone();
    drop(w);
    let _ = writeln!(
        out,
        "spoofed ({label}): {n} SYNs from 1000000 sources to one target: {secs:.2} s ({:.2} M records/s), \
         {windows} windows, up to {max_keys} open key states ({} bytes each above the starting RSS), \
         peak RSS {} MiB{}; {} records shed in {} periods; the target's 5 s windows count up to {target_syns} SYNs",
        n as f64 / secs / 1e6,
        (peak.saturating_sub(base) * 1024) / max_keys.max(1) as u64,
        peak / 1024,
        if reset { "" } else { " (peak not reset: includes the cases before)" },
        stats.shed_records,
        stats.overload_periods,
    );
}
