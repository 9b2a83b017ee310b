//! Facebook Messenger Platform (Meta). Webhooks arrive as `entry[].messaging[]` events
//! of one Page: messages (text, attachments), edits, delivery and read watermarks;
//! replies go out through the Send API, `POST {api_base}/me/messages` with the Page token.
//!
//! Signature, handshake and Graph error handling are Meta's and live in [`super::meta`].
//! A conversation's platform thread is `"{page_id}:{psid}"`.
//!
//! `inbound` turns a webhook's events into ours, `outbound` plans a reply's Send API
//! messages (the Meta plumbing both use is in `meta`); this file is the adapter that joins
//! them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::fetch::MediaClient;
use super::meta::messaging::{self, Platform, Reads};
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
use outbound::recipient;
pub use outbound::{envelope, plan};

/// The identifier type of a Messenger contact: their page-scoped id (PSID).
pub const IDENTIFIER_TYPE: &str = "messenger_psid";

/// The longest text the Send API takes; longer replies go out in several messages.
pub const MAX_TEXT_CHARS: usize = 2000;

/// Where the Send API lives under `api_base`: `me` is the Page the token belongs to.
const SEND_PATH: &str = "me/messages";

/// Where Messenger differs from Instagram on Meta's Messenger Platform.
pub(crate) const PLATFORM: Platform = Platform {
    name: "Messenger",
    object: "page",
    identifier_type: IDENTIFIER_TYPE,
    message_parts: inbound::message_parts,
    story_replies: false,
    deliveries: true,
    reads: Reads::Watermark,
    text_chunks: outbound::text_chunks,
    stickers: true,
    attachment_payload: outbound::attachment_payload,
    no_file: "has no file to send",
    messaging_type: Some("RESPONSE"),
};

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessengerConfig {
    /// The Page access token, sent as `Authorization: Bearer`.
    pub page_access_token: Secret,
    /// The Meta app's secret: verifies `X-Hub-Signature-256`.
    pub app_secret: Secret,
    /// The token typed into the app dashboard for the GET subscription check.
    pub verify_token: Secret,
    #[serde(default = "meta::default_api_base")]
    pub api_base: String,
}

impl MessengerConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        meta::validate_api_base(&self.api_base, &mut errors);
        errors
    }
}

pub struct MessengerAdapter {
    secrets: AppSecrets,
    verify_token: Secret,
    graph: Graph,
}

impl MessengerAdapter {
    pub fn new(config: &MessengerConfig, http: reqwest::Client, retired: &[RetiredSecret]) -> Self {
        Self {
            secrets: AppSecrets::new(&config.app_secret, retired),
            verify_token: config.verify_token.clone(),
            graph: Graph::new(http, &config.api_base, &config.page_access_token),
        }
    }
}

#[async_trait]
impl ChannelAdapter for MessengerAdapter {
    fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError> {
        self.secrets.verify(request, now)
    }

    fn parse(&self, request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError> {
        parse_value(&meta::json_body(request)?)
    }

    fn handshake(&self, request: &RawRequest) -> Result<HandshakeReply, HandshakeError> {
        meta::handshake(request, &self.verify_token)
    }

    /// Messenger documents no quoted replies for Pages: `reply_to` is not sent.
    async fn send(&self, message: &Outbound) -> Result<Receipt, SendError> {
        let user = recipient(message)?;
        messaging::send(&PLATFORM, &self.graph, SEND_PATH, &user, &message.parts).await
    }

    /// Attachment URLs are Meta CDN links; the Page token goes along only to Meta hosts.
    async fn fetch_media(
        &self,
        media: &Media,
        web: &MediaClient,
    ) -> Result<FetchedMedia, FetchError> {
        match media.url.as_deref() {
            Some(url) => self.graph.fetch(url, web).await,
            None => Err(FetchError::NoMedia),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::meta::{self};
    use crate::adapters::{
        ChannelAdapter, InboundEvent, InboundMessage, ParseError, RawRequest, RetiredSecret,
    };
    use crate::fixtures::fixture;
    use crate::model::{Part, TextPart};
    use crate::secret::Secret;
    use axum::http::{HeaderMap, HeaderValue};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const APP_SECRET: &str = "fb-app-secret";
    pub(super) const PAGE: &str = "104893211234567";
    pub(super) const PSID: &str = "7210934512867345";

    fn config() -> MessengerConfig {
        MessengerConfig {
            page_access_token: Secret::new("EAAB-page-token"),
            app_secret: Secret::new(APP_SECRET),
            verify_token: Secret::new("verify-me"),
            api_base: "http://127.0.0.1:9/v26.0".into(),
        }
    }

    pub(super) fn adapter(retired: &[RetiredSecret]) -> MessengerAdapter {
        MessengerAdapter::new(&config(), reqwest::Client::new(), retired)
    }

    fn request(body: &str, signature: Option<String>, content_type: &str) -> RawRequest {
        meta::testing::request("fb", body, signature, content_type)
    }

    pub(super) fn signed(body: &str) -> RawRequest {
        meta::testing::signed("fb", APP_SECRET, body)
    }

    pub(super) fn parse(body: &str) -> Vec<InboundEvent> {
        meta::testing::parse(&adapter(&[]), "fb", APP_SECRET, body)
    }

    pub(super) fn messages(body: &str) -> Vec<InboundMessage> {
        meta::testing::messages(parse(body))
    }

    #[test]
    fn signatures_are_checked_on_the_raw_bytes_with_retired_secrets_for_a_while() {
        meta::testing::assert_signatures_checked_with_retired_secrets(
            adapter,
            "fb",
            APP_SECRET,
            fixture!("messenger/text_reply.json"),
        );
    }

    #[test]
    fn the_handshake_answers_with_the_challenge() {
        meta::testing::assert_handshake_answers_the_challenge(&adapter(&[]), "77");
    }

    #[test]
    fn wrong_content_type_and_broken_json_are_refused() {
        let adapter = adapter(&[]);
        let form = request(fixture!("messenger/text_reply.json"), None, "text/plain");
        assert!(matches!(
            adapter.parse(&form),
            Err(ParseError::UnsupportedMediaType(t)) if t == "text/plain"
        ));
        assert!(matches!(
            adapter.parse(&signed("[1,")),
            Err(ParseError::Malformed(_))
        ));
    }

    pub(super) fn text(t: &str) -> Part {
        Part::Text(TextPart { text: t.into() })
    }

    #[test]
    fn config_has_a_graph_default_and_refuses_unknown_keys() {
        let from_toml = |text: &str| -> Result<MessengerConfig, String> {
            toml::from_str(text).map_err(|e| e.to_string())
        };
        let base = "page_access_token = \"t\"\napp_secret = \"s\"\nverify_token = \"v\"\n";
        let config = from_toml(base).unwrap();
        assert_eq!(config.api_base, meta::DEFAULT_API_BASE);
        assert!(config.validate().is_empty());
        let bad = from_toml(&format!("{base}api_base = \"graph\"\n")).unwrap();
        assert_eq!(bad.validate()[0].0, "api_base");
        assert!(from_toml(&format!("{base}access_token = \"x\"\n")).is_err());
    }

    fn webhook_like() -> impl Strategy<Value = Value> {
        let keys = prop::sample::select(vec![
            "object",
            "entry",
            "id",
            "messaging",
            "standby",
            "sender",
            "recipient",
            "timestamp",
            "message",
            "mid",
            "text",
            "is_echo",
            "is_deleted",
            "reply_to",
            "attachments",
            "type",
            "payload",
            "url",
            "sticker_id",
            "coordinates",
            "lat",
            "long",
            "title",
            "message_edit",
            "delivery",
            "mids",
            "watermark",
            "read",
            "postback",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            prop::sample::select(vec![
                "page",
                "image",
                "video",
                "audio",
                "file",
                "sticker",
                "location",
                "fallback",
                "reel",
                "",
                "m_1",
                "https://x.example/a.png",
                "1783002420000",
            ])
            .prop_map(Value::from),
            ".*".prop_map(Value::from),
        ];
        leaf.prop_recursive(6, 96, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(keys.clone(), inner, 0..6).prop_map(|m| {
                    Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }

    /// One adapter for every generated case (building a client per case is slow).
    static SHARED: std::sync::LazyLock<MessengerAdapter> =
        std::sync::LazyLock::new(|| adapter(&[]));

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_parser(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let mut headers = HeaderMap::new();
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            let request = RawRequest::post("https://bridge.example/hooks/fb", headers, body);
            let _ = SHARED.parse(&request);
        }

        #[test]
        fn arbitrary_json_shapes_never_panic_the_parser(value in webhook_like()) {
            let _ = parse_value(&value);
            let wrapped = json!({"object": "page", "entry": [{"id": PAGE,
                "messaging": [value.clone(), {"sender": {"id": PSID}, "recipient": {"id": PAGE},
                    "message": value.clone(), "delivery": value.clone(), "read": value}]}]});
            let _ = parse_value(&wrapped);
        }
    }
}
