//! The outputs: one module each behind [`Output::deliver`], which says whether a notification
//! was taken, should be tried again, or can never be delivered.

pub mod email;
pub mod syslog;
pub mod telegram;
pub mod webhook;

use crate::notification::Notification;

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Transient (connection refused, timeout, 408/429/5xx): try again later.
    Retry(String),
    /// Permanent (other 4xx, bad address): dead-letter it, never retry.
    Reject(String),
}

/// A configured output.
pub enum Output {
    Webhook(webhook::Webhook),
    Telegram(telegram::Telegram),
    Syslog(syslog::Syslog),
    Email(email::Email),
}

impl Output {
    /// Label of the output's metrics and dead letters: `webhook:0`, `telegram`, `syslog`, `email`.
    pub fn name(&self) -> &str {
        match self {
            Output::Webhook(w) => &w.name,
            Output::Telegram(_) => "telegram",
            Output::Syslog(_) => "syslog",
            Output::Email(_) => "email",
        }
    }

    pub async fn deliver(&self, n: &Notification) -> Outcome {
        match self {
            Output::Webhook(w) => w.deliver(n).await,
            Output::Telegram(t) => t.deliver(n).await,
            Output::Syslog(s) => s.deliver(n).await,
            Output::Email(e) => e.deliver(n).await,
        }
    }
}

/// The outcome of an HTTP answer: 2xx delivered, 408/429/5xx retried, other statuses rejected.
pub fn http_outcome(status: reqwest::StatusCode, body: &str) -> Outcome {
    let body: String = body.chars().take(200).collect();
    match status.as_u16() {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => Outcome::Retry(format!("HTTP {status}: {body}")),
        _ => Outcome::Reject(format!("HTTP {status}: {body}")),
    }
}

/// A reqwest error as an outcome: nothing reached the receiver (or its answer was lost), so retry.
/// The message is built without the URL, which may hold a token (Telegram's does).
pub fn http_error(e: &reqwest::Error) -> Outcome {
    Outcome::Retry(e.without_url_ref().to_string())
}

/// reqwest::Error::without_url by reference.
trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let kind = if self.is_timeout() {
            "timeout"
        } else if self.is_connect() {
            "connection failed"
        } else if self.is_request() {
            "request failed"
        } else if self.is_body() || self.is_decode() {
            "bad response body"
        } else {
            "HTTP error"
        };
        // The source chain (I/O errors) never contains the URL.
        let mut s = kind.to_string();
        let mut src = std::error::Error::source(self);
        while let Some(e) = src {
            s.push_str(": ");
            s.push_str(&e.to_string());
            src = e.source();
        }
        s
    }
}
