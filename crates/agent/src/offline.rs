//! `nta decode`: decode a capture file into JSON lines or concatenated MessagePack maps.

use crate::decode::Decoder;
use crate::source::{Next, Source};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// One JSON object per frame and line; absent fields are `null`.
    Jsonl,
    /// One self-describing MessagePack map (field names as keys) per frame, concatenated.
    Msgpack,
}

/// What [`decode_file`] saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames read from the file.
    pub frames: u64,
    /// Frames written as records.
    pub decoded: u64,
    /// Frames skipped because their link or network header is truncated or invalid.
    pub malformed: u64,
    /// The file itself is truncated or corrupt: reading stopped there (records before it were
    /// written).
    pub file_error: Option<String>,
}

/// Decodes every frame of `path` into `out`. Malformed frames are counted and skipped; a
/// capture file that is damaged part-way stops the read and is reported in
/// [`DecodeStats::file_error`] rather than as an error. Errors are: the file cannot be
/// opened, its link type is not supported, or `out` fails.
pub fn decode_file(path: &Path, format: OutputFormat, out: &mut dyn Write) -> Result<DecodeStats> {
    let mut source = Source::open_file(path)?;
    if !Decoder::supports(source.linktype) {
        anyhow::bail!(
            "{}: {}",
            path.display(),
            crate::decode::DecodeError::UnsupportedLinktype(source.linktype)
        );
    }
    let decoder = Decoder::new(source.linktype);
    let interface = source.interface.clone();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    let mut stats = DecodeStats::default();
    let mut buf = Vec::with_capacity(1024);
    loop {
        let frame = match source.next_frame() {
            Ok(Next::Frame(f)) => f,
            Ok(Next::Idle) => continue,
            Ok(Next::End) => break,
            Err(e) => {
                stats.file_error = Some(format!("{e:#}"));
                break;
            }
        };
        stats.frames += 1;
        match decoder.decode(frame.timestamp, frame.wire_len, frame.data) {
            Ok(mut rec) => {
                rec.interface = interface.clone();
                stats.decoded += 1;
                match format {
                    OutputFormat::Jsonl => {
                        serde_json::to_writer(&mut out, &rec)?;
                        out.write_all(b"\n")?;
                    }
                    OutputFormat::Msgpack => {
                        buf.clear();
                        rmp_serde::encode::write_named(&mut buf, &rec)?;
                        out.write_all(&buf)?;
                    }
                }
            }
            Err(e) => {
                stats.malformed += 1;
                metrics::counter!("nta_agent_frames_malformed_total", "reason" => e.kind())
                    .increment(1);
                tracing::debug!(frame = stats.frames, error = %e, "skipping malformed frame");
            }
        }
    }
    out.flush().context("writing decoded records")?;
    Ok(stats)
}
