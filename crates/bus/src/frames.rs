//! Reading `NTA_FRAMES` for exports: a scan of the batches' headers (capture-time span and size,
//! no bodies) from a store time on, then the bodies of the batches wanted, one by one by
//! sequence, so that a short range of a long stream downloads only its part.

use anyhow::{anyhow, Context, Result};
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use std::time::Duration;

use crate::subjects::{
    FRAMES_LINKTYPE_HEADER, FRAMES_STREAM, FRAMES_SUBJECT_PREFIX, FRAMES_TS_MAX_HEADER, FRAMES_TS_MIN_HEADER,
};

/// One stored frame batch as its headers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRef {
    pub seq: u64,
    /// Agent id (the last token of `nta.frames.<agent_id>`).
    pub agent: String,
    /// Smallest and largest capture time of its frames (epoch ns).
    pub ts_min: i64,
    pub ts_max: i64,
    /// Body size in bytes.
    pub size: u64,
    /// Link type of its frames, if the header says (the body always does).
    pub linktype: Option<i32>,
}

/// What `NTA_FRAMES` holds when an export starts.
#[derive(Debug, Clone)]
pub struct FramesState {
    pub messages: u64,
    pub bytes: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Store time (epoch ns) of the oldest message kept.
    pub first_stored_ns: i64,
    pub max_age: Duration,
    pub max_bytes: i64,
}

/// The frames stream; `None` when it does not exist (no agent has kept frames yet).
pub async fn frames_stream(js: &jetstream::Context) -> Result<Option<(stream::Stream, FramesState)>> {
    let mut s = match js.get_stream(FRAMES_STREAM).await {
        Ok(s) => s,
        Err(e)
            if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(ref j)
            if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(anyhow!("looking up {FRAMES_STREAM}: {e}")),
    };
    let info = s.info().await.with_context(|| format!("reading {FRAMES_STREAM} info"))?;
    let state = FramesState {
        messages: info.state.messages,
        bytes: info.state.bytes,
        first_seq: info.state.first_sequence,
        last_seq: info.state.last_sequence,
        first_stored_ns: info.state.first_timestamp.unix_timestamp_nanos() as i64,
        max_age: info.config.max_age,
        max_bytes: info.config.max_bytes,
    };
    Ok(Some((s, state)))
}

/// Scans the headers of the batches of `agent` (all agents: `None`) stored at or after
/// `stored_from_ns` (epoch ns), up to sequence `last_seq` (what the stream held when the export
/// started: batches arriving meanwhile are not waited for). `progress` gets the count so far.
pub async fn scan_headers(
    stream: &stream::Stream,
    agent: Option<&str>,
    stored_from_ns: i64,
    last_seq: u64,
    mut progress: impl FnMut(u64),
) -> Result<Vec<BatchRef>> {
    let start_time = time::OffsetDateTime::from_unix_timestamp_nanos(stored_from_ns as i128)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let filter = format!("{FRAMES_SUBJECT_PREFIX}.{}", agent.unwrap_or(">"));
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: filter,
            deliver_policy: consumer::DeliverPolicy::ByStartTime { start_time },
            ack_policy: consumer::AckPolicy::None,
            headers_only: true,
            inactive_threshold: Duration::from_secs(60),
            memory_storage: true,
            description: Some("nta export-pcap header scan".into()),
            ..Default::default()
        })
        .await
        .context("creating the header scan consumer on NTA_FRAMES")?;
    let mut out = Vec::new();
    if consumer.cached_info().num_pending == 0 {
        return Ok(out);
    }
    let mut messages = consumer.messages().await.context("scanning NTA_FRAMES")?;
    while let Some(m) = messages.next().await {
        let m = m.map_err(|e| anyhow!("scanning NTA_FRAMES: {e}"))?;
        let info = m.info().map_err(|e| anyhow!("scanning NTA_FRAMES: {e}"))?;
        let (seq, pending) = (info.stream_sequence, info.pending);
        if seq > last_seq {
            break;
        }
        if let Some(r) = batch_ref(seq, &m.subject, m.headers.as_ref()) {
            out.push(r);
        }
        progress(out.len() as u64);
        if pending == 0 || seq == last_seq {
            break;
        }
    }
    Ok(out)
}

/// A batch from its subject and headers; `None` for a message without the span headers (not
/// an agent's frame batch: skipped rather than trusted).
fn batch_ref(seq: u64, subject: &str, headers: Option<&async_nats::HeaderMap>) -> Option<BatchRef> {
    let h = headers?;
    let num = |name: &str| h.get(name).and_then(|v| v.as_str().parse::<i64>().ok());
    let agent = subject.strip_prefix(FRAMES_SUBJECT_PREFIX)?.strip_prefix('.')?.to_string();
    Some(BatchRef {
        seq,
        agent,
        ts_min: num(FRAMES_TS_MIN_HEADER)?,
        ts_max: num(FRAMES_TS_MAX_HEADER)?,
        // A headers-only delivery names the body's size in `Nats-Msg-Size`.
        size: num("Nats-Msg-Size").unwrap_or(0).max(0) as u64,
        linktype: num(FRAMES_LINKTYPE_HEADER).and_then(|l| i32::try_from(l).ok()),
    })
}

/// The body of batch `seq`; `None` when it aged out since the scan.
pub async fn fetch_body(stream: &stream::Stream, seq: u64) -> Result<Option<bytes::Bytes>> {
    match stream.get_raw_message(seq).await {
        Ok(m) => Ok(Some(m.payload)),
        Err(e) if gone(&e.kind()) => Ok(None),
        Err(e) => Err(anyhow!("reading message {seq} of {FRAMES_STREAM}: {e}")),
    }
}

fn gone(kind: &stream::RawMessageErrorKind) -> bool {
    match kind {
        stream::RawMessageErrorKind::NoMessageFound => true,
        stream::RawMessageErrorKind::JetStream(e) => e.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND,
        _ => false,
    }
}

/// A JetStream context for an export (a command or a request: fails after `timeout` instead of
/// waiting for NATS as the roles do).
pub async fn connect(nats: &crate::Nats, client_name: &str, timeout: Duration) -> Result<Js> {
    let client = tokio::time::timeout(timeout, crate::connect(nats, client_name))
        .await
        .with_context(|| format!("NATS at {} not reachable", nats.redacted_url()))??;
    Ok(jetstream::new(client))
}

/// The JetStream context and the stream handle exports work with.
pub type Js = jetstream::Context;
pub type FramesStream = stream::Stream;

/// Capture-time span of batch `seq` from its headers (`None` if it is gone or has none).
pub async fn batch_span(stream: &stream::Stream, seq: u64) -> Result<Option<(i64, i64)>> {
    match stream.get_raw_message(seq).await {
        Ok(m) => Ok(batch_ref(seq, &m.subject, Some(&m.headers)).map(|r| (r.ts_min, r.ts_max))),
        Err(e) if gone(&e.kind()) => Ok(None),
        Err(e) => Err(anyhow!("reading message {seq} of {FRAMES_STREAM}: {e}")),
    }
}
