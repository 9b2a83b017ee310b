//! Live events over SSE: new messages, assignments, delivery updates; resumable.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Options, REP_TOKEN, TestApp, text_event};

/// A parsed SSE event: (id, event name, data).
pub(crate) type Sse = (i64, String, Value);

pub(crate) struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(app: &TestApp, query: &str, last_event_id: Option<i64>) -> Self {
        Self::open_with(app, query, last_event_id, REP_TOKEN).await
    }

    /// A stream opened with `token`.
    pub(crate) async fn open_as(app: &TestApp, query: &str, token: &str) -> Self {
        Self::open_with(app, query, None, token).await
    }

    async fn open_with(
        app: &TestApp,
        query: &str,
        last_event_id: Option<i64>,
        token: &str,
    ) -> Self {
        let mut request = app
            .http
            .get(app.url(&format!("/api/v1/events{query}")))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped), failing the test after 10 s.
    pub(crate) async fn next(&mut self) -> Sse {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let field = |name: &str| {
                        block
                            .lines()
                            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
                    };
                    if let (Some(id), Some(event), Some(data)) =
                        (field("id:"), field("event:"), field("data:"))
                    {
                        return (
                            id.parse().unwrap(),
                            event,
                            serde_json::from_str(&data).unwrap(),
                        );
                    }
                    continue;
                }
                let chunk = self
                    .response
                    .chunk()
                    .await
                    .unwrap()
                    .expect("the stream stays open");
                self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        })
        .await
        .expect("an event arrives")
    }
}

async fn desk() -> TestApp {
    TestApp::spawn_with(Options {
        extra: "[[reps]]\nid = \"alice\"\n".into(),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn new_messages_and_assignments_stream_live() {
    let app = desk().await;
    let mut stream = Stream::open(&app, "", None).await;
    app.post_webhook("demo", &text_event("m1", "ana", "hi"))
        .await;
    let (_, kind, event) = stream.next().await;
    assert_eq!(kind, "message.created");
    assert_eq!(event["channel_id"], "demo");
    assert_eq!(event["data"]["direction"], "inbound");
    assert_eq!(event["data"]["new_conversation"], true);

    let conversation = app.only_conversation().await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.api(
        reqwest::Method::PATCH,
        &format!("/api/v1/conversations/{conversation}"),
        Some(json!({"owner_id": "alice"})),
        Some(REP_TOKEN),
    )
    .await;
    let (_, kind, event) = stream.next().await;
    assert_eq!(kind, "conversation.assigned");
    assert_eq!(event["conversation_id"], conversation.as_str());
    assert_eq!(event["owner_id"], "alice");
}

#[tokio::test]
async fn a_new_message_event_carries_the_contact_name_and_a_preview_so_no_call_is_needed() {
    let app = desk().await;
    let mut stream = Stream::open(&app, "", None).await;
    app.post_webhook("demo", &text_event("m1", "ana", "is my  parcel\nlost?"))
        .await;
    let (_, kind, event) = stream.next().await;
    assert_eq!(kind, "message.created");
    assert_eq!(event["data"]["contact_name"], "Ana");
    assert_eq!(event["data"]["preview"], "is my parcel lost?");

    let conversation = app.only_conversation().await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.reply(&conversation, "Found it").await;
    let (_, kind, event) = stream.next().await;
    assert_eq!(kind, "message.created");
    assert_eq!(event["data"]["direction"], "outbound");
    assert_eq!(event["data"]["contact_name"], "Ana");
    assert_eq!(event["data"]["preview"], "Found it");
}

#[tokio::test]
async fn a_client_that_reconnects_with_last_event_id_gets_what_it_missed_in_order() {
    let app = desk().await;
    let mut stream = Stream::open(&app, "", None).await;
    app.post_webhook("demo", &text_event("m1", "ana", "one"))
        .await;
    let (seen, _, _) = stream.next().await;
    drop(stream);

    app.post_webhook("demo", &text_event("m2", "ana", "two"))
        .await;
    app.post_webhook("demo", &text_event("m3", "bo", "three"))
        .await;
    let mut resumed = Stream::open(&app, "", Some(seen)).await;
    let (first, _, a) = resumed.next().await;
    let (second, _, b) = resumed.next().await;
    assert!(seen < first && first < second);
    let ids = [
        a["data"]["message_id"].clone(),
        b["data"]["message_id"].clone(),
    ];
    let conversation = app.conversations().await;
    assert_eq!(conversation.len(), 2);
    assert!(
        ids.iter()
            .all(|id| id.as_str().unwrap().starts_with("msg_"))
    );
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn a_stream_filtered_by_owner_skips_other_conversations() {
    let app = desk().await;
    let mut alices = Stream::open(&app, "?owner=alice", None).await;
    app.post_webhook(
        "demo",
        &text_event("m1", "ana", "unassigned, not for alice"),
    )
    .await;
    app.post_webhook("demo", &text_event("m2", "bo", "will be alice's"))
        .await;
    let bo = app
        .conversations()
        .await
        .into_iter()
        .find(|c| c["contact"]["identifiers"][0]["value"] == "bo")
        .unwrap();
    app.api(
        reqwest::Method::PATCH,
        &format!("/api/v1/conversations/{}", bo["id"].as_str().unwrap()),
        Some(json!({"owner_id": "alice"})),
        Some(REP_TOKEN),
    )
    .await;
    // The first event alice sees is her assignment: the two unowned messages came before.
    let (_, kind, event) = alices.next().await;
    assert_eq!(kind, "conversation.assigned");
    assert_eq!(event["conversation_id"], bo["id"]);

    let (status, _) = app
        .api(
            reqwest::Method::GET,
            "/api/v1/events?last_event_id=yesterday",
            None,
            Some(REP_TOKEN),
        )
        .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn an_open_event_stream_does_not_hold_up_a_graceful_shutdown() {
    let app = desk().await;
    let _stream = Stream::open(&app, "", None).await;
    // restart() waits for the app to drain; an SSE stream that did not end would hang it.
    tokio::time::timeout(Duration::from_secs(15), app.restart())
        .await
        .expect("the app drained with a stream open");
}
