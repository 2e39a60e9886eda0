//! Alerts: list, summary, detail with the windows behind them, resolve.

use super::*;
/// `GET /api/alerts`: filters `severity`, `class`, `state` (or the original's `resolved`
/// boolean), `key`, `from`/`to` (alerts active in the range), `limit` (1..=500), `offset`.
pub async fn alerts(State(state): State<AppState>, Query(q): Q) -> JsonResult {
    let p = Params(q);
    let limit = p.int("limit", 50, 1, 500)?;
    let offset = p.int("offset", 0, 0, 1_000_000)?;
    let mut w = Where::default();
    let mut filters = Map::new();
    if let Some(s) = p.opt_enum("severity", &SEVERITIES)? {
        w.push("severity = $?", s.to_string());
        filters.insert("severity".into(), json!(s));
    }
    if let Some(c) = p.opt_text("class")? {
        w.push("class = $?", c.clone());
        filters.insert("class".into(), json!(c));
    }
    let st = p.opt_enum("state", &STATES)?;
    let resolved = p.opt_bool("resolved")?;
    if st.is_some() && resolved.is_some() {
        return Err(ApiError::bad("give either `state` or `resolved`, not both"));
    }
    match (st, resolved) {
        (Some(s), _) => {
            w.push("state = $?", s.to_string());
            filters.insert("state".into(), json!(s));
        }
        (None, Some(true)) => {
            w.push("state = $?", "resolved".to_string());
            filters.insert("state".into(), json!("resolved"));
        }
        (None, Some(false)) => {
            w.push("state <> $?", "resolved".to_string());
            filters.insert("resolved".into(), json!(false));
        }
        _ => {}
    }
    if let Some(k) = p.opt_text("key")? {
        w.push("key = $?", k.clone());
        filters.insert("key".into(), json!(k));
    }
    if p.str("from").is_some() || p.str("to").is_some() || p.str("range").is_some() {
        let r = p.time_range(DEFAULT_RANGE)?;
        w.push("last_seen >= to_timestamp($?)", r.from);
        w.push("first_seen < to_timestamp($?)", r.to);
        filters.insert("range".into(), r.json());
    }
    let empty = json!({"alerts": [], "total": 0, "limit": limit, "offset": offset, "filters": filters.clone()});
    let r = async {
        let c = db(&state).await?;
        let sql = format!(
            "SELECT {ALERT_COLS} FROM alerts WHERE {} ORDER BY last_seen DESC, id DESC LIMIT {limit} OFFSET {offset}",
            w.sql()
        );
        let rows = c.query(&sql, &w.refs()).await?;
        let total: i64 =
            c.query_one(&format!("SELECT count(*) FROM alerts WHERE {}", w.sql()), &w.refs()).await?.get(0);
        Ok(json!({"alerts": rows_json(&rows), "total": total, "limit": limit, "offset": offset, "filters": filters}))
    }
    .await;
    or_empty(r, empty)
}

/// `GET /api/alerts/summary`: open alerts by severity and class, all alerts by state, classes.
pub async fn alerts_summary(State(state): State<AppState>) -> JsonResult {
    let sev0 = json!({"LOW": 0, "MEDIUM": 0, "HIGH": 0, "CRITICAL": 0});
    let empty =
        json!({"open_by_severity": sev0.clone(), "open_by_class": {}, "by_state": {}, "classes": [], "total": 0});
    let r = async {
        let c = db(&state).await?;
        let rows = c.query("SELECT state, severity, class, count(*)::int8 FROM alerts GROUP BY 1, 2, 3", &[]).await?;
        let mut sev = sev0.clone();
        let mut by_class = Map::new();
        let mut by_state = Map::new();
        let mut classes = std::collections::BTreeSet::new();
        let mut total = 0i64;
        for r in &rows {
            let (st, s, cl, n): (String, String, String, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
            total += n;
            classes.insert(cl.clone());
            *by_state.entry(st.clone()).or_insert(json!(0)) =
                json!(by_state.get(&st).and_then(Value::as_i64).unwrap_or(0) + n);
            if st == "open" {
                sev[&s] = json!(sev[&s].as_i64().unwrap_or(0) + n);
                let prev = by_class.get(&cl).and_then(Value::as_i64).unwrap_or(0);
                by_class.insert(cl, json!(prev + n));
            }
        }
        Ok(json!({"open_by_severity": sev, "open_by_class": by_class, "by_state": by_state,
                  "classes": classes, "total": total}))
    }
    .await;
    or_empty(r, empty)
}

fn parse_id(id: &str) -> ApiResult<i64> {
    match id.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ApiError::bad(format!("alert id must be a positive integer, got {id:?}"))),
    }
}

/// `GET /api/alerts/{id}`: the alert, its rule evidence, and the windows that raised it with
/// their feature values and verdicts.
pub async fn alert_detail(State(state): State<AppState>, Path(id): Path<String>) -> JsonResult {
    let id = parse_id(&id)?;
    let c = db(&state).await?;
    let row = c.query_opt(&format!("SELECT {ALERT_COLS}, evidence FROM alerts WHERE id = $1"), &[&id]).await?;
    let Some(row) = row else { return Err(ApiError::NotFound(format!("alert {id} not found"))) };
    let alert = Value::Object(row_json(&row));
    let rows = c
        .query(
            "SELECT aw.view, aw.key, extract(epoch from aw.window_start)::float8 AS window_start, aw.window_size, \
                    to_jsonb(w) AS features, p.label, p.confidence, p.probabilities, p.model_version, p.rules \
             FROM alert_windows aw \
             LEFT JOIN window_features w ON w.view = aw.view AND w.key = aw.key \
                  AND w.window_start = aw.window_start AND w.window_size = aw.window_size \
             LEFT JOIN LATERAL (SELECT label, confidence, probabilities, model_version, rules FROM predictions p \
                  WHERE p.view = aw.view AND p.key = aw.key AND p.window_start = aw.window_start \
                    AND p.window_size = aw.window_size ORDER BY predicted_at DESC LIMIT 1) p ON true \
             WHERE aw.alert_id = $1 ORDER BY aw.window_start, aw.window_size LIMIT 1000",
            &[&id],
        )
        .await;
    let (windows, note) = match rows {
        Ok(rows) => (
            rows.iter()
                .map(|r| {
                    let mut m = row_json(r);
                    if let Some(Value::Object(f)) = m.get_mut("features") {
                        for k in ["view", "key", "window_start", "window_end", "window_size", "created_at"] {
                            f.remove(k);
                        }
                    }
                    Value::Object(m)
                })
                .collect(),
            None,
        ),
        Err(e) => match ApiError::from(e) {
            ApiError::MissingTable(m) => (Vec::new(), Some(m)),
            e => return Err(e),
        },
    };
    let key = alert["key"].as_str().unwrap_or("").to_string();
    let from = alert["first_seen"].as_f64().unwrap_or(0.0);
    let to = alert["last_seen"].as_f64().unwrap_or(0.0);
    Ok(Json(json!({
        "alert": alert,
        "windows": windows,
        "windows_note": note,
        "links": {
            "host": format!("#/hosts/{key}"),
            "packets_query": {"ip": key, "from": from.floor(), "to": (to + 1.0).ceil()},
        }
    })))
}

/// `POST /api/alerts/{id}/resolve`: open -> resolved; 404 unknown id, 409 not open. The
/// `resolved` event goes into the outbox in the same transaction; the predictor publishes it to
/// `NTA_ALERTS`, so every open dashboard sees it (a dashboard needs no right to publish).
pub async fn resolve_alert(State(state): State<AppState>, Path(id): Path<String>) -> JsonResult {
    let id = parse_id(&id)?;
    let mut c = db(&state).await?;
    // The transition is the store's (the same the predictor's operator API uses).
    let resolved = store::alerts::resolve_alert_event(&mut **c, id).await?;
    if resolved.is_none() {
        let st = c.query_opt("SELECT state FROM alerts WHERE id = $1", &[&id]).await?;
        return Err(match st {
            None => ApiError::NotFound(format!("alert {id} not found")),
            Some(r) => ApiError::Conflict(format!("alert {id} is {}, not open", r.get::<_, String>(0))),
        });
    }
    let row = c.query_one(&format!("SELECT {ALERT_COLS} FROM alerts WHERE id = $1"), &[&id]).await?;
    let a = row_json(&row);
    Ok(Json(json!({"status": "resolved", "alert_id": id, "alert": Value::Object(a)})))
}
