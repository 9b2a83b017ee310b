//! Viber REST bot API: signed JSON callbacks in, `/pa/send_message` out.
//!
//! Viber signs every callback with a hex HMAC-SHA256 of the raw body keyed by the bot's
//! auth token (`X-Viber-Content-Signature`); the same token authenticates sends
//! (`X-Viber-Auth-Token`). Bots talk 1:1, so the thread is the user's id. Viber answers
//! sends with HTTP 200 even when it refuses them: the `status` field says so.
//!
//! `wire` holds Viber's JSON shapes, `inbound` turns a callback into events, `outbound`
//! plans a reply's calls and reads the answers; this file is the adapter that joins them.

use async_trait::async_trait;
use axum::http::header;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::fetch::MediaClient;
use super::signature::hmac_sha256_matches_any;
use super::{
    ChannelAdapter, FetchError, FetchedMedia, InboundEvent, Outbound, ParseError, RawRequest,
    Receipt, RetiredSecret, SendError, VerifyError, classify_transport, secrets_in_force,
};
use crate::model::Media;
use crate::secret::Secret;

mod inbound;
mod outbound;
mod wire;

pub use inbound::parse_callback;
use outbound::{Call, Plan, plan, read_answer};

/// The identifier type of a Viber contact: the user id Viber gives this bot.
pub const IDENTIFIER_TYPE: &str = "viber_user";

/// The real REST bot API.
pub const DEFAULT_API_BASE: &str = "https://chatapi.viber.com";

/// The bot name shown on sends when none is configured.
pub const DEFAULT_SENDER_NAME: &str = "channel-bridge";

/// The signature header, as Viber names it (for errors).
const SIGNATURE_HEADER: &str = "X-Viber-Content-Signature";

/// The longest text message, in characters.
pub const MAX_TEXT: usize = 7000;

/// The longest picture description, in characters.
pub const MAX_CAPTION: usize = 512;

/// The longest sender name Viber takes.
const MAX_SENDER_NAME: usize = 28;

/// Viber's `status` for "too many messages to this user without a reply".
const STATUS_TOO_MANY_REQUESTS: i64 = 12;

/// The highest `status` Viber documents; all but 12 describe a refusal that a retry
/// cannot fix (bad token, user not subscribed, bot blocked…).
const STATUS_LAST_DOCUMENTED: i64 = 24;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViberConfig {
    /// The bot's token: signs callbacks and authenticates sends.
    pub auth_token: Secret,
    /// The REST API base URL (tests point it at a mock).
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// The bot name Viber shows on every message we send (required by Viber, ≤ 28).
    #[serde(default = "default_sender_name")]
    pub sender_name: String,
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.to_owned()
}

fn default_sender_name() -> String {
    DEFAULT_SENDER_NAME.to_owned()
}

impl ViberConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if !crate::model::is_http_url(&self.api_base) {
            errors.push(("api_base".into(), "must be an http(s) URL".into()));
        }
        let name = self.sender_name.trim();
        if name.is_empty() || name.chars().count() > MAX_SENDER_NAME {
            errors.push((
                "sender_name".into(),
                format!("must be 1-{MAX_SENDER_NAME} characters (Viber's limit)"),
            ));
        }
        errors
    }
}

pub struct ViberAdapter {
    auth_token: Secret,
    /// Tokens replaced by a reload, still accepted on callbacks until their time.
    retired: Vec<RetiredSecret>,
    api_base: String,
    sender_name: String,
    http: reqwest::Client,
}

impl ViberAdapter {
    pub fn new(config: &ViberConfig, http: reqwest::Client, retired: &[RetiredSecret]) -> Self {
        Self {
            auth_token: config.auth_token.clone(),
            retired: retired.to_vec(),
            api_base: config.api_base.trim_end_matches('/').to_owned(),
            sender_name: config.sender_name.trim().to_owned(),
            http,
        }
    }

    /// Sends one message body (without receiver and sender) and returns Viber's
    /// `message_token` for it, if it gave one.
    async fn send_one(
        &self,
        receiver: &str,
        fields: &Map<String, Value>,
    ) -> Result<Option<String>, SendError> {
        let mut body = fields.clone();
        body.insert("receiver".into(), receiver.into());
        body.insert("sender".into(), json!({"name": self.sender_name}));
        let response = self
            .http
            .post(format!("{}/pa/send_message", self.api_base))
            .header("X-Viber-Auth-Token", self.auth_token.expose())
            .json(&body)
            .send()
            .await
            .map_err(classify_transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        read_answer(status, &headers, &text)
    }

    /// The size of a file at `url`, from a HEAD request (Viber requires it for videos and
    /// files). `None` when the server does not say.
    async fn size_of(&self, url: &str) -> Option<u64> {
        let response = self.http.head(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response
            .headers()
            .get(header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }

    /// Fills in what a planned call still needs from the network (file sizes); a call that
    /// cannot be completed becomes its link, with a note.
    async fn complete(&self, mut call: Call, notes: &mut Vec<String>) -> Call {
        let Some(url) = call.needs_size.clone() else {
            return call;
        };
        match self.size_of(&url).await {
            Some(size) => {
                call.body.insert("size".into(), size.into());
                call.needs_size = None;
                call
            }
            None => {
                notes.push(format!(
                    "Part {} ({}) was sent as a link: Viber needs the file size and {url} did not give one.",
                    call.part, call.kind
                ));
                Call::text(call.part, &call.kind, &url)
            }
        }
    }
}

#[async_trait]
impl ChannelAdapter for ViberAdapter {
    fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError> {
        let presented = request
            .header(SIGNATURE_HEADER)
            .ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;
        let signature = hex::decode(presented.trim()).map_err(|_| VerifyError::BadSignature)?;
        let keys = secrets_in_force(&self.auth_token, &self.retired, now);
        if hmac_sha256_matches_any(keys, &request.body, &signature) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    fn parse(&self, request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError> {
        parse_callback(request.json_body()?)
    }

    /// One send per part, in order, to the user (Viber has no quoted replies: `reply_to`
    /// is not sent). Once something has gone out, a later failure is reported in the note
    /// instead of failing the send: a retry would send the earlier parts a second time.
    async fn send(&self, message: &Outbound) -> Result<Receipt, SendError> {
        let receiver = message
            .platform_thread_id
            .as_deref()
            .unwrap_or(&message.to.value);
        if receiver.trim().is_empty() {
            return Err(SendError::Permanent {
                reason: "the conversation has no Viber user id".into(),
            });
        }
        let Plan { calls, mut notes } = plan(&message.parts);
        if calls.is_empty() {
            return Err(SendError::Permanent {
                reason: format!("nothing to send on Viber. {}", notes.join(" ")),
            });
        }
        let mut first_id = None;
        for (i, call) in calls.into_iter().enumerate() {
            let call = self.complete(call, &mut notes).await;
            let outcome = self.send_one(receiver, &call.body).await;
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

    /// Viber gives media as signed CDN URLs that need no credentials (and the auth token
    /// is never sent to a URL taken from a payload).
    async fn fetch_media(
        &self,
        media: &Media,
        web: &MediaClient,
    ) -> Result<FetchedMedia, FetchError> {
        let url = media.url.as_deref().ok_or(FetchError::NoMedia)?;
        web.fetch(url, &[&self.api_base]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::{
        ChannelAdapter, InboundEvent, InboundMessage, ParseError, RawRequest, RetiredSecret,
        VerifyError,
    };
    use crate::fixtures::fixture;
    use crate::secret::Secret;
    use axum::http::HeaderMap;
    use axum::http::HeaderValue;
    use chrono::Utc;
    use hmac::{Hmac, Mac};
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use sha2::Sha256;

    const TOKEN: &str = "4453b6ac12345678-e02c5f12174805f9-daec9cbb5448c51r";

    fn config() -> ViberConfig {
        ViberConfig {
            auth_token: Secret::new(TOKEN),
            api_base: DEFAULT_API_BASE.into(),
            sender_name: DEFAULT_SENDER_NAME.into(),
        }
    }

    fn adapter(retired: &[RetiredSecret]) -> ViberAdapter {
        ViberAdapter::new(&config(), reqwest::Client::new(), retired)
    }

    fn sign(key: &str, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(body.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn request(body: &str, signature: Option<&str>, content_type: &str) -> RawRequest {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_str(content_type).unwrap());
        if let Some(signature) = signature {
            headers.insert(
                "x-viber-content-signature",
                HeaderValue::from_str(signature).unwrap(),
            );
        }
        RawRequest::post(
            "https://bridge.example.test/hooks/viber",
            headers,
            body.to_owned(),
        )
    }

    pub(super) fn parse(body: &str) -> Result<Vec<InboundEvent>, ParseError> {
        adapter(&[]).parse(&request(body, Some(&sign(TOKEN, body)), "application/json"))
    }

    pub(super) fn message(body: &str) -> InboundMessage {
        match parse(body).unwrap().as_slice() {
            [InboundEvent::Message(m)] => m.clone(),
            other => panic!("expected one message, got {other:?}"),
        }
    }

    #[test]
    fn the_signature_is_a_hex_hmac_of_the_raw_body_keyed_by_the_auth_token() {
        let a = adapter(&[]);
        let now = Utc::now();
        let body = fixture!("viber/text.json");
        let good = sign(TOKEN, body);
        a.verify(&request(body, Some(&good), "application/json"), now)
            .unwrap();
        a.verify(
            &request(body, Some(&good.to_uppercase()), "application/json"),
            now,
        )
        .unwrap();
        let tampered = body.replace("parcel", "parcels");
        assert_eq!(
            a.verify(&request(&tampered, Some(&good), "application/json"), now),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            a.verify(
                &request(body, Some(&sign("another-token", body)), "application/json"),
                now
            ),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            a.verify(&request(body, Some("not hex"), "application/json"), now),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            a.verify(&request(body, None, "application/json"), now),
            Err(VerifyError::MissingHeader("X-Viber-Content-Signature"))
        );
    }

    #[test]
    fn a_retired_token_verifies_until_its_time_only() {
        let until = Utc::now();
        let a = adapter(&[RetiredSecret {
            secret: Secret::new("old-token"),
            until,
        }]);
        let body = fixture!("viber/text.json");
        let old = request(body, Some(&sign("old-token", body)), "application/json");
        a.verify(&old, until - chrono::Duration::seconds(1))
            .unwrap();
        assert_eq!(a.verify(&old, until), Err(VerifyError::BadSignature));
    }

    #[test]
    fn viber_has_no_get_handshake_and_takes_only_json() {
        let a = adapter(&[]);
        let mut get = request("", None, "application/json");
        get.method = axum::http::Method::GET;
        assert_eq!(
            a.handshake(&get),
            Err(super::super::HandshakeError::NotSupported)
        );
        assert_eq!(
            a.parse(&request("event=message", None, "text/plain")),
            Err(ParseError::UnsupportedMediaType("text/plain".into()))
        );
    }

    #[test]
    fn config_keys_are_checked() {
        assert!(config().validate().is_empty());
        let bad = ViberConfig {
            auth_token: Secret::new(TOKEN),
            api_base: "chatapi.viber.com".into(),
            sender_name: "A name much longer than twenty-eight".into(),
        };
        let fields: Vec<String> = bad.validate().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["api_base", "sender_name"]);
    }

    // --- Outbound ---------------------------------------------------------------------

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null)),
            ".{0,12}".prop_map(Value::from),
            prop_oneof![
                Just("message"),
                Just("delivered"),
                Just("seen"),
                Just("failed"),
                Just("text"),
                Just("picture"),
                Just("sticker"),
                Just("location"),
                Just("contact"),
                Just("https://x.example/a"),
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("event".to_owned()),
                        Just("message".to_owned()),
                        Just("message_token".to_owned()),
                        Just("sender".to_owned()),
                        Just("type".to_owned()),
                        Just("media".to_owned()),
                        Just("location".to_owned()),
                        "[a-z_]{1,10}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_parser(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_callback(&body);
        }

        #[test]
        fn arbitrary_json_never_panics_the_parser(value in json_value()) {
            let _ = parse_callback(value.to_string().as_bytes());
            let callback = json!({"event": "message", "message_token": 1,
                                  "sender": {"id": "u"}, "message": value.clone()});
            let _ = parse_callback(callback.to_string().as_bytes());
        }

        #[test]
        fn a_real_callback_with_any_field_replaced_never_panics(
            fixture in prop::sample::select(vec![
                fixture!("viber/text.json"), fixture!("viber/picture.json"), fixture!("viber/sticker.json"), fixture!("viber/location.json"),
                fixture!("viber/contact.json"), fixture!("viber/video.json"), fixture!("viber/failed.json"),
            ]),
            inner in any::<bool>(),
            index in any::<prop::sample::Index>(),
            value in json_value(),
        ) {
            let mut callback: Value = serde_json::from_str(fixture).unwrap();
            let target = match callback.get_mut("message") {
                Some(message) if inner => message.as_object_mut().unwrap(),
                _ => callback.as_object_mut().unwrap(),
            };
            let key = target.keys().nth(index.index(target.len())).unwrap().clone();
            target.insert(key, value);
            if let Ok(events) = parse_callback(callback.to_string().as_bytes()) {
                for event in events {
                    if let InboundEvent::Message(m) = event {
                        prop_assert_eq!(m.parts.len(), 1);
                    }
                }
            }
        }
    }
}
