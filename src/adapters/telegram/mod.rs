//! Telegram Bot API: webhook `Update`s in, `send*` methods out.
//!
//! Telegram authenticates a webhook with the `secret_token` given to `setWebhook`, echoed
//! in the `X-Telegram-Bot-Api-Secret-Token` header (no signature over the body). A message
//! id is unique only inside its chat, so ours is `"{chat_id}:{message_id}"`; the chat (plus
//! the forum topic, if any) is the thread replies go to. The bot token is part of every
//! Bot API URL: it must never reach an error, a log line or a delivery note.
//!
//! `wire` holds Telegram's JSON shapes, `inbound` turns an `Update` into events, `outbound`
//! plans a reply's calls and reads the answers; this file is the adapter that joins them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::fetch::MediaClient;
use super::{
    ChannelAdapter, FetchError, FetchedMedia, InboundEvent, Outbound, ParseError, RawRequest,
    Receipt, RetiredSecret, SendError, VerifyError, classify_transport,
};
use crate::model::Media;
use crate::secret::Secret;

mod inbound;
mod outbound;
mod wire;

pub use inbound::parse_update;
use outbound::{
    Call, Destination, Plan, Refusal, message_key, plan, read_answer, reply_parameters,
};

/// The identifier type of a Telegram contact: the user id (or, for a message sent on behalf
/// of a chat, that chat's id).
pub const IDENTIFIER_TYPE: &str = "telegram_user";

/// The real Bot API.
pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";

/// The header carrying `secret_token`, as Telegram names it (for errors).
const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// The longest `sendMessage` text, in UTF-16 code units.
pub const MAX_TEXT: usize = 4096;

/// The longest media caption, in UTF-16 code units.
pub const MAX_CAPTION: usize = 1024;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The token BotFather gave (`123456:ABC-…`); it authenticates every Bot API call.
    pub bot_token: Secret,
    /// The `secret_token` given to `setWebhook`; Telegram sends it with every update.
    pub secret_token: Secret,
    /// The Bot API base URL (tests point it at a mock).
    #[serde(default = "default_api_base")]
    pub api_base: String,
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.to_owned()
}

impl TelegramConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let token = self.bot_token.expose();
        let well_formed = token.split_once(':').is_some_and(|(bot, key)| {
            !bot.is_empty()
                && bot.bytes().all(|b| b.is_ascii_digit())
                && !key.is_empty()
                && key.bytes().all(is_token_byte)
        });
        if !well_formed {
            errors.push((
                "bot_token".into(),
                "must look like 123456789:AAH… (the token BotFather gave)".into(),
            ));
        }
        let secret = self.secret_token.expose();
        if secret.len() > 256 || !secret.bytes().all(is_token_byte) {
            errors.push((
                "secret_token".into(),
                "must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)".into(),
            ));
        }
        if !crate::model::is_http_url(&self.api_base) {
            errors.push(("api_base".into(), "must be an http(s) URL".into()));
        }
        errors
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

pub struct TelegramAdapter {
    bot_token: Secret,
    secret_token: Secret,
    /// Secrets replaced by a reload, each accepted until its time.
    retired: Vec<RetiredSecret>,
    api_base: String,
    http: reqwest::Client,
}

impl TelegramAdapter {
    pub fn new(config: &TelegramConfig, http: reqwest::Client, retired: &[RetiredSecret]) -> Self {
        Self {
            bot_token: config.bot_token.clone(),
            secret_token: config.secret_token.clone(),
            retired: retired.to_vec(),
            api_base: config.api_base.trim_end_matches('/').to_owned(),
            http,
        }
    }

    fn method_url(&self, method: &str) -> String {
        format!("{}/bot{}/{method}", self.api_base, self.bot_token.expose())
    }

    /// Takes the bot token out of anything that might be shown (a proxy's error page could
    /// echo the URL).
    fn redact(&self, text: String) -> String {
        text.replace(self.bot_token.expose(), "[bot token]")
    }

    /// Calls one Bot API method with a JSON body; `Ok` is the `result` field.
    async fn call(&self, method: &str, body: &Value) -> Result<Value, Refusal> {
        let response = self
            .http
            .post(self.method_url(method))
            .json(body)
            .send()
            .await
            .map_err(|e| Refusal::from(classify_transport(e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        // Reasons quote the body; the token must not ride along.
        let text = self.redact(response.text().await.unwrap_or_default());
        read_answer(status, &headers, &text)
    }

    /// Sends one planned call, following a group's move to a supergroup and falling back
    /// to a link when Telegram cannot fetch a media URL. Returns our id for the message.
    async fn deliver(
        &self,
        call: &Call,
        destination: &mut Destination,
        reply: Option<&Value>,
        notes: &mut Vec<String>,
    ) -> Result<Option<String>, SendError> {
        let mut result = self
            .call(call.method, &destination.body(&call.body, reply))
            .await;
        if let Err(Refusal {
            migrate_to: Some(chat),
            ..
        }) = &result
        {
            destination.chat = chat.to_string();
            notes.push(format!("The group is now supergroup {chat}; sent there."));
            result = self
                .call(call.method, &destination.body(&call.body, reply))
                .await;
        }
        if let (Err(refusal), Some(link)) = (&result, &call.link)
            && refusal.url_refused()
        {
            notes.push(format!(
                "Part {} ({}) was sent as a link: Telegram could not fetch the file ({}).",
                call.part, call.kind, refusal.description
            ));
            let mut text = Map::new();
            text.insert("text".into(), Value::String(link.clone()));
            result = self
                .call("sendMessage", &destination.body(&text, reply))
                .await;
        }
        result
            .map(|sent| message_key(&sent, &destination.chat))
            .map_err(|r| r.error)
    }
}

/// Whether `presented` equals `secret`, in time independent of where they differ and of
/// their lengths (both are hashed first).
fn same_secret(presented: &str, secret: &Secret) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(secret.expose().as_bytes());
    a.ct_eq(&b).into()
}

#[async_trait]
impl ChannelAdapter for TelegramAdapter {
    fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError> {
        let presented = request
            .header(SECRET_HEADER)
            .ok_or(VerifyError::MissingHeader(SECRET_HEADER))?;
        // Every candidate is compared, so the time taken says nothing about which matched.
        let mut matched = same_secret(presented, &self.secret_token);
        for retired in self.retired.iter().filter(|r| r.until > now) {
            matched |= same_secret(presented, &retired.secret);
        }
        if matched {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    fn parse(&self, request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError> {
        parse_update(request.json_body()?)
    }

    /// One call per part, in order; the first quotes `reply_to`. Once something has gone
    /// out, a later failure is reported in the note instead of failing the send: a retry
    /// would send the earlier parts to the contact a second time.
    async fn send(&self, message: &Outbound) -> Result<Receipt, SendError> {
        let mut destination = Destination::of(message)?;
        let reply = reply_parameters(message.reply_to.as_deref(), &destination);
        let Plan { calls, mut notes } = plan(&message.parts);
        if calls.is_empty() {
            return Err(SendError::Permanent {
                reason: format!("nothing to send on Telegram. {}", notes.join(" ")),
            });
        }
        let mut first_id = None;
        for (i, call) in calls.iter().enumerate() {
            let quote = if i == 0 { reply.as_ref() } else { None };
            let outcome = self
                .deliver(call, &mut destination, quote, &mut notes)
                .await;
            let part = (call.part, call.kind.as_str());
            if !super::after_call(i, outcome, part, &mut first_id, &mut notes)? {
                break;
            }
        }
        Ok(Receipt {
            platform_message_id: first_id,
            note: (!notes.is_empty()).then(|| notes.join(" ")),
        })
    }

    /// `getFile` for the file's path, then the file itself from `/file/bot<token>/<path>`.
    async fn fetch_media(
        &self,
        media: &Media,
        web: &MediaClient,
    ) -> Result<FetchedMedia, FetchError> {
        let Some(file_id) = media.platform_ref.as_deref() else {
            // A reply's media given by URL: no credentials needed.
            let url = media.url.as_deref().ok_or(FetchError::NoMedia)?;
            return web.fetch(url, &[&self.api_base]).await;
        };
        let file = self
            .call("getFile", &json!({"file_id": file_id}))
            .await
            .map_err(|refusal| match refusal.error {
                SendError::Permanent { reason } => FetchError::Gone(reason),
                other => FetchError::Upstream(other.to_string()),
            })?;
        let path = file
            .get("file_path")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| FetchError::Gone("Telegram gave no file path".into()))?;
        let url = format!(
            "{}/file/bot{}/{}",
            self.api_base,
            self.bot_token.expose(),
            path.trim_start_matches('/')
        );
        // The token is in the path: the file is fetched from api_base's origin only, and
        // a redirect elsewhere does not carry it.
        web.fetch(&url, &[&self.api_base]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::fixture;
    use axum::http::{HeaderMap, HeaderValue};

    const SECRET: &str = "tg-webhook-secret_1";

    fn config() -> TelegramConfig {
        TelegramConfig {
            bot_token: Secret::new("123456:TEST-token_abc"),
            secret_token: Secret::new(SECRET),
            api_base: DEFAULT_API_BASE.into(),
        }
    }

    fn adapter(retired: &[RetiredSecret]) -> TelegramAdapter {
        TelegramAdapter::new(&config(), reqwest::Client::new(), retired)
    }

    fn request(body: &str, secret: Option<&str>, content_type: &str) -> RawRequest {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_str(content_type).unwrap());
        if let Some(secret) = secret {
            headers.insert(
                "x-telegram-bot-api-secret-token",
                HeaderValue::from_str(secret).unwrap(),
            );
        }
        RawRequest::post(
            "https://bridge.example.test/hooks/tg",
            headers,
            body.to_owned(),
        )
    }

    #[test]
    fn the_secret_token_header_must_match() {
        let a = adapter(&[]);
        let now = Utc::now();
        let body = fixture!("telegram/text.json");
        a.verify(&request(body, Some(SECRET), "application/json"), now)
            .unwrap();
        assert_eq!(
            a.verify(
                &request(body, Some("tg-webhook-secret_2"), "application/json"),
                now
            ),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            a.verify(&request(body, Some(""), "application/json"), now),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            a.verify(&request(body, None, "application/json"), now),
            Err(VerifyError::MissingHeader(
                "X-Telegram-Bot-Api-Secret-Token"
            ))
        );
    }

    #[test]
    fn a_retired_secret_verifies_until_its_time_only() {
        let until = Utc::now();
        let a = adapter(&[RetiredSecret {
            secret: Secret::new("old-secret"),
            until,
        }]);
        let old = request(
            fixture!("telegram/text.json"),
            Some("old-secret"),
            "application/json",
        );
        a.verify(&old, until - chrono::Duration::seconds(1))
            .unwrap();
        assert_eq!(a.verify(&old, until), Err(VerifyError::BadSignature));
        let current = request(
            fixture!("telegram/text.json"),
            Some(SECRET),
            "application/json",
        );
        a.verify(&current, until + chrono::Duration::days(1))
            .unwrap();
    }

    #[test]
    fn telegram_has_no_get_handshake() {
        let mut get = request("", None, "application/json");
        get.method = axum::http::Method::GET;
        assert_eq!(
            adapter(&[]).handshake(&get),
            Err(super::super::HandshakeError::NotSupported)
        );
    }

    #[test]
    fn only_json_is_accepted() {
        let a = adapter(&[]);
        let form = request(
            "update_id=1",
            Some(SECRET),
            "application/x-www-form-urlencoded",
        );
        assert_eq!(
            a.parse(&form),
            Err(ParseError::UnsupportedMediaType(
                "application/x-www-form-urlencoded".into()
            ))
        );
    }

    #[test]
    fn config_keys_are_checked() {
        assert!(config().validate().is_empty());
        let bad = TelegramConfig {
            bot_token: Secret::new("not a token/../"),
            secret_token: Secret::new("has spaces"),
            api_base: "ftp://x".into(),
        };
        let fields: Vec<String> = bad.validate().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["bot_token", "secret_token", "api_base"]);
    }

    #[test]
    fn the_bot_token_is_redacted_from_reasons() {
        let a = adapter(&[]);
        assert_eq!(
            a.redact("GET /bot123456:TEST-token_abc/sendMessage failed".into()),
            "GET /bot[bot token]/sendMessage failed"
        );
    }
}
