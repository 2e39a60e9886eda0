//! Metric names (Prometheus) of the notifier; the binary installs the recorder. Per-output
//! metrics carry an `output` label (`webhook:0`, `telegram`, `syslog`, `email`).

pub const SENT_TOTAL: &str = "nta_notifier_sent_total";
pub const FAILED_TOTAL: &str = "nta_notifier_failed_total";
pub const RETRIED_TOTAL: &str = "nta_notifier_retried_total";
pub const DEADLETTER_TOTAL: &str = "nta_notifier_deadletter_total";
pub const ATTEMPT_SECONDS: &str = "nta_notifier_attempt_duration_seconds";
pub const LATENCY_SECONDS: &str = "nta_notifier_latency_seconds";
pub const SKIPPED_TOTAL: &str = "nta_notifier_skipped_total";
pub const MALFORMED_TOTAL: &str = "nta_notifier_malformed_total";
pub const CONSUMER_PENDING_MESSAGES: &str = "nta_notifier_consumer_pending_messages";

pub(crate) fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(SENT_TOTAL, "Notifications an output accepted");
    describe_counter!(FAILED_TOTAL, "Delivery attempts that failed (retried or rejected)");
    describe_counter!(RETRIED_TOTAL, "Delivery attempts repeated after a transient failure");
    describe_counter!(DEADLETTER_TOTAL, "Notifications an output rejected for good (copied to nta.deadletter)");
    describe_histogram!(ATTEMPT_SECONDS, Unit::Seconds, "Duration of one delivery attempt");
    describe_histogram!(
        LATENCY_SECONDS,
        Unit::Seconds,
        "From the alert event's arrival in NTA_ALERTS to its acceptance by the output"
    );
    describe_counter!(SKIPPED_TOTAL, "Alert events not notified, by reason (severity, class, quiet_period, resolved)");
    describe_counter!(MALFORMED_TOTAL, "Undecodable alert events moved to nta.deadletter");
    describe_gauge!(CONSUMER_PENDING_MESSAGES, "Alert events of NTA_ALERTS not yet delivered to the notifiers");
}

/// Every counter of the configured `outputs` at 0 from start-up: Prometheus' increase() needs a
/// sample before the first event, or an alert on it never fires on the first one (see
/// infra/monitoring/).
pub(crate) fn register(outputs: &[&str]) {
    bus::startup::counters_from_zero(&[MALFORMED_TOTAL]);
    for skip in crate::notification::Skip::ALL {
        metrics::counter!(SKIPPED_TOTAL, "reason" => skip.label()).increment(0);
    }
    for output in outputs {
        for name in [SENT_TOTAL, FAILED_TOTAL, RETRIED_TOTAL, DEADLETTER_TOTAL] {
            metrics::counter!(name, "output" => output.to_string()).increment(0);
        }
    }
}
