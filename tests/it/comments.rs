//! Internal comments: in the thread in order, never sent to the platform, never a first
//! response, never moving the ticket; mentions reach the mentioned rep live, and by email
//! while they are offline.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::events::Stream;
use crate::harness::{ADMIN_TOKEN, items, wait_until};
use crate::inboxes::{ALICE, BOB, call, conversation_on, spawn_desk};
use crate::smtp::SmtpSink;

async fn comment(
    app: &crate::harness::TestApp,
    conversation: &str,
    body: Value,
    token: &str,
) -> (u16, Value) {
    call(
        app,
        Method::POST,
        &format!("/api/v1/conversations/{conversation}/comments"),
        Some(body),
        token,
    )
    .await
}

#[tokio::test]
async fn a_comment_sits_in_the_thread_in_order_and_never_reaches_the_platform() {
    let app = spawn_desk("").await;
    // The demo channel posts to the mock: the comment must never arrive there; the reply
    // after it must, once.
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .and(body_string_contains("internal note"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&app.receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "out-1"})))
        .expect(1)
        .mount(&app.receiver)
        .await;
    let conversation = conversation_on(&app, "demo", "ana").await;
    let id = conversation["id"].as_str().unwrap();

    let (status, note) = comment(
        &app,
        id,
        json!({"text": "internal note: VIP, @bob knows"}),
        ALICE,
    )
    .await;
    assert_eq!(status, 201, "{note}");
    assert_eq!(note["type"], "comment");
    assert_eq!(note["direction"], "internal");
    assert_eq!(note["sender"], json!({"type": "rep", "id": "alice"}));
    assert_eq!(note["mentions"], json!(["bob"]));
    assert_eq!(note["delivery"]["status"], "internal");
    assert!(items(app.get("/api/v1/deliveries?state=pending").await).is_empty());

    let (status, _) = app.reply(id, "We are on it").await;
    assert_eq!(status, 202);
    app.drain_outbox().await;
    let delivered = app.delivered().await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["parts"][0]["text"], "We are on it");

    let thread = app.messages(id).await;
    let shape: Vec<(&str, &str)> = thread
        .iter()
        .map(|m| {
            (
                m["type"].as_str().unwrap(),
                m["direction"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("message", "inbound"),
            ("comment", "internal"),
            ("message", "outbound")
        ]
    );
    assert_eq!(
        thread[1]["parts"][0]["text"],
        "internal note: VIP, @bob knows"
    );
    // The note is found by search like the messages around it.
    let found = items(app.get("/api/v1/conversations?q=VIP").await);
    assert_eq!(found.len(), 1);

    // A reply cannot quote a comment to the contact.
    let (status, body) = app
        .api(
            Method::POST,
            &format!("/api/v1/conversations/{id}/messages"),
            Some(json!({"parts": [{"type": "text", "text": "x"}], "reply_to": note["id"]})),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    app.receiver.verify().await;
}

#[tokio::test]
async fn a_comment_moves_nothing_and_is_no_response() {
    let app = spawn_desk("").await;
    let conversation = conversation_on(&app, "sales", "buyer").await;
    let id = conversation["id"].as_str().unwrap();
    let ticket = conversation["ticket_id"].as_str().unwrap();

    let (status, _) = comment(&app, id, json!({"text": "looks like a refund"}), ALICE).await;
    assert_eq!(status, 201);
    let after = app.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(after["last_message_at"], conversation["last_message_at"]);
    assert_eq!(after["status"], "open");
    assert_eq!(
        app.get(&format!("/api/v1/tickets/{ticket}")).await["status"],
        "new"
    );
    let report = app.get("/api/v1/analytics").await;
    let sales = report["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel_id"] == "sales")
        .unwrap()
        .clone();
    assert_eq!(sales["messages_inbound"], 1);
    assert_eq!(sales["messages_outbound"], 0);
    assert_eq!(sales["first_response"]["count"], 0, "{sales}");
    assert!(
        report["reps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["replies"] == 0)
    );

    // On a closed conversation a comment does not reopen it, nor its ticket.
    call(
        &app,
        Method::PATCH,
        &format!("/api/v1/tickets/{ticket}"),
        Some(json!({"status": "closed"})),
        ALICE,
    )
    .await;
    let (status, _) = comment(&app, id, json!({"text": "closed after the call"}), ALICE).await;
    assert_eq!(status, 201);
    assert_eq!(
        app.get(&format!("/api/v1/conversations/{id}")).await["status"],
        "closed"
    );
    assert_eq!(
        app.get(&format!("/api/v1/tickets/{ticket}")).await["status"],
        "closed"
    );
}

#[tokio::test]
async fn a_mentioned_rep_gets_an_event_and_unknown_listed_mentions_are_refused_naming_them() {
    let app = spawn_desk("").await;
    let conversation = conversation_on(&app, "sales", "buyer").await;
    let id = conversation["id"].as_str().unwrap();
    let mut bob = Stream::open_as(&app, "", BOB).await;

    let (status, body) = comment(
        &app,
        id,
        json!({"text": "@bob @ghost see", "mentions": ["nobody", "Carol", "x"]}),
        ALICE,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["message"],
        "mentions: no rep \"nobody\", \"x\" in the config"
    );
    assert_eq!(app.messages(id).await.len(), 1, "nothing was stored");

    // Bob does not work the sales inbox, but a colleague mentioning him shares the note.
    let (status, note) = comment(
        &app,
        id,
        json!({"text": "check the discount with @bob"}),
        ALICE,
    )
    .await;
    assert_eq!(status, 201, "{note}");
    let (_, kind, event) = bob.next().await;
    assert_eq!(kind, "comment.mentioned");
    assert_eq!(event["conversation_id"], id);
    assert_eq!(event["data"]["rep_id"], "bob");
    assert_eq!(event["data"]["author"], "alice");
    assert_eq!(event["data"]["message_id"], note["id"]);
    assert_eq!(event["data"]["text"], "check the discount with @bob");
    // Nothing else of sales reaches him (not the comment itself): events come in order,
    // so the next one he gets is the next of his own inbox.
    conversation_on(&app, "help", "user").await;
    let (_, kind, event) = bob.next().await;
    assert_eq!(
        (kind.as_str(), &event["channel_id"]),
        ("message.created", &json!("help"))
    );
}

#[tokio::test]
async fn an_at_word_that_is_no_rep_is_plain_text_and_rep_ids_match_ignoring_case() {
    let app = spawn_desk("").await;
    let conversation = conversation_on(&app, "sales", "buyer").await;
    let id = conversation["id"].as_str().unwrap();
    let mut bob = Stream::open_as(&app, "", BOB).await;

    let (status, note) = comment(
        &app,
        id,
        json!({"text": "@Bob: the @ghost handle on their invoice costs @5 extra"}),
        ALICE,
    )
    .await;
    assert_eq!(status, 201, "{note}");
    assert_eq!(note["mentions"], json!(["bob"]), "by the rep's own id");
    let (_, kind, event) = bob.next().await;
    assert_eq!(kind, "comment.mentioned");
    assert_eq!(event["data"]["rep_id"], "bob");
    assert_eq!(
        event["data"]["text"],
        "@Bob: the @ghost handle on their invoice costs @5 extra"
    );
}

#[tokio::test]
async fn an_offline_mentioned_rep_gets_an_email_and_an_online_one_does_not() {
    let sink = SmtpSink::start().await;
    let smtp = format!(
        "[smtp]\nurl = \"smtp://{}\"\nfrom = \"bridge@example.com\"\n",
        sink.addr
    );
    let app = spawn_desk(&smtp).await;
    let conversation = conversation_on(&app, "sales", "ana").await;
    let id = conversation["id"].as_str().unwrap();
    let (status, _) = call(
        &app,
        Method::PUT,
        "/api/v1/reps/carol/presence",
        Some(json!({"status": "online"})),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(status, 200);

    let (status, _) = comment(
        &app,
        id,
        json!({"text": "@BOB and @carol: can we refund?"}),
        ALICE,
    )
    .await;
    assert_eq!(status, 201);
    wait_until(
        "the mention email is sent",
        Duration::from_secs(10),
        || async { !sink.mails.lock().unwrap().is_empty() },
    )
    .await;
    app.drain_outbox().await;
    let mails = sink.mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].to, ["bob@example.com"]);
    assert_eq!(
        mails[0].header("subject").as_deref(),
        Some("Alice Doe mentioned you in the conversation with Ana"),
        "the author by their name"
    );
    let body = mails[0].body();
    assert!(body.contains("@BOB and @carol: can we refund?"), "{body}");
    assert!(body.contains("with Ana on Sales line:"), "{body}");
    assert!(
        body.contains(&format!(
            "https://bridge.example.test/api/v1/conversations/{id}"
        )),
        "{body}"
    );
}
