//! The 63 feature columns of `window_features`: the names of
//! [`wire::features::ORIGINAL_FEATURES`] (the original analyzer's `aggregated_features` table),
//! in this table's column order. Any other feature goes to `extra`.

pub const FEATURE_COLUMNS: [&str; 63] = [
    // Generic
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
    // TCP / DDoS / scan
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
    // Brute force
    "ssh_connection_attempts",
    "ftp_connection_attempts",
    "http_login_attempts",
    "login_request_rate",
    "failed_login_count",
    "auth_attempts_per_min",
    // ARP
    "arp_request_count",
    "arp_reply_count",
    "gratuitous_arp_count",
    "arp_binding_flap_count",
    "arp_reply_without_request_count",
    "unique_macs_per_ip_max",
    "avg_macs_per_ip",
    "duplicate_mac_ips",
    "mac_ip_ratio",
    "suspicious_mac_changes",
    // DNS
    "dns_query_count",
    "query_rate_qps",
    "unique_qnames_count",
    "avg_subdomain_entropy",
    "pct_high_entropy_queries",
    "txt_record_count",
    "avg_answer_size",
    "distinct_record_types",
    "avg_query_interval_ms",
    "avg_subdomain_length",
    "max_subdomain_length",
    "avg_label_count",
    "dns_to_udp_ratio",
    "udp_port_53_count",
    // Slowloris
    "open_conn_count",
    "avg_conn_duration",
    "bytes_per_conn",
    "partial_http_count",
    "request_completion_ratio",
    // Port categories
    "tcp_ports_hit",
    "udp_ports_hit",
    "remote_conn_port_hits",
];

#[cfg(test)]
mod tests {
    #[test]
    fn columns_are_the_original_features() {
        let mut columns = super::FEATURE_COLUMNS.to_vec();
        let mut names = wire::features::ORIGINAL_FEATURES.to_vec();
        columns.sort_unstable();
        names.sort_unstable();
        assert_eq!(columns, names);
    }
}
