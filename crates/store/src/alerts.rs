//! `alerts` and `alert_windows`: one open alert per (view, key, class), opened or extended by
//! the predictor's batches, closed after a quiet period, resolved by an operator. Every change
//! records its [`AlertEvent`] in the outbox ([`crate::alert_events`]) in the same transaction
//! and returns it.

use anyhow::{Context, Result};
use std::collections::BTreeSet;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row, Transaction};
use wire::alert::{severity, severity_sql, summary};
use wire::{AlertEvent, View};

/// What the windows of one batch add to the alert of one (view, key, class).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertDelta {
    pub first_seen: i64,
    pub last_seen: i64,
    pub window_count: i64,
    pub peak_confidence: f64,
    pub by_model: bool,
    pub by_rule: bool,
    pub packets: [i64; 3],
    pub bytes: [i64; 3],
    pub distinct_sources: Option<i64>,
    pub evidence: serde_json::Map<String, serde_json::Value>,
    pub rules: BTreeSet<String>,
    /// (window_start, window_size) of the windows.
    pub windows: Vec<(i64, i32)>,
    /// Every window only sustains: extend the open alert, never open one.
    pub extend_only: bool,
}

impl AlertDelta {
    pub fn detected_by(&self) -> &'static str {
        match (self.by_model, self.by_rule) {
            (true, true) => "both",
            (false, true) => "rule",
            _ => "model",
        }
    }
}

pub type AlertKey = (View, String, String);

/// Columns of an alert, in the order [`event_from_row`] reads them.
const EVENT_COLS: &str = "id, view, key, class, state, severity, detected_by,
    extract(epoch FROM first_seen)::float8, extract(epoch FROM last_seen)::float8, window_count::int8,
    peak_confidence, packets, bytes, distinct_sources::int8, summary";

fn event_from_row(r: &Row, event: &str) -> AlertEvent {
    event_from_row_offset(r, 0, event)
}

fn upsert_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let sum = |c: &str| format!("{c} = a.{c} + EXCLUDED.{c}");
        let greatest = |c: &str| {
            format!("GREATEST(a.{c}_5 + EXCLUDED.{c}_5, a.{c}_30 + EXCLUDED.{c}_30, a.{c}_180 + EXCLUDED.{c}_180)")
        };
        format!(
            "INSERT INTO alerts AS a (view, key, class, severity, detected_by, first_seen, last_seen, window_count,
                 peak_confidence, packets, bytes, packets_5, bytes_5, packets_30, bytes_30, packets_180, bytes_180,
                 distinct_sources, summary, evidence, model_version, rules)
             VALUES ($1, $2, $3, $4, $5, to_timestamp($6), to_timestamp($7), $8, $9,
                 GREATEST($10::int8, $12::int8, $14::int8), GREATEST($11::int8, $13::int8, $15::int8),
                 $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
             ON CONFLICT (view, key, class) WHERE state = 'open' DO UPDATE SET
                 first_seen = LEAST(a.first_seen, EXCLUDED.first_seen),
                 last_seen = GREATEST(a.last_seen, EXCLUDED.last_seen),
                 {window_count},
                 peak_confidence = GREATEST(a.peak_confidence, EXCLUDED.peak_confidence),
                 severity = {severity},
                 detected_by = CASE WHEN a.detected_by = EXCLUDED.detected_by THEN a.detected_by ELSE 'both' END,
                 {p5}, {b5}, {p30}, {b30}, {p180}, {b180},
                 packets = {packets},
                 bytes = {bytes},
                 distinct_sources = GREATEST(a.distinct_sources, EXCLUDED.distinct_sources),
                 evidence = a.evidence || EXCLUDED.evidence,
                 model_version = COALESCE(EXCLUDED.model_version, a.model_version),
                 rules = ARRAY(SELECT DISTINCT x FROM unnest(a.rules || EXCLUDED.rules) AS u(x) ORDER BY x),
                 updated_at = now()
             RETURNING (xmax = 0), {EVENT_COLS}",
            window_count = sum("window_count"),
            severity = severity_sql("GREATEST(a.peak_confidence, EXCLUDED.peak_confidence)"),
            p5 = sum("packets_5"),
            b5 = sum("bytes_5"),
            p30 = sum("packets_30"),
            b30 = sum("bytes_30"),
            p180 = sum("packets_180"),
            b180 = sum("bytes_180"),
            packets = greatest("packets"),
            bytes = greatest("bytes"),
        )
    })
}

/// Closes the open alert of `k` if its last window ended more than the quiet period before
/// `first_seen` (event time: the attack stopped and started again).
async fn close_if_gap(tx: &Transaction<'_>, k: &AlertKey, first_seen: i64, quiet_secs: f64) -> Result<Vec<AlertEvent>> {
    let rows = tx
        .query(
            &format!(
                "UPDATE alerts SET state = 'closed', closed_at = now(), updated_at = now()
                 WHERE state = 'open' AND view = $1 AND key = $2 AND class = $3
                   AND last_seen < to_timestamp($4) - make_interval(secs => $5)
                 RETURNING {EVENT_COLS}"
            ),
            &[&k.0.as_str(), &k.1, &k.2, &(first_seen as f64), &quiet_secs],
        )
        .await
        .context("closing an alert after an event-time gap")?;
    Ok(rows.iter().map(|r| event_from_row(r, "closed")).collect())
}

/// Whether the alert of `k` is open (after [`close_if_gap`] closed a stale one).
async fn is_open(tx: &Transaction<'_>, k: &AlertKey) -> Result<bool> {
    let row = tx
        .query_opt(
            "SELECT 1 FROM alerts WHERE state = 'open' AND view = $1 AND key = $2 AND class = $3 LIMIT 1",
            &[&k.0.as_str(), &k.1, &k.2],
        )
        .await
        .context("looking up an open alert")?;
    Ok(row.is_some())
}

/// Opens or extends the alert of every key (in key order, so concurrent replicas lock rows in
/// the same order), records its windows; returns the events to publish after commit.
pub async fn apply_alerts(
    tx: &Transaction<'_>,
    deltas: &std::collections::BTreeMap<AlertKey, AlertDelta>,
    model_version: Option<&str>,
    quiet_secs: f64,
) -> Result<Vec<AlertEvent>> {
    let mut events = Vec::new();
    for (k, d) in deltas {
        events.extend(close_if_gap(tx, k, d.first_seen, quiet_secs).await?);
        if d.extend_only && !is_open(tx, k).await? {
            continue;
        }
        let summary_text = summary(k.0, &k.1, &k.2, d.distinct_sources);
        let rules: Vec<&str> = d.rules.iter().map(String::as_str).collect();
        let evidence = serde_json::Value::Object(d.evidence.clone());
        let distinct = d.distinct_sources.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        let window_count = i32::try_from(d.window_count).unwrap_or(i32::MAX);
        // The model version is recorded when the model took part.
        let mv = if d.by_model { model_version } else { None };
        let params: [&(dyn ToSql + Sync); 20] = [
            &k.0.as_str(),
            &k.1,
            &k.2,
            &severity(d.peak_confidence),
            &d.detected_by(),
            &(d.first_seen as f64),
            &(d.last_seen as f64),
            &window_count,
            &d.peak_confidence,
            &d.packets[0],
            &d.bytes[0],
            &d.packets[1],
            &d.bytes[1],
            &d.packets[2],
            &d.bytes[2],
            &distinct,
            &summary_text,
            &evidence,
            &mv,
            &rules,
        ];
        let row = tx.query_one(upsert_sql(), &params).await.context("upserting an alert")?;
        let inserted: bool = row.get(0);
        // Columns after the `inserted` flag.
        let mut ev = event_from_row_offset(&row, 1, if inserted { "opened" } else { "updated" });
        let want = summary(k.0, &k.1, &k.2, ev.distinct_sources);
        if want != ev.summary {
            tx.execute("UPDATE alerts SET summary = $2 WHERE id = $1", &[&ev.id, &want]).await?;
            ev.summary = want;
        }
        let starts: Vec<i64> = d.windows.iter().map(|w| w.0).collect();
        let sizes: Vec<i32> = d.windows.iter().map(|w| w.1).collect();
        tx.execute(
            "INSERT INTO alert_windows (alert_id, view, key, window_start, window_size)
             SELECT $1, $2, $3, to_timestamp(s), z FROM unnest($4::int8[], $5::int4[]) AS t(s, z)
             ON CONFLICT DO NOTHING",
            &[&ev.id, &k.0.as_str(), &k.1, &starts, &sizes],
        )
        .await
        .context("recording alert windows")?;
        events.push(ev);
    }
    crate::alert_events::record(tx, &events).await?;
    Ok(events)
}

/// Reads the [`EVENT_COLS`] starting at column `o`.
fn event_from_row_offset(r: &Row, o: usize, event: &str) -> AlertEvent {
    let view: String = r.get(o + 1);
    AlertEvent {
        id: r.get(o),
        event: event.to_string(),
        view: if view == "destination" { View::Destination } else { View::Source },
        key: r.get(o + 2),
        class: r.get(o + 3),
        state: r.get(o + 4),
        severity: r.get(o + 5),
        detected_by: r.get(o + 6),
        first_seen: r.get(o + 7),
        last_seen: r.get(o + 8),
        window_count: r.get(o + 9),
        peak_confidence: r.get(o + 10),
        packets: r.get(o + 11),
        bytes: r.get(o + 12),
        distinct_sources: r.get(o + 13),
        summary: r.get(o + 14),
        event_id: None,
    }
}

/// Closes the open alerts no window extended for `quiet_secs` of processing time.
pub async fn close_quiet(client: &mut impl GenericClient, quiet_secs: f64) -> Result<Vec<AlertEvent>> {
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            &format!(
                "UPDATE alerts SET state = 'closed', closed_at = now(), updated_at = now()
                 WHERE state = 'open' AND updated_at < now() - make_interval(secs => $1)
                 RETURNING {EVENT_COLS}"
            ),
            &[&quiet_secs],
        )
        .await
        .context("closing quiet alerts")?;
    let events: Vec<AlertEvent> = rows.iter().map(|r| event_from_row(r, "closed")).collect();
    crate::alert_events::record(&tx, &events).await?;
    tx.commit().await.context("committing closed alerts")?;
    Ok(events)
}

/// Marks an open alert resolved (operator action); false if it is not open (or absent).
pub async fn resolve_alert(client: &mut impl GenericClient, id: i64) -> Result<bool> {
    Ok(resolve_alert_event(client, id).await?.is_some())
}

/// Like [`resolve_alert`], returning the `resolved` event (recorded in the outbox).
pub async fn resolve_alert_event(client: &mut impl GenericClient, id: i64) -> Result<Option<AlertEvent>> {
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            &format!(
                "UPDATE alerts SET state = 'resolved', resolved_at = now(), updated_at = now()
                 WHERE id = $1 AND state = 'open' RETURNING {EVENT_COLS}"
            ),
            &[&id],
        )
        .await
        .context("resolving an alert")?;
    let event = row.map(|r| event_from_row(&r, "resolved"));
    crate::alert_events::record(&tx, event.as_slice()).await?;
    tx.commit().await.context("committing a resolution")?;
    Ok(event)
}

/// One line of [`most_severe`].
#[derive(Debug, Clone)]
pub struct AlertLine {
    pub severity: String,
    pub class: String,
    pub detected_by: String,
    pub summary: String,
    pub window_count: i32,
    pub peak_confidence: f64,
}

/// Up to `limit` alerts, most severe first, then most recent.
pub async fn most_severe(client: &impl GenericClient, limit: i64) -> Result<Vec<AlertLine>> {
    let rows = client
        .query(
            "SELECT severity, class, detected_by, summary, window_count, peak_confidence FROM alerts
             ORDER BY CASE severity WHEN 'CRITICAL' THEN 0 WHEN 'HIGH' THEN 1 WHEN 'MEDIUM' THEN 2 ELSE 3 END,
                      last_seen DESC LIMIT $1",
            &[&limit],
        )
        .await
        .context("reading alerts")?;
    Ok(rows
        .iter()
        .map(|r| AlertLine {
            severity: r.get(0),
            class: r.get(1),
            detected_by: r.get(2),
            summary: r.get(3),
            window_count: r.get(4),
            peak_confidence: r.get(5),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn upsert_statement_is_well_formed() {
        let sql = super::upsert_sql();
        assert!(sql.contains("packets_180 = a.packets_180 + EXCLUDED.packets_180"));
        assert!(sql.contains("WHEN GREATEST(a.peak_confidence, EXCLUDED.peak_confidence) >= 0.7 THEN 'HIGH'"));
    }
}

/// What a pcap export of an alert needs: the alert's key (an address: the source, or for the
/// destination view the victim) and the span of its windows in epoch nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSpan {
    pub view: String,
    pub key: String,
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
}

/// The span of alert `id`; `None` when there is no such alert.
pub async fn alert_span(client: &impl GenericClient, id: i64) -> Result<Option<AlertSpan>> {
    let row = client
        .query_opt(
            "SELECT view, key, (extract(epoch FROM first_seen) * 1e6)::int8,
                    (extract(epoch FROM last_seen) * 1e6)::int8
               FROM alerts WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| AlertSpan {
        view: r.get(0),
        key: r.get(1),
        // timestamptz has microseconds.
        first_seen_ns: r.get::<_, i64>(2) * 1000,
        last_seen_ns: r.get::<_, i64>(3) * 1000,
    }))
}
