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
        // Port 0: the exporter would pick one it cannot tell; pick it here so the log names it.
        Some(addr) if addr.port() == 0 => install_ephemeral(addr.ip(), None)?,
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
    let e = anyhow::Error::new(e);
    let addr = install_ephemeral(default.ip(), Some(&e)).with_context(|| format!("serving metrics on {default}"))?;
    tracing::warn!(default = %default, metrics_addr = %addr, error = %format!("{e:#}"),
        "default metrics address unavailable (another NTA process of this role?); serving metrics on \
         an ephemeral port instead (set metrics_addr to choose one)");
    Ok(addr)
}

/// Serves on a free port of `ip`, found by binding port 0: it may be taken again before the
/// exporter binds it, hence a few tries.
fn install_ephemeral(ip: std::net::IpAddr, first: Option<&anyhow::Error>) -> Result<SocketAddr> {
    let mut last = first.map(|e| format!("{e:#}"));
    for _ in 0..5 {
        let addr = SocketAddr::new(ip, std::net::TcpListener::bind((ip, 0))?.local_addr()?.port());
        match build(addr).install() {
            Ok(()) => return Ok(addr),
            Err(e) => last = Some(e.to_string()),
        }
    }
    anyhow::bail!("serving metrics on an ephemeral port of {ip}: {}", last.unwrap_or_default())
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
