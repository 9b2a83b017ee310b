//! HubSpot replies out (issue #18): `POST /hubspot/webhook` takes only what HubSpot signed
//! (v3, within 5 minutes), stores each event once before answering, and a rep's message
//! goes out through the conversation's channel (a real generic adapter against wiremock)
//! with SENT / READ / FAILED reported back, each PATCH checked against HubSpot's spec by
//! the fake.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Options, TestApp, items, secret, wait_until};
use crate::support::hubspot_fake::{self, HubspotFake};

/// The URL HubSpot signs: `{server.public_url}/hubspot/webhook` of the test config.
const WEBHOOK_URL: &str = "https://bridge.example.test/hubspot/webhook";

/// A generic channel `hs` that sends to `platform` and is linked to the fake's account.
fn linked_options(fake: &HubspotFake, platform: &MockServer) -> Options {
    Options {
        extra: format!(
            "[channels.hs]\nkind = \"generic\"\nname = \"Support app\"\nsecret = \"{}\"\n\
             outbound_url = \"{}/outbound\"\nhubspot = {{ channel_account_id = \"{}\" }}\n\n{}\n",
            secret(),
            platform.uri(),
            hubspot_fake::CHANNEL_ACCOUNT_ID,
            fake.config_section(""),
        ),
        ..Options::default()
    }
}

async fn platform_answering(status: u16) -> MockServer {
    let platform = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ResponseTemplate::new(status).set_body_json(json!({"id": "plat-1"})))
        .mount(&platform)
        .await;
    platform
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Posts `body` to /hubspot/webhook signed with `secret` at `timestamp` (Unix ms).
async fn post_signed(app: &TestApp, body: &[u8], secret: &str, timestamp: i64) -> (u16, Value) {
    let timestamp = timestamp.to_string();
    let signature = channel_bridge::hubspot::signature::sign(
        secret.as_bytes(),
        "POST",
        WEBHOOK_URL,
        body,
        &timestamp,
    );
    let response = app
        .http
        .post(app.url("/hubspot/webhook"))
        .header("content-type", "application/json")
        .header("x-hubspot-signature-v3", signature)
        .header("x-hubspot-request-timestamp", timestamp)
        .body(body.to_vec())
        .send()
        .await
        .expect("request reaches the app");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Posts `event` as HubSpot does: signed with the app's client secret, now.
async fn post_hubspot(app: &TestApp, event: &Value) -> (u16, Value) {
    post_signed(
        app,
        event.to_string().as_bytes(),
        hubspot_fake::CLIENT_SECRET,
        now_ms(),
    )
    .await
}

/// A rep's message `id` in the thread of our conversation `conversation`.
fn rep_message(id: &str, conversation: &str, text: &str) -> Value {
    json!({
        "type": "OUTGOING_CHANNEL_MESSAGE_CREATED", "portalId": "243842089",
        "channelId": hubspot_fake::CHANNEL_ID, "eventId": format!("evt-{id}"),
        "channelIntegrationThreadIds": [conversation],
        "message": {
            "id": id, "type": "MESSAGE", "direction": "OUTGOING",
            "channelId": hubspot_fake::CHANNEL_ID,
            "channelAccountId": hubspot_fake::CHANNEL_ACCOUNT_ID,
            "text": text, "createdBy": "A-77",
            "senders": [{"actorId": "A-77", "name": "Sam Agent"}],
            "attachments": []
        }
    })
}

/// A contact writes in on `hs`; the conversation's id.
async fn contact_writes(app: &TestApp, id: &str) -> String {
    let event = json!({
        "type": "message", "id": id, "timestamp": "2026-11-21T10:00:00Z",
        "from": {"id": "u-7", "name": "Ana Lima"},
        "parts": [{"type": "text", "text": "Where is my order?"}]
    });
    assert_eq!(app.post_webhook("hs", &event).await.status(), 200);
    app.conversations().await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The bodies the platform got, oldest first.
async fn sent_to_platform(platform: &MockServer) -> Vec<Value> {
    platform
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == "/outbound")
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .collect()
}

/// Waits until HubSpot heard `status` about `message`; all it heard about it.
async fn reported(fake: &HubspotFake, message: &str, status: &str) -> Vec<Value> {
    wait_until(
        &format!("HubSpot hears {status} about {message}"),
        Duration::from_secs(20),
        || async {
            fake.status_updates()
                .iter()
                .any(|(id, body)| id == message && body["statusType"] == status)
        },
    )
    .await;
    fake.status_updates()
        .into_iter()
        .filter(|(id, _)| id == message)
        .map(|(_, body)| body)
        .collect()
}

#[tokio::test]
async fn forged_stale_and_unsigned_webhooks_are_refused_with_401_and_store_nothing() {
    let fake = HubspotFake::start().await;
    let platform = platform_answering(200).await;
    let app = TestApp::spawn_with(linked_options(&fake, &platform)).await;
    let conversation = contact_writes(&app, "m-1").await;
    let body = rep_message("hs-1", &conversation, "forged").to_string();

    let (status, error) = post_signed(&app, body.as_bytes(), "not-the-secret", now_ms()).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (401, Some("invalid_signature"))
    );
    let six_minutes_ago = now_ms() - 6 * 60 * 1000;
    let (status, error) = post_signed(
        &app,
        body.as_bytes(),
        hubspot_fake::CLIENT_SECRET,
        six_minutes_ago,
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (401, Some("invalid_timestamp"))
    );
    let unsigned = app
        .http
        .post(app.url("/hubspot/webhook"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let error: Value = unsigned.json().await.unwrap();
    assert_eq!(error["error"]["code"], "missing_signature");

    app.drain_outbox().await;
    assert_eq!(
        app.messages(&conversation).await.len(),
        1,
        "only the contact's message"
    );
    assert!(sent_to_platform(&platform).await.is_empty());
    assert!(fake.status_updates().is_empty());
}

#[tokio::test]
async fn a_reps_reply_is_sent_through_the_channel_and_reported_sent_then_read() {
    let fake = HubspotFake::start().await;
    let platform = platform_answering(200).await;
    let app = TestApp::spawn_with(linked_options(&fake, &platform)).await;
    let conversation = contact_writes(&app, "m-1").await;

    let (status, receipt) =
        post_hubspot(&app, &rep_message("hs-1", &conversation, "On its way!")).await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["received"], 1);
    assert_eq!(receipt["results"][0]["outcome"], "reply");
    assert_eq!(receipt["results"][0]["conversation_id"], conversation);

    let sent = reported(&fake, "hs-1", "SENT").await;
    assert_eq!(sent, [json!({"statusType": "SENT"})]);
    let delivered = sent_to_platform(&platform).await;
    assert_eq!(delivered.len(), 1);
    assert!(
        delivered[0].to_string().contains("On its way!"),
        "{}",
        delivered[0]
    );
    let ours = app.messages(&conversation).await;
    let reply = ours.iter().find(|m| m["direction"] == "outbound").unwrap();
    assert_eq!(reply["sender"]["id"], "hubspot:A-77");
    assert_eq!(reply["delivery"]["status"], "sent");

    // The platform says the contact read it.
    let read = json!({"type": "status", "id": "plat-1", "status": "read"});
    assert_eq!(app.post_webhook("hs", &read).await.status(), 200);
    let all = reported(&fake, "hs-1", "READ").await;
    assert_eq!(
        all,
        [json!({"statusType": "SENT"}), json!({"statusType": "READ"})]
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_replayed_webhook_answers_200_and_the_reply_goes_out_once() {
    let fake = HubspotFake::start().await;
    let platform = platform_answering(200).await;
    let app = TestApp::spawn_with(linked_options(&fake, &platform)).await;
    let conversation = contact_writes(&app, "m-1").await;
    let event = rep_message("hs-1", &conversation, "Once only");

    assert_eq!(post_hubspot(&app, &event).await.0, 200);
    let (status, replay) = post_hubspot(&app, &event).await;
    assert_eq!(status, 200);
    assert_eq!(
        (replay["received"].as_u64(), replay["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(replay["results"][0]["outcome"], "duplicate");
    // HubSpot's retry may carry another eventId: the message id still deduplicates.
    let mut retried = event.clone();
    retried["eventId"] = json!("evt-other");
    assert_eq!(post_hubspot(&app, &retried).await.1["duplicates"], 1);

    reported(&fake, "hs-1", "SENT").await;
    app.drain_outbox().await;
    assert_eq!(sent_to_platform(&platform).await.len(), 1);
    assert_eq!(app.messages(&conversation).await.len(), 2);
}

#[tokio::test]
async fn malformed_oversized_and_unconfigured_webhooks_are_refused_with_clear_errors() {
    let fake = HubspotFake::start().await;
    let platform = platform_answering(200).await;
    let app = TestApp::spawn_with(linked_options(&fake, &platform)).await;
    let cases: [(&[u8], u16, &str); 3] = [
        (b"{nope", 400, "malformed_json"),
        (br#"{"portalId": "1"}"#, 400, "invalid_event"),
        (
            br#"{"type": "OUTGOING_CHANNEL_MESSAGE_CREATED", "message": {}}"#,
            400,
            "invalid_event",
        ),
    ];
    for (body, status, code) in cases {
        let (got, error) = post_signed(&app, body, hubspot_fake::CLIENT_SECRET, now_ms()).await;
        assert_eq!(
            (got, error["error"]["code"].as_str()),
            (status, Some(code)),
            "{error}"
        );
    }
    let big = vec![b' '; 70 * 1024];
    let (got, error) = post_signed(&app, &big, hubspot_fake::CLIENT_SECRET, now_ms()).await;
    assert_eq!(
        (got, error["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );

    // Without [hubspot], HubSpot is told to come back.
    let plain = TestApp::spawn().await;
    let (got, error) = post_hubspot(&plain, &json!({"type": "X"})).await;
    assert_eq!(
        (got, error["error"]["code"].as_str()),
        (503, Some("hubspot_not_configured"))
    );
}

#[tokio::test]
async fn unknown_event_types_are_acknowledged_and_recorded_not_refused() {
    let fake = HubspotFake::start().await;
    let platform = platform_answering(200).await;
    let app = TestApp::spawn_with(linked_options(&fake, &platform)).await;
    let batch = json!([
        {"type": "SOMETHING_NEW", "eventId": "e-1", "portalId": "1"},
        {"type": "CHANNEL_ACCOUNT_CREATED", "eventId": "e-2", "channelAccountId": "9"}
    ]);
    let (status, receipt) = post_hubspot(&app, &batch).await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["results"][0]["outcome"], "ignored");
    assert_eq!(receipt["results"][0]["type"], "SOMETHING_NEW");
    assert_eq!(receipt["results"][1]["outcome"], "account");
    assert_eq!(post_hubspot(&app, &batch).await.1["duplicates"], 2);
}

#[tokio::test]
async fn a_reply_in_a_thread_we_published_finds_its_conversation_by_hubspots_thread_id() {
    let fake = HubspotFake::start().await;
    let platform = platform_answering(200).await;
    let app = TestApp::spawn_with(linked_options(&fake, &platform)).await;
    let conversation = contact_writes(&app, "m-1").await;
    wait_until(
        "the message is published",
        Duration::from_secs(20),
        || async { !fake.messages().is_empty() },
    )
    .await;
    // The link to HubSpot's ids is recorded after HubSpot answers, before the publish
    // job ends: a rep's message naming those ids comes after it.
    app.drain_outbox().await;
    let thread = fake.messages()[0]["conversationsThreadId"].clone();
    let mut event = rep_message("hs-2", "conv_not_ours", "By thread");
    event["channelIntegrationThreadIds"] = json!([]);
    event["message"]["conversationsThreadId"] = thread;
    let (_, receipt) = post_hubspot(&app, &event).await;
    assert_eq!(
        receipt["results"][0]["conversation_id"],
        conversation.as_str()
    );
    reported(&fake, "hs-2", "SENT").await;

    // A thread nobody knows: acknowledged, and HubSpot shows the rep it failed.
    let mut lost = rep_message("hs-3", "conv_not_ours", "Nowhere");
    lost["message"]["conversationsThreadId"] = json!("999");
    let (status, receipt) = post_hubspot(&app, &lost).await;
    assert_eq!(status, 200);
    assert_eq!(receipt["results"][0]["outcome"], "unroutable");
    let failed = reported(&fake, "hs-3", "FAILED").await;
    assert!(
        failed[0]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("no conversation"),
        "{failed:?}"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_reply_the_platform_refuses_is_reported_failed_with_the_platforms_error() {
    let fake = HubspotFake::start().await;
    let platform = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"error": "recipient blocked the bot"})),
        )
        .mount(&platform)
        .await;
    let app = TestApp::spawn_with(linked_options(&fake, &platform)).await;
    let conversation = contact_writes(&app, "m-1").await;
    post_hubspot(&app, &rep_message("hs-4", &conversation, "Hello?")).await;
    let failed = reported(&fake, "hs-4", "FAILED").await;
    assert_eq!(failed.len(), 1);
    let text = failed[0]["errorMessage"].as_str().unwrap();
    assert!(text.contains("recipient blocked the bot"), "{text}");
    let dead = items(app.get("/api/v1/deliveries?state=dead").await);
    assert_eq!(dead.len(), 1, "{dead:?}");
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_reps_file_goes_out_as_a_fresh_signed_link_on_every_attempt() {
    let fake = HubspotFake::start().await;
    let platform = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&platform)
        .await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "plat-9"})))
        .with_priority(2)
        .mount(&platform)
        .await;
    let app = TestApp::spawn_with(linked_options(&fake, &platform)).await;
    let conversation = contact_writes(&app, "m-1").await;
    let mut event = rep_message("hs-5", &conversation, "The invoice");
    event["message"]["attachments"] = json!([{
        "type": "FILE", "fileId": "777", "name": "invoice.pdf",
        "url": "https://api-na1.hubspot.net/expiring/invoice.pdf?sig=old"
    }]);
    post_hubspot(&app, &event).await;
    reported(&fake, "hs-5", "SENT").await;

    let attempts = sent_to_platform(&platform).await;
    assert_eq!(attempts.len(), 2, "a failed attempt, then the send");
    let link = |body: &Value| {
        body["parts"][1]["media"]["url"]
            .as_str()
            .unwrap_or_else(|| panic!("no file link in {body}"))
            .to_owned()
    };
    let (first, second) = (link(&attempts[0]), link(&attempts[1]));
    assert!(first.contains("/signed/777"), "{first}");
    assert!(second.contains("/signed/777"), "{second}");
    assert_ne!(first, second, "each attempt asks for a new link");
    assert!(!attempts[1].to_string().contains("sig=old"));
    assert_eq!(attempts[1]["parts"][1]["type"], "file");
    let signed: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/files/v3/files/777/signed-url")
        .collect();
    assert_eq!(signed.len(), 2);
    assert!(signed[0].query.contains_key("expirationSeconds"));
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_deauthorized_account_parks_publishing_shows_in_channels_and_resumes() {
    let fake = HubspotFake::start().await;
    let platform = platform_answering(200).await;
    let app = TestApp::spawn_with(linked_options(&fake, &platform)).await;
    let account = |authorized: bool, id: &str| {
        json!({"type": "CHANNEL_ACCOUNT_UPDATED", "eventId": id, "portalId": "1",
            "channelId": hubspot_fake::CHANNEL_ID,
            "channelAccountId": hubspot_fake::CHANNEL_ACCOUNT_ID, "authorized": authorized})
    };
    let hs_channel = |channels: Value| {
        items(channels)
            .into_iter()
            .find(|c| c["id"] == "hs")
            .unwrap()
    };
    assert_eq!(
        hs_channel(app.get("/api/v1/channels").await)["hubspot"]["state"],
        "unknown"
    );
    assert_eq!(post_hubspot(&app, &account(false, "e-off")).await.0, 200);
    let listed = hs_channel(app.get("/api/v1/channels").await);
    assert_eq!(listed["hubspot"]["state"], "deauthorized", "{listed}");
    assert_eq!(
        listed["hubspot"]["channel_account_id"],
        hubspot_fake::CHANNEL_ACCOUNT_ID
    );
    assert_eq!(hs_channel(app.get("/api/v1/channels").await)["id"], "hs");

    contact_writes(&app, "m-1").await;
    wait_until("the publish is parked", Duration::from_secs(20), || async {
        items(app.get("/api/v1/deliveries?state=pending").await)
            .iter()
            .any(|d| {
                d["last_error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("parked:"))
            })
    })
    .await;
    assert!(
        fake.messages().is_empty(),
        "nothing is published while parked"
    );
    let dead = items(app.get("/api/v1/deliveries?state=dead").await);
    assert!(dead.is_empty(), "parked, not failed: {dead:?}");

    assert_eq!(post_hubspot(&app, &account(true, "e-on")).await.0, 200);
    wait_until("the publish resumes", Duration::from_secs(20), || async {
        !fake.messages().is_empty()
    })
    .await;
    assert_eq!(
        hs_channel(app.get("/api/v1/channels").await)["hubspot"]["state"],
        "authorized"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn the_openapi_document_describes_the_webhook_and_the_channels_hubspot_state() {
    let app = TestApp::spawn().await;
    let doc = app.get("/api/openapi.json").await;
    let operation = &doc["paths"]["/hubspot/webhook"]["post"];
    assert_eq!(operation["operationId"], "receive_hubspot_webhook");
    for status in ["200", "400", "401", "413", "503"] {
        assert!(
            operation["responses"][status].is_object(),
            "{status}: {operation}"
        );
    }
    let schemas = &doc["components"]["schemas"];
    let event = &schemas["HubspotWebhookEvent"]["properties"];
    for field in [
        "type",
        "eventId",
        "channelIntegrationThreadIds",
        "message",
        "channelAccountId",
    ] {
        assert!(event[field].is_object(), "{field}: {event}");
    }
    assert!(schemas["Channel"]["properties"]["hubspot"].is_object());
    let states = schemas["HubspotAccountStatus"]["enum"].clone();
    assert_eq!(
        states,
        json!(["authorized", "deauthorized", "deleted", "unknown"])
    );
}

#[tokio::test]
async fn a_rep_quoting_the_contacts_message_in_hubspot_quotes_it_on_the_platform() {
    let fake = HubspotFake::start().await;
    let platform = platform_answering(200).await;
    let app = TestApp::spawn_with(linked_options(&fake, &platform)).await;
    let conversation = contact_writes(&app, "m-1").await;
    wait_until(
        "the message is published",
        Duration::from_secs(20),
        || async { !fake.messages().is_empty() },
    )
    .await;
    // The link to HubSpot's ids is recorded after HubSpot answers, before the publish
    // job ends: a rep's message naming those ids comes after it.
    app.drain_outbox().await;
    let quoted = fake.messages()[0]["id"].clone();
    let mut event = rep_message("hs-6", &conversation, "About this:");
    event["message"]["inReplyToId"] = quoted;
    post_hubspot(&app, &event).await;
    reported(&fake, "hs-6", "SENT").await;

    let ours = app.messages(&conversation).await;
    let contact = ours.iter().find(|m| m["direction"] == "inbound").unwrap();
    let reply = ours.iter().find(|m| m["direction"] == "outbound").unwrap();
    assert_eq!(reply["reply_to"], contact["id"]);
    let sent = sent_to_platform(&platform).await;
    assert_eq!(sent[0]["reply_to"], "m-1", "{}", sent[0]);
}
