//! The capture loop: frames -> records -> MessagePack batches on the send queue.
//!
//! It runs on a dedicated OS thread because libpcap reads block; it never waits for the
//! network (see [`crate::queue`]).

use anyhow::Result;
use metrics::counter;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wire::PacketBatch;

use crate::frames::FrameBatcher;
use crate::queue::{Outgoing, SendQueue};
use crate::records::FrameDecoder;
use crate::source::{Next, RawFrame, Source};

/// When a batch is cut (from the `agent.batch_size` and `agent.batch_timeout_ms` settings).
#[derive(Debug, Clone)]
pub struct BatchPolicy {
    pub max_records: usize,
    pub max_age: Duration,
}

/// What a finished capture saw.
#[derive(Debug, Default, Clone)]
pub struct CaptureSummary {
    pub frames: u64,
    pub decoded: u64,
    pub malformed: u64,
    pub batches: u64,
    /// Frame batches built for `NTA_FRAMES`.
    pub frame_batches: u64,
    /// Set when a capture file ended with an error (e.g. truncated) after `frames` frames.
    pub file_error: Option<String>,
}

/// Builds batches with consecutive sequence numbers for one agent boot.
struct Batcher {
    agent_id: String,
    boot_id: String,
    next_seq: u64,
    current: PacketBatch,
    started: Option<Instant>,
    policy: BatchPolicy,
}

impl Batcher {
    fn new(agent_id: &str, boot_id: &str, policy: BatchPolicy) -> Batcher {
        Batcher {
            agent_id: agent_id.to_string(),
            boot_id: boot_id.to_string(),
            next_seq: 0,
            current: PacketBatch::new(agent_id, boot_id, 0),
            started: None,
            policy,
        }
    }

    /// Decodes `frame` (number `n`) straight into the current batch; `false` when it is
    /// malformed (nothing is added).
    fn push_frame(&mut self, frames: &FrameDecoder, frame: &RawFrame<'_>, n: u64, queue: &SendQueue) -> Result<bool> {
        let records = &mut self.current.records;
        records.push(wire::PacketRecord::default());
        if !frames.record_into(frame, n, records.last_mut().expect("just pushed")) {
            records.pop();
            return Ok(false);
        }
        if records.len() == 1 {
            self.started = Some(Instant::now());
        }
        if records.len() >= self.policy.max_records {
            self.flush(queue)?;
        }
        Ok(true)
    }

    fn due(&self) -> bool {
        self.started.is_some_and(|t| t.elapsed() >= self.policy.max_age)
    }

    fn flush(&mut self, queue: &SendQueue) -> Result<()> {
        if self.current.records.is_empty() {
            return Ok(());
        }
        self.send_current(queue)
    }

    /// An empty batch tells consumers this agent's input ended (the end of a replayed file):
    /// the windower then closes the windows it would otherwise hold open for more packets.
    fn end_of_input(&mut self, queue: &SendQueue) -> Result<()> {
        self.flush(queue)?;
        self.send_current(queue)
    }

    fn send_current(&mut self, queue: &SendQueue) -> Result<()> {
        self.next_seq += 1;
        let next = PacketBatch::new(&self.agent_id, &self.boot_id, self.next_seq);
        let batch = std::mem::replace(&mut self.current, next);
        let payload = batch.encode()?;
        queue.push(Outgoing {
            msg_id: batch.batch_id(),
            payload: payload.into(),
            records: batch.records.len(),
            frames: None,
            order: 0,
        });
        counter!("nta_agent_batches_built_total").increment(1);
        self.started = None;
        Ok(())
    }
}

/// Where the frames kept for pcap exports go, and how many bytes of each (`None`: all).
pub struct FrameSink<'q> {
    pub queue: &'q SendQueue,
    pub frame_bytes: Option<usize>,
}

/// Reads `source` until it ends or `stop` is set, pushing batches onto `queue` (and the frames
/// onto `frames`' queue); closes the queues when done. `realtime` paces a file replay by its
/// timestamps.
#[allow(clippy::too_many_arguments)]
pub fn run_capture(
    mut source: Source,
    agent_id: &str,
    boot_id: &str,
    policy: BatchPolicy,
    realtime: bool,
    queue: &SendQueue,
    frames_sink: Option<FrameSink<'_>>,
    stop: &AtomicBool,
) -> Result<CaptureSummary> {
    let frames = FrameDecoder::for_source(&source);
    let mut kept = frames_sink
        .as_ref()
        .map(|f| FrameBatcher::new(f.queue, f.frame_bytes, agent_id, boot_id, source.linktype, policy.clone()));
    let mut batcher = Batcher::new(agent_id, boot_id, policy);
    let mut summary = CaptureSummary::default();
    let mut pacing: Option<(f64, Instant)> = None;
    let mut last_stats = Instant::now();
    let live = source.is_live();

    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        if live && last_stats.elapsed() >= Duration::from_secs(1) {
            export_pcap_stats(&mut source);
            last_stats = Instant::now();
        }
        let frame = match source.next_frame() {
            Ok(Next::Frame(f)) => f,
            Ok(Next::Idle) => {
                if batcher.due() {
                    batcher.flush(queue)?;
                }
                if let Some(k) = kept.as_mut().filter(|k| k.due()) {
                    k.flush();
                }
                continue;
            }
            Ok(Next::End) => break Ok(()),
            Err(e) => break Err(e),
        };
        summary.frames += 1;
        counter!("nta_agent_frames_captured_total").increment(1);
        if realtime {
            pace(&mut pacing, frame.timestamp, stop);
        }
        if let Some(k) = &mut kept {
            k.push(&frame);
        }
        if batcher.push_frame(&frames, &frame, summary.frames, queue)? {
            summary.decoded += 1;
            counter!("nta_agent_frames_decoded_total").increment(1);
        } else {
            summary.malformed += 1;
        }
        if batcher.due() {
            batcher.flush(queue)?;
        }
        if let Some(k) = kept.as_mut().filter(|k| k.due()) {
            k.flush();
        }
    };
    if live {
        export_pcap_stats(&mut source);
    }
    if live {
        batcher.flush(queue)?;
    } else {
        batcher.end_of_input(queue)?;
    }
    summary.batches = batcher.next_seq;
    queue.close();
    if let (Some(k), Some(sink)) = (&mut kept, &frames_sink) {
        k.flush();
        summary.frame_batches = k.batches;
        sink.queue.close();
    }
    if let Err(e) = result {
        if live {
            return Err(e);
        }
        // A truncated file still delivers everything before the damage.
        counter!("nta_agent_capture_file_errors_total").increment(1);
        tracing::warn!(error = %format!("{e:#}"), frames = summary.frames, "capture file ended with an error");
        summary.file_error = Some(format!("{e:#}"));
    }
    Ok(summary)
}

/// Sleeps so that frame `ts` is handed over at its original offset from the first frame.
fn pace(pacing: &mut Option<(f64, Instant)>, ts: f64, stop: &AtomicBool) {
    let (first_ts, start) = *pacing.get_or_insert((ts, Instant::now()));
    let due = Duration::from_secs_f64((ts - first_ts).max(0.0));
    while !stop.load(Ordering::Relaxed) {
        let elapsed = start.elapsed();
        if elapsed >= due {
            break;
        }
        std::thread::sleep((due - elapsed).min(Duration::from_millis(100)));
    }
}

fn export_pcap_stats(source: &mut Source) {
    if let Some((received, dropped, if_dropped)) = source.stats() {
        // libpcap reports running totals since the capture opened.
        counter!("nta_agent_kernel_received_packets_total").absolute(received as u64);
        counter!("nta_agent_kernel_dropped_packets_total").absolute(dropped as u64);
        counter!("nta_agent_interface_dropped_packets_total").absolute(if_dropped as u64);
    }
}

/// Shared stop flag for the capture thread.
pub type StopFlag = Arc<AtomicBool>;
