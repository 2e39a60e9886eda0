//! Prometheus exposition for every role (`--metrics-addr`).

use anyhow::{Context, Result};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use std::net::SocketAddr;

/// Installs the global recorder and serves `/metrics` on `configured`, or else on `default`
/// if it is free and on an ephemeral port of the same host if not (a second process of the
/// same role on one host), with a warning naming it. Returns the address served. Must run
/// inside the runtime.
pub fn install(configured: Option<SocketAddr>, default: SocketAddr) -> Result<SocketAddr> {
    let addr = match configured {
        Some(addr) => {
            build(addr).install().with_context(|| format!("serving metrics on {addr}"))?;
            addr
        }
        None => install_default(default)?,
    };
    describe();
    Ok(addr)
}

fn install_default(default: SocketAddr) -> Result<SocketAddr> {
    // The exporter binds before it installs anything, so a refused bind can be retried.
    let Err(e) = build(default).install() else { return Ok(default) };
    let mut last = anyhow::Error::new(e);
    // A free port found by binding port 0 may be taken again before the exporter binds it.
    for _ in 0..5 {
        let port = std::net::TcpListener::bind((default.ip(), 0))?.local_addr()?.port();
        let addr = SocketAddr::new(default.ip(), port);
        match build(addr).install() {
            Ok(()) => {
                tracing::warn!(default = %default, metrics_addr = %addr, error = %format!("{last:#}"),
                    "default metrics address unavailable (another NTA process of this role?); serving metrics on \
                     an ephemeral port instead (set metrics_addr to choose one)");
                return Ok(addr);
            }
            Err(e) => last = e.into(),
        }
    }
    Err(last.context(format!("serving metrics on {default} or an ephemeral port")))
}

fn build(addr: SocketAddr) -> PrometheusBuilder {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        // Latencies as real histograms (aggregatable across replicas), not client summaries.
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        )
        .expect("static bucket list")
}

/// Commit the binary was built from (see build.rs).
const GIT_COMMIT: &str = match option_env!("NTA_GIT_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

/// Marks `role` as running in this process: `nta_build_info{version,git_commit,role}` = 1 (which
/// version runs where, and a series per role that exists as long as the process is up).
pub fn role_started(role: &'static str) {
    metrics::gauge!("nta_build_info", "version" => env!("CARGO_PKG_VERSION"), "git_commit" => GIT_COMMIT,
        "role" => role)
    .set(1.0);
    if role == "dashboard" {
        // The dashboard crate counts these where they happen; they exist from start-up at 0 (an
        // increase() over a counter without a sample before the first event stays empty).
        for name in [
            "nta_dashboard_connections_refused_total",
            "nta_dashboard_header_timeouts_total",
            "nta_dashboard_sse_refused_total",
            "nta_dashboard_login_failures_total",
            "nta_dashboard_login_lockouts_total",
            "nta_dashboard_login_refused_total",
            "nta_dashboard_alert_events_malformed_total",
        ] {
            metrics::counter!(name).increment(0);
        }
        for name in ["nta_dashboard_open_connections", "nta_dashboard_sse_clients"] {
            metrics::gauge!(name).increment(0.0);
        }
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, Unit};
    describe_counter!("nta_agent_frames_captured_total", "Frames read from the interface or file");
    describe_counter!("nta_agent_frames_decoded_total", "Frames decoded into records");
    describe_counter!("nta_agent_frames_malformed_total", "Frames skipped because they could not be decoded");
    describe_counter!("nta_agent_fields_truncated_total", "String fields cut to their cap (wire::limits), by field");
    describe_counter!("nta_agent_kernel_dropped_packets_total", "Packets the kernel dropped (libpcap ps_drop)");
    describe_counter!("nta_agent_interface_dropped_packets_total", "Packets the interface dropped (libpcap ps_ifdrop)");
    describe_counter!("nta_agent_batches_published_total", "Batch publications sent to JetStream (retries included)");
    describe_counter!("nta_agent_batches_acked_total", "Batches acknowledged by JetStream");
    describe_counter!("nta_agent_records_acked_total", "Records in batches acknowledged by JetStream");
    describe_counter!("nta_agent_queue_dropped_batches_total", "Batches dropped because the send queue was full");
    describe_counter!("nta_agent_queue_dropped_records_total", "Records dropped because the send queue was full");
    describe_counter!(
        "nta_agent_publish_errors_total",
        "Failed or timed-out publications, by kind (transient, stream_full, permanent)"
    );
    describe_counter!(
        "nta_agent_dropped_records_total",
        "Records never published, by reason (queue_full, stream_full, shutdown, publish_error)"
    );
    describe_gauge!("nta_build_info", "1, with the version, git commit and role of this process as labels");
    describe_gauge!("nta_ready", "1 once the role is connected to what it needs (NATS, streams, PostgreSQL), by role");
    describe_gauge!("nta_agent_queue_bytes", Unit::Bytes, "Bytes waiting in the send queue");
    describe_gauge!("nta_agent_pending_acks", "Publications awaiting their PubAck");
}
