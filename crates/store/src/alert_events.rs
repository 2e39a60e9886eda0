//! `alert_events`: the outbox of alert events. [`record`] runs in the transaction that changes
//! the alerts, so an event exists exactly when its change was committed; the predictor's relay
//! takes the unpublished rows ([`take_unpublished`]), publishes them to `NTA_ALERTS` and marks
//! them ([`mark_published`]) in the same transaction, which holds an advisory lock: one relay at
//! a time across replicas, so events leave in the order they were committed per alert and no
//! two replicas publish the same row (a crash after the publish re-publishes it with the same
//! id, which JetStream drops).

use anyhow::{Context, Result};
use tokio_postgres::{GenericClient, Transaction};
use wire::AlertEvent;

/// Advisory lock of the relay ("NTA_ALEV").
const RELAY_LOCK_KEY: i64 = 0x4e54_415f_414c_4556;

/// Adds `events` to the outbox (inside the caller's transaction).
pub async fn record(client: &impl GenericClient, events: &[AlertEvent]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut alert_ids = Vec::with_capacity(events.len());
    let mut kinds = Vec::with_capacity(events.len());
    let mut classes = Vec::with_capacity(events.len());
    let mut bodies = Vec::with_capacity(events.len());
    for e in events {
        alert_ids.push(e.id);
        kinds.push(e.event.as_str());
        classes.push(e.class.as_str());
        bodies.push(serde_json::to_value(e).context("encoding an alert event")?);
    }
    client
        .execute(
            "INSERT INTO alert_events (alert_id, event, class, body)
             SELECT a, e, c, b FROM unnest($1::int8[], $2::text[], $3::text[], $4::jsonb[]) WITH ORDINALITY AS t(a, e, c, b, o)
             ORDER BY o",
            &[&alert_ids, &kinds, &classes, &bodies],
        )
        .await
        .context("recording alert events")?;
    Ok(())
}

/// An outbox row to publish: its id (the event id) and the event with `event_id` set.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: i64,
    pub event: AlertEvent,
}

/// Takes the relay lock and up to `limit` unpublished events in id order; `None` when another
/// relay holds the lock (it publishes them). Rows whose body no longer decodes are returned
/// separately so the caller counts them; they are marked like published ones.
pub async fn take_unpublished(tx: &Transaction<'_>, limit: i64) -> Result<Option<(Vec<Pending>, Vec<i64>)>> {
    let locked: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&RELAY_LOCK_KEY])
        .await
        .context("taking the alert relay lock")?
        .get(0);
    if !locked {
        return Ok(None);
    }
    let rows = tx
        .query("SELECT id, body FROM alert_events WHERE published_at IS NULL ORDER BY id LIMIT $1", &[&limit])
        .await
        .context("reading unpublished alert events")?;
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for r in rows {
        let id: i64 = r.get(0);
        match serde_json::from_value::<AlertEvent>(r.get(1)) {
            Ok(mut event) => {
                event.event_id = Some(id);
                ok.push(Pending { id, event });
            }
            Err(_) => bad.push(id),
        }
    }
    Ok(Some((ok, bad)))
}

/// Marks `ids` published.
pub async fn mark_published(tx: &Transaction<'_>, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    tx.execute("UPDATE alert_events SET published_at = now() WHERE id = ANY($1)", &[&ids])
        .await
        .context("marking alert events published")?;
    Ok(())
}

/// Events not yet published (for metrics and tests).
pub async fn unpublished_count(client: &impl GenericClient) -> Result<i64> {
    Ok(client
        .query_one("SELECT count(*) FROM alert_events WHERE published_at IS NULL", &[])
        .await
        .context("counting unpublished alert events")?
        .get(0))
}
