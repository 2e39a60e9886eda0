//! Poison messages: copied to `nta.deadletter` (kept by the NTA_DEADLETTER stream for
//! inspection and replay) and then terminated, so they never block the consumer.

use anyhow::Result;
use async_nats::jetstream;

use crate::metrics::DEADLETTER_TOTAL;

pub(crate) async fn dead_letter(js: &jetstream::Context, msg: &jetstream::Message, reason: &str) -> Result<()> {
    let reason = wire::deadletter::dead_letter(js, msg, reason, "ingestor").await.map_err(anyhow::Error::msg)?;
    metrics::counter!(DEADLETTER_TOTAL).increment(1);
    tracing::warn!(subject = %msg.subject, reason = %reason, "message dead-lettered");
    Ok(())
}
