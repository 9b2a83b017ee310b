//! Slack end to end: wiremock plays the Web API and the files host (the channel's
//! `api_base` and `files_base`); events come in signed with the signing secret, replies
//! leave through `chat.postMessage` and the external upload flow.

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Options, REP_TOKEN, TestApp};
use crate::support::fixtures::fixture;

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const BOT_TOKEN: &str = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy";
const USER: &str = "U2147483697";

/// The app with a Slack channel `sl` whose Web API and files host are the returned mock.
async fn spawn() -> (TestApp, MockServer) {
    let slack = MockServer::start().await;
    let app = TestApp::spawn_with(Options {
        extra: format!(
            "[channels.sl]\nkind = \"slack\"\nbot_token = \"{BOT_TOKEN}\"\n\
             signing_secret = \"{SIGNING_SECRET}\"\napi_base = \"{0}/api\"\n\
             files_base = \"{0}\"\nmedia_allow_private = true\n",
            slack.uri()
        ),
        ..Options::default()
    })
    .await;
    (app, slack)
}

fn sign(ts: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SIGNING_SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts an event signed as Slack signs it, `retry` carrying `X-Slack-Retry-Num`.
async fn post_event_with(
    app: &TestApp,
    body: &str,
    signature: Option<String>,
    retry: Option<u32>,
) -> reqwest::Response {
    let ts = chrono::Utc::now().timestamp();
    let mut request = app
        .http
        .post(app.url("/hooks/sl"))
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", ts.to_string())
        .body(body.to_owned());
    request = request.header(
        "x-slack-signature",
        signature.unwrap_or_else(|| sign(ts, body)),
    );
    if let Some(n) = retry {
        request = request
            .header("x-slack-retry-num", n.to_string())
            .header("x-slack-retry-reason", "http_timeout");
    }
    request.send().await.expect("request reaches the app")
}

/// Posts a signed event; expects 200 and returns the answer.
async fn post_event(app: &TestApp, body: &str) -> Value {
    let response = post_event_with(app, body, None, None).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn ok(body: Value) -> ResponseTemplate {
    let mut body = body;
    body["ok"] = true.into();
    ResponseTemplate::new(200).set_body_json(body)
}

/// Bodies the mock got on `path`, oldest first.
async fn calls(slack: &MockServer, at: &str) -> Vec<wiremock::Request> {
    slack
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == at)
        .collect()
}

async fn json_calls(slack: &MockServer, at: &str) -> Vec<Value> {
    calls(slack, at)
        .await
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

async fn reply_with(app: &TestApp, conversation: &str, body: Value) {
    let (status, message) = app
        .api(
            Method::POST,
            &format!("/api/v1/conversations/{conversation}/messages"),
            Some(body),
            Some(REP_TOKEN),
        )
        .await;
    assert_eq!(status, 202, "{message}");
}

async fn outbound(app: &TestApp, conversation: &str) -> Value {
    app.messages(conversation)
        .await
        .into_iter()
        .rfind(|m| m["direction"] == "outbound")
        .expect("an outbound message")
}

fn id_of(conversation: &Value) -> String {
    conversation["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_url_verification_check_gets_its_challenge_back_and_stores_nothing() {
    let (app, _slack) = spawn().await;
    let answer = post_event(&app, fixture!("slack/url_verification.json")).await;
    assert_eq!(
        answer,
        json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    );
    assert!(app.conversations().await.is_empty());
}

#[tokio::test]
async fn forged_stale_and_unsigned_events_are_refused_with_401_and_store_nothing() {
    let (app, _slack) = spawn().await;
    let body = fixture!("slack/dm_text.json");
    let forged = post_event_with(&app, body, Some("v0=00ff".into()), None).await;
    assert_eq!(forged.status(), 401);
    let forged: Value = forged.json().await.unwrap();
    assert_eq!(forged["error"]["code"], "invalid_signature");

    let stale_ts = chrono::Utc::now().timestamp() - 600;
    let stale = app
        .http
        .post(app.url("/hooks/sl"))
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", stale_ts.to_string())
        .header("x-slack-signature", sign(stale_ts, body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 401);
    let stale: Value = stale.json().await.unwrap();
    assert_eq!(stale["error"]["code"], "invalid_timestamp");

    let unsigned = app
        .http
        .post(app.url("/hooks/sl"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    // A forged url_verification gets no challenge back either.
    let forged_check = post_event_with(
        &app,
        fixture!("slack/url_verification.json"),
        Some("v0=00".into()),
        None,
    )
    .await;
    assert_eq!(forged_check.status(), 401);
    assert!(app.conversations().await.is_empty());
}

#[tokio::test]
async fn a_dm_comes_in_is_stored_once_across_slack_retries_and_the_reply_goes_back_to_the_dm() {
    let (app, slack) = spawn().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .and(header(
            "authorization",
            format!("Bearer {BOT_TOKEN}").as_str(),
        ))
        .respond_with(ok(
            json!({"channel": "D024BE91L", "ts": "1700000700.000800"}),
        ))
        .expect(1)
        .mount(&slack)
        .await;

    assert_eq!(
        post_event(&app, fixture!("slack/dm_text.json")).await["stored"],
        1
    );
    // Slack retries an event it thinks we missed, with the same body.
    let again = post_event_with(&app, fixture!("slack/dm_text.json"), None, Some(1)).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        (again["stored"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(1))
    );

    let conversation = app.only_conversation().await;
    assert_eq!(conversation["platform_thread_id"], "D024BE91L");
    assert_eq!(conversation["contact"]["display_name"], "Ana");
    assert_eq!(
        conversation["contact"]["identifiers"],
        json!([{"channel_id": "sl", "type": "slack_user", "value": USER}])
    );
    let id = id_of(&conversation);
    let inbound = &app.messages(&id).await[0];
    assert_eq!(
        inbound["platform_message_id"],
        "D024BE91L:1700000000.000100"
    );
    assert_eq!(
        inbound["parts"],
        json!([{"type": "text", "text": "Hello, my order has not arrived"}])
    );

    let (status, _) = app.reply(&id, "It ships today").await;
    assert_eq!(status, 202);
    app.drain_outbox().await;
    assert_eq!(
        json_calls(&slack, "/api/chat.postMessage").await,
        [json!({"channel": "D024BE91L", "text": "It ships today"})]
    );
    let reply = outbound(&app, &id).await;
    assert_eq!(reply["delivery"]["status"], "sent");
    assert_eq!(reply["platform_message_id"], "D024BE91L:1700000700.000800");

    // Our own reply comes back as an event: it is not the contact's message.
    let echo = post_event(&app, fixture!("slack/own_reply.json")).await;
    assert_eq!(echo["stored"], 0);
    assert_eq!(app.messages(&id).await.len(), 2);
}

#[tokio::test]
async fn a_channel_post_and_its_thread_are_one_conversation_answered_in_the_thread() {
    let (app, slack) = spawn().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(ok(
            json!({"channel": "C0SUPPORT", "ts": "1700000800.000900"}),
        ))
        .mount(&slack)
        .await;
    post_event(&app, fixture!("slack/channel_post.json")).await;
    post_event(&app, fixture!("slack/thread_reply.json")).await;
    let conversation = app.only_conversation().await;
    assert_eq!(
        conversation["platform_thread_id"],
        "C0SUPPORT/1700000100.000200"
    );
    let id = id_of(&conversation);
    assert_eq!(app.messages(&id).await.len(), 2);

    app.reply(&id, "Fixed in 4.2").await;
    app.drain_outbox().await;
    assert_eq!(
        json_calls(&slack, "/api/chat.postMessage").await,
        [json!({"channel": "C0SUPPORT", "text": "Fixed in 4.2", "thread_ts": "1700000100.000200"})]
    );
}

#[tokio::test]
async fn an_edit_keeps_the_earlier_text_and_a_deletion_retracts_the_message() {
    let (app, _slack) = spawn().await;
    post_event(&app, fixture!("slack/dm_text.json")).await;
    let answer = post_event(&app, fixture!("slack/message_changed.json")).await;
    assert_eq!(answer["stored"], 0);
    let id = id_of(&app.only_conversation().await);
    let message = &app.messages(&id).await[0];
    assert_eq!(
        message["parts"],
        json!([{"type": "text", "text": "Hello, my order #1234 has not arrived"}])
    );
    assert_eq!(
        message["history"][0]["parts"],
        json!([{"type": "text", "text": "Hello, my order has not arrived"}])
    );
    // The same edit again (a Slack retry) changes nothing.
    post_event_with(&app, fixture!("slack/message_changed.json"), None, Some(1)).await;
    let message = &app.messages(&id).await[0];
    assert_eq!(message["history"].as_array().unwrap().len(), 1);

    post_event(&app, fixture!("slack/message_deleted.json")).await;
    let message = &app.messages(&id).await[0];
    assert!(message["retracted_at"].is_string(), "{message}");
}

#[tokio::test]
async fn a_shared_file_is_fetched_with_the_bot_token_through_the_media_endpoint() {
    let (app, slack) = spawn().await;
    Mock::given(method("GET"))
        .and(path("/files-pri/T0001-F0LABEL/download/label.png"))
        .and(header(
            "authorization",
            format!("Bearer {BOT_TOKEN}").as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(b"\x89PNG\r\n\x1a\n".to_vec(), "image/png"),
        )
        .expect(1)
        .mount(&slack)
        .await;
    let body = fixture!("slack/file_share.json").replace("{FILES}", &slack.uri());
    assert_eq!(post_event(&app, &body).await["stored"], 1);
    let id = id_of(&app.only_conversation().await);
    let message = &app.messages(&id).await[0];
    assert_eq!(
        message["parts"][0],
        json!({"type": "text", "text": "Here is the label"})
    );
    assert_eq!(message["parts"][1]["type"], "image");
    assert_eq!(message["parts"][1]["media"]["filename"], "label.png");
    let media = app
        .http
        .get(app.url(&format!(
            "/api/v1/messages/{}/parts/1/media",
            message["id"].as_str().unwrap()
        )))
        .bearer_auth(REP_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(media.status(), 200);
    assert_eq!(media.bytes().await.unwrap().as_ref(), b"\x89PNG\r\n\x1a\n");
}

#[tokio::test]
async fn a_reply_with_a_file_uses_the_external_upload_flow_into_the_thread() {
    let (app, slack) = spawn().await;
    let pdf = b"%PDF-1.7 invoice".to_vec();
    Mock::given(method("GET"))
        .and(path("/cdn/invoice.pdf"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(pdf.clone(), "application/pdf"))
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(ok(
            json!({"channel": "C0SUPPORT", "ts": "1700000900.000100"}),
        ))
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/files.getUploadURLExternal"))
        .respond_with(ok(json!({
            "upload_url": format!("{}/upload/v1/abc", slack.uri()), "file_id": "F0INVOICE"
        })))
        .expect(1)
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .and(path("/upload/v1/abc"))
        .respond_with(ResponseTemplate::new(200).set_body_string("OK - 16"))
        .expect(1)
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/files.completeUploadExternal"))
        .respond_with(ok(json!({"files": [{"id": "F0INVOICE"}]})))
        .expect(1)
        .mount(&slack)
        .await;
    post_event(&app, fixture!("slack/channel_post.json")).await;
    let id = id_of(&app.only_conversation().await);
    reply_with(
        &app,
        &id,
        json!({"parts": [
            {"type": "text", "text": "Your invoice:"},
            {"type": "file", "caption": "March", "media": {"url": format!("{}/cdn/invoice.pdf", slack.uri())}}
        ]}),
    )
    .await;
    app.drain_outbox().await;

    let grant = &calls(&slack, "/api/files.getUploadURLExternal").await[0];
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&grant.body).unwrap();
    assert_eq!(
        form,
        [
            ("filename".to_owned(), "invoice.pdf".to_owned()),
            ("length".to_owned(), "16".to_owned())
        ]
    );
    assert_eq!(calls(&slack, "/upload/v1/abc").await[0].body, pdf);
    assert_eq!(
        json_calls(&slack, "/api/files.completeUploadExternal").await,
        [json!({
            "files": [{"id": "F0INVOICE", "title": "invoice.pdf"}],
            "channel_id": "C0SUPPORT", "thread_ts": "1700000100.000200",
            "initial_comment": "March"
        })]
    );
    let reply = outbound(&app, &id).await;
    assert_eq!(reply["delivery"]["status"], "sent");
    assert_eq!(reply["platform_message_id"], "C0SUPPORT:1700000900.000100");
}

#[tokio::test]
async fn slack_refusing_a_reply_fails_it_with_slack_s_error_and_never_leaks_the_token() {
    let (app, slack) = spawn().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": false, "error": "not_in_channel"})),
        )
        .mount(&slack)
        .await;
    post_event(&app, fixture!("slack/channel_post.json")).await;
    let id = id_of(&app.only_conversation().await);
    app.reply(&id, "Hello?").await;
    app.drain_outbox().await;
    let reply = outbound(&app, &id).await;
    assert_eq!(reply["delivery"]["status"], "failed");
    assert_eq!(
        reply["delivery"]["error"],
        "chat.postMessage: Slack refused it: not_in_channel"
    );
    let page = app.get("/api/v1/deliveries?state=dead").await.to_string();
    assert!(!page.contains(BOT_TOKEN));
}
