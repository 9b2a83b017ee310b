//! Reply snippets: from the config or the admin API, rendered with the contact and the
//! rep; the rendered text is what is stored and sent; unknown placeholders are refused.

use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::harness::{ADMIN_TOKEN, Options, REP_TOKEN, TestApp, items};
use crate::inboxes::{ALICE, INBOXES, call, conversation_on, desk_config};

const SNIPPETS: &str = r#"
[snippets.hello]
text = "Hi {{contact.first_name|there}}, {{rep.first_name}} here. Your ticket is {{ticket.id}}."
[snippets.mail]
text = "We wrote to {{contact.email}}."
"#;

async fn spawn() -> TestApp {
    TestApp::spawn_with(Options {
        extra: desk_config(INBOXES, SNIPPETS),
        ..Options::default()
    })
    .await
}

async fn reply(app: &TestApp, conversation: &str, body: Value, token: &str) -> (u16, Value) {
    call(
        app,
        Method::POST,
        &format!("/api/v1/conversations/{conversation}/messages"),
        Some(body),
        token,
    )
    .await
}

#[tokio::test]
async fn a_reply_with_a_snippet_stores_and_sends_the_rendered_text() {
    let app = spawn().await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&app.receiver)
        .await;
    let conversation = conversation_on(&app, "demo", "ana").await;
    let id = conversation["id"].as_str().unwrap();
    let ticket = conversation["ticket_id"].as_str().unwrap();

    let (status, message) = reply(&app, id, json!({"snippet_id": "hello"}), ALICE).await;
    assert_eq!(status, 202, "{message}");
    let expected = format!("Hi Ana, Alice here. Your ticket is {ticket}.");
    assert_eq!(
        message["parts"],
        json!([{"type": "text", "text": expected}])
    );
    app.drain_outbox().await;
    assert_eq!(app.delivered().await[0]["parts"][0]["text"], expected);
    assert_eq!(app.messages(id).await[1]["parts"][0]["text"], expected);
}

#[tokio::test]
async fn a_snippet_that_cannot_be_filled_is_refused_and_nothing_is_sent() {
    let app = spawn().await;
    let conversation = conversation_on(&app, "demo", "ana").await;
    let id = conversation["id"].as_str().unwrap();
    // The contact has no email yet.
    call(
        &app,
        Method::PATCH,
        &format!(
            "/api/v1/contacts/{}",
            conversation["contact"]["id"].as_str().unwrap()
        ),
        Some(json!({"email": null})),
        ADMIN_TOKEN,
    )
    .await;

    let cases = [
        (json!({"snippet_id": "mail"}), ALICE, "{{contact.email}}"),
        // A token that names no rep has no name to sign with.
        (
            json!({"snippet_id": "hello"}),
            REP_TOKEN,
            "{{rep.first_name}}",
        ),
        (json!({"snippet_id": "nope"}), ALICE, "no snippet \"nope\""),
        (
            json!({"snippet_id": "hello", "parts": [{"type": "text", "text": "x"}]}),
            ALICE,
            "not both",
        ),
        (json!({}), ALICE, "parts: is required"),
    ];
    for (body, token, says) in cases {
        let (status, answer) = reply(&app, id, body.clone(), token).await;
        assert_eq!(status, 422, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    assert_eq!(app.messages(id).await.len(), 1, "nothing stored");
    assert!(items(app.get("/api/v1/deliveries?state=pending").await).is_empty());
}

#[tokio::test]
async fn admins_manage_snippets_which_survive_a_restart_and_config_ones_are_read_only() {
    let app = spawn().await;
    let created = json!({"id": "refund", "text": "Refunded, {{contact.first_name|friend}}."});
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/snippets",
        Some(created.clone()),
        ALICE,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/snippets",
        Some(created.clone()),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["source"], "api");
    assert_eq!(body["placeholders"], json!(["contact.first_name"]));
    assert_eq!(body["created_by"], "test-admin");
    let (status, _) = call(
        &app,
        Method::POST,
        "/api/v1/snippets",
        Some(created),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(status, 409);

    // Unknown placeholders are refused, naming them, on create and on change.
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/snippets",
        Some(json!({"id": "typo", "text": "Hi {{contact.nmae}} from {{rep.nick}}"})),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("text: unknown placeholders {{contact.nmae}}, {{rep.nick}}"),
        "{message}"
    );
    let (status, _) = call(
        &app,
        Method::PATCH,
        "/api/v1/snippets/refund",
        Some(json!({"text": "{{ticket.number}}"})),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(status, 422);
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/snippets",
        Some(json!({"id": "hello", "text": "shadow"})),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = call(
        &app,
        Method::PATCH,
        "/api/v1/snippets/hello",
        Some(json!({"text": "changed"})),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!((status, &body["error"]["code"]), (409, &json!("read_only")));
    let (status, _) = call(
        &app,
        Method::DELETE,
        "/api/v1/snippets/hello",
        None,
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(status, 409);

    let (status, body) = call(
        &app,
        Method::PATCH,
        "/api/v1/snippets/refund",
        Some(json!({"text": "Refund sent, {{contact.first_name|friend}}."})),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let app = app.restart().await;
    let listed = items(app.get_as("/api/v1/snippets", ALICE).await);
    let summary: Vec<(&str, &str)> = listed
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["source"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [("hello", "config"), ("mail", "config"), ("refund", "api")]
    );
    assert_eq!(
        listed[2]["text"],
        "Refund sent, {{contact.first_name|friend}}."
    );

    let conversation = conversation_on(&app, "sales", "buyer").await;
    let (status, message) = reply(
        &app,
        conversation["id"].as_str().unwrap(),
        json!({"snippet_id": "refund"}),
        ALICE,
    )
    .await;
    assert_eq!(status, 202, "{message}");
    assert_eq!(message["parts"][0]["text"], "Refund sent, Ana.");

    let (status, _) = call(
        &app,
        Method::DELETE,
        "/api/v1/snippets/refund",
        None,
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(&app, Method::GET, "/api/v1/snippets/refund", None, ALICE).await;
    assert_eq!(status, 404);
    assert_eq!(
        app.get_as("/api/v1/snippets/hello", ALICE).await["source"],
        "config"
    );
}
