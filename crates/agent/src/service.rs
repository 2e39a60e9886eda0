//! The agent as a service: capture thread + publisher task, wired to NATS.

use anyhow::Result;
use bus::streams::StreamLimits;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use crate::config::AgentConfig;

use crate::capture::{run_capture, CaptureSummary};
use crate::publisher::{run_publisher, PublishSummary};
use crate::queue::SendQueue;
use crate::source::{LiveOptions, Source};

#[derive(Debug, Clone)]
pub enum Input {
    Live(LiveOptions),
    File { path: PathBuf, realtime: bool },
}

#[derive(Debug, Clone, Default)]
pub struct AgentSummary {
    pub agent_id: String,
    pub boot_id: String,
    pub capture: CaptureSummary,
    pub publish: PublishSummary,
    /// Records dropped because the send queue was full (or unsent at shutdown).
    pub dropped_records: u64,
}

/// A host-unique default agent id: the host name, made subject-safe.
pub fn default_agent_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "agent".into());
    sanitize_agent_id(host.trim())
}

/// Agent ids become a subject token and part of message ids: keep `[A-Za-z0-9_-]`, and at most
/// [`wire::limits::MAX_ID_LEN`] of them (consumers reject batches with a longer id).
pub fn sanitize_agent_id(id: &str) -> String {
    let s: String = id
        .chars()
        .take(wire::limits::MAX_ID_LEN)
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    if s.is_empty() {
        "agent".into()
    } else {
        s
    }
}

/// Captures and publishes until the input ends (file: everything acknowledged) or `shutdown`
/// resolves (live: queued batches get `drain_grace` to be published).
pub async fn run(cfg: AgentConfig, shutdown: impl Future<Output = ()> + Send) -> Result<AgentSummary> {
    let agent_id = sanitize_agent_id(&cfg.agent_id);
    let boot_id = format!("{:016x}", rand::random::<u64>());
    let (mut source, realtime) = match cfg.input()? {
        Input::Live(opts) => (Source::open_live(&opts)?, false),
        Input::File { path, realtime } => (Source::open_file(&path)?, realtime),
    };
    tracing::info!(agent_id, boot_id, interface = %source.interface, linktype = source.linktype, "agent starting");

    // Capture starts before NATS is reachable: the queue absorbs the wait.
    let queue = Arc::new(SendQueue::new(cfg.queue_max_bytes()));
    let stop = Arc::new(AtomicBool::new(false));
    // Stopping the capture: the flag its loop checks, and a wake-up for a live read waiting on
    // a quiet interface.
    let stop_capture = {
        let (stop, waker) = (stop.clone(), source.waker().map(Arc::new));
        move || {
            stop.store(true, Ordering::Relaxed);
            if let Some(w) = &waker {
                w.breakloop();
            }
        }
    };
    let capture = {
        let (queue, stop, agent_id, boot_id, policy) =
            (queue.clone(), stop.clone(), agent_id.clone(), boot_id.clone(), cfg.batch_policy());
        std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || run_capture(source, &agent_id, &boot_id, policy, realtime, &queue, &stop))?
    };

    let client = bus::connect(&cfg.nats, &format!("nta-agent-{agent_id}")).await?;
    let js = async_nats::jetstream::new(client);
    let stop_signal = {
        let stop_capture = stop_capture.clone();
        async move {
            shutdown.await;
            stop_capture();
        }
    };
    tokio::pin!(stop_signal);
    let publish = tokio::select! {
        r = ensure_stream(&js, &cfg.stream_limits) => {
            r?;
            run_publisher(
                js,
                bus::packets_subject(&agent_id),
                queue.clone(),
                cfg.max_pending_acks.max(1),
                &mut stop_signal,
                cfg.drain_grace(),
            )
            .await
        }
        _ = &mut stop_signal => {
            tracing::warn!("stopped before NATS was reachable");
            PublishSummary::default()
        }
    };
    stop_capture();
    let capture = tokio::task::spawn_blocking(move || capture.join())
        .await?
        .map_err(|_| anyhow::anyhow!("capture thread panicked"))??;
    // Only now, with the capture thread gone, is the queue final: its last partial batch may
    // have arrived after the publisher gave up.
    let lost = queue.drain_dropped();
    if lost > 0 {
        tracing::warn!(records = lost, "unsent batches dropped at shutdown");
    }
    tracing::info!(?capture, ?publish, "agent finished");
    Ok(AgentSummary { agent_id, boot_id, capture, publish, dropped_records: queue.dropped_records() })
}

/// Creates the stream, retrying while NATS is unreachable (capture keeps queueing meanwhile).
/// A stream configured differently by the operator is kept as is.
async fn ensure_stream(js: &async_nats::jetstream::Context, limits: &StreamLimits) -> Result<()> {
    let mut delay = Duration::from_millis(200);
    loop {
        match bus::streams::ensure_packets_stream(js, limits).await {
            Ok(_) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot create stream {} yet; retrying", bus::PACKETS_STREAM);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_ids_are_subject_safe_and_bounded() {
        assert_eq!(sanitize_agent_id("host.example com"), "host_example_com");
        assert_eq!(sanitize_agent_id(""), "agent");
        let long = sanitize_agent_id(&"é".repeat(500));
        assert_eq!(long, "_".repeat(wire::limits::MAX_ID_LEN));
        let mut b = wire::PacketBatch::new(long, format!("{:016x}", u64::MAX), 0);
        b.records.clear();
        assert_eq!(b.validate(), Ok(()));
    }
}
