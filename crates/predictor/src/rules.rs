//! Rule baselines in the spirit of Zeek's and Slips' detectors: fixed thresholds evaluated on
//! every window, independently of the model. They give a floor of detection that needs no
//! training, explain themselves (each hit carries its evidence), and let the model's verdicts
//! be compared with something simple. The thresholds are tabulated in
//! `crates/predictor/README.md`.
//!
//! Thresholds are rates where a rate makes sense, so that the same rule reads 5 s, 30 s and
//! 180 s windows consistently, with a minimum count so that a short window cannot fire on a
//! handful of packets. `min_count(rate, floor, d)` = max(floor, rate x window seconds).

use serde::{Deserialize, Serialize};
use serde_json::json;
use wire::{View, WindowRecord};

/// One rule that fired on a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleHit {
    /// Rule name (label of `nta_predictor_rule_hits_total{rule}` and of `predictions.rules`).
    pub rule: &'static str,
    /// The attack class it indicates.
    pub class: &'static str,
    /// The measured values and the thresholds they crossed.
    pub evidence: serde_json::Value,
}

/// Every rule: name, class, view.
pub const RULES: [(&str, &str, View); 13] = [
    ("ssh_guessing", "ssh_brute", View::Source),
    ("port_scan", "port_scan", View::Source),
    ("udp_port_scan", "port_scan", View::Source),
    ("arp_unsolicited_replies", "arp_spoof", View::Source),
    ("arp_binding_flaps", "arp_spoof", View::Source),
    ("syn_flood_source", "syn_flood", View::Source),
    ("syn_flood_victim", "syn_flood", View::Destination),
    ("udp_flood_source", "udp_flood", View::Source),
    ("udp_flood_victim", "udp_flood", View::Destination),
    ("icmp_flood_source", "icmp_flood", View::Source),
    ("icmp_flood_victim", "icmp_flood", View::Destination),
    ("dns_tunnel", "dns_tunnel", View::Source),
    ("slowloris", "slowloris", View::Source),
];

/// The thresholds (defaults in the README table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuleThresholds {
    /// SSH connection attempts (SYN without ACK to port 22) per minute ...
    pub ssh_attempts_per_min: f64,
    /// ... and at least this many in the window.
    pub ssh_min_attempts: f64,
    /// Distinct destination ports of a scan (Zeek scan.zeek: 15 ports).
    pub scan_min_ports: f64,
    /// Probes left half-open (SYN never followed by an ACK from the scanner), probes without
    /// SYN or ACK (NULL/FIN/Xmas), or ports that refused the scanner with a RST (ACK, window
    /// and Maimon scans, and the closed ports of every TCP scan): at least this many.
    pub scan_min_probes: f64,
    /// UDP destination ports that never answered (no UDP packet came back from them).
    pub udp_scan_min_unanswered: f64,
    /// Distinct destination ports per destination host: a port scan probes many ports of few
    /// hosts; peer-to-peer clients and WebRTC reach one or two ports on each of many peers.
    pub scan_min_ports_per_target: f64,
    /// Unsolicited ARP replies (replies beyond the requests the key sent) per second ...
    pub arp_unsolicited_per_s: f64,
    /// ... and at least this many in the window.
    pub arp_unsolicited_min: f64,
    /// Changes of the MAC bound to the key's IP within the window.
    pub arp_min_flaps: f64,
    /// SYN rate (packets/s) of a SYN flood.
    pub syn_flood_pps: f64,
    /// Source view: share of the sender's SYN+ACK-flagged packets that are SYNs.
    pub syn_flood_min_syn_only_ratio: f64,
    /// Destination view: share of received SYNs whose flow never sent an ACK.
    pub syn_flood_min_half_open_ratio: f64,
    /// Fewer distinct destination ports than this, or more sources than `flood_many_sources`:
    /// a fast single-source port sweep is a scan, not a flood.
    pub flood_max_ports: f64,
    pub flood_many_sources: f64,
    /// Source view floods: at most this many destinations (a flood is aimed).
    pub flood_max_targets: f64,
    pub udp_flood_pps: f64,
    pub icmp_flood_pps: f64,
    /// DNS queries per window before any DNS tunnel rule applies.
    pub dns_min_queries: f64,
    /// Mean length of the part of the name left of the registered domain.
    pub dns_long_subdomain: f64,
    /// Share of names whose subdomain entropy exceeds 3.5 bits per character.
    pub dns_high_entropy_share: f64,
    /// NULL-type queries (iodine's favourite, almost never legitimate).
    pub dns_min_null: f64,
    /// Share of TXT queries, together with `dns_txt_min_subdomain` long names.
    pub dns_txt_share: f64,
    pub dns_txt_min_subdomain: f64,
    /// Connections (distinct source ports) of a slowloris client ...
    pub slowloris_min_conns: f64,
    /// ... to at most this many destination ports ...
    pub slowloris_max_ports: f64,
    /// ... carrying at most this many bytes each (frames) ...
    pub slowloris_max_bytes_per_conn: f64,
    /// ... answered by at most this share of data packets (PSH) per connection.
    pub slowloris_max_response_share: f64,
}

impl Default for RuleThresholds {
    fn default() -> Self {
        RuleThresholds {
            ssh_attempts_per_min: 10.0,
            ssh_min_attempts: 10.0,
            scan_min_ports: 15.0,
            scan_min_probes: 15.0,
            udp_scan_min_unanswered: 15.0,
            scan_min_ports_per_target: 10.0,
            arp_unsolicited_per_s: 0.05,
            arp_unsolicited_min: 4.0,
            arp_min_flaps: 2.0,
            syn_flood_pps: 200.0,
            syn_flood_min_syn_only_ratio: 0.9,
            syn_flood_min_half_open_ratio: 0.5,
            flood_max_ports: 100.0,
            flood_many_sources: 20.0,
            flood_max_targets: 5.0,
            udp_flood_pps: 800.0,
            icmp_flood_pps: 200.0,
            dns_min_queries: 10.0,
            dns_long_subdomain: 30.0,
            dns_high_entropy_share: 0.3,
            dns_min_null: 5.0,
            dns_txt_share: 0.5,
            dns_txt_min_subdomain: 20.0,
            slowloris_min_conns: 30.0,
            slowloris_max_ports: 3.0,
            slowloris_max_bytes_per_conn: 1000.0,
            slowloris_max_response_share: 0.2,
        }
    }
}

fn min_count(rate: f64, floor: f64, secs: f64) -> f64 {
    floor.max(rate * secs)
}

/// Evaluates every rule of the window's view.
pub fn evaluate(w: &WindowRecord, t: &RuleThresholds) -> Vec<RuleHit> {
    let f = |name: &str| w.features.get(name).copied().flatten();
    let n = |name: &str| f(name).unwrap_or(0.0);
    let d = w.window_size.max(1) as f64;
    let mut hits = Vec::new();
    let mut hit = |rule: &'static str, class: &'static str, evidence: serde_json::Value| {
        hits.push(RuleHit { rule, class, evidence })
    };
    match w.view {
        View::Source => {
            // SSH password guessing: Zeek's SSH::password_guesses_limit is 30 per 30 min over
            // inferred failed logins; windows see connections, so the rule asks for a sustained
            // rate of new SSH sessions instead: connection attempts to port 22, or sessions with
            // an SSH server on any port (the service is what it speaks: `SSH-2.0-...`).
            let ssh = n("ssh_connection_attempts").max(n("ssh_sessions_opened"));
            let need = min_count(t.ssh_attempts_per_min / 60.0, t.ssh_min_attempts, d);
            if ssh >= need {
                hit(
                    "ssh_guessing",
                    "ssh_brute",
                    json!({"ssh_connection_attempts": n("ssh_connection_attempts"),
                    "ssh_sessions_opened": n("ssh_sessions_opened"), "threshold": need,
                    "per_min": ssh * 60.0 / d, "distinct_targets": n("unique_dst_ips")}),
                );
            }
            // Port scan (Zeek scan.zeek: 15 distinct ports within 5 min, counting attempts
            // whatever their flags): many ports of few hosts, and the probes show it: left
            // half-open (SYN scans, closed ports of connect() scans), without SYN or ACK
            // (NULL/FIN/Xmas), or refused with RSTs (ACK/window/Maimon scans answer that way
            // even on open ports).
            let ports = n("unique_dst_ports");
            let targets = n("unique_dst_ips").max(1.0);
            let half_open = n("half_open_count");
            let nosyn = n("tcp_nosyn_noack_count");
            let refused = n("tcp_refused_ports");
            let probes = half_open.max(nosyn).max(refused);
            if ports >= t.scan_min_ports
                && ports / targets >= t.scan_min_ports_per_target
                && probes >= t.scan_min_probes
            {
                hit(
                    "port_scan",
                    "port_scan",
                    json!({"unique_dst_ports": ports, "unique_dst_ips": targets, "half_open_count": half_open,
                    "tcp_nosyn_noack_count": nosyn, "tcp_refused_ports": refused,
                    "sequential_port_count": n("sequential_port_count"), "threshold_ports": t.scan_min_ports,
                    "threshold_probes": t.scan_min_probes}),
                );
            }
            // UDP port scan: many UDP ports of few hosts that never answer (closed ports answer
            // with ICMP port unreachable, which hosts rate-limit, so silence is what counts).
            let udp_ports = n("udp_dest_port_count");
            let unanswered = n("udp_unanswered_ports");
            if unanswered >= t.udp_scan_min_unanswered && udp_ports / targets >= t.scan_min_ports_per_target {
                hit(
                    "udp_port_scan",
                    "port_scan",
                    json!({"udp_dest_port_count": udp_ports, "udp_unanswered_ports": unanswered,
                    "unique_dst_ips": targets, "icmp_unreachable_received_count": n("icmp_unreachable_received_count"),
                    "threshold_unanswered": t.udp_scan_min_unanswered}),
                );
            }
            // ARP: unsolicited replies (Slips "unsolicited ARP"), and the key's IP bouncing
            // between MAC addresses (the poisoner and the true owner answering in turn).
            let unsolicited = n("arp_reply_without_request_count");
            let need = min_count(t.arp_unsolicited_per_s, t.arp_unsolicited_min, d);
            if unsolicited >= need {
                hit(
                    "arp_unsolicited_replies",
                    "arp_spoof",
                    json!({"arp_reply_without_request_count": unsolicited,
                    "threshold": need, "arp_reply_count": n("arp_reply_count")}),
                );
            }
            let flaps = n("arp_binding_flap_count");
            if flaps >= t.arp_min_flaps {
                hit(
                    "arp_binding_flaps",
                    "arp_spoof",
                    json!({"arp_binding_flap_count": flaps,
                    "threshold": t.arp_min_flaps, "unique_macs_per_ip_max": n("unique_macs_per_ip_max")}),
                );
            }
            // Floods sent by the key (not spoofed): high rate, aimed at few hosts and ports (a
            // fast sweep over many ports is a scan).
            let targets = n("unique_dst_ips");
            let syn_rate = n("syn_rate_pps");
            let syn_only = f("syn_only_ratio").unwrap_or(0.0);
            if syn_rate >= t.syn_flood_pps
                && syn_only >= t.syn_flood_min_syn_only_ratio
                && targets <= t.flood_max_targets
                && ports < t.flood_max_ports
            {
                hit(
                    "syn_flood_source",
                    "syn_flood",
                    json!({"syn_rate_pps": syn_rate, "syn_only_ratio": syn_only,
                    "syn_to_synack_ratio": n("syn_to_synack_ratio"), "targets": targets, "threshold_pps": t.syn_flood_pps}),
                );
            }
            let udp_rate = n("udp_rate_pps");
            if udp_rate >= t.udp_flood_pps && targets <= t.flood_max_targets && udp_ports < t.flood_max_ports {
                hit(
                    "udp_flood_source",
                    "udp_flood",
                    json!({"udp_rate_pps": udp_rate, "targets": targets,
                    "threshold_pps": t.udp_flood_pps}),
                );
            }
            // Echo replies are answers (the victim of a ping flood sends them), not a flood.
            let icmp_rate = (n("icmp_count") - n("icmp_echo_reply_count")).max(0.0) / d;
            if icmp_rate >= t.icmp_flood_pps && targets <= t.flood_max_targets {
                hit(
                    "icmp_flood_source",
                    "icmp_flood",
                    json!({"icmp_rate_pps": icmp_rate, "targets": targets,
                    "threshold_pps": t.icmp_flood_pps}),
                );
            }
            // DNS tunnel: long high-entropy names, NULL queries, or mostly-TXT long names.
            let q = n("dns_query_count");
            if q >= t.dns_min_queries {
                let sub = f("avg_subdomain_length").unwrap_or(0.0);
                let high = f("pct_high_entropy_queries").unwrap_or(0.0);
                let null = n("null_record_count");
                let txt = n("txt_record_count");
                let long_random = sub >= t.dns_long_subdomain && high >= t.dns_high_entropy_share;
                let nulls = null >= t.dns_min_null;
                let txt_heavy = txt >= t.dns_txt_share * q && sub >= t.dns_txt_min_subdomain;
                if long_random || nulls || txt_heavy {
                    hit(
                        "dns_tunnel",
                        "dns_tunnel",
                        json!({"dns_query_count": q, "avg_subdomain_length": sub,
                        "max_subdomain_length": f("max_subdomain_length"), "pct_high_entropy_queries": high,
                        "null_record_count": null, "txt_record_count": txt,
                        "long_random_names": long_random, "null_queries": nulls, "txt_heavy": txt_heavy}),
                    );
                }
            }
            // Slowloris / slow HTTP: many connections (distinct TCP source ports:
            // `open_conn_count` groups by destination, so every connection to one server is one
            // group) to one service, each trickling a little data that the server never answers
            // (a chat client's idle connections get an answer to each message, TLS or not).
            let conns = n("tcp_data_conn_count");
            let bpc = if conns > 0.0 { n("byte_count") / conns } else { f64::INFINITY };
            let answers = n("tcp_data_received_count");
            // Established: a SYN flood also opens many connections that carry nothing.
            let established = f("syn_only_ratio").is_some_and(|r| r < 0.5);
            if conns >= t.slowloris_min_conns
                && established
                && ports <= t.slowloris_max_ports
                && bpc <= t.slowloris_max_bytes_per_conn
                && answers <= t.slowloris_max_response_share * conns
            {
                hit(
                    "slowloris",
                    "slowloris",
                    json!({"connections_sending": conns, "bytes_per_connection": bpc, "unique_dst_ports": ports,
                    "tcp_data_received_count": answers, "partial_http_count": n("partial_http_count"),
                    "http_request_count": n("http_request_count"),
                    "http_responses_received": n("http_responses_received"), "avg_conn_duration": f("avg_conn_duration")}),
                );
            }
        }
        View::Destination => {
            // What the victim receives: floods from spoofed or many sources show only here.
            let sources = n("unique_src_ips");
            let ports = n("unique_dst_ports");
            let not_a_sweep = ports < t.flood_max_ports || sources >= t.flood_many_sources;
            let syn = n("syn_in_count");
            let syn_rate = n("syn_in_rate_pps");
            let half_open = n("half_open_count");
            let half_open_ratio = if syn > 0.0 { (half_open / syn).min(1.0) } else { 0.0 };
            if syn_rate >= t.syn_flood_pps && half_open_ratio >= t.syn_flood_min_half_open_ratio && not_a_sweep {
                hit(
                    "syn_flood_victim",
                    "syn_flood",
                    json!({"syn_in_rate_pps": syn_rate, "half_open_count": half_open,
                    "half_open_ratio": half_open_ratio, "unique_src_ips": sources, "threshold_pps": t.syn_flood_pps}),
                );
            }
            let udp_rate = n("udp_rate_pps");
            if udp_rate >= t.udp_flood_pps && not_a_sweep {
                hit(
                    "udp_flood_victim",
                    "udp_flood",
                    json!({"udp_rate_pps": udp_rate, "unique_src_ips": sources,
                    "threshold_pps": t.udp_flood_pps}),
                );
            }
            let icmp_rate = (n("icmp_count") - n("icmp_echo_reply_count")).max(0.0) / d;
            if icmp_rate >= t.icmp_flood_pps {
                hit(
                    "icmp_flood_victim",
                    "icmp_flood",
                    json!({"icmp_rate_pps": icmp_rate, "unique_src_ips": sources,
                    "threshold_pps": t.icmp_flood_pps}),
                );
            }
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(view: View, size: u32, feats: &[(&str, f64)]) -> WindowRecord {
        WindowRecord {
            v: wire::BATCH_FORMAT_VERSION,
            view,
            key: "10.0.0.5".into(),
            window_start: 0,
            window_size: size,
            features: feats.iter().map(|(k, v)| (k.to_string(), Some(*v))).collect(),
        }
    }

    fn fired(w: &WindowRecord) -> Vec<&'static str> {
        evaluate(w, &RuleThresholds::default()).iter().map(|h| h.rule).collect()
    }

    #[test]
    fn each_rule_fires_on_its_attack_and_not_on_quiet_traffic() {
        let t = RuleThresholds::default();
        let quiet = w(
            View::Source,
            5,
            &[
                ("packet_count", 40.0),
                ("tcp_count", 30.0),
                ("tcp_ack_count", 29.0),
                ("unique_dst_ports", 3.0),
                ("ssh_connection_attempts", 1.0),
                ("dns_query_count", 4.0),
                ("avg_subdomain_length", 3.0),
                ("open_conn_count", 4.0),
                ("bytes_per_conn", 5000.0),
            ],
        );
        assert!(evaluate(&quiet, &t).is_empty());
        assert!(fired(&w(View::Destination, 30, &[("syn_in_count", 300.0), ("syn_in_rate_pps", 10.0)])).is_empty());

        assert_eq!(fired(&w(View::Source, 5, &[("ssh_connection_attempts", 12.0)])), ["ssh_guessing"]);
        // 180 s: 30 attempts needed (10/min).
        assert!(fired(&w(View::Source, 180, &[("ssh_connection_attempts", 20.0)])).is_empty());
        assert_eq!(fired(&w(View::Source, 180, &[("ssh_connection_attempts", 30.0)])), ["ssh_guessing"]);
        // sshd on another port: the sessions speak SSH.
        assert_eq!(fired(&w(View::Source, 30, &[("ssh_sessions_opened", 12.0)])), ["ssh_guessing"]);

        assert_eq!(
            fired(&w(
                View::Source,
                5,
                &[
                    ("unique_dst_ports", 200.0),
                    ("unique_dst_ips", 1.0),
                    ("half_open_count", 190.0),
                    ("tcp_count", 200.0),
                    ("tcp_syn_count", 200.0)
                ]
            )),
            ["port_scan"]
        );
        // A server answering many clients (SYN-ACK and ACK to many ports) is no scan.
        assert!(fired(&w(
            View::Source,
            5,
            &[
                ("unique_dst_ports", 200.0),
                ("half_open_count", 0.0),
                ("tcp_count", 900.0),
                ("tcp_syn_count", 200.0),
                ("tcp_ack_count", 900.0)
            ]
        ))
        .is_empty());
        // FIN/NULL/Xmas scan: probes without SYN or ACK.
        let stealth = [("unique_dst_ports", 100.0), ("unique_dst_ips", 1.0), ("tcp_nosyn_noack_count", 100.0)];
        assert_eq!(fired(&w(View::Source, 5, &stealth)), ["port_scan"]);
        // ACK/window scan: no SYN, every probe carries ACK, every port refuses with a RST.
        let ack_scan = [("unique_dst_ports", 300.0), ("unique_dst_ips", 1.0), ("tcp_ack_count", 300.0)];
        assert!(fired(&w(View::Source, 5, &ack_scan)).is_empty());
        assert_eq!(
            fired(&w(View::Source, 5, &[ack_scan.as_slice(), &[("tcp_refused_ports", 290.0)]].concat())),
            ["port_scan"]
        );
        // A BitTorrent client reaching one port on each of many peers, some of them gone (RST):
        // many ports, but not many per host.
        assert!(fired(&w(
            View::Source,
            5,
            &[
                ("unique_dst_ports", 60.0),
                ("unique_dst_ips", 55.0),
                ("tcp_refused_ports", 20.0),
                ("half_open_count", 30.0)
            ]
        ))
        .is_empty());
        // UDP scan: ports that never answer; a DNS client's one answered port is not.
        let udp_scan = [("udp_dest_port_count", 300.0), ("udp_unanswered_ports", 297.0), ("unique_dst_ips", 1.0)];
        assert_eq!(fired(&w(View::Source, 5, &udp_scan)), ["udp_port_scan"]);
        assert!(fired(&w(
            View::Source,
            5,
            &[("udp_dest_port_count", 40.0), ("udp_unanswered_ports", 40.0), ("unique_dst_ips", 40.0)]
        ))
        .is_empty());
        // A masscan UDP burst is fast, but it sweeps ports: a scan, not a flood.
        assert_eq!(
            fired(&w(View::Source, 5, &[udp_scan.as_slice(), &[("udp_rate_pps", 5000.0)]].concat())),
            ["udp_port_scan"]
        );
        assert_eq!(
            fired(&w(View::Source, 5, &[("arp_reply_without_request_count", 4.0)])),
            ["arp_unsolicited_replies"]
        );
        assert!(fired(&w(View::Source, 180, &[("arp_reply_without_request_count", 4.0)])).is_empty());
        assert_eq!(fired(&w(View::Source, 30, &[("arp_binding_flap_count", 3.0)])), ["arp_binding_flaps"]);
        assert_eq!(
            fired(&w(
                View::Source,
                5,
                &[
                    ("syn_rate_pps", 1000.0),
                    ("syn_only_ratio", 1.0),
                    ("unique_dst_ips", 1.0),
                    ("unique_dst_ports", 1.0)
                ]
            )),
            ["syn_flood_source"]
        );
        assert_eq!(
            fired(&w(
                View::Destination,
                5,
                &[
                    ("syn_in_count", 10_000.0),
                    ("syn_in_rate_pps", 2000.0),
                    ("half_open_count", 9_800.0),
                    ("unique_src_ips", 9_600.0),
                    ("unique_dst_ports", 1.0)
                ]
            )),
            ["syn_flood_victim"]
        );
        // The victim of a fast single-source SYN scan sees a sweep, not a flood.
        assert!(fired(&w(
            View::Destination,
            5,
            &[
                ("syn_in_count", 10_000.0),
                ("syn_in_rate_pps", 2000.0),
                ("half_open_count", 9_800.0),
                ("unique_src_ips", 1.0),
                ("unique_dst_ports", 9_000.0)
            ]
        ))
        .is_empty());
        assert_eq!(
            fired(&w(View::Destination, 5, &[("udp_rate_pps", 1250.0), ("unique_src_ips", 1.0)])),
            ["udp_flood_victim"]
        );
        assert_eq!(fired(&w(View::Destination, 30, &[("icmp_count", 30_000.0)])), ["icmp_flood_victim"]);
        assert_eq!(
            fired(&w(View::Source, 30, &[("icmp_count", 30_000.0), ("unique_dst_ips", 1.0)])),
            ["icmp_flood_source"]
        );
        // The flood's victim answering with echo replies, and the pinger receiving them: no flood.
        let replies = [("icmp_count", 30_000.0), ("icmp_echo_reply_count", 30_000.0), ("unique_dst_ips", 1.0)];
        assert!(fired(&w(View::Source, 30, &replies)).is_empty());
        assert!(fired(&w(View::Destination, 30, &replies)).is_empty());
        assert_eq!(
            fired(&w(
                View::Source,
                30,
                &[("udp_rate_pps", 1000.0), ("unique_dst_ips", 1.0), ("udp_dest_port_count", 1.0)]
            )),
            ["udp_flood_source"]
        );
        assert_eq!(
            fired(&w(
                View::Source,
                5,
                &[("dns_query_count", 40.0), ("avg_subdomain_length", 55.0), ("pct_high_entropy_queries", 0.9)]
            )),
            ["dns_tunnel"]
        );
        assert_eq!(
            fired(&w(View::Source, 5, &[("dns_query_count", 40.0), ("null_record_count", 40.0)])),
            ["dns_tunnel"]
        );
        assert_eq!(
            fired(&w(
                View::Source,
                30,
                &[
                    ("tcp_data_conn_count", 400.0),
                    ("syn_only_ratio", 0.1),
                    ("unique_dst_ports", 1.0),
                    ("byte_count", 72_000.0),
                    ("tcp_data_received_count", 0.0)
                ]
            )),
            ["slowloris"]
        );
        // A page load over 40 connections: every one answered.
        let page = [
            ("tcp_src_port_count", 40.0),
            ("syn_only_ratio", 0.1),
            ("unique_dst_ports", 1.0),
            ("byte_count", 30_000.0),
        ];
        assert!(
            fired(&w(View::Source, 5, &[page.as_slice(), &[("http_responses_received", 40.0)]].concat())).is_empty()
        );
        let hits = evaluate(&w(View::Source, 5, &[("ssh_connection_attempts", 12.0)]), &t);
        assert_eq!(hits[0].class, "ssh_brute");
        assert_eq!(hits[0].evidence["ssh_connection_attempts"], 12.0);
        for (rule, class, _) in RULES {
            assert!(crate::model::CLASSES.contains(&class), "{rule}");
        }
    }
}
