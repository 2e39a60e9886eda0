//! The agent's counters at 0 from start-up. Prometheus' increase() needs a sample before the
//! first event, or an alert on drops never fires on the first drop (see infra/monitoring/). The
//! names live where they are counted (`queue`, `capture`); the descriptions in the binary.

use crate::queue::{QueueMetrics, PUBLISH_ERROR, QUEUE_FULL, SHUTDOWN, STREAM_FULL};

/// Registers the counters of the records queue and, if frames are kept, of the frames queue.
pub(crate) fn register(frames: Option<&QueueMetrics>) {
    bus::startup::counters_from_zero(&[
        "nta_agent_frames_captured_total",
        "nta_agent_frames_decoded_total",
        "nta_agent_capture_file_errors_total",
        // Set from libpcap's running totals on a live capture; stay 0 on a file.
        "nta_agent_kernel_received_packets_total",
        "nta_agent_kernel_dropped_packets_total",
        "nta_agent_interface_dropped_packets_total",
    ]);
    for m in std::iter::once(&crate::queue::PACKET_METRICS).chain(frames) {
        bus::startup::counters_from_zero(&[
            m.dropped_batches,
            m.dropped_items,
            m.published,
            m.acked,
            m.items_acked,
            m.duplicates,
        ]);
        for reason in [QUEUE_FULL, STREAM_FULL, SHUTDOWN, PUBLISH_ERROR] {
            metrics::counter!(m.dropped_by_reason, "reason" => reason).increment(0);
        }
        for kind in crate::publisher::Failure::ALL {
            metrics::counter!(m.publish_errors, "kind" => kind.label()).increment(0);
        }
    }
}
