//! Re-scoring runs (`nta rescore`): `runs`, `run_predictions`, `run_alerts`,
//! `run_alert_windows`, and the comparison of a run's alerts with the live ones of its range.
//! Nothing here writes the live `predictions`, `alerts` or `alert_windows`.
//!
//! A run is written in one transaction ([`RunTx`]): the run's row is upserted, its previous rows
//! deleted and the new ones inserted, so a rerun with the same inputs leaves identical rows
//! (alerts are numbered in a fixed order), a run is visible only once complete, and a failed
//! (re)run changes nothing.

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Transaction};
use wire::alert::{severity, summary};

use crate::alerts::{AlertDelta, AlertKey};
use crate::predictions::PredictionRow;

/// Longest run name.
pub const MAX_NAME: usize = 64;

/// A run name is 1-64 of `[A-Za-z0-9_.-]`: it appears in URLs and file-like listings.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!("run name must be 1-{MAX_NAME} characters of A-Z a-z 0-9 _ . - (got {name:?})"))
    }
}

/// What a run was asked to do.
#[derive(Debug, Clone)]
pub struct RunInputs {
    pub name: String,
    pub model_version: String,
    pub model_path: String,
    pub model_sha256: String,
    /// Capture time range, epoch seconds, both ends included.
    pub from: f64,
    pub to: f64,
    pub agent_id: Option<String>,
}

/// Counters of a finished run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub messages: i64,
    pub records: i64,
    pub late_records: i64,
    pub windows: i64,
    pub alerts: i64,
}

/// Deletes a run and everything it wrote; false if there is no such run.
pub async fn delete_run(client: &impl GenericClient, name: &str) -> Result<bool> {
    Ok(client.execute("DELETE FROM runs WHERE name = $1", &[&name]).await.context("deleting the run")? > 0)
}

/// The writes of one run, in the caller's transaction.
pub struct RunTx<'a, 't> {
    tx: &'a Transaction<'t>,
    name: &'a str,
}

impl<'a, 't> RunTx<'a, 't> {
    /// Records the run's inputs and drops its previous rows (in `tx`: undone on rollback). The
    /// run's row stays locked until the commit, so two runs of one name do not interleave.
    pub async fn begin(tx: &'a Transaction<'t>, r: &'a RunInputs) -> Result<RunTx<'a, 't>> {
        tx.execute(
            "INSERT INTO runs (name, model_version, model_path, model_sha256, range_from, range_to, agent_id)
             VALUES ($1, $2, $3, $4, to_timestamp($5), to_timestamp($6), $7)
             ON CONFLICT (name) DO UPDATE SET model_version = $2, model_path = $3, model_sha256 = $4,
                 range_from = to_timestamp($5), range_to = to_timestamp($6), agent_id = $7, created_at = now()",
            &[&r.name, &r.model_version, &r.model_path, &r.model_sha256, &r.from, &r.to, &r.agent_id],
        )
        .await
        .context("recording the run")?;
        tx.execute("DELETE FROM run_predictions WHERE run = $1", &[&r.name]).await?;
        tx.execute("DELETE FROM run_alerts WHERE run = $1", &[&r.name]).await?;
        Ok(RunTx { tx, name: &r.name })
    }

    /// Inserts verdicts of windows of the run.
    pub async fn predictions(&self, rows: &[PredictionRow<'_>]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let crate::predictions::Columns { view, key, start, size, label, conf, proba, rules, decided } =
            crate::predictions::Columns::of(rows);
        self.tx
            .execute(
                "INSERT INTO run_predictions (run, view, key, window_start, window_size, label, confidence,
                                              probabilities, rules, decided_by)
                 SELECT $1, v, k, to_timestamp(s), z, l, c, p::jsonb, string_to_array(r, ','), d
                 FROM unnest($2::text[], $3::text[], $4::int8[], $5::int4[], $6::text[], $7::float8[], $8::text[],
                             $9::text[], $10::text[]) AS t(v, k, s, z, l, c, p, r, d)
                 ON CONFLICT DO NOTHING",
                &[&self.name, &view, &key, &start, &size, &label, &conf, &proba, &rules, &decided],
            )
            .await
            .context("inserting run predictions")?;
        Ok(())
    }

    /// Inserts the run's alerts (numbered in the order given) and their windows.
    pub async fn alerts(&self, alerts: &[(AlertKey, AlertDelta)]) -> Result<()> {
        for (i, (k, d)) in alerts.iter().enumerate() {
            let seq = i32::try_from(i + 1).unwrap_or(i32::MAX);
            let rules: Vec<&str> = d.rules.iter().map(String::as_str).collect();
            let packets = d.packets.iter().copied().max().unwrap_or(0);
            let bytes = d.bytes.iter().copied().max().unwrap_or(0);
            let distinct = d.distinct_sources.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
            let window_count = i32::try_from(d.window_count).unwrap_or(i32::MAX);
            let params: [&(dyn ToSql + Sync); 17] = [
                &self.name,
                &seq,
                &k.0.as_str(),
                &k.1,
                &k.2,
                &severity(d.peak_confidence),
                &d.detected_by(),
                &(d.first_seen as f64),
                &(d.last_seen as f64),
                &window_count,
                &d.peak_confidence,
                &packets,
                &bytes,
                &distinct,
                &summary(k.0, &k.1, &k.2, d.distinct_sources),
                &Value::Object(d.evidence.clone()),
                &rules,
            ];
            self.tx
                .execute(
                    "INSERT INTO run_alerts (run, seq, view, key, class, severity, detected_by, first_seen, last_seen,
                         window_count, peak_confidence, packets, bytes, distinct_sources, summary, evidence, rules)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8), to_timestamp($9), $10, $11, $12, $13,
                         $14, $15, $16, $17)",
                    &params,
                )
                .await
                .context("inserting a run alert")?;
            let starts: Vec<i64> = d.windows.iter().map(|w| w.0).collect();
            let sizes: Vec<i32> = d.windows.iter().map(|w| w.1).collect();
            self.tx
                .execute(
                    "INSERT INTO run_alert_windows (run, seq, window_start, window_size)
                     SELECT $1, $2, to_timestamp(s), z FROM unnest($3::int8[], $4::int4[]) AS t(s, z)
                     ON CONFLICT DO NOTHING",
                    &[&self.name, &seq, &starts, &sizes],
                )
                .await
                .context("inserting run alert windows")?;
        }
        Ok(())
    }

    /// Records the counters and the end time (commit the transaction afterwards).
    pub async fn finish(self, c: &RunCounts) -> Result<()> {
        self.tx
            .execute(
                "UPDATE runs SET finished_at = clock_timestamp(), messages = $2, records = $3,
                     late_records = $4, windows = $5, alerts = $6 WHERE name = $1",
                &[&self.name, &c.messages, &c.records, &c.late_records, &c.windows, &c.alerts],
            )
            .await
            .context("finishing the run")?;
        Ok(())
    }
}

const RUN_COLS: &str =
    "name, model_version, model_path, model_sha256, extract(epoch FROM range_from)::float8 AS \"from\",
    extract(epoch FROM range_to)::float8 AS \"to\", agent_id, extract(epoch FROM created_at)::float8 AS created_at,
    extract(epoch FROM finished_at)::float8 AS finished_at, messages, records, late_records, windows, alerts";

const RUN_ALERT_COLS: &str = "seq, view, key, class, severity, detected_by,
    extract(epoch FROM first_seen)::float8 AS first_seen, extract(epoch FROM last_seen)::float8 AS last_seen,
    window_count, peak_confidence, packets, bytes, distinct_sources, summary, rules";

const LIVE_ALERT_COLS: &str = "id, view, key, class, state, severity, detected_by,
    extract(epoch FROM first_seen)::float8 AS first_seen, extract(epoch FROM last_seen)::float8 AS last_seen,
    window_count, peak_confidence, packets, bytes, distinct_sources, summary, model_version";

async fn json_rows(client: &impl GenericClient, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Value>> {
    let rows = client.query(&format!("SELECT to_jsonb(t) FROM ({sql}) t"), params).await?;
    Ok(rows.iter().map(|r| r.get::<_, Value>(0)).collect())
}

/// Every run, newest first.
pub async fn list_runs(client: &impl GenericClient) -> Result<Vec<Value>> {
    json_rows(client, &format!("SELECT {RUN_COLS} FROM runs ORDER BY created_at DESC, name"), &[])
        .await
        .context("listing runs")
}

/// One run, or None.
pub async fn get_run(client: &impl GenericClient, name: &str) -> Result<Option<Value>> {
    let rows = json_rows(client, &format!("SELECT {RUN_COLS} FROM runs WHERE name = $1"), &[&name])
        .await
        .context("reading the run")?;
    Ok(rows.into_iter().next())
}

/// A page of the run's alerts in their order, and their total.
pub async fn run_alerts(client: &impl GenericClient, name: &str, limit: i64, offset: i64) -> Result<(Vec<Value>, i64)> {
    let rows = json_rows(
        client,
        &format!("SELECT {RUN_ALERT_COLS} FROM run_alerts WHERE run = $1 ORDER BY seq LIMIT $2 OFFSET $3"),
        &[&name, &limit, &offset],
    )
    .await
    .context("reading run alerts")?;
    let total: i64 =
        client.query_one("SELECT count(*) FROM run_alerts WHERE run = $1", &[&name]).await?.get::<_, i64>(0);
    Ok((rows, total))
}

/// The run's alerts against the live alerts of its range (active at some point of it; with an
/// agent filter, only those of a (view, key) the run saw). Alerts of the same (view, key,
/// class) whose [first_seen, last_seen] overlap match. Per class: run alerts without a match
/// (`run_only`), live alerts without a match (`live_only`), run alerts with one (`both`); and
/// the lists. None if there is no such run.
pub async fn comparison(client: &impl GenericClient, name: &str) -> Result<Option<Value>> {
    let Some(run) = get_run(client, name).await? else { return Ok(None) };
    let (from, to) = (run["from"].as_f64().unwrap_or(0.0), run["to"].as_f64().unwrap_or(0.0));
    let run_alerts =
        json_rows(client, &format!("SELECT {RUN_ALERT_COLS} FROM run_alerts WHERE run = $1 ORDER BY seq"), &[&name])
            .await
            .context("reading run alerts")?;
    let agent_filter = if run["agent_id"].is_string() {
        " AND EXISTS (SELECT 1 FROM run_predictions p WHERE p.run = $3 AND p.view = a.view AND p.key = a.key)"
    } else {
        " AND $3::text IS NOT NULL"
    };
    let live = json_rows(
        client,
        &format!(
            "SELECT {LIVE_ALERT_COLS} FROM alerts a WHERE first_seen <= to_timestamp($2)
               AND last_seen >= to_timestamp($1){agent_filter} ORDER BY first_seen, view, key, class, id"
        ),
        &[&from, &to, &name],
    )
    .await
    .context("reading the live alerts of the run's range")?;
    Ok(Some(compare(&run_alerts, &live)))
}

fn triple(a: &Value) -> (String, String, String) {
    let s = |f: &str| a[f].as_str().unwrap_or_default().to_string();
    (s("view"), s("key"), s("class"))
}

fn overlaps(a: &Value, b: &Value) -> bool {
    let t = |v: &Value, f: &str| v[f].as_f64().unwrap_or(f64::NAN);
    t(a, "first_seen") <= t(b, "last_seen") && t(b, "first_seen") <= t(a, "last_seen")
}

/// The matching of [`comparison`] over alerts as JSON objects.
pub fn compare(run: &[Value], live: &[Value]) -> Value {
    let mut by_triple: BTreeMap<(String, String, String), Vec<usize>> = BTreeMap::new();
    for (i, l) in live.iter().enumerate() {
        by_triple.entry(triple(l)).or_default().push(i);
    }
    let mut live_matched = vec![false; live.len()];
    let mut per_class: BTreeMap<String, [u64; 3]> = BTreeMap::new();
    let (mut run_only, mut both) = (Vec::new(), Vec::new());
    for r in run {
        let t = triple(r);
        let ids: Vec<usize> =
            by_triple.get(&t).into_iter().flatten().copied().filter(|&i| overlaps(r, &live[i])).collect();
        let counts = per_class.entry(t.2.clone()).or_default();
        if ids.is_empty() {
            counts[0] += 1;
            run_only.push(r.clone());
        } else {
            counts[2] += 1;
            for &i in &ids {
                live_matched[i] = true;
            }
            both.push(json!({"run": r, "live_ids": ids.iter().map(|&i| live[i]["id"].clone()).collect::<Vec<_>>()}));
        }
    }
    let mut live_only = Vec::new();
    for (l, matched) in live.iter().zip(&live_matched) {
        if !matched {
            per_class.entry(triple(l).2).or_default()[1] += 1;
            live_only.push(l.clone());
        }
    }
    let per_class: Map<String, Value> =
        per_class.into_iter().map(|(c, [r, l, b])| (c, json!({"run_only": r, "live_only": l, "both": b}))).collect();
    json!({
        "per_class": per_class,
        "run_alerts": run.len(),
        "live_alerts": live.len(),
        "run_only": run_only,
        "live_only": live_only,
        "both": both,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(view: &str, key: &str, class: &str, first: f64, last: f64) -> Value {
        json!({"id": 1, "view": view, "key": key, "class": class, "first_seen": first, "last_seen": last})
    }

    #[test]
    fn names_and_matching() {
        assert!(validate_name("may-model_2.1").is_ok());
        for bad in ["", "a/b", "a b", "<x>", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        let run = [a("source", "10.0.0.1", "port_scan", 0.0, 30.0), a("source", "10.0.0.2", "port_scan", 0.0, 30.0)];
        let live = [
            a("source", "10.0.0.1", "port_scan", 25.0, 60.0),
            // Same triple, no overlap: not a match.
            a("source", "10.0.0.2", "port_scan", 31.0, 60.0),
            a("destination", "10.0.0.9", "syn_flood", 0.0, 5.0),
        ];
        let c = compare(&run, &live);
        assert_eq!(c["per_class"]["port_scan"], json!({"run_only": 1, "live_only": 1, "both": 1}));
        assert_eq!(c["per_class"]["syn_flood"], json!({"run_only": 0, "live_only": 1, "both": 0}));
        assert_eq!(c["run_only"][0]["key"], "10.0.0.2");
        assert_eq!(c["live_only"].as_array().unwrap().len(), 2);
    }
}
