//! The relay of the alert-event outbox (`alert_events`) to JetStream `NTA_ALERTS`: every event
//! committed by a predictor batch, a quiet-alert close or a dashboard resolution is published
//! with `Nats-Msg-Id: nta-alert-event-<row id>`, and marked published only after JetStream
//! acknowledged it, in the transaction that holds the relay lock. A crash after the publish
//! re-publishes the rows it had not marked, which JetStream drops as duplicates.

use anyhow::{anyhow, Context, Result};
use async_nats::jetstream;
use tracing::warn;

use super::metrics as m;

/// Rows taken per transaction (the lock is held while they are published).
const BATCH: i64 = 256;

/// Publishes every unpublished event; returns how many went out. Stops at the first failure
/// (the rest waits for the next call, in order). Another replica holding the lock publishes
/// them instead: this returns 0.
pub async fn relay(client: &mut tokio_postgres::Client, js: &jetstream::Context) -> Result<usize> {
    relay_with(client, js, &bus::Failpoint::default()).await
}

/// [`relay`] with the crash-test hook [`super::AFTER_ALERT_PUBLISH`] (acknowledged by JetStream,
/// not yet marked).
pub(super) async fn relay_with(
    client: &mut tokio_postgres::Client,
    js: &jetstream::Context,
    failpoint: &bus::Failpoint,
) -> Result<usize> {
    let mut total = 0;
    loop {
        let tx = client.transaction().await.context("starting the relay transaction")?;
        let Some((pending, undecodable)) = store::alert_events::take_unpublished(&tx, BATCH).await? else {
            return Ok(total);
        };
        if !undecodable.is_empty() {
            // Written by an older or foreign writer: counted and skipped, never retried forever.
            ::metrics::counter!(m::ALERT_EVENTS_MALFORMED_TOTAL).increment(undecodable.len() as u64);
            warn!(rows = ?undecodable, "alert_events rows that do not decode; marked and skipped");
        }
        let mut acks = Vec::with_capacity(pending.len());
        for p in &pending {
            match send(js, p).await {
                Ok(ack) => acks.push((p.id, ack)),
                Err(e) => {
                    ::metrics::counter!(m::ALERT_PUBLISH_ERRORS_TOTAL).increment(1);
                    warn!(error = format!("{e:#}"), event = p.id, "alert event not published; retried later");
                    break;
                }
            }
        }
        let mut done = undecodable;
        let mut failed = acks.len() < pending.len();
        for (id, ack) in acks {
            if failed {
                break;
            }
            match ack.await {
                Ok(a) => {
                    if a.duplicate {
                        ::metrics::counter!(m::ALERT_EVENTS_DUPLICATE_TOTAL).increment(1);
                    }
                    done.push(id);
                }
                Err(e) => {
                    ::metrics::counter!(m::ALERT_PUBLISH_ERRORS_TOTAL).increment(1);
                    warn!(error = %e, event = id, "alert event not acknowledged by JetStream; retried later");
                    failed = true;
                }
            }
        }
        let sent = done.len();
        if sent > 0 {
            failpoint.hit(super::AFTER_ALERT_PUBLISH);
        }
        store::alert_events::mark_published(&tx, &done).await?;
        tx.commit().await.context("committing published alert events")?;
        ::metrics::counter!(m::ALERT_EVENTS_PUBLISHED_TOTAL).increment(sent as u64);
        total += sent;
        if failed || (pending.len() as i64) < BATCH {
            return Ok(total);
        }
    }
}

async fn send(
    js: &jetstream::Context,
    p: &store::alert_events::Pending,
) -> Result<jetstream::context::PublishAckFuture> {
    let body = serde_json::to_vec(&p.event).context("encoding an alert event")?;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, bus::alert_event_msg_id(p.id).as_str());
    js.publish_with_headers(bus::alert_subject(&p.event.class), headers, body.into()).await.map_err(|e| anyhow!(e))
}
