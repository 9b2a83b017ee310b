//! Instagram Direct through the Meta Graph API (Instagram messaging). Webhooks arrive as
//! `entry[].messaging[]` events of one professional account (`object: "instagram"`):
//! messages (text, media, shares, story mentions and replies, reels), edits, deletions and
//! read receipts; replies go out through `POST {api_base}/{account_id}/messages`.
//!
//! Signature, handshake and Graph error handling are Meta's and live in [`super::meta`].
//! A conversation's platform thread is `"{account_id}:{igsid}"`.
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
pub use outbound::{envelope, plan, text_chunks};

/// The identifier type of an Instagram contact: their Instagram-scoped id (IGSID).
pub const IDENTIFIER_TYPE: &str = "instagram_igsid";

/// The most UTF-8 bytes one Instagram text message takes; longer replies go out in
/// several messages.
pub const MAX_TEXT_BYTES: usize = 1000;

/// Where Instagram differs from Messenger on Meta's Messenger Platform.
pub(crate) const PLATFORM: Platform = Platform {
    name: "Instagram",
    object: "instagram",
    identifier_type: IDENTIFIER_TYPE,
    message_parts: inbound::message_parts,
    story_replies: true,
    deliveries: false,
    reads: Reads::MidOrWatermark,
    text_chunks: outbound::text_chunks,
    stickers: false,
    attachment_payload: outbound::attachment_payload,
    no_file: "has no URL Instagram could fetch",
    messaging_type: None,
};

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstagramConfig {
    /// The access token of the Instagram professional account (or its Page), sent as
    /// `Authorization: Bearer`.
    pub access_token: Secret,
    /// The Meta app's secret: verifies `X-Hub-Signature-256`.
    pub app_secret: Secret,
    /// The token typed into the app dashboard for the GET subscription check.
    pub verify_token: Secret,
    /// The Instagram professional account id replies are sent from.
    #[serde(deserialize_with = "meta::id_string")]
    pub account_id: String,
    #[serde(default = "meta::default_api_base")]
    pub api_base: String,
}

impl InstagramConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        meta::validate_api_base(&self.api_base, &mut errors);
        if !meta::is_path_safe_id(&self.account_id) {
            errors.push((
                "account_id".into(),
                "must be the Instagram account id (digits)".into(),
            ));
        }
        errors
    }
}

pub struct InstagramAdapter {
    secrets: AppSecrets,
    verify_token: Secret,
    graph: Graph,
    send_path: String,
}

impl InstagramAdapter {
    pub fn new(config: &InstagramConfig, http: reqwest::Client, retired: &[RetiredSecret]) -> Self {
        Self {
            secrets: AppSecrets::new(&config.app_secret, retired),
            verify_token: config.verify_token.clone(),
            graph: Graph::new(http, &config.api_base, &config.access_token),
            send_path: format!("{}/messages", config.account_id),
        }
    }
}

#[async_trait]
impl ChannelAdapter for InstagramAdapter {
    fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError> {
        self.secrets.verify(request, now)
    }

    fn parse(&self, request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError> {
        parse_value(&meta::json_body(request)?)
    }

    fn handshake(&self, request: &RawRequest) -> Result<HandshakeReply, HandshakeError> {
        meta::handshake(request, &self.verify_token)
    }

    /// Sent message by message; a failure (the 24-hour window's among them, which Graph
    /// answers as a permanent error with its own message) says how many went out first.
    async fn send(&self, message: &Outbound) -> Result<Receipt, SendError> {
        let user = recipient(message)?;
        messaging::send(
            &PLATFORM,
            &self.graph,
            &self.send_path,
            &user,
            &message.parts,
        )
        .await
    }

    /// Attachment URLs are Meta CDN links; the token goes along only to Meta hosts.
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
    use crate::adapters::{InboundEvent, InboundMessage, RawRequest, RetiredSecret};
    use crate::fixtures::fixture;
    use crate::model::{Part, TextPart};
    use crate::secret::Secret;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const APP_SECRET: &str = "ig-app-secret";
    pub(super) const ACCOUNT: &str = "17841405822304914";
    pub(super) const IGSID: &str = "1254459154682919";
    fn config() -> InstagramConfig {
        InstagramConfig {
            access_token: Secret::new("IGQV-token"),
            app_secret: Secret::new(APP_SECRET),
            verify_token: Secret::new("verify-me"),
            account_id: ACCOUNT.into(),
            api_base: "http://127.0.0.1:9/v26.0".into(),
        }
    }

    pub(super) fn adapter(retired: &[RetiredSecret]) -> InstagramAdapter {
        InstagramAdapter::new(&config(), reqwest::Client::new(), retired)
    }

    pub(super) fn signed(body: &str) -> RawRequest {
        meta::testing::signed("ig", APP_SECRET, body)
    }

    pub(super) fn parse(body: &str) -> Vec<InboundEvent> {
        meta::testing::parse(&adapter(&[]), "ig", APP_SECRET, body)
    }

    pub(super) fn messages(body: &str) -> Vec<InboundMessage> {
        meta::testing::messages(parse(body))
    }

    #[test]
    fn signatures_are_checked_on_the_raw_bytes_with_retired_secrets_for_a_while() {
        meta::testing::assert_signatures_checked_with_retired_secrets(
            adapter,
            "ig",
            APP_SECRET,
            fixture!("instagram/text_reply.json"),
        );
    }

    #[test]
    fn the_handshake_answers_with_the_challenge() {
        meta::testing::assert_handshake_answers_the_challenge(&adapter(&[]), "77");
    }

    pub(super) fn text(t: &str) -> Part {
        Part::Text(TextPart { text: t.into() })
    }

    #[test]
    fn config_needs_a_path_safe_account_id_and_refuses_unknown_keys() {
        let from_toml = |text: &str| -> Result<InstagramConfig, String> {
            toml::from_str(text).map_err(|e| e.to_string())
        };
        let keys = "access_token = \"t\"\napp_secret = \"s\"\nverify_token = \"v\"\n";
        let config = from_toml(&format!("{keys}account_id = 17841405822304914\n")).unwrap();
        assert_eq!(config.account_id, ACCOUNT);
        assert_eq!(config.api_base, meta::DEFAULT_API_BASE);
        assert!(config.validate().is_empty());
        let bad = from_toml(&format!("{keys}account_id = \"1/../me\"\n")).unwrap();
        assert_eq!(bad.validate()[0].0, "account_id");
        assert!(from_toml(keys).is_err(), "account_id is required");
        assert!(from_toml(&format!("{keys}account_id = \"1\"\npage_id = \"x\"\n")).is_err());
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
            "is_unsupported",
            "reply_to",
            "story",
            "attachments",
            "type",
            "payload",
            "url",
            "message_edit",
            "num_edit",
            "read",
            "watermark",
            "reaction",
            "postback",
            "title",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            prop::sample::select(vec![
                "instagram",
                "image",
                "video",
                "audio",
                "file",
                "share",
                "story_mention",
                "ig_reel",
                "",
                "m_1",
                "https://x.example/a.png",
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

    proptest! {
        #[test]
        fn arbitrary_json_shapes_never_panic_the_parser(value in webhook_like()) {
            let _ = parse_value(&value);
            let wrapped = json!({"object": "instagram", "entry": [{"id": ACCOUNT,
                "messaging": [value.clone(), {"sender": {"id": IGSID}, "recipient": {"id": ACCOUNT},
                    "message": value.clone(), "read": value}]}]});
            let _ = parse_value(&wrapped);
        }
    }
}
