//! LINE Messaging API: webhooks signed with the channel secret (`X-Line-Signature`), replies
//! sent as push messages with the channel access token, inbound files fetched from the
//! content API on `api-data.line.me`.
//!
//! Inbound: one POST carries `{destination, events: [...]}`; an empty list is the console's
//! "Verify" ping. Each `message` event becomes a message keyed by LINE's message id;
//! `unsend` retracts one. Follow, join, postback and the other account events carry no
//! message and are not stored. The whole event (reply token, quote token, webhook event
//! id, redelivery flag) is kept as the message's raw payload.
//!
//! Outbound: every reply is pushed (reply tokens expire within about a minute, far too soon
//! for a rep) in calls of at most five messages, each call with an `X-Line-Retry-Key`
//! derived from our message id, so a retried send is never shown twice.
//!
//! `inbound` reads a webhook into events, `outbound` plans a reply's messages; this file
//! is the adapter (config, signature, send, media).

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use super::fetch::{Credentials, MediaClient};
use super::{
    ChannelAdapter, FetchError, FetchedMedia, InboundEvent, Outbound, ParseError, RawRequest,
    Receipt, RetiredSecret, SendError, VerifyError, classify_status, classify_transport,
    secrets_in_force,
};
use crate::model::Media;
use crate::secret::Secret;

mod inbound;
mod outbound;

pub use inbound::{parse_body, sticker_ref};
use outbound::first_sent_id;
pub use outbound::{Plan, plan, retry_key};

/// The identifier type of a LINE user (`source.userId`).
pub const IDENTIFIER_TYPE: &str = "line_user";
/// The sender of a group message whose member LINE did not name (no `userId`).
pub const GROUP_IDENTIFIER_TYPE: &str = "line_group";
/// The sender of a multi-person chat message whose member LINE did not name.
pub const ROOM_IDENTIFIER_TYPE: &str = "line_room";

pub const DEFAULT_API_BASE: &str = "https://api.line.me";
pub const DEFAULT_API_DATA_BASE: &str = "https://api-data.line.me";

/// The header LINE signs webhooks with.
pub const SIGNATURE_HEADER: &str = "x-line-signature";

/// The most messages one push call may carry.
pub const MESSAGES_PER_PUSH: usize = 5;
/// The longest text one LINE text message may hold; longer texts are split.
pub const MAX_TEXT_CHARS: usize = 5000;
/// The longest location title or address LINE accepts.
const MAX_LOCATION_CHARS: usize = 100;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// Bearer token for the Messaging API (push, content).
    pub channel_access_token: Secret,
    /// Signs webhooks (`X-Line-Signature`).
    pub channel_secret: Secret,
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// Base of the content API (inbound files).
    #[serde(default = "default_api_data_base")]
    pub api_data_base: String,
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.into()
}

fn default_api_data_base() -> String {
    DEFAULT_API_DATA_BASE.into()
}

impl LineConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        for (key, url) in [
            ("api_base", &self.api_base),
            ("api_data_base", &self.api_data_base),
        ] {
            if !crate::model::is_http_url(url) {
                errors.push((key.into(), "must be an http(s) URL".into()));
            }
        }
        errors
    }
}

pub struct LineAdapter {
    channel_secret: Secret,
    /// Channel secrets replaced by a reload, each accepted until its time.
    retired: Vec<RetiredSecret>,
    access_token: Secret,
    api_base: String,
    api_data_base: String,
    http: reqwest::Client,
}

impl LineAdapter {
    pub fn new(config: &LineConfig, http: reqwest::Client, retired: &[RetiredSecret]) -> Self {
        Self {
            channel_secret: config.channel_secret.clone(),
            retired: retired.to_vec(),
            access_token: config.channel_access_token.clone(),
            api_base: config.api_base.trim_end_matches('/').to_owned(),
            api_data_base: config.api_data_base.trim_end_matches('/').to_owned(),
            http,
        }
    }
}

/// `base64(HMAC-SHA256(channel secret, body))`, the value of `X-Line-Signature`.
pub fn sign(channel_secret: &str, body: &[u8]) -> String {
    BASE64.encode(mac(channel_secret, body).finalize().into_bytes())
}

fn mac(channel_secret: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(channel_secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    mac
}

/// Checks `X-Line-Signature` against the body with any of `secrets` (constant time).
pub fn verify_signature<'a>(
    secrets: impl IntoIterator<Item = &'a str>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<(), VerifyError> {
    let signature = signature.ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;
    let signature = BASE64
        .decode(signature.trim())
        .map_err(|_| VerifyError::BadSignature)?;
    for secret in secrets {
        if mac(secret, body).verify_slice(&signature).is_ok() {
            return Ok(());
        }
    }
    Err(VerifyError::BadSignature)
}

#[async_trait]
impl ChannelAdapter for LineAdapter {
    fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError> {
        let secrets =
            secrets_in_force(&self.channel_secret, &self.retired, now).map(Secret::expose);
        verify_signature(secrets, request.header(SIGNATURE_HEADER), &request.body)
    }

    fn parse(&self, request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError> {
        parse_body(request.json_body()?)
    }

    async fn send(&self, message: &Outbound) -> Result<Receipt, SendError> {
        let to = message
            .platform_thread_id
            .as_deref()
            .unwrap_or(&message.to.value);
        let Plan { messages, notes } = plan(&message.parts);
        if messages.is_empty() {
            return Err(SendError::Permanent {
                reason: format!(
                    "nothing in this reply can be sent to LINE: {}",
                    notes.join("; ")
                ),
            });
        }
        let url = format!("{}/v2/bot/message/push", self.api_base);
        let mut first_id = None;
        for (i, chunk) in messages.chunks(MESSAGES_PER_PUSH).enumerate() {
            let response = self
                .http
                .post(&url)
                .bearer_auth(self.access_token.expose())
                .header(
                    "x-line-retry-key",
                    retry_key(message.message_id.as_str(), i),
                )
                .json(&json!({"to": to, "messages": chunk}))
                .send()
                .await
                .map_err(classify_transport)?;
            let status = response.status();
            let headers = response.headers().clone();
            let text = response.text().await.unwrap_or_default();
            // 409: a call with this retry key was already accepted (an earlier attempt
            // got through before failing on our side); it is not sent again.
            if !status.is_success() && status.as_u16() != 409 {
                return Err(classify_status(status, &headers, &text));
            }
            if i == 0 {
                first_id = first_sent_id(&text);
            }
        }
        Ok(Receipt {
            platform_message_id: first_id,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        })
    }

    /// LINE's own files come from the content API by message id with the access token;
    /// files a contact shared from an external provider (and our own outbound media) are
    /// plain URLs, fetched without the token.
    async fn fetch_media(
        &self,
        media: &Media,
        web: &MediaClient,
    ) -> Result<FetchedMedia, FetchError> {
        if let Some(url) = media.url.as_deref() {
            return web.fetch(url, &[&self.api_base, &self.api_data_base]).await;
        }
        let id = media
            .platform_ref
            .as_deref()
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(FetchError::NoMedia)?;
        let url = format!("{}/v2/bot/message/{id}/content", self.api_data_base);
        let token = Credentials::Bearer(self.access_token.expose());
        web.fetch_with(&url, &[&self.api_base, &self.api_data_base], token)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::InboundMessage;
    use crate::fixtures::fixture;
    use crate::model::{ConversationId, MessageId};
    use crate::model::{Identifier, MediaPart, Part, TextPart, UnsupportedPart};
    use axum::http::{HeaderMap, HeaderValue};
    use serde_json::Value;

    pub(super) const SECRET: &str = "line-channel-secret";

    pub(super) const VERIFICATION: &str = fixture!("line/verification.json");
    pub(super) const TEXT: &str = fixture!("line/text.json");
    pub(super) const GROUP_TEXT: &str = fixture!("line/group_text.json");
    pub(super) const MEDIA: &str = fixture!("line/media.json");
    pub(super) const BATCH: &str = fixture!("line/batch.json");

    pub(super) fn adapter_with(retired: &[RetiredSecret]) -> LineAdapter {
        LineAdapter::new(
            &LineConfig {
                channel_access_token: Secret::new("line-access-token"),
                channel_secret: Secret::new(SECRET),
                api_base: DEFAULT_API_BASE.into(),
                api_data_base: DEFAULT_API_DATA_BASE.into(),
            },
            reqwest::Client::new(),
            retired,
        )
    }

    pub(super) fn request(body: &str, signature: Option<&str>, content_type: &str) -> RawRequest {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_str(content_type).unwrap());
        if let Some(signature) = signature {
            headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(signature).unwrap());
        }
        RawRequest::post(
            "https://bridge.example.com/hooks/line",
            headers,
            body.to_owned(),
        )
    }

    pub(super) fn signed(body: &str) -> RawRequest {
        request(
            body,
            Some(&sign(SECRET, body.as_bytes())),
            "application/json",
        )
    }

    pub(super) fn parse(body: &str) -> Vec<InboundEvent> {
        let adapter = adapter_with(&[]);
        let request = signed(body);
        adapter.verify(&request, Utc::now()).unwrap();
        adapter.parse(&request).unwrap()
    }

    pub(super) fn messages(body: &str) -> Vec<InboundMessage> {
        parse(body)
            .into_iter()
            .map(|e| match e {
                InboundEvent::Message(m) => m,
                other => panic!("expected a message, got {other:?}"),
            })
            .collect()
    }

    pub(super) fn field_of(body: Value) -> String {
        match parse_body(body.to_string().as_bytes()).unwrap_err() {
            ParseError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    pub(super) fn media(part: &Part) -> &MediaPart {
        part.media()
            .unwrap_or_else(|| panic!("expected media, got {other:?}", other = part))
    }

    #[test]
    fn signs_like_line_does() {
        // Computed independently: openssl dgst -sha256 -hmac "$secret" -binary < verification.json | base64
        assert_eq!(
            sign(SECRET, VERIFICATION.as_bytes()),
            "1Iyv7lPX2CYUIiLP1AjAB6LZ/IABhYEZKNG77N4yjbU="
        );
    }

    #[test]
    fn a_wrong_or_missing_signature_is_refused() {
        let adapter = adapter_with(&[]);
        let now = Utc::now();
        let forged = request(
            TEXT,
            Some(&sign("other-secret", TEXT.as_bytes())),
            "application/json",
        );
        assert_eq!(adapter.verify(&forged, now), Err(VerifyError::BadSignature));
        let tampered = request(
            &TEXT.replace("Sundays", "Mondays"),
            Some(&sign(SECRET, TEXT.as_bytes())),
            "application/json",
        );
        assert_eq!(
            adapter.verify(&tampered, now),
            Err(VerifyError::BadSignature)
        );
        let garbage = request(TEXT, Some("not base64!"), "application/json");
        assert_eq!(
            adapter.verify(&garbage, now),
            Err(VerifyError::BadSignature)
        );
        let missing = request(TEXT, None, "application/json");
        assert_eq!(
            adapter.verify(&missing, now),
            Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
        );
    }

    #[test]
    fn a_retired_secret_is_accepted_until_its_time() {
        let now = Utc::now();
        let retired = [RetiredSecret {
            secret: Secret::new("old-secret"),
            until: now + chrono::Duration::minutes(5),
        }];
        let adapter = adapter_with(&retired);
        let old = request(
            TEXT,
            Some(&sign("old-secret", TEXT.as_bytes())),
            "application/json",
        );
        adapter.verify(&old, now).unwrap();
        adapter.verify(&signed(TEXT), now).unwrap();
        assert_eq!(
            adapter.verify(&old, now + chrono::Duration::minutes(6)),
            Err(VerifyError::BadSignature)
        );
    }

    fn outbound(parts: Vec<Part>) -> Outbound {
        Outbound {
            message_id: MessageId::new(),
            conversation_id: ConversationId::new(),
            platform_thread_id: Some("Ca56f94637cc4347f90a25382909b24b9".into()),
            to: Identifier {
                kind: IDENTIFIER_TYPE.into(),
                value: "U1".into(),
            },
            reply_to: None,
            parts,
        }
    }

    #[tokio::test]
    async fn a_reply_with_nothing_line_can_carry_is_refused_without_a_call() {
        // api_base points nowhere: a call would fail as retryable, not permanent.
        let adapter = LineAdapter::new(
            &LineConfig {
                channel_access_token: Secret::new("t"),
                channel_secret: Secret::new("s"),
                api_base: "http://127.0.0.1:9".into(),
                api_data_base: "http://127.0.0.1:9".into(),
            },
            reqwest::Client::new(),
            &[],
        );
        let error = adapter
            .send(&outbound(vec![Part::Unsupported(UnsupportedPart {
                platform_type: "poll".into(),
                raw: None,
            })]))
            .await
            .unwrap_err();
        assert!(matches!(error, SendError::Permanent { .. }), "{error:?}");
    }

    fn adapter_at(base: &str) -> LineAdapter {
        LineAdapter::new(
            &LineConfig {
                channel_access_token: Secret::new("line-access-token"),
                channel_secret: Secret::new(SECRET),
                api_base: base.into(),
                api_data_base: base.into(),
            },
            reqwest::Client::new(),
            &[],
        )
    }

    fn text(t: &str) -> Part {
        Part::Text(TextPart { text: t.into() })
    }

    #[tokio::test]
    async fn send_failures_are_classified_and_a_409_means_already_sent() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let cases = [
            (
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "3")
                    .set_body_json(json!({"message": "Too Many Requests"})),
                "rate limited",
            ),
            (ResponseTemplate::new(500), "retryable"),
            (ResponseTemplate::new(503), "retryable"),
            (
                ResponseTemplate::new(400).set_body_json(json!({
                    "message": "The request body has 1 error(s)",
                    "details": [{"message": "May not be empty", "property": "messages[0].text"}]
                })),
                "permanent",
            ),
            (
                ResponseTemplate::new(403)
                    .set_body_json(json!({"message": "Access to this API is not available"})),
                "permanent",
            ),
            (
                ResponseTemplate::new(409).set_body_json(json!({
                    "message": "The retry key is already accepted",
                    "sentMessages": [{"id": "461230966842064897"}]
                })),
                "sent",
            ),
        ];
        for (response, expected) in cases {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path("/v2/bot/message/push"))
                .respond_with(response)
                .expect(1)
                .mount(&server)
                .await;
            let result = adapter_at(&server.uri())
                .send(&outbound(vec![text("hi")]))
                .await;
            let got = match &result {
                Ok(_) => "sent",
                Err(SendError::RateLimited { .. }) => "rate limited",
                Err(SendError::Retryable { .. }) => "retryable",
                Err(SendError::Permanent { .. }) => "permanent",
            };
            assert_eq!(got, expected, "{result:?}");
            match result {
                Ok(receipt) => assert_eq!(
                    receipt.platform_message_id.as_deref(),
                    Some("461230966842064897")
                ),
                Err(SendError::RateLimited { retry_after, .. }) => {
                    assert_eq!(retry_after, Some(std::time::Duration::from_secs(3)))
                }
                Err(SendError::Permanent { reason }) => {
                    assert!(!reason.contains("line-access-token"))
                }
                Err(_) => {}
            }
        }
    }

    #[tokio::test]
    async fn more_than_five_messages_go_in_several_calls_each_with_its_own_retry_key() {
        use wiremock::matchers::{header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v2/bot/message/push"))
            .and(header("authorization", "Bearer line-access-token"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"sentMessages": [{"id": "100", "quoteToken": "q"}]})),
            )
            .expect(2)
            .mount(&server)
            .await;
        let message = outbound((1..=7).map(|i| text(&i.to_string())).collect());
        let receipt = adapter_at(&server.uri()).send(&message).await.unwrap();
        assert_eq!(receipt.platform_message_id.as_deref(), Some("100"));
        assert_eq!(receipt.note, None);
        let requests = server.received_requests().await.unwrap();
        let bodies: Vec<Value> = requests
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        assert_eq!(bodies[0]["to"], "Ca56f94637cc4347f90a25382909b24b9");
        assert_eq!(bodies[0]["messages"].as_array().unwrap().len(), 5);
        assert_eq!(
            bodies[1]["messages"],
            json!([{"type": "text", "text": "6"}, {"type": "text", "text": "7"}])
        );
        let key = |i: usize| {
            requests[i].headers["x-line-retry-key"]
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(key(0), retry_key(message.message_id.as_str(), 0));
        assert_eq!(key(1), retry_key(message.message_id.as_str(), 1));
    }

    #[tokio::test]
    async fn line_files_are_fetched_with_the_token_and_external_ones_without() {
        use wiremock::matchers::{header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/message/325710/content"))
            .and(header("authorization", "Bearer line-access-token"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(b"%PDF".to_vec()))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/cdn/full.jpg"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(b"jpg".to_vec()))
            .expect(1)
            .mount(&server)
            .await;
        let adapter = adapter_at(&server.uri());
        let own = Media {
            platform_ref: Some("325710".into()),
            ..Media::default()
        };
        let fetched = adapter
            .fetch_media(&own, &test_media_client())
            .await
            .ok()
            .unwrap();
        assert_eq!(fetched.response.bytes().await.unwrap().as_ref(), b"%PDF");
        let external = Media {
            platform_ref: Some("1".into()),
            url: Some(format!("{}/cdn/full.jpg", server.uri())),
            ..Media::default()
        };
        adapter
            .fetch_media(&external, &test_media_client())
            .await
            .ok()
            .unwrap();
        let requests = server.received_requests().await.unwrap();
        assert!(
            requests[1].headers.get("authorization").is_none(),
            "no token to third parties"
        );
        for not_an_id in ["446:1988", "../../v2/bot/info", ""] {
            let media = Media {
                platform_ref: Some(not_an_id.into()),
                ..Media::default()
            };
            assert_eq!(
                adapter
                    .fetch_media(&media, &test_media_client())
                    .await
                    .err(),
                Some(FetchError::NoMedia)
            );
        }
    }

    /// Media fetches in these tests go to wiremock on loopback, which a channel allows
    /// only with media_allow_private.
    fn test_media_client() -> crate::adapters::fetch::MediaClient {
        crate::adapters::fetch::MediaClient::new(std::time::Duration::from_secs(5), true)
    }
}
