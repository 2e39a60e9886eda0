//! `GET /api/pcap`: the frames kept on `NTA_FRAMES` for a range, an alert, a host page or a
//! packet search, as a pcap file (see the `forensics` crate). Frames are attacker-controlled
//! bytes: they are only ever sent as an attachment, never rendered.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::Q;
use crate::sql::{ApiError, ApiResult};
use crate::AppState;

pub async fn pcap(State(state): State<AppState>, Query(q): Q) -> ApiResult<Response> {
    let text = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let bad = |e: forensics::ExportError| ApiError::BadRequest(e.to_string());
    let time = |k: &str| text(k).map(|t| forensics::parse_time(k, t)).transpose().map_err(bad);
    let parsed = |k: &str, what: &str| -> ApiResult<Option<String>> {
        Ok(text(k).map(str::to_string)).and_then(|v| match &v {
            Some(s) if s.len() > 2048 => Err(ApiError::BadRequest(format!("{k}: {what} too long"))),
            _ => Ok(v),
        })
    };
    let host = match text("host") {
        Some(h) => Some(h.parse().map_err(|_| ApiError::BadRequest(format!("host: {h:?} is not an IP address")))?),
        None => None,
    };
    let port = match text("port") {
        Some(p) => Some(p.parse().map_err(|_| ApiError::BadRequest(format!("port: {p:?} is not a port number")))?),
        None => None,
    };
    let alert = match text("alert") {
        Some(a) => Some(a.parse().map_err(|_| ApiError::BadRequest(format!("alert: {a:?} is not an alert id")))?),
        None => None,
    };
    let known = ["from", "to", "host", "port", "bpf", "agent", "alert"];
    if let Some(k) = q.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::BadRequest(format!("unknown parameter {k:?} (known: {})", known.join(", "))));
    }
    let req = forensics::ExportRequest {
        from_ns: time("from")?,
        to_ns: time("to")?,
        host,
        port,
        bpf: parsed("bpf", "filter")?,
        agent: parsed("agent", "agent id")?,
        alert,
        max_bytes: Some(state.pcap_max_bytes),
        max_range_ns: Some(state.pcap_max_range_ns),
    };
    let js = async_nats::jetstream::new(state.nats.clone());
    let mut out = Vec::new();
    let result = match req.alert {
        Some(_) => {
            let c = super::db(&state).await?;
            let client: &tokio_postgres::Client = &c;
            forensics::export(&js, Some(client), &req, &mut out, |_| {}).await
        }
        None => forensics::export(&js, None::<&tokio_postgres::Client>, &req, &mut out, |_| {}).await,
    };
    let report = match result {
        Ok(r) => r,
        Err(forensics::ExportError::BadRequest(m)) => return Err(ApiError::BadRequest(m)),
        Err(forensics::ExportError::Failed(e)) => return Err(ApiError::Internal(format!("pcap export: {e:#}"))),
    };
    let ext = if report.format.starts_with("pcapng") { "pcapng" } else { "pcap" };
    // Only digits, letters and dashes reach the file name.
    let name = format!(
        "nta-{}{}.{ext}",
        wire::time::format_ns(report.from_ns).replace([':', '.'], "-"),
        report.host.map(|h| format!("-{}", h.to_string().replace([':', '.'], "-"))).unwrap_or_default()
    );
    let mut resp = (
        [
            (header::CONTENT_TYPE, "application/vnd.tcpdump.pcap".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        out,
    )
        .into_response();
    for (i, w) in report.warnings.iter().enumerate().take(4) {
        // Warnings are ours (times, counts), never frame bytes; header-safe by construction.
        if let Ok(v) = axum::http::HeaderValue::from_str(&w.replace(['\r', '\n'], " ")) {
            resp.headers_mut().insert(
                axum::http::HeaderName::from_bytes(format!("x-nta-warning-{i}").as_bytes()).expect("valid name"),
                v,
            );
        }
    }
    Ok(resp)
}
