//! Turning a (merged) state into named features. The definitions are tabulated in
//! `crates/windower/FEATURES.md`; this file is their single implementation.
//!
//! Missing-value policy: counts and rates are always numbers (0 is a true count). Means,
//! ratios, variances and maxima are `None` when their denominator is empty (no packets of the
//! kind, fewer than 2 for a variance or an interval), never a made-up 0. The one exception
//! kept from the original, `syn_to_synack_ratio`, divides by max(SYN-ACKs, 1) and is
//! therefore always defined.

use crate::arp::ArpSeq;
use crate::sketch::BottomK;
use crate::state::{DstState, SrcState, C_ACK, C_HTTP, C_SYN, C_WEB, IN_ACK, IN_SYN};
use wire::features::{DESTINATION_FEATURES, EXTRA_SOURCE_FEATURES, ORIGINAL_FEATURES};

/// The MAC-binding features of one ARP sender, from the window-wide join (see `level.rs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ArpBinding {
    pub unique_macs_per_ip_max: f64,
    pub avg_macs_per_ip: Option<f64>,
    pub suspicious_mac_changes: f64,
    pub duplicate_mac_ips: f64,
    pub mac_ip_ratio: Option<f64>,
    /// ARP requests of the window, from any sender, asking for the key's address.
    pub requests_for_key: f64,
}

fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0).then(|| num / den)
}

/// Features of a source window: [`ORIGINAL_FEATURES`] then [`EXTRA_SOURCE_FEATURES`].
pub const SOURCE_FEATURES: usize = ORIGINAL_FEATURES.len() + EXTRA_SOURCE_FEATURES.len();

/// Feature names of the shedding flag on the source windows of a window that shed.
pub const SHED_RECORDS: &str = "shed_records";
pub const SHED_SOURCES: &str = "shed_sources";

/// Names of the source view's values in order, the two shedding flags last (present only on
/// the windows of a window that shed, see [`crate::Windower`]).
pub const SOURCE_NAMES: [&str; SOURCE_FEATURES + 2] = {
    let mut out = [""; SOURCE_FEATURES + 2];
    let mut i = 0;
    while i < SOURCE_FEATURES {
        out[i] = if i < ORIGINAL_FEATURES.len() {
            ORIGINAL_FEATURES[i]
        } else {
            EXTRA_SOURCE_FEATURES[i - ORIGINAL_FEATURES.len()]
        };
        i += 1;
    }
    out[SOURCE_FEATURES] = SHED_RECORDS;
    out[SOURCE_FEATURES + 1] = SHED_SOURCES;
    out
};

/// The values of one window, in the order of [`SOURCE_NAMES`] or [`DESTINATION_FEATURES`]:
/// written in place, without a name or an allocation per feature (a flood closes millions of
/// windows).
pub type Values = [Option<f64>; SOURCE_NAMES.len()];

/// Writes a window's values in the order of a name table. The names at the call say which
/// value is which; test builds check each against the table and that none is missing.
struct Writer<'a> {
    names: &'static [&'static str],
    o: &'a mut Values,
    i: usize,
}

impl Writer<'_> {
    #[inline]
    fn put(&mut self, k: &'static str, v: Option<f64>) {
        debug_assert_eq!(k, self.names[self.i], "features out of order");
        self.o[self.i] = v;
        self.i += 1;
    }

    fn done(self) {
        debug_assert_eq!(self.i, self.names.len(), "features missing");
    }
}

/// Features of the source view into `o[..SOURCE_FEATURES]`. `d` is the window length in
/// seconds.
pub fn source_features(s: &SrcState, d: f64, arp: Option<&ArpBinding>, o: &mut Values) {
    let mut w = Writer { names: &SOURCE_NAMES[..SOURCE_FEATURES], o, i: 0 };
    let mut put = |k: &'static str, v: Option<f64>| w.put(k, v);
    let n = s.packets as f64;
    let bytes = s.bytes as f64;
    // Generic
    put("packet_count", Some(n));
    put("packet_rate_pps", Some(n / d));
    put("byte_count", Some(bytes));
    put("byte_rate_bps", Some(bytes * 8.0 / d));
    put("avg_packet_size", ratio(bytes, n));
    put("packet_size_variance", variance(s.packets, s.bytes, s.sum_sq));
    put("tcp_count", Some(s.tcp as f64));
    put("udp_count", Some(s.udp as f64));
    put("icmp_count", Some(s.icmp as f64));
    put("arp_count", Some(s.arp_frames as f64));
    let dst_ips = s.dst_ips.count();
    put("unique_dst_ips", Some(dst_ips));
    let mut all_ports = s.tcp_ports.clone();
    all_ports.merge(&s.udp_ports);
    put("unique_dst_ports", Some(all_ports.len() as f64));
    put("tcp_ports_hit", Some(s.tcp_ports.count_not_remote_access() as f64));
    put("udp_ports_hit", Some(s.udp_ports.count_not_remote_access() as f64));
    put("remote_conn_port_hits", Some(s.remote_hits as f64));
    // TCP / DDoS / scan
    let (syn, ack, synack) = (s.syn as f64, s.ack as f64, s.synack as f64);
    put("tcp_syn_count", Some(syn));
    put("tcp_ack_count", Some(ack));
    put("syn_rate_pps", Some(syn / d));
    put("syn_ack_rate_pps", Some(synack / d));
    put("syn_to_synack_ratio", Some(syn / synack.max(1.0)));
    let cs = conn_stats(&s.conns);
    put("half_open_count", Some(cs.half_open));
    put("sequential_port_count", Some(all_ports.sequential_pairs() as f64));
    put("scan_rate_pps", Some(s.tcp as f64 / d));
    put("distinct_targets_count", Some(dst_ips));
    put("syn_only_ratio", ratio(syn, syn + ack));
    put("icmp_rate_pps", Some(s.icmp as f64 / d));
    put("udp_rate_pps", Some(s.udp as f64 / d));
    put("udp_dest_port_count", Some(s.udp_ports.len() as f64));
    // Brute force
    let recv = s.recv.as_deref();
    put("ssh_connection_attempts", Some(s.ssh as f64));
    put("ftp_connection_attempts", Some(s.ftp as f64));
    put("http_login_attempts", Some(s.http_login as f64));
    put("login_request_rate", Some(s.http_login as f64 / d));
    put("failed_login_count", Some(recv.map_or(0, |r| r.failed_login) as f64));
    put("auth_attempts_per_min", Some((s.ssh + s.ftp + s.http_login) as f64 / (d / 60.0)));
    // ARP
    let a = s.arp.as_deref();
    let (req, rep) = a.map_or((0, 0), |a| (a.requests, a.replies));
    let b = arp.copied().unwrap_or_default();
    put("arp_request_count", Some(req as f64));
    put("arp_reply_count", Some(rep as f64));
    put("gratuitous_arp_count", Some(a.map_or(0, |a| a.gratuitous) as f64));
    put("arp_binding_flap_count", Some(a.map_or(0, |a| flaps(&a.seq)) as f64));
    put("unique_macs_per_ip_max", Some(b.unique_macs_per_ip_max));
    put("avg_macs_per_ip", b.avg_macs_per_ip);
    put("suspicious_mac_changes", Some(b.suspicious_mac_changes));
    put("duplicate_mac_ips", Some(b.duplicate_mac_ips));
    put("mac_ip_ratio", b.mac_ip_ratio);
    // Replies nobody asked for: beyond the requests for the key's address seen in the window
    // (an owner answering who-has for itself is solicited, however few requests it sent).
    put("arp_reply_without_request_count", Some((rep as f64 - b.requests_for_key).max(0.0)));
    // DNS
    let dn = s.dns.as_deref();
    let q = dn.map_or(0, |x| x.queries) as f64;
    let named = dn.map_or(0, |x| x.named) as f64;
    put("udp_port_53_count", Some(s.udp53 as f64));
    put("dns_query_count", Some(q));
    put("query_rate_qps", Some(q / d));
    put("unique_qnames_count", Some(dn.map_or(0.0, |x| x.qnames.count())));
    put("avg_subdomain_entropy", dn.and_then(|x| ratio(x.entropy_sum, named)));
    put("pct_high_entropy_queries", dn.and_then(|x| ratio(x.high_entropy as f64, named)));
    put("avg_subdomain_length", dn.and_then(|x| ratio(x.sub_len_sum as f64, named)));
    put("max_subdomain_length", dn.filter(|x| x.named > 0).map(|x| x.sub_len_max as f64));
    put("avg_label_count", dn.and_then(|x| ratio(x.label_sum as f64, named)));
    put("txt_record_count", Some(dn.map_or(0, |x| x.txt) as f64));
    put("distinct_record_types", Some(dn.map_or(0, |x| x.qtypes.len()) as f64));
    put("avg_answer_size", recv.and_then(|r| ratio(r.answer_sum as f64, r.answer_n as f64)));
    // Mean gap between consecutive sorted query times telescopes to (last-first)/(n-1).
    put(
        "avg_query_interval_ms",
        dn.filter(|x| x.queries >= 2).map(|x| (x.last_ts - x.first_ts) * 1000.0 / (x.queries - 1) as f64),
    );
    put("dns_to_udp_ratio", ratio(q, s.udp as f64));
    // Slowloris
    let conns = s.conns.count();
    put("open_conn_count", Some(conns));
    put("avg_conn_duration", cs.mean_duration);
    put("partial_http_count", Some(cs.partial_http));
    put("bytes_per_conn", ratio(s.tcp_bytes as f64, conns));
    put("request_completion_ratio", ratio(recv.map_or(0, |r| r.http_responses) as f64, s.http_requests as f64));
    // Extras
    put("tcp_synack_count", Some(synack));
    put("tcp_rst_count", Some(s.rst as f64));
    put("tcp_fin_count", Some(s.fin as f64));
    put("unique_src_ports", Some(s.src_ports.len() as f64));
    put("null_record_count", Some(dn.map_or(0, |x| x.null) as f64));
    put("http_request_count", Some(s.http_requests as f64));
    put("http_response_count", Some(s.http_responses_sent as f64));
    put("dns_responses_received", Some(recv.map_or(0, |r| r.dns_responses) as f64));
    put("http_responses_received", Some(recv.map_or(0, |r| r.http_responses) as f64));
    put("tcp_synack_received_count", Some(recv.map_or(0, |r| r.synack) as f64));
    // Refused and unanswered attempts (Zeek's scan logic counts attempts whatever the protocol)
    put("tcp_rst_received_count", Some(recv.map_or(0, |r| r.rst) as f64));
    put("tcp_refused_ports", Some(recv.map_or(0, |r| r.rst_ports.count_missing_from(Some(&s.synack_ports))) as f64));
    put("icmp_unreachable_received_count", Some(recv.map_or(0, |r| r.unreachable) as f64));
    put("udp_unanswered_ports", Some(s.udp_ports.count_missing_from(recv.map(|r| &r.udp_reply_ports)) as f64));
    put("tcp_nosyn_noack_count", Some(s.nosyn_noack as f64));
    put("tcp_conns_without_syn", Some(cs.without_syn));
    put("icmp_echo_reply_count", Some(s.echo_replies as f64));
    put("tcp_src_port_count", Some(s.tcp_src_ports.len() as f64));
    put("ssh_sessions_opened", Some(s.ssh_sessions as f64));
    put("tcp_data_conn_count", Some(s.tcp_data_ports.len() as f64));
    put("tcp_data_received_count", Some(recv.map_or(0, |r| r.psh) as f64));
    w.done();
}

fn flaps(seq: &ArpSeq) -> u64 {
    seq.flaps()
}

/// Sample variance (n-1) from exact integer sums: (n*sum_sq - sum^2) / (n(n-1)).
fn variance(n: u64, sum: u64, sum_sq: u128) -> Option<f64> {
    if n < 2 {
        return None;
    }
    let (n128, s128) = (n as u128, sum as u128);
    let num = n128 * sum_sq - s128 * s128;
    Some(num as f64 / (n as f64 * (n - 1) as f64))
}

/// What the features take from a key's connections, in one pass over them.
struct ConnStats {
    half_open: f64,
    partial_http: f64,
    without_syn: f64,
    mean_duration: Option<f64>,
}

fn conn_stats(c: &BottomK<crate::state::Conn>) -> ConnStats {
    let has = |flags: u8, mask: u8, want: u8| (flags & mask == want) as usize;
    let (counts, sum, k) = c.fold_values(([0usize; 3], 0.0, 0usize), |([a, b, z], sum, k), v| {
        let f = v.flags;
        let counts =
            [a + has(f, C_SYN | C_ACK, C_SYN), b + has(f, C_SYN | C_HTTP | C_WEB, C_SYN | C_WEB), z + has(f, C_SYN, 0)];
        (counts, sum + (v.last - v.first), k + 1)
    });
    ConnStats {
        half_open: c.estimate(counts[0]),
        partial_http: c.estimate(counts[1]),
        without_syn: c.estimate(counts[2]),
        mean_duration: ratio(sum, k as f64),
    }
}

/// Features of the destination view into `o[..DESTINATION_FEATURES.len()]`.
pub fn destination_features(s: &DstState, d: f64, o: &mut Values) {
    let n = s.packets as f64;
    let bytes = s.bytes as f64;
    let srcs = s.src_ips.count();
    let mut w = Writer { names: &DESTINATION_FEATURES, o, i: 0 };
    for (k, v) in [
        ("packet_count", Some(n)),
        ("packet_rate_pps", Some(n / d)),
        ("byte_count", Some(bytes)),
        ("byte_rate_bps", Some(bytes * 8.0 / d)),
        ("avg_packet_size", ratio(bytes, n)),
        ("tcp_count", Some(s.tcp as f64)),
        ("udp_count", Some(s.udp as f64)),
        ("icmp_count", Some(s.icmp as f64)),
        ("udp_rate_pps", Some(s.udp as f64 / d)),
        ("icmp_rate_pps", Some(s.icmp as f64 / d)),
        ("syn_in_count", Some(s.syn as f64)),
        ("syn_in_rate_pps", Some(s.syn as f64 / d)),
        ("unique_src_ips", Some(srcs)),
        ("src_ip_diversity", ratio(srcs, n)),
        ("unique_dst_ports", Some(s.dst_ports.len() as f64)),
        ("half_open_count", Some(s.inbound.count_where(|f| f & (IN_SYN | IN_ACK) == IN_SYN))),
        ("icmp_echo_reply_count", Some(s.echo_replies as f64)),
    ] {
        w.put(k, v);
    }
    w.done();
}
