//! The help-desk rules through the HTTP API: tickets, owners, statuses, trash, search.

use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::harness::{ADMIN_TOKEN, Options, REP_TOKEN, TestApp, items, text_event};

const DESK: &str = r#"
[[reps]]
id = "alice"
[[reps]]
id = "bob"

[pipelines.support]
statuses = [
  { id = "new" }, { id = "waiting_on_us" },
  { id = "closed", closed = true, requires = ["resolution"] },
]
"#;

async fn desk() -> TestApp {
    let app = TestApp::spawn_with(Options {
        extra: DESK.into(),
        ..Options::default()
    })
    .await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "sent"})))
        .mount(&app.receiver)
        .await;
    app
}

/// A conversation from `user` saying `text`; returns (conversation id, ticket id).
async fn conversation(app: &TestApp, id: &str, user: &str, text: &str) -> (String, String) {
    assert_eq!(
        app.post_webhook("demo", &text_event(id, user, text))
            .await
            .status(),
        200
    );
    let c = app
        .conversations()
        .await
        .into_iter()
        .find(|c| c["contact"]["identifiers"][0]["value"] == user)
        .unwrap();
    (
        c["id"].as_str().unwrap().into(),
        c["ticket_id"].as_str().unwrap().into(),
    )
}

async fn patch(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    app.api(Method::PATCH, path, Some(body), Some(REP_TOKEN))
        .await
}

async fn status_of(app: &TestApp, conversation: &str) -> Value {
    app.get(&format!("/api/v1/conversations/{conversation}"))
        .await["status"]
        .clone()
}

#[tokio::test]
async fn a_new_conversation_gets_one_ticket_with_the_channel_defaults() {
    let app = desk().await;
    let (conv, ticket) = conversation(&app, "m1", "ana", "hi").await;
    let t = app.get(&format!("/api/v1/tickets/{ticket}")).await;
    assert_eq!(t["pipeline"], "support");
    assert_eq!(t["status"], "new");
    assert_eq!(t["priority"], "medium");
    assert_eq!(t["conversation_ids"], json!([conv]));
    assert_eq!(t["closed_at"], Value::Null);
}

#[tokio::test]
async fn a_conversation_owner_becomes_the_ticket_owner_but_not_the_other_way_round() {
    let app = desk().await;
    let (conv, ticket) = conversation(&app, "m1", "ana", "hi").await;
    let (status, body) = patch(
        &app,
        &format!("/api/v1/conversations/{conv}"),
        json!({"owner_id": "alice"}),
    )
    .await;
    assert_eq!((status, &body["owner_id"]), (200, &json!("alice")));
    assert_eq!(
        app.get(&format!("/api/v1/tickets/{ticket}")).await["owner_id"],
        "alice"
    );

    let (status, body) = patch(
        &app,
        &format!("/api/v1/tickets/{ticket}"),
        json!({"owner_id": "bob"}),
    )
    .await;
    assert_eq!((status, &body["owner_id"]), (200, &json!("bob")));
    assert_eq!(
        app.get(&format!("/api/v1/conversations/{conv}")).await["owner_id"],
        "alice"
    );

    let (status, _) = patch(
        &app,
        &format!("/api/v1/conversations/{conv}"),
        json!({"owner_id": null}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.get(&format!("/api/v1/conversations/{conv}")).await["owner_id"],
        Value::Null
    );
}

#[tokio::test]
async fn closing_a_ticket_closes_its_conversation_and_reopening_reopens_it() {
    let app = desk().await;
    let (conv, ticket) = conversation(&app, "m1", "ana", "hi").await;
    let (status, body) = patch(
        &app,
        &format!("/api/v1/tickets/{ticket}"),
        json!({"status": "closed", "properties": {"resolution": "answered"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["closed_at"].is_string());
    assert_eq!(status_of(&app, &conv).await, "closed");

    let (status, body) = patch(
        &app,
        &format!("/api/v1/tickets/{ticket}"),
        json!({"status": "waiting_on_us"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["closed_at"], Value::Null);
    assert_eq!(status_of(&app, &conv).await, "open");
}

#[tokio::test]
async fn closing_a_conversation_leaves_its_ticket_open() {
    let app = desk().await;
    let (conv, ticket) = conversation(&app, "m1", "ana", "hi").await;
    let (status, _) = patch(
        &app,
        &format!("/api/v1/conversations/{conv}"),
        json!({"status": "closed"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.get(&format!("/api/v1/tickets/{ticket}")).await["status"],
        "new"
    );
}

#[tokio::test]
async fn a_conditional_status_without_its_properties_is_422_and_changes_nothing() {
    let app = desk().await;
    let (conv, ticket) = conversation(&app, "m1", "ana", "hi").await;
    let (status, body) = patch(
        &app,
        &format!("/api/v1/tickets/{ticket}"),
        json!({"status": "closed", "owner_id": "bob"}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        body["error"]["message"],
        "properties: status \"closed\" requires resolution"
    );
    let t = app.get(&format!("/api/v1/tickets/{ticket}")).await;
    assert_eq!(
        (t["status"].as_str(), t["owner_id"].as_str()),
        (Some("new"), None),
        "nothing changed"
    );
    assert_eq!(status_of(&app, &conv).await, "open");

    for (body, field) in [
        (json!({"status": "lost"}), "status"),
        (json!({"owner_id": "mallory"}), "owner_id"),
        (json!({"stauts": "new"}), "stauts"),
    ] {
        let (status, error) = patch(&app, &format!("/api/v1/tickets/{ticket}"), body.clone()).await;
        assert_eq!(status, 422, "{body}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{error}"
        );
    }
    let (status, _) = patch(
        &app,
        "/api/v1/tickets/tkt_01JD0000000000000000000000",
        json!({"status": "new"}),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_reply_that_moves_the_ticket_is_all_or_nothing() {
    let app = desk().await;
    let (conv, ticket) = conversation(&app, "m1", "ana", "hi").await;
    let path = format!("/api/v1/conversations/{conv}/messages");
    let (status, body) = app
        .api(
            Method::POST,
            &path,
            Some(json!({"parts": [{"type": "text", "text": "bye"}], "ticket_status": "closed"})),
            Some(REP_TOKEN),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        app.messages(&conv).await.len(),
        1,
        "the refused reply was not stored"
    );
    assert!(items(app.get("/api/v1/deliveries?state=pending").await).is_empty());

    let (status, body) = app
        .api(
            Method::POST,
            &path,
            Some(
                json!({"parts": [{"type": "text", "text": "bye"}], "ticket_status": "closed",
                        "ticket_properties": {"resolution": "answered"}}),
            ),
            Some(REP_TOKEN),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    app.drain_outbox().await;
    assert_eq!(app.delivered().await.len(), 1);
    let t = app.get(&format!("/api/v1/tickets/{ticket}")).await;
    assert_eq!(t["status"], "closed");
    assert_eq!(t["properties"]["resolution"], "answered");
    assert_eq!(status_of(&app, &conv).await, "closed");
}

#[tokio::test]
async fn deleting_a_conversation_trashes_its_ticket_and_an_admin_can_restore_it() {
    let app = desk().await;
    let (conv, ticket) = conversation(&app, "m1", "ana", "hi").await;
    let (status, _) = app
        .api(
            Method::DELETE,
            &format!("/api/v1/conversations/{conv}"),
            None,
            Some(REP_TOKEN),
        )
        .await;
    assert_eq!(status, 403, "reps cannot delete");
    let (status, _) = app
        .api(
            Method::DELETE,
            &format!("/api/v1/conversations/{conv}"),
            None,
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .api(
            Method::GET,
            &format!("/api/v1/tickets/{ticket}"),
            None,
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 404);
    assert!(
        app.conversations().await.is_empty(),
        "trashed conversations are hidden"
    );

    let restore = format!("/api/v1/tickets/{ticket}/restore");
    let (status, _) = app.api(Method::POST, &restore, None, Some(REP_TOKEN)).await;
    assert_eq!(status, 403, "reps cannot restore");
    let (status, body) = app
        .api(Method::POST, &restore, None, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["conversation_ids"], json!([conv]));
    assert_eq!(app.conversations().await.len(), 1);
    let (status, _) = app
        .api(Method::POST, &restore, None, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(status, 409, "not in the trash any more");
}

#[tokio::test]
async fn deleting_a_ticket_deletes_its_conversations() {
    let app = desk().await;
    let (conv, ticket) = conversation(&app, "m1", "ana", "hi").await;
    let (status, _) = app
        .api(
            Method::DELETE,
            &format!("/api/v1/tickets/{ticket}"),
            None,
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .api(
            Method::GET,
            &format!("/api/v1/conversations/{conv}"),
            None,
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_history_says_who_changed_what_and_why() {
    let app = desk().await;
    let (conv, ticket) = conversation(&app, "m1", "ana", "hi").await;
    patch(
        &app,
        &format!("/api/v1/conversations/{conv}"),
        json!({"owner_id": "alice"}),
    )
    .await;
    patch(
        &app,
        &format!("/api/v1/tickets/{ticket}"),
        json!({"status": "waiting_on_us", "reason": "needs billing"}),
    )
    .await;
    let history = items(app.get(&format!("/api/v1/tickets/{ticket}/history")).await);
    let actions: Vec<(&str, &str)> = history
        .iter()
        .map(|e| (e["entity"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("conversation", "owner_changed"),
            ("ticket", "owner_changed"),
            ("ticket", "status_changed")
        ]
    );
    let last = history.last().unwrap();
    assert_eq!(last["actor"], "test-rep");
    assert_eq!(last["actor_type"], "token");
    assert_eq!(last["reason"], "needs billing");
    assert_eq!(
        last["changes"]["status"],
        json!({"from": "new", "to": "waiting_on_us"})
    );
}

#[tokio::test]
async fn a_tickets_priority_is_one_of_four_levels_and_each_change_is_in_the_history() {
    let app = desk().await;
    let (_, ticket) = conversation(&app, "m1", "ana", "hi").await;
    let url = format!("/api/v1/tickets/{ticket}");
    let (status, body) = patch(&app, &url, json!({"priority": "urgent", "reason": "VIP"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["priority"], "urgent");

    for wrong in [json!("critical"), json!("HIGH"), json!("")] {
        let (status, body) = patch(&app, &url, json!({"priority": wrong})).await;
        assert_eq!(status, 422, "{wrong}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("priority"),
            "{body}"
        );
    }
    assert_eq!(
        app.get(&url).await["priority"],
        "urgent",
        "a refusal changes nothing"
    );

    let (status, body) = patch(&app, &url, json!({"priority": null})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["priority"], Value::Null);
    let (_, body) = patch(
        &app,
        &url,
        json!({"priority": "low", "properties": {"x": 1}}),
    )
    .await;
    assert_eq!(body["priority"], "low");

    let history = items(app.get(&format!("{url}/history")).await);
    let changes: Vec<&Value> = history
        .iter()
        .filter(|e| e["action"] == "priority_changed")
        .map(|e| &e["changes"]["priority"])
        .collect();
    assert_eq!(
        changes,
        [
            &json!({"from": "medium", "to": "urgent"}),
            &json!({"from": "urgent", "to": null}),
            &json!({"from": null, "to": "low"}),
        ]
    );
    let first = history
        .iter()
        .find(|e| e["action"] == "priority_changed")
        .unwrap();
    assert_eq!(first["reason"], "VIP");
}

#[tokio::test]
async fn racing_property_updates_lose_neither() {
    let app = desk().await;
    let (_, ticket) = conversation(&app, "m1", "ana", "hi").await;
    let url = app.url(&format!("/api/v1/tickets/{ticket}"));
    // Ten PATCHes in flight at once, each setting its own property.
    let mut racing = tokio::task::JoinSet::new();
    for i in 0..10 {
        let (http, url) = (app.http.clone(), url.clone());
        racing.spawn(async move {
            http.patch(url)
                .bearer_auth(REP_TOKEN)
                .json(&json!({"properties": {format!("k{i}"): i}}))
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    while let Some(status) = racing.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    let properties = app.get(&format!("/api/v1/tickets/{ticket}")).await["properties"].clone();
    assert_eq!(properties.as_object().unwrap().len(), 10, "{properties}");
}

#[tokio::test]
async fn conversations_are_found_by_text_and_filtered_by_ticket_status_owner_and_time() {
    let app = desk().await;
    let (parcel, parcel_ticket) = conversation(&app, "m1", "ana", "my parcel never arrived").await;
    let (refund, _) = conversation(&app, "m2", "bo", "I want a refund for order 77").await;
    patch(
        &app,
        &format!("/api/v1/conversations/{refund}"),
        json!({"owner_id": "alice"}),
    )
    .await;
    patch(
        &app,
        &format!("/api/v1/tickets/{parcel_ticket}"),
        json!({"status": "waiting_on_us"}),
    )
    .await;

    let ids = |page: Value| {
        items(page)
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(app.get("/api/v1/conversations?q=parcel").await),
        vec![parcel.clone()]
    );
    assert_eq!(
        ids(app.get("/api/v1/conversations?q=PARC").await),
        vec![parcel.clone()],
        "prefix, any case"
    );
    assert_eq!(
        ids(app.get("/api/v1/conversations?q=refund%2077").await),
        vec![refund.clone()]
    );
    assert!(ids(app.get("/api/v1/conversations?q=zebra").await).is_empty());
    assert!(
        ids(app.get("/api/v1/conversations?q=%22%20OR%20*").await).is_empty(),
        "FTS syntax is not interpreted"
    );
    assert_eq!(
        ids(app
            .get("/api/v1/conversations?ticket_status=waiting_on_us")
            .await),
        vec![parcel.clone()]
    );
    assert_eq!(
        ids(app.get("/api/v1/conversations?unassigned=true").await),
        vec![parcel.clone()]
    );
    assert_eq!(
        ids(app.get("/api/v1/conversations?owner=alice").await),
        vec![refund.clone()]
    );
    assert_eq!(
        ids(app
            .get("/api/v1/conversations?from=2000-01-01T00:00:00Z")
            .await)
        .len(),
        2
    );
    assert!(
        ids(app
            .get("/api/v1/conversations?to=2000-01-01T00:00:00Z")
            .await)
        .is_empty()
    );

    for bad in [
        "from=yesterday",
        "owner=mallory",
        "unassigned=maybe",
        "status=pending",
        "limit=0",
        "limit=-5",
    ] {
        let (status, body) = app
            .api(
                Method::GET,
                &format!("/api/v1/conversations?{bad}"),
                None,
                Some(REP_TOKEN),
            )
            .await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    // Asking for more than a page holds gets a full page, not an error.
    let (status, body) = app
        .api(
            Method::GET,
            "/api/v1/conversations?limit=500",
            None,
            Some(REP_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_contacts_owner_and_email_can_be_set_and_cleared() {
    let app = desk().await;
    let (conv, _) = conversation(&app, "m1", "ana", "hi").await;
    let contact = app.get(&format!("/api/v1/conversations/{conv}")).await["contact"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = patch(
        &app,
        &format!("/api/v1/contacts/{contact}"),
        json!({"owner_id": "bob", "email": "ana@new.example"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["owner_id"].as_str(), body["email"].as_str()),
        (Some("bob"), Some("ana@new.example"))
    );
    let (status, body) = patch(
        &app,
        &format!("/api/v1/contacts/{contact}"),
        json!({"owner_id": null}),
    )
    .await;
    assert_eq!((status, &body["owner_id"]), (200, &Value::Null));
    assert_eq!(body["email"], "ana@new.example", "untouched");
    let (status, _) = patch(
        &app,
        &format!("/api/v1/contacts/{contact}"),
        json!({"owner_id": "mallory"}),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = patch(
        &app,
        "/api/v1/contacts/ctc_01JD0000000000000000000000",
        json!({}),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn each_move_into_a_conditional_status_must_bring_its_properties() {
    let app = desk().await;
    let (_, ticket) = conversation(&app, "m1", "ana", "hi").await;
    let path = format!("/api/v1/tickets/{ticket}");
    let close = json!({"status": "closed", "properties": {"resolution": "refunded"}});
    assert_eq!(patch(&app, &path, close).await.0, 200);
    assert_eq!(patch(&app, &path, json!({"status": "new"})).await.0, 200);
    // The old resolution is still there, but a new closing needs its own.
    let (status, body) = patch(&app, &path, json!({"status": "closed"})).await;
    assert_eq!(status, 422, "{body}");
    // Staying closed, a property it requires cannot be removed.
    let close = json!({"status": "closed", "properties": {"resolution": "answered"}});
    assert_eq!(patch(&app, &path, close).await.0, 200);
    let (status, _) = patch(&app, &path, json!({"properties": {"resolution": null}})).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn analytics_count_conversations_messages_and_replies_in_the_period() {
    let app = desk().await;
    let (conv, _) = conversation(&app, "m1", "ana", "hi").await;
    conversation(&app, "m2", "bo", "hello").await;
    app.reply(&conv, "hi ana").await;
    let report = app.get("/api/v1/analytics").await;
    let demo = &report["channels"][0];
    assert_eq!(demo["channel_id"], "demo");
    assert_eq!(
        (
            demo["conversations"].as_u64(),
            demo["messages_inbound"].as_u64()
        ),
        (Some(2), Some(2))
    );
    assert_eq!(demo["messages_outbound"], 1);
    assert_eq!(demo["first_response"]["count"], 1);
    // The reply came from a token bound to no rep: no rep is credited with it.
    assert_eq!(report["reps"], json!([]));

    let (status, _) = app
        .api(
            Method::GET,
            "/api/v1/analytics?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z",
            None,
            Some(REP_TOKEN),
        )
        .await;
    assert_eq!(status, 422);
    let empty = app
        .get("/api/v1/analytics?from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z")
        .await;
    assert_eq!(empty["channels"], json!([]));
}

#[tokio::test]
async fn a_reply_via_the_email_channel_reaches_the_contact_and_joins_the_same_ticket() {
    let sink = crate::smtp::SmtpSink::start().await;
    let app = TestApp::spawn_with(Options {
        extra: format!(
            "{DESK}\n[smtp]\nurl = \"{}\"\nfrom = \"support@example.com\"\n\n[channels.mail]\nkind = \"email\"\nsubject = \"Your parcel\"\n",
            sink.url()
        ),
        ..Options::default()
    })
    .await;
    // text_event gives the contact the email ana@example.com.
    let (conv, ticket) = conversation(&app, "m1", "ana", "my parcel never arrived").await;
    let path = format!("/api/v1/conversations/{conv}/messages");
    let (status, body) = app
        .api(
            Method::POST,
            &path,
            Some(json!({"parts": [{"type": "text", "text": "We sent a new one"}], "via_channel": "mail"})),
            Some(REP_TOKEN),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["channel_id"], "mail");
    let email_conversation = body["conversation_id"].as_str().unwrap().to_owned();
    assert_ne!(email_conversation, conv);
    app.drain_outbox().await;

    let mails = sink.received();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["ana@example.com"]);
    assert_eq!(mails[0].header("Subject").unwrap(), "Your parcel");
    assert!(mails[0].body().contains("We sent a new one"));
    let ticket = app.get(&format!("/api/v1/tickets/{ticket}")).await;
    assert_eq!(
        ticket["conversation_ids"],
        json!([conv, email_conversation])
    );
    let sent = app.messages(&email_conversation).await;
    assert_eq!(sent[0]["delivery"]["status"], "sent");

    // A second reply via email goes into the same email conversation.
    app.api(
        Method::POST,
        &path,
        Some(json!({"parts": [{"type": "text", "text": "Tracking: 42"}], "via_channel": "mail"})),
        Some(REP_TOKEN),
    )
    .await;
    let ticket = app
        .get(&format!(
            "/api/v1/tickets/{}",
            ticket["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(ticket["conversation_ids"].as_array().unwrap().len(), 2);

    for (via, expected) in [("nope", "no channel"), ("demo", "generic channel")] {
        let (status, error) = app
            .api(
                Method::POST,
                &path,
                Some(json!({"parts": [{"type": "text", "text": "x"}], "via_channel": via})),
                Some(REP_TOKEN),
            )
            .await;
        assert_eq!(status, 422);
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains(expected),
            "{error}"
        );
    }
    // Nothing may post to an outbound-only channel.
    let response = app
        .post_webhook("mail", &text_event("x1", "ana", "hi"))
        .await;
    assert_eq!(response.status(), 405);
}

#[tokio::test]
async fn the_ticket_list_filters_like_the_conversation_list_and_pages() {
    let app = desk().await;
    let (_, first) = conversation(&app, "m1", "ana", "hi").await;
    let (_, second) = conversation(&app, "m2", "bo", "hello").await;
    let (_, third) = conversation(&app, "m3", "cy", "hey").await;
    patch(
        &app,
        &format!("/api/v1/tickets/{second}"),
        json!({"owner_id": "alice"}),
    )
    .await;
    patch(
        &app,
        &format!("/api/v1/tickets/{third}"),
        json!({"status": "waiting_on_us"}),
    )
    .await;
    let ids = |page: Value| -> Vec<String> {
        items(page)
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };

    assert_eq!(
        ids(app.get("/api/v1/tickets").await),
        [third.as_str(), second.as_str(), first.as_str()],
        "newest first"
    );
    assert_eq!(
        ids(app.get("/api/v1/tickets?owner=alice").await),
        [second.as_str()]
    );
    assert_eq!(
        ids(app.get("/api/v1/tickets?unassigned=true").await),
        [third.as_str(), first.as_str()]
    );
    assert_eq!(
        ids(app
            .get("/api/v1/tickets?status=waiting_on_us&pipeline=support")
            .await),
        [third.as_str()]
    );
    assert_eq!(
        ids(app.get("/api/v1/tickets?channel=off").await),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(app
            .get("/api/v1/tickets?from=2000-01-01T00:00:00Z&channel=demo")
            .await)
        .len(),
        3
    );
    assert!(ids(app.get("/api/v1/tickets?to=2000-01-01T00:00:00Z").await).is_empty());

    let page = app.get("/api/v1/tickets?limit=2").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(ids(page), [third.as_str(), second.as_str()]);
    let rest = app
        .get(&format!("/api/v1/tickets?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(rest["next_cursor"], Value::Null);
    assert_eq!(ids(rest), [first.as_str()]);

    for bad in [
        "owner=ghost",
        "unassigned=maybe",
        "trashed=yes",
        "from=yesterday",
        "limit=0",
    ] {
        let (status, body) = app
            .api(
                Method::GET,
                &format!("/api/v1/tickets?{bad}"),
                None,
                Some(REP_TOKEN),
            )
            .await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request");
    }
}

#[tokio::test]
async fn the_trash_is_listed_and_the_delete_answer_names_what_went_there_with_its_queued_replies() {
    // The first attempt is far off: the reply is still queued when the ticket is trashed.
    let app = TestApp::spawn_with(Options {
        extra: DESK.into(),
        retry_schedule_ms: vec![3_600_000],
        ..Options::default()
    })
    .await;
    let (conv, ticket) = conversation(&app, "m1", "ana", "hi").await;
    let (status, _) = app.reply(&conv, "on its way").await;
    assert_eq!(status, 202);

    let (status, trashed) = app
        .api(
            Method::DELETE,
            &format!("/api/v1/conversations/{conv}"),
            None,
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{trashed}");
    assert_eq!(trashed["ticket_id"], ticket.as_str());
    assert_eq!(trashed["conversation_ids"], json!([conv]));
    assert_eq!(
        trashed["queued_replies"], 1,
        "the queued reply is named: trashing does not cancel it"
    );
    assert_eq!(
        items(app.get("/api/v1/deliveries?state=pending").await).len(),
        1,
        "and it is still queued"
    );

    assert!(items(app.get("/api/v1/tickets").await).is_empty());
    let trash = items(app.get("/api/v1/tickets?trashed=true").await);
    assert_eq!(trash.len(), 1);
    assert_eq!(trash[0]["id"], ticket.as_str());
    assert_eq!(trash[0]["conversation_ids"], json!([conv]));
    assert!(trash[0]["trashed_at"].is_string(), "{:?}", trash[0]);

    let (status, _) = app
        .api(
            Method::POST,
            &format!("/api/v1/tickets/{ticket}/restore"),
            None,
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 200);
    assert!(items(app.get("/api/v1/tickets?trashed=true").await).is_empty());
    let history = items(app.get(&format!("/api/v1/tickets/{ticket}/history")).await);
    let deleted = history.iter().find(|e| e["action"] == "deleted").unwrap();
    assert_eq!(deleted["changes"]["conversation_ids"], json!([conv]));
    assert_eq!(deleted["changes"]["queued_replies"], 1);
    assert_eq!(deleted["changes"]["queued_replies_cancelled"], false);
}

#[tokio::test]
async fn restoring_records_what_it_did_to_each_conversation() {
    let app = desk().await;
    let (conv, ticket) = conversation(&app, "m1", "ana", "hi").await;
    let (status, _) = app
        .api(
            Method::DELETE,
            &format!("/api/v1/tickets/{ticket}"),
            None,
            Some(ADMIN_TOKEN),
        )
        .await;
    assert!((200..300).contains(&status), "trashed: {status}");
    // Ana writes again: a new conversation holds her thread now.
    let (newer, _) = conversation(&app, "m2", "ana", "anyone?").await;
    assert_ne!(newer, conv);

    let (status, restored) = app
        .api(
            Method::POST,
            &format!("/api/v1/tickets/{ticket}/restore"),
            None,
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(status_of(&app, &conv).await, "closed");
    let history = items(app.get(&format!("/api/v1/tickets/{ticket}/history")).await);
    let entry = history
        .iter()
        .find(|e| e["action"] == "restored" && e["entity_id"] == conv.as_str())
        .expect("the restore of the conversation is recorded");
    assert_eq!(entry["entity"], "conversation");
    assert_eq!(
        entry["changes"]["status"],
        json!({"from": "open", "to": "closed"})
    );
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .contains("another conversation"),
        "{entry}"
    );
}
