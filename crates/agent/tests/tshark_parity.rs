//! Field-by-field parity of the frame decoder with tshark on every shared capture.
//!
//! tshark runs per frame like the decoder (no IP defragmentation, no TCP reassembly, raw
//! sequence numbers). For each frame the expected record is derived from tshark's fields and
//! compared with ours; a failure prints `file #frame field: ours=.. tshark=..` for every
//! difference.
//!
//! Derivation rules and the (few) principled exceptions:
//! 1. Addresses come from the innermost IP header *before* the first transport layer in
//!    `frame.protocols`: tunnels (ip:ipv6:tcp, 6in4) give the inner addresses (our documented
//!    choice, as Zeek), while an IP header quoted by ICMP/ICMPv6 errors (icmp:ip:udp) is
//!    ignored. Likewise TCP/UDP/DNS/HTTP fields that tshark shows *inside* an ICMP quote are
//!    not ours: only the first transport layer counts.
//! 2. A DNS message cut short by IP fragmentation or by the snap length (tshark flags the
//!    frame `_ws.unreassembled` or `_ws.short`): we keep its header and first question, which
//!    must equal tshark's, but leave `dns_answer_size` null because the answers are not all
//!    there (tshark sums the RDLENGTHs it could read, a number about bytes we never saw).
//! 3. `dns.qry.name` of the root is printed `<Root>` by tshark; ours is the empty string.
//! 4. `tcp.flags` is a 12-bit field in tshark (with the AE/NS bit); the record keeps the
//!    8 classic bits.
//! 5. Labels that are not valid UTF-8 (DNS tunnels): tshark replaces the bytes with U+FFFD,
//!    we keep them as RFC 1035 `\DDD` escapes; qnames are compared with both removed.
//! 6. DNS is decoded on ports 53/5353/5355 only (as specified); tshark's heuristic DNS
//!    dissector on other UDP ports is disabled (`--disable-heuristic dns_udp`).
//! 7. tshark only dissects HTTP on its registered ports; HTTP on other ports is enabled with
//!    `-d tcp.port==N,http` for the ports listed in `HTTP_PORTS` (we detect HTTP on any port).
//! 8. `app_proto` is derived from the layer tshark puts directly above the transport: `dns` when
//!    the DNS fields are (rule 6), `http` when a request or status line is, `ssh` when tshark
//!    shows the identification string (`ssh.protocol`), `tls` when a TLS record header starts
//!    the payload (`tls.record.content_type`, or `opaque_type` for TLS 1.3's encrypted records;
//!    without reassembly tshark reads a record only there) with a version from 3.0 to 3.4 (in a
//!    conversation it knows is TLS, tshark takes any first byte 20 to 23 for a record, whatever
//!    follows), `quic` when the first QUIC packet of the datagram is a long-header Initial.
//!    `tls_sni` is tshark's first `tls.handshake.extensions_server_name` (TLS over TCP only:
//!    the server name of QUIC's encrypted Initial is not ours).
//! 9. A TLS record that is not whole in its segment: tshark without reassembly does not dissect
//!    it at all, we identify it by its header (`tls`) and read a ClientHello as far as it goes.
//!    Allowed only where tshark's own `tcp.payload` starts with a record header (content type
//!    20 to 23, major version 3) whose length runs past `tcp.len`.
//! 10. The benign corpus is compared on `app_proto` and `tls_sni` only (the other fields are
//!     compared on the shared captures), with tshark told where TLS runs on ports it does not
//!     associate with TLS (`TLS_PORTS`: RDP's TLS inside its TPKT port, KakaoTalk on 8080,
//!     Skype's TLS-framed exchanges on 12350 and 13392).

use agent::decode::Decoder;
use agent::source::{Next, Source};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use wire::{AppProto, PacketRecord, Protocol};

const FIELDS: &[&str] = &[
    "frame.number",
    "frame.time_epoch",
    "frame.len",
    "frame.protocols",
    "eth.src",
    "eth.dst",
    "sll.src.eth",
    "vlan.id",
    "ip.src",
    "ip.dst",
    "ip.proto",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.nxt",
    "ipv6.fraghdr.nxt",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "tcp.flags",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "icmp.type",
    "icmp.code",
    "icmpv6.type",
    "icmpv6.code",
    "arp.opcode",
    "arp.src.proto_ipv4",
    "arp.dst.proto_ipv4",
    "arp.src.hw_mac",
    "arp.dst.hw_mac",
    "dns.flags.response",
    "dns.qry.name",
    "dns.qry.type",
    "dns.count.answers",
    "dns.resp.len",
    "http.request.method",
    "http.request.uri",
    "http.response.code",
    "http.host",
    "ssh.protocol",
    "tls.record.content_type",
    "tls.record.opaque_type",
    "tls.record.version",
    "tls.handshake.extensions_server_name",
    "tcp.len",
    "tcp.payload",
    "quic.long.packet_type",
    "quic.version",
    "_ws.unreassembled",
    "_ws.short",
];

/// Non-standard TCP ports carrying HTTP in the shared captures (rule 7).
const HTTP_PORTS: &[u16] = &[];

/// Per capture of the benign corpus, TCP ports where it carries TLS that tshark does not
/// dissect as TLS by itself (rule 10).
const TLS_PORTS: &[(&str, u16)] =
    &[("rdp.pcap", 3389), ("KakaoTalk_talk.pcap", 8080), ("skype.pcap", 12350), ("skype.pcap", 13392)];

/// Aggregator between occurrences of a field (not a character found in names).
const AGG: char = '\u{1f}';

type Row = BTreeMap<&'static str, Vec<String>>;

fn tshark(path: &Path, decode_as: &[String]) -> Vec<Row> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(path);
    for o in [
        "ip.defragment:FALSE",
        "ipv6.defragment:FALSE",
        "tcp.desegment_tcp_streams:FALSE",
        "tcp.relative_sequence_numbers:FALSE",
        "tcp.analyze_sequence_numbers:FALSE",
        "udp.try_heuristic_first:FALSE",
    ] {
        cmd.arg("-o").arg(o);
    }
    // DNS is ours on 53/5353/5355 only; tshark would also try it heuristically elsewhere.
    cmd.args(["--disable-heuristic", "dns_udp"]);
    for p in HTTP_PORTS {
        cmd.arg("-d").arg(format!("tcp.port=={p},http"));
    }
    for d in decode_as {
        cmd.arg("-d").arg(d);
    }
    cmd.args(["-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E"]);
    cmd.arg(format!("aggregator={AGG}"));
    for f in FIELDS {
        cmd.arg("-e").arg(f);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run tshark ({e}); the parity test needs tshark 4.x installed (apt-get install tshark)")
    });
    assert!(out.status.success(), "tshark failed on {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            FIELDS
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let v = cols.get(i).copied().unwrap_or("");
                    let vals = if v.is_empty() { vec![] } else { v.split(AGG).map(str::to_owned).collect() };
                    (*f, vals)
                })
                .collect()
        })
        .collect()
}

fn first<'a>(row: &'a Row, f: &str) -> Option<&'a str> {
    row.get(f).and_then(|v| v.first()).map(|s| s.as_str())
}

fn nth<'a>(row: &'a Row, f: &str, n: usize) -> Option<&'a str> {
    row.get(f).and_then(|v| v.get(n)).map(|s| s.as_str())
}

fn num<T: std::str::FromStr>(s: Option<&str>) -> Option<T> {
    let s = s?;
    if let Some(h) = s.strip_prefix("0x") {
        let v = u64::from_str_radix(h, 16).ok()?;
        return v.to_string().parse().ok();
    }
    s.parse().ok()
}

fn bool_of(s: Option<&str>) -> Option<bool> {
    s.map(|s| matches!(s, "1" | "True" | "true"))
}

const TRANSPORTS: &[&str] = &["tcp", "udp", "icmp", "icmpv6", "arp", "igmp", "gre", "sctp", "esp", "ah"];

/// What tshark's fields say of a frame.
struct Expected {
    record: PacketRecord,
    /// A DNS message cut short (rule 2).
    dns_cut: bool,
    /// A TLS record not whole in the segment (rule 9).
    tls_cut: bool,
}

/// The record tshark's fields describe (rules 1-9).
fn expected(row: &Row) -> Expected {
    let layers: Vec<&str> = first(row, "frame.protocols").unwrap_or("").split(':').collect();
    let ts: f64 = first(row, "frame.time_epoch").unwrap().parse().unwrap();
    let mut r = PacketRecord::new(ts, num(first(row, "frame.len")).unwrap());
    r.src_mac = first(row, "eth.src").or(first(row, "sll.src.eth")).map(|s| s.parse().unwrap());
    r.dst_mac = first(row, "eth.dst").map(|s| s.parse().unwrap());
    r.vlan = num(first(row, "vlan.id"));

    // Innermost IP layer before the first transport layer.
    let transport_at = layers.iter().position(|l| TRANSPORTS.contains(l));
    let scan_end = transport_at.unwrap_or(layers.len());
    let (mut n4, mut n6) = (0usize, 0usize);
    let mut sel: Option<(bool, usize)> = None; // (is_v6, occurrence)
    for l in &layers[..scan_end] {
        match *l {
            "ip" => {
                sel = Some((false, n4));
                n4 += 1;
            }
            "ipv6" => {
                sel = Some((true, n6));
                n6 += 1;
            }
            _ => {}
        }
    }
    let transport = transport_at.map(|i| layers[i]);
    let (src_f, dst_f) = match sel {
        Some((false, _)) => ("ip.src", "ip.dst"),
        _ => ("ipv6.src", "ipv6.dst"),
    };
    if let Some((v6, occ)) = sel {
        r.src_ip = nth(row, src_f, occ).map(|s| s.parse::<IpAddr>().unwrap());
        r.dst_ip = nth(row, dst_f, occ).map(|s| s.parse::<IpAddr>().unwrap());
        let proto: Option<u8> = match transport {
            Some("tcp") => Some(6),
            Some("udp") => Some(17),
            Some("icmp") => Some(1),
            Some("icmpv6") => Some(58),
            Some(_) => Some(0),
            // No transport layer dissected (non-first fragment): protocol of the IP header.
            None if !v6 => num(nth(row, "ip.proto", occ)),
            None => num(first(row, "ipv6.fraghdr.nxt")).or(num(nth(row, "ipv6.nxt", occ))),
        };
        r.protocol = match proto {
            Some(6) => Protocol::Tcp,
            Some(17) => Protocol::Udp,
            Some(1) => Protocol::Icmp,
            Some(58) => Protocol::Icmpv6,
            _ => Protocol::Other,
        };
    } else if transport == Some("arp") {
        r.protocol = Protocol::Arp;
    }

    match transport {
        Some("tcp") => {
            r.src_port = num(first(row, "tcp.srcport"));
            r.dst_port = num(first(row, "tcp.dstport"));
            if let Some(f) = num::<u16>(first(row, "tcp.flags")) {
                r.set_tcp_flags(f as u8);
            }
            r.seq = num(first(row, "tcp.seq_raw"));
            r.ack = num(first(row, "tcp.ack_raw"));
        }
        Some("udp") => {
            r.src_port = num(first(row, "udp.srcport"));
            r.dst_port = num(first(row, "udp.dstport"));
        }
        Some("icmp") => {
            r.icmp_type = num(first(row, "icmp.type"));
            r.icmp_code = num(first(row, "icmp.code"));
        }
        Some("icmpv6") => {
            r.icmp_type = num(first(row, "icmpv6.type"));
            r.icmp_code = num(first(row, "icmpv6.code"));
        }
        Some("arp") => {
            r.arp_op = num(first(row, "arp.opcode"));
            r.arp_psrc = first(row, "arp.src.proto_ipv4").map(|s| s.parse().unwrap());
            r.arp_pdst = first(row, "arp.dst.proto_ipv4").map(|s| s.parse().unwrap());
            r.arp_hwsrc = first(row, "arp.src.hw_mac").map(|s| s.parse().unwrap());
            r.arp_hwdst = first(row, "arp.dst.hw_mac").map(|s| s.parse().unwrap());
        }
        _ => {}
    }

    // Application layer directly above the first transport layer (not inside an ICMP quote).
    let app = transport_at.and_then(|i| layers.get(i + 1)).copied();
    if matches!(transport, Some("udp" | "tcp")) && matches!(app, Some("dns" | "mdns" | "llmnr")) {
        if let Some(resp) = bool_of(first(row, "dns.flags.response")) {
            r.dns_response = Some(resp);
            r.dns_query = Some(!resp);
            r.dns_qname = first(row, "dns.qry.name").map(|s| if s == "<Root>" { String::new() } else { s.to_owned() });
            r.dns_qtype = num(first(row, "dns.qry.type"));
            if resp {
                let an: Option<u16> = num(first(row, "dns.count.answers"));
                r.dns_answer_count = an;
                if let Some(an) = an {
                    let lens = row.get("dns.resp.len").cloned().unwrap_or_default();
                    r.dns_answer_size = Some(lens.iter().take(an as usize).map(|s| s.parse::<u32>().unwrap()).sum());
                }
            }
        }
    }
    if transport == Some("tcp") && app == Some("http") {
        r.http_method = first(row, "http.request.method").map(str::to_owned);
        r.http_path = first(row, "http.request.uri").map(str::to_owned);
        r.http_status_code = num(first(row, "http.response.code"));
        r.http_host = first(row, "http.host").map(str::to_owned);
    }
    // Rule 8.
    if r.dns_query.is_some() {
        r.app_proto = Some(AppProto::Dns);
    }
    if r.http_method.is_some() || r.http_status_code.is_some() {
        r.app_proto = Some(AppProto::Http);
    }
    if transport == Some("tcp") && app == Some("ssh") && first(row, "ssh.protocol").is_some() {
        r.app_proto = Some(AppProto::Ssh);
    }
    let tls_record = first(row, "tls.record.content_type").or(first(row, "tls.record.opaque_type"));
    let tls_version = num::<u16>(first(row, "tls.record.version"));
    if transport == Some("tcp")
        && app == Some("tls")
        && tls_record.is_some()
        && tls_version.is_some_and(|v| (0x0300..=0x0304).contains(&v))
    {
        r.app_proto = Some(AppProto::Tls);
        r.tls_sni = first(row, "tls.handshake.extensions_server_name").map(str::to_owned);
    }
    if transport == Some("udp")
        && app == Some("quic")
        && first(row, "quic.long.packet_type") == Some("0")
        && first(row, "quic.version").is_some_and(|v| v != "0x00000000")
    {
        r.app_proto = Some(AppProto::Quic);
    }
    let dns_cut = first(row, "_ws.unreassembled").is_some() || first(row, "_ws.short").is_some();
    let mut tls_cut = false;
    if transport == Some("tcp") {
        let head = first(row, "tcp.payload").and_then(|h| h.get(..10)).map(|h| u64::from_str_radix(h, 16).unwrap());
        let payload_len: Option<u64> = num(first(row, "tcp.len"));
        if let (Some(head), Some(payload_len)) = (head, payload_len) {
            let (content_type, major, record_len) = (head >> 32, (head >> 24) & 0xff, head & 0xffff);
            tls_cut = (20..=23).contains(&content_type) && major == 3 && 5 + record_len > payload_len;
        }
    }
    Expected { record: r, dns_cut, tls_cut }
}

fn as_map(r: &PacketRecord) -> BTreeMap<String, serde_json::Value> {
    match serde_json::to_value(r).unwrap() {
        serde_json::Value::Object(m) => m.into_iter().collect(),
        _ => unreachable!(),
    }
}

/// Compares every frame of `path`, all fields or the `only` ones; returns the number of frames.
fn compare_file(
    path: &Path,
    only: Option<&[&str]>,
    diffs: &mut Vec<String>,
    seen: &mut BTreeMap<String, usize>,
) -> usize {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let decode_as: Vec<String> =
        TLS_PORTS.iter().filter(|(f, _)| *f == name).map(|(_, p)| format!("tcp.port=={p},tls")).collect();
    let rows = tshark(path, &decode_as);
    let mut src = Source::open_file(path).unwrap();
    let dec = Decoder::new(src.linktype);
    let mut i = 0usize;
    loop {
        let frame = match src.next_frame().unwrap() {
            Next::Frame(f) => f,
            Next::End => break,
            Next::Idle => continue,
        };
        let row = rows.get(i).unwrap_or_else(|| panic!("{name}: tshark has fewer frames than libpcap"));
        i += 1;
        let Expected { record: exp, dns_cut, tls_cut } = expected(row);
        let ours = match dec.decode(frame.timestamp, frame.wire_len, frame.data) {
            Ok(r) => r,
            Err(e) => {
                diffs.push(format!("{name} #{i}: we skip the frame ({e}) but tshark decodes it"));
                continue;
            }
        };
        if (ours.timestamp - exp.timestamp).abs() > 1e-6 {
            diffs.push(format!("{name} #{i} timestamp: ours={} tshark={}", ours.timestamp, exp.timestamp));
        }
        let (om, em) = (as_map(&ours), as_map(&exp));
        for (k, ev) in &em {
            if k == "timestamp" || k == "interface" || only.is_some_and(|o| !o.contains(&k.as_str())) {
                continue;
            }
            if !ev.is_null() {
                *seen.entry(k.clone()).or_default() += 1;
                if k == "app_proto" {
                    *seen.entry(format!("app_proto={}", ev.as_str().unwrap())).or_default() += 1;
                }
            }
            let ov = &om[k];
            if ov == ev {
                continue;
            }
            if k == "dns_qname" {
                let strip = |v: &serde_json::Value| v.as_str().map(strip_undecodable);
                if strip(ov).is_some() && strip(ov) == strip(ev) {
                    continue; // rule 5
                }
            }
            if dns_cut && k == "dns_answer_size" && ov.is_null() {
                continue; // rule 2
            }
            if tls_cut && ev.is_null() && ((k == "app_proto" && ov == "tls") || k == "tls_sni") {
                continue; // rule 9
            }
            diffs.push(format!("{name} #{i} {k}: ours={ov} tshark={ev}"));
        }
    }
    assert_eq!(i, rows.len(), "{name}: frame count differs between libpcap and tshark");
    i
}

fn report(diffs: &[String], total: usize) {
    if !diffs.is_empty() {
        let shown = diffs.iter().take(200).cloned().collect::<Vec<_>>().join("\n");
        panic!("{} differences with tshark over {total} frames:\n{shown}", diffs.len());
    }
}

#[test]
fn decoder_matches_tshark_on_every_shared_capture() {
    let files = testkit::shared_pcaps();
    assert!(files.len() >= 20, "expected the shared captures, found {}", files.len());
    let mut diffs: Vec<String> = Vec::new();
    // How often each field was actually compared with a non-null value (guards against a
    // vacuous pass, e.g. a tshark field renamed in a new version).
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0usize;
    for path in &files {
        total += compare_file(path, None, &mut diffs, &mut seen);
    }
    report(&diffs, total);
    for f in [
        "src_ip",
        "src_port",
        "tcp_flags",
        "seq",
        "icmp_type",
        "arp_op",
        "arp_hwsrc",
        "dns_qname",
        "dns_answer_size",
        "http_method",
        "http_host",
        "http_status_code",
        "src_mac",
        "tls_sni",
        "app_proto=ssh",
        "app_proto=tls",
        "app_proto=http",
        "app_proto=dns",
    ] {
        assert!(seen.get(f).copied().unwrap_or(0) > 0, "field {f} was never compared: {seen:?}");
    }
    eprintln!("non-null values compared per field: {seen:?}");
    eprintln!("{total} frames of {} files match tshark", files.len());
}

/// `app_proto` and `tls_sni` on the benign corpus (rule 10): many more TLS clients (browsers,
/// apps), QUIC Initials, STARTTLS, TLS on other ports.
#[test]
fn app_proto_and_sni_match_tshark_on_the_benign_corpus() {
    let files = testkit::benign_corpus();
    let (mut diffs, mut seen) = (Vec::new(), BTreeMap::new());
    let mut total = 0;
    for path in &files {
        total += compare_file(path, Some(&["app_proto", "tls_sni"]), &mut diffs, &mut seen);
    }
    report(&diffs, total);
    eprintln!("non-null values compared per field: {seen:?}");
    for (f, min) in [("tls_sni", 200), ("app_proto=tls", 1000), ("app_proto=quic", 5), ("app_proto=http", 1)] {
        assert!(seen.get(f).copied().unwrap_or(0) >= min, "{f} compared fewer than {min} times: {seen:?}");
    }
}

/// The benchmark's synthetic capture adds what the shared captures lack (802.1Q tags, IPv6
/// DNS, ICMPv6 echo, QUIC).
#[test]
fn decoder_matches_tshark_on_generated_capture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("generated.pcap");
    bench::generate_capture(&path, 4000).unwrap();
    let (mut diffs, mut seen) = (Vec::new(), BTreeMap::new());
    let total = compare_file(&path, None, &mut diffs, &mut seen);
    report(&diffs, total);
    for f in [
        "vlan",
        "http_method",
        "http_status_code",
        "dns_answer_size",
        "arp_op",
        "icmp_type",
        "tls_sni",
        "app_proto=tls",
        "app_proto=ssh",
        "app_proto=quic",
    ] {
        assert!(seen.get(f).copied().unwrap_or(0) > 0, "field {f} was never compared: {seen:?}");
    }
}

/// A qname with our `\\DDD` escapes turned back into bytes, decoded as lossy UTF-8 (tshark
/// keeps the valid multi-byte sequences of a label and replaces the rest), U+FFFD removed.
fn strip_undecodable(s: &str) -> String {
    let b = s.as_bytes();
    let mut raw = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            if let Ok(v) = s[i + 1..i + 4].parse::<u8>() {
                raw.push(v);
                i += 4;
                continue;
            }
        }
        raw.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&raw).replace('\u{fffd}', "")
}
