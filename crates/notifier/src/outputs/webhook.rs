//! Generic webhook: a JSON POST with the alert, the event, the idempotency key (also the
//! `Idempotency-Key` header) and a Slack/Teams-compatible `text` field.

use super::{http_error, http_outcome, Outcome};
use crate::notification::Notification;
use serde_json::json;

pub struct Webhook {
    pub name: String,
    url: reqwest::Url,
    client: reqwest::Client,
}

impl Webhook {
    pub fn new(index: usize, url: &str, client: reqwest::Client) -> anyhow::Result<Webhook> {
        let url = reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("webhook URL #{index}: {e}"))?;
        anyhow::ensure!(matches!(url.scheme(), "http" | "https"), "webhook URL #{index}: http or https expected");
        Ok(Webhook { name: format!("webhook:{index}"), url, client })
    }

    /// The JSON body (a serde value: the key and summary are escaped as JSON strings).
    pub fn body(n: &Notification) -> serde_json::Value {
        json!({
            "alert": n.alert,
            "event": n.alert.event,
            "idempotency_key": n.idempotency_key,
            "text": n.text(),
        })
    }

    pub async fn deliver(&self, n: &Notification) -> Outcome {
        let res = self
            .client
            .post(self.url.clone())
            .header("Idempotency-Key", &n.idempotency_key)
            .json(&Self::body(n))
            .send()
            .await;
        match res {
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                http_outcome(status, &body)
            }
            Err(e) => http_error(&e),
        }
    }
}
