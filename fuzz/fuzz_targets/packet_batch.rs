//! A MessagePack `PacketBatch` as the ingestor and windower take it off NATS:
//! `PacketBatch::decode` then `validate` (anything failing either is dead-lettered). What
//! passes must survive a re-encode unchanged, or the store and windower would see other data
//! than what was validated. `decode` reads the agents' own encoding directly and anything
//! else through rmp_serde: both must read the same bytes the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::PacketBatch;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = PacketBatch::decode(data) else { return };
    let generic = PacketBatch::decode_generic(data).expect("what the direct reader takes, rmp_serde reads");
    assert_eq!(generic.encode().unwrap(), batch.encode().unwrap(), "read differently by rmp_serde");
    if batch.validate().is_err() {
        return;
    }
    let _ = batch.batch_id();
    let bytes = batch.encode().expect("a decoded batch encodes");
    let back = PacketBatch::decode(&bytes).expect("a re-encoded batch decodes");
    assert_eq!(back, batch);
    assert_eq!(back.validate(), Ok(()));
});
