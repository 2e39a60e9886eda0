//! Reading what agents publish, the same way in every consumer of `NTA_PACKETS` (ingestor and
//! windower), so both dead-letter exactly the same messages.

use wire::PacketBatch;

/// Decodes and validates a batch received on `subject`. Besides what [`PacketBatch::validate`]
/// rejects, a batch must come on its own agent's subject (`nta.packets.<agent_id>`): per-agent
/// publish permissions on the server then bind the `agent_id` stored with every packet, and an
/// agent cannot pass its packets off as another's.
pub fn decode_packet_batch(subject: &str, payload: &[u8]) -> Result<PacketBatch, String> {
    let batch = PacketBatch::decode(payload).map_err(|e| e.to_string())?;
    batch.validate().map_err(|e| e.to_string())?;
    let expected = crate::packets_subject(&batch.agent_id);
    if subject != expected {
        return Err(format!("agent_id {:?} published on {subject:?} (expected {expected:?})", batch.agent_id));
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_id_must_match_the_subject() {
        let bytes = PacketBatch::new("a1", "boot", 0).encode().unwrap();
        assert!(decode_packet_batch("nta.packets.a1", &bytes).is_ok());
        let err = decode_packet_batch("nta.packets.a2", &bytes).unwrap_err();
        assert!(err.contains("\"a1\"") && err.contains("nta.packets.a2"), "{err}");
        // A forged id with a subject separator cannot match any single-token subject.
        let bytes = PacketBatch::new("a1.x", "boot", 0).encode().unwrap();
        assert!(decode_packet_batch("nta.packets.a1", &bytes).is_err());
        assert!(decode_packet_batch("nta.packets.a1", b"\xc1").is_err());
    }
}
