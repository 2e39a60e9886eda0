//! Publishes queued batches to JetStream with a bounded window of outstanding PubAcks.
//!
//! Waiting for each PubAck before sending the next batch would cap throughput at one batch per
//! round trip; instead up to `window` publications are in flight. A failed or timed-out
//! publication goes back to the head of the queue and is retried with exponential backoff.
//! Retrying is safe: the `Nats-Msg-Id` makes JetStream drop a copy it already stored.

use async_nats::jetstream::{self, message::PublishMessage};
use futures::stream::{FuturesUnordered, StreamExt};
use metrics::{counter, gauge};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::queue::{Outgoing, SendQueue};

#[derive(Debug, Default, Clone, Copy)]
pub struct PublishSummary {
    pub batches_acked: u64,
    pub records_acked: u64,
    pub duplicates: u64,
}

type InFlight = Pin<Box<dyn Future<Output = (Outgoing, Result<jetstream::publish::PublishAck, String>)> + Send>>;

fn publish_one(js: jetstream::Context, subject: String, item: Outgoing) -> InFlight {
    Box::pin(async move {
        let msg = PublishMessage::build().payload(item.payload.clone()).message_id(&item.msg_id);
        let res = match js.send_publish(subject, msg).await {
            Ok(ack) => ack.await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        (item, res)
    })
}

/// Runs until the queue is closed and everything in it is acknowledged, or until `deadline`
/// passes after `stop` resolved (live capture shutting down).
pub async fn run_publisher(
    js: jetstream::Context,
    subject: String,
    queue: Arc<SendQueue>,
    window: usize,
    stop: impl Future<Output = ()>,
    drain_grace: Duration,
) -> PublishSummary {
    let mut summary = PublishSummary::default();
    let mut inflight: FuturesUnordered<InFlight> = FuturesUnordered::new();
    let mut backoff = Duration::ZERO;
    let mut retry_at: Option<Instant> = None;
    let mut give_up_at: Option<Instant> = None;
    tokio::pin!(stop);
    let mut stopped = false;

    loop {
        let may_send = retry_at.is_none_or(|t| Instant::now() >= t);
        if may_send {
            retry_at = None;
            while inflight.len() < window {
                let Some(item) = queue.pop() else { break };
                counter!("nta_agent_batches_published_total").increment(1);
                inflight.push(publish_one(js.clone(), subject.clone(), item));
            }
        }
        gauge!("nta_agent_pending_acks").set(inflight.len() as f64);
        if inflight.is_empty() && queue.is_empty() && queue.is_closed() {
            break;
        }
        if let Some(t) = give_up_at {
            if Instant::now() >= t {
                // What is still queued is counted as dropped by the caller, once capture ended.
                tracing::warn!(in_flight = inflight.len(), "shutdown grace over; giving up on unsent batches");
                break;
            }
        }
        let wake = retry_at.or(give_up_at);
        tokio::select! {
            Some((item, res)) = inflight.next(), if !inflight.is_empty() => match res {
                Ok(ack) => {
                    backoff = Duration::ZERO;
                    summary.batches_acked += 1;
                    summary.records_acked += item.records as u64;
                    counter!("nta_agent_batches_acked_total").increment(1);
                    counter!("nta_agent_records_acked_total").increment(item.records as u64);
                    if ack.duplicate {
                        summary.duplicates += 1;
                        counter!("nta_agent_batches_duplicate_total").increment(1);
                    }
                }
                Err(e) => {
                    counter!("nta_agent_publish_errors_total").increment(1);
                    backoff = (backoff * 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
                    tracing::warn!(batch = %item.msg_id, error = %e, retry_in = ?backoff, "publish failed");
                    retry_at = Some(Instant::now() + backoff);
                    queue.requeue(item);
                }
            },
            _ = queue.changed(), if may_send && inflight.len() < window => {}
            _ = async { tokio::time::sleep_until(wake.unwrap()).await }, if wake.is_some() => {}
            _ = &mut stop, if !stopped => {
                stopped = true;
                give_up_at = Some(Instant::now() + drain_grace);
            }
        }
    }
    gauge!("nta_agent_pending_acks").set(0.0);
    summary
}
