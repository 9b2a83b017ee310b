//! WhatsApp Cloud end to end: Meta-signed webhooks in, the Graph API (played by wiremock
//! at the channel's `api_base`) out.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{ADMIN_TOKEN, Options, REP_TOKEN, TestApp, items, wait_until};

const APP_SECRET: &str = "it-whatsapp-app-secret";
const TOKEN: &str = "EAAG-it-whatsapp-access-token";
const VERIFY_TOKEN: &str = "it-whatsapp-verify-token";
const NUMBER: &str = "227118690421377";
const PRIYA: &str = "447700900123";
const SEND_PATH: &str = "/v26.0/227118690421377/messages";

/// The app with a `wa` channel whose Graph API is `graph`.
struct WhatsApp {
    app: TestApp,
    graph: MockServer,
}

impl WhatsApp {
    async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    async fn spawn_with(mut options: Options) -> Self {
        let graph = MockServer::start().await;
        options.extra = format!(
            r#"
[channels.wa]
kind = "whatsapp"
access_token = "{TOKEN}"
app_secret = "{APP_SECRET}"
verify_token = "{VERIFY_TOKEN}"
phone_number_id = "{NUMBER}"
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
            .post(self.app.url("/hooks/wa"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        request.send().await.expect("request reaches the app")
    }

    /// Mounts the send endpoint answering every message with `wamid`, requiring the token.
    async fn accept_sends(&self, wamid: &str) {
        Mock::given(method("POST"))
            .and(path(SEND_PATH))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(accepted(wamid))
            .mount(&self.graph)
            .await;
    }

    /// Bodies POSTed to the send endpoint, oldest first.
    async fn sent(&self) -> Vec<Value> {
        self.graph
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == SEND_PATH)
            .map(|r| serde_json::from_slice(&r.body).expect("send body is JSON"))
            .collect()
    }

    /// A conversation with one text from Priya (`wamid.IN1`); returns its id.
    async fn conversation(&self) -> String {
        let response = self
            .post(&webhook(vec![text_message(
                "wamid.IN1",
                "Where is my order?",
            )]))
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

fn webhook(messages: Vec<Value>) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "318204957716452", "changes": [{
    "field": "messages",
    "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550173344", "phone_number_id": NUMBER},
        "contacts": [{"profile": {"name": "Priya"}, "wa_id": PRIYA}],
        "messages": messages
    }}]}]})
}

fn statuses(list: Vec<Value>) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "318204957716452", "changes": [{
    "field": "messages",
    "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550173344", "phone_number_id": NUMBER},
        "statuses": list
    }}]}]})
}

fn text_message(id: &str, text: &str) -> Value {
    json!({"from": PRIYA, "id": id, "timestamp": "1783001480", "type": "text", "text": {"body": text}})
}

fn accepted(wamid: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": PRIYA, "wa_id": PRIYA}],
        "messages": [{"id": wamid}]
    }))
}

fn graph_error(status: u16, code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"error": {
        "message": message, "type": "OAuthException", "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": message},
        "fbtrace_id": "AbCdEf123"}}))
}

#[tokio::test]
async fn a_signed_message_is_stored_and_the_reply_reaches_the_graph_api_unquoted() {
    let wa = WhatsApp::spawn().await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(accepted("wamid.OUT1"))
        .expect(1)
        .mount(&wa.graph)
        .await;
    let response = wa
        .post(&webhook(vec![text_message(
            "wamid.IN1",
            "Where is my order?",
        )]))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["stored"], 1);

    let conversation = wa.app.only_conversation().await;
    assert_eq!(conversation["channel_id"], "wa");
    assert_eq!(conversation["contact"]["display_name"], "Priya");
    assert_eq!(
        conversation["contact"]["identifiers"],
        json!([{"channel_id": "wa", "type": "whatsapp_user", "value": PRIYA}])
    );
    let id = conversation["id"].as_str().unwrap();
    let inbound = &wa.app.messages(id).await[0];
    assert_eq!(inbound["platform_message_id"], "wamid.IN1");
    assert_eq!(
        inbound["parts"],
        json!([{"type": "text", "text": "Where is my order?"}])
    );

    let (status, _) = wa.app.reply(id, "On its way").await;
    assert_eq!(status, 202);
    wa.app.drain_outbox().await;

    // No `context`: WhatsApp would show the reply as a quote, and the rep chose none.
    assert_eq!(
        wa.sent().await,
        vec![json!({
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": PRIYA,
            "type": "text", "text": {"body": "On its way", "preview_url": false}
        })]
    );
    let sent = wa.outbound(id).await;
    assert_eq!(sent["delivery"]["status"], "sent");
    assert_eq!(sent["platform_message_id"], "wamid.OUT1");
}

#[tokio::test]
async fn an_image_reply_goes_by_link_with_the_text_before_it_as_its_caption() {
    let wa = WhatsApp::spawn().await;
    wa.accept_sends("wamid.IMG-OUT").await;
    let conversation = wa.conversation().await;
    wa.reply_with(
        &conversation,
        json!({"parts": [
            {"type": "text", "text": "Here is your return label"},
            {"type": "image", "media": {"url": "https://cdn.example/label.png", "mime_type": "image/png"}}
        ]}),
    )
    .await;
    wa.app.drain_outbox().await;

    let sent = wa.sent().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["type"], "image");
    assert_eq!(
        sent[0]["image"],
        json!({"link": "https://cdn.example/label.png", "caption": "Here is your return label"})
    );
    assert_eq!(
        wa.outbound(&conversation).await["platform_message_id"],
        "wamid.IMG-OUT"
    );
}

#[tokio::test]
async fn a_reply_quotes_the_message_the_rep_chose() {
    let wa = WhatsApp::spawn().await;
    wa.accept_sends("wamid.OUT1").await;
    let conversation = wa.conversation().await;
    wa.post(&webhook(vec![text_message(
        "wamid.IN2",
        "Also, can I change the size?",
    )]))
    .await;
    let first = wa.app.messages(&conversation).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wa.reply_with(
        &conversation,
        json!({"parts": [{"type": "text", "text": "About your order:"}], "reply_to": first}),
    )
    .await;
    wa.app.drain_outbox().await;

    assert_eq!(
        wa.sent().await[0]["context"],
        json!({"message_id": "wamid.IN1"})
    );
}

#[tokio::test]
async fn a_reply_to_a_username_account_is_addressed_by_its_business_scoped_id() {
    let wa = WhatsApp::spawn().await;
    wa.accept_sends("wamid.OUT1").await;
    let mut body = webhook(vec![
        json!({"from_user_id": "GB.1502576394655843", "id": "wamid.U1",
        "timestamp": "1783001480", "type": "text", "text": {"body": "hi"}}),
    ]);
    body["entry"][0]["changes"][0]["value"]["contacts"] =
        json!([{"profile": {"name": "Kai", "username": "@kai"}, "user_id": "GB.1502576394655843"}]);
    assert_eq!(wa.post(&body).await.status(), 200);
    let conversation = wa.app.only_conversation().await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wa.app.reply(&conversation, "Hello Kai").await;
    wa.app.drain_outbox().await;

    let sent = &wa.sent().await[0];
    assert_eq!(sent["recipient"], "GB.1502576394655843");
    assert!(sent.get("to").is_none(), "{sent}");
}

#[tokio::test]
async fn a_part_whatsapp_cannot_carry_as_is_goes_differently_and_the_rep_is_told() {
    let wa = WhatsApp::spawn().await;
    wa.accept_sends("wamid.STICKER-OUT").await;
    let conversation = wa.conversation().await;
    // WhatsApp stickers must be WebP: a PNG sticker goes as an image.
    wa.reply_with(
        &conversation,
        json!({"parts": [{"type": "sticker",
                          "media": {"url": "https://cdn.example/thumbs-up.png", "mime_type": "image/png"}}]}),
    )
    .await;
    wa.app.drain_outbox().await;

    let sent = wa.sent().await;
    assert_eq!(sent[0]["type"], "image");
    assert_eq!(
        sent[0]["image"],
        json!({"link": "https://cdn.example/thumbs-up.png"})
    );
    let message = wa.outbound(&conversation).await;
    assert_eq!(message["delivery"]["status"], "sent");
    assert_eq!(
        message["delivery"]["note"],
        "part 1 (sticker) is not a WebP image, which WhatsApp stickers must be, and was sent as an image"
    );
}

#[tokio::test]
async fn a_rate_limit_holds_the_reply_back_at_least_as_long_as_meta_asked() {
    // The schedule alone would try again after 10 ms.
    let wa = WhatsApp::spawn_with(Options {
        retry_schedule_ms: vec![0, 10, 10],
        ..Options::default()
    })
    .await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(
            graph_error(429, 130429, "(#130429) Rate limit hit").insert_header("retry-after", "30"),
        )
        .mount(&wa.graph)
        .await;
    let conversation = wa.conversation().await;
    wa.app.reply(&conversation, "hello").await;

    let pending = || async { items(wa.app.get("/api/v1/deliveries?state=pending").await) };
    wait_until(
        "the first attempt is recorded",
        Duration::from_secs(10),
        || async { pending().await.first().is_some_and(|d| d["attempts"] == 1) },
    )
    .await;
    let delivery = &pending().await[0];
    assert!(
        delivery["last_error"].as_str().unwrap().contains("130429"),
        "{delivery}"
    );
    let time =
        |key: &str| chrono::DateTime::parse_from_rfc3339(delivery[key].as_str().unwrap()).unwrap();
    let wait = time("run_at") - time("updated_at");
    assert!(
        wait >= chrono::Duration::seconds(29),
        "next attempt only {wait} after the rate limit"
    );
    assert_eq!(
        wa.outbound(&conversation).await["delivery"]["status"],
        "queued"
    );
}

#[tokio::test]
async fn a_permanent_graph_error_dead_letters_the_reply_at_once() {
    let wa = WhatsApp::spawn().await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(graph_error(
            400,
            131047,
            "Re-engagement message: more than 24 hours have passed",
        ))
        .expect(1)
        .mount(&wa.graph)
        .await;
    let conversation = wa.conversation().await;
    wa.app.reply(&conversation, "Are you still there?").await;
    wa.app.drain_outbox().await;

    let dead = items(wa.app.get("/api/v1/deliveries?state=dead").await);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["attempts"], 1, "a permanent error is not retried");
    let error = dead[0]["last_error"].as_str().unwrap();
    assert!(error.contains("131047"), "{error}");
    assert!(!error.contains(TOKEN));
    assert_eq!(
        wa.outbound(&conversation).await["delivery"]["status"],
        "failed"
    );
}

#[tokio::test]
async fn a_transient_graph_error_is_retried_until_the_reply_goes_out() {
    let wa = WhatsApp::spawn().await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(graph_error(500, 131000, "Something went wrong"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&wa.graph)
        .await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(accepted("wamid.OUT2"))
        .with_priority(2)
        .mount(&wa.graph)
        .await;
    let conversation = wa.conversation().await;
    wa.app.reply(&conversation, "hello").await;
    wa.app.drain_outbox().await;

    let sent = wa.outbound(&conversation).await;
    assert_eq!(sent["delivery"]["status"], "sent");
    assert_eq!(sent["delivery"]["attempts"], 2);
    assert_eq!(sent["platform_message_id"], "wamid.OUT2");
}

#[tokio::test]
async fn status_callbacks_move_the_reply_forward_and_never_back() {
    let wa = WhatsApp::spawn().await;
    wa.accept_sends("wamid.OUT1").await;
    let conversation = wa.conversation().await;
    wa.app.reply(&conversation, "Shipped today").await;
    wa.app.drain_outbox().await;

    let status = |s: &str| json!({"id": "wamid.OUT1", "status": s, "timestamp": "1783001600", "recipient_id": PRIYA});
    assert_eq!(
        wa.post(&statuses(vec![status("delivered")])).await.status(),
        200
    );
    assert_eq!(
        wa.outbound(&conversation).await["delivery"]["status"],
        "delivered"
    );
    wa.post(&statuses(vec![status("read")])).await;
    assert_eq!(
        wa.outbound(&conversation).await["delivery"]["status"],
        "read"
    );
    // A late `delivered` does not undo `read`.
    wa.post(&statuses(vec![status("delivered")])).await;
    assert_eq!(
        wa.outbound(&conversation).await["delivery"]["status"],
        "read"
    );
}

#[tokio::test]
async fn the_subscription_handshake_echoes_the_challenge_for_the_right_token_only() {
    let wa = WhatsApp::spawn().await;
    let get = |token: &str| {
        wa.app
            .http
            .get(wa.app.url(&format!(
                "/hooks/wa?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
            )))
            .send()
    };
    let ok = get(VERIFY_TOKEN).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "text/plain");
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    assert_eq!(get("a-guess").await.unwrap().status(), 403);
}

#[tokio::test]
async fn a_wrong_or_missing_signature_is_refused_and_nothing_is_stored() {
    let wa = WhatsApp::spawn().await;
    let body = webhook(vec![text_message("wamid.IN1", "hi")])
        .to_string()
        .into_bytes();
    let forged = wa
        .post_raw(body.clone(), Some(signature("not-the-app-secret", &body)))
        .await;
    assert_eq!(forged.status(), 401);
    assert_eq!(wa.post_raw(body, None).await.status(), 401);
    assert!(wa.app.conversations().await.is_empty());
}

#[tokio::test]
async fn a_redelivered_webhook_stores_nothing_twice() {
    let wa = WhatsApp::spawn().await;
    let body = webhook(vec![text_message("wamid.IN1", "hi")]);
    assert_eq!(wa.post(&body).await.status(), 200);
    let again = wa.post(&body).await;
    assert_eq!(again.status(), 200);
    let answer: Value = again.json().await.unwrap();
    assert_eq!(
        (answer["stored"].as_u64(), answer["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    let conversation = wa.app.only_conversation().await;
    assert_eq!(
        wa.app
            .messages(conversation["id"].as_str().unwrap())
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_rep_opens_an_inbound_image_fetched_with_the_token_which_never_reaches_them() {
    let wa = WhatsApp::spawn().await;
    let bearer = format!("Bearer {TOKEN}");
    let download = format!(
        "{}/whatsapp_business/attachments/?mid=1470623974238919",
        wa.graph.uri()
    );
    Mock::given(method("GET"))
        .and(path("/v26.0/1470623974238919"))
        .and(header("authorization", bearer.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp", "url": download, "mime_type": "image/jpeg",
            "sha256": "gvD6dwhpa3MGcYgUgDCjAQ4MtWLDTfeRN4c6T24rWRM=", "file_size": 4,
            "id": "1470623974238919"})))
        .expect(1)
        .mount(&wa.graph)
        .await;
    let jpeg = vec![0xffu8, 0xd8, 0xff, 0xe0];
    Mock::given(method("GET"))
        .and(path("/whatsapp_business/attachments/"))
        .and(header("authorization", bearer.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_raw(jpeg.clone(), "image/jpeg"))
        .expect(1)
        .mount(&wa.graph)
        .await;
    let image = json!({"from": PRIYA, "id": "wamid.IMG1", "timestamp": "1783001481", "type": "image",
        "image": {"caption": "The dent", "mime_type": "image/jpeg", "id": "1470623974238919"}});
    assert_eq!(wa.post(&webhook(vec![image])).await.status(), 200);
    let conversation = wa.app.only_conversation().await;
    let message = &wa.app.messages(conversation["id"].as_str().unwrap()).await[0];
    assert_eq!(
        message["parts"][0]["media"]["platform_ref"],
        "1470623974238919"
    );

    let response = wa
        .app
        .http
        .get(wa.app.url(&format!(
            "/api/v1/messages/{}/parts/0/media",
            message["id"].as_str().unwrap()
        )))
        .bearer_auth(REP_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    let headers = format!("{:?}", response.headers());
    assert!(!headers.contains(TOKEN), "{headers}");
    assert_eq!(response.bytes().await.unwrap().to_vec(), jpeg);
}

#[tokio::test]
async fn the_channel_lists_as_whatsapp() {
    let wa = WhatsApp::spawn().await;
    let (status, channels) = wa
        .app
        .api(Method::GET, "/api/v1/channels", None, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(status, 200);
    let listed = channels.to_string();
    assert!(listed.contains("\"whatsapp\""), "{listed}");
    assert!(!listed.contains(TOKEN) && !listed.contains(APP_SECRET));
}
