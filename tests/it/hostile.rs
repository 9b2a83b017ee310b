//! Hostile input, as property tests (the CI counterpart of the cargo-fuzz targets in
//! fuzz/): every channel's signature check and parser, given any body and any signature
//! header, never panics, and every refusal is a 4xx, never a 5xx. Then the HTTP surface:
//! a NUL in any API parameter is a 4xx or is taken, never a 5xx, and a NUL in a webhook's
//! or an API body's text is stored as U+FFFD on both stores; channel names made up by
//! unauthenticated callers never become metric series.

use std::sync::{Arc, LazyLock};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use channel_bridge::adapters::fetch::MediaClient;
use channel_bridge::adapters::signature::WebhookKey;
use channel_bridge::adapters::{ChannelAdapter, RawRequest};
use channel_bridge::error::ApiError;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::harness::{ADMIN_TOKEN, TestApp, text_event};

const GENERIC_SECRET: &str = "whsec_aG9zdGlsZS1pbnB1dC1zZWNyZXQta2V5IQ==";

const CONFIG: &str = r#"
[channels.generic]
kind = "generic"
secret = "whsec_aG9zdGlsZS1pbnB1dC1zZWNyZXQta2V5IQ=="
outbound_url = "http://127.0.0.1:9/out"
[channels.telegram]
kind = "telegram"
bot_token = "123:hostile"
secret_token = "hostile-secret-token"
api_base = "http://127.0.0.1:9"
[channels.whatsapp]
kind = "whatsapp"
access_token = "hostile-access"
app_secret = "hostile-app-secret"
verify_token = "hostile-verify"
phone_number_id = "227118690421377"
api_base = "http://127.0.0.1:9/v1"
[channels.messenger]
kind = "messenger"
page_access_token = "hostile-page"
app_secret = "hostile-app-secret"
verify_token = "hostile-verify"
api_base = "http://127.0.0.1:9/v1"
[channels.line]
kind = "line"
channel_access_token = "hostile-line-token"
channel_secret = "hostile-line-secret"
api_base = "http://127.0.0.1:9"
api_data_base = "http://127.0.0.1:9"
[channels.twilio]
kind = "twilio"
account_sid = "ACaaaabbbbccccddddeeeeffff00001111"
auth_token = "hostile-twilio-token"
from = "+14155550100"
api_base = "http://127.0.0.1:9"
[channels.viber]
kind = "viber"
auth_token = "hostile-viber-token"
api_base = "http://127.0.0.1:9"
[channels.slack]
kind = "slack"
bot_token = "xoxb-hostile"
signing_secret = "hostile-slack-secret"
api_base = "http://127.0.0.1:9"
[channels.instagram]
kind = "instagram"
access_token = "hostile-instagram-token"
app_secret = "hostile-instagram-secret"
verify_token = "hostile-verify"
account_id = "17841405822304914"
api_base = "http://127.0.0.1:9/v1"
[channels.postmark]
kind = "email"
postmark = { token = "hostile-postmark-token-01" }
[channels.mailgun]
kind = "email"
mailgun = { signing_key = "hostile-mailgun-key" }
[smtp]
url = "smtp://127.0.0.1:9"
from = "hostile@example.com"
"#;

/// (channel, content type, signature header) for every adapter kind.
const CHANNELS: &[(&str, &str, &str)] = &[
    ("generic", "application/json", "webhook-signature"),
    (
        "telegram",
        "application/json",
        "x-telegram-bot-api-secret-token",
    ),
    ("whatsapp", "application/json", "x-hub-signature-256"),
    ("messenger", "application/json", "x-hub-signature-256"),
    ("line", "application/json", "x-line-signature"),
    (
        "twilio",
        "application/x-www-form-urlencoded",
        "x-twilio-signature",
    ),
    ("viber", "application/json", "x-viber-content-signature"),
    ("slack", "application/json", "x-slack-signature"),
    ("instagram", "application/json", "x-hub-signature-256"),
    ("postmark", "application/json", "x-signature"),
    (
        "mailgun",
        "application/x-www-form-urlencoded",
        "x-signature",
    ),
];

static ADAPTERS: LazyLock<Vec<(&'static str, Arc<dyn ChannelAdapter>)>> = LazyLock::new(|| {
    let config = channel_bridge::config::load_str(CONFIG, []).expect("valid config");
    let http = reqwest::Client::new();
    let media = MediaClient::new(std::time::Duration::from_secs(1), false);
    CHANNELS
        .iter()
        .map(|(id, _, _)| {
            (
                *id,
                config
                    .channel(id)
                    .unwrap()
                    .adapter
                    .build(http.clone(), &[], None, &media),
            )
        })
        .collect()
});

/// Verifies and parses as the ingress does; a refusal must be a 4xx.
fn check(channel: usize, headers: &[(&str, String)], body: &[u8]) -> Result<(), TestCaseError> {
    let (id, content_type, _) = CHANNELS[channel];
    let mut map = HeaderMap::new();
    map.insert("content-type", HeaderValue::from_static(content_type));
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.insert(name, value);
        }
    }
    let request = RawRequest::post(
        &format!("https://bridge.example.test/hooks/{id}"),
        map,
        body.to_vec(),
    );
    let adapter = &ADAPTERS[channel].1;
    if let Err(e) = adapter.verify(&request, chrono::Utc::now()) {
        let status = ApiError::from(e).status;
        prop_assert!(status.is_client_error(), "{id}: verify answered {status}");
    }
    if let Err(e) = adapter.parse(&request) {
        let status = ApiError::from(e).status;
        prop_assert!(status.is_client_error(), "{id}: parse answered {status}");
    }
    Ok(())
}

/// JSON built from the field names and values the platforms use, nested, so generated
/// bodies get past "not JSON" and into the parsers.
fn platform_json() -> impl Strategy<Value = Value> {
    let word = prop_oneof![
        Just("message"),
        Just("messages"),
        Just("type"),
        Just("id"),
        Just("text"),
        Just("from"),
        Just("parts"),
        Just("media"),
        Just("url"),
        Just("events"),
        Just("entry"),
        Just("changes"),
        Just("value"),
        Just("messaging"),
        Just("sender"),
        Just("chat"),
        Just("update_id"),
        Just("status"),
        Just("statuses"),
        Just("event"),
        Just("user"),
        Just("source"),
        Just("replyToken"),
        Just("timestamp"),
        Just("image"),
        Just("location"),
        Just("contacts"),
        Just("reply_to"),
        Just("thread_id"),
        Just("edited_message"),
        Just("object"),
        Just("field"),
        Just("metadata"),
        Just("latitude"),
        Just("longitude"),
        Just("mid"),
        Just("attachments"),
        Just("payload"),
        Just("sticker"),
        Just("contact"),
        Just("file"),
        Just("audio"),
        Just("event_callback"),
        Just("subtype"),
        Just("ts"),
        Just("thread_ts"),
        Just("channel"),
        Just("files"),
        Just("url_private"),
        Just("story"),
        Just("read"),
        Just("message_edit"),
        Just("is_deleted"),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        word.clone().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 96, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((word.clone(), inner), 0..8).prop_map(|pairs| {
                Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_with_any_signature_are_refused_with_a_4xx_or_taken(
        channel in 0..CHANNELS.len(),
        signature in "\\PC{0,80}",
        body in prop::collection::vec(any::<u8>(), 0..1024),
    ) {
        let header = CHANNELS[channel].2;
        check(channel, &[(header, signature)], &body)?;
    }

    #[test]
    fn any_platform_shaped_json_is_refused_with_a_4xx_or_taken(
        channel in 0..CHANNELS.len(),
        body in platform_json(),
    ) {
        check(channel, &[], body.to_string().as_bytes())?;
    }

    #[test]
    fn a_correctly_signed_generic_body_always_verifies_and_parses_or_is_a_4xx(
        id in "[ -~]{1,40}",
        body in platform_json(),
    ) {
        let body = body.to_string();
        let key = WebhookKey::parse(GENERIC_SECRET).unwrap();
        let ts = chrono::Utc::now().timestamp();
        let headers = [
            ("webhook-id", id.clone()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", key.sign(&id, ts, body.as_bytes())),
        ];
        check(0, &headers, body.as_bytes())?;
        let mut map = HeaderMap::new();
        for (name, value) in &headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        let request = RawRequest::post("https://bridge.example.test/hooks/generic", map, body.into_bytes());
        prop_assert!(ADAPTERS[0].1.verify(&request, chrono::Utc::now()).is_ok());
    }

    #[test]
    fn a_correctly_signed_slack_event_always_verifies_and_parses_or_is_a_4xx(
        event in platform_json(),
    ) {
        use hmac::{Hmac, Mac};
        let body = json!({"type": "event_callback", "api_app_id": "A1", "event": event}).to_string();
        let ts = chrono::Utc::now().timestamp();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"hostile-slack-secret").unwrap();
        mac.update(format!("v0:{ts}:{body}").as_bytes());
        let signature = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
        let slack = CHANNELS.iter().position(|c| c.0 == "slack").unwrap();
        let headers = [("x-slack-request-timestamp", ts.to_string()), ("x-slack-signature", signature)];
        check(slack, &headers, body.as_bytes())?;
        let mut map = HeaderMap::new();
        for (name, value) in &headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        let request = RawRequest::post("https://bridge.example.test/hooks/slack", map, body.into_bytes());
        prop_assert!(ADAPTERS[slack].1.verify(&request, chrono::Utc::now()).is_ok());
    }

    #[test]
    fn a_correctly_signed_instagram_webhook_always_verifies_and_parses_or_is_a_4xx(
        event in platform_json(),
    ) {
        use channel_bridge::adapters::meta;
        let body = json!({"object": "instagram", "entry": [{"id": "17841405822304914",
            "messaging": [event]}]}).to_string();
        let signature = meta::sign(b"hostile-instagram-secret", body.as_bytes());
        let instagram = CHANNELS.iter().position(|c| c.0 == "instagram").unwrap();
        let headers = [("x-hub-signature-256", signature)];
        check(instagram, &headers, body.as_bytes())?;
        let mut map = HeaderMap::new();
        map.insert("x-hub-signature-256", HeaderValue::from_str(&headers[0].1).unwrap());
        let request = RawRequest::post("https://bridge.example.test/hooks/instagram", map, body.into_bytes());
        prop_assert!(ADAPTERS[instagram].1.verify(&request, chrono::Utc::now()).is_ok());
    }

    #[test]
    fn a_stale_or_future_timestamp_is_refused_even_with_a_correct_signature(
        skew in prop_oneof![310i64..1_000_000_000, -1_000_000_000i64..-310],
    ) {
        let key = WebhookKey::parse(GENERIC_SECRET).unwrap();
        let ts = chrono::Utc::now().timestamp() + skew;
        let body = br#"{"type":"message","id":"m","from":{"id":"u"},"parts":[{"type":"text","text":"hi"}]}"#;
        let mut map = HeaderMap::new();
        map.insert("webhook-id", HeaderValue::from_static("evt_1"));
        map.insert("webhook-timestamp", HeaderValue::from_str(&ts.to_string()).unwrap());
        map.insert("webhook-signature", HeaderValue::from_str(&key.sign("evt_1", ts, body)).unwrap());
        let request = RawRequest::post("https://bridge.example.test/hooks/generic", map, body.to_vec());
        let refused = ADAPTERS[0].1.verify(&request, chrono::Utc::now()).unwrap_err();
        prop_assert_eq!(refused.code(), "invalid_timestamp");
    }
}

/// Media fetches driven from outside: what a rep writes in a reply, and where a media URL
/// redirects to. Through the real HTTP surface, every channel kind at once.
mod media_fetches {
    use serde_json::{Value, json};
    use wiremock::matchers::{method, path, path_regex};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use crate::harness::{Options, REP_TOKEN, TestApp, text_event};

    const ACCOUNT: &str = "ACaaaabbbbccccddddeeeeffff00001111";
    const TWILIO_TOKEN: &str = "hostile-twilio-token";
    const TG_SECRET: &str = "hostile-secret-token";
    const META_SECRET: &str = "hostile-app-secret";
    const LINE_SECRET: &str = "hostile-line-secret";
    const VIBER_TOKEN: &str = "hostile-viber-token";

    /// Every platform kind, each with its API on `platform`, which answers any read.
    async fn every_channel_kind(platform: &MockServer) -> TestApp {
        let p = platform.uri();
        let extra = format!(
            r#"
[channels.sms]
kind = "twilio"
account_sid = "{ACCOUNT}"
auth_token = "{TWILIO_TOKEN}"
from = "+14155550100"
api_base = "{p}"
[channels.tg]
kind = "telegram"
bot_token = "123:hostile"
secret_token = "{TG_SECRET}"
api_base = "{p}"
[channels.wa]
kind = "whatsapp"
access_token = "hostile-wa-token"
app_secret = "{META_SECRET}"
verify_token = "hostile-verify"
phone_number_id = "227118690421377"
api_base = "{p}/v26.0"
[channels.fb]
kind = "messenger"
page_access_token = "hostile-page-token"
app_secret = "{META_SECRET}"
verify_token = "hostile-verify"
api_base = "{p}/v26.0"
[channels.line]
kind = "line"
channel_access_token = "hostile-line-token"
channel_secret = "{LINE_SECRET}"
api_base = "{p}"
api_data_base = "{p}/data"
[channels.vb]
kind = "viber"
auth_token = "{VIBER_TOKEN}"
api_base = "{p}"
"#
        );
        TestApp::spawn_with(Options {
            extra,
            ..Options::default()
        })
        .await
    }

    async fn post_hook(app: &TestApp, channel: &str, body: &str, headers: &[(&str, String)]) {
        let content_type = if channel == "sms" {
            "application/x-www-form-urlencoded"
        } else {
            "application/json"
        };
        let mut request = app
            .http
            .post(app.url(&format!("/hooks/{channel}")))
            .header("content-type", content_type)
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{channel}");
    }

    /// One inbound message on every channel, signed as each platform signs.
    async fn a_conversation_on_every_channel(app: &TestApp) {
        use crate::support::fixtures::fixture;
        use channel_bridge::adapters::{line, meta, twilio};
        use hmac::Mac;
        assert_eq!(
            app.post_webhook("demo", &text_event("m1", "ana", "hi"))
                .await
                .status(),
            200
        );
        let form = fixture!("twilio/sms_text.form");
        let params: Vec<(String, String)> = serde_urlencoded::from_str(form).unwrap();
        let signature = twilio::sign(
            TWILIO_TOKEN,
            "https://bridge.example.test/hooks/sms",
            &params,
        );
        post_hook(app, "sms", form, &[("x-twilio-signature", signature)]).await;
        let update = fixture!("telegram/text.json");
        post_hook(
            app,
            "tg",
            update,
            &[("x-telegram-bot-api-secret-token", TG_SECRET.into())],
        )
        .await;
        for (channel, body) in [
            ("wa", fixture!("whatsapp/text_reply.json")),
            ("fb", fixture!("messenger/text_reply.json")),
        ] {
            let signature = meta::sign(META_SECRET.as_bytes(), body.as_bytes());
            post_hook(app, channel, body, &[("x-hub-signature-256", signature)]).await;
        }
        let body = fixture!("line/text.json");
        let signature = line::sign(LINE_SECRET, body.as_bytes());
        post_hook(app, "line", body, &[("x-line-signature", signature)]).await;
        let body = fixture!("viber/text.json");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(VIBER_TOKEN.as_bytes()).unwrap();
        mac.update(body.as_bytes());
        let signature = hex::encode(mac.finalize().into_bytes());
        post_hook(app, "vb", body, &[("x-viber-content-signature", signature)]).await;
    }

    async fn conversation_on(app: &TestApp, channel: &str) -> String {
        app.conversations()
            .await
            .into_iter()
            .find(|c| c["channel_id"] == channel)
            .unwrap_or_else(|| panic!("a conversation on {channel}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn by_ref(platform_ref: &str) -> Value {
        json!({"type": "file", "media": {"platform_ref": platform_ref}})
    }

    fn by_url(url: String) -> Value {
        json!({"type": "file", "media": {"url": url}})
    }

    #[tokio::test]
    async fn no_media_a_rep_writes_is_read_from_a_platform_api_or_with_its_credentials() {
        let platform = MockServer::start().await;
        // Whatever is asked, the platform answers: a leak would be a 200.
        Mock::given(path_regex("/getFile$"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"ok": true, "result": {"file_id": "f", "file_path": "documents/f.pdf"}}),
            ))
            .mount(&platform)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"url": format!("{}/cdn/f", platform.uri()), "data": "private"}),
            ))
            .mount(&platform)
            .await;
        let app = every_channel_kind(&platform).await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(b"internal".to_vec(), "text/plain"),
            )
            .mount(&app.receiver)
            .await;
        a_conversation_on_every_channel(&app).await;
        let p = platform.uri();
        let log = format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json");
        let replies: Vec<(&str, Vec<Value>)> = vec![
            (
                "sms",
                vec![
                    by_ref(&log),
                    by_ref(&format!(
                        "/2010-04-01/Accounts/{ACCOUNT}/Messages/%2e%2e/Messages.json"
                    )),
                    by_ref(&format!(
                        "/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media/ME1/..%2f..%2f..%2fMessages.json"
                    )),
                    by_url(format!("{p}{log}")),
                    by_url(format!(
                        "{p}/2010-04-01/Accounts/{ACCOUNT}/Messages/x/%2E%2E/Messages.json"
                    )),
                ],
            ),
            (
                "tg",
                vec![
                    by_ref("BQACAgIAAxkBAAIBGmYfile"),
                    by_url(format!("{p}/bot123:hostile/getUpdates")),
                ],
            ),
            (
                "wa",
                vec![
                    by_ref("1234567890"),
                    by_ref("me"),
                    by_url(format!("{p}/v26.0/227118690421377/phone_numbers")),
                ],
            ),
            (
                "fb",
                vec![
                    by_ref("1857777774821032"),
                    by_url(format!("{p}/v26.0/me/conversations")),
                ],
            ),
            (
                "line",
                vec![by_ref("325710"), by_url(format!("{p}/v2/bot/info"))],
            ),
            ("vb", vec![by_url(format!("{p}/pa/get_account_info"))]),
            (
                "demo",
                vec![by_url(format!("{}/internal/admin", app.receiver.uri()))],
            ),
        ];
        for (channel, parts) in replies {
            let conversation = conversation_on(&app, channel).await;
            let (status, reply) = app
                .api(
                    reqwest::Method::POST,
                    &format!("/api/v1/conversations/{conversation}/messages"),
                    Some(json!({ "parts": parts })),
                    Some(REP_TOKEN),
                )
                .await;
            assert_eq!(status, 202, "{channel}: {reply}");
            let id = reply["id"].as_str().unwrap();
            for (n, part) in parts.iter().enumerate() {
                let (status, body) = app
                    .api(
                        reqwest::Method::GET,
                        &format!("/api/v1/messages/{id}/parts/{n}/media"),
                        None,
                        Some(REP_TOKEN),
                    )
                    .await;
                let code = body["error"]["code"].as_str();
                assert!(
                    matches!(
                        (status, code),
                        (403, Some("media_refused")) | (404, Some("media_unavailable"))
                    ),
                    "{channel} {part}: {status} {body}"
                );
            }
        }
        for (who, server) in [
            ("the platform", &platform),
            ("the in-house app", &app.receiver),
        ] {
            let reads: Vec<String> = server
                .received_requests()
                .await
                .unwrap()
                .into_iter()
                .filter(|r| {
                    r.method == wiremock::http::Method::GET || r.url.path().ends_with("/getFile")
                })
                .map(|r| format!("{} {}", r.method, r.url.path()))
                .collect();
            assert!(reads.is_empty(), "{who} was read for a rep: {reads:?}");
        }
    }

    #[tokio::test]
    async fn every_redirect_hop_of_a_media_fetch_passes_the_address_policy_in_any_spelling() {
        let internal = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(b"internal".to_vec(), "text/plain"),
            )
            .mount(&internal)
            .await;
        let app = TestApp::spawn().await;
        let port = internal.address().port();
        let origin = app.receiver.uri();
        let inside = [
            format!("http://127.0.0.1:{port}/x"),
            format!("http://localhost:{port}/x"),
            format!("http://127.1:{port}/x"),
            format!("http://2130706433:{port}/x"),
            format!("http://0x7f000001:{port}/x"),
            format!("http://0177.0.0.1:{port}/x"),
            format!("http://0.0.0.0:{port}/x"),
            format!("http://[::1]:{port}/x"),
            format!("http://[::ffff:127.0.0.1]:{port}/x"),
            format!("http://[::ffff:7f00:1]:{port}/x"),
            format!("//127.0.0.1:{port}/x"),
            format!("HTTP://LOCALHOST:{port}/x"),
            "http://10.0.0.1/x".into(),
            "http://100.64.0.1/x".into(),
            "http://169.254.169.254/latest/meta-data/".into(),
            "http://[fd00:ec2::254]/latest/meta-data/".into(),
            "file:///etc/passwd".into(),
            app.url("/metrics"),
        ];
        for (i, target) in inside.iter().enumerate() {
            Mock::given(method("GET"))
                .and(path(format!("/hop/{i}")))
                .respond_with(ResponseTemplate::new(302).insert_header("location", target.as_str()))
                .mount(&app.receiver)
                .await;
        }
        // Two hops: within the configured origin first, then out.
        Mock::given(method("GET"))
            .and(path("/hop/twice"))
            .respond_with(ResponseTemplate::new(307).insert_header("location", "/hop/0"))
            .mount(&app.receiver)
            .await;
        // A redirect loop within the origin ends at the hop limit.
        Mock::given(method("GET"))
            .and(path("/hop/loop"))
            .respond_with(ResponseTemplate::new(301).insert_header("location", "/hop/loop"))
            .mount(&app.receiver)
            .await;
        let mut parts: Vec<Value> = (0..inside.len())
            .map(|i| by_url(format!("{origin}/hop/{i}")))
            .collect();
        parts.push(by_url(format!("{origin}/hop/twice")));
        parts.push(by_url(format!("{origin}/hop/loop")));
        let event = json!({"type": "message", "id": "m1", "from": {"id": "ana"}, "parts": parts});
        assert_eq!(app.post_webhook("demo", &event).await.status(), 200);
        let conversation = app.only_conversation().await;
        let message = app.messages(conversation["id"].as_str().unwrap()).await[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for (n, part) in parts.iter().enumerate() {
            let (status, body) = app
                .api(
                    reqwest::Method::GET,
                    &format!("/api/v1/messages/{message}/parts/{n}/media"),
                    None,
                    Some(REP_TOKEN),
                )
                .await;
            let target = inside.get(n).map_or("", String::as_str);
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (403, Some("media_refused")),
                "{part} -> {target}: {body}"
            );
        }
        assert!(
            internal.received_requests().await.unwrap().is_empty(),
            "a redirect reached the internal server"
        );
    }
}

/// Anyone can call `/hooks/<anything>`. Each label value is a series kept for the life of
/// the process, so a made-up name must never become one: unknown channels count under
/// one label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_to_made_up_channels_add_no_metric_series() {
    let app = TestApp::spawn().await;
    let made_up = format!("made-up-{}", ulid::Ulid::new()).to_lowercase();
    for n in 0..50 {
        let response = app
            .post_webhook(&format!("{made_up}-{n}"), &text_event("m", "u", "hi"))
            .await;
        assert_eq!(response.status(), 404);
    }
    // A rejection on a configured channel keeps its own label.
    let response = app
        .post_signed("demo", b"{".to_vec(), "application/json", 0)
        .await;
    assert_eq!(response.status(), 400);

    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains(&made_up),
        "a made-up channel name became a series"
    );
    let series = |labels: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "channel_bridge_webhooks_rejected_total{{{labels}}}"
                ))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Other tests in this process count here too: at least this test's 50.
    assert!(
        series(r#"channel="(unknown)",reason="unknown_channel""#) >= 50,
        "{metrics}"
    );
    assert!(
        series(r#"channel="demo",reason="malformed_json""#) >= 1,
        "{metrics}"
    );
}

/// A NUL character reaches the API in a query or path parameter (`q=%00`): PostgreSQL
/// refuses it in text and FTS5 reads it as the end of the query. Every parameter of every
/// GET operation in the OpenAPI document (so a new one is covered the day it is added)
/// gets one, on a desk with a conversation in it: the answer is a 4xx or a 200, never a
/// 5xx, which would log an ERROR and page someone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_any_api_parameter_is_refused_or_taken_never_a_5xx() {
    let app = TestApp::spawn().await;
    let event = text_event("nul-1", "user-1", "hello world");
    assert_eq!(app.post_webhook("demo", &event).await.status(), 200);
    let conversation = app.only_conversation().await;
    let ids = [
        (
            "/api/v1/conversations/",
            conversation["id"].as_str().unwrap(),
        ),
        (
            "/api/v1/tickets/",
            conversation["ticket_id"].as_str().unwrap(),
        ),
        (
            "/api/v1/contacts/",
            conversation["contact"]["id"].as_str().unwrap(),
        ),
    ];
    let concrete = |template: &str| {
        let id = ids
            .iter()
            .find(|(prefix, _)| template.starts_with(prefix))
            .map_or("alice", |(_, id)| id);
        template.replace("{id}", id).replace("{n}", "0")
    };

    let doc = app.get("/api/openapi.json").await;
    let mut probes = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        let Some(operation) = item.get("get").filter(|_| template.starts_with("/api/v1/")) else {
            continue;
        };
        let parameters = operation["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for parameter in parameters {
            let name = parameter["name"].as_str().unwrap();
            let url = match parameter["in"].as_str() {
                Some("query") => format!("{}?{name}=a%00b", concrete(template)),
                Some("path") => template.replace(&format!("{{{name}}}"), "a%00b"),
                _ => continue,
            };
            let url = concrete(&url);
            let response = app
                .http
                .get(app.url(&url))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            let status = response.status();
            probes += 1;
            // Event streams answer with their headers and stay open: the status is all.
            let body = if status.is_success() {
                String::new()
            } else {
                response.text().await.unwrap_or_default()
            };
            assert!(status.as_u16() < 500, "GET {url}: {status} {body}");
            if status.is_client_error() {
                assert!(body.contains(r#""error":{"code":"#), "GET {url}: {body}");
            }
        }
    }
    assert!(probes > 20, "only {probes} parameters were probed");
    // The search itself, as a rep types it, with a NUL inside a word.
    let (status, body) = app
        .api(
            reqwest::Method::GET,
            "/api/v1/conversations?q=hello%00wor",
            None,
            Some(ADMIN_TOKEN),
        )
        .await;
    assert!(status == 200 || status == 422, "{status} {body}");
}

/// A NUL in text a platform sends (JSON's `\u0000`) is stored, as U+FFFD, on both stores:
/// PostgreSQL text cannot hold a NUL, and a webhook refused with a 4xx is lost for good (a
/// platform takes a 4xx as final). The message id, the sender and the text all get the
/// rule, so a redelivery is still known; a rep's reply gets it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_webhook_or_a_reply_is_stored_as_the_replacement_character() {
    let app = TestApp::spawn().await;
    let mut event = text_event("nul\u{0}1", "user\u{0}1", "hello\u{0}world");
    event["from"]["name"] = json!("A\u{0}na");
    let response = app.post_webhook("demo", &event).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stored"], 1, "{body}");
    let again: Value = app.post_webhook("demo", &event).await.json().await.unwrap();
    assert_eq!(
        (&again["stored"], &again["duplicates"]),
        (&json!(0), &json!(1))
    );

    let conversation = app.only_conversation().await;
    let contact = &conversation["contact"];
    assert_eq!(contact["display_name"], "A\u{FFFD}na");
    assert_eq!(contact["identifiers"][0]["value"], "user\u{FFFD}1");
    let id = conversation["id"].as_str().unwrap();
    let messages = app.messages(id).await;
    assert_eq!(messages[0]["platform_message_id"], "nul\u{FFFD}1");
    assert_eq!(messages[0]["parts"][0]["text"], "hello\u{FFFD}world");

    let (status, body) = app.reply(id, "a\u{0}b").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["parts"][0]["text"], "a\u{FFFD}b");
    let messages = app.messages(id).await;
    assert_eq!(messages[1]["parts"][0]["text"], "a\u{FFFD}b");
}

/// Every text a rep or an admin writes through the API (a comment, a new contact, a
/// ticket property, a snippet) gets the same rule as a webhook: a NUL is stored as
/// U+FFFD, on both stores, never refused by one and kept by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_any_api_body_is_stored_as_the_replacement_character() {
    let app = TestApp::spawn().await;
    let event = text_event("plain", "user-1", "hello");
    assert_eq!(app.post_webhook("demo", &event).await.status(), 200);
    let conversation = app.only_conversation().await;
    let id = conversation["id"].as_str().unwrap();
    let ticket = conversation["ticket_id"].as_str().unwrap();
    let write = |method: reqwest::Method, path: String, body: Value| {
        let app = &app;
        async move {
            let (status, answer) = app.api(method, &path, Some(body), Some(ADMIN_TOKEN)).await;
            assert!((200..300).contains(&status), "{path}: {status} {answer}");
            answer
        }
    };

    let comment = write(
        reqwest::Method::POST,
        format!("/api/v1/conversations/{id}/comments"),
        json!({"text": "a\u{0}note"}),
    )
    .await;
    assert_eq!(comment["parts"][0]["text"], "a\u{FFFD}note");
    let contact = write(
        reqwest::Method::POST,
        "/api/v1/contacts".into(),
        json!({"display_name": "B\u{0}o",
               "identifiers": [{"channel_id": "demo", "value": "user\u{0}2"}]}),
    )
    .await;
    let contact = app
        .get(&format!(
            "/api/v1/contacts/{}",
            contact["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(contact["display_name"], "B\u{FFFD}o");
    assert_eq!(contact["identifiers"][0]["value"], "user\u{FFFD}2");
    write(
        reqwest::Method::PATCH,
        format!("/api/v1/tickets/{ticket}"),
        json!({"properties": {"no\u{0}te": "x\u{0}y"}}),
    )
    .await;
    let ticket = app.get(&format!("/api/v1/tickets/{ticket}")).await;
    assert_eq!(
        ticket["properties"]["no\u{FFFD}te"], "x\u{FFFD}y",
        "{ticket}"
    );
    write(
        reqwest::Method::POST,
        "/api/v1/snippets".into(),
        json!({"id": "nul", "text": "a\u{0}b"}),
    )
    .await;
    let snippet = app.get("/api/v1/snippets/nul").await;
    assert_eq!(snippet["text"], "a\u{FFFD}b", "{snippet}");
    let thread = app.messages(id).await;
    assert_eq!(thread[1]["parts"][0]["text"], "a\u{FFFD}note");
}

/// A Viber message of `kind` with `text` beside its content, as Viber sends them.
fn viber_message(kind: &str, text: &str) -> Value {
    let content = match kind {
        "location" => serde_json::json!({"location": {"lat": 50.45, "lon": 30.52}}),
        "sticker" => serde_json::json!({"sticker_id": 40138}),
        "contact" => serde_json::json!({"contact": {"name": "Bo", "phone_number": "+46701234567"}}),
        "url" => serde_json::json!({"media": "https://shop.example.com/o/1"}),
        _ => serde_json::json!({"media": "https://cdn.example.com/a.bin"}),
    };
    let mut message = content;
    message["type"] = kind.into();
    message["text"] = text.into();
    serde_json::json!({
        "event": "message", "timestamp": 1783004060000u64, "message_token": 5960076432594491607u64,
        "sender": {"id": "h7Qx2mK9vP4rT1wZ8cN3bA==", "name": "Olena"},
        "message": message
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Nothing a platform sends is dropped: whatever a Viber message carries its text
    /// beside, the text is one of the stored parts' texts.
    #[test]
    fn a_viber_message_s_text_is_never_dropped(
        kind in prop_oneof![
            Just("text"), Just("picture"), Just("video"), Just("file"),
            Just("location"), Just("sticker"), Just("contact"), Just("url"),
        ],
        text in "\\PC{1,40}".prop_filter("has something to say", |t| !t.trim().is_empty()),
    ) {
        let viber = CHANNELS.iter().position(|(id, _, _)| *id == "viber").unwrap();
        let body = viber_message(kind, &text).to_string();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let request = RawRequest::post(
            "https://bridge.example.test/hooks/viber",
            headers,
            body.into_bytes(),
        );
        let events = ADAPTERS[viber].1.parse(&request).unwrap();
        let [channel_bridge::adapters::InboundEvent::Message(message)] = events.as_slice() else {
            panic!("{kind}: one message expected, got {events:?}");
        };
        prop_assert!(
            message.parts.iter().any(|p| p.text() == Some(text.as_str())),
            "{}: the text was dropped: {:?}", kind, message.parts
        );
    }
}

/// A replayed request (same body, same signature, within the 5 minutes the timestamp
/// allows) is the class of attack signatures alone do not stop: each is answered 200
/// and changes nothing, whatever it carried and in whatever order it comes back.
#[tokio::test]
async fn replaying_signed_requests_in_any_order_changes_nothing() {
    use crate::harness::{TestApp, text_event};
    let app = TestApp::spawn().await;
    let edit = |text: &str| serde_json::json!({"type": "edit", "id": "m1", "parts": [{"type": "text", "text": text}]});
    let requests = [
        app.signed("demo", &text_event("m1", "ana", "helo"), -240),
        app.signed("demo", &edit("hello"), -180),
        app.signed("demo", &edit("hello!"), -120),
        app.signed(
            "demo",
            &serde_json::json!({"type": "retract", "id": "m1"}),
            -60,
        ),
        app.signed("demo", &text_event("m2", "ana", "still there?"), -30),
    ];
    for request in &requests {
        assert_eq!(app.send_signed(request).await.0, 200);
    }
    let conversation = app.only_conversation().await;
    let id = conversation["id"].as_str().unwrap().to_owned();
    let before = app.messages(&id).await;
    // Backwards, then each one again right after itself.
    for request in requests
        .iter()
        .rev()
        .chain(requests.iter().flat_map(|r| [r, r]))
    {
        let (status, body) = app.send_signed(request).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["stored"], 0, "{body}");
    }
    assert_eq!(
        app.messages(&id).await,
        before,
        "a replay changed the thread"
    );
    assert_eq!(app.conversations().await.len(), 1);
}
