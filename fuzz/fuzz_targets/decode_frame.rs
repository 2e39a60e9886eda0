//! One frame through `agent::decode::Decoder`, link type chosen by the first byte. Beyond not
//! panicking, what the agent makes of any frame must pass the consumers' validation (string
//! caps of `wire::limits`): otherwise one hostile frame gets a whole batch dead-lettered.
#![no_main]

use agent::decode::Decoder;
use libfuzzer_sys::fuzz_target;
use nta_fuzz::LINKTYPES;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else { return };
    let linktype = LINKTYPES[sel as usize % LINKTYPES.len()];
    assert!(Decoder::supports(linktype));
    let decoder = Decoder::new(linktype);
    if let Ok(rec) = decoder.decode(1_700_000_000.0, frame.len() as u32, frame) {
        assert_eq!(rec.oversized_field(), None);
        let mut batch = wire::PacketBatch::new("fuzz", "boot", 0);
        batch.records.push(rec);
        assert_eq!(batch.validate(), Ok(()));
    }
});
