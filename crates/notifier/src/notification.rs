//! What is sent: the alert event, its idempotency key and a one-line summary; and which events
//! are sent at all (filters and the per-alert quiet period).

use std::collections::HashMap;
use std::time::{Duration, Instant};
use wire::AlertEvent;

/// One alert event to deliver.
#[derive(Debug, Clone)]
pub struct Notification {
    pub alert: AlertEvent,
    /// Stable per event (the `Nats-Msg-Id` the predictor published it with): a receiver that
    /// sees it twice (a redelivery after a crash) can drop the second copy.
    pub idempotency_key: String,
}

impl Notification {
    pub fn new(alert: AlertEvent, msg_id: Option<&str>) -> Notification {
        let idempotency_key = match msg_id {
            Some(id) if !id.is_empty() => id.to_string(),
            _ if alert.event_id.is_some() => bus::alert_event_msg_id(alert.event_id.unwrap_or_default()),
            // Events published without an id: what identifies the event is the alert and the
            // change (an update is identified by the last window it took in).
            _ => format!("alert-{}-{}-{}-{}", alert.id, alert.event, alert.window_count, alert.last_seen),
        };
        Notification { alert, idempotency_key }
    }

    /// `[NTA] HIGH port_scan from 10.0.0.66 (opened, 12 windows, confidence 0.93)`: plain text;
    /// every output escapes it for its own format (the key and summary are attacker-controlled).
    pub fn text(&self) -> String {
        let a = &self.alert;
        format!(
            "[NTA] {} {} ({}, {} window{}, confidence {:.2})",
            a.severity,
            a.summary,
            a.event,
            a.window_count,
            if a.window_count == 1 { "" } else { "s" },
            a.peak_confidence
        )
    }
}

/// Rank of a severity name (unknown names rank lowest).
pub fn severity_rank(s: &str) -> u8 {
    match s.to_ascii_uppercase().as_str() {
        "CRITICAL" => 4,
        "HIGH" => 3,
        "MEDIUM" => 2,
        "LOW" => 1,
        _ => 0,
    }
}

/// Why an event is not notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Severity,
    Class,
    Quiet,
    Resolved,
}

impl Skip {
    pub const ALL: [Skip; 4] = [Skip::Severity, Skip::Class, Skip::Quiet, Skip::Resolved];

    pub fn label(self) -> &'static str {
        match self {
            Skip::Severity => "severity",
            Skip::Class => "class",
            Skip::Quiet => "quiet_period",
            Skip::Resolved => "resolved",
        }
    }
}

/// Filters plus the quiet period, per replica (replicas sharing the consumer each see part of
/// an alert's updates, so with several replicas an update may be notified a little more often).
pub struct Policy {
    min_rank: u8,
    classes: Vec<String>,
    quiet: Duration,
    notify_resolved: bool,
    /// (view, key, class) -> when it was last notified and with which severity rank.
    last: HashMap<(String, String, String), (Instant, u8)>,
}

impl Policy {
    pub fn new(min_severity: &str, classes: Vec<String>, quiet: Duration, notify_resolved: bool) -> Policy {
        Policy { min_rank: severity_rank(min_severity), classes, quiet, notify_resolved, last: HashMap::new() }
    }

    /// Decides on `a` at `now` and remembers a notification it lets through. Opened always
    /// notifies; an update notifies when its severity rose above the last notified one or the
    /// quiet period has passed since; resolved/closed notify if configured (and end the state).
    pub fn admit(&mut self, a: &AlertEvent, now: Instant) -> Result<(), Skip> {
        if !self.classes.is_empty() && !self.classes.iter().any(|c| c == &a.class) {
            return Err(Skip::Class);
        }
        let rank = severity_rank(&a.severity);
        if rank < self.min_rank {
            return Err(Skip::Severity);
        }
        let id = (a.view.as_str().to_string(), a.key.clone(), a.class.clone());
        match a.event.as_str() {
            "resolved" | "closed" => {
                self.last.remove(&id);
                if self.notify_resolved {
                    Ok(())
                } else {
                    Err(Skip::Resolved)
                }
            }
            "opened" => {
                self.last.insert(id, (now, rank));
                Ok(())
            }
            _ => match self.last.get(&id) {
                Some(&(at, last_rank)) if rank <= last_rank && now.duration_since(at) < self.quiet => Err(Skip::Quiet),
                _ => {
                    self.last.insert(id, (now, rank));
                    Ok(())
                }
            },
        }
    }

    /// Forgets alerts not notified for a long time (bounded memory on a busy network).
    pub fn prune(&mut self, now: Instant) {
        let keep = self.quiet.max(Duration::from_secs(60)) * 4;
        self.last.retain(|_, (at, _)| now.duration_since(*at) < keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, severity: &str) -> AlertEvent {
        AlertEvent {
            id: 1,
            event: event.into(),
            view: wire::View::Source,
            key: "10.0.0.66".into(),
            class: "port_scan".into(),
            state: "open".into(),
            severity: severity.into(),
            detected_by: "model".into(),
            first_seen: 0.0,
            last_seen: 5.0,
            window_count: 1,
            peak_confidence: 0.8,
            packets: 10,
            bytes: 600,
            distinct_sources: None,
            summary: "port_scan from 10.0.0.66".into(),
            event_id: None,
        }
    }

    #[test]
    fn quiet_period_severity_rise_and_filters() {
        let t0 = Instant::now();
        let mut p = Policy::new("MEDIUM", vec![], Duration::from_secs(300), false);
        assert_eq!(p.admit(&ev("opened", "HIGH"), t0), Ok(()));
        assert_eq!(p.admit(&ev("updated", "HIGH"), t0 + Duration::from_secs(5)), Err(Skip::Quiet));
        assert_eq!(p.admit(&ev("updated", "CRITICAL"), t0 + Duration::from_secs(10)), Ok(()));
        assert_eq!(p.admit(&ev("updated", "CRITICAL"), t0 + Duration::from_secs(15)), Err(Skip::Quiet));
        assert_eq!(p.admit(&ev("updated", "CRITICAL"), t0 + Duration::from_secs(311)), Ok(()));
        assert_eq!(p.admit(&ev("closed", "CRITICAL"), t0 + Duration::from_secs(320)), Err(Skip::Resolved));
        assert_eq!(p.admit(&ev("opened", "LOW"), t0), Err(Skip::Severity));
        let mut p = Policy::new("LOW", vec!["syn_flood".into()], Duration::from_secs(300), true);
        assert_eq!(p.admit(&ev("opened", "HIGH"), t0), Err(Skip::Class));
    }

    #[test]
    fn idempotency_key_prefers_the_message_id() {
        assert_eq!(Notification::new(ev("opened", "HIGH"), Some("abc")).idempotency_key, "abc");
        let n = Notification::new(ev("opened", "HIGH"), None);
        assert_eq!(n.idempotency_key, "alert-1-opened-1-5");
        assert_eq!(n.text(), "[NTA] HIGH port_scan from 10.0.0.66 (opened, 1 window, confidence 0.80)");
    }
}
