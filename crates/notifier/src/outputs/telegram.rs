//! Telegram Bot API: `POST {api}/bot{token}/sendMessage` with `{chat_id, text}` per chat, as
//! plain text (no `parse_mode`, so nothing in an attacker-controlled key is interpreted as
//! markup). The token is part of the URL, so no error message here ever includes the URL.

use super::{http_error, Outcome};
use crate::notification::Notification;
use serde_json::json;

pub struct Telegram {
    api: String,
    token: String,
    chat_ids: Vec<String>,
    client: reqwest::Client,
}

impl Telegram {
    pub fn new(api: &str, token: &str, chat_ids: Vec<String>, client: reqwest::Client) -> anyhow::Result<Telegram> {
        anyhow::ensure!(!chat_ids.is_empty(), "telegram: a token without chat ids (NTA_TELEGRAM_CHAT_IDS)");
        reqwest::Url::parse(api).map_err(|e| anyhow::anyhow!("telegram API URL: {e}"))?;
        Ok(Telegram { api: api.trim_end_matches('/').to_string(), token: token.to_string(), chat_ids, client })
    }

    /// Sends to every chat; the first chat that fails decides the outcome. A retry sends to every
    /// chat again (Telegram has no idempotency key): chats are few and duplicates there are
    /// harmless compared with a lost alert.
    pub async fn deliver(&self, n: &Notification) -> Outcome {
        let url = format!("{}/bot{}/sendMessage", self.api, self.token);
        let text = format!("{}\nid: {}", n.text(), n.idempotency_key);
        for chat in &self.chat_ids {
            let chat_id: serde_json::Value =
                chat.parse::<i64>().map(Into::into).unwrap_or_else(|_| chat.clone().into());
            let res = self.client.post(&url).json(&json!({"chat_id": chat_id, "text": text})).send().await;
            let outcome = match res {
                Ok(r) => {
                    let status = r.status();
                    let body: serde_json::Value = r.json().await.unwrap_or_default();
                    answer(status.as_u16(), &body)
                }
                Err(e) => http_error(&e),
            };
            if outcome != Outcome::Delivered {
                return outcome;
            }
        }
        Outcome::Delivered
    }
}

/// Telegram answers `{"ok":true,...}` or `{"ok":false,"error_code":400,"description":...}`;
/// 429 carries `parameters.retry_after`.
fn answer(status: u16, body: &serde_json::Value) -> Outcome {
    if (200..300).contains(&status) && body["ok"].as_bool() == Some(true) {
        return Outcome::Delivered;
    }
    let code = body["error_code"].as_u64().map(|c| c as u16).unwrap_or(status);
    let desc: String = body["description"].as_str().unwrap_or("").chars().take(200).collect();
    match code {
        429 => Outcome::Retry(format!(
            "Telegram 429 (retry after {} s): {desc}",
            body["parameters"]["retry_after"].as_u64().unwrap_or(0)
        )),
        408 | 500..=599 => Outcome::Retry(format!("Telegram {code}: {desc}")),
        200..=299 => Outcome::Retry(format!("Telegram answered without ok: {desc}")),
        _ => Outcome::Reject(format!("Telegram {code}: {desc}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert_eq!(answer(200, &json!({"ok": true, "result": {}})), Outcome::Delivered);
        assert!(matches!(answer(400, &json!({"ok": false, "error_code": 400, "description": "chat not found"})),
            Outcome::Reject(r) if r.contains("chat not found")));
        assert!(matches!(answer(429, &json!({"ok": false, "error_code": 429, "parameters": {"retry_after": 3}})),
            Outcome::Retry(r) if r.contains("retry after 3")));
        assert!(matches!(answer(502, &serde_json::Value::Null), Outcome::Retry(_)));
    }
}
