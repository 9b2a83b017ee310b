//! Hostile input, as property tests (the CI counterpart of the cargo-fuzz targets in
//! fuzz/): every channel's signature check and parser, given any body and any signature
//! header, never panics, and every refusal is a 4xx, never a 5xx.

use std::sync::{Arc, LazyLock};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use channel_bridge::adapters::signature::WebhookKey;
use channel_bridge::adapters::{ChannelAdapter, RawRequest};
use channel_bridge::error::ApiError;
use proptest::prelude::*;
use serde_json::Value;

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
