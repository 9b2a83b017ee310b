//! Twilio Messaging (SMS, MMS and WhatsApp through Twilio): form-encoded webhooks signed
//! with the account's auth token over the full URL and the sorted parameters; replies
//! created through the Messages resource with HTTP Basic auth.
//!
//! One webhook URL takes both incoming messages and status callbacks: a `MessageStatus`
//! other than `received` makes a request a status report on a message we sent.
//! Twilio has no quoted replies on the way out and no idempotency key: a send that fails
//! after Twilio took it may be repeated by a retry.
//!
//! `wire` reads Twilio's form parameters, `inbound` checks a webhook's signature and turns
//! it into events, `outbound` plans a reply's messages and reads Twilio's answers; this
//! file is the adapter that joins them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::fetch::{Credentials, MediaClient};
use super::{
    ChannelAdapter, FetchError, FetchedMedia, InboundEvent, Outbound, ParseError, RawRequest,
    Receipt, RetiredSecret, SendError, VerifyError, classify_transport, secrets_in_force,
};
use crate::model::Media;
use crate::secret::Secret;

mod inbound;
mod outbound;
mod wire;

pub use inbound::{sign, verify_signature};
use outbound::addresses;
pub use outbound::{Plan, TwilioMessage, classify, plan, split_thread};
use wire::Params;

/// The identifier type of a Twilio contact: their address as Twilio writes it
/// (`+15551234567`, `whatsapp:+447700900123`).
pub const IDENTIFIER_TYPE: &str = "twilio_address";

pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";

/// The header Twilio signs webhooks with.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// The longest `Body` Twilio accepts; longer texts are split.
pub const MAX_BODY_CHARS: usize = 1600;

/// Twilio's "Too Many Requests" error code.
const RATE_LIMITED_CODE: u64 = 20429;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// `AC…`: the account that owns the number; the user name of Basic auth.
    pub account_sid: String,
    /// Verifies `X-Twilio-Signature` and is the password of Basic auth.
    pub auth_token: Secret,
    /// The sender for replies when the conversation does not name one: a number
    /// (`+14155550100`), a WhatsApp sender (`whatsapp:+14155550100`) or a Messaging
    /// Service (`MG…`, which then sends every reply).
    pub from: String,
    #[serde(default = "default_api_base")]
    pub api_base: String,
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.into()
}

fn is_messaging_service(from: &str) -> bool {
    from.len() == 34 && from.starts_with("MG") && from.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl TwilioConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let sid = &self.account_sid;
        if !(sid.len() == 34
            && sid.starts_with("AC")
            && sid.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            errors.push((
                "account_sid".into(),
                "must be an account SID: AC followed by 32 characters".into(),
            ));
        }
        if self.from.trim().is_empty() {
            errors.push((
                "from".into(),
                "must be a number, a whatsapp: address or a Messaging Service SID".into(),
            ));
        }
        if !crate::model::is_http_url(&self.api_base) {
            errors.push(("api_base".into(), "must be an http(s) URL".into()));
        }
        errors
    }
}

pub struct TwilioAdapter {
    account_sid: String,
    auth_token: Secret,
    /// Auth tokens replaced by a reload, each accepted (inbound only) until its time.
    retired: Vec<RetiredSecret>,
    from: String,
    api_base: String,
    http: reqwest::Client,
}

impl TwilioAdapter {
    pub fn new(config: &TwilioConfig, http: reqwest::Client, retired: &[RetiredSecret]) -> Self {
        Self {
            account_sid: config.account_sid.clone(),
            auth_token: config.auth_token.clone(),
            retired: retired.to_vec(),
            from: config.from.trim().to_owned(),
            api_base: config.api_base.trim_end_matches('/').to_owned(),
            http,
        }
    }

    /// The path of a Twilio-hosted media URL (ours or the real API's), which is fetched
    /// from `api_base` with the account's credentials.
    fn media_path(&self, url: &str) -> Option<String> {
        let url = reqwest::Url::parse(url).ok()?;
        [DEFAULT_API_BASE, self.api_base.as_str()]
            .iter()
            .filter_map(|base| reqwest::Url::parse(base).ok())
            .any(|base| base.origin() == url.origin())
            .then(|| media_resource_path(url.path()))?
    }
}

/// `path` as the one resource it names once normalised, if that is a media file of a
/// message: `/2010-04-01/Accounts/{AC…}/Messages/{MM…}/Media/{ME…}`. Anything else (the
/// message log, another resource, a path that climbs out with `..` in any spelling,
/// `%2e%2e` included) is no media.
fn media_resource_path(path: &str) -> Option<String> {
    // Normalised as the request would be: dot segments, percent-encoded or not, resolved.
    let url = reqwest::Url::parse("https://api.twilio.invalid")
        .ok()?
        .join(path.strip_prefix('/')?)
        .ok()?;
    let segments: Vec<&str> = url.path_segments()?.collect();
    let sid = |s: &str, prefix: &str| {
        s.len() > prefix.len()
            && s.starts_with(prefix)
            && s.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    let shaped = url.query().is_none()
        && matches!(
            segments[..],
            ["2010-04-01", "Accounts", account, "Messages", message, "Media", media]
                if sid(account, "AC") && sid(message, "") && sid(media, "ME")
        );
    shaped.then(|| url.path().to_owned())
}

// ---------------------------------------------------------------------------------------
// Signatures

#[async_trait]
impl ChannelAdapter for TwilioAdapter {
    fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError> {
        // Twilio signs every parameter it sent, known to us or not: all are taken as sent.
        let params: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&request.body).unwrap_or_default();
        let tokens = secrets_in_force(&self.auth_token, &self.retired, now).map(Secret::expose);
        verify_signature(
            tokens,
            request.header(SIGNATURE_HEADER),
            &request.url,
            &params,
        )
    }

    fn parse(&self, request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError> {
        match request.content_type().as_deref() {
            Some("application/x-www-form-urlencoded") => {
                self.parse_params(&Params::read(&request.body)?)
            }
            other => Err(ParseError::UnsupportedMediaType(
                other.unwrap_or("none").to_owned(),
            )),
        }
    }

    async fn send(&self, message: &Outbound) -> Result<Receipt, SendError> {
        let Plan { messages, notes } = plan(&message.parts);
        if messages.is_empty() {
            return Err(SendError::Permanent {
                reason: format!(
                    "nothing in this reply can be sent through Twilio: {}",
                    notes.join("; ")
                ),
            });
        }
        let (sender_param, sender, to) = addresses(
            &self.from,
            message.platform_thread_id.as_deref(),
            &message.to.value,
        );
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.api_base, self.account_sid
        );
        let mut first_sid = None;
        for outgoing in &messages {
            let mut form: Vec<(&str, &str)> = vec![("To", to), (sender_param, sender)];
            if let Some(body) = &outgoing.body {
                form.push(("Body", body));
            }
            if let Some(media) = &outgoing.media_url {
                form.push(("MediaUrl", media));
            }
            let response = self
                .http
                .post(&url)
                .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
                .form(&form)
                .send()
                .await
                .map_err(classify_transport)?;
            let status = response.status();
            let headers = response.headers().clone();
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() {
                return Err(classify(status, &headers, &text));
            }
            if first_sid.is_none() {
                first_sid = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.get("sid")?.as_str().map(str::to_owned))
                    .filter(|sid| !sid.is_empty());
            }
        }
        Ok(Receipt {
            platform_message_id: first_sid,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        })
    }

    /// Twilio-hosted media (inbound `MediaUrl`s) is fetched from `api_base` with Basic
    /// auth, following Twilio's redirect to its file store (the credentials are not sent
    /// on to another origin); any other URL is fetched as is, without them.
    async fn fetch_media(
        &self,
        media: &Media,
        web: &MediaClient,
    ) -> Result<FetchedMedia, FetchError> {
        let path = media
            .platform_ref
            .as_deref()
            .and_then(media_resource_path)
            .or_else(|| media.url.as_deref().and_then(|url| self.media_path(url)));
        if let Some(path) = path {
            let credentials = Credentials::Basic {
                user: &self.account_sid,
                password: self.auth_token.expose(),
            };
            return web
                .fetch_with(
                    &format!("{}{path}", self.api_base),
                    &[&self.api_base],
                    credentials,
                )
                .await;
        }
        match media.url.as_deref() {
            Some(url) => web.fetch(url, &[&self.api_base]).await,
            None => Err(FetchError::NoMedia),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::{
        ChannelAdapter, FetchError, InboundEvent, InboundMessage, Outbound, RawRequest,
        RetiredSecret, SendError,
    };

    use crate::model::{ConversationId, MessageId};
    use crate::model::{Identifier, Media, MediaPart, Part, TextPart};
    use crate::secret::Secret;
    use axum::http::{HeaderMap, HeaderValue};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use chrono::Utc;
    use proptest::prelude::*;
    use serde_json::json;

    const ACCOUNT: &str = "ACaaaabbbbccccddddeeeeffff00001111";
    pub(super) const TOKEN: &str = "twilio-auth-token";
    pub(super) const URL: &str = "https://bridge.example.com/hooks/sms";

    fn config(api_base: &str) -> TwilioConfig {
        TwilioConfig {
            account_sid: ACCOUNT.into(),
            auth_token: Secret::new(TOKEN),
            from: "+14155550100".into(),
            api_base: api_base.into(),
        }
    }

    pub(super) fn adapter_with(retired: &[RetiredSecret]) -> TwilioAdapter {
        TwilioAdapter::new(&config(DEFAULT_API_BASE), reqwest::Client::new(), retired)
    }

    pub(super) fn pairs(body: &str) -> Vec<(String, String)> {
        serde_urlencoded::from_str(body).unwrap()
    }

    pub(super) fn request(
        url: &str,
        body: &str,
        signature: Option<&str>,
        content_type: &str,
    ) -> RawRequest {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_str(content_type).unwrap());
        if let Some(signature) = signature {
            headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(signature).unwrap());
        }
        RawRequest::post(url, headers, body.to_owned())
    }

    pub(super) fn signed(body: &str) -> RawRequest {
        request(
            URL,
            body,
            Some(&sign(TOKEN, URL, &pairs(body))),
            "application/x-www-form-urlencoded",
        )
    }

    pub(super) fn parse(body: &str) -> Vec<InboundEvent> {
        let adapter = adapter_with(&[]);
        let request = signed(body);
        adapter.verify(&request, Utc::now()).unwrap();
        adapter.parse(&request).unwrap()
    }

    pub(super) fn message(body: &str) -> InboundMessage {
        match parse(body).pop() {
            Some(InboundEvent::Message(m)) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    pub(super) fn media(part: &Part) -> &MediaPart {
        part.media()
            .unwrap_or_else(|| panic!("expected media, got {other:?}", other = part))
    }

    pub(super) fn media_part_with(url: Option<&str>, caption: Option<&str>) -> MediaPart {
        MediaPart {
            media: Media {
                url: url.map(str::to_owned),
                ..Media::default()
            },
            caption: caption.map(str::to_owned),
        }
    }

    pub(super) fn text(t: &str) -> Part {
        Part::Text(TextPart { text: t.into() })
    }

    #[test]
    fn config_rules() {
        assert!(config(DEFAULT_API_BASE).validate().is_empty());
        let bad = TwilioConfig {
            account_sid: "SK123".into(),
            from: " ".into(),
            api_base: "api.twilio.com".into(),
            ..config(DEFAULT_API_BASE)
        };
        let keys: Vec<String> = bad.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["account_sid", "from", "api_base"]);
    }

    fn outbound(parts: Vec<Part>) -> Outbound {
        Outbound {
            message_id: MessageId::new(),
            conversation_id: ConversationId::new(),
            platform_thread_id: Some("+14155550100:+14155550123".into()),
            to: Identifier {
                kind: IDENTIFIER_TYPE.into(),
                value: "+14155550123".into(),
            },
            reply_to: None,
            parts,
        }
    }

    #[tokio::test]
    async fn send_failures_are_classified_from_status_and_twilio_code() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let error = |status: u16, code: u64, message: &str| {
            ResponseTemplate::new(status).set_body_json(json!({
                "code": code, "message": message,
                "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status
            }))
        };
        let cases = [
            (
                error(429, 20429, "Too Many Requests").insert_header("retry-after", "4"),
                "rate limited",
            ),
            (error(400, 20429, "Too Many Requests"), "rate limited"),
            (ResponseTemplate::new(503), "retryable"),
            (error(500, 20500, "Internal Server Error"), "retryable"),
            (
                error(
                    400,
                    21211,
                    "The 'To' number +1555 is not a valid phone number.",
                ),
                "permanent",
            ),
            (error(401, 20003, "Authenticate"), "permanent"),
            (
                ResponseTemplate::new(201)
                    .set_body_json(json!({"sid": "SMabc", "status": "queued"})),
                "sent",
            ),
        ];
        for (response, expected) in cases {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path(format!(
                    "/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
                )))
                .respond_with(response)
                .expect(1)
                .mount(&server)
                .await;
            let adapter = TwilioAdapter::new(&config(&server.uri()), reqwest::Client::new(), &[]);
            let result = adapter.send(&outbound(vec![text("hi")])).await;
            let got = match &result {
                Ok(_) => "sent",
                Err(SendError::RateLimited { .. }) => "rate limited",
                Err(SendError::Retryable { .. }) => "retryable",
                Err(SendError::Permanent { .. }) => "permanent",
            };
            assert_eq!(got, expected, "{result:?}");
            match result {
                Ok(receipt) => assert_eq!(receipt.platform_message_id.as_deref(), Some("SMabc")),
                Err(SendError::RateLimited {
                    retry_after,
                    reason,
                }) => {
                    assert!(reason.contains("20429"), "{reason}");
                    if retry_after.is_some() {
                        assert_eq!(retry_after, Some(std::time::Duration::from_secs(4)));
                    }
                }
                Err(SendError::Permanent { reason }) => {
                    assert!(reason.starts_with("Twilio error 2"), "{reason}");
                    assert!(!reason.contains(TOKEN));
                }
                Err(_) => {}
            }
        }
    }

    #[tokio::test]
    async fn a_reply_is_created_per_message_with_basic_auth_from_the_number_written_to() {
        use wiremock::matchers::{header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        let basic = format!("Basic {}", BASE64.encode(format!("{ACCOUNT}:{TOKEN}")));
        Mock::given(method("POST"))
            .and(path(format!(
                "/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
            )))
            .and(header("authorization", basic.as_str()))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(json!({"sid": "SMfirst", "status": "queued"})),
            )
            .expect(2)
            .mount(&server)
            .await;
        let adapter = TwilioAdapter::new(&config(&server.uri()), reqwest::Client::new(), &[]);
        let receipt = adapter
            .send(&outbound(vec![
                text("See attached"),
                Part::Image(media_part_with(Some("https://x.example/a.jpg"), None)),
                text("Anything else?"),
            ]))
            .await
            .unwrap();
        assert_eq!(receipt.platform_message_id.as_deref(), Some("SMfirst"));
        let requests = server.received_requests().await.unwrap();
        let forms: Vec<Vec<(String, String)>> = requests
            .iter()
            .map(|r| serde_urlencoded::from_bytes(&r.body).unwrap())
            .collect();
        let form = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            forms[0],
            form(&[
                ("To", "+14155550123"),
                ("From", "+14155550100"),
                ("Body", "See attached"),
                ("MediaUrl", "https://x.example/a.jpg"),
            ])
        );
        assert_eq!(
            forms[1],
            form(&[
                ("To", "+14155550123"),
                ("From", "+14155550100"),
                ("Body", "Anything else?"),
            ])
        );
    }

    #[tokio::test]
    async fn twilio_media_is_fetched_from_api_base_with_basic_auth_following_redirects() {
        use wiremock::matchers::{header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        let media_path = format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media/ME1");
        let basic = format!("Basic {}", BASE64.encode(format!("{ACCOUNT}:{TOKEN}")));
        Mock::given(method("GET"))
            .and(path(media_path.as_str()))
            .and(header("authorization", basic.as_str()))
            .respond_with(ResponseTemplate::new(307).insert_header(
                "location",
                format!("{}/store/ME1.jpg", server.uri()).as_str(),
            ))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/store/ME1.jpg"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(b"jpeg".to_vec(), "image/jpeg"))
            .expect(1)
            .mount(&server)
            .await;
        let adapter = TwilioAdapter::new(&config(&server.uri()), reqwest::Client::new(), &[]);
        // As stored from a webhook: the real API's URL; fetched from api_base.
        let inbound = Media {
            platform_ref: Some(media_path.clone()),
            url: Some(format!("{DEFAULT_API_BASE}{media_path}")),
            ..Media::default()
        };
        let fetched = adapter
            .fetch_media(&inbound, &test_media_client())
            .await
            .ok()
            .unwrap();
        assert_eq!(fetched.response.bytes().await.unwrap().as_ref(), b"jpeg");
        let elsewhere = Media {
            platform_ref: Some("/etc/passwd".into()),
            ..Media::default()
        };
        assert_eq!(
            adapter
                .fetch_media(&elsewhere, &test_media_client())
                .await
                .err(),
            Some(FetchError::NoMedia)
        );
    }

    #[test]
    fn only_a_message_s_media_file_is_fetched_with_the_account_s_credentials() {
        let media = format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media/ME1");
        assert_eq!(media_resource_path(&media), Some(media.clone()));
        assert_eq!(
            media_resource_path(&format!(
                "/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media/x/%2e%2e/ME1"
            )),
            Some(media.clone()),
            "judged once normalised"
        );
        for path in [
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json"),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/%2e%2e/Messages.json"),
            format!(
                "/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media/%2E%2e/%2e%2E/%2e./Messages.json"
            ),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media/ME1/../../../Messages.json"),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media/ME1?PageSize=1000"),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media/ME1.json"),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media"),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/CA1/Recordings/RE1"),
            format!("//evil.example/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media/ME1"),
            "/etc/passwd".to_owned(),
            String::new(),
        ] {
            assert_eq!(media_resource_path(&path), None, "{path}");
        }
        let adapter = adapter_with(&[]);
        assert_eq!(
            adapter.media_path(&format!("https://api.twilio.com.evil.example{media}")),
            None
        );
        assert_eq!(
            adapter.media_path(&format!("https://api.twilio.com{media}")),
            Some(media)
        );
    }

    fn arbitrary_params() -> impl Strategy<Value = Vec<(String, String)>> {
        let name = prop_oneof![
            Just("MessageSid".to_owned()),
            Just("From".to_owned()),
            Just("To".to_owned()),
            Just("Body".to_owned()),
            Just("NumMedia".to_owned()),
            Just("MediaUrl0".to_owned()),
            Just("MediaUrl1".to_owned()),
            Just("MediaContentType0".to_owned()),
            Just("Latitude".to_owned()),
            Just("Longitude".to_owned()),
            Just("MessageStatus".to_owned()),
            Just("SmsStatus".to_owned()),
            Just("ErrorCode".to_owned()),
            Just("OriginalRepliedMessageSid".to_owned()),
            "[A-Za-z0-9]{1,8}",
        ];
        let value = prop_oneof![
            Just("received".to_owned()),
            Just("delivered".to_owned()),
            Just("failed".to_owned()),
            Just("whatsapp:+1".to_owned()),
            Just("https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME".to_owned()),
            Just("image/webp".to_owned()),
            "-?[0-9]{1,4}(\\.[0-9]{1,3})?",
            ".{0,12}",
        ];
        prop::collection::vec((name, value), 0..12)
    }

    /// One adapter for every generated case (building an HTTP client is slow).
    static SHARED: std::sync::LazyLock<TwilioAdapter> =
        std::sync::LazyLock::new(|| adapter_with(&[]));

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_parser(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let adapter = &*SHARED;
            let request = request(URL, "", None, "application/x-www-form-urlencoded");
            let request = RawRequest { body: body.into(), ..request };
            let _ = adapter.verify(&request, Utc::now());
            let _ = adapter.parse(&request);
        }

        #[test]
        fn arbitrary_parameters_never_panic_the_parser(params in arbitrary_params()) {
            let adapter = &*SHARED;
            let body = serde_urlencoded::to_string(&params).unwrap();
            let _ = adapter.parse(&signed(&body));
        }

        #[test]
        fn arbitrary_threads_never_panic_the_split(thread in ".{0,20}", contact in ".{0,8}") {
            let _ = split_thread(&thread, &contact);
        }
    }

    /// Media fetches in these tests go to wiremock on loopback, which a channel allows
    /// only with media_allow_private.
    fn test_media_client() -> crate::adapters::fetch::MediaClient {
        crate::adapters::fetch::MediaClient::new(std::time::Duration::from_secs(5), true)
    }
}
