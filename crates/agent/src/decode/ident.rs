//! What a payload speaks, by its content, never by its ports: SSH identification strings, TLS
//! records (and the server name of a ClientHello), QUIC Initial packets. Each check looks at a
//! few leading bytes before parsing anything, so the common case (a payload that is none of
//! them) costs one comparison per identifier.
//!
//! Nothing is reassembled: a ClientHello cut by the snap length or by the segment boundary
//! yields its server name only when the name's bytes are all in this frame (as tshark without
//! TCP reassembly shows it). Every read is bounds-checked; malformed input yields `None`.

use wire::limits::MAX_TLS_SNI_LEN;
use wire::{AppProto, PacketRecord};

/// Largest TLS record body: 2^14 bytes of plaintext plus the 2048 bytes of expansion TLS 1.2
/// allows (RFC 5246 6.2.3; TLS 1.3 allows 256).
const MAX_TLS_RECORD_LEN: usize = (1 << 14) + 2048;
/// TLS content types (20 to 23 are change_cipher_spec, alert, handshake, application_data)
/// and the ClientHello handshake type.
const TLS_CHANGE_CIPHER_SPEC: u8 = 20;
const TLS_HANDSHAKE: u8 = 22;
const TLS_CLIENT_HELLO: u8 = 1;
/// Records looked at in one segment for a ClientHello: a TLS 1.3 client in middlebox
/// compatibility mode may send change_cipher_spec before its second ClientHello.
const MAX_RECORDS: usize = 4;

/// Identifies a TCP payload that starts with an SSH identification string or a TLS record;
/// for a ClientHello, also sets `tls_sni`. Returns whether it identified the payload.
#[inline]
pub(super) fn identify_tcp(rec: &mut PacketRecord, payload: &[u8]) -> bool {
    match payload.first() {
        Some(b'S') if is_ssh_banner(payload) => {
            rec.app_proto = Some(AppProto::Ssh);
            true
        }
        Some(20..=23) if tls_record_len(payload).is_some() => {
            rec.app_proto = Some(AppProto::Tls);
            if payload[0] == TLS_HANDSHAKE || payload[0] == TLS_CHANGE_CIPHER_SPEC {
                rec.tls_sni = client_hello_sni(payload).map(sni_text);
            }
            true
        }
        _ => false,
    }
}

/// Identifies a UDP payload that is (or, coalesced, starts with) a QUIC Initial packet.
#[inline]
pub(super) fn identify_udp(rec: &mut PacketRecord, payload: &[u8]) {
    if payload.first().is_some_and(|b| b & 0xc0 == 0xc0) && is_quic_initial(payload) {
        rec.app_proto = Some(AppProto::Quic);
    }
}

/// `SSH-protoversion-`: RFC 4253 4.2's identification string, protoversion being digits and
/// dots starting with a digit ("2.0", "1.99", "1.5").
fn is_ssh_banner(p: &[u8]) -> bool {
    let Some(rest) = p.strip_prefix(b"SSH-") else {
        return false;
    };
    if !rest.first().is_some_and(u8::is_ascii_digit) {
        return false;
    }
    // The version is short; a dash must follow it within the bytes captured.
    match rest.iter().take(16).position(|&b| b == b'-') {
        Some(n) => rest[..n].iter().all(|&b| b.is_ascii_digit() || b == b'.'),
        None => false,
    }
}

/// The body length of the TLS record whose header starts `p`, if it is one: content type 20 to
/// 23, version 3.0 (SSL 3.0) to 3.4, a body of at most [`MAX_TLS_RECORD_LEN`] bytes. An empty
/// body is allowed: TLS 1.2 permits empty application data records and some clients (Skype)
/// send empty handshake records, which tshark shows as TLS too.
fn tls_record_len(p: &[u8]) -> Option<usize> {
    let h = p.get(..5)?;
    let len = u16::from_be_bytes([h[3], h[4]]) as usize;
    ((20..=23).contains(&h[0]) && h[1] == 3 && h[2] <= 4 && len <= MAX_TLS_RECORD_LEN).then_some(len)
}

/// The host_name of the server_name extension (RFC 6066 3) of a ClientHello in the first
/// records of `p`, when its bytes are all there.
fn client_hello_sni(p: &[u8]) -> Option<&[u8]> {
    let mut rest = p;
    for _ in 0..MAX_RECORDS {
        let len = tls_record_len(rest)?;
        let body = &rest[5..];
        if rest[0] == TLS_HANDSHAKE {
            // A record cut short (snap length, segment boundary) is read as far as it goes.
            return hello_server_name(&body[..len.min(body.len())]);
        }
        rest = body.get(len..)?;
    }
    None
}

/// Bounds-checked reading of a byte string.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    /// Up to `n` bytes: what is left when fewer are present (a message cut short).
    fn take_upto(&mut self, n: usize) -> &'a [u8] {
        self.take(n.min(self.0.len())).unwrap_or_default()
    }

    fn u8(&mut self) -> Option<usize> {
        Some(self.take(1)?[0] as usize)
    }

    fn u16(&mut self) -> Option<usize> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]) as usize)
    }

    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize)
    }
}

/// The server name of the handshake message starting `hs` if it is a ClientHello
/// (RFC 8446 4.1.2, the same layout as RFC 5246 7.4.1.2).
fn hello_server_name(hs: &[u8]) -> Option<&[u8]> {
    let mut c = Cursor(hs);
    if c.u8()? != TLS_CLIENT_HELLO as usize {
        return None;
    }
    let len = c.u24()?;
    let mut c = Cursor(c.take_upto(len));
    c.take(2 + 32)?; // legacy_version, random
    let n = c.u8()?;
    c.take(n)?; // legacy_session_id
    let n = c.u16()?;
    c.take(n)?; // cipher_suites
    let n = c.u8()?;
    c.take(n)?; // legacy_compression_methods
    let n = c.u16()?;
    let mut exts = Cursor(c.take_upto(n));
    loop {
        let kind = exts.u16()?;
        let len = exts.u16()?;
        if kind == 0 {
            return server_name(exts.take_upto(len));
        }
        exts.take(len)?;
    }
}

/// The first host_name (type 0) of a ServerNameList.
fn server_name(ext: &[u8]) -> Option<&[u8]> {
    let mut c = Cursor(ext);
    let len = c.u16()?;
    let mut list = Cursor(c.take_upto(len));
    loop {
        let kind = list.u8()?;
        let len = list.u16()?;
        let name = list.take(len)?;
        if kind == 0 {
            return Some(name);
        }
    }
}

/// The name as text: the `dns_qname` form (UTF-8 when it is, `\DDD` escapes otherwise: the
/// bytes are whatever a client sent), cut to [`MAX_TLS_SNI_LEN`].
fn sni_text(name: &[u8]) -> String {
    let mut s = String::with_capacity(name.len());
    super::app::push_label(&mut s, name);
    if s.len() > MAX_TLS_SNI_LEN {
        s = super::bounded("tls_sni", &s, MAX_TLS_SNI_LEN);
        // An escape is 4 bytes: a backslash among the last 3 starts one the cut broke.
        let tail = s.len().saturating_sub(3);
        if let Some(i) = s.as_bytes()[tail..].iter().rposition(|&b| b == b'\\') {
            s.truncate(tail + i);
        }
    }
    s
}

/// A QUIC long header (RFC 9000 17.2) of an Initial packet of QUIC version 1, 2 (RFC 9369,
/// whose Initial type is 1, not 0) or an IETF draft (0xff0000xx), with connection ids of at
/// most 20 bytes and the token length present.
fn is_quic_initial(p: &[u8]) -> bool {
    let Some(h) = p.get(..6) else {
        return false;
    };
    let version = u32::from_be_bytes([h[1], h[2], h[3], h[4]]);
    let initial_type = match version {
        0x0000_0001 => 0,
        0x6b33_43cf => 1,
        v if v >> 8 == 0x00ff_0000 => 0,
        _ => return false,
    };
    if h[0] & 0xc0 != 0xc0 || (h[0] >> 4) & 0x03 != initial_type {
        return false;
    }
    let mut c = Cursor(&p[5..]);
    let ids_ok = (|| {
        let dcid = c.u8().filter(|&n| n <= 20)?;
        c.take(dcid)?;
        let scid = c.u8().filter(|&n| n <= 20)?;
        c.take(scid)?;
        // Token length: a variable-length integer whose size is in its first two bits.
        let first = c.u8()?;
        c.take((1 << (first >> 6)) - 1)
    })();
    ids_ok.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello handshake message with the given extensions (type, data).
    fn client_hello(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[0xab; 32]);
        body.push(32);
        body.extend_from_slice(&[0xcd; 32]);
        body.extend_from_slice(&4u16.to_be_bytes());
        body.extend_from_slice(&[0x13, 0x01, 0x13, 0x02]);
        body.extend_from_slice(&[1, 0]);
        let mut exts = Vec::new();
        for (kind, data) in extensions {
            exts.extend_from_slice(&kind.to_be_bytes());
            exts.extend_from_slice(&(data.len() as u16).to_be_bytes());
            exts.extend_from_slice(data);
        }
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut hs = vec![TLS_CLIENT_HELLO];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        hs
    }

    /// A server_name extension's data with one entry per (type, name).
    fn server_names(names: &[(u8, &[u8])]) -> Vec<u8> {
        let mut list = Vec::new();
        for (kind, name) in names {
            list.push(*kind);
            list.extend_from_slice(&(name.len() as u16).to_be_bytes());
            list.extend_from_slice(name);
        }
        let mut data = (list.len() as u16).to_be_bytes().to_vec();
        data.extend_from_slice(&list);
        data
    }

    fn record(content_type: u8, version: u16, body: &[u8]) -> Vec<u8> {
        let mut r = vec![content_type];
        r.extend_from_slice(&version.to_be_bytes());
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    fn tcp(payload: &[u8]) -> PacketRecord {
        let mut rec = PacketRecord::default();
        identify_tcp(&mut rec, payload);
        rec
    }

    fn hello_with_sni(name: &[u8]) -> Vec<u8> {
        let exts = [(0x000a, vec![0, 2, 0, 0x1d]), (0, server_names(&[(0, name)])), (0x002b, vec![2, 3, 4])];
        record(TLS_HANDSHAKE, 0x0301, &client_hello(&exts))
    }

    #[test]
    fn ssh_identification_strings() {
        for ok in [&b"SSH-2.0-OpenSSH_9.6\r\n"[..], b"SSH-1.99-OpenSSH_3.9p1\n", b"SSH-2.0-", b"SSH-1.5-x"] {
            assert_eq!(tcp(ok).app_proto, Some(AppProto::Ssh), "{:?}", String::from_utf8_lossy(ok));
        }
        for no in [
            &b"SSH-"[..],
            b"SSH-2.0",     // cut before the dash: not yet an identification string
            b"SSH-x.0-abc", // version must start with a digit
            b"SSH-2.0a-b",
            b"ssh-2.0-OpenSSH",
            b" SSH-2.0-OpenSSH",
            b"SSH-22222222222222222222-x",
            b"SEARCH / HTTP/1.1\r\n",
            b"",
        ] {
            assert_eq!(tcp(no).app_proto, None, "{:?}", String::from_utf8_lossy(no));
        }
    }

    #[test]
    fn tls_record_headers() {
        for (t, v) in [(20, 0x0303), (21, 0x0300), (22, 0x0301), (23, 0x0303), (23, 0x0304)] {
            let r = tcp(&record(t, v, &[1, 2, 3]));
            assert_eq!(r.app_proto, Some(AppProto::Tls), "{t} {v:#x}");
            assert_eq!(r.tls_sni, None);
        }
        // Only the header must be present: the body may be in later segments.
        assert_eq!(tcp(&[23, 3, 3, 0x40, 0x00]).app_proto, Some(AppProto::Tls));
        assert_eq!(tcp(&[22, 3, 1, 0, 0]).app_proto, Some(AppProto::Tls));
        let max = MAX_TLS_RECORD_LEN as u16;
        assert_eq!(tcp(&[23, 3, 3, (max >> 8) as u8, max as u8]).app_proto, Some(AppProto::Tls));
        for no in [
            vec![24, 3, 3, 0, 5],       // content type
            vec![19, 3, 3, 0, 5],       // content type
            vec![22, 2, 0, 0, 5],       // SSL 2 version
            vec![22, 3, 5, 0, 5],       // unknown version
            vec![22, 0xfe, 0xfd, 0, 5], // DTLS
            vec![23, 3, 3, ((max + 1) >> 8) as u8, (max + 1) as u8],
            vec![22, 3, 1, 0], // header cut
        ] {
            assert_eq!(tcp(&no).app_proto, None, "{no:?}");
        }
    }

    #[test]
    fn client_hello_server_name() {
        let r = tcp(&hello_with_sni(b"www.example.com"));
        assert_eq!(r.app_proto, Some(AppProto::Tls));
        assert_eq!(r.tls_sni.as_deref(), Some("www.example.com"));

        // The first host_name entry, after an entry of another type.
        let exts = [(0, server_names(&[(7, b"other"), (0, b"a.example"), (0, b"b.example")]))];
        let r = tcp(&record(TLS_HANDSHAKE, 0x0303, &client_hello(&exts)));
        assert_eq!(r.tls_sni.as_deref(), Some("a.example"));

        // No server_name extension, no extensions at all, not a ClientHello (ServerHello: 2).
        let r = tcp(&record(TLS_HANDSHAKE, 0x0303, &client_hello(&[(0x000a, vec![0, 2, 0, 0x1d])])));
        assert_eq!((r.app_proto, r.tls_sni), (Some(AppProto::Tls), None));
        let mut bare = client_hello(&[]);
        bare.truncate(bare.len() - 2); // without even the extensions length (TLS 1.0 allows it)
        bare[3] -= 2;
        assert_eq!(tcp(&record(TLS_HANDSHAKE, 0x0301, &bare)).tls_sni, None);
        let mut server_hello = client_hello(&[(0, server_names(&[(0, b"x.example")]))]);
        server_hello[0] = 2;
        assert_eq!(tcp(&record(TLS_HANDSHAKE, 0x0303, &server_hello)).tls_sni, None);
        // A ClientHello in an application_data record is not one.
        let hello = client_hello(&[(0, server_names(&[(0, b"x.example")]))]);
        assert_eq!(tcp(&record(23, 0x0303, &hello)).tls_sni, None);

        // change_cipher_spec, then the ClientHello (TLS 1.3 middlebox compatibility).
        let mut p = record(TLS_CHANGE_CIPHER_SPEC, 0x0303, &[1]);
        p.extend_from_slice(&hello_with_sni(b"second.example"));
        assert_eq!(tcp(&p).tls_sni.as_deref(), Some("second.example"));
    }

    /// A ClientHello cut anywhere (snap length, segment boundary) never panics, and yields the
    /// name exactly when all of the name's bytes are present.
    #[test]
    fn truncated_client_hello() {
        let name = b"truncated.example.net";
        let full = hello_with_sni(name);
        let name_end = full.windows(name.len()).position(|w| w == name).unwrap() + name.len();
        for cut in 0..=full.len() {
            let r = tcp(&full[..cut]);
            let want = (cut >= name_end).then(|| String::from_utf8(name.to_vec()).unwrap());
            assert_eq!(r.tls_sni, want, "cut at {cut}");
            assert_eq!(r.app_proto, (cut >= 5).then_some(AppProto::Tls), "cut at {cut}");
        }
    }

    /// Lengths that point past the message, the record or the frame are not followed.
    #[test]
    fn lying_lengths_are_bounded() {
        let full = hello_with_sni(b"x.example");
        // A record length shorter than the hello: the name lies beyond the record.
        let mut short = full.clone();
        short[3..5].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(tcp(&short).tls_sni, None);
        // A handshake length shorter than the hello.
        let mut short = full.clone();
        short[6..9].copy_from_slice(&[0, 0, 50]);
        assert_eq!(tcp(&short).tls_sni, None);
        // Any byte set to any of these values: no panic, and a name within the cap.
        for at in 0..full.len() {
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut p = full.clone();
                p[at] = v;
                if let Some(s) = tcp(&p).tls_sni {
                    assert!(s.len() <= MAX_TLS_SNI_LEN);
                }
            }
        }
    }

    #[test]
    fn server_names_become_bounded_text() {
        // Bytes that are not UTF-8 are escaped as in dns_qname.
        let r = tcp(&hello_with_sni(b"bad\xff.example"));
        assert_eq!(r.tls_sni.as_deref(), Some("bad\\255.example"));
        // HTML stays as sent: escaping is the display's job.
        let r = tcp(&hello_with_sni(b"<script>alert(1)</script>"));
        assert_eq!(r.tls_sni.as_deref(), Some("<script>alert(1)</script>"));
        let r = tcp(&hello_with_sni(b""));
        assert_eq!(r.tls_sni.as_deref(), Some(""));
        // Longer than the cap: cut.
        let long = vec![b'a'; 1000];
        let r = tcp(&hello_with_sni(&long));
        assert_eq!(r.tls_sni.as_deref(), Some(&"a".repeat(MAX_TLS_SNI_LEN)[..]));
        // Escaped, then cut: never inside an escape.
        let long = vec![0xff; 100];
        let r = tcp(&hello_with_sni(&long));
        assert_eq!(r.tls_sni, Some("\\255".repeat(MAX_TLS_SNI_LEN / 4)));
        let mut long = vec![b'a'; 2];
        long.extend_from_slice(&[0xff; 100]);
        let r = tcp(&hello_with_sni(&long));
        assert_eq!(r.tls_sni, Some("aa".to_owned() + &"\\255".repeat((MAX_TLS_SNI_LEN - 2) / 4)));
    }

    fn quic_initial(first: u8, version: u32) -> Vec<u8> {
        let mut p = vec![first];
        p.extend_from_slice(&version.to_be_bytes());
        p.push(8);
        p.extend_from_slice(&[0x11; 8]);
        p.push(0);
        p.push(0); // token length 0
        p.extend_from_slice(&[0x44, 0xd0]); // length 1232
        p.resize(1200, 0);
        p
    }

    #[test]
    fn quic_initial_packets() {
        let udp = |p: &[u8]| {
            let mut rec = PacketRecord::default();
            identify_udp(&mut rec, p);
            rec.app_proto
        };
        for (first, version) in [(0xc3, 1), (0xc0, 0xff00_001d), (0xc1, 0xff00_001b), (0xd0, 0x6b33_43cf)] {
            assert_eq!(udp(&quic_initial(first, version)), Some(AppProto::Quic), "{first:#x} {version:#x}");
        }
        for (first, version) in [
            (0xe0, 1),           // Handshake, not Initial
            (0xd0, 1),           // 0-RTT
            (0xc0, 0x6b33_43cf), // v2's type 0 is Retry
            (0x80, 1),           // fixed bit clear
            (0x40, 1),           // short header
            (0xc0, 0),           // version negotiation
            (0xc0, 0x5130_3530), // Google QUIC Q050
            (0xc0, 2),
        ] {
            assert_eq!(udp(&quic_initial(first, version)), None, "{first:#x} {version:#x}");
        }
        let mut long_cid = quic_initial(0xc0, 1);
        long_cid[5] = 21;
        assert_eq!(udp(&long_cid), None);
        let p = quic_initial(0xc0, 1);
        for cut in 0..16 {
            assert_eq!(udp(&p[..cut]), None, "cut at {cut}");
        }
        assert_eq!(udp(&p[..16]), Some(AppProto::Quic));
    }
}
