//! Server URLs in messages: secrets hidden, escapes decoded.

/// `%XX` escapes of a URL component decoded (invalid escapes kept as written).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` with the secret of its user info hidden, for logs and `nta config`: the password
/// (`postgres://u:***@h/db`, `nats://u:***@h`) or, in a NATS URL, a token given as the user
/// (`nats://***@h`). Every server of a comma-separated NATS list is redacted.
pub fn redact_url(url: &str) -> String {
    if url.contains(',') && url.trim_start().starts_with(['n', 't', 'w']) {
        return redact_nats_url(url);
    }
    let Some(s) = url.find("://") else { return url.to_string() };
    let authority_end = url[s + 3..].find('/').map_or(url.len(), |i| s + 3 + i);
    let Some(at) = url[..authority_end].rfind('@').filter(|&at| at > s) else { return url.to_string() };
    let userinfo = &url[s + 3..at];
    let nats = ["nats", "tls", "ws", "wss"].contains(&&url[..s]);
    match userinfo.find(':') {
        Some(c) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..c], &url[at..]),
        None if nats => format!("{}***{}", &url[..s + 3], &url[at..]),
        None => url.to_string(),
    }
}

/// A NATS `url` (one server or a comma-separated list) with every server's secret hidden,
/// including servers written without a scheme (`u:p@host:4222`, which NATS clients accept).
pub fn redact_nats_url(url: &str) -> String {
    url.split(',')
        .map(|entry| {
            let trimmed = entry.trim_start();
            let lead = &entry[..entry.len() - trimmed.len()];
            let redacted = if trimmed.contains("://") || trimmed.is_empty() {
                redact_url(trimmed)
            } else {
                redact_url(&format!("nats://{trimmed}"))["nats://".len()..].to_string()
            };
            format!("{lead}{redacted}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_secrets_are_redacted() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db?sslmode=require"), "postgres://u@h/db?sslmode=require");
        assert_eq!(redact_url("nats://tok@h:4222"), "nats://***@h:4222");
        assert_eq!(redact_url("nats://a:b@h1,nats://t@h2"), "nats://a:***@h1,nats://***@h2");
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(redact_url("nats://h1, tls://t@h2 ,u:p@h3"), "nats://h1, tls://***@h2 ,u:***@h3");
        assert_eq!(redact_nats_url("tok@h"), "***@h");
        assert_eq!(redact_nats_url("h:4222,"), "h:4222,");
        assert_eq!(redact_url("host=h user=u"), "host=h user=u");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%41%zz%2F"), "A%zz/");
    }
}
