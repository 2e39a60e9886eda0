//! `nta decode`: decode a capture file into JSON lines or concatenated MessagePack maps.

use crate::records::{for_each_chunk, FileStats};
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

/// Decodes every frame of `path` into `out`, through [`crate::records::for_each_chunk`]:
/// reading and decoding on one thread, encoding and writing on this one. Malformed frames are
/// counted and skipped; a capture file that is damaged part-way stops the read and is reported
/// in [`FileStats::file_error`] rather than as an error. Errors are: the file cannot be opened,
/// its link type is not supported, or `out` fails (which stops the read).
pub fn decode_file(path: &Path, format: OutputFormat, out: &mut dyn Write) -> Result<FileStats> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    // A chunk is encoded whole and written at once: a write that large bypasses the buffer.
    let mut buf = Vec::with_capacity(1 << 20);
    let stats = for_each_chunk(path, |records| {
        buf.clear();
        match format {
            OutputFormat::Jsonl => {
                for rec in records {
                    serde_json::to_writer(&mut buf, rec)?;
                    buf.push(b'\n');
                }
            }
            OutputFormat::Msgpack => {
                for rec in records {
                    rec.encode_msgpack_named(&mut buf);
                }
            }
        }
        out.write_all(&buf)?;
        Ok(())
    })?;
    out.flush().context("writing decoded records")?;
    Ok(stats)
}
