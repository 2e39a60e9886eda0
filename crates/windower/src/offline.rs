//! Records from a capture file, through the agent's own decoder (the same decoding as live
//! capture), and the offline "file -> windows" path used by `nta analyze` and training.

use crate::{windows_from_records_with_stats, WindowerConfig, WindowerStats};
use anyhow::{bail, Result};
use std::path::Path;
use wire::{PacketRecord, WindowRecord};

pub use agent::records::records_from_file;

/// Calls `f` for every decodable frame of `path`, in file order (see
/// [`agent::records::for_each_record`]); a file damaged part-way ends the read early with a
/// warning.
pub fn for_each_record(path: &Path, mut f: impl FnMut(PacketRecord)) -> Result<()> {
    agent::records::for_each_record(path, |r| {
        f(r);
        Ok(())
    })?
    .warn_on_file_error(path);
    Ok(())
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
