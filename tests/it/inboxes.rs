//! Inboxes and access: a rep token sees and acts only on the conversations, tickets,
//! contacts and events of its rep's inboxes; anything else answers 404, exactly like an id
//! that does not exist. Admins see everything.

use reqwest::Method;
use serde_json::{Value, json};

use crate::events::Stream;
use crate::harness::{ADMIN_TOKEN, Options, REP_TOKEN, TestApp, items, secret, sha256, text_event};

pub const ALICE: &str = "alice-token";
pub const BOB: &str = "bob-token";

/// Alice works the `sales` inbox (channel `sales`), Bob the `support` inbox (channel
/// `help`) through his team; `demo` is in no inbox, so in `default`, which every rep
/// works. `inboxes` replaces the inbox section (for reload tests).
pub fn desk_config(inboxes: &str, more: &str) -> String {
    desk_config_with(&["sales", "help"], inboxes, more)
}

/// [`desk_config`] with only some of its channels.
pub fn desk_config_with(channels: &[&str], inboxes: &str, more: &str) -> String {
    let channel = |id: &str| {
        // Emails to reps call a channel by its name.
        let name = if id == "sales" {
            "name = \"Sales line\"\n"
        } else {
            ""
        };
        format!(
            "[channels.{id}]\nkind = \"generic\"\n{name}secret = \"{}\"\noutbound_url = \"http://127.0.0.1:9/{id}\"\n",
            secret()
        )
    };
    format!(
        r#"
[[reps]]
id = "alice"
name = "Alice Doe"
email = "alice@example.com"
[[reps]]
id = "bob"
email = "bob@example.com"
teams = ["support"]
[[reps]]
id = "carol"
email = "carol@example.com"

[[api.tokens]]
name = "alice-laptop"
role = "rep"
rep = "alice"
sha256 = "{alice}"
[[api.tokens]]
name = "bob-laptop"
role = "rep"
rep = "bob"
sha256 = "{bob}"

{channels}
{inboxes}
{more}
"#,
        alice = sha256(ALICE),
        bob = sha256(BOB),
        channels = channels.iter().map(|c| channel(c)).collect::<String>(),
    )
}

pub const INBOXES: &str = r#"
[inboxes.sales]
channels = ["sales"]
users = ["alice"]
[inboxes.support]
channels = ["help"]
teams = ["support"]
"#;

pub async fn spawn_desk(more: &str) -> TestApp {
    TestApp::spawn_with(Options {
        extra: desk_config(INBOXES, more),
        ..Options::default()
    })
    .await
}

pub async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    token: &str,
) -> (u16, Value) {
    app.api(method, path, body, Some(token)).await
}

/// The conversation a first message on `channel` from `user` opened.
pub async fn conversation_on(app: &TestApp, channel: &str, user: &str) -> Value {
    let response = app
        .post_webhook(
            channel,
            &text_event(&format!("{channel}-{user}"), user, "hello"),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let id = body["results"][0]["conversation_id"].as_str().unwrap();
    app.get(&format!("/api/v1/conversations/{id}")).await
}

fn ids(list: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = list
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_rep_of_one_inbox_gets_404_on_everything_of_another_inbox_as_for_an_unknown_id() {
    let app = spawn_desk("").await;
    let mine = conversation_on(&app, "sales", "buyer").await;
    let theirs = conversation_on(&app, "help", "user").await;
    let id = theirs["id"].as_str().unwrap();
    let ticket = theirs["ticket_id"].as_str().unwrap();
    let contact = theirs["contact"]["id"].as_str().unwrap();
    let message = items(
        app.get(&format!("/api/v1/conversations/{id}/messages"))
            .await,
    )[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Alice's list holds her conversation only; the admin's holds both.
    let listed = items(app.get_as("/api/v1/conversations", ALICE).await);
    assert_eq!(ids(&listed), ids(std::slice::from_ref(&mine)));
    assert_eq!(app.conversations().await.len(), 2);
    // Filtering on another inbox's channel is refused exactly as on a channel that does
    // not exist: the answer tells nothing about it.
    let refusal = |channel: &'static str| {
        let app = &app;
        async move {
            app.api(
                Method::GET,
                &format!("/api/v1/conversations?channel={channel}"),
                None,
                Some(ALICE),
            )
            .await
        }
    };
    let (status, theirs) = refusal("help").await;
    let (_, unknown) = refusal("nowhere").await;
    assert_eq!(status, 422, "{theirs}");
    assert_eq!(
        theirs["error"]["message"]
            .as_str()
            .unwrap()
            .replace("help", "nowhere"),
        unknown["error"]["message"].as_str().unwrap()
    );

    let unknown_conversation = "conv_01KAK3W9Q4M2N5P7S9T0V1W2XY";
    let calls: Vec<(Method, String, Option<Value>, &str)> = vec![
        (
            Method::GET,
            format!("/api/v1/conversations/{id}"),
            None,
            "conversation",
        ),
        (
            Method::GET,
            format!("/api/v1/conversations/{id}/messages"),
            None,
            "conversation",
        ),
        (
            Method::PATCH,
            format!("/api/v1/conversations/{id}"),
            Some(json!({"owner_id": "alice"})),
            "conversation",
        ),
        (
            Method::POST,
            format!("/api/v1/conversations/{id}/messages"),
            Some(json!({"parts": [{"type": "text", "text": "hi"}]})),
            "conversation",
        ),
        (
            Method::POST,
            format!("/api/v1/conversations/{id}/comments"),
            Some(json!({"text": "a note"})),
            "conversation",
        ),
        (
            Method::GET,
            format!("/api/v1/tickets/{ticket}"),
            None,
            "ticket",
        ),
        (
            Method::PATCH,
            format!("/api/v1/tickets/{ticket}"),
            Some(json!({"status": "waiting_on_us"})),
            "ticket",
        ),
        (
            Method::GET,
            format!("/api/v1/tickets/{ticket}/history"),
            None,
            "ticket",
        ),
        (
            Method::GET,
            format!("/api/v1/contacts/{contact}"),
            None,
            "contact",
        ),
        (
            Method::PATCH,
            format!("/api/v1/contacts/{contact}"),
            Some(json!({"email": "x@example.com"})),
            "contact",
        ),
        (
            Method::GET,
            format!("/api/v1/contacts/{contact}/conversations"),
            None,
            "contact",
        ),
        (
            Method::GET,
            format!("/api/v1/contacts/{contact}/history"),
            None,
            "contact",
        ),
        (
            Method::POST,
            format!("/api/v1/contacts/{contact}/merge"),
            Some(json!({"from": mine["contact"]["id"]})),
            "contact",
        ),
        (
            Method::GET,
            format!("/api/v1/messages/{message}/parts/0/media"),
            None,
            "message",
        ),
    ];
    for (method, path, body, what) in calls {
        let (status, answer) = call(&app, method.clone(), &path, body, ALICE).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
        assert_eq!(
            answer,
            json!({"error": {"code": "not_found", "message": format!("{what} not found")}}),
            "{method} {path}: the same answer as for an id that does not exist"
        );
    }
    let (_, unknown) = call(
        &app,
        Method::GET,
        &format!("/api/v1/conversations/{unknown_conversation}"),
        None,
        ALICE,
    )
    .await;
    assert_eq!(unknown["error"]["message"], "conversation not found");

    // Naming another inbox's contact as the one to merge is refused like an unknown one.
    let (status, answer) = call(
        &app,
        Method::POST,
        &format!(
            "/api/v1/contacts/{}/merge",
            mine["contact"]["id"].as_str().unwrap()
        ),
        Some(json!({"from": contact})),
        ALICE,
    )
    .await;
    assert_eq!(
        (status, &answer["error"]["message"]),
        (422, &json!("from: contact not found"))
    );

    // Nothing changed on Bob's side, and the admin sees it all.
    let messages = items(
        app.get(&format!("/api/v1/conversations/{id}/messages"))
            .await,
    );
    assert_eq!(messages.len(), 1, "{messages:?}");
    let theirs_now = app.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(theirs_now["owner_id"], Value::Null);
    assert_eq!(
        app.get(&format!("/api/v1/tickets/{ticket}")).await["status"],
        "new"
    );
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/conversations/{id}"),
        None,
        BOB,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_rep_sees_none_of_another_inboxs_events() {
    let app = spawn_desk("").await;
    let mut alice = Stream::open_as(&app, "", ALICE).await;
    let mut admin = Stream::open_as(&app, "", ADMIN_TOKEN).await;
    let theirs = conversation_on(&app, "help", "user").await;
    let id = theirs["id"].as_str().unwrap();
    // Bob works on his conversation: a reply, an assignment, a comment, a status change.
    call(
        &app,
        Method::POST,
        &format!("/api/v1/conversations/{id}/messages"),
        Some(json!({"parts": [{"type": "text", "text": "on it"}]})),
        BOB,
    )
    .await;
    call(
        &app,
        Method::PATCH,
        &format!("/api/v1/conversations/{id}"),
        Some(json!({"owner_id": "bob", "status": "closed"})),
        BOB,
    )
    .await;
    call(
        &app,
        Method::POST,
        &format!("/api/v1/conversations/{id}/comments"),
        Some(json!({"text": "done"})),
        BOB,
    )
    .await;
    let mine = conversation_on(&app, "sales", "buyer").await;

    // The admin sees Bob's events first; Alice's first event is her own channel's.
    let (_, kind, event) = admin.next().await;
    assert_eq!(
        (kind.as_str(), &event["channel_id"]),
        ("message.created", &json!("help"))
    );
    let (_, kind, event) = alice.next().await;
    assert_eq!(kind, "message.created");
    assert_eq!(event["channel_id"], "sales");
    assert_eq!(event["conversation_id"], mine["id"]);
}

#[tokio::test]
async fn a_rep_token_naming_no_rep_sees_only_the_default_inbox() {
    let app = spawn_desk("").await;
    conversation_on(&app, "sales", "buyer").await;
    conversation_on(&app, "help", "user").await;
    let demo = conversation_on(&app, "demo", "ana").await;
    let listed = items(app.get_as("/api/v1/conversations", REP_TOKEN).await);
    assert_eq!(ids(&listed), ids(&[demo]));
    let inboxes = items(app.get_as("/api/v1/inboxes", REP_TOKEN).await);
    let names: Vec<&str> = inboxes.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(names, ["default"]);
}

#[tokio::test]
async fn inboxes_list_the_callers_inboxes_with_counts_and_filter_the_conversation_list() {
    let app = spawn_desk("").await;
    conversation_on(&app, "sales", "a").await;
    let taken = conversation_on(&app, "sales", "b").await;
    conversation_on(&app, "help", "c").await;
    conversation_on(&app, "demo", "d").await;
    call(
        &app,
        Method::PATCH,
        &format!("/api/v1/conversations/{}", taken["id"].as_str().unwrap()),
        Some(json!({"owner_id": "alice"})),
        ALICE,
    )
    .await;

    let alice = app.get_as("/api/v1/inboxes", ALICE).await;
    assert_eq!(alice["next_cursor"], Value::Null);
    let summary = |list: &Value| -> Vec<(String, Value, u64, u64)> {
        items(list.clone())
            .iter()
            .map(|i| {
                (
                    i["id"].as_str().unwrap().to_owned(),
                    i["channels"].clone(),
                    i["open"].as_u64().unwrap(),
                    i["unassigned"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        summary(&alice),
        [
            ("default".to_owned(), json!(["demo", "off"]), 1, 1),
            ("sales".to_owned(), json!(["sales"]), 2, 1),
        ]
    );
    let everything = app.get("/api/v1/inboxes").await;
    assert_eq!(summary(&everything).len(), 3);
    assert_eq!(items(everything)[2]["teams"], json!(["support"]));

    let sales = items(app.get("/api/v1/conversations?inbox=sales").await);
    assert_eq!(sales.len(), 2);
    assert!(sales.iter().all(|c| c["channel_id"] == "sales"));
    let unassigned = items(
        app.get_as("/api/v1/conversations?inbox=sales&unassigned=true", ALICE)
            .await,
    );
    assert_eq!(unassigned.len(), 1);
    let (status, body) = call(
        &app,
        Method::GET,
        "/api/v1/conversations?inbox=support",
        None,
        ALICE,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("inbox:"),
        "{body}"
    );
}

#[tokio::test]
async fn a_reload_changes_what_a_rep_sees_at_once() {
    let app = spawn_desk("").await;
    let theirs = conversation_on(&app, "help", "user").await;
    let path = format!("/api/v1/conversations/{}", theirs["id"].as_str().unwrap());
    assert_eq!(call(&app, Method::GET, &path, None, ALICE).await.0, 404);

    let moved = r#"
[inboxes.sales]
channels = ["sales", "help"]
users = ["alice"]
"#;
    app.write_config(&Options {
        extra: desk_config(moved, ""),
        ..app.options.clone()
    });
    app.reload().await;
    assert_eq!(call(&app, Method::GET, &path, None, ALICE).await.0, 200);
    // Bob's team no longer has an inbox with help in it.
    assert_eq!(call(&app, Method::GET, &path, None, BOB).await.0, 404);

    // A config putting a channel in two inboxes is refused; the running one stays.
    let twice = r#"
[inboxes.sales]
channels = ["sales", "help"]
[inboxes.support]
channels = ["help"]
"#;
    app.write_config(&Options {
        extra: desk_config(twice, ""),
        ..app.options.clone()
    });
    app.reload().await;
    let ready = app.get("/readyz").await;
    let error = ready["config"]["error"].as_str().unwrap();
    assert!(error.contains("inboxes.support.channels"), "{error}");
    assert_eq!(call(&app, Method::GET, &path, None, ALICE).await.0, 200);
}

#[tokio::test]
async fn a_tokens_actions_are_attributed_to_its_rep() {
    let app = spawn_desk("").await;
    let mine = conversation_on(&app, "sales", "buyer").await;
    let id = mine["id"].as_str().unwrap();
    let (status, reply) = call(
        &app,
        Method::POST,
        &format!("/api/v1/conversations/{id}/messages"),
        Some(json!({"parts": [{"type": "text", "text": "Thanks!"}]})),
        ALICE,
    )
    .await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["sender"], json!({"type": "rep", "id": "alice"}));
    call(
        &app,
        Method::PATCH,
        &format!("/api/v1/tickets/{}", mine["ticket_id"].as_str().unwrap()),
        Some(json!({"status": "waiting_on_contact"})),
        ALICE,
    )
    .await;
    let history = items(
        app.get(&format!(
            "/api/v1/tickets/{}/history",
            mine["ticket_id"].as_str().unwrap()
        ))
        .await,
    );
    let change = history
        .iter()
        .find(|e| e["action"] == "status_changed")
        .unwrap();
    assert_eq!(change["actor"], "alice");
    assert_eq!(change["actor_type"], "rep");
}

#[tokio::test]
async fn a_token_bound_to_no_rep_acts_as_a_token_never_as_a_rep_named_like_it() {
    let app = spawn_desk("").await;
    let demo = conversation_on(&app, "demo", "ana").await;
    let id = demo["id"].as_str().unwrap();
    let ticket = demo["ticket_id"].as_str().unwrap();
    let token = json!({"type": "token", "id": "test-rep"});
    let (status, reply) = call(
        &app,
        Method::POST,
        &format!("/api/v1/conversations/{id}/messages"),
        Some(json!({"parts": [{"type": "text", "text": "Thanks!"}]})),
        REP_TOKEN,
    )
    .await;
    assert_eq!((status, &reply["sender"]), (202, &token), "{reply}");
    let (status, comment) = call(
        &app,
        Method::POST,
        &format!("/api/v1/conversations/{id}/comments"),
        Some(json!({"text": "asked the warehouse"})),
        REP_TOKEN,
    )
    .await;
    assert_eq!((status, &comment["sender"]), (201, &token), "{comment}");
    let thread = app.messages(id).await;
    assert!(
        thread[1..].iter().all(|m| m["sender"] == token),
        "{thread:?}"
    );
    let (status, _) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/tickets/{ticket}"),
        Some(json!({"status": "waiting_on_contact"})),
        REP_TOKEN,
    )
    .await;
    assert_eq!(status, 200);
    let history = items(app.get(&format!("/api/v1/tickets/{ticket}/history")).await);
    let change = history
        .iter()
        .find(|e| e["action"] == "status_changed")
        .unwrap();
    assert_eq!(
        (&change["actor"], &change["actor_type"]),
        (&json!("test-rep"), &json!("token"))
    );

    // The conversation got its first response, but from no rep.
    let report = app.get("/api/v1/analytics").await;
    let demo = report["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel_id"] == "demo")
        .unwrap();
    assert_eq!(demo["first_response"]["count"], 1);
    assert_eq!(report["reps"], json!([]), "a token is not a rep");
}

#[tokio::test]
async fn a_rep_sets_only_their_own_presence_and_notifications_and_an_admin_anyones() {
    let app = spawn_desk("").await;
    for setting in ["presence", "notifications"] {
        let body = match setting {
            "presence" => json!({"status": "online"}),
            _ => json!({"enabled": true}),
        };
        let put = |rep: &'static str, token: &'static str| {
            let (app, body) = (&app, body.clone());
            async move {
                call(
                    app,
                    Method::PUT,
                    &format!("/api/v1/reps/{rep}/{setting}"),
                    Some(body),
                    token,
                )
                .await
            }
        };
        let (status, refused) = put("bob", ALICE).await;
        assert_eq!(
            (status, &refused["error"]["code"]),
            (403, &json!("forbidden")),
            "{setting}: {refused}"
        );
        assert_eq!(
            put("bob", REP_TOKEN).await.0,
            403,
            "{setting}: a token of no rep"
        );
        assert_eq!(put("alice", ALICE).await.0, 200, "{setting}: her own");
        assert_eq!(put("bob", ADMIN_TOKEN).await.0, 200, "{setting}: an admin");
    }
    // Bob is online and notified because the admin said so, not Alice.
    let reps = items(app.get("/api/v1/reps").await);
    let bob = reps.iter().find(|r| r["id"] == "bob").unwrap();
    assert_eq!(
        (&bob["status"], &bob["notify"]),
        (&json!("online"), &json!(true))
    );
}

#[tokio::test]
async fn analytics_cover_only_the_callers_inboxes() {
    let app = spawn_desk("").await;
    for (channel, user) in [("sales", "buyer"), ("help", "user"), ("demo", "ana")] {
        let conversation = conversation_on(&app, channel, user).await;
        let id = conversation["id"].as_str().unwrap();
        let (status, _) = call(
            &app,
            Method::POST,
            &format!("/api/v1/conversations/{id}/messages"),
            Some(json!({"parts": [{"type": "text", "text": "On it"}]})),
            ADMIN_TOKEN,
        )
        .await;
        assert_eq!(status, 202);
    }
    let channels = |report: &Value| -> Vec<String> {
        report["channels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["channel_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = app.get("/api/v1/analytics").await;
    assert_eq!(channels(&all), ["demo", "help", "sales"]);
    let alice = app.get_as("/api/v1/analytics", ALICE).await;
    assert_eq!(channels(&alice), ["demo", "sales"]);
    let bob = app.get_as("/api/v1/analytics", BOB).await;
    assert_eq!(channels(&bob), ["demo", "help"]);
    let anonymous = app.get_as("/api/v1/analytics", REP_TOKEN).await;
    assert_eq!(channels(&anonymous), ["demo"]);
}

#[tokio::test]
async fn a_channel_removed_from_the_config_stays_in_the_default_inbox_with_its_conversations() {
    let app = spawn_desk("").await;
    let theirs = conversation_on(&app, "help", "user").await;
    let path = format!("/api/v1/conversations/{}", theirs["id"].as_str().unwrap());
    assert_eq!(call(&app, Method::GET, &path, None, ALICE).await.0, 404);

    let without_help = "[inboxes.sales]\nchannels = [\"sales\"]\nusers = [\"alice\"]\n";
    app.write_config(&Options {
        extra: desk_config_with(&["sales"], without_help, ""),
        ..app.options.clone()
    });
    app.reload().await;
    assert_eq!(app.get("/readyz").await["config"]["last_result"], "ok");
    // Every rep works default, which keeps what left the config.
    assert_eq!(call(&app, Method::GET, &path, None, ALICE).await.0, 200);
    let default = items(app.get_as("/api/v1/inboxes", ALICE).await)
        .into_iter()
        .find(|i| i["id"] == "default")
        .unwrap();
    assert_eq!(
        (default["open"].as_u64(), default["unassigned"].as_u64()),
        (Some(1), Some(1))
    );
    let listed = items(
        app.get_as("/api/v1/conversations?inbox=default", ALICE)
            .await,
    );
    assert_eq!(ids(&listed), ids(std::slice::from_ref(&theirs)));
}

#[tokio::test]
async fn a_conversation_or_ticket_can_be_assigned_only_to_a_rep_who_can_see_it() {
    let app = spawn_desk("").await;
    let sales = conversation_on(&app, "sales", "ana").await;
    let path = format!("/api/v1/conversations/{}", sales["id"].as_str().unwrap());
    let ticket = format!("/api/v1/tickets/{}", sales["ticket_id"].as_str().unwrap());

    // Bob works support only: sales answers him 404, so it cannot be his.
    let (status, body) = call(
        &app,
        Method::PATCH,
        &path,
        Some(json!({"owner_id": "bob"})),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("owner_id:"),
        "{body}"
    );
    let (status, body) = call(
        &app,
        Method::PATCH,
        &ticket,
        Some(json!({"owner_id": "bob"})),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(app.get(&path).await["owner_id"], Value::Null);
    assert_eq!(app.get(&ticket).await["owner_id"], Value::Null);
    assert_eq!(
        items(app.get("/api/v1/conversations?owner=bob").await).len(),
        0,
        "nothing counts against Bob's capacity"
    );

    // Alice works sales.
    for target in [&path, &ticket] {
        let (status, body) = call(
            &app,
            Method::PATCH,
            target,
            Some(json!({"owner_id": "alice"})),
            ADMIN_TOKEN,
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(call(&app, Method::GET, &path, None, ALICE).await.0, 200);
}

#[tokio::test]
async fn routing_skips_a_contact_owner_who_cannot_see_the_channel() {
    let app = TestApp::spawn_with(Options {
        extra: desk_config(INBOXES, "").replace(
            "[channels.sales]\n",
            "[channels.sales]\nrouting = { mode = \"contact_owner\" }\n",
        ),
        ..Options::default()
    })
    .await;
    let first = conversation_on(&app, "sales", "ana").await;
    let contact = first["contact"]["id"].as_str().unwrap();
    let (status, _) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/contacts/{contact}"),
        Some(json!({"owner_id": "bob"})),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(status, 200);
    let path = format!("/api/v1/conversations/{}", first["id"].as_str().unwrap());
    call(
        &app,
        Method::PATCH,
        &path,
        Some(json!({"status": "closed"})),
        ADMIN_TOKEN,
    )
    .await;

    // Ana writes again: the conversation reopens and routing looks at her owner, Bob.
    app.post_webhook("sales", &text_event("again", "ana", "hello again"))
        .await;
    let reopened = app.get(&path).await;
    assert_eq!(reopened["status"], "open");
    assert_eq!(reopened["owner_id"], Value::Null, "Bob would get 404 on it");
    let history = items(
        app.get(&format!(
            "/api/v1/tickets/{}/history",
            reopened["ticket_id"].as_str().unwrap()
        ))
        .await,
    );
    let routed = history
        .iter()
        .rfind(|e| e["actor"] == "routing")
        .expect("the decision is recorded");
    assert_eq!(routed["action"], "left_unassigned");
    assert_eq!(routed["changes"]["considered"][0]["rep_id"], "bob");
    assert_eq!(
        routed["changes"]["considered"][0]["outcome"],
        "outside_inbox"
    );
}

#[tokio::test]
async fn a_config_routing_to_a_rep_outside_the_channels_inboxes_is_refused() {
    let app = spawn_desk("").await;
    // Bob works support, not sales.
    let routed_to_bob = desk_config(INBOXES, "").replace(
        "[channels.sales]\n",
        "[channels.sales]\nrouting = { mode = \"users_and_teams\", users = [\"alice\", \"bob\"] }\n",
    );
    app.write_config(&Options {
        extra: routed_to_bob,
        ..app.options.clone()
    });
    app.reload().await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready["config"]["last_result"], "error");
    let error = ready["config"]["error"].as_str().unwrap();
    assert!(
        error.contains("channels.sales.routing.users") && error.contains("\"bob\""),
        "{error}"
    );
}

#[tokio::test]
async fn the_ticket_list_shows_only_tickets_of_the_callers_inboxes() {
    let app = spawn_desk("").await;
    let sales = conversation_on(&app, "sales", "ana").await;
    let help = conversation_on(&app, "help", "bo").await;
    let ids = |page: Value| -> Vec<String> {
        items(page)
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let sales_ticket = sales["ticket_id"].as_str().unwrap();
    let help_ticket = help["ticket_id"].as_str().unwrap();
    assert_eq!(
        ids(app.get_as("/api/v1/tickets", ALICE).await),
        [sales_ticket]
    );
    assert_eq!(ids(app.get_as("/api/v1/tickets", BOB).await), [help_ticket]);
    // Another inbox's channel is refused as a channel that does not exist would be.
    let (status, body) = call(
        &app,
        Method::GET,
        "/api/v1/tickets?channel=help",
        None,
        ALICE,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["message"],
        "channel: no channel \"help\" of yours"
    );
    assert_eq!(ids(app.get("/api/v1/tickets").await).len(), 2);

    // The trash is scoped the same way.
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/tickets/{help_ticket}"),
        None,
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(status, 200);
    assert!(ids(app.get_as("/api/v1/tickets?trashed=true", ALICE).await).is_empty());
    assert_eq!(
        ids(app.get_as("/api/v1/tickets?trashed=true", BOB).await),
        [help_ticket]
    );
}
