//! WhatsApp Cloud API (Meta). Webhooks arrive as `entry[].changes[].value` holding a
//! business number's `messages[]` (with the senders' `contacts[]`) or the `statuses[]` of
//! what we sent; replies go out through `POST {api_base}/{phone_number_id}/messages`.
//!
//! Signature, handshake and Graph error handling are Meta's and live in [`super::meta`].
//! A conversation's platform thread is `"{phone_number_id}:{wa_id}"`: the business number
//! the contact wrote to and the contact.
//!
//! `inbound` reads a webhook into events, `outbound` plans a reply's messages; this file
//! is the adapter that joins them to Meta's signature, handshake and Graph calls.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::fetch::MediaClient;
use super::meta::{self, AppSecrets, Graph};
use super::{
    ChannelAdapter, FetchError, FetchedMedia, HandshakeError, HandshakeReply, InboundEvent,
    Outbound, ParseError, RawRequest, Receipt, RetiredSecret, SendError, VerifyError,
};
use crate::model::Media;
use crate::secret::Secret;

mod inbound;
mod outbound;

pub use inbound::parse_value;
pub use outbound::{envelope, plan};

/// The identifier type of a WhatsApp contact: the `wa_id` (their phone number), or the
/// business-scoped user id (`GB.150…`) of a user who hides their number behind a username.
pub const IDENTIFIER_TYPE: &str = "whatsapp_user";

/// The longest text body WhatsApp takes; longer replies go out in several messages.
pub const MAX_TEXT_CHARS: usize = 4096;

/// The longest media caption WhatsApp takes.
pub const MAX_CAPTION_CHARS: usize = 1024;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppConfig {
    /// System-user or business token, sent as `Authorization: Bearer`.
    pub access_token: Secret,
    /// The Meta app's secret: verifies `X-Hub-Signature-256`.
    pub app_secret: Secret,
    /// The token typed into the app dashboard for the GET subscription check.
    pub verify_token: Secret,
    /// The business phone number replies are sent from when a conversation has none.
    #[serde(deserialize_with = "meta::id_string")]
    pub phone_number_id: String,
    #[serde(default = "meta::default_api_base")]
    pub api_base: String,
}

impl WhatsAppConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if self.phone_number_id.is_empty()
            || !self.phone_number_id.bytes().all(|b| b.is_ascii_digit())
        {
            errors.push((
                "phone_number_id".into(),
                "must be the numeric phone number id from the WhatsApp manager".into(),
            ));
        }
        meta::validate_api_base(&self.api_base, &mut errors);
        errors
    }
}

pub struct WhatsAppAdapter {
    secrets: AppSecrets,
    verify_token: Secret,
    phone_number_id: String,
    graph: Graph,
}

impl WhatsAppAdapter {
    pub fn new(config: &WhatsAppConfig, http: reqwest::Client, retired: &[RetiredSecret]) -> Self {
        Self {
            secrets: AppSecrets::new(&config.app_secret, retired),
            verify_token: config.verify_token.clone(),
            phone_number_id: config.phone_number_id.clone(),
            graph: Graph::new(http, &config.api_base, &config.access_token),
        }
    }

    /// The business number to send from and the contact to send to: from the
    /// conversation's thread (`"{phone_number_id}:{user}"`) when it has one.
    fn route(&self, message: &Outbound) -> Result<(String, String), SendError> {
        let (number, user) = match message.platform_thread_id.as_deref() {
            Some(thread) => match thread.split_once(':') {
                Some((number, user)) => (number.to_owned(), user.to_owned()),
                None => (self.phone_number_id.clone(), thread.to_owned()),
            },
            None => (self.phone_number_id.clone(), message.to.value.clone()),
        };
        if !meta::is_path_safe_id(&number) {
            return Err(SendError::Permanent {
                reason: format!("{number:?} is not a WhatsApp phone number id"),
            });
        }
        if user.trim().is_empty() {
            return Err(SendError::Permanent {
                reason: "the conversation has no WhatsApp user to send to".into(),
            });
        }
        Ok((number, user))
    }
}

#[async_trait]
impl ChannelAdapter for WhatsAppAdapter {
    fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError> {
        self.secrets.verify(request, now)
    }

    fn parse(&self, request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError> {
        parse_value(&meta::json_body(request)?)
    }

    fn handshake(&self, request: &RawRequest) -> Result<HandshakeReply, HandshakeError> {
        meta::handshake(request, &self.verify_token)
    }

    async fn send(&self, message: &Outbound) -> Result<Receipt, SendError> {
        let (number, user) = self.route(message)?;
        let (messages, notes) = plan(&message.parts);
        if messages.is_empty() {
            return Err(SendError::Permanent {
                reason: "nothing in this reply can be sent on WhatsApp".into(),
            });
        }
        let total = messages.len();
        let path = format!("{number}/messages");
        let mut first_id = None;
        for (sent, planned) in messages.into_iter().enumerate() {
            // Only the first message quotes; the rest follow it.
            let quoted = if sent == 0 {
                message.reply_to.as_deref()
            } else {
                None
            };
            let answer = self
                .graph
                .post(&path, &envelope(&user, planned, quoted))
                .await
                .map_err(|e| meta::after_partial(e, sent, total))?;
            if first_id.is_none() {
                first_id = answer
                    .pointer("/messages/0/id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
        }
        Ok(Receipt {
            platform_message_id: first_id,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        })
    }

    /// `GET {api_base}/{media id}` gives a short-lived `url`, fetched with the same token.
    async fn fetch_media(
        &self,
        media: &Media,
        web: &MediaClient,
    ) -> Result<FetchedMedia, FetchError> {
        if let Some(id) = media.platform_ref.as_deref() {
            if !meta::is_path_safe_id(id) {
                return Err(FetchError::NoMedia);
            }
            let info = self.graph.get_json(id).await?;
            let url = info
                .get("url")
                .and_then(Value::as_str)
                .ok_or_else(|| FetchError::Upstream("the media lookup gave no url".into()))?;
            return self.graph.fetch(url, web).await;
        }
        match media.url.as_deref() {
            Some(url) => self.graph.fetch(url, web).await,
            None => Err(FetchError::NoMedia),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::InboundMessage;
    use crate::fixtures::fixture;
    use crate::model::Part;

    pub(super) const APP_SECRET: &str = "wa-app-secret";
    pub(super) const NUMBER: &str = "227118690421377";
    pub(super) const PRIYA: &str = "447700900123";

    pub(super) fn config() -> WhatsAppConfig {
        WhatsAppConfig {
            access_token: Secret::new("EAAG-test-token"),
            app_secret: Secret::new(APP_SECRET),
            verify_token: Secret::new("verify-me"),
            phone_number_id: NUMBER.into(),
            api_base: "http://127.0.0.1:9/v26.0".into(),
        }
    }

    pub(super) fn adapter(retired: &[RetiredSecret]) -> WhatsAppAdapter {
        WhatsAppAdapter::new(&config(), reqwest::Client::new(), retired)
    }

    pub(super) fn request(body: &str, signature: Option<String>, content_type: &str) -> RawRequest {
        meta::testing::request("wa", body, signature, content_type)
    }

    pub(super) fn signed(body: &str) -> RawRequest {
        meta::testing::signed("wa", APP_SECRET, body)
    }

    pub(super) fn parse(body: &str) -> Vec<InboundEvent> {
        let adapter = adapter(&[]);
        let request = signed(body);
        adapter.verify(&request, Utc::now()).unwrap();
        adapter.parse(&request).unwrap()
    }

    pub(super) fn only_message(body: &str) -> InboundMessage {
        let mut events = parse(body);
        assert_eq!(events.len(), 1, "{events:?}");
        match events.remove(0) {
            InboundEvent::Message(m) => m,
            other => panic!("not a message: {other:?}"),
        }
    }

    pub(super) fn only_part(body: &str) -> Part {
        let mut m = only_message(body);
        assert_eq!(m.parts.len(), 1, "{:?}", m.parts);
        m.parts.remove(0)
    }

    #[test]
    fn signatures_are_checked_on_the_raw_bytes() {
        let adapter = adapter(&[]);
        let body = fixture!("whatsapp/text_reply.json");
        let now = Utc::now();
        adapter.verify(&signed(body), now).unwrap();
        let missing = request(body, None, "application/json");
        assert_eq!(
            adapter.verify(&missing, now).unwrap_err(),
            VerifyError::MissingHeader("x-hub-signature-256")
        );
        let wrong = request(
            body,
            Some(meta::sign(b"some other app", body.as_bytes())),
            "application/json",
        );
        assert_eq!(
            adapter.verify(&wrong, now).unwrap_err(),
            VerifyError::BadSignature
        );
        // Re-serializing changes the bytes (escapes, spacing): the signature no longer holds.
        let reserialized =
            serde_json::to_string(&serde_json::from_str::<Value>(body).unwrap()).unwrap();
        let stale = request(
            &reserialized,
            Some(meta::sign(APP_SECRET.as_bytes(), body.as_bytes())),
            "application/json",
        );
        assert_eq!(
            adapter.verify(&stale, now).unwrap_err(),
            VerifyError::BadSignature
        );
    }

    #[test]
    fn a_retired_app_secret_is_accepted_until_its_time() {
        let now = Utc::now();
        let adapter = adapter(&[RetiredSecret {
            secret: Secret::new("previous-app-secret"),
            until: now + chrono::Duration::seconds(60),
        }]);
        let body = fixture!("whatsapp/image.json");
        let old = request(
            body,
            Some(meta::sign(b"previous-app-secret", body.as_bytes())),
            "application/json",
        );
        adapter.verify(&old, now).unwrap();
        assert_eq!(
            adapter
                .verify(&old, now + chrono::Duration::seconds(61))
                .unwrap_err(),
            VerifyError::BadSignature
        );
    }

    #[test]
    fn the_handshake_answers_with_the_challenge() {
        meta::testing::assert_handshake_answers_the_challenge(&adapter(&[]), "4821");
    }

    #[test]
    fn config_takes_the_number_id_as_text_or_number_and_checks_it() {
        let from_toml = |text: &str| -> Result<WhatsAppConfig, String> {
            toml::from_str(text).map_err(|e| e.to_string())
        };
        let base = "access_token = \"t\"\napp_secret = \"s\"\nverify_token = \"v\"\n";
        let numeric = from_toml(&format!("{base}phone_number_id = 227118690421377\n")).unwrap();
        assert_eq!(numeric.phone_number_id, NUMBER);
        assert_eq!(numeric.api_base, meta::DEFAULT_API_BASE);
        assert!(numeric.validate().is_empty());
        let quoted = from_toml(&format!(
            "{base}phone_number_id = \"abc\"\napi_base = \"ftp://x\"\n"
        ))
        .unwrap();
        let keys: Vec<String> = quoted.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["phone_number_id", "api_base"]);
        assert!(
            from_toml(&format!(
                "{base}phone_number_id = \"1\"\nbot_token = \"x\"\n"
            ))
            .is_err()
        );
    }
}
