//! Captured frames as the agent keeps them for forensics (stream `NTA_FRAMES`): the bytes of
//! each frame with its exact capture time, so that a pcap written from them is the capture.
//!
//! A [`FrameBatch`] is cut alongside each [`crate::PacketBatch`] and carries the same
//! `(agent_id, boot_id, seq)`, hence the same de-duplication id. Unlike the packet batch it
//! holds every captured frame, malformed ones included.

use serde::{Deserialize, Serialize};

use crate::limits;

/// Version of the frame batch encoding (see [`crate::BATCH_FORMAT_VERSION`] for the rule).
pub const FRAMES_FORMAT_VERSION: u8 = 1;

/// Longest frame a batch may carry: libpcap's largest snap length (`MAXIMUM_SNAPLEN`).
pub const MAX_FRAME_BYTES: usize = 262_144;

/// Most frames in one batch: far above any batch size the agent uses, low enough that a
/// forged batch cannot make a reader allocate without bound before validation.
pub const MAX_FRAMES_PER_BATCH: usize = 1_000_000;

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// Capture time in nanoseconds since the epoch, exactly as the source gave it (a
    /// microsecond source gives multiples of 1000).
    pub ts_ns: i64,
    /// Length of the frame on the wire (may exceed the bytes kept).
    pub wire_len: u32,
    /// Captured bytes, possibly cut to the agent's `frame_bytes`.
    #[serde(with = "bytes_field")]
    pub data: Vec<u8>,
}

/// The frames of one agent batch (all of one link type: an agent captures one source).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameBatch {
    pub v: u8,
    pub agent_id: String,
    pub boot_id: String,
    pub seq: u64,
    /// libpcap data link type (DLT_*) of every frame.
    pub linktype: i32,
    pub frames: Vec<Frame>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrameBatchError {
    #[error("{field} is {len} bytes (at most {max})")]
    IdTooLong { field: &'static str, len: usize, max: usize },
    #[error("frame {index}: capture time {ts_ns} ns lies outside years 1900-2262")]
    TimestampOutOfRange { index: usize, ts_ns: i64 },
    #[error("frame {index}: {len} bytes captured (at most {MAX_FRAME_BYTES})")]
    FrameTooLong { index: usize, len: usize },
    #[error("{0} frames in one batch (at most {MAX_FRAMES_PER_BATCH})")]
    TooManyFrames(usize),
}

/// Earliest capture time a frame may carry: 1900-01-01T00:00:00Z in nanoseconds (the same
/// bound as [`crate::MIN_TIMESTAMP`]); the latest is what an `i64` holds (2262).
pub const MIN_TS_NS: i64 = crate::MIN_TIMESTAMP as i64 * 1_000_000_000;

impl FrameBatch {
    pub fn new(agent_id: impl Into<String>, boot_id: impl Into<String>, seq: u64, linktype: i32) -> FrameBatch {
        FrameBatch {
            v: FRAMES_FORMAT_VERSION,
            agent_id: agent_id.into(),
            boot_id: boot_id.into(),
            seq,
            linktype,
            frames: Vec::new(),
        }
    }

    /// `<agent_id>.<boot_id>.<seq>`, the id of the packet batch cut with it.
    pub fn batch_id(&self) -> String {
        crate::batch_id(&self.agent_id, &self.boot_id, self.seq)
    }

    /// MessagePack, structs as arrays, frame bytes as `bin`.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    /// Reads a batch; a batch of another format version is an error, not a misreading.
    pub fn decode(bytes: &[u8]) -> Result<FrameBatch, crate::WireError> {
        let batch: FrameBatch = rmp_serde::from_slice(bytes)?;
        if batch.v != FRAMES_FORMAT_VERSION {
            return Err(crate::WireError::Version(batch.v));
        }
        Ok(batch)
    }

    /// Rejects what no agent sends: ids over their cap, frames over libpcap's largest snap
    /// length, times before 1900.
    pub fn validate(&self) -> Result<(), FrameBatchError> {
        for (field, value) in [("agent_id", &self.agent_id), ("boot_id", &self.boot_id)] {
            if value.len() > limits::MAX_ID_LEN {
                return Err(FrameBatchError::IdTooLong { field, len: value.len(), max: limits::MAX_ID_LEN });
            }
        }
        if self.frames.len() > MAX_FRAMES_PER_BATCH {
            return Err(FrameBatchError::TooManyFrames(self.frames.len()));
        }
        for (index, f) in self.frames.iter().enumerate() {
            if f.ts_ns < MIN_TS_NS {
                return Err(FrameBatchError::TimestampOutOfRange { index, ts_ns: f.ts_ns });
            }
            if f.data.len() > MAX_FRAME_BYTES {
                return Err(FrameBatchError::FrameTooLong { index, len: f.data.len() });
            }
        }
        Ok(())
    }

    /// Smallest and largest capture time of the batch (`None` when empty).
    pub fn ts_span(&self) -> Option<(i64, i64)> {
        let min = self.frames.iter().map(|f| f.ts_ns).min()?;
        let max = self.frames.iter().map(|f| f.ts_ns).max()?;
        Some((min, max))
    }
}

/// Capture time in nanoseconds of `secs` and `nanos` as libpcap gives them, saturating at what
/// an `i64` holds (years 1677-2262; a corrupt pcapng timestamp can lie far beyond).
pub fn ts_ns(secs: i64, nanos: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// Frame bytes as MessagePack `bin` (serde's default for `Vec<u8>` is an array of integers,
/// twice the size and slow), read back from `bin` or, leniently, an array.
mod bytes_field {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(data)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("frame bytes")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(super::MAX_FRAME_BYTES));
            while let Some(b) = seq.next_element::<u8>()? {
                if out.len() >= super::MAX_FRAME_BYTES {
                    return Err(A::Error::custom("frame longer than the largest snap length"));
                }
                out.push(b);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> FrameBatch {
        let mut b = FrameBatch::new("a1", "00ff", 7, 1);
        b.frames.push(Frame { ts_ns: 1_427_726_689_123_456_789, wire_len: 60, data: vec![0xde, 0xad, 0, 1] });
        b.frames.push(Frame { ts_ns: -5, wire_len: 1514, data: vec![] });
        b
    }

    #[test]
    fn round_trips_with_bytes_as_bin() {
        let b = batch();
        let enc = b.encode();
        // `bin 8` marker then the length: the bytes are not an array of integers.
        assert!(enc.windows(3).any(|w| w == [0xc4, 4, 0xde]), "{enc:02x?}");
        assert_eq!(FrameBatch::decode(&enc).unwrap(), b);
        assert_eq!(b.batch_id(), "a1.00ff.7");
        assert_eq!(b.ts_span(), Some((-5, 1_427_726_689_123_456_789)));
    }

    #[test]
    fn rejects_garbage_other_versions_and_impossible_frames() {
        assert!(FrameBatch::decode(b"\x93\x01").is_err());
        let mut newer = batch();
        newer.v = 9;
        assert!(matches!(FrameBatch::decode(&newer.encode()), Err(crate::WireError::Version(9))));
        assert_eq!(batch().validate(), Ok(()));
        let mut old = batch();
        old.frames[0].ts_ns = MIN_TS_NS - 1;
        assert!(matches!(old.validate(), Err(FrameBatchError::TimestampOutOfRange { index: 0, .. })));
        let mut big = batch();
        big.frames[1].data = vec![0; MAX_FRAME_BYTES + 1];
        assert!(matches!(big.validate(), Err(FrameBatchError::FrameTooLong { index: 1, .. })));
        let mut id = batch();
        id.agent_id = "x".repeat(limits::MAX_ID_LEN + 1);
        assert!(matches!(id.validate(), Err(FrameBatchError::IdTooLong { field: "agent_id", .. })));
    }

    #[test]
    fn timestamps_are_exact_and_saturate() {
        assert_eq!(ts_ns(1_427_726_689, 123_456_789), 1_427_726_689_123_456_789);
        assert_eq!(ts_ns(-1, 500_000_000), -500_000_000);
        assert_eq!(ts_ns(i64::MAX / 2, 0), i64::MAX);
    }
}
