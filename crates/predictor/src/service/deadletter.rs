//! Poison messages: copied to `nta.deadletter` (stream NTA_DEADLETTER) with the reason and the
//! original subject in headers, then terminated, so they never stall the predictor.

use anyhow::{Context, Result};
use async_nats::jetstream::{self, AckKind};
use async_nats::HeaderMap;

use super::metrics::DEADLETTER_TOTAL;

pub(crate) async fn dead_letter(js: &jetstream::Context, msg: &jetstream::Message, reason: &str) -> Result<()> {
    let mut headers = HeaderMap::new();
    // Header values cannot hold line breaks; reasons come from error messages.
    let reason: String = reason.chars().map(|c| if c.is_control() { ' ' } else { c }).take(1000).collect();
    headers.insert(wire::DEADLETTER_REASON_HEADER, reason.as_str());
    headers.insert(wire::DEADLETTER_SUBJECT_HEADER, msg.subject.as_str());
    headers.insert("Nta-Deadletter-Consumer", "predictor");
    // Terminate only once the copy is stored: a lost dead letter would be a lost window.
    js.publish_with_headers(wire::DEADLETTER_SUBJECT, headers, msg.payload.clone())
        .await
        .context("publishing dead letter")?
        .await
        .context("dead letter not acknowledged by JetStream")?;
    msg.ack_with(AckKind::Term).await.map_err(|e| anyhow::anyhow!("terminating message: {e}"))?;
    metrics::counter!(DEADLETTER_TOTAL).increment(1);
    tracing::warn!(subject = %msg.subject, reason = %reason, "window message dead-lettered");
    Ok(())
}
