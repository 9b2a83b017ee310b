//! Access: every API operation, taken from the OpenAPI document (so a new route is covered
//! the day it is added), refuses a caller without a valid token; operations documented as
//! admin-only refuse rep tokens with 403 and change nothing.

use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::harness::{ADMIN_TOKEN, REP_TOKEN, TestApp, items, text_event, wait_until};

/// Real ids for the path templates, so an admin-only call would really act if allowed.
struct Ids {
    conversation: String,
    ticket: String,
    message: String,
    contact: String,
    delivery: String,
}

impl Ids {
    fn concrete(&self, path: &str) -> String {
        let id = if path.starts_with("/api/v1/conversations/") {
            &self.conversation
        } else if path.starts_with("/api/v1/tickets/") {
            &self.ticket
        } else if path.starts_with("/api/v1/messages/") {
            &self.message
        } else if path.starts_with("/api/v1/contacts/") {
            &self.contact
        } else if path.starts_with("/api/v1/deliveries/") {
            &self.delivery
        } else {
            "alice"
        };
        path.replace("{id}", id).replace("{n}", "0")
    }
}

/// A conversation with a ticket, a message, a contact and a dead-lettered reply.
async fn seed(app: &TestApp) -> Ids {
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ResponseTemplate::new(400))
        .mount(&app.receiver)
        .await;
    let event = text_event("access-1", "user-1", "hello");
    assert_eq!(app.post_webhook("demo", &event).await.status(), 200);
    let conversation = app.only_conversation().await;
    let id = conversation["id"].as_str().unwrap().to_owned();
    app.reply(&id, "bounces").await;
    wait_until(
        "the reply is dead-lettered",
        std::time::Duration::from_secs(10),
        || async { !items(app.get("/api/v1/deliveries?state=dead").await).is_empty() },
    )
    .await;
    let dead = items(app.get("/api/v1/deliveries?state=dead").await);
    Ids {
        message: app.messages(&id).await[0]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        ticket: conversation["ticket_id"].as_str().unwrap().to_owned(),
        contact: conversation["contact"]["id"].as_str().unwrap().to_owned(),
        delivery: dead[0]["id"].as_str().unwrap().to_owned(),
        conversation: id,
    }
}

/// Calls an operation with an `Authorization` header value (or none); returns the status,
/// the error code and the `WWW-Authenticate` header. Event streams are read for their
/// status only.
async fn call(
    app: &TestApp,
    method: &Method,
    url: &str,
    authorization: Option<&str>,
) -> (u16, Option<String>, Option<String>) {
    let mut request = app.http.request(method.clone(), app.url(url));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    if [Method::POST, Method::PATCH, Method::PUT].contains(method) {
        request = request.json(&json!({}));
    }
    let response = request.send().await.expect("request reaches the app");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    if response.headers().get("content-type").map(|v| v.as_bytes())
        == Some(b"text/event-stream".as_slice())
    {
        return (status, None, challenge);
    }
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let code = body["error"]["code"].as_str().map(str::to_owned);
    (status, code, challenge)
}

#[tokio::test]
async fn every_api_operation_needs_a_valid_token_and_admin_actions_refuse_rep_tokens() {
    let app = TestApp::spawn().await;
    let ids = seed(&app).await;
    let doc = app.get("/api/openapi.json").await;
    let admin_hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(ADMIN_TOKEN.as_bytes()))
    };
    let invalid = [
        None,
        Some("Bearer not-a-token".to_owned()),
        Some("Bearer ".to_owned()),
        Some(format!("Basic {ADMIN_TOKEN}")),
        Some(format!("Bearer {ADMIN_TOKEN}x")),
        // Someone who read the config knows the hash, not the token.
        Some(format!("Bearer {admin_hash}")),
    ];

    let mut operations = 0;
    let mut admin_only = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        if !template.starts_with("/api/v1/") {
            continue;
        }
        for (verb, operation) in item.as_object().unwrap() {
            let Ok(method) = Method::from_bytes(verb.to_uppercase().as_bytes()) else {
                continue;
            };
            operations += 1;
            let url = ids.concrete(template);
            for authorization in &invalid {
                let (status, code, challenge) =
                    call(&app, &method, &url, authorization.as_deref()).await;
                assert_eq!(
                    (status, code.as_deref(), challenge.as_deref()),
                    (401, Some("unauthorized"), Some("Bearer")),
                    "{verb} {template} with {authorization:?}"
                );
            }
            let admin = operation["responses"]["403"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("role `admin`"));
            let (status, code, _) =
                call(&app, &method, &url, Some(&format!("Bearer {REP_TOKEN}"))).await;
            if admin {
                admin_only.push(format!("{verb} {template}"));
                assert_eq!(
                    (status, code.as_deref()),
                    (403, Some("forbidden")),
                    "{verb} {template} with a rep token"
                );
            } else {
                assert!(
                    ![401, 403].contains(&status),
                    "{verb} {template} is open to reps, got {status} {code:?}"
                );
            }
        }
    }
    assert!(operations >= 20, "only {operations} operations found");
    admin_only.sort();
    assert_eq!(
        admin_only,
        [
            "delete /api/v1/conversations/{id}",
            "delete /api/v1/snippets/{id}",
            "delete /api/v1/tickets/{id}",
            "get /api/v1/deliveries",
            "get /api/v1/deliveries/summary",
            "patch /api/v1/snippets/{id}",
            "post /api/v1/deliveries/{id}/retry",
            "post /api/v1/snippets",
            "post /api/v1/tickets/{id}/restore",
        ]
    );

    // The refused admin actions did nothing.
    let conversation = app
        .get(&format!("/api/v1/conversations/{}", ids.conversation))
        .await;
    assert_eq!(conversation["id"], ids.conversation.as_str());
    let dead = items(app.get("/api/v1/deliveries?state=dead").await);
    assert_eq!(dead.len(), 1, "the dead letter was not redriven by a rep");
    assert!(
        app.receiver.received_requests().await.unwrap().len() == 1,
        "no second send"
    );
}
