//! Poison messages: copied to `nta.deadletter` (stream NTA_DEADLETTER) with the reason and the
//! original subject in headers, then terminated, so they never stall the predictor.

use anyhow::Result;
use async_nats::jetstream;

use super::metrics::DEADLETTER_TOTAL;

pub(crate) async fn dead_letter(js: &jetstream::Context, msg: &jetstream::Message, reason: &str) -> Result<()> {
    let reason = wire::deadletter::dead_letter(js, msg, reason, "predictor").await.map_err(anyhow::Error::msg)?;
    metrics::counter!(DEADLETTER_TOTAL).increment(1);
    tracing::warn!(subject = %msg.subject, reason = %reason, "window message dead-lettered");
    Ok(())
}
