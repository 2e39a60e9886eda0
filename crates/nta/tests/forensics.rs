//! Frames on `NTA_FRAMES` and `nta export-pcap`: every shared capture replayed through the
//! agent comes back frame for frame (bytes, captured and wire lengths, nanosecond timestamps, as
//! libpcap reads both files); `--host` and `--port` select what tshark's dissection of the
//! original says (the definition below), `--bpf` what tcpdump selects; captures of two link
//! types make a pcapng that tshark reads; a short range of a long stream downloads only its part;
//! bad input fails with a clear message and a non-zero exit code.

mod common;
use common::*;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A frame as libpcap (nanosecond precision) reads it: seconds, nanoseconds, wire length, bytes
/// (the captured length is theirs).
type Frame = (i64, i64, u32, Vec<u8>);

/// Every frame libpcap reads from `file`, up to the end or the first error (as the agent does).
fn frames(file: &Path) -> Vec<Frame> {
    let mut cap = pcap::Capture::from_file_with_precision(file, pcap::Precision::Nano).unwrap();
    let mut out = Vec::new();
    while let Ok(p) = cap.next_packet() {
        #[allow(clippy::unnecessary_cast)]
        out.push((p.header.ts.tv_sec as i64, p.header.ts.tv_usec as i64, p.header.len, p.data.to_vec()));
    }
    out
}

/// `nta export-pcap ARGS -o OUT`: (success, stderr).
fn export(nats_url: &str, args: &[&str], out: &Path) -> (bool, String) {
    let o = nta()
        .args(["export-pcap", "--nats-url", nats_url])
        .args(args)
        .arg("-o")
        .arg(out)
        .output()
        .expect("running nta export-pcap");
    (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn export_ok(nats_url: &str, args: &[&str], out: &Path) -> String {
    let (ok, stderr) = export(nats_url, args, out);
    assert!(ok, "export-pcap {args:?} failed: {stderr}");
    stderr
}

/// The numbers of the export's report line: frames, bytes, ..., headers scanned, bodies fetched,
/// bytes fetched, stream messages, stream bytes.
fn report_figures(stderr: &str) -> (u64, u64, u64, u64, u64) {
    let line = stderr.lines().find(|l| l.contains("batch headers")).expect("report line");
    let after = |key: &str| -> u64 {
        let i = line.find(key).unwrap_or_else(|| panic!("{key} in {line}"));
        let digits: String =
            line[..i].trim_end().rsplit(' ').next().unwrap().chars().filter(char::is_ascii_digit).collect();
        digits.parse().unwrap()
    };
    let fetched_bytes: u64 = {
        let i = line.find("bodies (").unwrap() + "bodies (".len();
        line[i..].split(' ').next().unwrap().parse().unwrap()
    };
    let stream_bytes: u64 = {
        let i = line.rfind("messages (").unwrap() + "messages (".len();
        line[i..].split(' ').next().unwrap().parse().unwrap()
    };
    (after("batch headers"), after("bodies"), fetched_bytes, after("messages"), stream_bytes)
}

/// What tshark dissects in each frame of `file` (IP reassembly off, so a fragment is judged by
/// itself as BPF judges it).
struct Dissected {
    protocols: Vec<String>,
    fields: HashMap<&'static str, Vec<String>>,
}

const FIELDS: [&str; 8] =
    ["ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport"];

fn tshark(file: &Path) -> Vec<Dissected> {
    let mut c = Command::new("tshark");
    c.arg("-r").arg(file).args(["-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE", "-T", "fields"]);
    c.args(["-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,", "-e", "frame.protocols"]);
    for f in FIELDS {
        c.args(["-e", f]);
    }
    let out = c.output().expect("running tshark");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let list = |i: usize| -> Vec<String> {
                cols.get(i)
                    .map(|c| c.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
                    .unwrap_or_default()
            };
            Dissected {
                protocols: list(0).first().map(|p| p.split(':').map(str::to_string).collect()).unwrap_or_default(),
                fields: FIELDS.iter().enumerate().map(|(i, f)| (*f, list(i + 1))).collect(),
            }
        })
        .collect()
}

impl Dissected {
    /// The outermost IP layer ("ip" or "ipv6") and what follows it, when only link layers
    /// (Ethernet, Linux cooked, at most one VLAN tag) come before it: what BPF's `ip host`,
    /// `ip6 host` (directly or after `vlan`) look at.
    fn outer_ip(&self) -> Option<(&str, Option<&str>)> {
        let mut vlans = 0;
        for (i, p) in self.protocols.iter().enumerate() {
            match p.as_str() {
                "eth" | "ethertype" | "sll" => {}
                "vlan" => vlans += 1,
                "ip" | "ipv6" if vlans <= 1 => return Some((p, self.protocols.get(i + 1).map(String::as_str))),
                _ => return None,
            }
        }
        None
    }

    /// `--host` as defined: the outermost IP header's source or destination.
    fn has_host(&self, host: IpAddr) -> bool {
        let fam = match host {
            IpAddr::V4(_) => "ip",
            IpAddr::V6(_) => "ipv6",
        };
        match self.outer_ip() {
            Some((outer, _)) if outer == fam => [format!("{fam}.src"), format!("{fam}.dst")].iter().any(|f| {
                let key: &str = FIELDS.iter().find(|x| **x == f.as_str()).unwrap();
                self.fields[key].first().and_then(|a| a.parse::<IpAddr>().ok()) == Some(host)
            }),
            _ => false,
        }
    }

    /// `--port` as defined: the TCP or UDP header right after the outermost IP header.
    fn has_port(&self, port: u16) -> bool {
        let (src, dst) = match self.outer_ip() {
            Some((_, Some("tcp"))) => ("tcp.srcport", "tcp.dstport"),
            Some((_, Some("udp"))) => ("udp.srcport", "udp.dstport"),
            _ => return false,
        };
        [src, dst].iter().any(|f| self.fields[f].first().and_then(|p| p.parse::<u16>().ok()) == Some(port))
    }

    fn hosts(&self) -> Vec<IpAddr> {
        FIELDS[..4].iter().filter_map(|f| self.fields[f].first()?.parse().ok()).collect()
    }

    fn ports(&self) -> Vec<u16> {
        FIELDS[4..].iter().filter_map(|f| self.fields[f].first()?.parse().ok()).collect()
    }
}

/// The most frequent value of `values` (ties: the smallest), if any.
fn most_frequent<T: Ord + Clone>(values: impl Iterator<Item = T>) -> Option<T> {
    let mut counts = std::collections::BTreeMap::new();
    for v in values {
        *counts.entry(v).or_insert(0usize) += 1;
    }
    counts.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0))).map(|(v, _)| v)
}

/// The least frequent value of `values` (ties: the smallest), if any.
fn least_frequent<T: Ord + Clone>(values: impl Iterator<Item = T>) -> Option<T> {
    let mut counts = std::collections::BTreeMap::new();
    for v in values {
        *counts.entry(v).or_insert(0usize) += 1;
    }
    counts.into_iter().min_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0))).map(|(v, _)| v)
}

/// The frames of `file` that `pick` keeps, in order.
fn selected(all: &[Frame], pick: impl Fn(usize) -> bool) -> Vec<Frame> {
    all.iter().enumerate().filter(|(i, _)| pick(*i)).map(|(_, f)| f.clone()).collect()
}

fn tcpdump(file: &Path, expr: &str, out: &Path) -> Vec<Frame> {
    let st = Command::new("tcpdump")
        // Nanoseconds read and written, as the original has them.
        .arg("--time-stamp-precision=nano")
        .arg("-r")
        .arg(file)
        .arg("-w")
        .arg(out)
        .arg(expr)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("running tcpdump");
    assert!(st.success(), "tcpdump {expr}");
    frames(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_captures_come_back_exactly_and_filters_match_tshark_and_tcpdump() {
    let nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pcap");
    let captures: Vec<PathBuf> = testkit::shared_pcaps();
    let mut total = 0usize;
    let mut linktypes = BTreeSet::new();
    for (i, file) in captures.iter().enumerate() {
        let agent = format!("cap{i}");
        replay(&nats.url, file, &agent);
        let want = frames(file);
        total += want.len();
        linktypes.insert(pcap::Capture::from_file(file).unwrap().get_datalink().0);
        let name = file.file_name().unwrap().to_string_lossy().into_owned();

        // The whole capture: every frame, timestamp and length as captured.
        let stderr = export_ok(&nats.url, &["--agent", &agent, "--from", "0", "--to", "4000000000"], &out);
        let got = frames(&out);
        assert_eq!(got.len(), want.len(), "{name}: frame count ({stderr})");
        for (n, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{name}: frame {} differs", n + 1);
        }
        assert_eq!(
            pcap::Capture::from_file(&out).unwrap().get_datalink(),
            pcap::Capture::from_file(file).unwrap().get_datalink(),
            "{name}: link type"
        );

        // --host and --port against tshark's dissection of the original.
        let dissected = tshark(file);
        assert_eq!(dissected.len(), want.len(), "{name}: tshark frame count");
        let host = most_frequent(dissected.iter().flat_map(|d| d.hosts()));
        // And a rare one: a selective filter, not only one that keeps everything.
        let rare = least_frequent(dissected.iter().flat_map(|d| d.hosts()));
        let port = most_frequent(dissected.iter().flat_map(|d| d.ports()));
        if let Some(host) = host {
            export_ok(
                &nats.url,
                &["--agent", &agent, "--from", "0", "--to", "4000000000", "--host", &host.to_string()],
                &out,
            );
            let expected = selected(&want, |i| dissected[i].has_host(host));
            assert!(!expected.is_empty(), "{name}: {host} selects nothing");
            assert_eq!(frames(&out), expected, "{name}: --host {host}");
            println!("{name}: --host {host}: {} of {} frames, as tshark", expected.len(), want.len());
        }
        if let Some(rare) = rare.filter(|r| Some(*r) != host) {
            export_ok(
                &nats.url,
                &["--agent", &agent, "--from", "0", "--to", "4000000000", "--host", &rare.to_string()],
                &out,
            );
            assert_eq!(frames(&out), selected(&want, |i| dissected[i].has_host(rare)), "{name}: --host {rare}");
        }
        if let Some(port) = port {
            let p = port.to_string();
            export_ok(&nats.url, &["--agent", &agent, "--from", "0", "--to", "4000000000", "--port", &p], &out);
            let expected = selected(&want, |i| dissected[i].has_port(port));
            assert_eq!(frames(&out), expected, "{name}: --port {port}");
            println!("{name}: --port {port}: {} of {} frames, as tshark", expected.len(), want.len());
        }
        // --bpf against tcpdump on the original.
        for expr in ["tcp[tcpflags] & tcp-syn != 0", "udp or icmp", "greater 100"] {
            let reference = tcpdump(file, expr, &dir.path().join("ref.pcap"));
            export_ok(&nats.url, &["--agent", &agent, "--from", "0", "--to", "4000000000", "--bpf", expr], &out);
            assert_eq!(frames(&out), reference, "{name}: --bpf {expr:?}");
        }
    }

    // Several agents of two link types: one pcapng, an interface per agent, read by tshark.
    assert!(linktypes.len() >= 2, "the shared captures have one link type only: {linktypes:?}");
    let all = dir.path().join("all.pcapng");
    let stderr = export_ok(&nats.url, &["--from", "0", "--to", "4000000000"], &all);
    assert!(stderr.contains("pcapng"), "{stderr}");
    assert_eq!(tshark_frame_count(&all), total, "tshark reads every frame of the pcapng");
    // libpcap reads one link type per file: tshark is the reader here.
    let listed = Command::new("tshark")
        .arg("-r")
        .arg(&all)
        .args(["-T", "fields", "-e", "frame.interface_name", "-e", "frame.time_epoch"])
        .output()
        .unwrap();
    let rows: Vec<(String, (i64, i64))> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| {
            let (name, t) = l.split_once('\t').unwrap();
            let (s, n) = t.split_once('.').unwrap_or((t, "0"));
            (name.to_string(), (s.parse().unwrap(), format!("{n:0<9}").parse().unwrap()))
        })
        .collect();
    assert_eq!(rows.len(), total);
    let names: BTreeSet<String> = rows.iter().map(|r| r.0.clone()).collect();
    let expected: BTreeSet<String> = (0..captures.len()).map(|i| format!("cap{i}")).collect();
    assert_eq!(names, expected, "one interface per agent, named after it");
    // Frames on one time line across agents, at nanosecond precision.
    assert!(rows.windows(2).all(|w| w[0].1 <= w[1].1), "pcapng frames sorted by time");
    let times: BTreeSet<(i64, i64)> = rows.iter().map(|r| r.1).collect();
    let inputs: BTreeSet<(i64, i64)> = captures.iter().flat_map(|f| frames(f)).map(|f| (f.0, f.1)).collect();
    assert_eq!(times, inputs, "the pcapng's timestamps are the captures'");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_range_of_a_long_stream_reads_only_its_part() {
    let nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let long = dir.path().join("long.pcap");
    let st = nta().args(["bench", "gen-pcap", "--frames", "300000", "-o"]).arg(&long).status().unwrap();
    assert!(st.success());
    replay(&nats.url, &long, "long");
    let all = frames(&long);
    let (first, last) = (&all[0], &all[all.len() - 1]);
    let ns = |f: &Frame| f.0 * 1_000_000_000 + f.1;
    let span = ns(last) - ns(first);
    // One hundredth of the capture's time, in its middle.
    let from = ns(first) + span / 2;
    let to = from + span / 100;
    let secs = |t: i64| format!("{}.{:09}", t.div_euclid(1_000_000_000), t.rem_euclid(1_000_000_000));
    let out = dir.path().join("part.pcap");
    let stderr = export_ok(&nats.url, &["--from", &secs(from), "--to", &secs(to)], &out);
    let (scanned, fetched, fetched_bytes, messages, stream_bytes) = report_figures(&stderr);
    let got = frames(&out);
    let expected: Vec<Frame> = all.iter().filter(|f| (from..=to).contains(&ns(f))).cloned().collect();
    assert_eq!(got, expected, "the range's frames, exactly");
    println!(
        "short range: {} of {} frames; scanned {scanned} headers of {messages} messages, fetched {fetched} bodies, \
         {fetched_bytes} of {stream_bytes} bytes ({:.2}%)",
        got.len(),
        all.len(),
        100.0 * fetched_bytes as f64 / stream_bytes as f64
    );
    assert_eq!(scanned, messages, "a replay is stored after its capture time: every header is scanned");
    assert!(fetched * 20 < messages, "fetched {fetched} bodies of {messages}");
    assert!(fetched_bytes * 20 < stream_bytes, "fetched {fetched_bytes} bytes of {stream_bytes}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_fails_clearly() {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.pcap");
    // Nothing kept yet: a clear error, not a hang.
    let (ok, e) = export(&nats.url, &["--from", "0", "--to", "10"], &out);
    assert!(!ok && e.contains("no frames are kept"), "{e}");

    let file = testkit::pcaps_dir().join("ssh_brute-guessing.pcap");
    replay(&nats.url, &file, "a1");
    let cases: [(&[&str], &str); 7] = [
        (&["--from", "20", "--to", "10"], "is after --to"),
        (&["--from", "yesterday", "--to", "10"], "neither RFC 3339"),
        (&["--from", "2015-13-01T00:00:00Z", "--to", "10"], "neither RFC 3339"),
        (&["--from", "0", "--to", "4000000000", "--bpf", "tcp and and"], "bad BPF filter"),
        (&["--from", "2000-01-01T00:00:00Z", "--to", "2000-01-02T00:00:00Z"], "no frames kept for"),
        (&["--alert", "424242", "--database-url", &db.url], "no alert with id 424242"),
        (&["--to", "10"], "a time range is needed"),
    ];
    for (args, message) in cases {
        let (ok, stderr) = export(&nats.url, args, &out);
        assert!(!ok, "{args:?} succeeded");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?} left a file");
    }
    // Beyond retention, the message says what is kept.
    let (_, stderr) = export(&nats.url, &["--from", "2000-01-01T00:00:00Z", "--to", "2000-01-02T00:00:00Z"], &out);
    assert!(stderr.contains("2015-03-30T") && stderr.contains("keeps frames for 168 h"), "{stderr}");
    // Inside what is kept but matching nothing: an empty file and a warning, not an error.
    let stderr = export_ok(&nats.url, &["--from", "0", "--to", "4000000000", "--host", "192.0.2.77"], &out);
    assert!(stderr.contains("no frame in the range matches"), "{stderr}");
    assert_eq!(frames(&out).len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn frame_bytes_cuts_frames_and_zero_keeps_none() {
    let nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = testkit::pcaps_dir().join("benign-https-curl.pcap");
    let agent = |id: &str, frame_bytes: &str| {
        let o = nta()
            .args(["run", "--target", "agent", "--nats-url", &nats.url, "--agent-id", id, "--frame-bytes", frame_bytes])
            .arg("--read")
            .arg(&file)
            .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let stderr = agent("cut", "64");
    assert!(stderr.contains("frames kept on NTA_FRAMES"), "{stderr}");
    let out = dir.path().join("cut.pcap");
    export_ok(&nats.url, &["--agent", "cut", "--from", "0", "--to", "4000000000"], &out);
    let want: Vec<Frame> =
        frames(&file).into_iter().map(|(s, n, len, d)| (s, n, len, d[..d.len().min(64)].to_vec())).collect();
    assert!(want.iter().any(|f| f.2 > 64), "the capture has frames longer than 64 bytes");
    assert_eq!(frames(&out), want, "the first 64 bytes of each frame, with its real wire length and time");

    let stderr = agent("none", "0");
    assert!(!stderr.contains("frames kept"), "{stderr}");
    let (ok, e) = export(&nats.url, &["--agent", "none", "--from", "0", "--to", "4000000000"], &out);
    assert!(!ok && e.contains("no frames of agent none"), "{e}");
}
