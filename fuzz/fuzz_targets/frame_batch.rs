//! A MessagePack `FrameBatch` as `nta export-pcap` and the dashboard take it off `NTA_FRAMES`:
//! `FrameBatch::decode` then `validate` (anything failing either is skipped with a warning).
//! What passes must survive a re-encode unchanged, or the pcap would hold other frames than
//! those validated.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::FrameBatch;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = FrameBatch::decode(data) else { return };
    if batch.validate().is_err() {
        return;
    }
    let _ = (batch.batch_id(), batch.ts_span());
    let back = FrameBatch::decode(&batch.encode()).expect("a re-encoded batch decodes");
    assert_eq!(back, batch);
    assert_eq!(back.validate(), Ok(()));
});
