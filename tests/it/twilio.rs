//! The Twilio channel end to end: signed form webhooks in (messages and status
//! callbacks), replies created through a wiremock playing Twilio's Messages resource.

use base64::Engine;
use channel_bridge::adapters::twilio::sign;
use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{ADMIN_TOKEN, Options, REP_TOKEN, TestApp, items, wait_until};
use crate::support::fixtures::fixture;

const ACCOUNT: &str = "ACaaaabbbbccccddddeeeeffff00001111";
const TOKEN: &str = "twilio-auth-token";
/// The URL Twilio calls, as the harness's `public_url` makes it.
const HOOK_URL: &str = "https://bridge.example.test/hooks/sms";

const SMS_TEXT: &str = fixture!("twilio/sms_text.form");
const MMS_MEDIA: &str = fixture!("twilio/mms_media.form");
const WA_REPLY: &str = fixture!("twilio/whatsapp_reply.form");
const WA_LOCATION: &str = fixture!("twilio/whatsapp_location.form");
const STATUS_DELIVERED: &str = fixture!("twilio/status_delivered.form");
const STATUS_UNDELIVERED: &str = fixture!("twilio/status_undelivered.form");

/// The sid the status fixtures report on.
const STATUS_SID: &str = "SM11112222333344445555666677778888";

fn messages_path() -> String {
    format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
}

fn basic_auth() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{TOKEN}"))
    )
}

/// An app with an `sms` channel whose Twilio API is `twilio`.
async fn spawn(twilio: &MockServer, options: Options) -> TestApp {
    let extra = format!(
        r#"
[channels.sms]
kind = "twilio"
account_sid = "{ACCOUNT}"
auth_token = "{TOKEN}"
from = "+14155550199"
api_base = "{uri}"
"#,
        uri = twilio.uri()
    );
    TestApp::spawn_with(Options {
        extra: format!("{}\n{extra}", options.extra),
        ..options
    })
    .await
}

async fn post(app: &TestApp, body: &str, signature: &str) -> reqwest::Response {
    app.http
        .post(app.url("/hooks/sms"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .expect("request reaches the app")
}

async fn post_signed(app: &TestApp, body: &str) -> reqwest::Response {
    let params: Vec<(String, String)> = serde_urlencoded::from_str(body).unwrap();
    post(app, body, &sign(TOKEN, HOOK_URL, &params)).await
}

async fn conversation_from(app: &TestApp, body: &str) -> String {
    assert_eq!(post_signed(app, body).await.status(), 200);
    app.only_conversation().await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn created(sid: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "sid": sid, "status": "queued", "account_sid": ACCOUNT, "num_media": "0"
    }))
}

async fn mount_create(twilio: &MockServer, sid: &str) {
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .and(header("authorization", basic_auth().as_str()))
        .respond_with(created(sid))
        .mount(twilio)
        .await;
}

async fn reply(app: &TestApp, conversation: &str, body: Value) -> Value {
    let (status, queued) = app
        .api(
            Method::POST,
            &format!("/api/v1/conversations/{conversation}/messages"),
            Some(body),
            Some(REP_TOKEN),
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    queued
}

async fn reply_text(app: &TestApp, conversation: &str, text: &str) -> Value {
    reply(
        app,
        conversation,
        json!({"parts": [{"type": "text", "text": text}]}),
    )
    .await
}

async fn outbound(app: &TestApp, conversation: &str) -> Value {
    app.messages(conversation)
        .await
        .into_iter()
        .rfind(|m| m["direction"] == "outbound")
        .expect("an outbound message")
}

/// The forms posted to the Messages resource, oldest first.
async fn creates(twilio: &MockServer) -> Vec<Vec<(String, String)>> {
    twilio
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == messages_path())
        .map(|r| serde_urlencoded::from_bytes(&r.body).unwrap())
        .collect()
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn an_sms_is_stored_and_the_reply_is_created_from_the_number_it_was_sent_to() {
    let twilio = MockServer::start().await;
    let app = spawn(&twilio, Options::default()).await;
    mount_create(&twilio, "SMreply0000000000000000000000001").await;

    let conversation = conversation_from(&app, SMS_TEXT).await;
    let listed = app.only_conversation().await;
    assert_eq!(
        listed["contact"]["identifiers"],
        json!([{"channel_id": "sms", "type": "twilio_address", "value": "+14155550123"}])
    );
    let inbound = &app.messages(&conversation).await[0];
    assert_eq!(
        inbound["platform_message_id"],
        "SM0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    );
    assert_eq!(
        inbound["parts"],
        json!([{"type": "text", "text": "Is my order on its way?"}])
    );

    reply_text(&app, &conversation, "Yes, it ships today.").await;
    app.drain_outbox().await;

    assert_eq!(
        creates(&twilio).await,
        vec![form(&[
            ("To", "+14155550123"),
            ("From", "+14155550100"),
            ("Body", "Yes, it ships today."),
        ])]
    );
    let sent = outbound(&app, &conversation).await;
    assert_eq!(sent["delivery"]["status"], "sent");
    assert_eq!(
        sent["platform_message_id"],
        "SMreply0000000000000000000000001"
    );
}

#[tokio::test]
async fn an_image_reply_carries_its_caption_as_the_body() {
    let twilio = MockServer::start().await;
    let app = spawn(&twilio, Options::default()).await;
    mount_create(&twilio, "MMreply0000000000000000000000001").await;
    let conversation = conversation_from(&app, SMS_TEXT).await;
    reply(
        &app,
        &conversation,
        json!({"parts": [{"type": "image", "caption": "Your parcel",
                          "media": {"url": "https://cdn.example.com/parcel.jpg", "mime_type": "image/jpeg"}}]}),
    )
    .await;
    app.drain_outbox().await;
    assert_eq!(
        creates(&twilio).await,
        vec![form(&[
            ("To", "+14155550123"),
            ("From", "+14155550100"),
            ("Body", "Your parcel"),
            ("MediaUrl", "https://cdn.example.com/parcel.jpg"),
        ])]
    );
    assert_eq!(
        outbound(&app, &conversation).await["delivery"]["status"],
        "sent"
    );
}

#[tokio::test]
async fn whatsapp_quotes_link_inbound_and_replies_go_out_plain() {
    let twilio = MockServer::start().await;
    let app = spawn(&twilio, Options::default()).await;
    // Our first reply gets the sid the contact's quoted reply (WA_REPLY) names.
    mount_create(&twilio, "SM524c000000000000000000000000beef").await;
    let conversation = conversation_from(&app, WA_LOCATION).await;
    let ours = reply_text(&app, &conversation, "Thanks, which entrance?").await;
    app.drain_outbox().await;

    assert_eq!(post_signed(&app, WA_REPLY).await.status(), 200);
    let messages = app.messages(&conversation).await;
    let quoting = messages
        .iter()
        .find(|m| m["platform_message_id"] == "SM5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e")
        .unwrap();
    assert_eq!(quoting["reply_to"], ours["id"]);
    assert_eq!(
        app.only_conversation().await["contact"]["display_name"],
        "Priya"
    );

    // Twilio has no quoted replies out: the reply is sent without one.
    reply(
        &app,
        &conversation,
        json!({"parts": [{"type": "text", "text": "See you there."}], "reply_to": quoting["id"]}),
    )
    .await;
    app.drain_outbox().await;
    let sent = creates(&twilio).await;
    assert_eq!(
        sent[1],
        form(&[
            ("To", "whatsapp:+447700900123"),
            ("From", "whatsapp:+14155550100"),
            ("Body", "See you there."),
        ])
    );
    assert_eq!(
        outbound(&app, &conversation).await["delivery"]["status"],
        "sent"
    );
}

#[tokio::test]
async fn a_location_goes_as_a_map_link_and_the_rep_is_told() {
    let twilio = MockServer::start().await;
    let app = spawn(&twilio, Options::default()).await;
    mount_create(&twilio, "SMreply0000000000000000000000002").await;
    let conversation = conversation_from(&app, SMS_TEXT).await;
    reply(
        &app,
        &conversation,
        json!({"parts": [{"type": "location", "latitude": 37.7749, "longitude": -122.4194,
                          "name": "Pickup point"}]}),
    )
    .await;
    app.drain_outbox().await;
    assert_eq!(
        creates(&twilio).await[0][2],
        (
            "Body".to_owned(),
            "Pickup point\nhttps://maps.google.com/?q=37.7749,-122.4194".to_owned()
        )
    );
    let sent = outbound(&app, &conversation).await;
    assert_eq!(sent["delivery"]["status"], "sent");
    assert!(
        sent["delivery"]["note"]
            .as_str()
            .unwrap()
            .contains("location sent as a map link"),
        "{sent}"
    );
}

#[tokio::test]
async fn a_rate_limited_create_waits_for_its_retry_after() {
    let twilio = MockServer::start().await;
    // The schedule alone would retry after 10 ms.
    let app = spawn(
        &twilio,
        Options {
            retry_schedule_ms: vec![0, 10, 10],
            ..Options::default()
        },
    )
    .await;
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "120")
                .set_body_json(json!({"code": 20429, "message": "Too Many Requests",
                                      "more_info": "https://www.twilio.com/docs/errors/20429",
                                      "status": 429})),
        )
        .mount(&twilio)
        .await;
    let conversation = conversation_from(&app, SMS_TEXT).await;
    reply_text(&app, &conversation, "hello").await;

    let pending = || async {
        items(app.get("/api/v1/deliveries?state=pending").await)
            .into_iter()
            .next()
            .unwrap_or(Value::Null)
    };
    wait_until(
        "the create was refused once",
        std::time::Duration::from_secs(10),
        || async { pending().await["attempts"] == 1 },
    )
    .await;
    // It waits 120 s now, so it stays as it is while we look.
    let pending = pending().await;
    let error = pending["last_error"].as_str().unwrap();
    assert!(error.contains("Twilio error 20429"), "{error}");
    let at = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(pending[field].as_str().unwrap()).unwrap()
    };
    let wait = at("run_at") - at("updated_at");
    assert!(
        wait >= chrono::Duration::seconds(119),
        "the next try is {wait} later, not after Retry-After"
    );
    assert_eq!(creates(&twilio).await.len(), 1);
}

#[tokio::test]
async fn an_invalid_number_is_dead_lettered_at_once() {
    let twilio = MockServer::start().await;
    let app = spawn(&twilio, Options::default()).await;
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": 21211,
            "message": "The 'To' number +14155550123 is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211",
            "status": 400
        })))
        .expect(1)
        .mount(&twilio)
        .await;
    let conversation = conversation_from(&app, SMS_TEXT).await;
    reply_text(&app, &conversation, "hello").await;
    app.drain_outbox().await;

    let dead = items(app.get("/api/v1/deliveries?state=dead").await);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["attempts"], 1);
    let error = dead[0]["last_error"].as_str().unwrap();
    assert!(error.contains("Twilio error 21211"), "{error}");
    assert!(!error.contains(TOKEN));
    assert_eq!(
        outbound(&app, &conversation).await["delivery"]["status"],
        "failed"
    );
}

#[tokio::test]
async fn status_callbacks_move_the_reply_forward() {
    let twilio = MockServer::start().await;
    let app = spawn(&twilio, Options::default()).await;
    mount_create(&twilio, STATUS_SID).await;
    let conversation = conversation_from(&app, SMS_TEXT).await;
    reply_text(&app, &conversation, "hello").await;
    app.drain_outbox().await;
    assert_eq!(
        outbound(&app, &conversation).await["delivery"]["status"],
        "sent"
    );

    assert_eq!(post_signed(&app, STATUS_DELIVERED).await.status(), 200);
    assert_eq!(
        outbound(&app, &conversation).await["delivery"]["status"],
        "delivered"
    );
    // A late failure report does not undo a delivery; nothing new is stored either.
    assert_eq!(post_signed(&app, STATUS_UNDELIVERED).await.status(), 200);
    assert_eq!(
        outbound(&app, &conversation).await["delivery"]["status"],
        "delivered"
    );
    assert_eq!(app.messages(&conversation).await.len(), 2);
}

#[tokio::test]
async fn an_undelivered_report_fails_the_reply_with_twilio_s_code() {
    let twilio = MockServer::start().await;
    let app = spawn(&twilio, Options::default()).await;
    mount_create(&twilio, STATUS_SID).await;
    let conversation = conversation_from(&app, SMS_TEXT).await;
    reply_text(&app, &conversation, "hello").await;
    app.drain_outbox().await;

    assert_eq!(post_signed(&app, STATUS_UNDELIVERED).await.status(), 200);
    let failed = outbound(&app, &conversation).await;
    assert_eq!(failed["delivery"]["status"], "failed");
    assert!(
        failed["delivery"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("30003"),
        "{failed}"
    );
}

#[tokio::test]
async fn twilio_has_no_get_handshake() {
    let twilio = MockServer::start().await;
    let app = spawn(&twilio, Options::default()).await;
    let (status, body) = app.api(Method::GET, "/hooks/sms", None, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
}

#[tokio::test]
async fn a_wrong_signature_is_refused_and_nothing_is_stored() {
    let twilio = MockServer::start().await;
    let app = spawn(&twilio, Options::default()).await;
    let params: Vec<(String, String)> = serde_urlencoded::from_str(SMS_TEXT).unwrap();
    // Signed for another URL: the URL is part of what Twilio signs.
    let response = post(
        &app,
        SMS_TEXT,
        &sign(TOKEN, "https://bridge.example.test/hooks/other", &params),
    )
    .await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_signature");
    let forged = post(&app, SMS_TEXT, &sign("not-the-token", HOOK_URL, &params)).await;
    assert_eq!(forged.status(), 401);
    assert!(app.conversations().await.is_empty());
}

#[tokio::test]
async fn a_redelivered_webhook_stores_nothing_twice() {
    let twilio = MockServer::start().await;
    let app = spawn(&twilio, Options::default()).await;
    assert_eq!(post_signed(&app, SMS_TEXT).await.status(), 200);
    let again = post_signed(&app, SMS_TEXT).await;
    assert_eq!(again.status(), 200);
    let body: Value = again.json().await.unwrap();
    assert_eq!(
        (body["stored"].as_u64(), body["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    let conversation = app.only_conversation().await;
    assert_eq!(
        app.messages(conversation["id"].as_str().unwrap())
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_rep_opens_mms_media_fetched_with_basic_auth_without_seeing_the_token() {
    let twilio = MockServer::start().await;
    let app = spawn(&twilio, Options::default()).await;
    let media_path = format!(
        "/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1f2e3d4c5b6a79880f1e2d3c4b5a6978/Media/ME00000000000000000000000000000001"
    );
    let jpeg = vec![0xffu8, 0xd8, 0xff, 0xe0, 1, 2, 3];
    // Twilio answers a media URL with a redirect to its file store.
    Mock::given(method("GET"))
        .and(path(media_path.as_str()))
        .and(header("authorization", basic_auth().as_str()))
        .respond_with(ResponseTemplate::new(302).insert_header(
            "location",
            format!("{}/store/ME1.jpg", twilio.uri()).as_str(),
        ))
        .expect(1)
        .mount(&twilio)
        .await;
    Mock::given(method("GET"))
        .and(path("/store/ME1.jpg"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(jpeg.clone(), "image/jpeg"))
        .expect(1)
        .mount(&twilio)
        .await;

    let conversation = conversation_from(&app, MMS_MEDIA).await;
    let message = &app.messages(&conversation).await[0];
    assert_eq!(message["parts"][0]["type"], "image");
    assert_eq!(message["parts"][0]["caption"], "Photos of the damage");
    assert_eq!(message["parts"][0]["media"]["platform_ref"], media_path);

    let response = app
        .http
        .get(app.url(&format!(
            "/api/v1/messages/{}/parts/0/media",
            message["id"].as_str().unwrap()
        )))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    assert!(!format!("{:?}", response.headers()).contains(&basic_auth()[6..]));
    assert_eq!(response.bytes().await.unwrap().to_vec(), jpeg);
}
