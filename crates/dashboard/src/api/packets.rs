//! Packet search, CSV export and the newest packets (`raw_packets`).

use super::*;
use futures::StreamExt;

/// The packet filters shared by search, pagination and CSV export.
pub(crate) fn packet_filter(p: &Params) -> ApiResult<(Where, TimeRange, Value)> {
    let range = p.time_range(DEFAULT_RANGE)?;
    packet_filter_in(p, range)
}

/// [`packet_filter`] over a given time range.
fn packet_filter_in(p: &Params, range: TimeRange) -> ApiResult<(Where, TimeRange, Value)> {
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
    if let Some(app) = p.opt_enum("app_proto", &APP_PROTOS)? {
        w.push("app_proto = $?", app.to_string());
        echo.insert("app_proto".into(), json!(app));
    }
    if let Some(sni) = p.opt_text("sni")? {
        w.push("tls_sni ILIKE $?", like_substring(&sni));
        echo.insert("sni".into(), json!(sni));
    }
    Ok((w, range, Value::Object(echo)))
}

const MAX_OFFSET: i64 = 100_000;
/// Matches counted exactly up to this many; beyond it the total is a lower bound ("10 000+"),
/// so a count never scans more than this many rows.
const COUNT_CAP: i64 = 10_000;
/// Newest first. Qualified: a bare `ts` would name the epoch-seconds output column of
/// PACKET_COLS, an expression no index can order by.
const PACKET_ORDER: &str = "raw_packets.ts DESC, batch_id DESC, idx DESC";

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
        // raw_packets has a BRIN index on ts, which finds a time slice but gives no order: the
        // newest packets of an hour would be sorted out of every packet of the hour. The page
        // is the same from the newest minute, ten minutes, hour... as soon as that slice alone
        // fills it, so look in growing slices back from the end of the range.
        let mut rows = Vec::new();
        for back in [60.0, 300.0, 900.0, 3600.0, 6.0 * 3600.0, 86400.0, f64::INFINITY] {
            let slice = TimeRange { from: (range.to - back).max(range.from), to: range.to };
            let (ws, _, _) = packet_filter_in(&p, slice)?;
            let sql = format!("SELECT {PACKET_COLS} FROM raw_packets WHERE {} ORDER BY {PACKET_ORDER} LIMIT {per_page} OFFSET {offset}", ws.sql());
            rows = c.query(&sql, &ws.refs()).await?;
            if rows.len() as i64 == per_page || slice.from <= range.from {
                break;
            }
        }
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

/// First characters that make a spreadsheet read a cell as a formula (OWASP CSV injection:
/// `=`, `+`, `-`, `@`, and their full-width forms, which some spreadsheets fold to ASCII).
const FORMULA_START: [char; 8] = ['=', '+', '-', '@', '\u{FF1D}', '\u{FF0B}', '\u{FF0D}', '\u{FF20}'];

/// A CSV cell, neutralised against formula injection (OWASP): a string starting with tab, CR
/// or LF, or whose first non-blank character starts a formula (spreadsheets skip leading
/// blanks: ` =1+1`), gets a leading `'`; every cell is quoted with inner quotes doubled.
/// Numbers are not attacker text and stay as they are (a negative number stays a number).
pub fn csv_cell(v: &Value) -> String {
    let s = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => return format!("\"{}\"", other.to_string().replace('"', "\"\"")),
    };
    let risky = s.starts_with(['\t', '\r', '\n']) || s.trim_start().starts_with(FORMULA_START);
    let s = if risky { format!("'{s}") } else { s };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Rows sent to the client per chunk of the CSV stream.
const CSV_CHUNK_ROWS: usize = 256;

/// `GET /api/packets.csv`: the search result as CSV (same filters; `limit` rows, at most 100 000),
/// streamed from PostgreSQL's row stream, so memory stays flat however many rows there are. An
/// error half-way aborts the response (the client sees a truncated transfer, not a short file
/// that looks complete).
pub async fn packets_csv(State(state): State<AppState>, Query(q): Q) -> ApiResult<Response> {
    let p = Params(q);
    let (w, _, _) = packet_filter(&p)?;
    let limit = p.int("limit", 10_000, 1, 100_000)?;
    let c = db(&state).await?;
    let sql = format!(
        "SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS time, {PACKET_COLS} \
         FROM raw_packets WHERE {} ORDER BY {PACKET_ORDER} LIMIT {limit}",
        w.sql()
    );
    let (header_cols, rows) = match c.prepare(&sql).await {
        Ok(stmt) => {
            let cols: Vec<String> = stmt.columns().iter().map(|c| c.name().to_string()).collect();
            let rows = c.query_raw(&stmt, w.refs()).await?;
            (cols, Some(rows))
        }
        Err(e) => match ApiError::from(e) {
            // No table yet: a header-only CSV.
            ApiError::MissingTable(_) => {
                let mut cols = vec!["time".to_string()];
                cols.extend(PACKET_COLS.split(',').map(|c| c.rsplit(' ').next().unwrap_or("").trim().to_string()));
                (cols, None)
            }
            e => return Err(e),
        },
    };
    let head =
        futures::stream::once(std::future::ready(Ok::<_, std::io::Error>(format!("{}\r\n", header_cols.join(",")))));
    let body = match rows {
        None => axum::body::Body::from_stream(head),
        Some(rows) => {
            // The pooled connection must outlive the row stream that reads from it.
            let conn = c;
            let lines = rows.ready_chunks(CSV_CHUNK_ROWS).map(move |chunk| {
                let _conn = &conn;
                let mut out = String::with_capacity(chunk.len() * 200);
                for r in chunk {
                    let r = r.map_err(|e| {
                        tracing::warn!(error = %e, "CSV export aborted");
                        std::io::Error::other("database error during the export")
                    })?;
                    let m = row_json(&r);
                    let cells: Vec<String> =
                        header_cols.iter().map(|k| csv_cell(m.get(k).unwrap_or(&Value::Null))).collect();
                    out.push_str(&cells.join(","));
                    out.push_str("\r\n");
                }
                Ok(out)
            });
            axum::body::Body::from_stream(head.chain(lines))
        }
    };
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"packets.csv\""));
    Ok(resp)
}

/// The `n` newest packets. `raw_packets` has only a BRIN index on ts (no order), so look in
/// growing windows back from now, then one day partition at a time, newest first.
async fn latest_packets(state: &AppState, n: i64) -> ApiResult<Vec<Value>> {
    let c = db(state).await?;
    for secs in [60.0f64, 300.0, 900.0, 3600.0] {
        let sql = format!("SELECT {PACKET_COLS} FROM raw_packets WHERE ts >= now() - make_interval(secs => $1) ORDER BY {PACKET_ORDER} LIMIT {n}");
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
        let sql = format!("SELECT {PACKET_COLS} FROM raw_packets WHERE ts >= to_timestamp($1) AND ts < to_timestamp($2) ORDER BY {PACKET_ORDER} LIMIT {want}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_neutralised() {
        let cell = |s: &str| csv_cell(&Value::String(s.into()));
        for payload in [
            "=1+1",
            "+1+1",
            "-1+1",
            "@SUM(A1)",
            "\t=1+1",
            "\r=1+1",
            "\n=1+1",
            "\tplain",
            " =1+1",
            "   @x",
            "\u{A0}=1",
            "\u{3000}+1",
            "\u{FF1D}1+1",
            "\u{FF0B}1",
            "\u{FF0D}1",
            "\u{FF20}SUM(A1)",
            " \u{FF1D}HYPERLINK(\"http://evil\")",
            "=HYPERLINK(\"http://evil\",\"x\")",
        ] {
            let c = cell(payload);
            assert!(c.starts_with("\"'"), "{payload:?} -> {c:?}");
            assert_eq!(c, format!("\"'{}\"", payload.replace('"', "\"\"")), "{payload:?}");
        }
        assert_eq!(cell("example.com"), "\"example.com\"");
        assert_eq!(cell("a\"b"), "\"a\"\"b\"");
        assert_eq!(cell("a=b"), "\"a=b\"");
        assert_eq!(csv_cell(&json!(-5)), "\"-5\"", "a number is not attacker text");
        assert_eq!(csv_cell(&Value::Null), "\"\"");
    }
}
