//! Application layer: DNS (simple-dns) and HTTP/1.x first lines (httparse).

use wire::limits::{self, MAX_DNS_QNAME_LEN, MAX_HTTP_HOST_LEN, MAX_HTTP_METHOD_LEN, MAX_HTTP_PATH_LEN};
use wire::{AppProto, PacketRecord};

/// `s` cut to at most `max` bytes (on a character boundary), as a record field. Consumers
/// reject longer strings ([`wire::PacketBatch::validate`]); each cut is counted in
/// `nta_agent_fields_truncated_total{field}` so an operator sees what is being clipped.
pub(crate) fn bounded(field: &'static str, s: &str, max: usize) -> String {
    let cut = limits::truncate_str(s, max);
    if cut.len() < s.len() {
        metrics::counter!("nta_agent_fields_truncated_total", "field" => field).increment(1);
    }
    cut.to_owned()
}

/// DNS, mDNS and LLMNR ports.
#[inline]
pub(super) fn is_dns_port(p: u16) -> bool {
    matches!(p, 53 | 5353 | 5355)
}

/// Fills the DNS fields from a DNS message, and `app_proto` when there was one (at least the
/// 4 bytes of the id and flags). A message cut by the snap length or by
/// fragmentation still has its header and, usually, its question: those are kept (the answer
/// size stays unknown) and the partial decode is counted. Tunnels hide in query names, so
/// losing them to a short snaplen would blind detection.
pub(super) fn decode_dns(rec: &mut PacketRecord, msg: &[u8]) {
    decode_dns_fields(rec, msg);
    if rec.dns_query.is_some() {
        rec.app_proto = Some(AppProto::Dns);
    }
}

fn decode_dns_fields(rec: &mut PacketRecord, msg: &[u8]) {
    let packet = match simple_dns::Packet::parse(msg) {
        Ok(p) => p,
        Err(_) => {
            metrics::counter!("nta_decode_partial_total", "layer" => "dns").increment(1);
            decode_dns_head(rec, msg);
            return;
        }
    };
    let response = fill_question(rec, &packet);
    if response {
        let ancount = packet.answers.len() as u16;
        rec.dns_answer_count = Some(ancount);
        rec.dns_answer_size = answer_rdata_len(msg, packet.questions.len(), ancount);
    }
}

/// What survives of a message too short to parse whole: the header fields present (read with
/// simple-dns's header accessors) and, if complete, the first question, which is cut out into
/// a message of its own (one question, no records) and parsed by simple-dns.
fn decode_dns_head(rec: &mut PacketRecord, msg: &[u8]) {
    use simple_dns::header_buffer;
    if msg.len() < 4 {
        return;
    }
    // The `_unchecked` accessors only index the bytes of their own field.
    let response = header_buffer::has_flags_unchecked(msg, simple_dns::PacketFlag::RESPONSE);
    rec.dns_query = Some(!response);
    rec.dns_response = Some(response);
    if response && msg.len() >= 8 {
        rec.dns_answer_count = Some(header_buffer::answers_unchecked(msg));
    }
    if msg.len() < 12 || header_buffer::questions_unchecked(msg) == 0 {
        return;
    }
    let Some(end) = skip_name(msg, 12).map(|p| p + 4).filter(|&e| e <= msg.len()) else { return };
    let mut head = Vec::with_capacity(end);
    head.extend_from_slice(&msg[..4]);
    head.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    head.extend_from_slice(&msg[12..end]);
    if let Ok(packet) = simple_dns::Packet::parse(&head) {
        fill_question(rec, &packet);
    }
}

/// Sets the query/response flags and the first question; returns whether it is a response.
fn fill_question(rec: &mut PacketRecord, packet: &simple_dns::Packet) -> bool {
    let response = packet.has_flags(simple_dns::PacketFlag::RESPONSE);
    rec.dns_query = Some(!response);
    rec.dns_response = Some(response);
    if let Some(q) = packet.questions.first() {
        let mut name = String::with_capacity(64);
        for (i, label) in q.qname.as_bytes().enumerate() {
            if i > 0 {
                name.push('.');
            }
            push_label(&mut name, label);
        }
        // simple-dns caps names at 255 wire octets, which always fits; the cut is a guard
        // for the escaping above, not a limit real names reach.
        if name.len() > MAX_DNS_QNAME_LEN {
            name = bounded("dns_qname", &name, MAX_DNS_QNAME_LEN);
        }
        rec.dns_qname = Some(name);
        rec.dns_qtype = Some(u16::from(q.qtype));
    }
    response
}

/// Appends one label. Valid UTF-8 (ordinary names, mDNS instance names) is kept as text;
/// bytes that are not (DNS tunnels encode data in raw bytes) are written `\DDD` as in RFC 1035
/// master files and `dig`, so no information is lost to a replacement character: tunnel
/// detection measures the entropy and length of exactly these names. Control characters are
/// escaped the same way in either case.
pub(super) fn push_label(name: &mut String, label: &[u8]) {
    use std::fmt::Write;
    match std::str::from_utf8(label) {
        Ok(text) if !text.chars().any(char::is_control) => name.push_str(text),
        Ok(text) => {
            for c in text.chars() {
                if c.is_control() {
                    let _ = write!(name, "\\{:03}", c as u32);
                } else {
                    name.push(c);
                }
            }
        }
        Err(_) => {
            for &b in label {
                if (0x20..0x7f).contains(&b) && b != b'\\' {
                    name.push(b as char);
                } else {
                    let _ = write!(name, "\\{b:03}");
                }
            }
        }
    }
}

/// Sum of the wire RDLENGTH of the answer-section records (compressed names count as sent).
/// The message was already validated by simple-dns; this only walks record boundaries.
fn answer_rdata_len(msg: &[u8], qdcount: usize, ancount: u16) -> Option<u32> {
    let mut pos = 12usize;
    for _ in 0..qdcount {
        pos = skip_name(msg, pos)? + 4;
    }
    let mut total = 0u32;
    for _ in 0..ancount {
        pos = skip_name(msg, pos)?;
        let rdlen = u16::from_be_bytes([*msg.get(pos + 8)?, *msg.get(pos + 9)?]) as usize;
        total += rdlen as u32;
        pos += 10 + rdlen;
    }
    (pos <= msg.len()).then_some(total)
}

/// Position after the (possibly compressed) name starting at `pos`.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            l if l & 0xc0 == 0xc0 => return Some(pos + 2),
            l => pos += 1 + l as usize,
        }
    }
}

/// HTTP/1.x request or status line at the start of a TCP payload, on any port; `app_proto`
/// is `http` when there is one.
pub(super) fn decode_http(rec: &mut PacketRecord, payload: &[u8]) {
    decode_http_line(rec, payload);
    if rec.http_method.is_some() || rec.http_status_code.is_some() {
        rec.app_proto = Some(AppProto::Http);
    }
}

fn decode_http_line(rec: &mut PacketRecord, payload: &[u8]) {
    // Cheap pre-check: a status line starts with "HTTP/1.", a request line with an
    // upper-case method token followed by a space.
    if payload.len() < 14 {
        return;
    }
    if payload.starts_with(b"HTTP/1.") {
        decode_http_response(rec, payload);
    } else if payload[0].is_ascii_uppercase() {
        let tok = payload.iter().take(21).position(|&b| b == b' ');
        if matches!(tok, Some(n) if n >= 3 && payload[..n].iter().all(|b| b.is_ascii_uppercase() || *b == b'-' || *b == b'_'))
        {
            decode_http_request(rec, payload);
        }
    }
}

const MAX_HEADERS: usize = 48;

/// The first line (including its CRLF or LF) of the payload, if complete.
fn first_line(payload: &[u8]) -> Option<&[u8]> {
    payload.iter().position(|&b| b == b'\n').map(|i| &payload[..=i])
}

fn decode_http_request(rec: &mut PacketRecord, payload: &[u8]) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(payload) {
        Ok(_) => {
            if let (Some(m), Some(p), Some(_)) = (req.method, req.path, req.version) {
                rec.http_method = Some(bounded("http_method", m, MAX_HTTP_METHOD_LEN));
                rec.http_path = Some(bounded("http_path", p, MAX_HTTP_PATH_LEN));
                rec.http_host = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("host"))
                    .map(|h| bounded("http_host", String::from_utf8_lossy(h.value).trim(), MAX_HTTP_HOST_LEN));
            }
        }
        Err(_) => {
            // A bad header later on: still take the request line alone.
            let Some(line) = first_line(payload) else {
                return;
            };
            let mut none = [httparse::EMPTY_HEADER; 0];
            let mut req = httparse::Request::new(&mut none);
            if req.parse(line).is_ok() {
                if let (Some(m), Some(p), Some(_)) = (req.method, req.path, req.version) {
                    rec.http_method = Some(bounded("http_method", m, MAX_HTTP_METHOD_LEN));
                    rec.http_path = Some(bounded("http_path", p, MAX_HTTP_PATH_LEN));
                }
            }
        }
    }
}

fn decode_http_response(rec: &mut PacketRecord, payload: &[u8]) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let code = match resp.parse(payload) {
        Ok(_) => resp.code.filter(|_| resp.version.is_some()),
        Err(_) => first_line(payload).and_then(|line| {
            let mut none = [httparse::EMPTY_HEADER; 0];
            let mut resp = httparse::Response::new(&mut none);
            resp.parse(line).ok().and(resp.code.filter(|_| resp.version.is_some()))
        }),
    };
    rec.http_status_code = code;
}
