//! Inbound: a signed webhook becomes a stored message in a threaded conversation with its
//! ticket; redeliveries store nothing; statuses move forward only.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::harness::{Options, TestApp, items, text_event};

#[tokio::test]
async fn signed_message_is_stored_in_a_new_conversation_with_a_ticket_and_contact() {
    let app = TestApp::spawn().await;
    let response = app
        .post_webhook(
            "demo",
            &text_event("app-1", "user-42", "Where is my order?"),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["stored"], 1);
    assert_eq!(body["results"][0]["result"], "stored");
    assert_eq!(body["results"][0]["new_conversation"], true);

    let conversation = app.only_conversation().await;
    assert!(conversation["id"].as_str().unwrap().starts_with("conv_"));
    assert!(
        conversation["ticket_id"]
            .as_str()
            .unwrap()
            .starts_with("tkt_")
    );
    assert_eq!(conversation["channel_id"], "demo");
    assert_eq!(conversation["status"], "open");
    assert_eq!(conversation["owner_id"], serde_json::Value::Null);
    assert_eq!(conversation["contact"]["display_name"], "Ana");
    assert_eq!(conversation["contact"]["email"], "ana@example.com");
    assert_eq!(
        conversation["contact"]["identifiers"],
        json!([{"channel_id": "demo", "type": "app_user", "value": "user-42"}])
    );

    let messages = app.messages(conversation["id"].as_str().unwrap()).await;
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert!(m["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(m["direction"], "inbound");
    assert_eq!(m["platform_message_id"], "app-1");
    assert_eq!(m["sender"]["type"], "contact");
    assert_eq!(m["sender"]["id"], conversation["contact"]["id"]);
    assert_eq!(
        m["parts"],
        json!([{"type": "text", "text": "Where is my order?"}])
    );
    assert_eq!(m["delivery"]["status"], "received");
}

#[tokio::test]
async fn redelivered_webhook_stores_nothing_twice() {
    let app = TestApp::spawn().await;
    let event = text_event("app-1", "user-42", "hello");
    assert_eq!(app.post_webhook("demo", &event).await.status(), 200);
    let again = app.post_webhook("demo", &event).await;
    assert_eq!(
        again.status(),
        200,
        "a duplicate is acknowledged so the sender stops"
    );
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["stored"], 0);
    assert_eq!(body["duplicates"], 1);
    assert_eq!(body["results"][0]["result"], "duplicate");

    let conversation = app.only_conversation().await;
    assert_eq!(
        app.messages(conversation["id"].as_str().unwrap())
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_batch_of_events_is_stored_in_one_request_and_threads_per_contact() {
    let app = TestApp::spawn().await;
    let batch = json!([
        text_event("a1", "ana", "one"),
        text_event("b1", "bo", "two"),
        text_event("a2", "ana", "three"),
        text_event("a1", "ana", "one again, inside the same batch"),
    ]);
    let response = app.post_webhook("demo", &batch).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (body["stored"].as_u64(), body["duplicates"].as_u64()),
        (Some(3), Some(1))
    );

    let conversations = app.conversations().await;
    assert_eq!(conversations.len(), 2, "one conversation per contact");
    let ana = conversations
        .iter()
        .find(|c| c["contact"]["identifiers"][0]["value"] == "ana")
        .unwrap();
    let texts: Vec<String> = app
        .messages(ana["id"].as_str().unwrap())
        .await
        .iter()
        .map(|m| m["parts"][0]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["one", "three"]);
}

#[tokio::test]
async fn platform_thread_threading_keys_conversations_by_thread_id() {
    let app = TestApp::spawn_with(Options {
        threading: "platform_thread",
        ..Options::default()
    })
    .await;
    for (id, thread) in [("m1", "t-1"), ("m2", "t-2"), ("m3", "t-1")] {
        let mut event = text_event(id, "ana", "hi");
        event["thread_id"] = json!(thread);
        assert_eq!(app.post_webhook("demo", &event).await.status(), 200);
    }
    let conversations = app.conversations().await;
    assert_eq!(conversations.len(), 2);
    let t1 = conversations
        .iter()
        .find(|c| c["platform_thread_id"] == "t-1")
        .unwrap();
    assert_eq!(app.messages(t1["id"].as_str().unwrap()).await.len(), 2);
    assert_eq!(
        conversations[0]["contact"]["id"], conversations[1]["contact"]["id"],
        "both threads belong to the same contact"
    );
}

async fn close(app: &TestApp, conversation: &str) {
    let (status, body) = app
        .api(
            reqwest::Method::PATCH,
            &format!("/api/v1/conversations/{conversation}"),
            Some(json!({"status": "closed"})),
            Some(crate::harness::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "closed");
}

#[tokio::test]
async fn a_message_after_close_reopens_the_conversation_when_reopen_is_true() {
    let app = TestApp::spawn().await;
    app.post_webhook("demo", &text_event("m1", "ana", "first"))
        .await;
    let first = app.only_conversation().await;
    close(&app, first["id"].as_str().unwrap()).await;

    app.post_webhook("demo", &text_event("m2", "ana", "back again"))
        .await;
    let again = app.only_conversation().await;
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["status"], "open");
    assert_eq!(again["ticket_id"], first["ticket_id"]);
    assert_eq!(app.messages(again["id"].as_str().unwrap()).await.len(), 2);
}

#[tokio::test]
async fn a_message_after_close_starts_a_new_conversation_and_ticket_when_reopen_is_false() {
    let app = TestApp::spawn_with(Options {
        reopen: false,
        ..Options::default()
    })
    .await;
    app.post_webhook("demo", &text_event("m1", "ana", "first"))
        .await;
    let first = app.only_conversation().await;
    close(&app, first["id"].as_str().unwrap()).await;

    app.post_webhook("demo", &text_event("m2", "ana", "a new matter"))
        .await;
    let conversations = app.conversations().await;
    assert_eq!(conversations.len(), 2);
    let newest = &conversations[0];
    assert_ne!(newest["id"], first["id"]);
    assert_ne!(newest["ticket_id"], first["ticket_id"]);
    assert_eq!(newest["status"], "open");
    assert_eq!(newest["contact"]["id"], first["contact"]["id"]);
}

#[tokio::test]
async fn inbound_reply_to_links_the_quoted_message_and_unknown_parts_are_kept() {
    let app = TestApp::spawn().await;
    app.post_webhook("demo", &text_event("m1", "ana", "first"))
        .await;
    let event = json!({
        "type": "message", "id": "m2", "from": {"id": "ana"}, "reply_to": "m1",
        "parts": [
            {"type": "poll", "question": "Tea or coffee?"},
            {"type": "location", "latitude": 52.52, "longitude": 13.405, "name": "Office"}
        ]
    });
    assert_eq!(app.post_webhook("demo", &event).await.status(), 200);
    let conversation = app.only_conversation().await;
    let messages = app.messages(conversation["id"].as_str().unwrap()).await;
    assert_eq!(messages[1]["reply_to"], messages[0]["id"]);
    assert_eq!(
        messages[1]["parts"][0],
        json!({"type": "unsupported", "platform_type": "poll",
               "raw": {"type": "poll", "question": "Tea or coffee?"}})
    );
    assert_eq!(messages[1]["parts"][1]["type"], "location");
}

#[tokio::test]
async fn status_events_move_an_outbound_message_forward_only() {
    let app = TestApp::spawn().await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "app-out-1"})))
        .mount(&app.receiver)
        .await;
    app.post_webhook("demo", &text_event("m1", "ana", "hi"))
        .await;
    let conversation = app.only_conversation().await;
    let id = conversation["id"].as_str().unwrap();
    let (status, _) = app.reply(id, "hello").await;
    assert_eq!(status, 202);
    app.drain_outbox().await;

    let outbound = |messages: Vec<serde_json::Value>| {
        messages
            .into_iter()
            .find(|m| m["direction"] == "outbound")
            .unwrap()
    };
    let sent = outbound(app.messages(id).await);
    assert_eq!(sent["platform_message_id"], "app-out-1");
    assert_eq!(sent["delivery"]["status"], "sent");

    let report = |status: &str| json!({"type": "status", "id": "app-out-1", "status": status});
    for (reported, expected) in [("read", "read"), ("delivered", "read"), ("failed", "read")] {
        let response = app.post_webhook("demo", &report(reported)).await;
        assert_eq!(response.status(), 200);
        let shown = outbound(app.messages(id).await);
        assert_eq!(shown["delivery"]["status"], expected, "after {reported}");
    }
}

#[tokio::test]
async fn conversation_list_pages_with_a_cursor_and_filters() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        app.post_webhook(
            "demo",
            &text_event(&format!("m{i}"), &format!("user-{i}"), "hi"),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/conversations?limit=2&cursor={c}"),
            None => "/api/v1/conversations?limit=2".to_owned(),
        };
        let page = app.get(&path).await;
        seen.extend(
            items(page.clone())
                .into_iter()
                .map(|c| c["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    seen.dedup();
    assert_eq!(seen.len(), 5, "no conversation appears twice across pages");

    let open = items(
        app.get("/api/v1/conversations?status=open&channel=demo")
            .await,
    );
    assert_eq!(open.len(), 5);
    // A channel that does not exist is an error, not an empty list.
    let (status, body) = app
        .api(
            reqwest::Method::GET,
            "/api/v1/conversations?channel=elsewhere",
            None,
            Some(crate::harness::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn an_edit_replaces_the_content_and_keeps_what_it_said_before() {
    let app = TestApp::spawn().await;
    app.post_webhook("demo", &text_event("m1", "ana", "my order is 1234"))
        .await;
    let edit = json!({"type": "edit", "id": "m1", "parts": [{"type": "text", "text": "my order is 1243"}]});
    let response = app.post_webhook("demo", &edit).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["results"][0],
        json!({"result": "edited", "id": "m1", "applied": true})
    );

    let conversation = app.only_conversation().await;
    let messages = app.messages(conversation["id"].as_str().unwrap()).await;
    assert_eq!(messages.len(), 1, "an edit is not a new message");
    assert_eq!(messages[0]["parts"][0]["text"], "my order is 1243");
    assert_eq!(
        messages[0]["history"][0]["parts"][0]["text"],
        "my order is 1234"
    );
    assert!(messages[0]["edited_at"].is_string());

    let unknown =
        json!({"type": "edit", "id": "never-seen", "parts": [{"type": "text", "text": "x"}]});
    let body: serde_json::Value = app
        .post_webhook("demo", &unknown)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["results"][0],
        json!({"result": "edited", "id": "never-seen", "applied": false, "skipped": "unknown_message"})
    );
}

#[tokio::test]
async fn a_replayed_signed_edit_is_a_duplicate_and_never_puts_the_old_text_back() {
    let app = TestApp::spawn().await;
    app.post_webhook("demo", &text_event("m1", "ana", "my order is 1234"))
        .await;
    let edit =
        |text: &str| json!({"type": "edit", "id": "m1", "parts": [{"type": "text", "text": text}]});
    // Without a `timestamp`, an edit is ordered by the time it was signed at.
    let first = app.signed("demo", &edit("my order is 1243"), -60);
    let second = app.signed("demo", &edit("my order is 1245"), -30);
    for request in [&first, &second] {
        let (status, body) = app.send_signed(request).await;
        assert_eq!(
            (status, &body["results"][0]["applied"]),
            (200, &json!(true))
        );
    }
    for request in std::iter::repeat_n([&first, &second], 100).flatten() {
        let (status, body) = app.send_signed(request).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["duplicates"], 1, "{body}");
        assert_eq!(
            body["results"][0],
            json!({"result": "edited", "id": "m1", "applied": false, "skipped": "duplicate"})
        );
    }

    let conversation = app.only_conversation().await;
    let messages = app.messages(conversation["id"].as_str().unwrap()).await;
    assert_eq!(messages[0]["parts"][0]["text"], "my order is 1245");
    let history: Vec<&Value> = messages[0]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["parts"][0]["text"])
        .collect();
    assert_eq!(history, ["my order is 1234", "my order is 1243"]);
}

#[tokio::test]
async fn an_edit_the_app_ordered_before_the_shown_one_is_stale_and_not_applied() {
    let app = TestApp::spawn().await;
    app.post_webhook("demo", &text_event("m1", "ana", "blue"))
        .await;
    let edit = |text: &str, at: &str| json!({"type": "edit", "id": "m1", "timestamp": at, "parts": [{"type": "text", "text": text}]});
    // The later edit overtakes the earlier one on its way.
    let later = app
        .post_webhook("demo", &edit("green", "2026-11-21T10:02:00Z"))
        .await;
    assert_eq!(later.status(), 200);
    let body: Value = app
        .post_webhook("demo", &edit("red", "2026-11-21T10:01:00Z"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["results"][0],
        json!({"result": "edited", "id": "m1", "applied": false, "skipped": "stale"})
    );

    let conversation = app.only_conversation().await;
    let messages = app.messages(conversation["id"].as_str().unwrap()).await;
    assert_eq!(messages[0]["parts"][0]["text"], "green");
    assert_eq!(messages[0]["history"].as_array().unwrap().len(), 1);
    assert_eq!(messages[0]["edited_at"], "2026-11-21T10:02:00Z");
}

#[tokio::test]
async fn a_retracted_message_is_kept_and_marked() {
    let app = TestApp::spawn().await;
    app.post_webhook("demo", &text_event("m1", "ana", "oops, wrong chat"))
        .await;
    let response = app
        .post_webhook("demo", &json!({"type": "retract", "id": "m1"}))
        .await;
    assert_eq!(response.status(), 200);
    let conversation = app.only_conversation().await;
    let messages = app.messages(conversation["id"].as_str().unwrap()).await;
    assert_eq!(messages.len(), 1);
    assert!(messages[0]["retracted_at"].is_string());
    assert_eq!(messages[0]["parts"][0]["text"], "oops, wrong chat");
}

#[tokio::test]
async fn the_generic_channel_answers_no_get_handshake() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .api(
            reqwest::Method::GET,
            "/hooks/demo?hub.challenge=1",
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (status, _) = app
        .api(reqwest::Method::GET, "/hooks/nope", None, None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redeliveries_of_one_message_store_it_exactly_once() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let event = text_event("app-race", "user-42", "sent twenty times at once");
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (app, event) = (app.clone(), event.clone());
        sends.spawn(async move {
            let response = app.post_webhook("demo", &event).await;
            assert_eq!(response.status(), 200, "every copy is acknowledged");
            response.json::<serde_json::Value>().await.unwrap()["stored"]
                .as_u64()
                .unwrap()
        });
    }
    let mut stored = 0;
    while let Some(n) = sends.join_next().await {
        stored += n.unwrap();
    }
    assert_eq!(
        stored, 1,
        "one copy stored, the others acknowledged as duplicates"
    );
    let conversation = app.only_conversation().await;
    assert_eq!(
        app.messages(conversation["id"].as_str().unwrap())
            .await
            .len(),
        1
    );
}
