//! `predictions`: one row per window and model version, written once.

use anyhow::{Context, Result};
use std::collections::HashSet;
use tokio_postgres::Transaction;
use wire::WindowRecord;

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

/// Prediction rows as the column arrays an `unnest` insert binds (live `predictions` and a
/// run's `run_predictions` alike).
pub(crate) struct Columns<'a> {
    pub view: Vec<&'a str>,
    pub key: Vec<&'a str>,
    pub start: Vec<i64>,
    pub size: Vec<i32>,
    pub label: Vec<&'a str>,
    pub conf: Vec<f64>,
    pub proba: Vec<String>,
    pub rules: Vec<String>,
    pub decided: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    pub(crate) fn of(rows: &'a [PredictionRow<'_>]) -> Columns<'a> {
        Columns {
            view: rows.iter().map(|r| r.window.view.as_str()).collect(),
            key: rows.iter().map(|r| r.window.key.as_str()).collect(),
            start: rows.iter().map(|r| r.window.window_start).collect(),
            size: rows.iter().map(|r| i32::try_from(r.window.window_size).unwrap_or(i32::MAX)).collect(),
            label: rows.iter().map(|r| r.label.as_str()).collect(),
            conf: rows.iter().map(|r| r.confidence).collect(),
            proba: rows.iter().map(|r| r.probabilities.to_string()).collect(),
            rules: rows.iter().map(|r| r.rules.join(",")).collect(),
            decided: rows.iter().map(|r| r.decided_by).collect(),
        }
    }
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
    let Columns { view, key, start, size, label, conf, proba, rules, decided } = Columns::of(rows);
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
