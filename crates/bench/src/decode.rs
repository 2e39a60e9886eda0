//! `nta bench decode`: a deterministic synthetic capture (or a given one), then decode +
//! MessagePack batch encoding on one thread, as the agent does (records into a
//! [`wire::PacketBatch`] of 500, encoded with `batch.encode()`): from memory, then reading the
//! file with libpcap; and the whole `nta decode --format msgpack` path, file to output, as a
//! ratio to the in-memory figure.

use agent::decode::Decoder;
use agent::source::{Next, RawFrame, Source};
use agent::FrameDecoder;
use anyhow::Result;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::capture::generate_capture;

/// Default number of frames of a generated capture.
pub const DEFAULT_FRAMES: usize = 2_000_000;
const BATCH: usize = 500;

/// Frames of a capture held in memory (one buffer, offsets).
struct InMemory {
    bytes: Vec<u8>,
    frames: Vec<(f64, u32, usize, usize)>,
    linktype: i32,
}

fn load(path: &Path) -> Result<InMemory> {
    let mut src = Source::open_file(path)?;
    let mut m = InMemory { bytes: Vec::new(), frames: Vec::new(), linktype: src.linktype };
    loop {
        match src.next_frame()? {
            Next::Frame(f) => {
                let start = m.bytes.len();
                m.bytes.extend_from_slice(f.data);
                m.frames.push((f.timestamp, f.wire_len, start, m.bytes.len()));
            }
            Next::Idle => continue,
            Next::End => break,
        }
    }
    Ok(m)
}

#[derive(Default)]
struct Counts {
    frames: u64,
    decoded: u64,
    malformed: u64,
    batches: u64,
    encoded_bytes: u64,
}

/// Decode, batch and encode like the agent's capture loop (the same frame -> record step).
struct Pipeline {
    frames: FrameDecoder,
    batch: wire::PacketBatch,
    counts: Counts,
}

impl Pipeline {
    fn new(linktype: i32, interface: Arc<str>) -> Self {
        let mut batch = wire::PacketBatch::new("bench", "bench-boot", 0);
        batch.records.reserve(BATCH);
        Pipeline { frames: FrameDecoder::new(linktype, interface), batch, counts: Counts::default() }
    }

    #[inline]
    fn frame(&mut self, frame: &RawFrame<'_>) -> Result<()> {
        self.counts.frames += 1;
        match self.frames.record(frame, self.counts.frames) {
            Some(rec) => {
                self.counts.decoded += 1;
                self.batch.records.push(rec);
                if self.batch.records.len() >= BATCH {
                    self.flush()?;
                }
            }
            None => self.counts.malformed += 1,
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.batch.records.is_empty() {
            return Ok(());
        }
        let bytes = self.batch.encode()?;
        self.counts.encoded_bytes += bytes.len() as u64;
        self.counts.batches += 1;
        self.batch.seq += 1;
        self.batch.records.clear();
        Ok(())
    }
}

/// Runs the decode benchmark on `file`, or on a generated capture of `frames` frames (default
/// [`DEFAULT_FRAMES`] when `frames` is 0). Returns a human-readable report.
pub fn run_decode_bench(frames: usize, file: Option<&Path>) -> Result<String> {
    let mut report = String::new();
    let mut generated: Option<PathBuf> = None;
    let path: PathBuf = match file {
        Some(p) => p.to_path_buf(),
        None => {
            let n = if frames == 0 { DEFAULT_FRAMES } else { frames };
            let p = std::env::temp_dir().join(format!("nta-decode-bench-{}-{n}.pcap", std::process::id()));
            let t = Instant::now();
            generate_capture(&p, n)?;
            writeln!(report, "generated {n} frames into {} in {:.2} s", p.display(), t.elapsed().as_secs_f64())?;
            generated = Some(p.clone());
            p
        }
    };
    let result = bench_file(&path, &mut report);
    if let Some(p) = generated {
        let _ = std::fs::remove_file(p);
    }
    result?;
    Ok(report)
}

fn bench_file(path: &Path, report: &mut String) -> Result<()> {
    let mem = load(path)?;
    let interface: Arc<str> = Arc::from(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    writeln!(
        report,
        "capture: {} ({} frames, {:.1} MB, linktype {})",
        path.display(),
        mem.frames.len(),
        mem.bytes.len() as f64 / 1e6,
        mem.linktype
    )?;

    // 1. In memory: decode + encode only.
    let mut p = Pipeline::new(mem.linktype, interface.clone());
    let t = Instant::now();
    for &(timestamp, wire_len, s, e) in &mem.frames {
        p.frame(&RawFrame { timestamp, ts_ns: (timestamp * 1e9) as i64, wire_len, data: &mem.bytes[s..e] })?;
    }
    p.flush()?;
    let secs = t.elapsed().as_secs_f64();
    let c = &p.counts;
    let mem_rate = c.frames as f64 / secs;
    writeln!(
        report,
        "decode+encode (in memory, 1 thread): {} frames in {:.3} s = {:.2} M frames/s ({} decoded, {} malformed, {} batches of {BATCH}, {:.1} MB MessagePack)",
        c.frames,
        secs,
        c.frames as f64 / secs / 1e6,
        c.decoded,
        c.malformed,
        c.batches,
        c.encoded_bytes as f64 / 1e6
    )?;

    // 2. Decode only (no encoding), for reference.
    let decoder = Decoder::new(mem.linktype);
    let t = Instant::now();
    let mut ok = 0u64;
    for &(ts, wl, s, e) in &mem.frames {
        ok += decoder.decode(ts, wl, &mem.bytes[s..e]).is_ok() as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    writeln!(report, "decode only (in memory): {:.2} M frames/s ({ok} decoded)", mem.frames.len() as f64 / secs / 1e6)?;
    drop(mem);

    // 3. With I/O: reading the file (libpcap alone, then the agent's reader), decode, encode;
    // one thread, as the agent's capture loop.
    let mut rates = [0.0; 2];
    for (i, (name, open)) in [
        ("libpcap", Source::open_file_with_libpcap as fn(&Path) -> Result<Source>),
        ("agent's reader", Source::open_file),
    ]
    .into_iter()
    .enumerate()
    {
        let t = Instant::now();
        let mut src = open(path)?;
        let mut p = Pipeline::new(src.linktype, interface.clone());
        loop {
            match src.next_frame()? {
                Next::Frame(f) => p.frame(&f)?,
                Next::Idle => continue,
                Next::End => break,
            }
        }
        p.flush()?;
        let secs = t.elapsed().as_secs_f64();
        rates[i] = p.counts.frames as f64 / secs;
        writeln!(
            report,
            "read+decode+encode ({name} from file, 1 thread): {} frames in {:.3} s = {:.2} M frames/s ({:.2}x in memory)",
            p.counts.frames,
            secs,
            rates[i] / 1e6,
            rates[i] / mem_rate
        )?;
    }
    let libpcap_rate = rates[0];

    // 4. The `nta decode FILE --format msgpack -o /dev/null` path: file to named MessagePack
    // maps written out (to /dev/null, so the writes are real system calls).
    let mut sink = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    let t = Instant::now();
    let stats = agent::offline::decode_file(path, agent::offline::OutputFormat::Msgpack, &mut sink)?;
    let secs = t.elapsed().as_secs_f64();
    let command_rate = stats.frames as f64 / secs;
    writeln!(
        report,
        "nta decode --format msgpack -o /dev/null (file to output): {} frames in {:.3} s = {:.2} M frames/s ({:.2}x in memory, {:.2}x libpcap read+decode+encode)",
        stats.frames,
        secs,
        command_rate / 1e6,
        command_rate / mem_rate,
        command_rate / libpcap_rate
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_generated_bench_runs_and_decodes_everything() {
        let dir = std::env::temp_dir().join(format!("nta-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gen.pcap");
        generate_capture(&path, 2000).unwrap();
        let mut out = Vec::new();
        let stats = agent::offline::decode_file(&path, agent::offline::OutputFormat::Jsonl, &mut out).unwrap();
        assert_eq!((stats.frames, stats.decoded, stats.malformed), (2000, 2000, 0));
        let text = String::from_utf8(out).unwrap();
        for needle in [
            "\"http_method\":\"GET\"",
            "\"http_status_code\":200",
            "\"dns_answer_size\":",
            "\"protocol\":\"ARP\"",
            "\"vlan\":",
            "\"protocol\":\"ICMPv6\"",
        ] {
            assert!(text.contains(needle), "no {needle} in generated capture");
        }
        let report = run_decode_bench(0, Some(&path)).unwrap();
        assert!(report.contains("2000 frames"), "{report}");
        assert!(report.contains("nta decode --format msgpack -o /dev/null (file to output): 2000 frames"), "{report}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
