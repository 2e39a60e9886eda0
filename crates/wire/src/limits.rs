//! Longest string each [`PacketRecord`] field may hold, in bytes (UTF-8), and the one helper
//! that cuts a string to such a cap. The agent truncates to these caps when it decodes
//! (counting it in `nta_agent_fields_truncated_total{field}`) and [`crate::PacketBatch::validate`]
//! rejects a batch exceeding them, so both sides agree by construction: without caps a single
//! crafted request line put a 900 KB `http_path` in the store.

use crate::PacketRecord;

/// `interface`: a live interface name (Linux IFNAMSIZ is 16) or a capture file's name
/// (NAME_MAX is 255 bytes).
pub const MAX_INTERFACE_LEN: usize = 255;

/// `dns_qname`: RFC 1035 limits a name to 255 octets on the wire (simple-dns enforces it).
/// The record holds the presentation form, in which a byte that is not printable text is
/// written `\DDD` (4 bytes); tunnels (iodine) send exactly such names. The longest
/// presentation of a 255-octet name is 4 labels of 250 escaped bytes plus 3 dots, 1003 bytes,
/// so this cap never cuts a name that came off the wire whole: cutting tunnel names would
/// blind the detection that measures their length and entropy.
pub const MAX_DNS_QNAME_LEN: usize = 1024;

/// `http_method`: the decoder only takes a method token of at most 20 bytes; registered
/// methods are far shorter.
pub const MAX_HTTP_METHOD_LEN: usize = 32;

/// `http_path`: longer request targets are rare (browsers and servers commonly stop around
/// 2 to 8 KB) and their tail carries nothing the detection uses.
pub const MAX_HTTP_PATH_LEN: usize = 2048;

/// `http_host`: a DNS name (at most 255 bytes) and a port.
pub const MAX_HTTP_HOST_LEN: usize = 255 + ":65535".len();

/// `tls_sni`: a host name, at most 255 bytes like a DNS name (RFC 6066 3 forbids anything
/// else, but the field is whatever a client sent, so it is cut like the others).
pub const MAX_TLS_SNI_LEN: usize = 255;

/// `agent_id` and `boot_id` of a batch: ids, not text (they become subject tokens, message ids
/// and ledger keys).
pub const MAX_ID_LEN: usize = 128;

/// The longest prefix of `s` that is at most `max` bytes and ends on a character boundary.
pub fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    // A UTF-8 character is at most 4 bytes, so a boundary is at most 3 steps back.
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl PacketRecord {
    /// Every string field with its name and cap, in declaration order.
    pub fn string_fields(&self) -> [(&'static str, Option<&str>, usize); 6] {
        [
            ("interface", Some(&*self.interface), MAX_INTERFACE_LEN),
            ("dns_qname", self.dns_qname.as_deref(), MAX_DNS_QNAME_LEN),
            ("http_method", self.http_method.as_deref(), MAX_HTTP_METHOD_LEN),
            ("http_path", self.http_path.as_deref(), MAX_HTTP_PATH_LEN),
            ("http_host", self.http_host.as_deref(), MAX_HTTP_HOST_LEN),
            ("tls_sni", self.tls_sni.as_deref(), MAX_TLS_SNI_LEN),
        ]
    }

    /// The first string field longer than its cap: (name, length, cap).
    pub fn oversized_field(&self) -> Option<(&'static str, usize, usize)> {
        self.string_fields()
            .into_iter()
            .find_map(|(name, v, max)| v.filter(|v| v.len() > max).map(|v| (name, v.len(), max)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate_str("", 0), "");
        assert_eq!(truncate_str("abc", 3), "abc");
        assert_eq!(truncate_str("abc", 2), "ab");
        // 'é' is 2 bytes, '€' 3, '𝄞' 4: a cut inside one drops the whole character.
        assert_eq!(truncate_str("aé", 2), "a");
        assert_eq!(truncate_str("a€", 3), "a");
        assert_eq!(truncate_str("a𝄞", 4), "a");
        assert_eq!(truncate_str("a𝄞", 5), "a𝄞");
        assert_eq!(truncate_str("𝄞", 0), "");
    }
}
