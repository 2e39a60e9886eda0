//! Publishes queued batches to JetStream with a bounded window of outstanding PubAcks.
//!
//! Waiting for each PubAck before sending the next batch would cap throughput at one batch per
//! round trip; instead up to `window` publications are in flight. Retrying is safe: the
//! `Nats-Msg-Id` makes JetStream drop a copy it already stored. What a failure means decides
//! what happens next ([`Failure`]):
//! - transient (timeout, no responders while a server restarts or a cluster elects a leader):
//!   the batch goes back to the head of the queue and is retried with exponential back-off;
//! - stream full (`NTA_PACKETS` refuses new messages, `DiscardPolicy::New`): retried the same
//!   way while the queue has room, its overflow counted as `stream_full`; once the input ended
//!   (replay) or a stop was requested, the rest gets `drain_grace` and is then dropped, counted;
//! - permanent (JetStream out of storage or resources, a batch over the stream's message size,
//!   no stream for the subject, a sealed stream...): a replay stops with the error (nothing
//!   would change by waiting); a live capture logs it and keeps retrying, slowly, since the
//!   operator may fix the server while traffic is being captured.

use async_nats::jetstream::{self, context::PublishError, context::PublishErrorKind, message::PublishMessage};
use async_nats::jetstream::{context::GetStreamByNameErrorKind, ErrorCode};
use futures::stream::{FuturesUnordered, StreamExt};
use metrics::{counter, gauge};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::queue::{Outgoing, SendQueue, PUBLISH_ERROR, SHUTDOWN, STREAM_FULL};

#[derive(Debug, Default, Clone)]
pub struct PublishSummary {
    pub batches_acked: u64,
    pub records_acked: u64,
    pub duplicates: u64,
    /// Set when the publisher stopped with batches left: they are dropped for this reason.
    pub gave_up: Option<&'static str>,
    /// The permanent error that stopped a replay.
    pub fatal: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Publications awaiting their PubAck at once.
    pub window: usize,
    /// After a stop request, or with the input ended and the stream full, how long to keep trying.
    pub drain_grace: Duration,
    /// Stop at the first permanent error (a replay) instead of retrying (live capture).
    pub stop_on_permanent: bool,
    /// Server errors of the connection: a publication outside the agent's permissions only
    /// times out, and the server says why there.
    pub refusals: bus::connect::Refusals,
}

/// What a failed publication means for the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Transient,
    StreamFull,
    Permanent,
}

impl Failure {
    pub(crate) const ALL: [Failure; 3] = [Failure::Transient, Failure::StreamFull, Failure::Permanent];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Failure::Transient => "transient",
            Failure::StreamFull => "stream_full",
            Failure::Permanent => "permanent",
        }
    }
}

/// Classifies a publish error by the JetStream error code in its answer (nats-server answers
/// a full `DiscardPolicy::New` stream with 10077 "maximum bytes/messages exceeded", a server
/// out of storage with 10023 "insufficient resources" or 10047). A missing stream shows as "no
/// responders", the same as a server restarting: see [`confirm_stream_missing`].
pub fn classify(e: &PublishError) -> Failure {
    match e.kind() {
        PublishErrorKind::MaxPayloadExceeded => Failure::Permanent,
        PublishErrorKind::Other => {
            match std::error::Error::source(e).and_then(|s| s.downcast_ref::<jetstream::Error>()) {
                Some(js) => classify_code(js.error_code(), &js.to_string()),
                None => Failure::Transient,
            }
        }
        _ => Failure::Transient,
    }
}

fn classify_code(code: ErrorCode, text: &str) -> Failure {
    if code == ErrorCode::STREAM_STORE_FAILED && text.contains("maximum") && text.contains("exceeded") {
        // "maximum bytes exceeded", "maximum messages exceeded" (per subject too).
        return Failure::StreamFull;
    }
    if bus::startup::cluster_unavailable(code) {
        return Failure::Transient;
    }
    Failure::Permanent
}

/// After "no responders": whether JetStream says that no stream stores `subject` (permanent:
/// `NTA_PACKETS` was deleted or reconfigured) rather than not answering (a restart).
async fn confirm_stream_missing(js: &jetstream::Context, subject: &str) -> bool {
    matches!(js.stream_by_subject(subject).await, Err(e) if e.kind() == GetStreamByNameErrorKind::NotFound)
}

type InFlight = Pin<Box<dyn Future<Output = (Outgoing, Result<jetstream::publish::PublishAck, PublishError>)> + Send>>;

fn publish_one(js: jetstream::Context, subject: String, item: Outgoing) -> InFlight {
    Box::pin(async move {
        let mut msg = PublishMessage::build().payload(item.payload.clone()).message_id(&item.msg_id);
        if let Some(h) = item.frames {
            msg = msg
                .header(bus::FRAMES_TS_MIN_HEADER, h.ts_min.to_string())
                .header(bus::FRAMES_TS_MAX_HEADER, h.ts_max.to_string())
                .header(bus::FRAMES_LINKTYPE_HEADER, h.linktype.to_string());
        }
        let res = match js.send_publish(subject, msg).await {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        (item, res)
    })
}

/// How long publications still in flight get to be confirmed once the publisher gives up.
const SETTLE: Duration = Duration::from_secs(2);

/// Runs until the queue is closed and everything in it is acknowledged, until `drain_grace`
/// passes after `stop` resolved (live capture shutting down) or after the input ended with the
/// stream full, or at a permanent error with `stop_on_permanent`.
pub async fn run_publisher(
    js: jetstream::Context,
    subject: String,
    queue: Arc<SendQueue>,
    opts: PublishOptions,
    stop: impl Future<Output = ()>,
) -> PublishSummary {
    let window = opts.window.max(1);
    let m = queue.metrics;
    let mut summary = PublishSummary::default();
    let mut inflight: FuturesUnordered<InFlight> = FuturesUnordered::new();
    let mut inflight_records = 0usize;
    let mut backoff = Duration::ZERO;
    let mut retry_at: Option<Instant> = None;
    // When the publisher stops trying, and why (what is left is dropped for that reason).
    let mut give_up: Option<(Instant, &'static str)> = None;
    // Since when the stream has refused batches for being full.
    let mut full_since: Option<Instant> = None;
    tokio::pin!(stop);
    let mut stopped = false;

    loop {
        let now = Instant::now();
        let giving_up = give_up.is_some_and(|(t, _)| now >= t);
        if !giving_up && retry_at.is_none_or(|t| now >= t) {
            retry_at = None;
            while inflight.len() < window {
                let Some(item) = queue.pop() else { break };
                if item.is_end_of_input() && !inflight.is_empty() {
                    // Stored before a batch still in flight (one that fails and is retried),
                    // the marker would make the windower close windows that batch belongs to.
                    queue.put_back(item);
                    break;
                }
                counter!(m.published).increment(1);
                inflight_records += item.records;
                inflight.push(publish_one(js.clone(), subject.clone(), item));
            }
        }
        gauge!(m.pending_acks).set(inflight.len() as f64);
        if inflight.is_empty() && queue.is_empty() && queue.is_closed() {
            break;
        }
        if let (true, Some((t, reason))) = (giving_up, give_up) {
            if inflight.is_empty() || now >= t + SETTLE {
                summary.gave_up = Some(reason);
                if !inflight.is_empty() {
                    // Sent but never confirmed: most likely lost with the connection.
                    tracing::warn!(records = inflight_records, "publications unconfirmed when giving up");
                    queue.count_dropped(reason, inflight_records);
                }
                break;
            }
        }
        if give_up.is_none() && full_since.is_some() && queue.is_closed() {
            // No more input and the stream full: waiting longer only delays the exit.
            give_up = Some((now + opts.drain_grace, STREAM_FULL));
        }
        let wake = match give_up {
            Some((t, _)) if giving_up => Some(t + SETTLE),
            Some((t, _)) => Some(retry_at.map_or(t, |r| r.min(t))),
            None => retry_at,
        };
        tokio::select! {
            Some((item, res)) = inflight.next(), if !inflight.is_empty() => {
                inflight_records -= item.records;
                match res {
                    Ok(ack) => {
                        backoff = Duration::ZERO;
                        if full_since.take().is_some() {
                            queue.set_overflow_reason(None);
                            tracing::info!("{} accepts batches again", m.stream);
                        }
                        summary.batches_acked += 1;
                        summary.records_acked += item.records as u64;
                        counter!(m.acked).increment(1);
                        counter!(m.items_acked).increment(item.records as u64);
                        if ack.duplicate {
                            summary.duplicates += 1;
                            counter!(m.duplicates).increment(1);
                        }
                    }
                    Err(e) => {
                        let mut failure = classify(&e);
                        let mut reason = None;
                        if e.kind() == PublishErrorKind::StreamNotFound && confirm_stream_missing(&js, &subject).await {
                            failure = Failure::Permanent;
                            reason = Some(format!(
                                "no JetStream stream stores subject {subject} ({} deleted or reconfigured?)",
                                m.stream
                            ));
                        }
                        if e.kind() == PublishErrorKind::TimedOut {
                            if let Some(denied) = opts.refusals.publish_denied(&subject) {
                                failure = Failure::Permanent;
                                reason = Some(format!("NATS does not let this agent publish to {subject}: {denied}"));
                            }
                        }
                        counter!(m.publish_errors, "kind" => failure.label()).increment(1);
                        let (min, max) = match failure {
                            Failure::Permanent => (Duration::from_secs(1), Duration::from_secs(30)),
                            _ => (Duration::from_millis(100), Duration::from_secs(5)),
                        };
                        backoff = (backoff * 2).clamp(min, max);
                        match failure {
                            Failure::Transient => {
                                tracing::warn!(batch = %item.msg_id, error = %e, retry_in = ?backoff, "publish failed")
                            }
                            Failure::StreamFull => {
                                if full_since.is_none() {
                                    full_since = Some(Instant::now());
                                    queue.set_overflow_reason(Some(STREAM_FULL));
                                    tracing::warn!(error = %e, "{} is full and refuses batches: retrying while the \
                                        send queue has room, then dropping (counted as stream_full)",
                                        m.stream);
                                }
                            }
                            Failure::Permanent if opts.stop_on_permanent => {
                                tracing::error!(batch = %item.msg_id, error = %e, "JetStream refused a batch permanently");
                                summary.fatal.get_or_insert_with(|| {
                                    reason.unwrap_or_else(|| format!("JetStream refused a batch on {subject}: {e}"))
                                });
                                give_up = Some((Instant::now(), PUBLISH_ERROR));
                            }
                            Failure::Permanent => tracing::error!(batch = %item.msg_id, error = %e, retry_in = ?backoff,
                                "JetStream refused a batch; retrying until the server is fixed"),
                        }
                        retry_at = Some(Instant::now() + backoff);
                        queue.requeue(item);
                    }
                }
            }
            _ = queue.changed(), if !giving_up && retry_at.is_none() && inflight.len() < window => {}
            _ = async { tokio::time::sleep_until(wake.unwrap()).await }, if wake.is_some() => {}
            _ = &mut stop, if !stopped => {
                stopped = true;
                let reason = if full_since.is_some() { STREAM_FULL } else { SHUTDOWN };
                let t = Instant::now() + opts.drain_grace;
                give_up = Some(give_up.map_or((t, reason), |g| if g.0 <= t { g } else { (t, reason) }));
            }
        }
    }
    gauge!(m.pending_acks).set(0.0);
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_classified() {
        let full = classify_code(ErrorCode::STREAM_STORE_FAILED, "maximum bytes exceeded (code 503, error code 10077)");
        assert_eq!(full, Failure::StreamFull);
        assert_eq!(classify_code(ErrorCode::STREAM_STORE_FAILED, "maximum messages exceeded"), Failure::StreamFull);
        assert_eq!(classify_code(ErrorCode::STREAM_STORE_FAILED, "input/output error"), Failure::Permanent);
        assert_eq!(classify_code(ErrorCode::INSUFFICIENT_RESOURCES, "insufficient resources"), Failure::Permanent);
        assert_eq!(
            classify_code(ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM, "message size exceeds"),
            Failure::Permanent
        );
        assert_eq!(
            classify_code(ErrorCode::CLUSTER_NOT_AVAILABLE, "JetStream system temporarily unavailable"),
            Failure::Transient
        );
        assert_eq!(classify(&PublishError::new(PublishErrorKind::TimedOut)), Failure::Transient);
        assert_eq!(classify(&PublishError::new(PublishErrorKind::MaxPayloadExceeded)), Failure::Permanent);
    }
}
