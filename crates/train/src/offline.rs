//! Capture file -> windows, in one process: the agent's reader ([`agent::for_each_record`])
//! decodes on a second thread and streams the records through a bounded channel into the
//! windower ([`windower::windows_from_records_with_stats`]: one agent, everything closed at
//! the end), so the records of a large file are never all in memory. `nta analyze` and
//! training both read captures this way.

use anyhow::{anyhow, Result};
use std::path::Path;
use wire::{PacketRecord, WindowRecord};

use windower::{WindowerConfig, WindowerStats};

/// Records in flight between the decoding thread and the windower.
const CHANNEL_RECORDS: usize = 4096;

/// Windows of the capture `path` and the windower's counters. `on_record` sees every record
/// before the windower does (progress, or whatever else a caller collects on the way). A file
/// damaged part-way yields the windows of what came before the damage, with a warning; errors
/// are those of [`agent::for_each_record`].
pub fn windows_from_file(
    path: &Path,
    cfg: &WindowerConfig,
    mut on_record: impl FnMut(&PacketRecord),
) -> Result<(Vec<WindowRecord>, WindowerStats)> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<PacketRecord>(CHANNEL_RECORDS);
    let p = path.to_path_buf();
    let reader = std::thread::spawn(move || {
        agent::for_each_record(&p, |r| tx.send(r).map_err(|_| anyhow!("the windower stopped reading")))
    });
    let out = windower::windows_from_records_with_stats(rx.into_iter().inspect(|r| on_record(r)), cfg);
    let stats = reader.join().map_err(|_| anyhow!("capture reader panicked"))??;
    stats.warn_on_file_error(path);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_the_same_windows_as_reading_the_whole_file() {
        let path = testkit::pcaps_dir().join("port_scan-nmap-syn.pcap");
        let cfg = WindowerConfig::default();
        let mut seen = 0u64;
        let (windows, stats) = windows_from_file(&path, &cfg, |_| seen += 1).unwrap();
        let records = agent::records_from_file(&path).unwrap();
        assert_eq!(seen, records.len() as u64);
        assert_eq!(stats.accepted + stats.skipped_no_address, seen);
        assert!(!windows.is_empty());
        assert_eq!(windows, windower::windows_from_records(records, &cfg));
        assert!(windows_from_file(&path.with_extension("missing"), &cfg, |_| {}).is_err());
    }
}
