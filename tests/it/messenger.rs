//! Messenger end to end: Meta-signed Page webhooks in, the Send API (played by wiremock
//! at the channel's `api_base`) out.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Options, REP_TOKEN, TestApp, items, wait_until};

const APP_SECRET: &str = "it-messenger-app-secret";
const TOKEN: &str = "EAAB-it-messenger-page-token";
const VERIFY_TOKEN: &str = "it-messenger-verify-token";
const PAGE: &str = "104893211234567";
const PSID: &str = "7210934512867345";
const SEND_PATH: &str = "/v26.0/me/messages";

/// The app with an `fb` channel whose Graph API is `graph`.
struct Messenger {
    app: TestApp,
    graph: MockServer,
}

impl Messenger {
    async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    async fn spawn_with(mut options: Options) -> Self {
        let graph = MockServer::start().await;
        options.extra = format!(
            r#"
[channels.fb]
kind = "messenger"
page_access_token = "{TOKEN}"
app_secret = "{APP_SECRET}"
verify_token = "{VERIFY_TOKEN}"
api_base = "{}/v26.0"
{}
"#,
            graph.uri(),
            options.extra
        );
        let app = TestApp::spawn_with(options).await;
        Self { app, graph }
    }

    /// POSTs a webhook body signed the way Meta signs it.
    async fn post(&self, body: &Value) -> reqwest::Response {
        let bytes = body.to_string().into_bytes();
        let signature = signature(APP_SECRET, &bytes);
        self.post_raw(bytes, Some(signature)).await
    }

    async fn post_raw(&self, body: Vec<u8>, signature: Option<String>) -> reqwest::Response {
        let mut request = self
            .app
            .http
            .post(self.app.url("/hooks/fb"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        request.send().await.expect("request reaches the app")
    }

    /// Mounts the Send API answering every message with `mid`, requiring the Page token.
    async fn accept_sends(&self, mid: &str) {
        Mock::given(method("POST"))
            .and(path(SEND_PATH))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(accepted(mid))
            .mount(&self.graph)
            .await;
    }

    /// Requests to the Send API, oldest first.
    async fn sent_requests(&self) -> Vec<wiremock::Request> {
        self.graph
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == SEND_PATH)
            .collect()
    }

    async fn sent(&self) -> Vec<Value> {
        self.sent_requests()
            .await
            .iter()
            .map(|r| serde_json::from_slice(&r.body).expect("send body is JSON"))
            .collect()
    }

    /// A conversation with one text from the contact (`m_IN1`); returns its id.
    async fn conversation(&self) -> String {
        let response = self
            .post(&webhook(vec![text_event("m_IN1", "Where is my order?")]))
            .await;
        assert_eq!(response.status(), 200);
        self.app.only_conversation().await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn reply_with(&self, conversation: &str, body: Value) -> Value {
        let (status, queued) = self
            .app
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

    async fn outbound(&self, conversation: &str) -> Value {
        self.app
            .messages(conversation)
            .await
            .into_iter()
            .rfind(|m| m["direction"] == "outbound")
            .expect("an outbound message")
    }
}

fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn webhook(events: Vec<Value>) -> Value {
    json!({"object": "page", "entry": [{"id": PAGE, "time": 1783002420211u64, "messaging": events}]})
}

fn event(body: Value) -> Value {
    let mut event = json!({"sender": {"id": PSID}, "recipient": {"id": PAGE},
                           "timestamp": 1783002420000u64});
    for (k, v) in body.as_object().unwrap() {
        event[k] = v.clone();
    }
    event
}

fn text_event(mid: &str, text: &str) -> Value {
    event(json!({"message": {"mid": mid, "text": text}}))
}

fn accepted(mid: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"recipient_id": PSID, "message_id": mid}))
}

fn graph_error(status: u16, code: i64, subcode: Option<i64>, message: &str) -> ResponseTemplate {
    let mut error = json!({"message": message, "type": "OAuthException", "code": code,
                           "fbtrace_id": "BLBz/WZt8dN"});
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    ResponseTemplate::new(status).set_body_json(json!({"error": error}))
}

/// Milliseconds since the epoch, a minute ahead: a watermark covering everything sent.
fn watermark_ahead() -> i64 {
    chrono::Utc::now().timestamp_millis() + 60_000
}

#[tokio::test]
async fn a_signed_message_is_stored_and_the_reply_reaches_the_send_api() {
    let messenger = Messenger::spawn().await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(accepted("m_OUT1"))
        .expect(1)
        .mount(&messenger.graph)
        .await;
    let response = messenger
        .post(&webhook(vec![text_event("m_IN1", "Where is my order?")]))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["stored"], 1);

    let conversation = messenger.app.only_conversation().await;
    assert_eq!(conversation["channel_id"], "fb");
    assert_eq!(
        conversation["contact"]["identifiers"],
        json!([{"channel_id": "fb", "type": "messenger_psid", "value": PSID}])
    );
    let id = conversation["id"].as_str().unwrap();
    let inbound = &messenger.app.messages(id).await[0];
    assert_eq!(inbound["platform_message_id"], "m_IN1");
    assert_eq!(
        inbound["parts"],
        json!([{"type": "text", "text": "Where is my order?"}])
    );

    let (status, _) = messenger.app.reply(id, "On its way").await;
    assert_eq!(status, 202);
    messenger.app.drain_outbox().await;

    // The rep chose no message to quote (and Messenger has no quoted replies for Pages).
    assert_eq!(
        messenger.sent().await,
        vec![
            json!({"recipient": {"id": PSID}, "messaging_type": "RESPONSE",
                    "message": {"text": "On its way"}})
        ]
    );
    let request = &messenger.sent_requests().await[0];
    assert_eq!(request.url.query(), None, "the token never goes in the URL");
    let sent = messenger.outbound(id).await;
    assert_eq!(sent["delivery"]["status"], "sent");
    assert_eq!(sent["platform_message_id"], "m_OUT1");
}

#[tokio::test]
async fn an_image_reply_goes_as_a_reusable_url_attachment_after_its_text() {
    let messenger = Messenger::spawn().await;
    messenger.accept_sends("m_OUT1").await;
    let conversation = messenger.conversation().await;
    messenger
        .reply_with(
            &conversation,
            json!({"parts": [
                {"type": "text", "text": "Here is your return label"},
                {"type": "image", "media": {"url": "https://cdn.example/label.png"}, "caption": "Print it"}
            ]}),
        )
        .await;
    messenger.app.drain_outbox().await;

    let messages: Vec<Value> = messenger
        .sent()
        .await
        .into_iter()
        .map(|b| b["message"].clone())
        .collect();
    assert_eq!(
        messages,
        vec![
            json!({"text": "Here is your return label"}),
            json!({"attachment": {"type": "image",
                   "payload": {"url": "https://cdn.example/label.png", "is_reusable": true}}}),
            json!({"text": "Print it"}),
        ]
    );
    assert_eq!(
        messenger.outbound(&conversation).await["platform_message_id"],
        "m_OUT1",
        "the first message's id names the reply"
    );
}

#[tokio::test]
async fn a_reply_quoting_a_chosen_message_goes_plainly_as_messenger_has_no_quotes() {
    let messenger = Messenger::spawn().await;
    messenger.accept_sends("m_OUT1").await;
    let conversation = messenger.conversation().await;
    messenger
        .post(&webhook(vec![text_event("m_IN2", "And the size?")]))
        .await;
    let first = messenger.app.messages(&conversation).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    messenger
        .reply_with(
            &conversation,
            json!({"parts": [{"type": "text", "text": "About your order:"}], "reply_to": first}),
        )
        .await;
    messenger.app.drain_outbox().await;

    let sent = &messenger.sent().await[0];
    assert_eq!(sent["message"], json!({"text": "About your order:"}));
    assert!(!sent.to_string().contains("m_IN1"), "{sent}");
    let reply = messenger.outbound(&conversation).await;
    assert_eq!(reply["delivery"]["status"], "sent");
    assert_eq!(
        reply["reply_to"],
        first.as_str(),
        "the quote is kept on our side"
    );
}

#[tokio::test]
async fn a_location_messenger_cannot_carry_goes_as_a_map_link_and_the_rep_is_told() {
    let messenger = Messenger::spawn().await;
    messenger.accept_sends("m_LOC_OUT").await;
    let conversation = messenger.conversation().await;
    messenger
        .reply_with(
            &conversation,
            json!({"parts": [{"type": "location", "latitude": 52.52, "longitude": 13.405,
                              "name": "Our shop"}]}),
        )
        .await;
    messenger.app.drain_outbox().await;

    assert_eq!(
        messenger.sent().await[0]["message"],
        json!({"text": "Our shop\nhttps://www.google.com/maps/search/?api=1&query=52.52,13.405"})
    );
    let message = messenger.outbound(&conversation).await;
    assert_eq!(message["delivery"]["status"], "sent");
    assert_eq!(
        message["delivery"]["note"],
        "part 1 (location) cannot be sent on Messenger and was sent as a map link"
    );
}

#[tokio::test]
async fn a_rate_limit_holds_the_reply_back_at_least_as_long_as_meta_asked() {
    let messenger = Messenger::spawn_with(Options {
        retry_schedule_ms: vec![0, 10, 10],
        ..Options::default()
    })
    .await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(
            graph_error(
                400,
                613,
                None,
                "(#613) Calls to this api have exceeded the rate limit.",
            )
            .insert_header("retry-after", "30"),
        )
        .mount(&messenger.graph)
        .await;
    let conversation = messenger.conversation().await;
    messenger.app.reply(&conversation, "hello").await;

    let pending = || async { items(messenger.app.get("/api/v1/deliveries?state=pending").await) };
    wait_until(
        "the first attempt is recorded",
        Duration::from_secs(10),
        || async { pending().await.first().is_some_and(|d| d["attempts"] == 1) },
    )
    .await;
    let delivery = &pending().await[0];
    assert!(
        delivery["last_error"].as_str().unwrap().contains("613"),
        "{delivery}"
    );
    let time =
        |key: &str| chrono::DateTime::parse_from_rfc3339(delivery[key].as_str().unwrap()).unwrap();
    let wait = time("run_at") - time("updated_at");
    assert!(
        wait >= chrono::Duration::seconds(29),
        "next attempt only {wait} after the rate limit"
    );
}

#[tokio::test]
async fn a_message_outside_the_window_is_dead_lettered_at_once() {
    let messenger = Messenger::spawn().await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(graph_error(
            400,
            10,
            Some(2018278),
            "(#10) This message is sent outside of allowed window.",
        ))
        .expect(1)
        .mount(&messenger.graph)
        .await;
    let conversation = messenger.conversation().await;
    messenger
        .app
        .reply(&conversation, "Are you still there?")
        .await;
    messenger.app.drain_outbox().await;

    let dead = items(messenger.app.get("/api/v1/deliveries?state=dead").await);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["attempts"], 1);
    let error = dead[0]["last_error"].as_str().unwrap();
    assert!(error.contains("10/2018278"), "{error}");
    assert!(!error.contains(TOKEN));
    assert_eq!(
        messenger.outbound(&conversation).await["delivery"]["status"],
        "failed"
    );
}

#[tokio::test]
async fn delivery_and_read_callbacks_move_the_reply_forward() {
    let messenger = Messenger::spawn().await;
    messenger.accept_sends("m_OUT1").await;
    let conversation = messenger.conversation().await;
    messenger.app.reply(&conversation, "Shipped today").await;
    messenger.app.drain_outbox().await;
    assert_eq!(
        messenger.outbound(&conversation).await["delivery"]["status"],
        "sent"
    );

    // A delivery naming our mid.
    let delivered = event(json!({"delivery": {"mids": ["m_OUT1"], "watermark": 1783002420000u64}}));
    assert_eq!(
        messenger.post(&webhook(vec![delivered])).await.status(),
        200
    );
    assert_eq!(
        messenger.outbound(&conversation).await["delivery"]["status"],
        "delivered"
    );
    // A read watermark covering everything sent so far.
    let read = event(json!({"read": {"watermark": watermark_ahead()}}));
    assert_eq!(messenger.post(&webhook(vec![read])).await.status(), 200);
    assert_eq!(
        messenger.outbound(&conversation).await["delivery"]["status"],
        "read"
    );
}

#[tokio::test]
async fn a_delivery_watermark_without_mids_moves_every_earlier_reply() {
    let messenger = Messenger::spawn().await;
    messenger.accept_sends("m_OUT1").await;
    let conversation = messenger.conversation().await;
    messenger.app.reply(&conversation, "one").await;
    messenger.app.reply(&conversation, "two").await;
    messenger.app.drain_outbox().await;

    let delivered = event(json!({"delivery": {"watermark": watermark_ahead()}}));
    assert_eq!(
        messenger.post(&webhook(vec![delivered])).await.status(),
        200
    );
    let statuses: Vec<Value> = messenger
        .app
        .messages(&conversation)
        .await
        .into_iter()
        .filter(|m| m["direction"] == "outbound")
        .map(|m| m["delivery"]["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("delivered"), json!("delivered")]);
}

#[tokio::test]
async fn an_edit_replaces_the_text_and_keeps_the_old_one() {
    let messenger = Messenger::spawn().await;
    let conversation = messenger.conversation().await;
    let edit = event(
        json!({"message_edit": {"mid": "m_IN1", "text": "Where is order 42?", "num_edit": 1}}),
    );
    assert_eq!(messenger.post(&webhook(vec![edit])).await.status(), 200);
    let message = &messenger.app.messages(&conversation).await[0];
    assert_eq!(
        message["parts"],
        json!([{"type": "text", "text": "Where is order 42?"}])
    );
    assert_eq!(
        message["history"][0]["parts"],
        json!([{"type": "text", "text": "Where is my order?"}])
    );
}

#[tokio::test]
async fn echoes_of_what_the_page_sent_are_not_stored() {
    let messenger = Messenger::spawn().await;
    let echo = json!({"sender": {"id": PAGE}, "recipient": {"id": PSID}, "timestamp": 1783002420000u64,
        "message": {"is_echo": true, "app_id": 1517776481860111u64, "mid": "m_ECHO1", "text": "From the inbox"}});
    let response = messenger.post(&webhook(vec![echo])).await;
    assert_eq!(response.status(), 200);
    assert!(messenger.app.conversations().await.is_empty());
}

#[tokio::test]
async fn the_subscription_handshake_echoes_the_challenge_for_the_right_token_only() {
    let messenger = Messenger::spawn().await;
    let get = |token: &str| {
        messenger
            .app
            .http
            .get(messenger.app.url(&format!(
                "/hooks/fb?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=9911"
            )))
            .send()
    };
    let ok = get(VERIFY_TOKEN).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "text/plain");
    assert_eq!(ok.text().await.unwrap(), "9911");
    assert_eq!(get("a-guess").await.unwrap().status(), 403);
}

#[tokio::test]
async fn a_wrong_or_missing_signature_is_refused_and_nothing_is_stored() {
    let messenger = Messenger::spawn().await;
    let body = webhook(vec![text_event("m_IN1", "hi")])
        .to_string()
        .into_bytes();
    let forged = messenger
        .post_raw(body.clone(), Some(signature("not-the-app-secret", &body)))
        .await;
    assert_eq!(forged.status(), 401);
    assert_eq!(messenger.post_raw(body, None).await.status(), 401);
    assert!(messenger.app.conversations().await.is_empty());
}

#[tokio::test]
async fn a_redelivered_webhook_stores_nothing_twice() {
    let messenger = Messenger::spawn().await;
    let body = webhook(vec![text_event("m_IN1", "hi")]);
    assert_eq!(messenger.post(&body).await.status(), 200);
    let again = messenger.post(&body).await;
    assert_eq!(again.status(), 200);
    let answer: Value = again.json().await.unwrap();
    assert_eq!(
        (answer["stored"].as_u64(), answer["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    let conversation = messenger.app.only_conversation().await;
    assert_eq!(
        messenger
            .app
            .messages(conversation["id"].as_str().unwrap())
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_rep_opens_an_inbound_attachment_fetched_with_the_token_which_never_reaches_them() {
    let messenger = Messenger::spawn().await;
    let png = vec![0x89u8, b'P', b'N', b'G'];
    Mock::given(method("GET"))
        .and(path("/cdn/photo1.png"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_raw(png.clone(), "image/png"))
        .expect(1)
        .mount(&messenger.graph)
        .await;
    let url = format!("{}/cdn/photo1.png?_nc_cat=1&oh=abc", messenger.graph.uri());
    let image = event(json!({"message": {"mid": "m_IMG1",
        "attachments": [{"type": "image", "payload": {"url": url}}]}}));
    assert_eq!(messenger.post(&webhook(vec![image])).await.status(), 200);
    let conversation = messenger.app.only_conversation().await;
    let message = &messenger
        .app
        .messages(conversation["id"].as_str().unwrap())
        .await[0];
    assert_eq!(message["parts"][0]["media"]["url"], url.as_str());

    let response = messenger
        .app
        .http
        .get(messenger.app.url(&format!(
            "/api/v1/messages/{}/parts/0/media",
            message["id"].as_str().unwrap()
        )))
        .bearer_auth(REP_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    let headers = format!("{:?}", response.headers());
    assert!(!headers.contains(TOKEN), "{headers}");
    assert_eq!(response.bytes().await.unwrap().to_vec(), png);
}
