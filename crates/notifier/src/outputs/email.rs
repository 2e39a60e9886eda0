//! E-mail over SMTP with lettre: STARTTLS when the server offers it (`smtp://`), implicit TLS
//! with `smtps://`, optional login. The idempotency key is the Message-ID, so a mail system
//! (or a person) can spot a redelivered copy.

use super::Outcome;
use crate::notification::Notification;
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Email {
    pub fn new(
        url: &str,
        from: &str,
        to: &[String],
        login: Option<(String, String)>,
        timeout: Duration,
    ) -> anyhow::Result<Email> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| anyhow::anyhow!("smtp: smtp://HOST:PORT expected"))?;
        let (host, port) = match rest.trim_end_matches('/').rsplit_once(':') {
            Some((h, p)) => (h.trim_matches(|c| c == '[' || c == ']'), p.parse::<u16>()?),
            None => (rest.trim_end_matches('/'), if scheme == "smtps" { 465 } else { 25 }),
        };
        let params = TlsParameters::new(host.to_string())?;
        let tls = match scheme {
            "smtp" => Tls::Opportunistic(params),
            "smtps" => Tls::Wrapper(params),
            other => anyhow::bail!("smtp scheme {other:?}: smtp or smtps expected"),
        };
        let mut b =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(port).tls(tls).timeout(Some(timeout));
        if let Some((user, password)) = login {
            b = b.credentials(Credentials::new(user, password));
        }
        anyhow::ensure!(!to.is_empty(), "smtp: no recipients (--mail-to)");
        let to = to
            .iter()
            .map(|t| t.parse().map_err(|e| anyhow::anyhow!("--mail-to {t:?}: {e}")))
            .collect::<Result<_, _>>()?;
        let from = from.parse().map_err(|e| anyhow::anyhow!("--mail-from {from:?}: {e}"))?;
        Ok(Email { transport: b.build(), from, to })
    }

    pub async fn deliver(&self, n: &Notification) -> Outcome {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(n.text())
            .message_id(Some(format!("<{}@nta>", message_id_part(&n.idempotency_key))))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            b = b.to(to.clone());
        }
        let a = &n.alert;
        let body = format!(
            "{}\n\nalert {}: {} {} ({})\nseverity: {}\ndetected by: {}\nwindows: {}\npeak confidence: {:.3}\npackets: {}\nbytes: {}\nidempotency key: {}\n",
            n.text(), a.id, a.view.as_str(), a.key, a.class, a.severity, a.detected_by, a.window_count,
            a.peak_confidence, a.packets, a.bytes, n.idempotency_key
        );
        let msg = match b.body(body) {
            Ok(m) => m,
            Err(e) => return Outcome::Reject(format!("building the e-mail: {e}")),
        };
        match self.transport.send(msg).await {
            Ok(_) => Outcome::Delivered,
            Err(e) if e.is_permanent() => Outcome::Reject(format!("smtp: {e}")),
            Err(e) => Outcome::Retry(format!("smtp: {e}")),
        }
    }
}

/// The idempotency key as the left part of a Message-ID (dot-atom characters only).
fn message_id_part(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.+=".contains(c) { c } else { '_' }).collect()
}
