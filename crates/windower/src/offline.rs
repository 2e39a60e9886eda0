//! Records from a capture file, through the agent's own decoder (the same decoding as live
//! capture), and the offline "file -> windows" path used by `nta analyze` and training.

use crate::{windows_from_records_with_stats, WindowerConfig, WindowerStats};
use agent::decode::Decoder;
use agent::source::{Next, Source};
use anyhow::{bail, Result};
use std::path::Path;
use wire::{PacketRecord, WindowRecord};

/// Calls `f` for every decodable frame of `path`, in file order. Malformed frames are skipped
/// (as `nta decode` does); a file damaged part-way ends the read early with a warning.
pub fn for_each_record(path: &Path, mut f: impl FnMut(PacketRecord)) -> Result<()> {
    let mut source = Source::open_file(path)?;
    if !Decoder::supports(source.linktype) {
        bail!("{}: unsupported link type {}", path.display(), source.linktype);
    }
    let decoder = Decoder::new(source.linktype);
    let interface = source.interface.clone();
    loop {
        let frame = match source.next_frame() {
            Ok(Next::Frame(fr)) => fr,
            Ok(Next::Idle) => continue,
            Ok(Next::End) => break,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = format!("{e:#}"), "capture ends early");
                break;
            }
        };
        if let Ok(mut rec) = decoder.decode(frame.timestamp, frame.wire_len, frame.data) {
            rec.interface = interface.clone();
            f(rec);
        }
    }
    Ok(())
}

/// Every decodable record of a capture file.
pub fn records_from_file(path: &Path) -> Result<Vec<PacketRecord>> {
    let mut v = Vec::new();
    for_each_record(path, |r| v.push(r))?;
    Ok(v)
}

/// Windows of a capture file (single agent, everything closed at the end), and the counters.
pub fn analyze_file(path: &Path, cfg: &WindowerConfig) -> Result<(Vec<WindowRecord>, WindowerStats)> {
    // Decoding runs on a second thread and streams into the windower through a bounded
    // channel: the records of a large file are never all in memory.
    let mut source_err = None;
    let (tx, rx) = std::sync::mpsc::sync_channel::<PacketRecord>(4096);
    let p = path.to_path_buf();
    let reader = std::thread::spawn(move || for_each_record(&p, |r| {
        let _ = tx.send(r);
    }));
    let out = windows_from_records_with_stats(rx, cfg);
    match reader.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => source_err = Some(e),
        Err(_) => bail!("capture reader panicked"),
    }
    if let Some(e) = source_err {
        return Err(e);
    }
    Ok(out)
}
