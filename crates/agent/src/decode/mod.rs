//! Frame decoding: link layer -> IP -> transport -> DNS / HTTP, into a [`wire::PacketRecord`].
//! (Implementation in progress.)

use wire::PacketRecord;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed frame: {0}")]
    Malformed(String),
}

impl DecodeError {
    /// Short label for metrics.
    pub fn kind(&self) -> &'static str {
        "malformed"
    }
}

/// Decodes frames of one data link type.
pub struct Decoder {
    linktype: i32,
}

impl Decoder {
    pub fn new(linktype: i32) -> Decoder {
        Decoder { linktype }
    }

    /// Decodes one frame. `interface` is left empty: the caller sets it.
    pub fn decode(&self, timestamp: f64, wire_len: u32, data: &[u8]) -> Result<PacketRecord, DecodeError> {
        let _ = (self.linktype, data);
        Ok(PacketRecord::new(timestamp, wire_len))
    }
}
