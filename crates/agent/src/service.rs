//! The agent as a service: capture thread + publisher task, wired to NATS.

use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use crate::config::AgentConfig;

use crate::capture::{run_capture, CaptureSummary, FrameSink};
use crate::publisher::{run_publisher, PublishOptions, PublishSummary};
use crate::queue::{SendQueue, FRAME_METRICS, PUBLISH_ERROR, SHUTDOWN};
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
    /// Records dropped: the send queue full, the stream full, unsent at shutdown...
    pub dropped_records: u64,
    /// The same by reason (`queue_full`, `stream_full`, `shutdown`, `publish_error`).
    pub dropped_by_reason: BTreeMap<&'static str, u64>,
    /// The frames kept for exports; `None` with `--frame-bytes 0`.
    pub frames: Option<FramesSummary>,
}

/// `role` label of `nta_ready` and of the start-up log lines.
const ROLE: &str = "agent";

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

/// What happened to the frames kept for pcap exports (`NTA_FRAMES`).
#[derive(Debug, Clone, Default)]
pub struct FramesSummary {
    pub publish: PublishSummary,
    /// Frames dropped (queue full, unsent at shutdown...), by reason.
    pub dropped_by_reason: BTreeMap<&'static str, u64>,
    pub dropped: u64,
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
    let frame_bytes = cfg.frames_kept();
    let frames_queue =
        frame_bytes.map(|_| Arc::new(SendQueue::with_metrics(cfg.frames_queue_max_bytes(), &FRAME_METRICS)));
    crate::metrics::register(frames_queue.as_ref().map(|_| &FRAME_METRICS));
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
        let (queue, frames_queue, stop, agent_id, boot_id, policy) =
            (queue.clone(), frames_queue.clone(), stop.clone(), agent_id.clone(), boot_id.clone(), cfg.batch_policy());
        std::thread::Builder::new().name("capture".into()).spawn(move || {
            let sink = frames_queue.as_deref().map(|q| FrameSink { queue: q, frame_bytes: frame_bytes.flatten() });
            run_capture(source, &agent_id, &boot_id, policy, realtime, &queue, sink, &stop)
        })?
    };

    // Both publishers see the stop request (a watch: a future can be awaited by one only).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            if rx.wait_for(|s| *s).await.is_err() {
                // No stop can come any more: never resolve.
                std::future::pending::<()>().await;
            }
        }
    };
    let stop_signal = {
        let stop_capture = stop_capture.clone();
        async move {
            shutdown.await;
            stop_capture();
            let _ = stop_tx.send(true);
        }
    };
    tokio::pin!(stop_signal);
    bus::startup::set_ready(ROLE, false);
    let client_name = format!("nta-agent-{agent_id}");
    let opts = |refusals| PublishOptions {
        window: cfg.max_pending_acks,
        drain_grace: cfg.drain_grace(),
        stop_on_permanent: cfg.read.is_some(),
        refusals,
    };
    let connect = bus::startup::connect_streams(
        &cfg.nats,
        &client_name,
        ROLE,
        &[bus::startup::Want::Packets],
        &cfg.stream_limits,
    );
    let packets = tokio::select! {
        r = connect => match r {
            Ok(c) => Some(c),
            Err(e) => {
                stop_capture();
                return Err(e);
            }
        },
        _ = &mut stop_signal => {
            tracing::warn!("stopped before NATS was reachable");
            None
        }
    };
    let (publish, frames_publish) = match packets {
        Some(packets) => {
            bus::startup::set_ready(ROLE, true);
            let packets_run = run_publisher(
                packets.js,
                bus::packets_subject(&agent_id),
                queue.clone(),
                opts(packets.refusals),
                stopped(),
            );
            // Frames travel on a connection of their own (their volume never queues packet
            // batches behind it in one socket), and a frames stream that cannot be had costs the
            // frames only: they are dropped, counted and warned about, and the packets go on.
            let frames_run = async {
                let q = frames_queue.as_ref()?;
                let connected = async {
                    let name = format!("{client_name}-frames");
                    let c = bus::startup::connect_streams(&cfg.nats, &name, ROLE, &[], &cfg.stream_limits).await?;
                    bus::startup::ensure_frames(&c.js, &cfg.nats, ROLE, &cfg.frame_limits).await?;
                    anyhow::Ok(c)
                };
                let connected = tokio::select! {
                    c = connected => c,
                    _ = stopped() => {
                        q.refuse(SHUTDOWN);
                        return None;
                    }
                };
                match connected {
                    Ok(c) => Some(
                        run_publisher(c.js, bus::frames_subject(&agent_id), q.clone(), opts(c.refusals), stopped())
                            .await,
                    ),
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "no {}: captured frames are not kept", bus::FRAMES_STREAM);
                        q.refuse(PUBLISH_ERROR);
                        None
                    }
                }
            };
            // The publishers drain for `drain_grace` once the stop signal (still polled here)
            // tells them to.
            let both = async { tokio::join!(packets_run, frames_run) };
            tokio::pin!(both);
            let mut signalled = false;
            loop {
                tokio::select! {
                    r = &mut both => break r,
                    _ = &mut stop_signal, if !signalled => signalled = true,
                }
            }
        }
        None => (PublishSummary::default(), None),
    };
    stop_capture();
    let capture = tokio::task::spawn_blocking(move || capture.join())
        .await?
        .map_err(|_| anyhow::anyhow!("capture thread panicked"))??;
    // Only now, with the capture thread gone, is the queue final: its last partial batch may
    // have arrived after the publisher gave up.
    let reason = publish.gave_up.unwrap_or(SHUTDOWN);
    let lost = queue.drain_dropped(reason);
    if lost > 0 {
        tracing::warn!(records = lost, reason, "unsent batches dropped");
    }
    let dropped_by_reason = queue.dropped_by_reason();
    let dropped_records = queue.dropped_records();
    if dropped_records > 0 {
        tracing::warn!(records = dropped_records, by_reason = ?dropped_by_reason, "records dropped");
    }
    let frames = frames_queue.map(|q| {
        let publish = frames_publish.unwrap_or_default();
        let lost = q.drain_dropped(publish.gave_up.unwrap_or(SHUTDOWN));
        if lost > 0 {
            tracing::warn!(frames = lost, "unsent frame batches dropped");
        }
        let s = FramesSummary { publish, dropped_by_reason: q.dropped_by_reason(), dropped: q.dropped_records() };
        if s.dropped > 0 {
            tracing::warn!(frames = s.dropped, by_reason = ?s.dropped_by_reason, "frames dropped ({})", bus::FRAMES_STREAM);
        }
        s
    });
    tracing::info!(
        frames = capture.frames,
        decoded = capture.decoded,
        malformed = capture.malformed,
        batches_acked = publish.batches_acked,
        records_acked = publish.records_acked,
        duplicates = publish.duplicates,
        records_dropped = dropped_records,
        frames_kept = frames.as_ref().map(|f| f.publish.records_acked),
        frames_dropped = frames.as_ref().map(|f| f.dropped),
        file_error = capture.file_error.as_deref(),
        "agent finished"
    );
    if let Some(fatal) = &publish.fatal {
        bail!(
            "{fatal}; the replay stopped: {} records acknowledged, {dropped_records} not published",
            publish.records_acked
        );
    }
    if let Some(fatal) = frames.as_ref().and_then(|f| f.publish.fatal.as_ref()) {
        // Packets are the agent's job; frames it could not keep are counted, not fatal.
        tracing::error!("{fatal}; frames were not all kept on {}", bus::FRAMES_STREAM);
    }
    Ok(AgentSummary { agent_id, boot_id, capture, publish, dropped_records, dropped_by_reason, frames })
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
