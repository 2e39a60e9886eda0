//! Alert events as published on `NTA_ALERTS`, subjects `nta.alerts.<class>` (JSON, so browsers
//! and scripts read them directly).

use serde::{Deserialize, Serialize};

/// One alert event; mirrors a row of the `alerts` table after the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub id: i64,
    /// "opened", "updated", "resolved" or "closed".
    pub event: String,
    pub view: crate::View,
    pub key: String,
    pub class: String,
    pub state: String,
    pub severity: String,
    pub detected_by: String,
    /// Epoch seconds.
    pub first_seen: f64,
    pub last_seen: f64,
    pub window_count: i64,
    pub peak_confidence: f64,
    pub packets: i64,
    pub bytes: i64,
    pub distinct_sources: Option<i64>,
    pub summary: String,
    /// Id of the event (its outbox row), the same in the `Nats-Msg-Id` header
    /// (`nta-alert-event-<event_id>`); set when the event is published, absent before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<i64>,
}

/// Severity thresholds on the peak confidence (the SQL of the upsert is generated from them).
pub const SEVERITIES: [(f64, &str); 3] = [(0.9, "CRITICAL"), (0.7, "HIGH"), (0.5, "MEDIUM")];

pub fn severity(peak_confidence: f64) -> &'static str {
    SEVERITIES.iter().find(|(t, _)| peak_confidence >= *t).map_or("LOW", |(_, s)| s)
}

/// `CASE WHEN <expr> >= 0.9 THEN 'CRITICAL' ... ELSE 'LOW' END`
pub fn severity_sql(expr: &str) -> String {
    let mut s = String::from("CASE");
    for (t, name) in SEVERITIES {
        s.push_str(&format!(" WHEN {expr} >= {t} THEN '{name}'"));
    }
    s.push_str(" ELSE 'LOW' END");
    s
}

/// "syn_flood against 10.0.0.5 from 9,600 sources" (destination view), "port_scan from
/// 10.0.0.66" (source view).
pub fn summary(view: crate::View, key: &str, class: &str, distinct_sources: Option<i64>) -> String {
    match view {
        crate::View::Destination => match distinct_sources {
            Some(n) => format!("{class} against {key} from {} source{}", thousands(n), if n == 1 { "" } else { "s" }),
            None => format!("{class} against {key}"),
        },
        crate::View::Source => format!("{class} from {key}"),
    }
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}
