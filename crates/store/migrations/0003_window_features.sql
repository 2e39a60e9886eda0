-- Closed windows, one row per (view, key, window_start, window_size): the identity, one
-- column per feature of the original's aggregated_features (the 63 names of the seed reference,
-- section 3.5; NULL where the windower reports the feature undefined), `extra` for any further
-- features the windower emits (a JSON object name -> number or null; NULL when there are none).
CREATE TABLE window_features (
    view         text        NOT NULL CHECK (view IN ('source', 'destination')),
    key          text        NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    window_size  integer     NOT NULL CHECK (window_size > 0),
    -- Generic
    packet_count double precision,
    packet_rate_pps double precision,
    byte_count double precision,
    byte_rate_bps double precision,
    avg_packet_size double precision,
    packet_size_variance double precision,
    tcp_count double precision,
    udp_count double precision,
    icmp_count double precision,
    arp_count double precision,
    unique_dst_ips double precision,
    unique_dst_ports double precision,
    -- TCP / DDoS / scan
    tcp_syn_count double precision,
    tcp_ack_count double precision,
    syn_rate_pps double precision,
    syn_ack_rate_pps double precision,
    syn_to_synack_ratio double precision,
    half_open_count double precision,
    sequential_port_count double precision,
    scan_rate_pps double precision,
    distinct_targets_count double precision,
    syn_only_ratio double precision,
    icmp_rate_pps double precision,
    udp_rate_pps double precision,
    udp_dest_port_count double precision,
    -- Brute force
    ssh_connection_attempts double precision,
    ftp_connection_attempts double precision,
    http_login_attempts double precision,
    login_request_rate double precision,
    failed_login_count double precision,
    auth_attempts_per_min double precision,
    -- ARP
    arp_request_count double precision,
    arp_reply_count double precision,
    gratuitous_arp_count double precision,
    arp_binding_flap_count double precision,
    arp_reply_without_request_count double precision,
    unique_macs_per_ip_max double precision,
    avg_macs_per_ip double precision,
    duplicate_mac_ips double precision,
    mac_ip_ratio double precision,
    suspicious_mac_changes double precision,
    -- DNS
    dns_query_count double precision,
    query_rate_qps double precision,
    unique_qnames_count double precision,
    avg_subdomain_entropy double precision,
    pct_high_entropy_queries double precision,
    txt_record_count double precision,
    avg_answer_size double precision,
    distinct_record_types double precision,
    avg_query_interval_ms double precision,
    avg_subdomain_length double precision,
    max_subdomain_length double precision,
    avg_label_count double precision,
    dns_to_udp_ratio double precision,
    udp_port_53_count double precision,
    -- Slowloris
    open_conn_count double precision,
    avg_conn_duration double precision,
    bytes_per_conn double precision,
    partial_http_count double precision,
    request_completion_ratio double precision,
    -- Port categories
    tcp_ports_hit double precision,
    udp_ports_hit double precision,
    remote_conn_port_hits double precision,
    extra        jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (view, key, window_start, window_size)
);
CREATE INDEX window_features_size_key_start ON window_features (window_size, key, window_start);
CREATE INDEX window_features_start ON window_features (window_start);

-- Progress of each windower durable consumer, written in the same transaction as the windows:
-- per size (5, 30, 180 s) every window ending at or before closed_through_* (epoch seconds) is
-- stored and published, and every NTA_PACKETS message before replay_seq is fully accounted for.
CREATE TABLE windower_checkpoint (
    durable            text        PRIMARY KEY,
    closed_through_5   bigint      NOT NULL,
    closed_through_30  bigint      NOT NULL,
    closed_through_180 bigint      NOT NULL,
    replay_seq         bigint      NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
