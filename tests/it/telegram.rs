//! Telegram end to end: wiremock plays the Bot API (the channel's `api_base`); updates come
//! in with the secret token header, replies leave through `send*` methods.

use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{ADMIN_TOKEN, Options, REP_TOKEN, TestApp, items, wait_until};
use crate::support::fixtures::fixture;

const BOT_TOKEN: &str = "123456:TEST-token_abc";
const SECRET: &str = "tg-webhook-secret";
const CHAT: i64 = 5511223344;

fn channel(api_base: &str) -> String {
    format!(
        "[channels.tg]\nkind = \"telegram\"\nbot_token = \"{BOT_TOKEN}\"\n\
         secret_token = \"{SECRET}\"\napi_base = \"{api_base}\"\n"
    )
}

/// The app with a Telegram channel `tg` whose Bot API is the returned mock.
async fn spawn_with(options: Options) -> (TestApp, MockServer) {
    let telegram = MockServer::start().await;
    let app = TestApp::spawn_with(Options {
        extra: channel(&telegram.uri()),
        ..options
    })
    .await;
    (app, telegram)
}

async fn spawn() -> (TestApp, MockServer) {
    spawn_with(Options::default()).await
}

/// The Bot API path of a method, token included (as Telegram wants it).
fn bot(method: &str) -> String {
    format!("/bot{BOT_TOKEN}/{method}")
}

async fn post_update_with(app: &TestApp, body: &str, secret: Option<&str>) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url("/hooks/tg"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(secret) = secret {
        request = request.header("x-telegram-bot-api-secret-token", secret);
    }
    request.send().await.expect("request reaches the app")
}

async fn post_update(app: &TestApp, body: &str) -> Value {
    let response = post_update_with(app, body, Some(SECRET)).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A Bot API success answer for a sent message.
fn sent(message_id: i64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "ok": true,
        "result": {"message_id": message_id, "chat": {"id": CHAT, "type": "private"},
                   "date": 1783001000, "text": "…"}
    }))
}

fn refused(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

async fn conversation_id(app: &TestApp) -> String {
    app.only_conversation().await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn reply_with(app: &TestApp, conversation: &str, body: Value) -> Value {
    let (status, message) = app
        .api(
            Method::POST,
            &format!("/api/v1/conversations/{conversation}/messages"),
            Some(body),
            Some(REP_TOKEN),
        )
        .await;
    assert_eq!(status, 202, "{message}");
    message
}

async fn outbound(app: &TestApp, conversation: &str) -> Value {
    app.messages(conversation)
        .await
        .into_iter()
        .rfind(|m| m["direction"] == "outbound")
        .expect("an outbound message")
}

/// Bodies the mock Bot API got for `method`, oldest first.
async fn calls(telegram: &MockServer, method: &str) -> Vec<Value> {
    telegram
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == bot(method))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn a_telegram_message_comes_in_and_the_reply_goes_out_unquoted() {
    let (app, telegram) = spawn().await;
    Mock::given(method("POST"))
        .and(path(bot("sendMessage")))
        .respond_with(sent(1300))
        .expect(1)
        .mount(&telegram)
        .await;

    let stored = post_update(&app, fixture!("telegram/text.json")).await;
    assert_eq!(stored["stored"], 1);
    let conversation = app.only_conversation().await;
    assert_eq!(conversation["channel_id"], "tg");
    assert_eq!(conversation["contact"]["display_name"], "Amara Okafor");
    assert_eq!(
        conversation["contact"]["identifiers"],
        json!([{"channel_id": "tg", "type": "telegram_user", "value": "5511223344"}])
    );
    let id = conversation["id"].as_str().unwrap();
    let inbound = &app.messages(id).await[0];
    assert_eq!(inbound["platform_message_id"], "5511223344:1201");
    assert_eq!(
        inbound["parts"],
        json!([{"type": "text", "text": "Where is my order?"}])
    );

    let (status, _) = app.reply(id, "On its way").await;
    assert_eq!(status, 202);
    app.drain_outbox().await;

    // Not a quote: the rep chose no message to answer.
    assert_eq!(
        calls(&telegram, "sendMessage").await,
        [json!({"chat_id": CHAT, "text": "On its way"})]
    );
    let reply = outbound(&app, id).await;
    assert_eq!(reply["delivery"]["status"], "sent");
    assert_eq!(reply["platform_message_id"], "5511223344:1300");
}

#[tokio::test]
async fn an_image_reply_is_sent_by_url_with_its_caption() {
    let (app, telegram) = spawn().await;
    Mock::given(method("POST"))
        .and(path(bot("sendPhoto")))
        .and(body_json(json!({
            "chat_id": CHAT,
            "photo": "https://cdn.example.com/label.png",
            "caption": "Your return label"
        })))
        .respond_with(sent(1301))
        .expect(1)
        .mount(&telegram)
        .await;
    post_update(&app, fixture!("telegram/text.json")).await;
    let conversation = conversation_id(&app).await;
    reply_with(
        &app,
        &conversation,
        json!({"parts": [{"type": "image", "caption": "Your return label",
                          "media": {"url": "https://cdn.example.com/label.png"}}]}),
    )
    .await;
    app.drain_outbox().await;
    let reply = outbound(&app, &conversation).await;
    assert_eq!(reply["delivery"]["status"], "sent");
    assert_eq!(reply["platform_message_id"], "5511223344:1301");
    assert!(reply["delivery"].get("note").is_none());
}

#[tokio::test]
async fn a_reply_in_a_forum_topic_goes_to_the_topic_and_quotes_the_chosen_message() {
    let (app, telegram) = spawn().await;
    Mock::given(method("POST"))
        .and(path(bot("sendMessage")))
        .respond_with(sent(310))
        .mount(&telegram)
        .await;
    post_update(&app, fixture!("telegram/forum_topic.json")).await;
    let later = fixture!("telegram/forum_topic.json")
        .replace("804117214", "804117299")
        .replace("\"message_id\": 301", "\"message_id\": 305")
        .replace("Any news on the refund?", "Hello?");
    post_update(&app, &later).await;
    let conversation = app.only_conversation().await;
    assert_eq!(conversation["platform_thread_id"], "-1001987654321:77");
    let id = conversation["id"].as_str().unwrap();
    let first = app.messages(id).await[0]["id"].clone();

    reply_with(
        &app,
        id,
        json!({"parts": [{"type": "text", "text": "Refund sent today"}], "reply_to": first}),
    )
    .await;
    app.drain_outbox().await;
    assert_eq!(
        calls(&telegram, "sendMessage").await,
        [json!({
            "chat_id": -1001987654321i64,
            "message_thread_id": 77,
            "text": "Refund sent today",
            "reply_parameters": {"message_id": 301, "allow_sending_without_reply": true}
        })]
    );
}

#[tokio::test]
async fn what_telegram_cannot_carry_goes_as_text_and_the_delivery_says_so() {
    let (app, telegram) = spawn().await;
    Mock::given(method("POST"))
        .and(path(bot("sendPhoto")))
        .respond_with(refused(
            400,
            json!({"ok": false, "error_code": 400,
                   "description": "Bad Request: wrong file identifier/HTTP URL specified"}),
        ))
        .expect(1)
        .mount(&telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(bot("sendMessage")))
        .respond_with(sent(1302))
        .expect(2)
        .mount(&telegram)
        .await;
    post_update(&app, fixture!("telegram/text.json")).await;
    let conversation = conversation_id(&app).await;
    reply_with(
        &app,
        &conversation,
        json!({"parts": [
            {"type": "image", "caption": "Label", "media": {"url": "https://internal.example/label.png"}},
            {"type": "contact", "name": "Returns desk", "emails": ["returns@example.com"]}
        ]}),
    )
    .await;
    app.drain_outbox().await;

    let texts: Vec<Value> = calls(&telegram, "sendMessage")
        .await
        .into_iter()
        .map(|b| b["text"].clone())
        .collect();
    assert_eq!(
        texts,
        [
            json!("Label\nhttps://internal.example/label.png"),
            json!("Returns desk\nreturns@example.com")
        ]
    );
    let reply = outbound(&app, &conversation).await;
    assert_eq!(reply["delivery"]["status"], "sent");
    let note = reply["delivery"]["note"].as_str().unwrap();
    assert!(note.contains("Part 1 (image) was sent as a link"), "{note}");
    assert!(note.contains("Part 2 (contact) was sent as text"), "{note}");
}

#[tokio::test]
async fn a_rate_limited_send_waits_for_telegrams_retry_after() {
    // The schedule alone would retry after 50 ms.
    let (app, telegram) = spawn().await;
    Mock::given(method("POST"))
        .and(path(bot("sendMessage")))
        .respond_with(refused(
            429,
            json!({"ok": false, "error_code": 429,
                   "description": "Too Many Requests: retry after 30",
                   "parameters": {"retry_after": 30}}),
        ))
        .mount(&telegram)
        .await;
    post_update(&app, fixture!("telegram/text.json")).await;
    let conversation = conversation_id(&app).await;
    app.reply(&conversation, "hello").await;

    let first_attempt = || async {
        let page = app.get("/api/v1/deliveries?state=pending").await;
        items(page).into_iter().next().unwrap_or(Value::Null)
    };
    wait_until(
        "the first attempt is recorded",
        std::time::Duration::from_secs(10),
        || async { first_attempt().await["attempts"] == 1 },
    )
    .await;
    let pending = first_attempt().await;
    let time = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(pending[field].as_str().unwrap()).unwrap()
    };
    let wait = time("run_at") - time("updated_at");
    assert!(
        wait >= chrono::Duration::seconds(29),
        "next try in {wait}, before retry_after"
    );
    assert!(
        pending["last_error"]
            .as_str()
            .unwrap()
            .contains("Too Many Requests")
    );
    assert_eq!(calls(&telegram, "sendMessage").await.len(), 1);
}

#[tokio::test]
async fn a_server_error_is_retried_until_telegram_takes_the_reply() {
    let (app, telegram) = spawn().await;
    Mock::given(method("POST"))
        .and(path(bot("sendMessage")))
        .respond_with(refused(
            502,
            json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(bot("sendMessage")))
        .respond_with(sent(1303))
        .with_priority(2)
        .mount(&telegram)
        .await;
    post_update(&app, fixture!("telegram/text.json")).await;
    let conversation = conversation_id(&app).await;
    app.reply(&conversation, "hello").await;
    app.drain_outbox().await;
    let reply = outbound(&app, &conversation).await;
    assert_eq!(reply["delivery"]["status"], "sent");
    assert_eq!(reply["delivery"]["attempts"], 2);
    assert_eq!(reply["platform_message_id"], "5511223344:1303");
}

#[tokio::test]
async fn a_blocked_bot_is_a_permanent_failure_and_dead_letters_at_once() {
    let (app, telegram) = spawn().await;
    Mock::given(method("POST"))
        .and(path(bot("sendMessage")))
        .respond_with(refused(
            403,
            json!({"ok": false, "error_code": 403,
                   "description": "Forbidden: bot was blocked by the user"}),
        ))
        .expect(1)
        .mount(&telegram)
        .await;
    post_update(&app, fixture!("telegram/text.json")).await;
    let conversation = conversation_id(&app).await;
    app.reply(&conversation, "hello").await;
    app.drain_outbox().await;

    let dead = items(app.get("/api/v1/deliveries?state=dead").await);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["attempts"], 1, "a 403 is not retried");
    let error = dead[0]["last_error"].as_str().unwrap();
    assert!(error.contains("bot was blocked by the user"), "{error}");
    let reply = outbound(&app, &conversation).await;
    assert_eq!(reply["delivery"]["status"], "failed");
}

#[tokio::test]
async fn an_unreachable_bot_api_is_retried_and_the_error_never_shows_the_token() {
    // Nothing listens on port 9 of loopback.
    let app = TestApp::spawn_with(Options {
        extra: channel("http://127.0.0.1:9"),
        retry_schedule_ms: vec![0, 10],
        ..Options::default()
    })
    .await;
    post_update(&app, fixture!("telegram/text.json")).await;
    let conversation = conversation_id(&app).await;
    app.reply(&conversation, "hello").await;
    app.drain_outbox().await;

    let dead = items(app.get("/api/v1/deliveries?state=dead").await);
    assert_eq!(dead[0]["attempts"], 2);
    let reply = outbound(&app, &conversation).await;
    let shown = format!("{dead:?} {reply}");
    assert!(shown.contains("could not connect"), "{shown}");
    assert!(
        !shown.contains("TEST-token"),
        "the bot token leaked: {shown}"
    );
}

#[tokio::test]
async fn an_edited_message_replaces_the_text_and_keeps_the_old_one() {
    let (app, _telegram) = spawn().await;
    post_update(&app, fixture!("telegram/text.json")).await;
    let edited = post_update(&app, fixture!("telegram/edited_message.json")).await;
    assert_eq!(
        edited["results"][0],
        json!({"result": "edited", "id": "5511223344:1201", "applied": true})
    );
    let conversation = conversation_id(&app).await;
    let messages = app.messages(&conversation).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["parts"][0]["text"], "Where is my order #2291?");
    assert_eq!(
        messages[0]["history"][0]["parts"][0]["text"],
        "Where is my order?"
    );
    assert_eq!(messages[0]["edited_at"], "2026-07-02T13:56:00Z");

    // Telegram redelivers an update it got no 200 for; so would anyone replaying it.
    let again = post_update(&app, fixture!("telegram/edited_message.json")).await;
    assert_eq!(
        again["results"][0],
        json!({"result": "edited", "id": "5511223344:1201", "applied": false, "skipped": "duplicate"})
    );
    let messages = app.messages(&conversation).await;
    assert_eq!(messages[0]["history"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn telegram_has_no_get_handshake() {
    let (app, _telegram) = spawn().await;
    let (status, body) = app.api(Method::GET, "/hooks/tg", None, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
}

#[tokio::test]
async fn a_wrong_or_missing_secret_token_is_refused_and_nothing_is_stored() {
    let (app, _telegram) = spawn().await;
    let wrong = post_update_with(&app, fixture!("telegram/text.json"), Some("guess")).await;
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_signature");
    let missing = post_update_with(&app, fixture!("telegram/text.json"), None).await;
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "missing_signature");
    assert!(app.conversations().await.is_empty());
}

#[tokio::test]
async fn a_redelivered_update_stores_nothing_twice() {
    let (app, _telegram) = spawn().await;
    post_update(&app, fixture!("telegram/text.json")).await;
    let again = post_update(&app, fixture!("telegram/text.json")).await;
    assert_eq!(
        (again["stored"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    let conversation = conversation_id(&app).await;
    assert_eq!(app.messages(&conversation).await.len(), 1);
}

#[tokio::test]
async fn updates_without_a_message_and_bot_messages_are_acknowledged_and_store_nothing() {
    let (app, _telegram) = spawn().await;
    for body in [
        fixture!("telegram/callback_query.json"),
        fixture!("telegram/bot_message.json"),
    ] {
        let answer = post_update(&app, body).await;
        assert_eq!(answer["stored"], 0);
    }
    assert!(app.conversations().await.is_empty());
}

#[tokio::test]
async fn a_malformed_update_is_400_naming_the_field() {
    let (app, _telegram) = spawn().await;
    let response = post_update_with(
        &app,
        &fixture!("telegram/text.json").replace("\"chat\"", "\"chats\""),
        Some(SECRET),
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("message.chat:"),
        "{body}"
    );
    assert!(app.conversations().await.is_empty());
}

#[tokio::test]
async fn a_rep_opens_an_inbound_photo_fetched_through_getfile() {
    let (app, telegram) = spawn().await;
    let jpeg = vec![0xFFu8, 0xD8, 0xFF, 0xE0, 1, 2, 3];
    Mock::given(method("POST"))
        .and(path(bot("getFile")))
        .and(body_json(json!({"file_id": "AgACAgQAAxkBAAIBLARGE"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "result": {"file_id": "AgACAgQAAxkBAAIBLARGE", "file_unique_id": "AQADlg",
                       "file_size": 7, "file_path": "photos/file_12.jpg"}
        })))
        .expect(1)
        .mount(&telegram)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/file/bot{BOT_TOKEN}/photos/file_12.jpg")))
        .respond_with(ResponseTemplate::new(200).set_body_raw(jpeg.clone(), "image/jpeg"))
        .expect(1)
        .mount(&telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(bot("getFile")))
        .and(body_json(json!({"file_id": "BQACAgQAAxkBAAIBDOC"})))
        .respond_with(refused(
            400,
            json!({"ok": false, "error_code": 400, "description": "Bad Request: invalid file_id"}),
        ))
        .mount(&telegram)
        .await;
    post_update(&app, fixture!("telegram/photo.json")).await;
    post_update(&app, fixture!("telegram/document.json")).await;
    let conversation = conversation_id(&app).await;
    let messages = app.messages(&conversation).await;
    let media = |id: &Value| {
        app.http
            .get(app.url(&format!(
                "/api/v1/messages/{}/parts/0/media",
                id.as_str().unwrap()
            )))
            .bearer_auth(REP_TOKEN)
            .send()
    };

    let photo = media(&messages[0]["id"]).await.unwrap();
    assert_eq!(photo.status(), 200);
    assert_eq!(photo.headers()["content-type"], "image/jpeg");
    let headers = format!("{:?}", photo.headers());
    assert!(!headers.contains("TEST-token"));
    assert_eq!(photo.bytes().await.unwrap().to_vec(), jpeg);

    let gone = media(&messages[1]["id"]).await.unwrap();
    assert_eq!(gone.status(), 404);
    let text = gone.text().await.unwrap();
    assert!(text.contains("invalid file_id"), "{text}");
    assert!(!text.contains("TEST-token"), "the bot token leaked: {text}");

    // The token stays out of what the API shows about the message, too.
    let (_, shown) = app
        .api(
            Method::GET,
            &format!("/api/v1/conversations/{conversation}/messages"),
            None,
            Some(ADMIN_TOKEN),
        )
        .await;
    assert!(!shown.to_string().contains("TEST-token"));
}

#[tokio::test]
async fn a_part_failing_after_the_first_went_out_is_noted_not_resent() {
    let (app, telegram) = spawn().await;
    Mock::given(method("POST"))
        .and(path(bot("sendMessage")))
        .respond_with(sent(1304))
        .expect(1)
        .mount(&telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(bot("sendDocument")))
        .respond_with(refused(
            502,
            json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
        ))
        .expect(1)
        .mount(&telegram)
        .await;
    post_update(&app, fixture!("telegram/text.json")).await;
    let conversation = conversation_id(&app).await;
    reply_with(
        &app,
        &conversation,
        json!({"parts": [
            {"type": "text", "text": "Here is your invoice"},
            {"type": "file", "media": {"url": "https://cdn.example.com/inv.pdf"}},
            {"type": "text", "text": "Anything else?"}
        ]}),
    )
    .await;
    app.drain_outbox().await;

    let reply = outbound(&app, &conversation).await;
    assert_eq!(
        reply["delivery"]["status"], "sent",
        "a retry would send the first text twice"
    );
    assert_eq!(reply["delivery"]["attempts"], 1);
    assert_eq!(reply["platform_message_id"], "5511223344:1304");
    let note = reply["delivery"]["note"].as_str().unwrap();
    assert!(
        note.contains("Part 2 (file) and any after it were not sent"),
        "{note}"
    );
}

#[tokio::test]
async fn a_reply_to_a_group_that_became_a_supergroup_goes_to_the_supergroup() {
    let (app, telegram) = spawn().await;
    let group = fixture!("telegram/text.json")
        .replace(
            "\"chat\": {\"id\": 5511223344, \"first_name\": \"Amara\", \"last_name\": \"Okafor\", \"username\": \"amara_o\", \"type\": \"private\"}",
            "\"chat\": {\"id\": -4012345678, \"title\": \"Acme orders\", \"type\": \"group\"}",
        );
    assert!(group.contains("-4012345678"), "the fixture changed");
    Mock::given(method("POST"))
        .and(path(bot("sendMessage")))
        .and(wiremock::matchers::body_partial_json(
            json!({"chat_id": -4012345678i64}),
        ))
        .respond_with(refused(
            400,
            json!({"ok": false, "error_code": 400,
                   "description": "Bad Request: group chat was upgraded to a supergroup chat",
                   "parameters": {"migrate_to_chat_id": -1009876543210i64}}),
        ))
        .expect(1)
        .mount(&telegram)
        .await;
    Mock::given(method("POST"))
        .and(path(bot("sendMessage")))
        .and(wiremock::matchers::body_partial_json(
            json!({"chat_id": -1009876543210i64}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "result": {"message_id": 12, "chat": {"id": -1009876543210i64, "type": "supergroup"},
                       "date": 1783001000, "text": "…"}
        })))
        .expect(1)
        .mount(&telegram)
        .await;
    post_update(&app, &group).await;
    let conversation = app.only_conversation().await;
    assert_eq!(conversation["platform_thread_id"], "-4012345678");
    let id = conversation["id"].as_str().unwrap();
    app.reply(id, "Noted").await;
    app.drain_outbox().await;

    let reply = outbound(&app, id).await;
    assert_eq!(reply["delivery"]["status"], "sent");
    assert_eq!(reply["platform_message_id"], "-1009876543210:12");
    assert!(
        reply["delivery"]["note"]
            .as_str()
            .unwrap()
            .contains("supergroup -1009876543210")
    );
}
