//! Names of the window features: the keys of [`WindowRecord::features`](crate::WindowRecord)
//! that the windower fills and the predictor, the trainer and the `window_features` table read.
//! The definitions are tabulated in `crates/windower/FEATURES.md`.

use crate::View;

/// The source view's 63 features inherited from the original analyzer, with its names and in
/// its table order.
pub const ORIGINAL_FEATURES: [&str; 63] = [
    "packet_count",
    "packet_rate_pps",
    "byte_count",
    "byte_rate_bps",
    "avg_packet_size",
    "packet_size_variance",
    "tcp_count",
    "udp_count",
    "icmp_count",
    "arp_count",
    "unique_dst_ips",
    "unique_dst_ports",
    "tcp_ports_hit",
    "udp_ports_hit",
    "remote_conn_port_hits",
    "tcp_syn_count",
    "tcp_ack_count",
    "syn_rate_pps",
    "syn_ack_rate_pps",
    "syn_to_synack_ratio",
    "half_open_count",
    "sequential_port_count",
    "scan_rate_pps",
    "distinct_targets_count",
    "syn_only_ratio",
    "icmp_rate_pps",
    "udp_rate_pps",
    "udp_dest_port_count",
    "ssh_connection_attempts",
    "ftp_connection_attempts",
    "http_login_attempts",
    "login_request_rate",
    "failed_login_count",
    "auth_attempts_per_min",
    "arp_request_count",
    "arp_reply_count",
    "gratuitous_arp_count",
    "arp_binding_flap_count",
    "unique_macs_per_ip_max",
    "avg_macs_per_ip",
    "suspicious_mac_changes",
    "duplicate_mac_ips",
    "mac_ip_ratio",
    "arp_reply_without_request_count",
    "udp_port_53_count",
    "dns_query_count",
    "query_rate_qps",
    "unique_qnames_count",
    "avg_subdomain_entropy",
    "pct_high_entropy_queries",
    "avg_subdomain_length",
    "max_subdomain_length",
    "avg_label_count",
    "txt_record_count",
    "distinct_record_types",
    "avg_answer_size",
    "avg_query_interval_ms",
    "dns_to_udp_ratio",
    "open_conn_count",
    "avg_conn_duration",
    "partial_http_count",
    "bytes_per_conn",
    "request_completion_ratio",
];

/// Source-view features beyond the original's 63.
pub const EXTRA_SOURCE_FEATURES: [&str; 21] = [
    "tcp_synack_count",
    "tcp_rst_count",
    "tcp_fin_count",
    "unique_src_ports",
    "null_record_count",
    "http_request_count",
    "http_response_count",
    "dns_responses_received",
    "http_responses_received",
    "tcp_synack_received_count",
    "tcp_rst_received_count",
    "tcp_refused_ports",
    "icmp_unreachable_received_count",
    "udp_unanswered_ports",
    "tcp_nosyn_noack_count",
    "tcp_conns_without_syn",
    "icmp_echo_reply_count",
    "tcp_src_port_count",
    "ssh_sessions_opened",
    "tcp_data_conn_count",
    "tcp_data_received_count",
];

/// Destination-view features (key = dst_ip; traffic received by the key).
pub const DESTINATION_FEATURES: [&str; 17] = [
    "packet_count",
    "packet_rate_pps",
    "byte_count",
    "byte_rate_bps",
    "avg_packet_size",
    "tcp_count",
    "udp_count",
    "icmp_count",
    "udp_rate_pps",
    "icmp_rate_pps",
    "syn_in_count",
    "syn_in_rate_pps",
    "unique_src_ips",
    "src_ip_diversity",
    "unique_dst_ports",
    "half_open_count",
    "icmp_echo_reply_count",
];

/// Every feature a window of `view` carries, in order: [`ORIGINAL_FEATURES`] then
/// [`EXTRA_SOURCE_FEATURES`] for the source view, [`DESTINATION_FEATURES`] for the destination
/// view.
pub fn names(view: View) -> impl Iterator<Item = &'static str> {
    let (a, b): (&'static [&'static str], &'static [&'static str]) = match view {
        View::Source => (&ORIGINAL_FEATURES, &EXTRA_SOURCE_FEATURES),
        View::Destination => (&DESTINATION_FEATURES, &[]),
    };
    a.iter().chain(b).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_distinct_per_view() {
        for view in [View::Source, View::Destination] {
            let all: Vec<&str> = names(view).collect();
            let distinct: HashSet<&str> = all.iter().copied().collect();
            assert_eq!(all.len(), distinct.len(), "{view:?}");
        }
        assert_eq!(names(View::Source).count(), 84);
        assert_eq!(names(View::Destination).count(), 17);
    }
}
