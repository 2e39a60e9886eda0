//! Names on the NATS side: streams, subjects and headers every role agrees on.

use wire::WindowRecord;

/// Stream holding packet batches published by agents.
pub const PACKETS_STREAM: &str = "NTA_PACKETS";
/// Agents publish on `nta.packets.<agent_id>`.
pub const PACKETS_SUBJECT_PREFIX: &str = "nta.packets";
/// Stream of captured frames (forensics: pcap exports).
pub const FRAMES_STREAM: &str = "NTA_FRAMES";
/// Agents publish their frames on `nta.frames.<agent_id>`.
pub const FRAMES_SUBJECT_PREFIX: &str = "nta.frames";
/// Headers of a frame batch with its smallest and largest capture time (epoch nanoseconds), so
/// an export can skip a batch without downloading it.
pub const FRAMES_TS_MIN_HEADER: &str = "Nta-Ts-Min";
pub const FRAMES_TS_MAX_HEADER: &str = "Nta-Ts-Max";
/// Header of a frame batch with its link type (DLT), so an export knows its file format (pcap
/// or pcapng) before downloading anything.
pub const FRAMES_LINKTYPE_HEADER: &str = "Nta-Linktype";
/// Stream of closed windows.
pub const WINDOWS_STREAM: &str = "NTA_WINDOWS";
/// Windows are published on `nta.windows.5s`, `nta.windows.30s` and `nta.windows.3m`.
pub const WINDOWS_SUBJECT_PREFIX: &str = "nta.windows";
/// Stream of alert events (opened, updated, resolved, closed), published from the store's outbox.
pub const ALERTS_STREAM: &str = "NTA_ALERTS";
/// Alert events are published on `nta.alerts.<class>` (see [`alert_subject`]).
pub const ALERTS_SUBJECT_PREFIX: &str = "nta.alerts";
/// Prefix of the `Nats-Msg-Id` of an alert event, followed by its outbox row id: receivers use
/// the whole id as their idempotency key.
pub const ALERT_EVENT_ID_PREFIX: &str = "nta-alert-event-";
/// Messages a consumer cannot decode are copied here (with the original subject and a reason
/// in headers) before being terminated, so a poison message never stalls a consumer.
pub const DEADLETTER_SUBJECT: &str = "nta.deadletter";
/// Stream of dead-lettered messages (kept so they can be inspected and replayed).
pub const DEADLETTER_STREAM: &str = "NTA_DEADLETTER";
/// Header naming why a message was dead-lettered.
pub const DEADLETTER_REASON_HEADER: &str = "Nta-Deadletter-Reason";
/// Header naming the subject a dead-lettered message was first published on.
pub const DEADLETTER_SUBJECT_HEADER: &str = "Nta-Original-Subject";
/// Header naming the consumer that gave up on the message.
pub const DEADLETTER_CONSUMER_HEADER: &str = "Nta-Deadletter-Consumer";

/// Subject an agent publishes its batches on.
pub fn packets_subject(agent_id: &str) -> String {
    format!("{PACKETS_SUBJECT_PREFIX}.{agent_id}")
}

/// Subject an agent publishes its frames on.
pub fn frames_subject(agent_id: &str) -> String {
    format!("{FRAMES_SUBJECT_PREFIX}.{agent_id}")
}

/// Subject of an alert event of `class`: `nta.alerts.<class>`, every character outside `[a-z_]`
/// replaced by `_` so a class name can never add subject tokens or wildcards.
pub fn alert_subject(class: &str) -> String {
    let class: String = class.chars().map(|c| if c.is_ascii_lowercase() || c == '_' { c } else { '_' }).collect();
    let class = if class.is_empty() { "_".to_string() } else { class };
    format!("{ALERTS_SUBJECT_PREFIX}.{class}")
}

/// `Nats-Msg-Id` of the alert event stored as outbox row `outbox_id`.
pub fn alert_event_msg_id(outbox_id: i64) -> String {
    format!("{ALERT_EVENT_ID_PREFIX}{outbox_id}")
}

/// Subject of a window: `nta.windows.<5s|30s|3m>`.
pub fn window_subject(w: &WindowRecord) -> String {
    format!("{WINDOWS_SUBJECT_PREFIX}.{}", wire::window::size_token(w.window_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_subjects_are_one_safe_token() {
        assert_eq!(alert_subject("port_scan"), "nta.alerts.port_scan");
        assert_eq!(alert_subject("a.b>*"), "nta.alerts.a_b__");
        assert_eq!(alert_subject("SYN-Flood"), "nta.alerts._____lood");
        assert_eq!(alert_subject(""), "nta.alerts._");
        assert_eq!(alert_event_msg_id(42), "nta-alert-event-42");
    }
}
