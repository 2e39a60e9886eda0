//! Window features on the wire: what the windower publishes on `nta.windows.<size>` (stream
//! `NTA_WINDOWS`) and the predictor consumes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Window lengths in seconds: 5 s windows are computed from packets, 30 s and 180 s windows by
/// merging the 5 s partial states.
pub const WINDOW_SIZES: [u32; 3] = [5, 30, 180];

/// Whose traffic a window describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum View {
    /// Traffic sent by `key` (an IP address, or an ARP sender address).
    Source,
    /// Traffic received by `key` (sees floods from spoofed or random sources).
    Destination,
}

impl View {
    pub fn as_str(self) -> &'static str {
        match self {
            View::Source => "source",
            View::Destination => "destination",
        }
    }
}

/// Subject token of a window size: `5s`, `30s`, `3m`.
pub fn size_token(window_size: u32) -> String {
    if window_size.is_multiple_of(60) {
        format!("{}m", window_size / 60)
    } else {
        format!("{window_size}s")
    }
}

/// One closed window for one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRecord {
    pub v: u8,
    pub view: View,
    /// The source or destination address.
    pub key: String,
    /// Window start, epoch seconds (a multiple of `window_size`).
    pub window_start: i64,
    /// 5, 30 or 180.
    pub window_size: u32,
    /// Every feature by name; `None` where a feature is undefined for this window (e.g. the
    /// mean DNS answer size of a window without DNS answers), never a made-up 0.
    pub features: BTreeMap<String, Option<f64>>,
}

impl WindowRecord {
    /// Stable identity, used as `Nats-Msg-Id` and as the table key:
    /// `<view>.<size>.<start>.<key>`.
    pub fn window_id(&self) -> String {
        format!("{}.{}.{}.{}", self.view.as_str(), self.window_size, self.window_start, self.key)
    }

    /// MessagePack with field names (windows are few; self-description is worth the bytes).
    pub fn encode(&self) -> Result<Vec<u8>, crate::WireError> {
        Ok(rmp_serde::to_vec_named(self)?)
    }

    /// Rejects what cannot be stored or means nothing (empty or huge keys, impossible sizes
    /// and start times), so a consumer dead-letters it instead of failing on it for ever.
    pub fn validate(&self) -> Result<(), String> {
        if self.key.is_empty() || self.key.len() > 512 || self.key.contains('\0') {
            return Err(format!("invalid window key {:?}", self.key.chars().take(64).collect::<String>()));
        }
        if !(1..=86_400).contains(&self.window_size) {
            return Err(format!("invalid window size {}", self.window_size));
        }
        // Between 1970 and 9999 (PostgreSQL timestamps, and nothing a capture can hold).
        if !(0..=253_402_300_799).contains(&self.window_start) {
            return Err(format!("invalid window start {}", self.window_start));
        }
        Ok(())
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, crate::WireError> {
        let w: WindowRecord = rmp_serde::from_slice(bytes)?;
        if w.v != crate::BATCH_FORMAT_VERSION {
            return Err(crate::WireError::Version(w.v));
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_subject_and_round_trip() {
        let mut features = BTreeMap::new();
        features.insert("packet_count".to_string(), Some(3.0));
        features.insert("avg_answer_size".to_string(), None);
        let w = WindowRecord {
            v: crate::BATCH_FORMAT_VERSION,
            view: View::Destination,
            key: "10.0.0.5".into(),
            window_start: 1_700_000_100,
            window_size: 180,
            features,
        };
        assert_eq!(w.window_id(), "destination.180.1700000100.10.0.0.5");
        assert_eq!(size_token(30), "30s");
        assert_eq!(WindowRecord::decode(&w.encode().unwrap()).unwrap(), w);
    }
}
