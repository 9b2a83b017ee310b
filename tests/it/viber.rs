//! Viber end to end: wiremock plays the REST bot API (the channel's `api_base`); callbacks
//! come in signed with the auth token, replies leave through `/pa/send_message`.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Options, REP_TOKEN, TestApp, items, wait_until};
use crate::support::fixtures::fixture;

const AUTH_TOKEN: &str = "4453b6ac12345678-e02c5f12174805f9-daec9cbb5448c51r";
const USER: &str = "h7Qx2mK9vP4rT1wZ8cN3bA==";
const SENT_TOKEN: u64 = 5741311803571721087;

fn channel(api_base: &str) -> String {
    format!(
        "[channels.vb]\nkind = \"viber\"\nauth_token = \"{AUTH_TOKEN}\"\n\
         api_base = \"{api_base}\"\nsender_name = \"Acme Support\"\n"
    )
}

/// The app with a Viber channel `vb` whose API is the returned mock.
async fn spawn() -> (TestApp, MockServer) {
    let viber = MockServer::start().await;
    let app = TestApp::spawn_with(Options {
        extra: channel(&viber.uri()),
        ..Options::default()
    })
    .await;
    (app, viber)
}

fn sign(key: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

async fn post_callback_with(
    app: &TestApp,
    body: &str,
    signature: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url("/hooks/vb"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("x-viber-content-signature", signature);
    }
    request.send().await.expect("request reaches the app")
}

/// Posts a callback signed as Viber signs it; expects 200 and returns the answer.
async fn post_callback(app: &TestApp, body: &str) -> Value {
    let response = post_callback_with(app, body, Some(&sign(AUTH_TOKEN, body))).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Viber's answer to a send it took.
fn sent(token: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "status": 0, "status_message": "ok", "message_token": token, "chat_hostname": "SN-CHAT-05_"
    }))
}

/// Viber's answer to a send it refused: HTTP 200 with a status.
fn refused(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "status": status, "status_message": message, "chat_hostname": "SN-CHAT-05_"
    }))
}

async fn send_mock(viber: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/pa/send_message"))
        .respond_with(response)
        .mount(viber)
        .await;
}

async fn conversation_id(app: &TestApp) -> String {
    app.only_conversation().await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A conversation with the text fixture in it.
async fn conversation(app: &TestApp) -> String {
    post_callback(app, fixture!("viber/text.json")).await;
    conversation_id(app).await
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

/// Bodies the mock got on /pa/send_message, oldest first.
async fn sends(viber: &MockServer) -> Vec<Value> {
    viber
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/pa/send_message")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// The delivery waiting for its next try after at least one attempt.
async fn retrying_delivery(app: &TestApp) -> Value {
    let seen = std::sync::Mutex::new(Value::Null);
    wait_until(
        "a failed attempt is recorded",
        Duration::from_secs(10),
        || async {
            let page = app.get("/api/v1/deliveries?state=pending").await;
            let first = items(page).into_iter().next().unwrap_or(Value::Null);
            let attempted = first["attempts"].as_u64().is_some_and(|n| n >= 1);
            *seen.lock().unwrap() = first;
            attempted
        },
    )
    .await;
    seen.into_inner().unwrap()
}

fn wait_before_next_try(delivery: &Value) -> chrono::Duration {
    let time = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(delivery[field].as_str().unwrap()).unwrap()
    };
    time("run_at") - time("updated_at")
}

#[tokio::test]
async fn a_location_sent_with_a_comment_keeps_the_comment_as_a_text_part() {
    let (app, _viber) = spawn().await;
    let body = fixture!("viber/location.json").replace(
        r#""type":"location","#,
        r#""type":"location","text":"Meet me here, gate 4","#,
    );
    assert_eq!(post_callback(&app, &body).await["stored"], 1);
    let conversation = app.only_conversation().await;
    let messages = app.messages(conversation["id"].as_str().unwrap()).await;
    assert_eq!(
        messages[0]["parts"],
        json!([
            {"type": "location", "latitude": 50.4501, "longitude": 30.5234, "name": null, "address": null},
            {"type": "text", "text": "Meet me here, gate 4"}
        ])
    );
}

#[tokio::test]
async fn a_viber_message_comes_in_and_the_reply_goes_out_to_the_user() {
    let (app, viber) = spawn().await;
    Mock::given(method("POST"))
        .and(path("/pa/send_message"))
        .and(header("x-viber-auth-token", AUTH_TOKEN))
        .respond_with(sent(SENT_TOKEN))
        .expect(1)
        .mount(&viber)
        .await;

    let stored = post_callback(&app, fixture!("viber/text.json")).await;
    assert_eq!(stored["stored"], 1);
    let conversation = app.only_conversation().await;
    assert_eq!(conversation["channel_id"], "vb");
    assert_eq!(conversation["platform_thread_id"], USER);
    assert_eq!(conversation["contact"]["display_name"], "Olena");
    assert_eq!(
        conversation["contact"]["identifiers"],
        json!([{"channel_id": "vb", "type": "viber_user", "value": USER}])
    );
    let id = conversation["id"].as_str().unwrap();
    let inbound = &app.messages(id).await[0];
    assert_eq!(inbound["platform_message_id"], "5960076432594491601");
    assert_eq!(
        inbound["parts"],
        json!([{"type": "text", "text": "Is my parcel on its way?"}])
    );

    // A reply quotes nothing unless the rep chose a message (Viber could not show it).
    let (status, queued) = app.reply(id, "On its way").await;
    assert_eq!(status, 202);
    assert_eq!(queued["reply_to"], Value::Null);
    app.drain_outbox().await;

    assert_eq!(
        sends(&viber).await,
        [json!({
            "receiver": USER,
            "type": "text",
            "text": "On its way",
            "sender": {"name": "Acme Support"}
        })]
    );
    let reply = outbound(&app, id).await;
    assert_eq!(reply["delivery"]["status"], "sent");
    assert_eq!(reply["platform_message_id"], SENT_TOKEN.to_string());
}

#[tokio::test]
async fn delivered_and_seen_callbacks_move_the_reply_forward_only() {
    let (app, viber) = spawn().await;
    send_mock(&viber, sent(SENT_TOKEN)).await;
    let conversation = conversation(&app).await;
    app.reply(&conversation, "On its way").await;
    app.drain_outbox().await;

    for (callback, expected) in [
        (fixture!("viber/delivered.json"), "delivered"),
        (fixture!("viber/seen.json"), "read"),
        (fixture!("viber/failed.json"), "read"),
    ] {
        let answer = post_callback(&app, callback).await;
        assert_eq!(answer["stored"], 0, "a status is not a message");
        let reply = outbound(&app, &conversation).await;
        assert_eq!(reply["delivery"]["status"], expected, "after {callback}");
    }
}

#[tokio::test]
async fn a_failed_callback_marks_the_reply_failed_with_viber_s_reason() {
    let (app, viber) = spawn().await;
    send_mock(&viber, sent(SENT_TOKEN)).await;
    let conversation = conversation(&app).await;
    app.reply(&conversation, "On its way").await;
    app.drain_outbox().await;
    post_callback(&app, fixture!("viber/failed.json")).await;
    let reply = outbound(&app, &conversation).await;
    assert_eq!(reply["delivery"]["status"], "failed");
    assert_eq!(reply["delivery"]["error"], "receiver is not subscribed");
}

#[tokio::test]
async fn an_image_reply_is_a_picture_with_its_description() {
    let (app, viber) = spawn().await;
    Mock::given(method("POST"))
        .and(path("/pa/send_message"))
        .and(body_json(json!({
            "receiver": USER, "sender": {"name": "Acme Support"},
            "type": "picture", "media": "https://cdn.example.com/label.png",
            "text": "Your return label"
        })))
        .respond_with(sent(SENT_TOKEN))
        .expect(1)
        .mount(&viber)
        .await;
    let conversation = conversation(&app).await;
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
    assert!(reply["delivery"].get("note").is_none());
}

#[tokio::test]
async fn audio_goes_as_a_file_sizes_are_looked_up_and_what_viber_cannot_take_is_a_link() {
    let (app, viber) = spawn().await;
    send_mock(&viber, sent(SENT_TOKEN)).await;
    // The video's size comes from a HEAD request; the second file has none to give.
    Mock::given(method("HEAD"))
        .and(path("/media/how-to.mp4"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(vec![0u8; 2048], "video/mp4"))
        .mount(&viber)
        .await;
    Mock::given(method("HEAD"))
        .and(path("/media/gone.pdf"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&viber)
        .await;
    let media = |name: &str| format!("{}/media/{name}", viber.uri());
    let conversation = conversation(&app).await;
    reply_with(
        &app,
        &conversation,
        json!({"parts": [
            {"type": "voice_note", "media": {"url": media("note.ogg"), "size_bytes": 5120}},
            {"type": "video", "media": {"url": media("how-to.mp4")}},
            {"type": "file", "media": {"url": media("gone.pdf")}},
            {"type": "sticker", "media": {"url": media("wave.webp")}}
        ]}),
    )
    .await;
    app.drain_outbox().await;

    let bodies: Vec<Value> = sends(&viber)
        .await
        .into_iter()
        .map(|mut b| {
            let object = b.as_object_mut().unwrap();
            object.remove("receiver");
            object.remove("sender");
            b
        })
        .collect();
    assert_eq!(
        bodies,
        [
            json!({"type": "file", "media": media("note.ogg"), "size": 5120, "file_name": "note.ogg"}),
            json!({"type": "video", "media": media("how-to.mp4"), "size": 2048}),
            json!({"type": "text", "text": media("gone.pdf")}),
            json!({"type": "text", "text": media("wave.webp")}),
        ]
    );
    let reply = outbound(&app, &conversation).await;
    assert_eq!(reply["delivery"]["status"], "sent");
    let note = reply["delivery"]["note"].as_str().unwrap();
    for expected in [
        "Part 1 (voice_note) was sent as a file",
        "Part 3 (file) was sent as a link",
        "Part 4 (sticker) was sent as a link",
    ] {
        assert!(note.contains(expected), "{expected:?} not in {note:?}");
    }
}

#[tokio::test]
async fn viber_s_too_many_requests_status_is_a_rate_limit_not_a_quick_retry() {
    // The schedule alone would retry after 50 ms.
    let (app, viber) = spawn().await;
    send_mock(&viber, refused(12, "tooManyRequests")).await;
    let conversation = conversation(&app).await;
    app.reply(&conversation, "hello").await;
    let delivery = retrying_delivery(&app).await;
    assert!(
        delivery["last_error"]
            .as_str()
            .unwrap()
            .contains("Viber status 12: tooManyRequests")
    );
    let wait = wait_before_next_try(&delivery);
    assert!(
        wait >= chrono::Duration::milliseconds(900),
        "next try in {wait}: a rate limit waits at least a second"
    );
}

#[tokio::test]
async fn an_http_429_waits_for_its_retry_after() {
    let (app, viber) = spawn().await;
    send_mock(
        &viber,
        ResponseTemplate::new(429).insert_header("retry-after", "30"),
    )
    .await;
    let conversation = conversation(&app).await;
    app.reply(&conversation, "hello").await;
    let delivery = retrying_delivery(&app).await;
    let wait = wait_before_next_try(&delivery);
    assert!(wait >= chrono::Duration::seconds(29), "next try in {wait}");
}

#[tokio::test]
async fn a_server_error_is_retried_until_viber_takes_the_reply() {
    let (app, viber) = spawn().await;
    Mock::given(method("POST"))
        .and(path("/pa/send_message"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&viber)
        .await;
    Mock::given(method("POST"))
        .and(path("/pa/send_message"))
        .respond_with(sent(SENT_TOKEN))
        .with_priority(2)
        .mount(&viber)
        .await;
    let conversation = conversation(&app).await;
    app.reply(&conversation, "hello").await;
    app.drain_outbox().await;
    let reply = outbound(&app, &conversation).await;
    assert_eq!(reply["delivery"]["status"], "sent");
    assert_eq!(reply["delivery"]["attempts"], 2);
}

#[tokio::test]
async fn a_refusal_in_a_200_answer_dead_letters_at_once() {
    let (app, viber) = spawn().await;
    send_mock(&viber, refused(6, "receiverNotSubscribed")).await;
    let conversation = conversation(&app).await;
    app.reply(&conversation, "hello").await;
    app.drain_outbox().await;

    let dead = items(app.get("/api/v1/deliveries?state=dead").await);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["attempts"], 1, "a refusal is not retried");
    assert_eq!(
        dead[0]["last_error"],
        "Viber status 6: receiverNotSubscribed"
    );
    assert_eq!(
        outbound(&app, &conversation).await["delivery"]["status"],
        "failed"
    );
}

#[tokio::test]
async fn the_webhook_check_is_answered_and_stores_nothing_and_get_is_not_a_handshake() {
    let (app, _viber) = spawn().await;
    for callback in [
        fixture!("viber/webhook.json"),
        fixture!("viber/subscribed.json"),
        fixture!("viber/conversation_started.json"),
    ] {
        let answer = post_callback(&app, callback).await;
        assert_eq!(answer["stored"], 0);
    }
    assert!(app.conversations().await.is_empty());
    let (status, _) = app.api(Method::GET, "/hooks/vb", None, None).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn a_wrong_or_missing_signature_is_refused_and_nothing_is_stored() {
    let (app, _viber) = spawn().await;
    let body = fixture!("viber/text.json");
    let forged = post_callback_with(&app, body, Some(&sign("not-the-token", body))).await;
    assert_eq!(forged.status(), 401);
    let tampered = post_callback_with(
        &app,
        &body.replace("parcel", "parcels"),
        Some(&sign(AUTH_TOKEN, body)),
    )
    .await;
    assert_eq!(tampered.status(), 401);
    let missing = post_callback_with(&app, body, None).await;
    assert_eq!(missing.status(), 401);
    let answer: Value = missing.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "missing_signature");
    assert!(app.conversations().await.is_empty());
}

#[tokio::test]
async fn a_redelivered_callback_stores_nothing_twice() {
    let (app, _viber) = spawn().await;
    post_callback(&app, fixture!("viber/text.json")).await;
    let again = post_callback(&app, fixture!("viber/text.json")).await;
    assert_eq!(
        (again["stored"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    let conversation = conversation_id(&app).await;
    assert_eq!(app.messages(&conversation).await.len(), 1);
}

#[tokio::test]
async fn a_rep_opens_an_inbound_picture_from_its_viber_url_without_the_token() {
    let (app, viber) = spawn().await;
    let jpeg = vec![0xFFu8, 0xD8, 0xFF, 0xE0, 9, 9];
    Mock::given(method("GET"))
        .and(path("/5/media/IMG_0042.jpg"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(jpeg.clone(), "image/jpeg"))
        .expect(1)
        .mount(&viber)
        .await;
    let body = fixture!("viber/picture.json").replace(
        "https://dl-media.viber.com/5/media/2/short/any/sig/image/0x0/IMG_0042.jpg",
        &format!("{}/5/media/IMG_0042.jpg", viber.uri()),
    );
    post_callback(&app, &body).await;
    let conversation = conversation_id(&app).await;
    let message = &app.messages(&conversation).await[0];
    assert_eq!(message["parts"][0]["type"], "image");

    let response = app
        .http
        .get(app.url(&format!(
            "/api/v1/messages/{}/parts/0/media",
            message["id"].as_str().unwrap()
        )))
        .bearer_auth(REP_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-disposition"],
        "inline; filename=\"IMG_0042.jpg\""
    );
    assert!(!format!("{:?}", response.headers()).contains(AUTH_TOKEN));
    assert_eq!(response.bytes().await.unwrap().to_vec(), jpeg);

    let fetch = viber
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/5/media/IMG_0042.jpg")
        .unwrap();
    assert!(
        fetch.headers.get("x-viber-auth-token").is_none(),
        "the token is not sent to a URL from a payload"
    );
}

#[tokio::test]
async fn a_part_refused_after_the_first_went_out_is_noted_not_resent() {
    let (app, viber) = spawn().await;
    Mock::given(method("POST"))
        .and(path("/pa/send_message"))
        .and(wiremock::matchers::body_partial_json(
            json!({"type": "text"}),
        ))
        .respond_with(sent(SENT_TOKEN))
        .expect(1)
        .mount(&viber)
        .await;
    Mock::given(method("POST"))
        .and(path("/pa/send_message"))
        .and(wiremock::matchers::body_partial_json(
            json!({"type": "picture"}),
        ))
        .respond_with(refused(3, "badData"))
        .expect(1)
        .mount(&viber)
        .await;
    let conversation = conversation(&app).await;
    reply_with(
        &app,
        &conversation,
        json!({"parts": [
            {"type": "text", "text": "Here is the label"},
            {"type": "image", "media": {"url": "https://cdn.example.com/label.png"}},
            {"type": "text", "text": "Anything else?"}
        ]}),
    )
    .await;
    app.drain_outbox().await;
    let reply = outbound(&app, &conversation).await;
    assert_eq!(reply["delivery"]["status"], "sent");
    assert_eq!(reply["delivery"]["attempts"], 1);
    assert_eq!(reply["platform_message_id"], SENT_TOKEN.to_string());
    let note = reply["delivery"]["note"].as_str().unwrap();
    assert!(
        note.contains("Part 2 (image) and any after it were not sent: Viber status 3: badData"),
        "{note}"
    );
}
