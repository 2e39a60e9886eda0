//! Syslog, RFC 5424, over UDP (one datagram per message) or TCP (octet-counting framing, RFC
//! 6587 3.4.1), with either a structured-data + text body or a CEF body. Every value comes from
//! the alert (the key and summary are attacker-controlled) and is escaped for its place: SD
//! parameter values per RFC 5424 6.3.3, CEF header and extension fields per the CEF spec, and
//! line breaks never reach the wire.

use super::Outcome;
use crate::notification::Notification;
use std::fmt::Write as _;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Mutex;

/// Facility local0 (16): where site-specific security tools log by convention.
const FACILITY: u8 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Cef,
}

enum Transport {
    Udp(UdpSocket),
    /// The connection is kept and reopened after a failure.
    Tcp(Mutex<Option<TcpStream>>),
}

pub struct Syslog {
    target: String,
    transport: Transport,
    format: Format,
    hostname: String,
}

impl Syslog {
    /// `udp://HOST:PORT` or `tcp://HOST:PORT`.
    pub async fn new(url: &str, format: &str, hostname: &str) -> anyhow::Result<Syslog> {
        let format = match format {
            "text" | "rfc5424" => Format::Text,
            "cef" => Format::Cef,
            other => anyhow::bail!("syslog format {other:?}: text or cef expected"),
        };
        let (scheme, target) = url
            .split_once("://")
            .ok_or_else(|| anyhow::anyhow!("syslog: udp://HOST:PORT or tcp://HOST:PORT expected"))?;
        let transport = match scheme {
            "udp" => {
                let bind = if target.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" };
                Transport::Udp(UdpSocket::bind(bind).await?)
            }
            "tcp" => Transport::Tcp(Mutex::new(None)),
            other => anyhow::bail!("syslog scheme {other:?}: udp or tcp expected"),
        };
        Ok(Syslog { target: target.to_string(), transport, format, hostname: header_field(hostname, 255) })
    }

    pub async fn deliver(&self, n: &Notification) -> Outcome {
        let line = self.line(n, &rfc3339_now());
        match &self.transport {
            Transport::Udp(sock) => match sock.send_to(line.as_bytes(), &self.target).await {
                Ok(_) => Outcome::Delivered,
                Err(e) => Outcome::Retry(format!("syslog udp: {e}")),
            },
            Transport::Tcp(conn) => {
                let mut conn = conn.lock().await;
                if conn.is_none() {
                    match TcpStream::connect(&self.target).await {
                        Ok(s) => *conn = Some(s),
                        Err(e) => return Outcome::Retry(format!("syslog tcp connect: {e}")),
                    }
                }
                let framed = format!("{} {line}", line.len());
                let stream = conn.as_mut().expect("connected above");
                match async {
                    stream.write_all(framed.as_bytes()).await?;
                    stream.flush().await
                }
                .await
                {
                    Ok(()) => Outcome::Delivered,
                    Err(e) => {
                        *conn = None;
                        Outcome::Retry(format!("syslog tcp: {e}"))
                    }
                }
            }
        }
    }

    /// One RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME nta - MSGID [SD] MSG`.
    pub fn line(&self, n: &Notification, timestamp: &str) -> String {
        let a = &n.alert;
        let pri = FACILITY * 8 + syslog_severity(&a.severity);
        let msgid = header_field(&format!("alert-{}", a.event), 32);
        let sd = format!(
            "[nta@32473 id=\"{}\" event=\"{}\" view=\"{}\" key=\"{}\" class=\"{}\" severity=\"{}\" windows=\"{}\" confidence=\"{:.3}\" idempotency_key=\"{}\"]",
            a.id,
            sd_escape(&a.event),
            a.view.as_str(),
            sd_escape(&a.key),
            sd_escape(&a.class),
            sd_escape(&a.severity),
            a.window_count,
            a.peak_confidence,
            sd_escape(&n.idempotency_key),
        );
        let msg = match self.format {
            Format::Text => one_line(&n.text()),
            Format::Cef => cef(n),
        };
        format!("<{pri}>1 {timestamp} {} nta - {msgid} {sd} {msg}", self.hostname)
    }
}

/// RFC 5424 severities: CRITICAL -> 2 (crit), HIGH -> 3 (err), MEDIUM -> 4 (warning), else 5.
fn syslog_severity(s: &str) -> u8 {
    match crate::notification::severity_rank(s) {
        4 => 2,
        3 => 3,
        2 => 4,
        _ => 5,
    }
}

/// A header field: printable US-ASCII without spaces, at most `max` characters, `-` if empty.
fn header_field(s: &str, max: usize) -> String {
    let f: String = s.chars().filter(|c| c.is_ascii_graphic()).take(max).collect();
    if f.is_empty() {
        "-".into()
    } else {
        f
    }
}

/// RFC 5424 6.3.3: `"`, `\` and `]` escaped with a backslash; control characters dropped.
pub fn sd_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|c| !c.is_control()) {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// CEF header field: `\` and `|` escaped; line breaks become spaces.
fn cef_header(s: &str) -> String {
    one_line(s).replace('\\', "\\\\").replace('|', "\\|")
}

/// CEF extension value: `\` and `=` escaped, line breaks as `\n` / `\r`.
fn cef_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// `CEF:0|NTA|nta|VERSION|CLASS|SUMMARY|SEVERITY|extension`.
pub fn cef(n: &Notification) -> String {
    let a = &n.alert;
    let sev = match crate::notification::severity_rank(&a.severity) {
        4 => 10,
        3 => 8,
        2 => 5,
        _ => 3,
    };
    let mut ext = String::new();
    let addr = if a.view == wire::View::Source { "src" } else { "dst" };
    if a.key.parse::<std::net::IpAddr>().is_ok() {
        let _ = write!(ext, "{addr}={} ", cef_value(&a.key));
    }
    let _ = write!(
        ext,
        "act={} cat={} cs1Label=key cs1={} cs2Label=view cs2={} cnt={} start={} end={} externalId={} msg={}",
        cef_value(&a.event),
        cef_value(&a.class),
        cef_value(&a.key),
        a.view.as_str(),
        a.window_count,
        (a.first_seen * 1000.0) as i64,
        (a.last_seen * 1000.0) as i64,
        cef_value(&n.idempotency_key),
        cef_value(&a.summary),
    );
    format!(
        "CEF:0|NTA|nta|{}|{}|{}|{sev}|{ext}",
        env!("CARGO_PKG_VERSION"),
        cef_header(&a.class),
        cef_header(&a.summary)
    )
}

/// Now as an RFC 3339 UTC timestamp with milliseconds (RFC 5424 TIMESTAMP).
fn rfc3339_now() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let (y, m, day, h, min, sec) = wire::time::civil(d.as_secs() as i64);
    format!("{y:04}-{m:02}-{day:02}T{h:02}:{min:02}:{sec:02}.{:03}Z", d.subsec_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(sd_escape("a\"b\\c]d\ne"), "a\\\"b\\\\c\\]de");
        assert_eq!(cef_header("a|b\\c\nd"), "a\\|b\\\\c d");
        assert_eq!(cef_value("k=v\\x\ny"), "k\\=v\\\\x\\ny");
        let now = rfc3339_now();
        assert!(wire::time::parse_ns(&now).is_ok(), "{now}");
        assert_eq!(header_field("my host", 255), "myhost");
    }
}
