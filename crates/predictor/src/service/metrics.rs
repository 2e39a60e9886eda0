//! Metric names (Prometheus) of the predictor service; the binary installs the recorder.

pub const WINDOWS_TOTAL: &str = "nta_predictor_windows_total";
pub const PREDICTIONS_TOTAL: &str = "nta_predictor_predictions_total";
pub const ALERTS_OPENED_TOTAL: &str = "nta_predictor_alerts_opened_total";
pub const ALERTS_CLOSED_TOTAL: &str = "nta_predictor_alerts_closed_total";
pub const INFERENCE_DURATION_SECONDS: &str = "nta_predictor_inference_duration_seconds";
pub const CONSUMER_PENDING_MESSAGES: &str = "nta_predictor_consumer_pending_messages";
pub const DEADLETTER_TOTAL: &str = "nta_predictor_deadletter_total";
pub const RULE_HITS_TOTAL: &str = "nta_predictor_rule_hits_total";
pub const DUPLICATE_WINDOWS_TOTAL: &str = "nta_predictor_duplicate_windows_total";
pub const DB_ERRORS_TOTAL: &str = "nta_predictor_db_errors_total";
pub const ALERT_PUBLISH_ERRORS_TOTAL: &str = "nta_predictor_alert_publish_errors_total";
pub const ALERT_EVENTS_PUBLISHED_TOTAL: &str = "nta_predictor_alert_events_published_total";
pub const ALERT_EVENTS_DUPLICATE_TOTAL: &str = "nta_predictor_alert_events_duplicate_total";
pub const ALERT_EVENTS_MALFORMED_TOTAL: &str = "nta_predictor_alert_events_malformed_total";
pub const ALERT_OUTBOX_ERRORS_TOTAL: &str = "nta_predictor_alert_outbox_errors_total";

pub(crate) fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(WINDOWS_TOTAL, "Windows received from NTA_WINDOWS, by view and size");
    describe_counter!(PREDICTIONS_TOTAL, "Prediction rows written, by label");
    describe_counter!(ALERTS_OPENED_TOTAL, "Alerts opened, by class");
    describe_counter!(ALERTS_CLOSED_TOTAL, "Alerts closed after their quiet period");
    describe_histogram!(INFERENCE_DURATION_SECONDS, Unit::Seconds, "Model inference per batch of windows");
    describe_gauge!(CONSUMER_PENDING_MESSAGES, "Messages of NTA_WINDOWS not yet delivered to the predictors");
    describe_counter!(DEADLETTER_TOTAL, "Undecodable window messages moved to nta.deadletter");
    describe_counter!(RULE_HITS_TOTAL, "Rule baselines that fired, by rule");
    describe_counter!(DUPLICATE_WINDOWS_TOTAL, "Windows already predicted (redelivered or done by another replica)");
    describe_counter!(DB_ERRORS_TOTAL, "Failed prediction transactions (the windows are redelivered)");
    describe_counter!(
        ALERT_PUBLISH_ERRORS_TOTAL,
        "Alert events JetStream did not accept (they stay in the alert_events outbox and are retried)"
    );
    describe_counter!(ALERT_EVENTS_PUBLISHED_TOTAL, "Alert events published to NTA_ALERTS from the outbox");
    describe_counter!(
        ALERT_EVENTS_DUPLICATE_TOTAL,
        "Alert events JetStream already had (re-published after a crash; dropped by their Nats-Msg-Id)"
    );
    describe_counter!(ALERT_EVENTS_MALFORMED_TOTAL, "Outbox rows that do not decode as an alert event (skipped)");
    describe_counter!(ALERT_OUTBOX_ERRORS_TOTAL, "Failed outbox relay transactions (PostgreSQL; retried)");
    bus::startup::counters_from_zero(&[
        ALERTS_CLOSED_TOTAL,
        DEADLETTER_TOTAL,
        DUPLICATE_WINDOWS_TOTAL,
        DB_ERRORS_TOTAL,
        ALERT_PUBLISH_ERRORS_TOTAL,
        ALERT_EVENTS_PUBLISHED_TOTAL,
        ALERT_EVENTS_DUPLICATE_TOTAL,
        ALERT_EVENTS_MALFORMED_TOTAL,
        ALERT_OUTBOX_ERRORS_TOTAL,
    ]);
}
