//! Metric names (Prometheus); the binary installs the recorder.

pub const BATCHES_TOTAL: &str = "nta_ingestor_batches_total";
pub const ROWS_TOTAL: &str = "nta_ingestor_rows_total";
pub const DUPLICATE_BATCHES_TOTAL: &str = "nta_ingestor_duplicate_batches_total";
pub const DEADLETTER_TOTAL: &str = "nta_ingestor_deadletter_total";
pub const COPY_DURATION_SECONDS: &str = "nta_ingestor_copy_duration_seconds";
pub const COMMIT_DURATION_SECONDS: &str = "nta_ingestor_commit_duration_seconds";
pub const ROLLUP_BATCHES_TOTAL: &str = "nta_ingestor_rollup_batches_total";
pub const ROLLUP_DURATION_SECONDS: &str = "nta_ingestor_rollup_duration_seconds";
pub const ROLLUP_ROWS_TOTAL: &str = "nta_ingestor_rollup_rows_total";
pub const ROLLUP_SKIPPED_TOTAL: &str = "nta_ingestor_rollup_skipped_total";
pub const CONSUMER_PENDING_MESSAGES: &str = "nta_ingestor_consumer_pending_messages";
pub const DB_ERRORS_TOTAL: &str = "nta_ingestor_db_errors_total";

pub(crate) fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(BATCHES_TOTAL, "Packet batches stored (first time)");
    describe_counter!(ROWS_TOTAL, "Packets stored in raw_packets");
    describe_counter!(DUPLICATE_BATCHES_TOTAL, "Redelivered batches skipped because already stored");
    describe_counter!(DEADLETTER_TOTAL, "Undecodable messages moved to nta.deadletter");
    describe_histogram!(COPY_DURATION_SECONDS, Unit::Seconds, "Time of one COPY into raw_packets");
    describe_histogram!(COMMIT_DURATION_SECONDS, Unit::Seconds, "Time of one commit");
    describe_counter!(ROLLUP_BATCHES_TOTAL, "Packet batches counted into traffic_rollup (first time)");
    describe_histogram!(ROLLUP_DURATION_SECONDS, Unit::Seconds, "Time of one traffic_rollup transaction");
    describe_counter!(ROLLUP_ROWS_TOTAL, "traffic_rollup rows created or added to");
    describe_counter!(
        ROLLUP_SKIPPED_TOTAL,
        "Messages the rollup could not count (dead-lettered by the packet workers)"
    );
    describe_gauge!(CONSUMER_PENDING_MESSAGES, "Messages of NTA_PACKETS not yet delivered, per durable consumer");
    describe_counter!(DB_ERRORS_TOTAL, "Failed write transactions (retried)");
    bus::startup::counters_from_zero(&[
        BATCHES_TOTAL,
        ROWS_TOTAL,
        DUPLICATE_BATCHES_TOTAL,
        DEADLETTER_TOTAL,
        ROLLUP_BATCHES_TOTAL,
        ROLLUP_ROWS_TOTAL,
        ROLLUP_SKIPPED_TOTAL,
        DB_ERRORS_TOTAL,
    ]);
}
