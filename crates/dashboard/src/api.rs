//! JSON API handlers. Every SQL value is a bound parameter; identifiers and clauses are
//! constants chosen in code, never built from input.

use crate::sql::{like_substring, now_epoch, or_empty, row_json, rows_json, ApiError, ApiResult, Params, TimeRange};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_postgres::types::ToSql;

type Q = Query<HashMap<String, String>>;
type JsonResult = ApiResult<Json<Value>>;

pub const DEFAULT_RANGE: f64 = 3600.0;
pub const SEVERITIES: [&str; 4] = ["LOW", "MEDIUM", "HIGH", "CRITICAL"];
pub const STATES: [&str; 3] = ["open", "resolved", "closed"];
pub const PROTOCOLS: [&str; 6] = ["TCP", "UDP", "ICMP", "ICMPv6", "ARP", "OTHER"];

/// Columns of a packet as the API returns it.
const PACKET_COLS: &str = "extract(epoch from ts)::float8 AS ts, interface, host(src_ip) AS src_ip, \
    host(dst_ip) AS dst_ip, protocol, length, src_port, dst_port, tcp_flags, icmp_type, icmp_code, arp_op, \
    host(arp_psrc) AS arp_psrc, host(arp_pdst) AS arp_pdst, arp_hwsrc::text AS arp_hwsrc, \
    arp_hwdst::text AS arp_hwdst, dns_qname, dns_qtype, dns_query, dns_response, dns_answer_count, \
    http_method, http_path, http_status_code, http_host, src_mac::text AS src_mac, dst_mac::text AS dst_mac, \
    vlan, agent_id";

/// Columns of an alert as the API returns it.
const ALERT_COLS: &str = "id, view, key, class, state, severity, detected_by, \
    extract(epoch from first_seen)::float8 AS first_seen, extract(epoch from last_seen)::float8 AS last_seen, \
    window_count, peak_confidence, packets, bytes, distinct_sources, summary, model_version, \
    extract(epoch from created_at)::float8 AS created_at, extract(epoch from updated_at)::float8 AS updated_at, \
    extract(epoch from resolved_at)::float8 AS resolved_at, extract(epoch from closed_at)::float8 AS closed_at";

async fn db(state: &AppState) -> ApiResult<deadpool_postgres::Object> {
    Ok(state.pool.get().await?)
}

/// Well-known port -> service (the original's 19 plus a few common ones); others "Unknown".
pub fn service_name(port: i64) -> &'static str {
    match port {
        20 => "FTP-Data",
        21 => "FTP",
        22 => "SSH",
        23 => "Telnet",
        25 => "SMTP",
        53 => "DNS",
        67 | 68 => "DHCP",
        80 => "HTTP",
        110 => "POP3",
        123 => "NTP",
        137..=139 => "NetBIOS",
        143 => "IMAP",
        161 | 162 => "SNMP",
        389 => "LDAP",
        443 => "HTTPS",
        445 => "SMB",
        465 | 587 => "SMTP-Submission",
        993 => "IMAPS",
        995 => "POP3S",
        1900 => "SSDP",
        3306 => "MySQL",
        3389 => "RDP",
        4222 => "NATS",
        5353 => "mDNS",
        5355 => "LLMNR",
        5432 => "PostgreSQL",
        6379 => "Redis",
        8080 => "HTTP-Alt",
        8443 => "HTTPS-Alt",
        _ => "Unknown",
    }
}

fn pct(part: i64, total: i64) -> f64 {
    if total <= 0 {
        0.0
    } else {
        (part as f64 * 1000.0 / total as f64).round() / 10.0
    }
}

// ---------------------------------------------------------------- misc

pub async fn not_found() -> Response {
    ApiError::NotFound("no such route (see /api/openapi.json)".into()).into_response()
}

/// `GET /health` (no auth): database and NATS reachability.
pub async fn health(State(state): State<AppState>) -> Json<Value> {
    let db_ok = tokio::time::timeout(Duration::from_secs(2), async {
        match state.pool.get().await {
            Ok(c) => c.query_one("SELECT 1", &[]).await.is_ok(),
            Err(_) => false,
        }
    })
    .await
    .unwrap_or(false);
    let nats_ok = state.nats.connection_state() == async_nats::connection::State::Connected;
    Json(json!({
        "status": if db_ok && nats_ok { "healthy" } else { "degraded" },
        "service": "nta-dashboard",
        "version": env!("CARGO_PKG_VERSION"),
        "database_available": db_ok,
        "nats_connected": nats_ok,
        "sse_clients": state.counters.sse_clients.load(Ordering::Relaxed),
        "timestamp": now_epoch(),
    }))
}

/// `GET /metrics` (no auth): Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let c = &state.counters;
    let body = format!(
        "# HELP nta_dashboard_http_requests_total HTTP requests served.\n# TYPE nta_dashboard_http_requests_total counter\n\
         nta_dashboard_http_requests_total {}\n\
         # HELP nta_dashboard_alert_events_total Alert events received on nta.alerts.\n# TYPE nta_dashboard_alert_events_total counter\n\
         nta_dashboard_alert_events_total {}\n\
         # HELP nta_dashboard_sse_clients Connected live-alert (SSE) clients.\n# TYPE nta_dashboard_sse_clients gauge\n\
         nta_dashboard_sse_clients {}\n\
         # HELP nta_dashboard_login_failures_total Failed password logins.\n# TYPE nta_dashboard_login_failures_total counter\n\
         nta_dashboard_login_failures_total {}\n",
        c.http_requests.load(Ordering::Relaxed),
        c.alert_events.load(Ordering::Relaxed),
        c.sse_clients.load(Ordering::Relaxed),
        c.login_failures.load(Ordering::Relaxed),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

pub const OPENAPI: &str = include_str!("../assets/openapi.json");

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

// ---------------------------------------------------------------- packets

/// WHERE-clause builder: conditions are constant SQL with `$?` where the next bound parameter
/// goes; values are never spliced into the text.
#[derive(Default)]
struct Where {
    conds: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Where {
    fn push<T: ToSql + Sync + Send + 'static>(&mut self, cond: &str, v: T) {
        self.params.push(Box::new(v));
        self.conds.push(cond.replace("$?", &format!("${}", self.params.len())));
    }
    fn sql(&self) -> String {
        if self.conds.is_empty() {
            "TRUE".into()
        } else {
            self.conds.join(" AND ")
        }
    }
    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
    }
    fn time(&mut self, col: &str, r: &TimeRange) {
        self.push(&format!("{col} >= to_timestamp($?)"), r.from);
        self.push(&format!("{col} < to_timestamp($?)"), r.to);
    }
}

/// The packet filters shared by search, pagination and CSV export.
fn packet_filter(p: &Params) -> ApiResult<(Where, TimeRange, Value)> {
    let range = p.time_range(DEFAULT_RANGE)?;
    let mut w = Where::default();
    w.time("ts", &range);
    let mut echo = Map::new();
    if let Some(ip) = p.opt_ip("ip")? {
        let n = w.params.len() + 1;
        w.push(&format!("(src_ip = $? OR dst_ip = ${n})"), ip);
        echo.insert("ip".into(), json!(ip.to_string()));
    }
    if let Some(ip) = p.opt_ip("src")? {
        w.push("src_ip = $?", ip);
        echo.insert("src".into(), json!(ip.to_string()));
    }
    if let Some(ip) = p.opt_ip("dst")? {
        w.push("dst_ip = $?", ip);
        echo.insert("dst".into(), json!(ip.to_string()));
    }
    if let Some(port) = p.opt_int("port", 0, 65535)? {
        let n = w.params.len() + 1;
        w.push(&format!("(src_port = $? OR dst_port = ${n})"), port as i32);
        echo.insert("port".into(), json!(port));
    }
    if let Some(port) = p.opt_int("src_port", 0, 65535)? {
        w.push("src_port = $?", port as i32);
        echo.insert("src_port".into(), json!(port));
    }
    if let Some(port) = p.opt_int("dst_port", 0, 65535)? {
        w.push("dst_port = $?", port as i32);
        echo.insert("dst_port".into(), json!(port));
    }
    if let Some(proto) = p.opt_enum("protocol", &PROTOCOLS)? {
        w.push("protocol = $?", proto.to_string());
        echo.insert("protocol".into(), json!(proto));
    }
    if let Some(dns) = p.opt_text("dns")? {
        w.push("dns_qname ILIKE $?", like_substring(&dns));
        echo.insert("dns".into(), json!(dns));
    }
    if let Some(path) = p.opt_text("http_path")? {
        w.push("http_path ILIKE $?", like_substring(&path));
        echo.insert("http_path".into(), json!(path));
    }
    if let Some(host) = p.opt_text("http_host")? {
        w.push("http_host ILIKE $?", like_substring(&host));
        echo.insert("http_host".into(), json!(host));
    }
    Ok((w, range, Value::Object(echo)))
}

const MAX_OFFSET: i64 = 100_000;
const COUNT_CAP: i64 = 100_000;

/// `GET /api/packets` (and the original's `/api/alltraffic`): search with server-side
/// pagination, newest first.
pub async fn packets(State(state): State<AppState>, Query(q): Q) -> JsonResult {
    let p = Params(q);
    let (w, range, filters) = packet_filter(&p)?;
    let page = p.int("page", 1, 1, 1_000_000)?;
    let per_page = match p.str("per_page") {
        Some(_) => p.int("per_page", 50, 1, 500)?,
        None => p.int("limit", 50, 1, 500)?,
    };
    let offset = (page - 1) * per_page;
    if offset > MAX_OFFSET {
        return Err(ApiError::bad(format!("page too deep (offset {offset} > {MAX_OFFSET}); narrow the filters")));
    }
    let empty = json!({"packets": [], "page": page, "per_page": per_page, "total": 0, "pages": 0,
                       "total_is_lower_bound": false, "range": range.json(), "filters": filters});
    let r = async {
        let c = db(&state).await?;
        let sql = format!(
            "SELECT {PACKET_COLS} FROM raw_packets WHERE {} ORDER BY ts DESC, batch_id DESC, idx DESC LIMIT {per_page} OFFSET {offset}",
            w.sql()
        );
        let rows = c.query(&sql, &w.refs()).await?;
        let count_sql = format!("SELECT count(*) FROM (SELECT 1 FROM raw_packets WHERE {} LIMIT {}) s", w.sql(), COUNT_CAP + 1);
        let total: i64 = c.query_one(&count_sql, &w.refs()).await?.get(0);
        let capped = total > COUNT_CAP;
        let total = total.min(COUNT_CAP);
        Ok(json!({
            "packets": rows_json(&rows), "page": page, "per_page": per_page, "total": total,
            "total_is_lower_bound": capped, "pages": (total + per_page - 1) / per_page,
            "range": range.json(), "filters": filters,
        }))
    }
    .await;
    or_empty(r, empty)
}

/// A CSV cell: cells a spreadsheet would take as a formula (= + - @, tab, CR) get a leading
/// quote; every cell is quoted with inner quotes doubled.
pub fn csv_cell(v: &Value) -> String {
    let s = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `GET /api/packets.csv`: the search result as CSV (same filters; `limit` rows, at most 100 000).
pub async fn packets_csv(State(state): State<AppState>, Query(q): Q) -> ApiResult<Response> {
    let p = Params(q);
    let (w, _, _) = packet_filter(&p)?;
    let limit = p.int("limit", 10_000, 1, 100_000)?;
    let c = db(&state).await?;
    let sql = format!(
        "SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS time, {PACKET_COLS} \
         FROM raw_packets WHERE {} ORDER BY ts DESC, batch_id DESC, idx DESC LIMIT {limit}",
        w.sql()
    );
    let (header_cols, rows) = match c.prepare(&sql).await {
        Ok(stmt) => {
            let cols: Vec<String> = stmt.columns().iter().map(|c| c.name().to_string()).collect();
            (cols, c.query(&stmt, &w.refs()).await?)
        }
        Err(e) => match ApiError::from(e) {
            // No table yet: a header-only CSV.
            ApiError::MissingTable(_) => {
                let mut cols = vec!["time".to_string()];
                cols.extend(PACKET_COLS.split(',').map(|c| c.rsplit(' ').next().unwrap_or("").trim().to_string()));
                (cols, Vec::new())
            }
            e => return Err(e),
        },
    };
    let mut out = String::with_capacity(rows.len() * 200 + 256);
    out.push_str(&header_cols.join(","));
    out.push_str("\r\n");
    for r in &rows {
        let m = row_json(r);
        let cells: Vec<String> = header_cols.iter().map(|k| csv_cell(m.get(k).unwrap_or(&Value::Null))).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    let mut resp = (StatusCode::OK, out).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"packets.csv\""));
    Ok(resp)
}

/// The `n` newest packets. `raw_packets` has only a BRIN index on ts (no order), so look in
/// growing windows back from now, then one day partition at a time, newest first.
async fn latest_packets(state: &AppState, n: i64) -> ApiResult<Vec<Value>> {
    let c = db(state).await?;
    for secs in [60.0f64, 600.0, 3600.0] {
        let sql = format!("SELECT {PACKET_COLS} FROM raw_packets WHERE ts >= now() - make_interval(secs => $1) ORDER BY ts DESC, batch_id DESC, idx DESC LIMIT {n}");
        let rows = c.query(&sql, &[&secs]).await?;
        if rows.len() as i64 == n {
            return Ok(rows_json(&rows));
        }
    }
    let parts = c
        .query(
            "SELECT extract(epoch from to_date(substr(c.relname, 14), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC')::float8 \
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'raw_packets'::regclass AND c.relname ~ '^raw_packets_p[0-9]{8}$' ORDER BY c.relname DESC",
            &[],
        )
        .await?;
    let mut out = Vec::new();
    for part in parts {
        let day: f64 = part.get(0);
        let want = n - out.len() as i64;
        let sql = format!("SELECT {PACKET_COLS} FROM raw_packets WHERE ts >= to_timestamp($1) AND ts < to_timestamp($2) ORDER BY ts DESC, batch_id DESC, idx DESC LIMIT {want}");
        let rows = c.query(&sql, &[&day, &(day + 86400.0)]).await?;
        out.extend(rows_json(&rows));
        if out.len() as i64 >= n {
            break;
        }
    }
    Ok(out)
}

/// `GET /api/last10`: the 10 newest packets.
pub async fn last10(State(state): State<AppState>) -> JsonResult {
    let r = latest_packets(&state, 10).await.map(|p| json!({ "packets": p, "count": p.len() }));
    or_empty(r, json!({"packets": [], "count": 0}))
}

/// `GET /api/raw_packets/last/{count}`: the `count` (1..=1000) newest packets.
pub async fn raw_packets_last(State(state): State<AppState>, Path(count): Path<String>) -> JsonResult {
    let n: i64 = match count.parse() {
        Ok(n) if (1..=1000).contains(&n) => n,
        _ => return Err(ApiError::bad(format!("count must be an integer from 1 to 1000, got {count:?}"))),
    };
    let r = latest_packets(&state, n).await.map(|p| json!({ "packets": p, "count": p.len() }));
    or_empty(r, json!({"packets": [], "count": 0}))
}

// ---------------------------------------------------------------- overview

/// Bucket width giving at most ~300 points over `secs`, at least `min` seconds.
pub fn bucket_seconds(secs: f64, min: i64) -> i64 {
    let raw = (secs / 300.0).ceil() as i64;
    [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]
        .into_iter()
        .find(|&b| b >= raw.max(min))
        .unwrap_or(86400)
}

/// `GET /api/traffic`: packets/s and bits/s per time bucket. `source=windows` (default) sums
/// the 5 s source-view windows (pre-aggregated by the windower; traffic without a source
/// address is not in them), `source=packets` aggregates raw_packets.
pub async fn traffic(State(state): State<AppState>, Query(q): Q) -> JsonResult {
    let p = Params(q);
    let range = p.time_range(DEFAULT_RANGE)?;
    let source = p.opt_enum("source", &["windows", "packets"])?.unwrap_or("windows");
    let bucket = bucket_seconds(range.seconds(), 5);
    let empty = json!({"points": [], "bucket_seconds": bucket, "source": source, "range": range.json(),
                       "totals": {"packets": 0, "bytes": 0}});
    let r = async {
        let c = db(&state).await?;
        let b = bucket as f64;
        let sql = if source == "windows" {
            "SELECT (floor(extract(epoch from window_start)::float8 / $3::float8) * $3::float8) AS t, \
                    coalesce(sum(packet_count), 0)::float8 AS packets, coalesce(sum(byte_count), 0)::float8 AS bytes \
             FROM window_features WHERE view = 'source' AND window_size = 5 \
               AND window_start >= to_timestamp($1) AND window_start < to_timestamp($2) GROUP BY 1 ORDER BY 1"
        } else {
            "SELECT (floor(extract(epoch from ts)::float8 / $3::float8) * $3::float8) AS t, count(*)::float8 AS packets, \
                    sum(length)::float8 AS bytes \
             FROM raw_packets WHERE ts >= to_timestamp($1) AND ts < to_timestamp($2) GROUP BY 1 ORDER BY 1"
        };
        let rows = c.query(sql, &[&range.from, &range.to, &b]).await?;
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
        Ok(json!({"points": points, "bucket_seconds": bucket, "source": source, "range": range.json(),
                  "totals": {"packets": tp, "bytes": tb}}))
    }
    .await;
    or_empty(r, empty)
}

/// `GET /api/protocols`: packets (and bytes) per protocol in the range.
pub async fn protocols(State(state): State<AppState>, Query(q): Q) -> JsonResult {
    let p = Params(q);
    let range = p.time_range(DEFAULT_RANGE)?;
    let empty = json!({"labels": [], "values": [], "bytes": [], "total": 0, "range": range.json()});
    let r = async {
        let c = db(&state).await?;
        let rows = c
            .query(
                "SELECT protocol, count(*)::int8, sum(length)::int8 FROM raw_packets \
                 WHERE ts >= to_timestamp($1) AND ts < to_timestamp($2) GROUP BY 1 ORDER BY 2 DESC, 1",
                &[&range.from, &range.to],
            )
            .await?;
        let labels: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let values: Vec<i64> = rows.iter().map(|r| r.get(1)).collect();
        let bytes: Vec<i64> = rows.iter().map(|r| r.get(2)).collect();
        let total: i64 = values.iter().sum();
        Ok(json!({"labels": labels, "values": values, "bytes": bytes, "total": total, "range": range.json()}))
    }
    .await;
    or_empty(r, empty)
}

async fn top_by(state: &AppState, q: HashMap<String, String>, col: &'static str) -> JsonResult {
    let p = Params(q);
    let range = p.time_range(DEFAULT_RANGE)?;
    let limit = p.int("limit", 10, 1, 100)?;
    let key = if col == "dst_port" { "port" } else { "ip" };
    let empty = json!({"items": [], "total": 0, "range": range.json()});
    let r = async {
        let c = db(state).await?;
        let (expr, cond) = match col {
            "src_ip" => ("host(src_ip)", "src_ip IS NOT NULL"),
            "dst_ip" => ("host(dst_ip)", "dst_ip IS NOT NULL"),
            _ => ("dst_port::text", "dst_port > 0"),
        };
        let sql = format!(
            "SELECT {expr}, count(*)::int8, sum(length)::int8, (sum(count(*)) OVER ())::int8 FROM raw_packets \
             WHERE ts >= to_timestamp($1) AND ts < to_timestamp($2) AND {cond} GROUP BY {col} ORDER BY 2 DESC, 1 LIMIT $3"
        );
        let rows = c.query(&sql, &[&range.from, &range.to, &limit]).await?;
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
        Ok(json!({"items": items, "total": total, "range": range.json()}))
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
                        ApiError::MissingTable(m) | ApiError::Unavailable(m) | ApiError::Internal(m) => m,
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
                .query("SELECT extract(epoch from max(window_start))::float8 AS newest_window_start FROM window_features", &[])
                .await);
            let pred = q(c
                .query(
                    "SELECT model_version, extract(epoch from window_start)::float8 AS window_start, \
                            extract(epoch from predicted_at)::float8 AS predicted_at \
                     FROM predictions ORDER BY window_start DESC LIMIT 1",
                    &[],
                )
                .await);
            let ing_packets = ing.as_ref().and_then(|v| v["packets"].as_i64());
            out["ingestor"] = json!({
                "packets_last_60s": ing_packets,
                "packets_per_s": ing_packets.map(|p| p as f64 / 60.0),
                "batches_last_60s": ing.as_ref().and_then(|v| v["batches"].as_i64()),
            });
            out["windows"] = json!({"newest_window_start": win.as_ref().and_then(|v| v["newest_window_start"].as_f64())});
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

// ---------------------------------------------------------------- alerts

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
        let total: i64 = c.query_one(&format!("SELECT count(*) FROM alerts WHERE {}", w.sql()), &w.refs()).await?.get(0);
        Ok(json!({"alerts": rows_json(&rows), "total": total, "limit": limit, "offset": offset, "filters": filters}))
    }
    .await;
    or_empty(r, empty)
}

/// `GET /api/alerts/summary`: open alerts by severity and class, all alerts by state, classes.
pub async fn alerts_summary(State(state): State<AppState>) -> JsonResult {
    let sev0 = json!({"LOW": 0, "MEDIUM": 0, "HIGH": 0, "CRITICAL": 0});
    let empty = json!({"open_by_severity": sev0.clone(), "open_by_class": {}, "by_state": {}, "classes": [], "total": 0});
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
            *by_state.entry(st.clone()).or_insert(json!(0)) = json!(by_state.get(&st).and_then(Value::as_i64).unwrap_or(0) + n);
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

/// `POST /api/alerts/{id}/resolve`: open -> resolved; 404 unknown id, 409 not open. Publishes
/// the change on `nta.alerts` so every open dashboard sees it.
pub async fn resolve_alert(State(state): State<AppState>, Path(id): Path<String>) -> JsonResult {
    let id = parse_id(&id)?;
    let c = db(&state).await?;
    let row = c
        .query_opt(
            &format!(
                "UPDATE alerts SET state = 'resolved', resolved_at = now(), updated_at = now() \
                 WHERE id = $1 AND state = 'open' RETURNING {ALERT_COLS}"
            ),
            &[&id],
        )
        .await?;
    let Some(row) = row else {
        let st = c.query_opt("SELECT state FROM alerts WHERE id = $1", &[&id]).await?;
        return Err(match st {
            None => ApiError::NotFound(format!("alert {id} not found")),
            Some(r) => ApiError::Conflict(format!("alert {id} is {}, not open", r.get::<_, String>(0))),
        });
    };
    let a = row_json(&row);
    let ev = json!({
        "id": id, "event": "resolved", "view": a["view"], "key": a["key"], "class": a["class"],
        "state": a["state"], "severity": a["severity"], "detected_by": a["detected_by"],
        "first_seen": a["first_seen"], "last_seen": a["last_seen"], "window_count": a["window_count"],
        "peak_confidence": a["peak_confidence"], "packets": a["packets"], "bytes": a["bytes"],
        "distinct_sources": a["distinct_sources"], "summary": a["summary"],
    });
    match serde_json::from_value::<wire::AlertEvent>(ev) {
        Ok(ev) => {
            let payload = serde_json::to_vec(&ev).unwrap_or_default();
            if let Err(e) = state.nats.publish(wire::ALERTS_SUBJECT, payload.into()).await {
                tracing::warn!(error = %e, "publishing the resolve event");
            }
        }
        Err(e) => tracing::warn!(error = %e, "alert row does not fit AlertEvent"),
    }
    Ok(Json(json!({"status": "resolved", "alert_id": id, "alert": Value::Object(a)})))
}

// ---------------------------------------------------------------- hosts

/// `GET /api/hosts/{ip}`: windows over time with their verdicts (5 s windows up to 1 h, 30 s
/// up to 6 h, 3 min beyond), peers, ports and alerts of one address.
pub async fn host(State(state): State<AppState>, Path(ip): Path<String>, Query(q): Q) -> JsonResult {
    let addr: std::net::IpAddr =
        ip.parse().map_err(|_| ApiError::bad(format!("not an IPv4 or IPv6 address: {ip:?}")))?;
    let p = Params(q);
    let range = p.time_range(DEFAULT_RANGE)?;
    let size: i32 = if range.seconds() <= 3600.0 {
        5
    } else if range.seconds() <= 6.0 * 3600.0 {
        30
    } else {
        180
    };
    let key = addr.to_string();
    let c = db(&state).await?;
    let mut notes = Vec::new();
    let windows = windows_or_missing(
        c.query(
            "SELECT w.view, extract(epoch from w.window_start)::float8 AS window_start, w.window_size, \
                    w.packet_count, w.byte_count, w.packet_rate_pps, w.byte_rate_bps, w.unique_dst_ips, \
                    w.unique_dst_ports, w.tcp_syn_count, w.dns_query_count, p.label, p.confidence \
             FROM window_features w \
             LEFT JOIN LATERAL (SELECT label, confidence FROM predictions p WHERE p.view = w.view AND p.key = w.key \
                  AND p.window_start = w.window_start AND p.window_size = w.window_size \
                  ORDER BY predicted_at DESC LIMIT 1) p ON true \
             WHERE w.window_size = $1 AND w.key = $2 AND w.window_start >= to_timestamp($3) \
               AND w.window_start < to_timestamp($4) ORDER BY w.window_start, w.view LIMIT 4000",
            &[&size, &key, &range.from, &range.to],
        )
        .await,
    );
    // predictions may be missing while window_features exists: retry without the verdicts.
    let windows = match windows {
        Err(ApiError::MissingTable(m)) if m.contains("predictions") => section_rows(
            c.query(
                "SELECT w.view, extract(epoch from w.window_start)::float8 AS window_start, w.window_size, \
                        w.packet_count, w.byte_count, w.packet_rate_pps, w.byte_rate_bps, w.unique_dst_ips, \
                        w.unique_dst_ports, w.tcp_syn_count, w.dns_query_count, NULL::text AS label, NULL::float8 AS confidence \
                 FROM window_features w WHERE w.window_size = $1 AND w.key = $2 AND w.window_start >= to_timestamp($3) \
                   AND w.window_start < to_timestamp($4) ORDER BY w.window_start, w.view LIMIT 4000",
                &[&size, &key, &range.from, &range.to],
            )
            .await,
            &mut notes,
        ),
        Err(ApiError::MissingTable(m)) => {
            notes.push(m);
            Ok(Vec::new())
        }
        other => other,
    }?;
    let tr = "ts >= to_timestamp($2) AND ts < to_timestamp($3)";
    let peers_out = section_rows(
        c.query(
            &format!("SELECT host(dst_ip) AS peer, count(*)::int8 AS packets, sum(length)::int8 AS bytes FROM raw_packets \
                      WHERE src_ip = $1 AND {tr} AND dst_ip IS NOT NULL GROUP BY dst_ip ORDER BY 2 DESC LIMIT 25"),
            &[&addr, &range.from, &range.to],
        )
        .await,
        &mut notes,
    )?;
    let peers_in = section_rows(
        c.query(
            &format!("SELECT host(src_ip) AS peer, count(*)::int8 AS packets, sum(length)::int8 AS bytes FROM raw_packets \
                      WHERE dst_ip = $1 AND {tr} AND src_ip IS NOT NULL GROUP BY src_ip ORDER BY 2 DESC LIMIT 25"),
            &[&addr, &range.from, &range.to],
        )
        .await,
        &mut notes,
    )?;
    let ports_contacted = section_rows(
        c.query(
            &format!("SELECT dst_port AS port, protocol, count(*)::int8 AS packets FROM raw_packets \
                      WHERE src_ip = $1 AND {tr} AND dst_port IS NOT NULL GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT 25"),
            &[&addr, &range.from, &range.to],
        )
        .await,
        &mut notes,
    )?;
    let ports_served = section_rows(
        c.query(
            &format!("SELECT dst_port AS port, protocol, count(*)::int8 AS packets FROM raw_packets \
                      WHERE dst_ip = $1 AND {tr} AND dst_port IS NOT NULL GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT 25"),
            &[&addr, &range.from, &range.to],
        )
        .await,
        &mut notes,
    )?;
    let with_service = |v: Vec<Value>| -> Vec<Value> {
        v.into_iter()
            .map(|mut o| {
                let port = o["port"].as_i64().unwrap_or(0);
                o["service"] = json!(service_name(port));
                o
            })
            .collect()
    };
    let alerts = section_rows(
        c.query(&format!("SELECT {ALERT_COLS} FROM alerts WHERE key = $1 ORDER BY last_seen DESC LIMIT 100"), &[&key])
            .await,
        &mut notes,
    )?;
    let sum = |v: &Vec<Value>, f: &str| v.iter().map(|x| x[f].as_i64().unwrap_or(0)).sum::<i64>();
    Ok(Json(json!({
        "ip": key, "range": range.json(), "window_size": size, "windows": windows,
        "totals": {
            "packets_sent_top_peers": sum(&peers_out, "packets"),
            "packets_received_top_peers": sum(&peers_in, "packets"),
        },
        "peers": {"sent_to": peers_out, "received_from": peers_in},
        "ports": {"contacted": with_service(ports_contacted), "served": with_service(ports_served)},
        "alerts": alerts, "notes": notes,
    })))
}

fn windows_or_missing(r: Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>) -> ApiResult<Vec<Value>> {
    r.map(|rows| rows_json(&rows)).map_err(ApiError::from)
}

/// Rows as JSON, or none (with a note) when a table is missing.
fn section_rows(r: Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>, notes: &mut Vec<String>) -> ApiResult<Vec<Value>> {
    match r {
        Ok(rows) => Ok(rows_json(&rows)),
        Err(e) => match ApiError::from(e) {
            ApiError::MissingTable(m) => {
                notes.push(m);
                Ok(Vec::new())
            }
            e => Err(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_injection() {
        assert_eq!(csv_cell(&json!("=HYPERLINK(\"x\")")), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell(&json!("+1")), "\"'+1\"");
        assert_eq!(csv_cell(&json!("-cmd")), "\"'-cmd\"");
        assert_eq!(csv_cell(&json!("@SUM(A1)")), "\"'@SUM(A1)\"");
        assert_eq!(csv_cell(&json!("example.com")), "\"example.com\"");
        assert_eq!(csv_cell(&json!(443)), "\"443\"");
        assert_eq!(csv_cell(&Value::Null), "\"\"");
    }

    #[test]
    fn buckets() {
        assert_eq!(bucket_seconds(900.0, 5), 5);
        assert_eq!(bucket_seconds(3600.0, 5), 15);
        assert_eq!(bucket_seconds(86400.0, 5), 300);
        assert_eq!(service_name(22), "SSH");
        assert_eq!(service_name(12345), "Unknown");
    }
}
