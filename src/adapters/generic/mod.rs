//! The generic channel: our own webhook contract for any in-house app (README, "The generic
//! webhook contract").
//! Both directions are signed with Standard Webhooks using the channel's `secret`.
//!
//! `wire` holds the contract's shapes (the OpenAPI document shows them), `inbound` reads a
//! webhook body into events; this file is the adapter: config, signatures, sending.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::fetch::MediaClient;
use super::signature::{self, WebhookKey};
use super::{
    ChannelAdapter, FetchError, FetchedMedia, InboundEvent, Outbound, ParseError, RawRequest,
    Receipt, RetiredSecret, SendError, VerifyError, classify_status, classify_transport,
};
use crate::secret::Secret;

/// The identifier type of a generic channel's contacts.
pub const IDENTIFIER_TYPE: &str = "app_user";

/// The most events one webhook may carry; a larger batch is refused whole.
pub const MAX_EVENTS: usize = 1000;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericConfig {
    /// `whsec_<base64>`: verifies inbound webhooks and signs outbound ones.
    pub secret: Secret,
    /// Where replies are POSTed.
    pub outbound_url: String,
}

impl GenericConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if let Err(e) = WebhookKey::parse(self.secret.expose()) {
            errors.push(("secret".into(), e.into()));
        }
        if !crate::model::is_http_url(&self.outbound_url) {
            errors.push(("outbound_url".into(), "must be an http(s) URL".into()));
        }
        errors
    }
}

pub struct GenericAdapter {
    key: WebhookKey,
    /// Keys replaced by a reload, each accepted (inbound only) until its time.
    retired: Vec<(WebhookKey, DateTime<Utc>)>,
    outbound_url: String,
    http: reqwest::Client,
}

impl GenericAdapter {
    pub fn new(config: &GenericConfig, http: reqwest::Client, retired: &[RetiredSecret]) -> Self {
        Self {
            key: WebhookKey::parse(config.secret.expose())
                .expect("validated when the config was loaded"),
            retired: retired
                .iter()
                .filter_map(|r| Some((WebhookKey::parse(r.secret.expose()).ok()?, r.until)))
                .collect(),
            outbound_url: config.outbound_url.clone(),
            http,
        }
    }

    /// The keys that verify a request arriving at `now`.
    fn keys(&self, now: DateTime<Utc>) -> Vec<WebhookKey> {
        std::iter::once(self.key.clone())
            .chain(
                self.retired
                    .iter()
                    .filter(|(_, until)| *until > now)
                    .map(|(k, _)| k.clone()),
            )
            .collect()
    }
}

mod inbound;
mod wire;

pub use inbound::{parse_body, parse_signed_body};
pub use wire::WireBody;

/// The JSON body a reply is POSTed with.
pub fn outbound_body(message: &Outbound) -> Value {
    json!({
        "type": "message",
        "id": message.message_id,
        "conversation_id": message.conversation_id,
        "thread_id": message.platform_thread_id,
        "to": {"id": message.to.value},
        "reply_to": message.reply_to,
        "parts": message.parts,
    })
}

#[async_trait]
impl ChannelAdapter for GenericAdapter {
    fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError> {
        signature::verify(
            &self.keys(now),
            request.header("webhook-id"),
            request.header("webhook-timestamp"),
            request.header("webhook-signature"),
            &request.body,
            now,
        )
    }

    fn parse(&self, request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError> {
        let signed_at = request
            .header("webhook-timestamp")
            .and_then(|t| t.trim().parse().ok());
        parse_signed_body(request.json_body()?, signed_at)
    }

    async fn send(&self, message: &Outbound) -> Result<Receipt, SendError> {
        let body = serde_json::to_vec(&outbound_body(message)).expect("JSON values serialize");
        let timestamp = Utc::now().timestamp();
        // The message id is the webhook id: it stays the same on every retry, so the app
        // can drop a repeat.
        let id = message.message_id.as_str();
        let response = self
            .http
            .post(&self.outbound_url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", self.key.sign(id, timestamp, &body))
            .body(body)
            .send()
            .await
            .map_err(classify_transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(classify_status(status, &headers, &text));
        }
        let answer = serde_json::from_str::<Value>(&text).ok();
        // A 2xx that says it failed is a failure (some gateways answer 200 to everything):
        // tried again on the schedule, as a 5xx would be.
        if let Some(error) = answer
            .as_ref()
            .and_then(|v| v.get("error"))
            .filter(|e| !e.is_null())
        {
            let snippet: String = error.to_string().chars().take(200).collect();
            return Err(SendError::Retryable {
                reason: format!("HTTP {status} with an error in the body: {snippet}"),
                retry_after: None,
            });
        }
        let platform_message_id = answer.and_then(|v| match v.get("id")? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        Ok(Receipt {
            platform_message_id,
            note: None,
        })
    }

    /// The generic contract gives media as URLs. The app's own origin (that of
    /// `outbound_url`) is configured, so trusted; any other URL must be public.
    async fn fetch_media(
        &self,
        media: &crate::model::Media,
        web: &MediaClient,
    ) -> Result<FetchedMedia, FetchError> {
        let url = media.url.as_deref().ok_or(FetchError::NoMedia)?;
        web.fetch(url, &[&self.outbound_url]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::model::{Identifier, Part};
    #[test]
    fn outbound_body_follows_the_contract() {
        let out = Outbound {
            message_id: crate::model::MessageId::new(),
            conversation_id: crate::model::ConversationId::new(),
            platform_thread_id: None,
            to: Identifier {
                kind: IDENTIFIER_TYPE.into(),
                value: "user-42".into(),
            },
            reply_to: Some("app-msg-100".into()),
            parts: vec![Part::Text(crate::model::TextPart {
                text: "On its way".into(),
            })],
        };
        let body = outbound_body(&out);
        assert_eq!(body["type"], "message");
        assert_eq!(body["to"], json!({"id": "user-42"}));
        assert_eq!(body["reply_to"], "app-msg-100");
        assert_eq!(
            body["parts"][0],
            json!({"type": "text", "text": "On its way"})
        );
        assert!(body["id"].as_str().unwrap().starts_with("msg_"));
    }
}
