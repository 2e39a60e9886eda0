//! The messages NTA services exchange and their validation. Every stage depends on this crate
//! and on nothing of another stage, so the data flow stays one-way: agent -> ingestor /
//! windower -> predictor -> dashboard. How they travel (streams, subjects, consumers) is the
//! `bus` crate's; where they are stored is the `store` crate's.

pub mod alert;
mod batch_reader;
pub mod features;
pub mod frames;
pub mod limits;
mod msgpack;
mod record;
pub mod time;
pub mod window;
pub use alert::AlertEvent;
pub use frames::{Frame, FrameBatch};
pub use record::{AppProto, MacAddr, PacketRecord, Protocol, TcpFlags};
pub use window::{View, WindowRecord};

use serde::{Deserialize, Serialize};

/// Version of the batch encoding; bumped whenever [`PacketBatch`] or [`PacketRecord`] change
/// shape in a way a reader could misread, so that consumers reject (and dead-letter) what they
/// cannot read instead of misreading it.
///
/// Fields appended at the end of [`PacketRecord`] (`app_proto`, `tls_sni`) did not bump it: a
/// record is an array, so an older reader meets a longer array than it knows and rejects the
/// batch (`rmp_serde` checks that every element was read), it cannot misread it; and this
/// reader takes the shorter arrays of older agents, the later fields `None`
/// (`#[serde(default)]`, and `batch_reader` likewise). A bump would instead have made every
/// reader of one version refuse the other's batches.
pub const BATCH_FORMAT_VERSION: u8 = 1;

/// Earliest capture time a batch may carry: 1900-01-01T00:00:00Z, in epoch seconds.
pub const MIN_TIMESTAMP: f64 = -2_208_988_800.0;
/// Latest capture time a batch may carry: 9999-12-31T23:59:59Z, in epoch seconds.
pub const MAX_TIMESTAMP: f64 = 253_402_300_799.0;

/// Whether `ts` (epoch seconds) can be a capture time: finite and within
/// [`MIN_TIMESTAMP`]..=[`MAX_TIMESTAMP`]. The one check the decoder, [`PacketBatch::validate`]
/// and the store share.
pub fn timestamp_in_range(ts: f64) -> bool {
    ts.is_finite() && (MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&ts)
}

/// A batch of decoded frames from one agent.
///
/// `(agent_id, boot_id, seq)` identifies a batch for ever: it is the JetStream `Nats-Msg-Id`
/// (so the server drops re-published duplicates) and the key of the ingestor's ledger (so a
/// redelivered batch is stored once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketBatch {
    pub v: u8,
    pub agent_id: String,
    /// Random id chosen when the agent process starts; `seq` restarts at 0 with each boot.
    pub boot_id: String,
    pub seq: u64,
    pub records: Vec<PacketRecord>,
}

impl PacketBatch {
    pub fn new(agent_id: impl Into<String>, boot_id: impl Into<String>, seq: u64) -> Self {
        PacketBatch {
            v: BATCH_FORMAT_VERSION,
            agent_id: agent_id.into(),
            boot_id: boot_id.into(),
            seq,
            records: Vec::new(),
        }
    }

    /// Stable identity of the batch: `<agent_id>.<boot_id>.<seq>`.
    pub fn batch_id(&self) -> String {
        batch_id(&self.agent_id, &self.boot_id, self.seq)
    }

    /// MessagePack encoding (struct fields as arrays: compact and fast; the `v` field guards
    /// against shape changes). Byte for byte what `rmp_serde::to_vec` writes, by a hand-written
    /// encoder (see [`PacketBatch::encode_into`]); it does not fail, the `Result` is kept for
    /// the callers written against the serde encoder.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::with_capacity(64 + self.records.len() * 160);
        self.encode_into(&mut out);
        Ok(out)
    }

    /// Rejects a batch that can never be stored or windowed, so consumers dead-letter it
    /// instead of failing on it for ever: a timestamp that is not finite or lies outside
    /// [`MIN_TIMESTAMP`]..=[`MAX_TIMESTAMP`] (corrupt; it would create absurd partitions and
    /// overflow PostgreSQL's range), more records than a 32-bit count holds, or a string longer
    /// than its cap in [`limits`]. The agent never sends such strings (it truncates them), so
    /// they mean a forged or corrupt batch, which must not fill the store with megabytes.
    pub fn validate(&self) -> Result<(), BatchError> {
        for (field, value) in [("agent_id", &self.agent_id), ("boot_id", &self.boot_id)] {
            if value.len() > limits::MAX_ID_LEN {
                return Err(BatchError::IdTooLong { field, len: value.len(), max: limits::MAX_ID_LEN });
            }
        }
        for (index, r) in self.records.iter().enumerate() {
            if !timestamp_in_range(r.timestamp) {
                return Err(BatchError::TimestampOutOfRange { index, timestamp: r.timestamp });
            }
            if let Some((field, len, max)) = r.oversized_field() {
                return Err(BatchError::FieldTooLong { index, field, len, max });
            }
        }
        if self.records.len() > i32::MAX as usize {
            return Err(BatchError::TooManyRecords);
        }
        Ok(())
    }

    /// Reads a batch: the agents' own encoding directly (`batch_reader`), anything else
    /// through `rmp_serde`, which also words the errors.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let batch = match batch_reader::read_batch(bytes) {
            Some(batch) => batch,
            None => Self::decode_generic(bytes)?,
        };
        // A batch from a newer agent yields a clear error rather than a misreading.
        if batch.v != BATCH_FORMAT_VERSION {
            return Err(WireError::Version(batch.v));
        }
        Ok(batch)
    }

    /// The batch as `rmp_serde` reads `bytes`, without the version check: the fallback of
    /// [`PacketBatch::decode`] and the reference its direct reader is tested against.
    pub fn decode_generic(bytes: &[u8]) -> Result<Self, WireError> {
        Ok(rmp_serde::from_slice(bytes)?)
    }
}

pub fn batch_id(agent_id: &str, boot_id: &str, seq: u64) -> String {
    format!("{agent_id}.{boot_id}.{seq}")
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("cannot encode MessagePack: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("cannot decode MessagePack: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("unsupported batch format version {0} (this build reads {BATCH_FORMAT_VERSION})")]
    Version(u8),
}

/// Why [`PacketBatch::validate`] rejects a batch.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchError {
    #[error("record {index}: timestamp {timestamp} out of range")]
    TimestampOutOfRange { index: usize, timestamp: f64 },
    #[error("too many records")]
    TooManyRecords,
    #[error("record {index}: {field} is {len} bytes long (at most {max})")]
    FieldTooLong { index: usize, field: &'static str, len: usize, max: usize },
    #[error("{field} is {len} bytes long (at most {max})")]
    IdTooLong { field: &'static str, len: usize, max: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trips_and_rejects_garbage() {
        let mut b = PacketBatch::new("a1", "boot", 7);
        let mut r = PacketRecord::new(1.5, 60);
        r.protocol = Protocol::Tcp;
        r.src_ip = Some("10.0.0.1".parse().unwrap());
        r.tcp_flags = Some(TcpFlags(0x12));
        r.src_mac = Some(MacAddr([0, 1, 2, 3, 4, 5]));
        b.records.push(r);
        let bytes = b.encode().unwrap();
        assert_eq!(PacketBatch::decode(&bytes).unwrap(), b);
        assert_eq!(b.batch_id(), "a1.boot.7");
        assert!(PacketBatch::decode(b"\x93garbage").is_err());
        let mut newer = b.clone();
        newer.v = 99;
        assert!(matches!(PacketBatch::decode(&newer.encode().unwrap()), Err(WireError::Version(99))));
    }

    #[test]
    fn validate_rejects_impossible_timestamps() {
        let mut b = PacketBatch::new("a1", "boot", 1);
        assert_eq!(b.validate(), Ok(()), "an empty batch is valid");
        for ts in [0.0, 1.5, MIN_TIMESTAMP, MAX_TIMESTAMP, 1_767_225_600.123] {
            b.records.push(PacketRecord::new(ts, 60));
        }
        assert_eq!(b.validate(), Ok(()));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e15, MIN_TIMESTAMP - 1.0, MAX_TIMESTAMP + 1.0] {
            let mut c = b.clone();
            c.records.push(PacketRecord::new(bad, 60));
            let e = c.validate().unwrap_err();
            assert!(matches!(e, BatchError::TimestampOutOfRange { index: 5, .. }), "{bad}: {e:?}");
            assert_eq!(e.to_string(), format!("record 5: timestamp {bad} out of range"));
        }
        assert_eq!(BatchError::TooManyRecords.to_string(), "too many records");
    }

    #[test]
    fn validate_rejects_strings_over_their_caps() {
        let mut b = PacketBatch::new("a1", "boot", 1);
        let mut r = PacketRecord::new(1.5, 60);
        // Exactly at every cap is still valid.
        r.interface = "i".repeat(limits::MAX_INTERFACE_LEN).into();
        r.dns_qname = Some("q".repeat(limits::MAX_DNS_QNAME_LEN));
        r.http_method = Some("M".repeat(limits::MAX_HTTP_METHOD_LEN));
        r.http_path = Some("/".repeat(limits::MAX_HTTP_PATH_LEN));
        r.http_host = Some("h".repeat(limits::MAX_HTTP_HOST_LEN));
        r.tls_sni = Some("s".repeat(limits::MAX_TLS_SNI_LEN));
        b.records.push(PacketRecord::new(1.0, 60));
        b.records.push(r.clone());
        assert_eq!(b.validate(), Ok(()));

        type Setter = fn(&mut PacketRecord, String);
        let cases: [(&str, usize, Setter); 6] = [
            ("interface", limits::MAX_INTERFACE_LEN, |r, s| r.interface = s.into()),
            ("dns_qname", limits::MAX_DNS_QNAME_LEN, |r, s| r.dns_qname = Some(s)),
            ("http_method", limits::MAX_HTTP_METHOD_LEN, |r, s| r.http_method = Some(s)),
            ("http_path", limits::MAX_HTTP_PATH_LEN, |r, s| r.http_path = Some(s)),
            ("http_host", limits::MAX_HTTP_HOST_LEN, |r, s| r.http_host = Some(s)),
            ("tls_sni", limits::MAX_TLS_SNI_LEN, |r, s| r.tls_sni = Some(s)),
        ];
        for (field, max, set) in cases {
            let mut c = b.clone();
            // One byte over, counted in bytes, not characters: 'é' is two.
            let over = "é".repeat(max / 2) + &"x".repeat(max % 2 + 1);
            set(&mut c.records[1], over);
            let e = c.validate().unwrap_err();
            assert_eq!(e, BatchError::FieldTooLong { index: 1, field, len: max + 1, max }, "{field}");
            assert_eq!(e.to_string(), format!("record 1: {field} is {} bytes long (at most {max})", max + 1));
            // And through the encoding a forged batch would travel in.
            let back = PacketBatch::decode(&c.encode().unwrap()).unwrap();
            assert!(back.validate().is_err(), "{field}");
        }

        let mut c = b.clone();
        c.agent_id = "a".repeat(limits::MAX_ID_LEN + 1);
        assert!(matches!(c.validate(), Err(BatchError::IdTooLong { field: "agent_id", .. })));
        let mut c = b.clone();
        c.boot_id = "b".repeat(limits::MAX_ID_LEN + 1);
        assert!(matches!(c.validate(), Err(BatchError::IdTooLong { field: "boot_id", .. })));
    }
}
