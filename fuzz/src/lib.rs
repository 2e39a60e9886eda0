//! What the fuzz targets and the seed generator share.

use agent::decode::dlt;

/// The link types `agent::decode::Decoder` supports (`Decoder::supports`); the first input byte
/// of `decode_frame` picks one (modulo the length), so one target covers them all and the
/// fuzzer can carry a payload from one link type to another.
pub const LINKTYPES: [i32; 10] = [
    dlt::EN10MB,
    dlt::LINUX_SLL,
    dlt::LINUX_SLL2,
    dlt::RAW,
    dlt::IPV4,
    dlt::IPV6,
    dlt::RAW_OPENBSD,
    dlt::RAW_BSDOS,
    dlt::NULL,
    dlt::LOOP,
];

/// The selector byte of `linktype` in [`LINKTYPES`].
pub fn selector(linktype: i32) -> Option<u8> {
    LINKTYPES.iter().position(|&l| l == linktype).map(|i| i as u8)
}

/// The default model the predictor ships with: what `window_record` classifies with.
pub const DEFAULT_MODEL: &[u8] = include_bytes!("../../crates/predictor/models/default.nta-model");
