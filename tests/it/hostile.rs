//! Hostile input, as property tests (the CI counterpart of the cargo-fuzz targets in
//! fuzz/): every channel's signature check and parser, given any body and any signature
//! header, never panics, and every refusal is a 4xx, never a 5xx. Then the HTTP surface:
//! a NUL in any API parameter is a 4xx or is taken, never a 5xx; channel names made up by
//! unauthenticated callers never become metric series.

use std::sync::{Arc, LazyLock};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use channel_bridge::adapters::signature::WebhookKey;
use channel_bridge::adapters::{ChannelAdapter, RawRequest};
use channel_bridge::error::ApiError;
use proptest::prelude::*;
use serde_json::Value;

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
];

static ADAPTERS: LazyLock<Vec<(&'static str, Arc<dyn ChannelAdapter>)>> = LazyLock::new(|| {
    let config = channel_bridge::config::load_str(CONFIG, []).expect("valid config");
    let http = reqwest::Client::new();
    CHANNELS
        .iter()
        .map(|(id, _, _)| {
            (
                *id,
                config
                    .channel(id)
                    .unwrap()
                    .adapter
                    .build(http.clone(), &[], None),
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
    fn a_stale_or_future_timestamp_is_refused_even_with_a_correct_signature(
        skew in prop_oneof![301i64..1_000_000_000, -1_000_000_000i64..-301],
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

/// A NUL in text a platform or a rep sends (JSON's `\u0000`) is stored or refused with a
/// 4xx, never a 5xx: a webhook answered 5xx is redelivered until the platform gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_message_or_a_reply_is_stored_or_refused_never_a_5xx() {
    let app = TestApp::spawn().await;
    let event = text_event("nul-in-text", "user\u{0}1", "hello\u{0}world");
    let response = app.post_webhook("demo", &event).await;
    let status = response.status();
    let body = response.text().await.unwrap();
    assert!(status.as_u16() < 500, "{status} {body}");
    // A conversation to reply in, whatever became of that webhook.
    let event = text_event("plain", "user-2", "hello");
    assert_eq!(app.post_webhook("demo", &event).await.status(), 200);
    for conversation in app.conversations().await {
        let id = conversation["id"].as_str().unwrap();
        let (status, body) = app.reply(id, "a\u{0}b").await;
        assert!(status < 500, "{status} {body}");
    }
}
