//! Outbound: replies are delivered signed, retried on the schedule, dead-lettered when it
//! runs out, redriven on request, and never reordered within a conversation.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::harness::{ADMIN_TOKEN, Options, TestApp, items, text_event, wait_until};

/// A conversation with one inbound message from `user-42`; returns its id.
async fn conversation(app: &TestApp) -> String {
    let event = text_event("app-100", "user-42", "Where is my order?");
    assert_eq!(app.post_webhook("demo", &event).await.status(), 200);
    app.only_conversation().await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn ok_with_id(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"id": id}))
}

async fn outbound_message(app: &TestApp, conversation: &str) -> Value {
    app.messages(conversation)
        .await
        .into_iter()
        .rfind(|m| m["direction"] == "outbound")
        .expect("an outbound message")
}

async fn dead_letters(app: &TestApp) -> Vec<Value> {
    items(app.get("/api/v1/deliveries?state=dead").await)
}

#[tokio::test]
async fn a_reply_is_posted_signed_to_the_outbound_url_and_marked_sent() {
    let app = TestApp::spawn().await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ok_with_id("app-out-7"))
        .expect(1)
        .mount(&app.receiver)
        .await;
    let conversation = conversation(&app).await;
    let (status, queued) = app.reply(&conversation, "On its way").await;
    assert_eq!(status, 202);
    assert_eq!(queued["direction"], "outbound");
    assert_eq!(queued["delivery"]["status"], "queued");
    // The test's rep token names no rep: the token itself is the sender.
    assert_eq!(queued["sender"], json!({"type": "token", "id": "test-rep"}));
    app.drain_outbox().await;

    let request = &app.receiver.received_requests().await.unwrap()[0];
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let key =
        channel_bridge::adapters::signature::WebhookKey::parse(&crate::harness::secret()).unwrap();
    let ts: i64 = header("webhook-timestamp").parse().unwrap();
    assert_eq!(
        header("webhook-signature"),
        key.sign(&header("webhook-id"), ts, &request.body)
    );
    assert_eq!(
        header("webhook-id"),
        queued["id"].as_str().unwrap(),
        "the message id is the idempotency key"
    );

    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["id"], queued["id"]);
    assert_eq!(body["conversation_id"], conversation.as_str());
    assert_eq!(body["to"], json!({"id": "user-42"}));
    assert_eq!(
        body["reply_to"],
        Value::Null,
        "a reply quotes only a message the rep chose"
    );
    assert_eq!(
        body["parts"],
        json!([{"type": "text", "text": "On its way"}])
    );

    let sent = outbound_message(&app, &conversation).await;
    assert_eq!(sent["delivery"]["status"], "sent");
    assert_eq!(sent["delivery"]["attempts"], 1);
    assert_eq!(sent["platform_message_id"], "app-out-7");
}

#[tokio::test]
async fn server_errors_and_timeouts_are_retried_until_the_app_takes_the_reply() {
    let app = TestApp::spawn_with(Options {
        timeout_ms: 300,
        ..Options::default()
    })
    .await;
    // 503, then a response slower than the timeout, then success.
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ok_with_id("late").set_delay(Duration::from_millis(1500)))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&app.receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ok_with_id("app-out-1"))
        .with_priority(3)
        .mount(&app.receiver)
        .await;
    let conversation = conversation(&app).await;
    app.reply(&conversation, "hello").await;
    app.drain_outbox().await;

    let sent = outbound_message(&app, &conversation).await;
    assert_eq!(sent["delivery"]["status"], "sent");
    assert_eq!(sent["delivery"]["attempts"], 3);
    assert_eq!(sent["platform_message_id"], "app-out-1");
    assert!(dead_letters(&app).await.is_empty());
}

#[tokio::test]
async fn a_refused_connection_is_retried_and_dead_lettered_when_the_schedule_runs_out() {
    // Nothing listens on port 9 of loopback (discard is not running).
    let app = TestApp::spawn_with(Options {
        outbound_url: Some("http://127.0.0.1:9/outbound".into()),
        retry_schedule_ms: vec![0, 10, 10],
        ..Options::default()
    })
    .await;
    let conversation = conversation(&app).await;
    app.reply(&conversation, "hello").await;
    app.drain_outbox().await;

    let failed = outbound_message(&app, &conversation).await;
    assert_eq!(failed["delivery"]["status"], "failed");
    assert_eq!(
        failed["delivery"]["attempts"], 3,
        "one attempt per schedule entry"
    );
    assert!(
        failed["delivery"]["error"]
            .as_str()
            .unwrap()
            .contains("could not connect")
    );
    let dead = dead_letters(&app).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["attempts"], 3);
    assert_eq!(dead[0]["message_id"], failed["id"]);
}

/// Records when each request arrived.
struct Timed {
    seen: std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
}

impl Respond for Timed {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut seen = self.seen.lock().unwrap();
        seen.push(std::time::Instant::now());
        if seen.len() == 1 {
            ResponseTemplate::new(429).insert_header("retry-after", "1")
        } else {
            ok_with_id("app-out-1")
        }
    }
}

#[tokio::test]
async fn a_429_waits_at_least_its_retry_after_before_trying_again() {
    // The schedule alone would retry after 10 ms.
    let app = TestApp::spawn_with(Options {
        retry_schedule_ms: vec![0, 10, 10],
        ..Options::default()
    })
    .await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(Timed { seen: seen.clone() })
        .mount(&app.receiver)
        .await;
    let conversation = conversation(&app).await;
    app.reply(&conversation, "hello").await;
    app.drain_outbox().await;

    let times = seen.lock().unwrap().clone();
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= Duration::from_millis(990),
        "retried after {:?}, before Retry-After: 1",
        times[1] - times[0]
    );
    assert_eq!(
        outbound_message(&app, &conversation).await["delivery"]["status"],
        "sent"
    );
}

#[tokio::test]
async fn a_redirect_from_the_outbound_url_is_not_followed_and_dead_letters_naming_it() {
    let app = TestApp::spawn().await;
    // The in-house app's URL redirects to an internal address: the signed reply must not
    // be carried there, whatever address it names.
    let inside = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(
            ResponseTemplate::new(307)
                .insert_header("location", format!("{}/internal", inside.uri()).as_str()),
        )
        .mount(&app.receiver)
        .await;
    let conversation = conversation(&app).await;
    app.reply(&conversation, "hello").await;
    app.drain_outbox().await;

    assert!(
        inside
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "the redirect was followed"
    );
    let dead = dead_letters(&app).await;
    assert_eq!(dead.len(), 1);
    let error = dead[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("307") && error.contains("redirect"),
        "{error}"
    );
}

#[tokio::test]
async fn a_client_error_dead_letters_at_once_and_a_redrive_delivers_it() {
    let app = TestApp::spawn().await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ResponseTemplate::new(400).set_body_string("unknown recipient"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.receiver)
        .await;
    let conversation = conversation(&app).await;
    app.reply(&conversation, "hello").await;
    app.drain_outbox().await;

    let dead = dead_letters(&app).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["attempts"], 1, "a 4xx is not retried");
    assert!(
        dead[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("unknown recipient")
    );
    let failed = outbound_message(&app, &conversation).await;
    assert_eq!(failed["delivery"]["status"], "failed");

    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ok_with_id("app-out-2"))
        .with_priority(2)
        .mount(&app.receiver)
        .await;
    let id = dead[0]["id"].as_str().unwrap();
    let (status, body) = app
        .api(
            Method::POST,
            &format!("/api/v1/deliveries/{id}/retry"),
            None,
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "pending");
    app.drain_outbox().await;

    let sent = outbound_message(&app, &conversation).await;
    assert_eq!(sent["delivery"]["status"], "sent");
    assert_eq!(sent["platform_message_id"], "app-out-2");
    assert!(dead_letters(&app).await.is_empty());

    let (status, _) = app
        .api(
            Method::POST,
            &format!("/api/v1/deliveries/{id}/retry"),
            None,
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 404, "a delivered job is gone");
}

/// Fails every third request and answers the others after a random delay, to give
/// reordering every chance.
struct Flaky {
    count: std::sync::atomic::AtomicUsize,
}

impl Respond for Flaky {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n % 3 == 1 {
            ResponseTemplate::new(500)
        } else {
            ok_with_id(&format!("out-{n}")).set_delay(Duration::from_millis(fastrand::u64(0..15)))
        }
    }
}

#[tokio::test]
async fn twenty_rapid_replies_in_one_conversation_arrive_in_order_despite_failures() {
    let app = TestApp::spawn_with(Options {
        retry_schedule_ms: vec![0, 5, 5, 5, 5],
        ..Options::default()
    })
    .await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(Flaky {
            count: Default::default(),
        })
        .mount(&app.receiver)
        .await;
    let conversation = conversation(&app).await;
    // A second conversation interleaves, to show ordering is per conversation, not global.
    app.post_webhook("demo", &text_event("other-1", "user-7", "me too"))
        .await;
    let other = app
        .conversations()
        .await
        .into_iter()
        .find(|c| c["id"] != conversation.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut replies = Vec::new();
    for i in 0..20 {
        let (status, _) = app.reply(&conversation, &format!("reply {i}")).await;
        assert_eq!(status, 202);
        replies.push(format!("reply {i}"));
        app.reply(&other, &format!("other {i}")).await;
    }
    app.drain_outbox().await;

    // Successful deliveries, in arrival order, per conversation.
    let delivered: Vec<Value> = app
        .receiver
        .received_requests()
        .await
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(n, _)| n % 3 != 1)
        .map(|(_, r)| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let texts: Vec<String> = delivered
        .iter()
        .filter(|b| b["conversation_id"] == conversation.as_str())
        .map(|b| b["parts"][0]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        texts, replies,
        "replies reached the app in the order they were written"
    );
    assert!(dead_letters(&app).await.is_empty());
}

#[tokio::test]
async fn a_restart_on_the_same_database_finishes_pending_deliveries() {
    let app = TestApp::spawn_with(Options {
        retry_schedule_ms: vec![0, 100, 100, 100, 100, 100, 100, 100],
        ..Options::default()
    })
    .await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&app.receiver)
        .await;
    let conversation = conversation(&app).await;
    for i in 0..3 {
        app.reply(&conversation, &format!("queued {i}")).await;
    }
    wait_until(
        "a first attempt failed",
        Duration::from_secs(10),
        || async { !app.receiver.received_requests().await.unwrap().is_empty() },
    )
    .await;

    let app = app.restart().await;
    app.receiver.reset().await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ok_with_id("after-restart"))
        .mount(&app.receiver)
        .await;
    app.drain_outbox().await;

    let texts: Vec<String> = app
        .delivered()
        .await
        .iter()
        .map(|b| b["parts"][0]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["queued 0", "queued 1", "queued 2"]);
    let messages = app.messages(&conversation).await;
    assert!(
        messages
            .iter()
            .filter(|m| m["direction"] == "outbound")
            .all(|m| m["delivery"]["status"] == "sent")
    );
}

#[tokio::test]
async fn a_status_report_that_overtakes_its_send_is_applied_when_the_send_completes() {
    let app = TestApp::spawn().await;
    // The app reports "delivered" while our send is still waiting for its answer.
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ok_with_id("app-out-fast").set_delay(Duration::from_millis(700)))
        .mount(&app.receiver)
        .await;
    let conversation = conversation(&app).await;
    app.reply(&conversation, "hello").await;
    wait_until(
        "the send reached the app",
        Duration::from_secs(10),
        || async { !app.receiver.received_requests().await.unwrap().is_empty() },
    )
    .await;
    let report = json!({"type": "status", "id": "app-out-fast", "status": "delivered"});
    let response = app.post_webhook("demo", &report).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["results"][0]["applied"], false,
        "no message has that id yet"
    );

    app.drain_outbox().await;
    let message = outbound_message(&app, &conversation).await;
    assert_eq!(message["platform_message_id"], "app-out-fast");
    assert_eq!(message["delivery"]["status"], "delivered");
}

/// The platform's answer is outside text too: a message id with a NUL in it is recorded
/// as U+FFFD (PostgreSQL cannot store a NUL), so the send is recorded once and the reply
/// is not sent again when its lease runs out.
#[tokio::test]
async fn a_platform_message_id_with_a_nul_is_recorded_and_the_reply_marked_sent() {
    let app = TestApp::spawn().await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ok_with_id("app-out\u{0}7"))
        .expect(1)
        .mount(&app.receiver)
        .await;
    let conversation = conversation(&app).await;
    let (status, queued) = app.reply(&conversation, "On its way").await;
    assert_eq!(status, 202, "{queued}");
    wait_until(
        "the reply is marked sent",
        Duration::from_secs(10),
        || async { outbound_message(&app, &conversation).await["delivery"]["status"] == "sent" },
    )
    .await;
    let sent = outbound_message(&app, &conversation).await;
    assert_eq!(sent["platform_message_id"], "app-out\u{FFFD}7");
}

/// Five conversations on `demo`, each with one reply queued behind a receiver that takes
/// 150 ms per send and a worker that sends one at a time, and a sixth conversation on
/// `fast`, whose receiver answers at once. Returns the sixth `demo` conversation and the
/// `fast` one, once the worker has leased a `demo` reply that waited.
async fn demo_behind(app: &TestApp) -> (String, String) {
    Mock::given(method("POST"))
        .and(path("/outbound"))
        // Slow enough that the other channel's reply is accepted long before demo's
        // five replies have gone out, even on a loaded machine.
        .respond_with(ok_with_id("slow-out").set_delay(Duration::from_millis(400)))
        .mount(&app.receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/fast"))
        .respond_with(ok_with_id("fast-out"))
        .mount(&app.receiver)
        .await;
    let mut conversations = Vec::new();
    for (channel, n) in (0..6).map(|n| ("demo", n)).chain([("fast", 6)]) {
        let event = text_event(&format!("in-{n}"), &format!("user-{n}"), "hello");
        let answer: Value = app
            .post_webhook(channel, &event)
            .await
            .json()
            .await
            .unwrap();
        conversations.push(
            answer["results"][0]["conversation_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for conversation in &conversations[..5] {
        assert_eq!(app.reply(conversation, "queued").await.0, 202);
    }
    // The second send starts once the first is done: its job had waited 400 ms.
    wait_until(
        "the second reply is being sent",
        Duration::from_secs(10),
        || async { sends_to(app, "/outbound").await >= 2 },
    )
    .await;
    (conversations[5].clone(), conversations[6].clone())
}

async fn sends_to(app: &TestApp, to: &str) -> usize {
    let requests = app.receiver.received_requests().await.unwrap_or_default();
    requests.iter().filter(|r| r.url.path() == to).count()
}

fn paced(target_ms: u64) -> Options {
    Options {
        delivery_extra: format!(
            "concurrency = 1\npace_target_ms = {target_ms}\npace_max_wait_ms = 30000"
        ),
        extra: format!(
            "[channels.fast]\nkind = \"generic\"\nsecret = \"{}\"\noutbound_url = \"{{receiver}}/fast\"",
            crate::harness::secret()
        ),
        ..Options::default()
    }
}

#[tokio::test]
async fn a_reply_to_a_channel_whose_outbox_is_behind_is_accepted_once_the_replies_ahead_went_out() {
    let app = TestApp::spawn_with(paced(20)).await;
    let (sixth, fast) = demo_behind(&app).await;

    // Another channel is not paced by this one's backlog.
    assert_eq!(app.reply(&fast, "fast").await.0, 202);
    assert!(
        sends_to(&app, "/outbound").await < 5,
        "a reply to another channel waited for demo's backlog"
    );
    assert_eq!(app.reply(&sixth, "paced").await.0, 202);
    assert_eq!(
        sends_to(&app, "/outbound").await,
        5,
        "the paced reply was accepted before the replies ahead of it went out"
    );
    app.drain_outbox().await;
    assert_eq!(sends_to(&app, "/outbound").await, 6);
}

#[tokio::test]
async fn with_pacing_off_a_reply_is_accepted_while_the_outbox_is_behind() {
    let app = TestApp::spawn_with(paced(0)).await;
    let (sixth, _) = demo_behind(&app).await;
    assert_eq!(app.reply(&sixth, "not paced").await.0, 202);
    assert!(sends_to(&app, "/outbound").await < 5);
    app.drain_outbox().await;
}
