//! Alerts as published on `nta.alerts` (JSON, so browsers and scripts read them directly).

use serde::{Deserialize, Serialize};

/// Subject of alert events (an alert opened, updated, resolved or closed).
pub const ALERTS_SUBJECT: &str = "nta.alerts";

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
}
