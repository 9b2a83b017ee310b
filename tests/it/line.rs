//! The LINE channel end to end: signed webhooks in, push messages out to a wiremock
//! playing the Messaging API (api.line.me and api-data.line.me).

use channel_bridge::adapters::line::{retry_key, sign};
use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{ADMIN_TOKEN, Options, REP_TOKEN, TestApp, items, wait_until};
use crate::support::fixtures::fixture;

const SECRET: &str = "line-channel-secret";
const TOKEN: &str = "line-access-token";
const USER: &str = "U3311aa00bb11cc22dd33ee44ff556677";

const VERIFICATION: &str = fixture!("line/verification.json");
const TEXT: &str = fixture!("line/text.json");
const MEDIA: &str = fixture!("line/media.json");
const BATCH: &str = fixture!("line/batch.json");

/// An app with a `line` channel whose API is `line`.
async fn spawn(line: &MockServer, options: Options) -> TestApp {
    let extra = format!(
        r#"
[channels.line]
kind = "line"
channel_access_token = "{TOKEN}"
channel_secret = "{SECRET}"
api_base = "{uri}"
api_data_base = "{uri}/data"
"#,
        uri = line.uri()
    );
    TestApp::spawn_with(Options {
        extra: format!("{}\n{extra}", options.extra),
        ..options
    })
    .await
}

async fn post(app: &TestApp, body: &str, signature: &str) -> reqwest::Response {
    app.http
        .post(app.url("/hooks/line"))
        .header("content-type", "application/json; charset=utf-8")
        .header("x-line-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .expect("request reaches the app")
}

async fn post_signed(app: &TestApp, body: &str) -> reqwest::Response {
    post(app, body, &sign(SECRET, body.as_bytes())).await
}

/// The conversation a single LINE text message opened.
async fn conversation(app: &TestApp) -> String {
    assert_eq!(post_signed(app, TEXT).await.status(), 200);
    app.only_conversation().await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn accepted(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"sentMessages": [{"id": id, "quoteToken": "q-out"}]}))
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

async fn outbound(app: &TestApp, conversation: &str) -> Value {
    app.messages(conversation)
        .await
        .into_iter()
        .rfind(|m| m["direction"] == "outbound")
        .expect("an outbound message")
}

async fn pushes(line: &MockServer) -> Vec<wiremock::Request> {
    line.received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == "/v2/bot/message/push")
        .collect()
}

fn json_body(request: &wiremock::Request) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

#[tokio::test]
async fn a_line_message_is_stored_and_the_reply_is_pushed_to_the_user() {
    let line = MockServer::start().await;
    let app = spawn(&line, Options::default()).await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(accepted("461230966842064897"))
        .expect(1)
        .mount(&line)
        .await;

    let conversation = conversation(&app).await;
    let listed = app.only_conversation().await;
    assert_eq!(
        listed["contact"]["identifiers"],
        json!([{"channel_id": "line", "type": "line_user", "value": USER}])
    );
    let inbound = &app.messages(&conversation).await[0];
    assert_eq!(inbound["platform_message_id"], "584170972439652211");
    assert_eq!(
        inbound["parts"],
        json!([{"type": "text", "text": "Sundays too?"}])
    );

    let queued = reply(
        &app,
        &conversation,
        json!({"parts": [{"type": "text", "text": "Yes, 10 to 4."}]}),
    )
    .await;
    app.drain_outbox().await;

    let requests = pushes(&line).await;
    assert_eq!(
        json_body(&requests[0]),
        json!({"to": USER, "messages": [{"type": "text", "text": "Yes, 10 to 4."}]})
    );
    assert_eq!(
        requests[0].headers["x-line-retry-key"],
        retry_key(queued["id"].as_str().unwrap(), 0).as_str()
    );
    let sent = outbound(&app, &conversation).await;
    assert_eq!(sent["delivery"]["status"], "sent");
    assert_eq!(sent["platform_message_id"], "461230966842064897");
}

#[tokio::test]
async fn an_image_reply_is_pushed_as_an_image_with_its_caption_after_it() {
    let line = MockServer::start().await;
    let app = spawn(&line, Options::default()).await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(accepted("1"))
        .mount(&line)
        .await;
    let conversation = conversation(&app).await;
    reply(
        &app,
        &conversation,
        json!({"parts": [{"type": "image", "caption": "Our opening hours",
                          "media": {"url": "https://cdn.example.com/hours.png", "mime_type": "image/png"}}]}),
    )
    .await;
    app.drain_outbox().await;

    assert_eq!(
        json_body(&pushes(&line).await[0])["messages"],
        json!([
            {"type": "image", "originalContentUrl": "https://cdn.example.com/hours.png",
             "previewImageUrl": "https://cdn.example.com/hours.png"},
            {"type": "text", "text": "Our opening hours"}
        ])
    );
    assert_eq!(
        outbound(&app, &conversation).await["delivery"]["status"],
        "sent"
    );
}

#[tokio::test]
async fn quotes_link_both_ways_where_line_allows() {
    let line = MockServer::start().await;
    let app = spawn(&line, Options::default()).await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(accepted("2"))
        .mount(&line)
        .await;
    // The sticker in MEDIA quotes the text message in TEXT.
    let conversation = conversation(&app).await;
    assert_eq!(post_signed(&app, MEDIA).await.status(), 200);
    let messages = app.messages(&conversation).await;
    let quoted = messages
        .iter()
        .find(|m| m["platform_message_id"] == "584170972439652211")
        .unwrap();
    let sticker = messages
        .iter()
        .find(|m| m["platform_message_id"] == "1501597916")
        .unwrap();
    assert_eq!(sticker["reply_to"], quoted["id"]);

    // A rep's quoted reply goes out unquoted: a push cannot name the quoted message by
    // id, only by the quote token, which the reply does not carry (docs/platforms/line.md).
    reply(
        &app,
        &conversation,
        json!({"parts": [{"type": "text", "text": "Yes, Sundays too."}], "reply_to": quoted["id"]}),
    )
    .await;
    app.drain_outbox().await;
    let body = json_body(&pushes(&line).await[0]);
    assert_eq!(
        body["messages"],
        json!([{"type": "text", "text": "Yes, Sundays too."}])
    );
    let sent = outbound(&app, &conversation).await;
    assert_eq!(sent["reply_to"], quoted["id"]);
    assert_eq!(sent["delivery"]["status"], "sent");
}

#[tokio::test]
async fn a_file_line_cannot_send_goes_as_a_link_and_the_rep_is_told() {
    let line = MockServer::start().await;
    let app = spawn(&line, Options::default()).await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(accepted("3"))
        .mount(&line)
        .await;
    let conversation = conversation(&app).await;
    reply(
        &app,
        &conversation,
        json!({"parts": [{"type": "file",
                          "media": {"url": "https://cdn.example.com/terms.pdf", "filename": "terms.pdf"}}]}),
    )
    .await;
    app.drain_outbox().await;

    assert_eq!(
        json_body(&pushes(&line).await[0])["messages"],
        json!([{"type": "text", "text": "terms.pdf\nhttps://cdn.example.com/terms.pdf"}])
    );
    let sent = outbound(&app, &conversation).await;
    assert_eq!(sent["delivery"]["status"], "sent");
    assert!(
        sent["delivery"]["note"]
            .as_str()
            .unwrap()
            .contains("file sent as a link"),
        "{sent}"
    );
}

#[tokio::test]
async fn a_rate_limited_push_waits_for_its_retry_after() {
    let line = MockServer::start().await;
    // The schedule alone would retry after 10 ms.
    let app = spawn(
        &line,
        Options {
            retry_schedule_ms: vec![0, 10, 10],
            ..Options::default()
        },
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "120")
                .set_body_json(json!({"message": "Too Many Requests"})),
        )
        .mount(&line)
        .await;
    let conversation = conversation(&app).await;
    reply(
        &app,
        &conversation,
        json!({"parts": [{"type": "text", "text": "hello"}]}),
    )
    .await;

    let pending = || async {
        items(app.get("/api/v1/deliveries?state=pending").await)
            .into_iter()
            .next()
            .unwrap_or(Value::Null)
    };
    wait_until(
        "the push was refused once",
        std::time::Duration::from_secs(10),
        || async { pending().await["attempts"] == 1 },
    )
    .await;
    // It waits 120 s now, so it stays as it is while we look.
    let pending = pending().await;
    assert!(
        pending["last_error"].as_str().unwrap().contains("429"),
        "{pending}"
    );
    let at = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(pending[field].as_str().unwrap()).unwrap()
    };
    let wait = at("run_at") - at("updated_at");
    assert!(
        wait >= chrono::Duration::seconds(119),
        "the next try is {wait} later, not after Retry-After"
    );
    assert_eq!(pushes(&line).await.len(), 1);
}

#[tokio::test]
async fn a_push_line_refuses_is_dead_lettered_at_once() {
    let line = MockServer::start().await;
    let app = spawn(&line, Options::default()).await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "message": "The property, 'to', in the request body is invalid (line: -, column: -)"
        })))
        .expect(1)
        .mount(&line)
        .await;
    let conversation = conversation(&app).await;
    reply(
        &app,
        &conversation,
        json!({"parts": [{"type": "text", "text": "hello"}]}),
    )
    .await;
    app.drain_outbox().await;

    let dead = items(app.get("/api/v1/deliveries?state=dead").await);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["attempts"], 1);
    let error = dead[0]["last_error"].as_str().unwrap();
    assert!(error.contains("is invalid"), "{error}");
    assert!(!error.contains(TOKEN));
    assert_eq!(
        outbound(&app, &conversation).await["delivery"]["status"],
        "failed"
    );
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_is_not_shown_twice() {
    let line = MockServer::start().await;
    let app = spawn(&line, Options::default()).await;
    // LINE took the first call but the answer was a 500; the retry, with the same retry
    // key, gets 409: already accepted.
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&line)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "message": "The retry key is already accepted",
            "sentMessages": [{"id": "461230966842064899"}]
        })))
        .with_priority(2)
        .mount(&line)
        .await;
    let conversation = conversation(&app).await;
    reply(
        &app,
        &conversation,
        json!({"parts": [{"type": "text", "text": "hello"}]}),
    )
    .await;
    app.drain_outbox().await;

    let requests = pushes(&line).await;
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].headers["x-line-retry-key"],
        requests[1].headers["x-line-retry-key"]
    );
    let sent = outbound(&app, &conversation).await;
    assert_eq!(sent["delivery"]["status"], "sent");
    assert_eq!(sent["delivery"]["attempts"], 2);
    assert_eq!(sent["platform_message_id"], "461230966842064899");
    assert!(items(app.get("/api/v1/deliveries?state=dead").await).is_empty());
}

#[tokio::test]
async fn line_verifies_by_posting_no_events_and_there_is_no_get_handshake() {
    let line = MockServer::start().await;
    let app = spawn(&line, Options::default()).await;
    let response = post_signed(&app, VERIFICATION).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["stored"], 0);
    assert!(app.conversations().await.is_empty());

    let (status, body) = app.api(Method::GET, "/hooks/line", None, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
}

#[tokio::test]
async fn a_wrong_signature_is_refused_and_nothing_is_stored() {
    let line = MockServer::start().await;
    let app = spawn(&line, Options::default()).await;
    let response = post(&app, TEXT, &sign("not-the-secret", TEXT.as_bytes())).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_signature");
    let unsigned = app
        .http
        .post(app.url("/hooks/line"))
        .header("content-type", "application/json")
        .body(TEXT)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    assert!(app.conversations().await.is_empty());
}

#[tokio::test]
async fn a_redelivered_event_stores_nothing_twice() {
    let line = MockServer::start().await;
    let app = spawn(&line, Options::default()).await;
    assert_eq!(post_signed(&app, TEXT).await.status(), 200);
    let redelivery = TEXT.replace("\"isRedelivery\": false", "\"isRedelivery\": true");
    let response = post_signed(&app, &redelivery).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
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
async fn a_batch_threads_per_user_and_an_unsend_marks_the_message_retracted() {
    let line = MockServer::start().await;
    let app = spawn(&line, Options::default()).await;
    let response = post_signed(&app, BATCH).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["stored"], 3, "{body}");

    let conversations = app.conversations().await;
    assert_eq!(conversations.len(), 2);
    let mine = conversations
        .iter()
        .find(|c| c["contact"]["identifiers"][0]["value"] == USER)
        .unwrap();
    let messages = app.messages(mine["id"].as_str().unwrap()).await;
    let first = messages
        .iter()
        .find(|m| m["platform_message_id"] == "600000000000000001")
        .unwrap();
    assert!(first["retracted_at"].is_string(), "{first}");
    let hologram = messages
        .iter()
        .find(|m| m["platform_message_id"] == "600000000000000003")
        .unwrap();
    assert_eq!(hologram["parts"][0]["type"], "unsupported");
    assert_eq!(hologram["parts"][0]["platform_type"], "hologram");
}

#[tokio::test]
async fn a_rep_opens_a_line_file_through_the_content_api_without_seeing_the_token() {
    let line = MockServer::start().await;
    let app = spawn(&line, Options::default()).await;
    let pdf = b"%PDF-1.7 invoice".to_vec();
    Mock::given(method("GET"))
        .and(path("/data/v2/bot/message/325710/content"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_raw(pdf.clone(), "application/pdf"))
        .expect(1)
        .mount(&line)
        .await;
    assert_eq!(post_signed(&app, MEDIA).await.status(), 200);
    let conversation = app.only_conversation().await;
    let file = app
        .messages(conversation["id"].as_str().unwrap())
        .await
        .into_iter()
        .find(|m| m["parts"][0]["type"] == "file")
        .unwrap();
    assert_eq!(
        file["parts"][0]["media"],
        json!({"platform_ref": "325710", "url": null, "mime_type": null, "size_bytes": 2138,
               "filename": "invoice.pdf", "duration_s": null})
    );

    let response = app
        .http
        .get(app.url(&format!(
            "/api/v1/messages/{}/parts/0/media",
            file["id"].as_str().unwrap()
        )))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let headers = format!("{:?}", response.headers());
    assert!(!headers.contains(TOKEN));
    let body = response.bytes().await.unwrap();
    assert_eq!(body.to_vec(), pdf);
}
