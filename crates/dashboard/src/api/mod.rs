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

mod alerts;
mod extent;
mod hosts;
mod overview;
mod packets;
mod pcap;
pub mod rollup;
mod runs;

pub use alerts::*;
pub use extent::*;
pub use hosts::*;
pub use overview::*;
pub use packets::*;
pub use pcap::pcap;
pub use runs::*;

pub(crate) type Q = Query<HashMap<String, String>>;
pub(crate) type JsonResult = ApiResult<Json<Value>>;

pub const DEFAULT_RANGE: f64 = 3600.0;
pub const SEVERITIES: [&str; 4] = ["LOW", "MEDIUM", "HIGH", "CRITICAL"];
pub const STATES: [&str; 3] = ["open", "resolved", "closed"];
pub const PROTOCOLS: [&str; 6] = ["TCP", "UDP", "ICMP", "ICMPv6", "ARP", "OTHER"];
/// `app_proto` values ([`wire::AppProto`]'s names).
pub const APP_PROTOS: [&str; 5] = {
    let all = wire::AppProto::ALL;
    [all[0].as_str(), all[1].as_str(), all[2].as_str(), all[3].as_str(), all[4].as_str()]
};

/// Columns of a packet as the API returns it.
pub(crate) const PACKET_COLS: &str = "extract(epoch from ts)::float8 AS ts, interface, host(src_ip) AS src_ip, \
    host(dst_ip) AS dst_ip, protocol, length, src_port, dst_port, tcp_flags, icmp_type, icmp_code, arp_op, \
    host(arp_psrc) AS arp_psrc, host(arp_pdst) AS arp_pdst, arp_hwsrc::text AS arp_hwsrc, \
    arp_hwdst::text AS arp_hwdst, dns_qname, dns_qtype, dns_query, dns_response, dns_answer_count, \
    http_method, http_path, http_status_code, http_host, src_mac::text AS src_mac, dst_mac::text AS dst_mac, \
    vlan, app_proto, tls_sni, agent_id";

/// Columns of an alert as the API returns it.
pub(crate) const ALERT_COLS: &str = "id, view, key, class, state, severity, detected_by, \
    extract(epoch from first_seen)::float8 AS first_seen, extract(epoch from last_seen)::float8 AS last_seen, \
    window_count, peak_confidence, packets, bytes, distinct_sources, summary, model_version, \
    extract(epoch from created_at)::float8 AS created_at, extract(epoch from updated_at)::float8 AS updated_at, \
    extract(epoch from resolved_at)::float8 AS resolved_at, extract(epoch from closed_at)::float8 AS closed_at";

pub(crate) async fn db(state: &AppState) -> ApiResult<deadpool_postgres::Object> {
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

pub(crate) fn pct(part: i64, total: i64) -> f64 {
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

/// `GET /metrics` (no auth): Prometheus text format. Public, so nothing that helps an attacker:
/// login failures and lockouts are only in the process-wide metrics on `metrics_addr`.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let c = &state.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut body = String::new();
    for (name, kind, help, value) in [
        ("nta_dashboard_http_requests_total", "counter", "HTTP requests served.", load(&c.http_requests)),
        (
            "nta_dashboard_alert_events_total",
            "counter",
            "Alert events received from NTA_ALERTS.",
            load(&c.alert_events),
        ),
        ("nta_dashboard_sse_clients", "gauge", "Connected live-alert (SSE) clients.", load(&c.sse_clients)),
        (
            "nta_dashboard_sse_refused_total",
            "counter",
            "Live-alert streams refused (max_sse_streams).",
            load(&c.sse_refused),
        ),
        ("nta_dashboard_open_connections", "gauge", "Open HTTP connections.", load(&c.open_connections)),
        (
            "nta_dashboard_connections_refused_total",
            "counter",
            "Connections closed at once (max_connections).",
            load(&c.connections_refused),
        ),
        (
            "nta_dashboard_header_timeouts_total",
            "counter",
            "Connections closed for not sending a request (or TLS handshake) in time.",
            load(&c.header_timeouts),
        ),
    ] {
        body.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

pub const OPENAPI: &str = include_str!("../../assets/openapi.json");

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// WHERE-clause builder: conditions are constant SQL with `$?` where the next bound parameter
/// goes; values are never spliced into the text.
#[derive(Default)]
pub(crate) struct Where {
    conds: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Where {
    pub(crate) fn push<T: ToSql + Sync + Send + 'static>(&mut self, cond: &str, v: T) {
        self.params.push(Box::new(v));
        self.conds.push(cond.replace("$?", &format!("${}", self.params.len())));
    }
    pub(crate) fn sql(&self) -> String {
        if self.conds.is_empty() {
            "TRUE".into()
        } else {
            self.conds.join(" AND ")
        }
    }
    pub(crate) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
    }
    pub(crate) fn time(&mut self, col: &str, r: &TimeRange) {
        self.push(&format!("{col} >= to_timestamp($?)"), r.from);
        self.push(&format!("{col} < to_timestamp($?)"), r.to);
    }
}
