//! Metric names (Prometheus) of the windower service; the binary installs the recorder.

pub const RECORDS_TOTAL: &str = "nta_windower_records_total";
pub const LATE_RECORDS_TOTAL: &str = "nta_windower_late_records_total";
pub const ALREADY_EMITTED_RECORDS_TOTAL: &str = "nta_windower_already_emitted_records_total";
pub const SHED_RECORDS_TOTAL: &str = "nta_windower_shed_records_total";
pub const OVERLOAD_PERIODS_TOTAL: &str = "nta_windower_overload_periods_total";
pub const WINDOWS_TOTAL: &str = "nta_windower_windows_total";
pub const OPEN_KEYS: &str = "nta_windower_open_keys";
pub const CONSUMER_PENDING_MESSAGES: &str = "nta_windower_consumer_pending_messages";
pub const HELD_MESSAGES: &str = "nta_windower_held_messages";
pub const DEADLETTER_TOTAL: &str = "nta_windower_deadletter_total";
pub const PUBLISH_ERRORS_TOTAL: &str = "nta_windower_publish_errors_total";
pub const DB_ERRORS_TOTAL: &str = "nta_windower_db_errors_total";
pub const FLUSH_DURATION_SECONDS: &str = "nta_windower_flush_duration_seconds";
pub const MISSED_MESSAGES_TOTAL: &str = "nta_windower_missed_messages_total";
pub const OUT_OF_ORDER_RESTARTS_TOTAL: &str = "nta_windower_out_of_order_restarts_total";
pub const PARTITIONS_HELD: &str = "nta_windower_partitions_held";
pub const MEMBERS: &str = "nta_windower_members";
pub const PARTITION_CLAIMS_TOTAL: &str = "nta_windower_partition_claims_total";
pub const PARTITION_RELEASES_TOTAL: &str = "nta_windower_partition_releases_total";

pub(crate) fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(RECORDS_TOTAL, "Packet records fed to the windower");
    describe_counter!(LATE_RECORDS_TOTAL, "Records older than the watermark allows (counted, not merged)");
    describe_counter!(
        ALREADY_EMITTED_RECORDS_TOTAL,
        "Replayed records whose windows were all emitted before a restart"
    );
    describe_counter!(
        SHED_RECORDS_TOTAL,
        "Records whose source-view part was counted in aggregate because windower.max_open_keys was exceeded"
    );
    describe_counter!(
        OVERLOAD_PERIODS_TOTAL,
        "3-minute periods in which windower.max_open_keys was exceeded (new source keys shed)"
    );
    describe_counter!(WINDOWS_TOTAL, "Closed windows published and stored, by size and view");
    describe_gauge!(OPEN_KEYS, "Keys with an open window");
    describe_gauge!(CONSUMER_PENDING_MESSAGES, "Messages of NTA_PACKETS not yet delivered to the windower");
    describe_gauge!(HELD_MESSAGES, "Delivered packet batches not yet acknowledged (their windows are open)");
    describe_counter!(DEADLETTER_TOTAL, "Undecodable messages moved to nta.deadletter");
    describe_counter!(PUBLISH_ERRORS_TOTAL, "Failed window publications (retried)");
    describe_counter!(DB_ERRORS_TOTAL, "Failed window-store transactions (retried)");
    describe_counter!(
        MISSED_MESSAGES_TOTAL,
        "NTA_PACKETS messages deleted by the stream's limits before the windower read them"
    );
    describe_counter!(
        OUT_OF_ORDER_RESTARTS_TOTAL,
        "Partition restarts from the checkpoint because a delivery was lost in transit (NATS node loss, reconnect)"
    );
    describe_gauge!(PARTITIONS_HELD, "Key partitions this process runs a windower for");
    describe_gauge!(MEMBERS, "Windower processes sharing the partitions (this one included)");
    describe_counter!(PARTITION_CLAIMS_TOTAL, "Partitions taken (at start, from a dead windower, or handed over)");
    describe_counter!(PARTITION_RELEASES_TOTAL, "Partitions handed back to a windower that joined");
    describe_histogram!(FLUSH_DURATION_SECONDS, Unit::Seconds, "Publish + store + checkpoint of closed windows");
    bus::startup::counters_from_zero(&[
        RECORDS_TOTAL,
        LATE_RECORDS_TOTAL,
        ALREADY_EMITTED_RECORDS_TOTAL,
        SHED_RECORDS_TOTAL,
        OVERLOAD_PERIODS_TOTAL,
        DEADLETTER_TOTAL,
        PUBLISH_ERRORS_TOTAL,
        DB_ERRORS_TOTAL,
        MISSED_MESSAGES_TOTAL,
        OUT_OF_ORDER_RESTARTS_TOTAL,
        PARTITION_CLAIMS_TOTAL,
        PARTITION_RELEASES_TOTAL,
    ]);
}
