//! Contacts: the timeline across channels, creating a contact for a new sender, and
//! merging two contacts that are one person.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{ADMIN_TOKEN, items};
use crate::inboxes::{ALICE, call, conversation_on, spawn_desk};

fn str(v: &Value) -> &str {
    v.as_str().unwrap()
}

async fn merge(app: &crate::harness::TestApp, into: &str, from: &str, token: &str) -> (u16, Value) {
    call(
        app,
        Method::POST,
        &format!("/api/v1/contacts/{into}/merge"),
        Some(json!({"from": from})),
        token,
    )
    .await
}

#[tokio::test]
async fn merging_moves_identifiers_and_conversations_and_is_recorded() {
    let app = spawn_desk("").await;
    let on_sales = conversation_on(&app, "sales", "ana-sales").await;
    let on_help = conversation_on(&app, "help", "ana-help").await;
    let (ana, other) = (
        str(&on_sales["contact"]["id"]),
        str(&on_help["contact"]["id"]),
    );
    call(
        &app,
        Method::PATCH,
        &format!("/api/v1/contacts/{other}"),
        Some(json!({"email": "ana@example.org", "owner_id": "bob"})),
        ADMIN_TOKEN,
    )
    .await;

    let (status, merged) = merge(&app, ana, other, ADMIN_TOKEN).await;
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["id"], ana);
    let identifiers: Vec<(&str, &str)> = merged["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (str(&i["channel_id"]), str(&i["value"])))
        .collect();
    assert_eq!(identifiers, [("help", "ana-help"), ("sales", "ana-sales")]);
    // It keeps its own fields and takes those only the other had.
    assert_eq!(merged["email"], "ana@example.com");
    assert_eq!(merged["owner_id"], "bob");

    // The other id points to the survivor; its conversation is the survivor's now.
    let (status, gone) = call(
        &app,
        Method::GET,
        &format!("/api/v1/contacts/{other}"),
        None,
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(gone["error"]["code"], "contact_merged");
    assert_eq!(
        gone["error"]["message"],
        format!("contact was merged into {ana}")
    );
    let moved = app
        .get(&format!("/api/v1/conversations/{}", str(&on_help["id"])))
        .await;
    assert_eq!(moved["contact"]["id"], ana);
    let inbound = &app.messages(str(&on_help["id"])).await[0];
    assert_eq!(inbound["sender"]["id"], ana);

    // The absorbed identity writes again: same conversation, same contact.
    app.post_webhook(
        "help",
        &crate::harness::text_event("again", "ana-help", "me again"),
    )
    .await;
    assert_eq!(app.conversations().await.len(), 2);
    assert_eq!(app.messages(str(&on_help["id"])).await.len(), 2);

    // Recorded on the contact and on the moved conversation's ticket.
    let history = items(app.get(&format!("/api/v1/contacts/{ana}/history")).await);
    let entry = history
        .iter()
        .find(|e| e["action"] == "merged")
        .expect("merge recorded");
    assert_eq!(entry["actor"], "test-admin");
    assert_eq!(entry["changes"]["from"], other);
    assert_eq!(entry["changes"]["conversations"], json!([on_help["id"]]));
    let ticket = items(
        app.get(&format!(
            "/api/v1/tickets/{}/history",
            str(&on_help["ticket_id"])
        ))
        .await,
    );
    let entry = ticket
        .iter()
        .find(|e| e["action"] == "contact_merged")
        .unwrap();
    assert_eq!(
        entry["changes"]["contact_id"],
        json!({"from": other, "to": ana})
    );

    // Merging an absorbed contact again, or a contact into itself, is refused.
    let (status, body) = merge(&app, ana, other, ADMIN_TOKEN).await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = merge(&app, ana, ana, ADMIN_TOKEN).await;
    assert_eq!(status, 422);
    let (status, _) = merge(&app, ana, "ctc_01KAK3W9Q4M2N5P7S9T0V1W2XY", ADMIN_TOKEN).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn two_contacts_on_the_same_channel_are_not_merged_and_nothing_changes() {
    let app = spawn_desk("").await;
    let first = conversation_on(&app, "sales", "number-1").await;
    let second = conversation_on(&app, "sales", "number-2").await;
    let (a, b) = (str(&first["contact"]["id"]), str(&second["contact"]["id"]));
    let (status, body) = merge(&app, a, b, ALICE).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        str(&body["error"]["message"]).contains("channel sales"),
        "{body}"
    );
    assert_eq!(
        app.get(&format!("/api/v1/contacts/{b}")).await["identifiers"][0]["value"],
        "number-2"
    );
    assert_eq!(
        app.get(&format!("/api/v1/conversations/{}", str(&second["id"])))
            .await["contact"]["id"],
        b
    );
    assert!(items(app.get(&format!("/api/v1/contacts/{a}/history")).await).is_empty());
}

#[tokio::test]
async fn the_timeline_lists_the_contacts_conversations_newest_first_with_ticket_status() {
    let app = spawn_desk("").await;
    let old = conversation_on(&app, "sales", "ana-sales").await;
    let newer = conversation_on(&app, "help", "ana-help").await;
    let ana = str(&old["contact"]["id"]);
    merge(&app, ana, str(&newer["contact"]["id"]), ADMIN_TOKEN).await;
    call(
        &app,
        Method::PATCH,
        &format!("/api/v1/tickets/{}", str(&old["ticket_id"])),
        Some(json!({"status": "closed"})),
        ADMIN_TOKEN,
    )
    .await;

    let timeline = app
        .get(&format!("/api/v1/contacts/{ana}/conversations"))
        .await;
    let rows: Vec<(&str, &str, &str, &str)> = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                str(&c["id"]),
                str(&c["channel_id"]),
                str(&c["status"]),
                str(&c["ticket"]["status"]),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (str(&newer["id"]), "help", "open", "new"),
            (str(&old["id"]), "sales", "closed", "closed"),
        ]
    );
    assert_eq!(timeline["items"][1]["ticket"]["id"], old["ticket_id"]);

    // Paged like every list.
    let first = app
        .get(&format!("/api/v1/contacts/{ana}/conversations?limit=1"))
        .await;
    assert_eq!(first["items"][0]["id"], newer["id"]);
    let cursor = str(&first["next_cursor"]);
    let second = app
        .get(&format!(
            "/api/v1/contacts/{ana}/conversations?limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(second["items"][0]["id"], old["id"]);
    assert_eq!(second["next_cursor"], Value::Null);

    // Alice sees the contact and, of the timeline, her inbox's conversation only.
    let contact = app.get_as(&format!("/api/v1/contacts/{ana}"), ALICE).await;
    assert_eq!(contact["identifiers"].as_array().unwrap().len(), 2);
    let hers = items(
        app.get_as(&format!("/api/v1/contacts/{ana}/conversations"), ALICE)
            .await,
    );
    assert_eq!(hers.len(), 1);
    assert_eq!(hers[0]["id"], old["id"]);
}

#[tokio::test]
async fn a_rep_creates_a_contact_for_a_new_sender_whose_messages_then_join_it() {
    let app = spawn_desk("").await;
    let (status, created) = call(
        &app,
        Method::POST,
        "/api/v1/contacts",
        Some(
            json!({"display_name": "Ana", "email": "ana@example.org", "owner_id": "alice",
                    "identifiers": [{"channel_id": "sales", "value": " ana-new "}]}),
        ),
        ALICE,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["identifiers"],
        json!([{"channel_id": "sales", "type": "app_user", "value": "ana-new"}])
    );
    assert_eq!(created["owner_id"], "alice");
    let id = str(&created["id"]);

    let conversation = conversation_on(&app, "sales", "ana-new").await;
    assert_eq!(conversation["contact"]["id"], id);
    assert_eq!(conversation["contact"]["owner_id"], "alice");
    let history = items(
        app.get_as(&format!("/api/v1/contacts/{id}/history"), ALICE)
            .await,
    );
    assert_eq!(history[0]["action"], "created");
    assert_eq!(history[0]["actor"], "alice");

    let refused = [
        (json!({"identifiers": []}), 422, "identifiers"),
        (
            json!({"identifiers": [{"channel_id": "help", "value": "x"}]}),
            422,
            "identifiers[0].channel_id",
        ),
        (
            json!({"identifiers": [{"channel_id": "nope", "value": "x"}]}),
            422,
            "identifiers[0].channel_id",
        ),
        (
            json!({"identifiers": [{"channel_id": "sales", "type": "telegram_user", "value": "x"}]}),
            422,
            "identifiers[0].type",
        ),
        (
            json!({"identifiers": [{"channel_id": "sales", "value": "  "}]}),
            422,
            "identifiers[0].value",
        ),
        (
            json!({"identifiers": [{"channel_id": "sales", "value": "a"}, {"channel_id": "sales", "value": "b"}]}),
            422,
            "identifiers[1].channel_id",
        ),
        (
            json!({"owner_id": "ghost", "identifiers": [{"channel_id": "sales", "value": "x"}]}),
            422,
            "owner_id",
        ),
        (
            json!({"identifiers": [{"channel_id": "sales", "value": "ana-new"}]}),
            409,
            "identifiers[0]",
        ),
    ];
    for (body, expected, field) in refused {
        let (status, answer) = call(
            &app,
            Method::POST,
            "/api/v1/contacts",
            Some(body.clone()),
            ALICE,
        )
        .await;
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(
            str(&answer["error"]["message"]).starts_with(&format!("{field}:")),
            "{body}: {answer}"
        );
    }
}
