//! Overview: traffic over time, protocol mix, top talkers and ports, pipeline health.

use super::*;
/// Bucket width giving at most ~300 points over `secs`, at least `min` seconds.
pub fn bucket_seconds(secs: f64, min: i64) -> i64 {
    let raw = (secs / 300.0).ceil() as i64;
    [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]
        .into_iter()
        .find(|&b| b >= raw.max(min))
        .unwrap_or(86400)
}

/// Where an aggregate is computed: `source=packets` scans raw_packets (exact to the
/// microsecond), `source=rollup` sums traffic_rollup over the range widened to whole minutes;
/// by default the rollup for ranges over 15 minutes. Returns the source and, for the rollup,
/// its slices and the range they cover.
fn aggregate_source(p: &Params, range: &TimeRange) -> ApiResult<(&'static str, Vec<rollup::Slice>, TimeRange)> {
    let source = p.opt_enum("source", &["rollup", "packets"])?.unwrap_or(if rollup::worth_it(range) {
        "rollup"
    } else {
        "packets"
    });
    let (covered, slices) = rollup::plan(range);
    Ok(if source == "rollup" { (source, slices, covered) } else { (source, Vec::new(), *range) })
}

/// `GET /api/traffic`: packets/s and bits/s per time bucket. Buckets under a minute sum the 5 s
/// source-view windows (`source=windows`; traffic without a source address is not in them),
/// longer ones the per-minute and per-hour rollup (`source=rollup`); `source=packets`
/// aggregates raw_packets.
pub async fn traffic(State(state): State<AppState>, Query(q): Q) -> JsonResult {
    let p = Params(q);
    let range = p.time_range(DEFAULT_RANGE)?;
    let bucket = bucket_seconds(range.seconds(), 5);
    let default = if bucket >= 60 { "rollup" } else { "windows" };
    let source = p.opt_enum("source", &["windows", "rollup", "packets"])?.unwrap_or(default);
    if source == "rollup" && bucket % 60 != 0 {
        return Err(ApiError::bad(format!(
            "the rollup has minute buckets; a {bucket} s bucket needs source=windows or packets"
        )));
    }
    // Hour rows only where a chart bucket holds whole hours; otherwise minutes throughout.
    let (covered, slices) = rollup::plan(&range);
    let slices =
        if bucket % 3600 == 0 { slices } else { vec![rollup::Slice { width: 60, lo: covered.from, hi: covered.to }] };
    let shown = if source == "rollup" { covered } else { range };
    let empty = json!({"points": [], "bucket_seconds": bucket, "source": source, "range": shown.json(),
                       "totals": {"packets": 0, "bytes": 0}});
    let r = async {
        let c = db(&state).await?;
        let b = bucket as f64;
        let sql = match source {
            // The cascade's longest windows that fit a bucket whole: 36 times fewer rows to sum
            // for a day in 3 min windows than in 5 s ones, same totals.
            "windows" => format!(
                "SELECT (floor(extract(epoch from window_start)::float8 / $3::float8) * $3::float8) AS t, \
                        coalesce(sum(packet_count), 0)::float8 AS packets, coalesce(sum(byte_count), 0)::float8 AS bytes \
                 FROM window_features WHERE view = 'source' AND window_size = {} \
                   AND window_start >= to_timestamp($1) AND window_start < to_timestamp($2) GROUP BY 1 ORDER BY 1",
                [180, 30, 5].into_iter().find(|w| bucket % w == 0).unwrap_or(5)
            ),
            "rollup" => format!(
                "SELECT (floor(extract(epoch from bucket)::float8 / $1::float8) * $1::float8) AS t, \
                        sum(packets)::float8, sum(bytes)::float8 FROM ({}) r GROUP BY 1 ORDER BY 1",
                rollup::rows_sql("protocol", &slices)
            ),
            _ => "SELECT (floor(extract(epoch from ts)::float8 / $3::float8) * $3::float8) AS t, count(*)::float8 AS packets, \
                    sum(length)::float8 AS bytes \
             FROM raw_packets WHERE ts >= to_timestamp($1) AND ts < to_timestamp($2) GROUP BY 1 ORDER BY 1"
                .to_string(),
        };
        let rows = if source == "rollup" {
            c.query(&sql, &[&b]).await?
        } else {
            c.query(&sql, &[&range.from, &range.to, &b]).await?
        };
        let (mut tp, mut tb) = (0.0, 0.0);
        let points: Vec<Value> = rows
            .iter()
            .map(|r| {
                let (t, pk, by): (f64, f64, f64) = (r.get(0), r.get(1), r.get(2));
                tp += pk;
                tb += by;
                json!({"t": t, "packets": pk, "bytes": by, "pps": pk / b, "bps": by * 8.0 / b})
            })
            .collect();
        Ok(json!({"points": points, "bucket_seconds": bucket, "source": source, "range": shown.json(),
                  "totals": {"packets": tp, "bytes": tb}}))
    }
    .await;
    or_empty(r, empty)
}

/// `GET /api/protocols`: packets (and bytes) per protocol in the range.
pub async fn protocols(State(state): State<AppState>, Query(q): Q) -> JsonResult {
    let p = Params(q);
    let range = p.time_range(DEFAULT_RANGE)?;
    let (source, slices, shown) = aggregate_source(&p, &range)?;
    let empty = json!({"labels": [], "values": [], "bytes": [], "total": 0, "source": source, "range": shown.json()});
    let r = async {
        let c = db(&state).await?;
        let rows = if source == "rollup" {
            let sql = format!(
                "SELECT value, sum(packets)::int8, sum(bytes)::int8 FROM ({}) r GROUP BY 1 ORDER BY 2 DESC, 1",
                rollup::rows_sql("protocol", &slices)
            );
            c.query(&sql, &[]).await?
        } else {
            c.query(
                "SELECT protocol, count(*)::int8, sum(length)::int8 FROM raw_packets \
                 WHERE ts >= to_timestamp($1) AND ts < to_timestamp($2) GROUP BY 1 ORDER BY 2 DESC, 1",
                &[&range.from, &range.to],
            )
            .await?
        };
        let labels: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let values: Vec<i64> = rows.iter().map(|r| r.get(1)).collect();
        let bytes: Vec<i64> = rows.iter().map(|r| r.get(2)).collect();
        let total: i64 = values.iter().sum();
        Ok(json!({"labels": labels, "values": values, "bytes": bytes, "total": total, "source": source, "range": shown.json()}))
    }
    .await;
    or_empty(r, empty)
}

async fn top_by(state: &AppState, q: HashMap<String, String>, col: &'static str) -> JsonResult {
    let p = Params(q);
    let range = p.time_range(DEFAULT_RANGE)?;
    let limit = p.int("limit", 10, 1, 100)?;
    let (source, slices, shown) = aggregate_source(&p, &range)?;
    let key = if col == "dst_port" { "port" } else { "ip" };
    let empty = json!({"items": [], "total": 0, "source": source, "range": shown.json()});
    let r = async {
        let c = db(state).await?;
        let (expr, cond, dim) = match col {
            "src_ip" => ("host(src_ip)", "src_ip IS NOT NULL", "src"),
            "dst_ip" => ("host(dst_ip)", "dst_ip IS NOT NULL", "dst"),
            _ => ("dst_port::text", "dst_port > 0", "port"),
        };
        let rows = if source == "rollup" {
            let sql = format!(
                "SELECT value, sum(packets)::int8, sum(bytes)::int8, (sum(sum(packets)) OVER ())::int8 FROM ({}) r \
                 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $1",
                rollup::rows_sql(dim, &slices)
            );
            c.query(&sql, &[&limit]).await?
        } else {
            let sql = format!(
                "SELECT {expr}, count(*)::int8, sum(length)::int8, (sum(count(*)) OVER ())::int8 FROM raw_packets \
                 WHERE ts >= to_timestamp($1) AND ts < to_timestamp($2) AND {cond} GROUP BY {col} ORDER BY 2 DESC, 1 LIMIT $3"
            );
            c.query(&sql, &[&range.from, &range.to, &limit]).await?
        };
        let total: i64 = rows.first().map(|r| r.get(3)).unwrap_or(0);
        let items: Vec<Value> = rows
            .iter()
            .map(|r| {
                let k: String = r.get(0);
                let n: i64 = r.get(1);
                let mut o = json!({"packet_count": n, "bytes": r.get::<_, i64>(2), "percentage": pct(n, total)});
                if key == "port" {
                    let port: i64 = k.parse().unwrap_or(0);
                    o["port"] = json!(port);
                    o["service"] = json!(service_name(port));
                } else {
                    o["ip"] = json!(k);
                }
                o
            })
            .collect();
        Ok(json!({"items": items, "total": total, "source": source, "range": shown.json()}))
    }
    .await;
    or_empty(r, empty)
}

/// `GET /api/top-sources`: busiest source addresses (`percentage` of packets with a source).
pub async fn top_sources(State(state): State<AppState>, Query(q): Q) -> JsonResult {
    top_by(&state, q, "src_ip").await
}

/// `GET /api/top-destinations`.
pub async fn top_destinations(State(state): State<AppState>, Query(q): Q) -> JsonResult {
    top_by(&state, q, "dst_ip").await
}

/// `GET /api/top-ports`: busiest destination ports with service names.
pub async fn top_ports(State(state): State<AppState>, Query(q): Q) -> JsonResult {
    top_by(&state, q, "dst_port").await
}

/// `GET /api/pipeline`: JetStream consumers and streams (sampled every 5 s), dead letters,
/// packets stored in the last minute, newest window and model version.
pub async fn pipeline(State(state): State<AppState>) -> JsonResult {
    let snap = state.pipeline.read().await.clone();
    let mut out = serde_json::to_value(&snap).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut notes: Vec<String> = Vec::new();
    let mut database_available = true;
    match db(&state).await {
        Ok(c) => {
            let mut q = |r: Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>| match r {
                Ok(rows) => rows.first().map(|r| Value::Object(row_json(r))),
                Err(e) => {
                    notes.push(match ApiError::from(e) {
                        ApiError::MissingTable(m) | ApiError::Unavailable(m) => m,
                        ApiError::Internal(m) => crate::sql::log_internal(&m).1,
                        other => format!("{other:?}"),
                    });
                    None
                }
            };
            let ing = q(c
                .query(
                    "SELECT coalesce(sum(records), 0)::int8 AS packets, count(*)::int8 AS batches FROM ingested_batches \
                     WHERE ingested_at >= now() - interval '60 seconds'",
                    &[],
                )
                .await);
            let win = q(c
                .query(
                    "SELECT extract(epoch from max(window_start))::float8 AS newest_window_start FROM window_features",
                    &[],
                )
                .await);
            let pred = q(c
                .query(
                    "SELECT model_version, extract(epoch from window_start)::float8 AS window_start, \
                            extract(epoch from predicted_at)::float8 AS predicted_at \
                     FROM predictions ORDER BY predictions.window_start DESC LIMIT 1",
                    &[],
                )
                .await);
            let ing_packets = ing.as_ref().and_then(|v| v["packets"].as_i64());
            out["ingestor"] = json!({
                "packets_last_60s": ing_packets,
                "packets_per_s": ing_packets.map(|p| p as f64 / 60.0),
                "batches_last_60s": ing.as_ref().and_then(|v| v["batches"].as_i64()),
            });
            out["windows"] =
                json!({"newest_window_start": win.as_ref().and_then(|v| v["newest_window_start"].as_f64())});
            out["model_version"] = pred.as_ref().map(|v| v["model_version"].clone()).unwrap_or(Value::Null);
            out["latest_prediction"] = pred.unwrap_or(Value::Null);
        }
        Err(e) => {
            database_available = false;
            notes.push(format!("{e:?}"));
        }
    }
    out["database_available"] = json!(database_available);
    out["notes"] = json!(notes);
    Ok(Json(out))
}
