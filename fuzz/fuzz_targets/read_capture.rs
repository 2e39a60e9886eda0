//! A whole capture file (pcap or pcapng) through libpcap and the agent's record step
//! (`agent::for_each_record`, what `nta decode`/`analyze`/training and file replay use).
//! libpcap reads from a path, so the input goes to a file of this process first (tmpfs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::LazyLock;

static PATH: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    dir.join(format!("nta-fuzz-read-capture-{}.pcap", std::process::id()))
});

fuzz_target!(|data: &[u8]| {
    std::fs::write(&*PATH, data).expect("writing the capture file");
    let mut batch = wire::PacketBatch::new("fuzz", "boot", 0);
    // Open failures and unsupported link types are errors, not crashes.
    let _ = agent::for_each_record(&PATH, |rec| {
        batch.records.push(rec);
        Ok(())
    });
    // Every record the agent reads must be publishable: a batch consumers reject is lost whole.
    assert_eq!(batch.validate(), Ok(()));
});
