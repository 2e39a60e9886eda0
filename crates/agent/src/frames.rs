//! The frames kept for pcap exports: every captured frame (malformed ones too: a pcap must
//! hold what was captured), cut to `frame_bytes`, in [`FrameBatch`]es on a queue of their own,
//! so that frames never delay or drop packet batches.

use metrics::counter;
use std::time::Instant;
use wire::{Frame, FrameBatch};

use crate::capture::BatchPolicy;
use crate::queue::{FrameHeaders, Outgoing, SendQueue};
use crate::source::RawFrame;

/// Largest encoded frame batch: under NATS' default `max_payload` of 1 MiB with room for the
/// envelope, whatever the frame sizes (a batch is cut early rather than refused).
const MAX_BATCH_BYTES: usize = 768 * 1024;

/// Builds frame batches with their own consecutive sequence numbers (`<agent>.<boot>.<seq>`
/// de-duplicates them on `NTA_FRAMES` as on `NTA_PACKETS`; a batch of malformed frames only has
/// no packet batch to share a number with).
pub(crate) struct FrameBatcher<'q> {
    queue: &'q SendQueue,
    /// Bytes kept per frame; `None`: the whole captured frame.
    frame_bytes: Option<usize>,
    current: FrameBatch,
    bytes: usize,
    started: Option<Instant>,
    policy: BatchPolicy,
    pub(crate) batches: u64,
}

impl<'q> FrameBatcher<'q> {
    pub(crate) fn new(
        queue: &'q SendQueue,
        frame_bytes: Option<usize>,
        agent_id: &str,
        boot_id: &str,
        linktype: i32,
        policy: BatchPolicy,
    ) -> FrameBatcher<'q> {
        FrameBatcher {
            queue,
            frame_bytes,
            current: FrameBatch::new(agent_id, boot_id, 0, linktype),
            bytes: 0,
            started: None,
            policy,
            batches: 0,
        }
    }

    pub(crate) fn push(&mut self, frame: &RawFrame<'_>) {
        let data = match self.frame_bytes {
            Some(n) => &frame.data[..frame.data.len().min(n)],
            None => frame.data,
        };
        // Array header, timestamp, length and bin header: at most 20 bytes.
        let size = data.len() + 20;
        if self.bytes + size > MAX_BATCH_BYTES {
            self.flush();
        }
        self.current.frames.push(Frame { ts_ns: frame.ts_ns, wire_len: frame.wire_len, data: data.to_vec() });
        self.bytes += size;
        if self.current.frames.len() == 1 {
            self.started = Some(Instant::now());
        }
        if self.current.frames.len() >= self.policy.max_records {
            self.flush();
        }
    }

    pub(crate) fn due(&self) -> bool {
        self.started.is_some_and(|t| t.elapsed() >= self.policy.max_age)
    }

    pub(crate) fn flush(&mut self) {
        if self.current.frames.is_empty() {
            return;
        }
        let next = FrameBatch::new(
            self.current.agent_id.clone(),
            self.current.boot_id.clone(),
            self.current.seq + 1,
            self.current.linktype,
        );
        let batch = std::mem::replace(&mut self.current, next);
        self.queue.push(Outgoing {
            msg_id: batch.batch_id(),
            payload: batch.encode().into(),
            records: batch.frames.len(),
            frames: batch.ts_span().map(|(ts_min, ts_max)| FrameHeaders { ts_min, ts_max, linktype: batch.linktype }),
            order: 0,
        });
        counter!("nta_agent_frame_batches_built_total").increment(1);
        self.batches += 1;
        self.bytes = 0;
        self.started = None;
    }
}
