//! PostgreSQL side of the predictor: versioned migrations (own ledger table), the idempotent
//! prediction insert, alert upserts, the quiet-period closer and operator resolution.

use anyhow::{Context, Result};
use std::collections::HashSet;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, Row, Transaction};
use tracing::info;
use wire::{AlertEvent, View, WindowRecord};

use super::alerts::{self, AlertDelta, AlertKey};

/// Embedded migrations, applied in order; a released version is never edited, only followed.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "predictions_alerts", include_str!("../../migrations/0001_predictions_alerts.sql")),
    (2, "predictor_service", include_str!("../../migrations/0002_predictor_service.sql")),
];

/// Advisory lock key serialising concurrent migrations ("NTA_PRED").
const MIGRATION_LOCK_KEY: i64 = 0x4e54_415f_5052_4544;

/// Applies the migrations not yet recorded in `predictor_schema_migrations`, in one
/// transaction under an advisory lock (several predictors may start at once).
pub async fn migrate(client: &mut Client) -> Result<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS predictor_schema_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let applied: HashSet<i32> =
        tx.query("SELECT version FROM predictor_schema_migrations", &[]).await?.iter().map(|r| r.get(0)).collect();
    for &(version, name, sql) in MIGRATIONS {
        if applied.contains(&version) {
            continue;
        }
        tx.batch_execute(sql).await.with_context(|| format!("predictor migration {version:04}_{name}"))?;
        tx.execute("INSERT INTO predictor_schema_migrations (version, name) VALUES ($1, $2)", &[&version, &name])
            .await?;
        info!(version, name, "applied predictor migration");
    }
    tx.commit().await?;
    Ok(())
}

/// One window's row of `predictions`.
pub struct PredictionRow<'a> {
    pub window: &'a WindowRecord,
    pub label: String,
    pub confidence: f64,
    pub probabilities: serde_json::Value,
    pub rules: Vec<&'static str>,
    /// "model" or "rules".
    pub decided_by: &'static str,
}

/// Inserts the predictions (`ON CONFLICT DO NOTHING`); returns the indices of the rows that
/// were new (a redelivered window, or one another replica already did, is not new).
pub async fn insert_predictions(
    tx: &Transaction<'_>,
    rows: &[PredictionRow<'_>],
    model_version: &str,
    instance: &str,
) -> Result<Vec<usize>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let view: Vec<&str> = rows.iter().map(|r| r.window.view.as_str()).collect();
    let key: Vec<&str> = rows.iter().map(|r| r.window.key.as_str()).collect();
    let start: Vec<i64> = rows.iter().map(|r| r.window.window_start).collect();
    let size: Vec<i32> = rows.iter().map(|r| i32::try_from(r.window.window_size).unwrap_or(i32::MAX)).collect();
    let label: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    let conf: Vec<f64> = rows.iter().map(|r| r.confidence).collect();
    let proba: Vec<String> = rows.iter().map(|r| r.probabilities.to_string()).collect();
    let rules: Vec<String> = rows.iter().map(|r| r.rules.join(",")).collect();
    let decided: Vec<&str> = rows.iter().map(|r| r.decided_by).collect();
    let returned = tx
        .query(
            "INSERT INTO predictions (view, key, window_start, window_size, label, confidence, probabilities,
                                      model_version, rules, decided_by, instance)
             SELECT v, k, to_timestamp(s), z, l, c, p::jsonb, $8, string_to_array(r, ','), d, $11
             FROM unnest($1::text[], $2::text[], $3::int8[], $4::int4[], $5::text[], $6::float8[], $7::text[],
                         $9::text[], $10::text[]) AS t(v, k, s, z, l, c, p, r, d)
             ON CONFLICT DO NOTHING
             RETURNING view, key, extract(epoch FROM window_start)::int8, window_size",
            &[&view, &key, &start, &size, &label, &conf, &proba, &model_version, &rules, &decided, &instance],
        )
        .await
        .context("inserting predictions")?;
    let new: HashSet<(String, String, i64, i32)> =
        returned.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
    Ok((0..rows.len())
        .filter(|&i| new.contains(&(view[i].to_string(), key[i].to_string(), start[i], size[i])))
        .collect())
}

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
        let greatest = |c: &str| format!("GREATEST(a.{c}_5 + EXCLUDED.{c}_5, a.{c}_30 + EXCLUDED.{c}_30, a.{c}_180 + EXCLUDED.{c}_180)");
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
            severity = alerts::severity_sql("GREATEST(a.peak_confidence, EXCLUDED.peak_confidence)"),
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
        let summary = alerts::summary(k.0, &k.1, &k.2, d.distinct_sources);
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
            &alerts::severity(d.peak_confidence),
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
            &summary,
            &evidence,
            &mv,
            &rules,
        ];
        let row = tx.query_one(upsert_sql(), &params).await.context("upserting an alert")?;
        let inserted: bool = row.get(0);
        // Columns after the `inserted` flag.
        let mut ev = event_from_row_offset(&row, 1, if inserted { "opened" } else { "updated" });
        let want = alerts::summary(k.0, &k.1, &k.2, ev.distinct_sources);
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
    }
}

/// Closes the open alerts no window extended for `quiet_secs` of processing time.
pub async fn close_quiet(client: &impl GenericClient, quiet_secs: f64) -> Result<Vec<AlertEvent>> {
    let rows = client
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
    Ok(rows.iter().map(|r| event_from_row(r, "closed")).collect())
}

/// Marks an open alert resolved (operator action); false if it is not open (or absent).
pub async fn resolve_alert(client: &impl GenericClient, id: i64) -> Result<bool> {
    Ok(resolve_alert_event(client, id).await?.is_some())
}

/// Like [`resolve_alert`], returning the `resolved` event to publish on `nta.alerts`.
pub async fn resolve_alert_event(client: &impl GenericClient, id: i64) -> Result<Option<AlertEvent>> {
    let row = client
        .query_opt(
            &format!(
                "UPDATE alerts SET state = 'resolved', resolved_at = now(), updated_at = now()
                 WHERE id = $1 AND state = 'open' RETURNING {EVENT_COLS}"
            ),
            &[&id],
        )
        .await
        .context("resolving an alert")?;
    Ok(row.map(|r| event_from_row(&r, "resolved")))
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
