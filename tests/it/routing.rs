//! Routing through the API: round-robin over online reps below capacity, backfill when
//! someone comes online, the contact's owner with an email over real SMTP when offline.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{
    ADMIN_TOKEN, Options, REP_TOKEN, TestApp, items, secret, text_event, wait_until,
};
use crate::smtp::SmtpSink;

fn config(smtp: &str, capacity: u32, presence_timeout_s: u64) -> String {
    let channel = |id: &str, routing: &str| {
        format!(
            "[channels.{id}]\nkind = \"generic\"\nsecret = \"{}\"\noutbound_url = \"http://127.0.0.1:9/x\"\nrouting = {routing}\n",
            secret()
        )
    };
    format!(
        r#"
[[reps]]
id = "alice"
email = "alice@example.com"
capacity = {capacity}
[[reps]]
id = "bob"
email = "bob@example.com"
teams = ["support"]
capacity = {capacity}
[[reps]]
id = "carol"
email = "carol@example.com"
teams = ["support"]
capacity = {capacity}

[smtp]
url = "{smtp}"
from = "bridge@example.com"

[presence]
timeout_s = {presence_timeout_s}
digest_interval_s = 1

{}
{}
"#,
        channel(
            "rr",
            r#"{ mode = "users_and_teams", users = ["alice"], teams = ["support"] }"#
        ),
        channel("own", r#"{ mode = "contact_owner" }"#),
    )
}

async fn spawn(smtp: &str, capacity: u32, presence_timeout_s: u64) -> TestApp {
    TestApp::spawn_with(Options {
        extra: config(smtp, capacity, presence_timeout_s),
        retry_schedule_ms: vec![0, 20, 20],
        ..Options::default()
    })
    .await
}

async fn presence(app: &TestApp, rep: &str, status: &str) -> (u16, Value) {
    app.api(
        Method::PUT,
        &format!("/api/v1/reps/{rep}/presence"),
        Some(json!({"status": status})),
        Some(ADMIN_TOKEN),
    )
    .await
}

async fn owners(app: &TestApp, channel: &str) -> Vec<(String, Option<String>)> {
    let mut list: Vec<(String, Option<String>)> = items(
        app.get(&format!(
            "/api/v1/conversations?channel={channel}&limit=200"
        ))
        .await,
    )
    .iter()
    .map(|c| {
        (
            c["contact"]["identifiers"][0]["value"]
                .as_str()
                .unwrap()
                .to_owned(),
            c["owner_id"].as_str().map(String::from),
        )
    })
    .collect();
    list.sort();
    list
}

#[tokio::test]
async fn round_robin_takes_online_reps_in_turn_and_records_why() {
    let app = spawn("smtp://127.0.0.1:9", 10, 300).await;
    for rep in ["alice", "bob"] {
        let (status, _) = presence(&app, rep, "online").await;
        assert_eq!(status, 200);
    }
    for i in 0..4 {
        app.post_webhook(
            "rr",
            &text_event(&format!("m{i}"), &format!("c{i}"), "hello"),
        )
        .await;
    }
    let got: Vec<Option<String>> = owners(&app, "rr")
        .await
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    assert_eq!(
        got,
        [Some("alice"), Some("bob"), Some("alice"), Some("bob")].map(|o| o.map(String::from))
    );

    // c2 came after bob's turn: the rotation reached carol (offline) before alice.
    let conversation = items(app.get("/api/v1/conversations?channel=rr&limit=200").await)
        .into_iter()
        .find(|c| c["contact"]["identifiers"][0]["value"] == "c2")
        .unwrap();
    let history = items(
        app.get(&format!(
            "/api/v1/tickets/{}/history",
            conversation["ticket_id"].as_str().unwrap()
        ))
        .await,
    );
    let assigned = history
        .iter()
        .find(|e| e["action"] == "assigned")
        .expect("the assignment is recorded");
    assert_eq!(assigned["actor"], "routing");
    assert_eq!(assigned["changes"]["rule"], "users_and_teams");
    let carol = assigned["changes"]["considered"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["rep_id"] == "carol")
        .expect("carol was considered");
    assert_eq!(carol["outcome"], "offline");
    assert_eq!(assigned["changes"]["assignee"], "alice");
}

#[tokio::test]
async fn with_nobody_available_conversations_wait_and_are_assigned_oldest_first() {
    let app = spawn("smtp://127.0.0.1:9", 2, 300).await;
    for i in 0..3 {
        app.post_webhook(
            "rr",
            &text_event(&format!("m{i}"), &format!("c{i}"), "hello"),
        )
        .await;
    }
    assert!(
        owners(&app, "rr").await.iter().all(|(_, o)| o.is_none()),
        "nobody is online"
    );

    let (status, body) = presence(&app, "alice", "online").await;
    assert_eq!(
        (status, body["assigned"].as_u64()),
        (200, Some(2)),
        "alice's capacity is 2"
    );
    assert_eq!(
        owners(&app, "rr").await,
        [
            ("c0".into(), Some("alice".into())),
            ("c1".into(), Some("alice".into())),
            ("c2".into(), None)
        ]
    );

    // Closing one of alice's conversations frees a place: the one waiting takes it.
    let c0 = items(app.get("/api/v1/conversations?channel=rr&limit=200").await)
        .into_iter()
        .find(|c| c["contact"]["identifiers"][0]["value"] == "c0")
        .unwrap();
    let (status, _) = app
        .api(
            Method::PATCH,
            &format!("/api/v1/conversations/{}", c0["id"].as_str().unwrap()),
            Some(json!({"status": "closed"})),
            Some(REP_TOKEN),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        owners(&app, "rr").await[2],
        ("c2".into(), Some("alice".into()))
    );
}

#[tokio::test]
async fn presence_expires_without_a_heartbeat() {
    let app = spawn("smtp://127.0.0.1:9", 10, 1).await;
    presence(&app, "alice", "online").await;
    let status = |reps: Value| {
        items(reps)
            .into_iter()
            .find(|r| r["id"] == "alice")
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status(app.get("/api/v1/reps").await), "online");
    wait_until(
        "alice's presence expires",
        Duration::from_secs(5),
        || async { status(app.get("/api/v1/reps").await) == "offline" },
    )
    .await;
    app.post_webhook("rr", &text_event("m1", "c1", "hello"))
        .await;
    assert_eq!(
        owners(&app, "rr").await[0].1,
        None,
        "an expired rep is not assigned"
    );

    let (status, _) = presence(&app, "mallory", "online").await;
    assert_eq!(status, 404);
    let (status, _) = presence(&app, "alice", "sleeping").await;
    assert_eq!(status, 422);
}

async fn owned_contact(app: &TestApp, owner: &str) -> String {
    app.post_webhook("own", &text_event("o1", "vip", "first contact"))
        .await;
    let conversation = &items(app.get("/api/v1/conversations?channel=own").await)[0];
    let contact = conversation["contact"]["id"].as_str().unwrap().to_owned();
    assert_eq!(conversation["owner_id"], Value::Null, "no owner yet");
    let (status, _) = app
        .api(
            Method::PATCH,
            &format!("/api/v1/contacts/{contact}"),
            Some(json!({"owner_id": owner})),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 200);
    let id = conversation["id"].as_str().unwrap();
    app.api(
        Method::PATCH,
        &format!("/api/v1/conversations/{id}"),
        Some(json!({"status": "closed"})),
        Some(ADMIN_TOKEN),
    )
    .await;
    id.to_owned()
}

#[tokio::test]
async fn the_first_email_of_a_conversation_is_titled_by_what_the_contact_opened_with() {
    let sink = SmtpSink::start().await;
    let app = spawn(&sink.url(), 10, 300).await;
    // A known customer with an owner, who is away, writes for the first time.
    let (status, body) = app
        .api(
            Method::POST,
            "/api/v1/contacts",
            Some(json!({"display_name": "Ana", "owner_id": "carol",
                        "identifiers": [{"channel_id": "own", "value": "vip"}]})),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    app.post_webhook(
        "own",
        &text_event("n1", "vip", "My parcel 4412 arrived broken, what now?"),
    )
    .await;
    app.post_webhook("own", &text_event("n2", "vip", "hello?"))
        .await;
    wait_until("two emails arrive", Duration::from_secs(10), || async {
        sink.received().len() == 2
    })
    .await;
    let subjects: Vec<String> = sink
        .received()
        .iter()
        .map(|m| m.header("Subject").unwrap().to_owned())
        .collect();
    assert_eq!(
        subjects,
        [
            "Ana on own: My parcel 4412 arrived broken, what now?",
            "Re: Ana on own: My parcel 4412 arrived broken, what now?",
        ],
        "the first starts the thread, the next answers it"
    );
}

#[tokio::test]
async fn an_offline_contact_owner_gets_each_new_message_by_email() {
    let sink = SmtpSink::start().await;
    let app = spawn(&sink.url(), 10, 300).await;
    let conversation = owned_contact(&app, "carol").await;
    app.post_webhook("own", &text_event("o2", "vip", "are you there carol?"))
        .await;
    app.post_webhook("own", &text_event("o3", "vip", "hello again"))
        .await;
    let reopened = app
        .get(&format!("/api/v1/conversations/{conversation}"))
        .await;
    assert_eq!(
        reopened["owner_id"], "carol",
        "the reopened conversation goes to the contact's owner"
    );

    wait_until("two emails arrive", Duration::from_secs(10), || async {
        sink.received().len() == 2
    })
    .await;
    let mails = sink.received();
    assert_eq!(mails[0].to, ["carol@example.com"]);
    for mail in &mails {
        assert_eq!(
            mail.header("Subject").unwrap(),
            "Re: Ana on own: first contact",
            "every email of the conversation answers what it was opened with"
        );
    }
    let body = mails[0].body();
    assert!(body.contains("are you there carol?"), "{body}");
    assert!(
        body.contains(&format!(
            "https://bridge.example.test/api/v1/conversations/{conversation}"
        )),
        "{body}"
    );
    let root = format!("<{conversation}@example.com>");
    for mail in &mails {
        assert_eq!(
            mail.header("In-Reply-To").unwrap(),
            root,
            "threaded per conversation"
        );
        assert_eq!(mail.header("References").unwrap(), root);
    }
    assert_ne!(mails[0].header("Message-ID"), mails[1].header("Message-ID"));
}

#[tokio::test]
async fn an_owners_email_leaves_as_soon_as_the_message_is_stored_not_at_the_next_poll() {
    let sink = SmtpSink::start().await;
    // The worker would not look for due jobs on its own within the test's lifetime: the
    // email arrives only because storing the message wakes it, as a reply does.
    let app = TestApp::spawn_with(Options {
        extra: config(&sink.url(), 10, 300),
        poll_ms: 3_600_000,
        ..Options::default()
    })
    .await;
    owned_contact(&app, "carol").await;
    app.post_webhook("own", &text_event("o2", "vip", "are you there carol?"))
        .await;
    wait_until(
        "the owner's email arrives",
        Duration::from_secs(20),
        || async { sink.received().len() == 1 },
    )
    .await;
    assert_eq!(sink.received()[0].to, ["carol@example.com"]);
}

#[tokio::test]
async fn an_online_contact_owner_gets_no_email() {
    let sink = SmtpSink::start().await;
    let app = spawn(&sink.url(), 10, 300).await;
    let conversation = owned_contact(&app, "carol").await;
    presence(&app, "carol", "online").await;
    app.post_webhook("own", &text_event("o2", "vip", "are you there carol?"))
        .await;
    assert_eq!(
        app.get(&format!("/api/v1/conversations/{conversation}"))
            .await["owner_id"],
        "carol"
    );
    app.drain_outbox().await;
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn when_smtp_is_down_the_email_is_retried_then_dead_lettered_and_the_message_is_kept() {
    // Nothing listens on port 9.
    let app = spawn("smtp://127.0.0.1:9", 10, 300).await;
    let conversation = owned_contact(&app, "carol").await;
    let response = app
        .post_webhook("own", &text_event("o2", "vip", "are you there?"))
        .await;
    assert_eq!(
        response.status(),
        200,
        "the inbound message does not depend on SMTP"
    );
    app.drain_outbox().await;
    let dead = items(app.get("/api/v1/deliveries?state=dead").await);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["kind"], "email");
    assert_eq!(dead[0]["attempts"], 3, "retried on the schedule first");
    assert_eq!(app.messages(&conversation).await.len(), 2);
}

#[tokio::test]
async fn an_offline_rep_who_wants_notifications_gets_a_digest_and_can_turn_it_off() {
    let sink = SmtpSink::start().await;
    let app = spawn(&sink.url(), 10, 300).await;
    let notifications = |enabled: bool| {
        let app = &app;
        async move {
            app.api(
                Method::PUT,
                "/api/v1/reps/alice/notifications",
                Some(json!({"enabled": enabled})),
                Some(ADMIN_TOKEN),
            )
            .await
        }
    };
    let (status, _) = notifications(true).await;
    assert_eq!(status, 200);
    let reps = items(app.get("/api/v1/reps").await);
    assert_eq!(
        reps.iter().find(|r| r["id"] == "alice").unwrap()["notify"],
        true
    );

    app.post_webhook("rr", &text_event("m1", "c1", "hello"))
        .await;
    let conversation = items(app.get("/api/v1/conversations?channel=rr").await)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.api(
        Method::PATCH,
        &format!("/api/v1/conversations/{conversation}"),
        Some(json!({"owner_id": "alice"})),
        Some(REP_TOKEN),
    )
    .await;
    app.post_webhook("rr", &text_event("m2", "c1", "where is my refund?"))
        .await;
    wait_until(
        "a digest reaches alice",
        Duration::from_secs(10),
        || async {
            sink.received()
                .iter()
                .any(|m| m.to == ["alice@example.com"] && m.body().contains("where is my refund?"))
        },
    )
    .await;
    let digest = sink
        .received()
        .into_iter()
        .find(|m| m.body().contains("where is my refund?"))
        .unwrap();
    assert!(digest.header("Subject").unwrap().contains("new message"));
    assert!(
        digest
            .body()
            .contains(&format!("/api/v1/conversations/{conversation}"))
    );

    app.drain_outbox().await;
    let (status, _) = notifications(false).await;
    assert_eq!(status, 200);
    let sent = sink.received().len();
    app.post_webhook("rr", &text_event("m3", "c1", "anyone?"))
        .await;
    // Absence takes waiting: two digest rounds (1 s each) pass without a new email.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.drain_outbox().await;
    assert_eq!(
        sink.received().len(),
        sent,
        "no digest after turning notifications off"
    );

    let (status, _) = app
        .api(
            Method::PUT,
            "/api/v1/reps/mallory/notifications",
            Some(json!({"enabled": true})),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_offline_owner_without_an_email_address_is_recorded_as_not_emailed() {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with(Options {
        extra: format!("{}\n[[reps]]\nid = \"dan\"\n", config(&sink.url(), 10, 300)),
        retry_schedule_ms: vec![0, 20, 20],
        ..Options::default()
    })
    .await;
    let conversation = owned_contact(&app, "dan").await;
    app.post_webhook("own", &text_event("o2", "vip", "are you there dan?"))
        .await;
    let reopened = app
        .get(&format!("/api/v1/conversations/{conversation}"))
        .await;
    assert_eq!(reopened["owner_id"], "dan");

    let history = items(
        app.get(&format!(
            "/api/v1/tickets/{}/history",
            reopened["ticket_id"].as_str().unwrap()
        ))
        .await,
    );
    let assigned = history
        .iter()
        .find(|e| e["action"] == "assigned")
        .expect("the assignment is recorded");
    let note = assigned["reason"].as_str().unwrap();
    assert!(
        note.contains("not emailed") && !note.contains("is emailed"),
        "the history says what happened: {note}"
    );
    assert_eq!(assigned["changes"]["email_owner"], false);
    assert_eq!(assigned["changes"]["not_emailed"], "no_address");

    assert!(
        items(app.get("/api/v1/deliveries?state=pending").await).is_empty(),
        "no email is queued"
    );
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"channel_bridge_owner_emails_skipped_total{channel="own",reason="no_address"}"#
        ),
        "counted"
    );
    assert!(sink.received().is_empty());
}
