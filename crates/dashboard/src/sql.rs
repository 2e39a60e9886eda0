//! Errors, validated query parameters and row-to-JSON conversion shared by the handlers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::Row;

/// Error of an API call, rendered as `{"error": kind, "message": text}` with its status.
/// Internal errors and database failures answer a generic message with a short id; the
/// details (PostgreSQL's text, which may name tables, columns or hosts) go to the log only.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    NotFound(String),
    Conflict(String),
    Forbidden(String),
    /// A table another role creates does not exist yet (handlers turn it into an empty answer).
    MissingTable(String),
    /// PostgreSQL unreachable, the pool exhausted or a query timed out (a message for the
    /// client: say nothing here that only the log should know).
    Unavailable(String),
    /// Details for the log; the client gets a generic body with an id to find them.
    Internal(String),
}

/// A short random id tying a generic error answer to its log line.
pub fn error_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Logs an internal error under a new id; returns the id and the message for the client.
pub fn log_internal(detail: &str) -> (String, String) {
    let id = error_id();
    tracing::error!(error_id = %id, error = %detail, "dashboard request failed");
    (id.clone(), format!("internal error (id {id}; details are in the dashboard's log)"))
}

/// Logs `detail` under a new id and returns the client's message.
fn logged_unavailable(detail: impl std::fmt::Display) -> ApiError {
    let id = error_id();
    tracing::warn!(error_id = %id, error = %detail, "dashboard: database unavailable");
    ApiError::Unavailable(format!("database unavailable (error id {id}; details are in the dashboard's log)"))
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn bad(msg: impl Into<String>) -> ApiError {
        ApiError::BadRequest(msg.into())
    }
}

/// Errors of the `store` functions: a PostgreSQL error inside keeps its meaning (missing
/// table, unavailable), anything else is internal.
impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        match e.downcast::<tokio_postgres::Error>() {
            Ok(pg) => pg.into(),
            Err(e) => ApiError::Internal(format!("{e:#}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, msg) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m),
            ApiError::MissingTable(m) => (StatusCode::SERVICE_UNAVAILABLE, "missing_table", m),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m),
            ApiError::Internal(m) => {
                let (id, msg) = log_internal(&m);
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({ "error": "internal", "message": msg, "id": id })),
                )
                    .into_response();
            }
        };
        (status, Json(json!({ "error": kind, "message": msg }))).into_response()
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> ApiError {
        match e.code() {
            Some(c) if *c == SqlState::UNDEFINED_TABLE => {
                let msg = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string());
                ApiError::MissingTable(format!(
                    "{msg} (the role that creates it has not run against this database yet)"
                ))
            }
            Some(c) if *c == SqlState::QUERY_CANCELED => {
                ApiError::Unavailable("query took longer than 20 s; narrow the time range or filters".into())
            }
            Some(_) => {
                ApiError::Internal(format!("database error: {}", e.as_db_error().map(|d| d.message()).unwrap_or("?")))
            }
            None => logged_unavailable(e),
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> ApiError {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            e => logged_unavailable(e),
        }
    }
}

/// `r`, or when a table is missing `empty` plus `"status": "missing_table"` and the reason.
pub fn or_empty(r: ApiResult<Value>, empty: Value) -> ApiResult<Json<Value>> {
    match r {
        Ok(v) => Ok(Json(v)),
        Err(ApiError::MissingTable(m)) => {
            let mut v = empty;
            if let Value::Object(o) = &mut v {
                o.insert("status".into(), json!("missing_table"));
                o.insert("detail".into(), json!(m));
            }
            Ok(Json(v))
        }
        Err(e) => Err(e),
    }
}

/// Query-string parameters, parsed by hand so that every bad value is a JSON 400 naming it.
pub struct Params(pub HashMap<String, String>);

impl Params {
    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    pub fn int(&self, name: &str, default: i64, min: i64, max: i64) -> ApiResult<i64> {
        match self.str(name) {
            None => Ok(default),
            Some(s) => match s.parse::<i64>() {
                Ok(v) if (min..=max).contains(&v) => Ok(v),
                _ => Err(ApiError::bad(format!("`{name}` must be an integer from {min} to {max}, got {s:?}"))),
            },
        }
    }

    pub fn opt_int(&self, name: &str, min: i64, max: i64) -> ApiResult<Option<i64>> {
        if self.str(name).is_none() {
            return Ok(None);
        }
        self.int(name, 0, min, max).map(Some)
    }

    pub fn opt_f64(&self, name: &str) -> ApiResult<Option<f64>> {
        match self.str(name) {
            None => Ok(None),
            Some(s) => match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(Some(v)),
                _ => Err(ApiError::bad(format!("`{name}` must be a number (epoch seconds), got {s:?}"))),
            },
        }
    }

    pub fn opt_ip(&self, name: &str) -> ApiResult<Option<std::net::IpAddr>> {
        match self.str(name) {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad(format!("`{name}` must be an IPv4 or IPv6 address, got {s:?}"))),
        }
    }

    pub fn opt_bool(&self, name: &str) -> ApiResult<Option<bool>> {
        match self.str(name) {
            None => Ok(None),
            Some("true" | "1" | "yes") => Ok(Some(true)),
            Some("false" | "0" | "no") => Ok(Some(false)),
            Some(s) => Err(ApiError::bad(format!("`{name}` must be true or false, got {s:?}"))),
        }
    }

    /// A free-text filter: at most 256 characters, no control characters.
    pub fn opt_text(&self, name: &str) -> ApiResult<Option<String>> {
        match self.str(name) {
            None => Ok(None),
            Some(s) if s.chars().count() > 256 => Err(ApiError::bad(format!("`{name}` is longer than 256 characters"))),
            Some(s) if s.chars().any(char::is_control) => {
                Err(ApiError::bad(format!("`{name}` contains control characters")))
            }
            Some(s) => Ok(Some(s.to_string())),
        }
    }

    /// One of `allowed` (compared case-insensitively; the allowed spelling is returned).
    pub fn opt_enum(&self, name: &str, allowed: &[&'static str]) -> ApiResult<Option<&'static str>> {
        match self.str(name) {
            None => Ok(None),
            Some(s) => allowed
                .iter()
                .find(|a| a.eq_ignore_ascii_case(s))
                .copied()
                .map(Some)
                .ok_or_else(|| ApiError::bad(format!("`{name}` must be one of {}, got {s:?}", allowed.join(", ")))),
        }
    }

    /// The time range `[from, to)` in epoch seconds: `from`/`to` (either may be omitted: `to`
    /// defaults to now, `from` to `to` minus the range), or `range` = 5m, 15m, 1h, 6h, 24h or 7d
    /// (default `default_range` seconds). At most 31 days long.
    pub fn time_range(&self, default_range: f64) -> ApiResult<TimeRange> {
        let named = match self.str("range") {
            None => None,
            Some(r) => Some(match r {
                "5m" => 300.0,
                "15m" => 900.0,
                "1h" => 3600.0,
                "6h" => 6.0 * 3600.0,
                "24h" | "1d" => 86400.0,
                "7d" => 7.0 * 86400.0,
                _ => return Err(ApiError::bad(format!("`range` must be one of 5m, 15m, 1h, 6h, 24h, 7d, got {r:?}"))),
            }),
        };
        let from = self.opt_f64("from")?;
        let to = self.opt_f64("to")?;
        if named.is_some() && from.is_some() {
            return Err(ApiError::bad("give either `range` or `from`, not both"));
        }
        let to = to.unwrap_or_else(now_epoch);
        let from = from.unwrap_or(to - named.unwrap_or(default_range));
        // 2000-01-01 .. 2100-01-01: anything else is a unit mistake (e.g. milliseconds).
        for (n, v) in [("from", from), ("to", to)] {
            if !(946_684_800.0..=4_102_444_800.0).contains(&v) {
                return Err(ApiError::bad(format!(
                    "`{n}` = {v} is not an epoch time in seconds between 2000 and 2100"
                )));
            }
        }
        if from >= to {
            return Err(ApiError::bad(format!("empty time range: `from` ({from}) must be before `to` ({to})")));
        }
        if to - from > 31.0 * 86400.0 {
            return Err(ApiError::bad("time range longer than 31 days"));
        }
        Ok(TimeRange { from, to })
    }
}

#[derive(Debug, Clone, Copy)]
pub struct TimeRange {
    pub from: f64,
    pub to: f64,
}

impl TimeRange {
    pub fn seconds(&self) -> f64 {
        self.to - self.from
    }
    pub fn json(&self) -> Value {
        json!({ "from": self.from, "to": self.to })
    }
}

pub fn now_epoch() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// One row as a JSON object, by column type. Queries convert timestamps to epoch seconds
/// (`extract(epoch from ..)::float8`), addresses to text (`host(..)`) and sums to int8/float8.
pub fn row_json(row: &Row) -> Map<String, Value> {
    let mut m = Map::new();
    for (i, c) in row.columns().iter().enumerate() {
        let t = c.type_();
        let v = if *t == Type::FLOAT8 {
            row.try_get::<_, Option<f64>>(i).ok().flatten().map(float).unwrap_or(Value::Null)
        } else if *t == Type::FLOAT4 {
            row.try_get::<_, Option<f32>>(i).ok().flatten().map(|f| float(f as f64)).unwrap_or(Value::Null)
        } else if *t == Type::INT8 {
            json!(row.try_get::<_, Option<i64>>(i).ok().flatten())
        } else if *t == Type::INT4 {
            json!(row.try_get::<_, Option<i32>>(i).ok().flatten())
        } else if *t == Type::INT2 {
            json!(row.try_get::<_, Option<i16>>(i).ok().flatten())
        } else if *t == Type::BOOL {
            json!(row.try_get::<_, Option<bool>>(i).ok().flatten())
        } else if *t == Type::JSONB || *t == Type::JSON {
            row.try_get::<_, Option<Value>>(i).ok().flatten().unwrap_or(Value::Null)
        } else if *t == Type::TEXT_ARRAY {
            json!(row.try_get::<_, Option<Vec<String>>>(i).ok().flatten())
        } else {
            json!(row.try_get::<_, Option<String>>(i).ok().flatten())
        };
        m.insert(c.name().to_string(), v);
    }
    m
}

pub fn rows_json(rows: &[Row]) -> Vec<Value> {
    rows.iter().map(|r| Value::Object(row_json(r))).collect()
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)
}

/// `s` escaped for LIKE/ILIKE (backslash is PostgreSQL's default escape character) and
/// wrapped in `%` for a substring match.
pub fn like_substring(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for ch in s.chars() {
        if matches!(ch, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Params {
        Params(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn time_ranges() {
        let r = p(&[("from", "1700000000"), ("to", "1700000900")]).time_range(3600.0).unwrap();
        assert_eq!(r.seconds(), 900.0);
        let r = p(&[("range", "24h")]).time_range(3600.0).unwrap();
        assert!((r.seconds() - 86400.0).abs() < 1e-6);
        assert!(p(&[("range", "2y")]).time_range(3600.0).is_err());
        assert!(p(&[("from", "1700000900"), ("to", "1700000000")]).time_range(3600.0).is_err());
        assert!(p(&[("from", "abc")]).time_range(3600.0).is_err());
        assert!(p(&[("from", "1700000000000")]).time_range(3600.0).is_err());
        assert!(p(&[("from", "1600000000"), ("to", "1700000000")]).time_range(3600.0).is_err());
        assert!(p(&[("range", "1h"), ("from", "1700000000")]).time_range(3600.0).is_err());
    }

    #[test]
    fn like_escaping() {
        assert_eq!(like_substring("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
