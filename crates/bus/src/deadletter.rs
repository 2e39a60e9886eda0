//! Poison messages, the same way in every consumer: the message is copied to
//! `nta.deadletter` (stream `NTA_DEADLETTER`, kept for inspection and replay) with the reason,
//! the original subject and the consumer in headers, and only then terminated, so it never
//! stalls a consumer and is never lost.

use async_nats::jetstream::{self, AckKind};
use async_nats::HeaderMap;
use std::time::Duration;

use crate::subjects::{
    DEADLETTER_CONSUMER_HEADER, DEADLETTER_REASON_HEADER, DEADLETTER_SUBJECT, DEADLETTER_SUBJECT_HEADER,
};

/// Copies `msg` to the dead-letter subject (waiting for the PubAck), then terminates it.
/// Returns the sanitised reason that was recorded.
pub async fn dead_letter(
    js: &jetstream::Context,
    msg: &jetstream::Message,
    reason: &str,
    consumer: &str,
) -> Result<String, String> {
    // Terminate only once the copy is stored: a lost dead letter would be lost data.
    let reason = copy(js, msg, reason, consumer).await?;
    msg.ack_with(AckKind::Term).await.map_err(|e| format!("terminating message: {e}"))?;
    Ok(reason)
}

/// Copies `msg` to the dead-letter subject (waiting for the PubAck) without settling it: for a
/// consumer that gave up on part of a message (one output of the notifier) and still has to
/// finish the rest. Returns the sanitised reason that was recorded.
pub async fn copy(
    js: &jetstream::Context,
    msg: &jetstream::Message,
    reason: &str,
    consumer: &str,
) -> Result<String, String> {
    let mut headers = HeaderMap::new();
    // Header values cannot hold line breaks; reasons come from error messages.
    let reason: String = reason.chars().map(|c| if c.is_control() { ' ' } else { c }).take(1000).collect();
    headers.insert(DEADLETTER_REASON_HEADER, reason.as_str());
    headers.insert(DEADLETTER_SUBJECT_HEADER, msg.subject.as_str());
    headers.insert(DEADLETTER_CONSUMER_HEADER, consumer);
    js.publish_with_headers(DEADLETTER_SUBJECT, headers, msg.payload.clone())
        .await
        .map_err(|e| format!("publishing dead letter: {e}"))?
        .await
        .map_err(|e| format!("dead letter not acknowledged by JetStream: {e}"))?;
    Ok(reason)
}

/// A role's handling of a message it can never process: dead-letter it and count it in
/// `counter`, or, when even that fails, ask for a redelivery after `retry_after` so nothing is
/// lost.
pub async fn poison(
    js: &jetstream::Context,
    msg: &jetstream::Message,
    reason: &str,
    consumer: &str,
    counter: &'static str,
    retry_after: Duration,
) {
    match dead_letter(js, msg, reason, consumer).await {
        Ok(reason) => {
            metrics::counter!(counter).increment(1);
            tracing::warn!(subject = %msg.subject, reason = %reason, consumer, "message dead-lettered");
        }
        Err(e) => {
            tracing::error!(error = %e, consumer, "cannot dead-letter message; it will be redelivered");
            let _ = msg.ack_with(AckKind::Nak(Some(retry_after))).await;
        }
    }
}
