//! Bad input: every refusal is a JSON error with the right status, and nothing is stored.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{ADMIN_TOKEN, Options, REP_TOKEN, TestApp, items, text_event};

/// Asserts the `{"error": {"code", "message"}}` shape and returns the code.
async fn error_code(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().await.expect("error bodies are JSON");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body["error"]["code"]
        .as_str()
        .expect("error code")
        .to_owned()
}

async fn assert_nothing_stored(app: &TestApp) {
    assert!(
        app.conversations().await.is_empty(),
        "a refused webhook stored something"
    );
}

fn signed_body() -> Vec<u8> {
    text_event("m1", "ana", "hi").to_string().into_bytes()
}

#[tokio::test]
async fn missing_forged_or_stale_signatures_are_refused_with_401() {
    let app = TestApp::spawn().await;
    let body = signed_body();
    let unsigned = app
        .http
        .post(app.url("/hooks/demo"))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(unsigned, 401).await, "missing_signature");

    let forged = app
        .http
        .post(app.url("/hooks/demo"))
        .header("content-type", "application/json")
        .header("webhook-id", "evt_1")
        .header(
            "webhook-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )
        .header(
            "webhook-signature",
            "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(forged, 401).await, "invalid_signature");

    // Ten seconds past the window each way: the timestamp is in whole seconds, so a skew of
    // 301 s signed just before a second boundary and checked just after it (or on a busy
    // machine) arrives as 300 s, inside the window, and the test would fail at random.
    for skew in [-310, 310, -3600] {
        let stale = app
            .post_signed("demo", body.clone(), "application/json", skew)
            .await;
        assert_eq!(
            error_code(stale, 401).await,
            "invalid_timestamp",
            "skew {skew}"
        );
    }
    // Inside the ±5 minute window a correctly signed request is fine.
    assert_eq!(
        app.post_signed("demo", body, "application/json", -290)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_tampered_body_does_not_verify() {
    let app = TestApp::spawn().await;
    let key =
        channel_bridge::adapters::signature::WebhookKey::parse(&crate::harness::secret()).unwrap();
    let ts = chrono::Utc::now().timestamp();
    let signature = key.sign("evt_1", ts, &signed_body());
    let tampered = text_event("m1", "ana", "send the refund to me").to_string();
    let response = app
        .http
        .post(app.url("/hooks/demo"))
        .header("content-type", "application/json")
        .header("webhook-id", "evt_1")
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response, 401).await, "invalid_signature");
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn unknown_channel_is_404_and_disabled_channel_is_503_with_retry_after() {
    let app = TestApp::spawn().await;
    let unknown = app
        .post_webhook("nope", &text_event("m1", "ana", "hi"))
        .await;
    assert_eq!(error_code(unknown, 404).await, "unknown_channel");

    let disabled = app
        .post_webhook("off", &text_event("m1", "ana", "hi"))
        .await;
    assert!(disabled.headers().get("retry-after").is_some());
    assert_eq!(error_code(disabled, 503).await, "channel_disabled");
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn malformed_json_is_400_and_a_missing_field_is_400_naming_it() {
    let app = TestApp::spawn().await;
    let truncated = app
        .post_signed(
            "demo",
            br#"{"type":"message","id":"app-6","#.to_vec(),
            "application/json",
            0,
        )
        .await;
    assert_eq!(error_code(truncated, 400).await, "malformed_json");

    let cases = [
        (
            json!({"type": "message", "id": "m1", "parts": [{"type": "text", "text": "x"}]}),
            "from",
        ),
        (
            json!({"type": "message", "id": "m1", "from": {"id": "ana"}}),
            "parts",
        ),
        (
            json!({"type": "message", "from": {"id": "ana"}, "parts": []}),
            "id",
        ),
        (
            json!({"type": "message", "id": "m1", "from": {"id": "ana"}, "parts": []}),
            "parts",
        ),
        (
            json!({"type": "message", "id": "m1", "from": {"id": "ana"}, "parts": [{"type": "image", "media": {}}]}),
            "parts[0].media",
        ),
        (
            json!({"type": "status", "id": "x", "status": "teleported"}),
            "status",
        ),
        (json!({"type": "typing"}), "type"),
    ];
    for (event, field) in cases {
        let response = app.post_webhook("demo", &event).await;
        assert_eq!(response.status(), 400, "{event}");
        let body: Value = response.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{field}:")),
            "{event} -> {message}"
        );
    }
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn one_bad_event_refuses_the_whole_batch() {
    let app = TestApp::spawn().await;
    let batch = json!([text_event("m1", "ana", "fine"), {"type": "message", "id": "m2"}]);
    let response = app.post_webhook("demo", &batch).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("[1].from:"),
        "{body}"
    );
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn a_body_over_max_body_bytes_is_413_and_a_wrong_content_type_is_415() {
    let app = TestApp::spawn_with(Options {
        max_body_bytes: 1024,
        ..Options::default()
    })
    .await;
    let big = text_event("m1", "ana", &"x".repeat(2000))
        .to_string()
        .into_bytes();
    let response = app.post_signed("demo", big, "application/json", 0).await;
    assert_eq!(error_code(response, 413).await, "payload_too_large");

    let form = app
        .post_signed(
            "demo",
            signed_body(),
            "application/x-www-form-urlencoded",
            0,
        )
        .await;
    assert_eq!(error_code(form, 415).await, "unsupported_media_type");
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn the_api_needs_a_known_bearer_token() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .api(Method::GET, "/api/v1/conversations", None, None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = app
        .api(Method::GET, "/api/v1/conversations", None, Some("guess"))
        .await;
    assert_eq!(status, 401);
    let (status, _) = app
        .api(Method::GET, "/api/v1/conversations", None, Some(REP_TOKEN))
        .await;
    assert_eq!(status, 200);
    // Dead letters and redrive are for admins.
    let (status, body) = app
        .api(
            Method::GET,
            "/api/v1/deliveries?state=dead",
            None,
            Some(REP_TOKEN),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
}

#[tokio::test]
async fn bad_replies_are_refused_and_nothing_is_queued() {
    let app = TestApp::spawn().await;
    app.post_webhook("demo", &text_event("m1", "ana", "hi"))
        .await;
    let conversation = app.only_conversation().await;
    let path = format!(
        "/api/v1/conversations/{}/messages",
        conversation["id"].as_str().unwrap()
    );
    let post = |path: String, body: Value| {
        let app = &app;
        async move {
            app.api(Method::POST, &path, Some(body), Some(REP_TOKEN))
                .await
        }
    };

    let (status, _) = post(
        "/api/v1/conversations/conv_01JD0000000000000000000000/messages".into(),
        json!({"parts": [{"type": "text", "text": "x"}]}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = post(
        "/api/v1/conversations/not-an-id/messages".into(),
        json!({"parts": [{"type": "text", "text": "x"}]}),
    )
    .await;
    assert_eq!(status, 404);

    for (body, expected) in [
        (json!({"parts": []}), "parts: must not be empty"),
        (json!({}), "parts:"),
        (
            json!({"parts": [{"type": "text", "text": ""}]}),
            "parts[0].text",
        ),
        (json!({"parts": [{"type": "hologram"}]}), "parts[0].type"),
        (
            json!({"parts": [{"type": "text", "text": "x"}], "reply_to": "msg_nope"}),
            "reply_to",
        ),
        (
            json!({"parts": [{"type": "text", "text": "x"}], "repl_to": "typo"}),
            "repl_to: unknown field",
        ),
    ] {
        let (status, error) = post(path.clone(), body.clone()).await;
        assert_eq!(status, 422, "{body} -> {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(expected), "{body} -> {message}");
    }
    let (status, error) = post(
        path.clone(),
        json!({"parts": [{"type": "text", "text": "x"}], "reply_to": "msg_01JD0000000000000000000000"}),
    )
    .await;
    assert_eq!(status, 422, "a reply_to outside the conversation: {error}");

    let malformed = app
        .http
        .post(app.url(&path))
        .bearer_auth(REP_TOKEN)
        .header("content-type", "application/json")
        .body("{\"parts\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(malformed, 400).await, "malformed_json");
    let text = app
        .http
        .post(app.url(&path))
        .bearer_auth(REP_TOKEN)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(text, 415).await, "unsupported_media_type");

    let messages = app.messages(conversation["id"].as_str().unwrap()).await;
    assert_eq!(messages.len(), 1, "no refused reply was stored");
    assert!(items(app.get("/api/v1/deliveries?state=pending").await).is_empty());
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .api(Method::GET, "/nowhere", None, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = app.api(Method::DELETE, "/hooks/demo", None, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (status, _) = app
        .api(
            Method::GET,
            "/api/v1/conversations?limit=0",
            None,
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .api(
            Method::GET,
            "/api/v1/conversations?cursor=garbage",
            None,
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, 422);
}

/// The status and the error message of a GET with the admin token.
async fn refusal(app: &TestApp, path: &str) -> (u16, String) {
    let (status, body) = app.api(Method::GET, path, None, Some(ADMIN_TOKEN)).await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    (status, message.to_owned())
}

#[tokio::test]
async fn a_limit_above_what_a_page_holds_is_a_full_page_with_a_cursor_and_a_bad_one_is_422() {
    let app = TestApp::spawn().await;
    for i in 0..3 {
        app.post_webhook(
            "demo",
            &text_event(&format!("m{i}"), &format!("u{i}"), "hi"),
        )
        .await
        .error_for_status()
        .unwrap();
    }
    for list in ["/api/v1/conversations", "/api/v1/deliveries"] {
        for bad in [
            "limit=0",
            "limit=-1",
            "limit=+5",
            "limit=1.5",
            "limit=ten",
            "limit=000",
            "limit=9223372036854775808",
        ] {
            let (status, message) = refusal(&app, &format!("{list}?{bad}")).await;
            assert_eq!(status, 422, "{list}?{bad}: {message}");
            assert!(message.starts_with("limit:"), "{list}?{bad}: {message}");
        }
        for fits in [
            "limit=201",
            "limit=1",
            "limit=007",
            "limit=9223372036854775807",
        ] {
            let (status, message) = refusal(&app, &format!("{list}?{fits}")).await;
            assert_eq!(status, 200, "{list}?{fits}: {message}");
        }
    }
    // What a client that asks for more than a page holds sees: everything there is (here),
    // or a full page whose cursor says more follow.
    let all = app.get("/api/v1/conversations?limit=500").await;
    assert_eq!(items(all.clone()).len(), 3);
    assert!(all["next_cursor"].is_null());
    let first = app.get("/api/v1/conversations?limit=2").await;
    assert_eq!(items(first.clone()).len(), 2);
    assert!(first["next_cursor"].is_string());
}

#[tokio::test]
async fn an_unknown_query_parameter_is_422_naming_it_on_every_list() {
    let app = TestApp::spawn().await;
    let lists = [
        "/api/v1/conversations",
        "/api/v1/conversations/conv_01KAK3W9Q4M2N5P7S9T0V1W2XY/messages",
        "/api/v1/contacts/ctc_01KAK3W9Q4M2N5P7S9T0V1W2XY/conversations",
        "/api/v1/deliveries",
        "/api/v1/inboxes",
        "/api/v1/snippets",
        "/api/v1/reps",
        "/api/v1/channels",
        "/api/v1/analytics",
        "/api/v1/events",
    ];
    for list in lists {
        let (status, message) = refusal(&app, &format!("{list}?chanel=demo")).await;
        assert_eq!(status, 422, "{list}: {message}");
        assert!(
            message.starts_with("chanel: not a parameter"),
            "{list}: {message}"
        );
        // Without a token the answer is still 401: the refusal tells nothing first.
        let (status, _) = app
            .api(Method::GET, &format!("{list}?chanel=demo"), None, None)
            .await;
        assert_eq!(status, 401, "{list}");
    }
    let (_, message) = refusal(&app, "/api/v1/conversations?status=open&limt=5").await;
    assert!(message.starts_with("limt:"), "{message}");
    assert!(message.contains("limit"), "names what it takes: {message}");
}

#[tokio::test]
async fn filters_that_name_nothing_are_422_naming_them_not_an_unfiltered_or_empty_list() {
    let app = TestApp::spawn().await;
    app.post_webhook("demo", &text_event("m1", "ana", "hi"))
        .await
        .error_for_status()
        .unwrap();
    let refused = [
        ("/api/v1/conversations?channel=nowhere", "channel"),
        ("/api/v1/conversations?channel=", "channel"),
        (
            "/api/v1/conversations?ticket_status=teleported",
            "ticket_status",
        ),
        ("/api/v1/conversations?ticket_status=", "ticket_status"),
        ("/api/v1/conversations?owner=mallory", "owner"),
        ("/api/v1/conversations?owner=", "owner"),
        ("/api/v1/conversations?status=", "status"),
        ("/api/v1/conversations?inbox=", "inbox"),
        ("/api/v1/conversations?to=", "to"),
        ("/api/v1/deliveries?state=", "state"),
        ("/api/v1/events?channel=nowhere", "channel"),
        ("/api/v1/events?owner=mallory", "owner"),
        ("/api/v1/events?last_event_id=", "last_event_id"),
        ("/api/v1/analytics?from=", "from"),
        ("/api/v1/tickets?channel=nowhere", "channel"),
        ("/api/v1/tickets?channel=", "channel"),
        ("/api/v1/tickets?status=teleported", "status"),
        ("/api/v1/tickets?pipeline=nowhere", "pipeline"),
        ("/api/v1/tickets?owner=mallory", "owner"),
        ("/api/v1/tickets?owner=", "owner"),
        ("/api/v1/tickets?trashed=", "trashed"),
    ];
    for (path, name) in refused {
        let (status, message) = refusal(&app, path).await;
        assert_eq!(status, 422, "{path}: {message}");
        assert!(
            message.starts_with(&format!("{name}:")),
            "{path}: {message}"
        );
    }
    // The filters that name something still filter.
    for (path, found) in [
        ("/api/v1/conversations?channel=demo", 1),
        ("/api/v1/conversations?channel=off", 0),
        ("/api/v1/conversations?ticket_status=new", 1),
        ("/api/v1/conversations?ticket_status=closed", 0),
        ("/api/v1/conversations?owner=none", 1),
        ("/api/v1/tickets?channel=demo", 1),
        ("/api/v1/tickets?status=new", 1),
        ("/api/v1/tickets?status=closed", 0),
        ("/api/v1/tickets?owner=none", 1),
    ] {
        assert_eq!(items(app.get(path).await).len(), found, "{path}");
    }
}

#[tokio::test]
async fn refused_json_bodies_do_not_show_the_parsers_position() {
    let app = TestApp::spawn().await;
    let send = |path: &'static str, body: &'static str| {
        app.http
            .post(app.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases = [
        ("/api/v1/snippets", r#"{"id": "hi", "text": "#, 400, "body"),
        (
            "/api/v1/snippets",
            r#"{"id": "hi" "text": "x"}"#,
            400,
            "body",
        ),
        ("/api/v1/snippets", r#"{"id": 5, "text": "x"}"#, 422, "id:"),
        // serde would read the fields from an array in order: every body is an object.
        ("/api/v1/snippets", r#"["hi", "hello"]"#, 422, "body:"),
        (
            "/api/v1/contacts",
            r#"{"identifiers": [{"channel_id": "demo", "value": 7}]}"#,
            422,
            "identifiers[0].value:",
        ),
    ];
    for (path, body, status, starts) in cases {
        let response = send(path, body).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{body}");
        let answer: Value = response.json().await.unwrap();
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(starts), "{body} -> {message}");
        assert!(
            !message.contains("line") && !message.contains("column"),
            "{body} -> {message}"
        );
    }
    let truncated = app
        .post_signed(
            "demo",
            br#"{"type":"message","#.to_vec(),
            "application/json",
            0,
        )
        .await;
    let answer: Value = truncated.json().await.unwrap();
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("line") && !message.contains("column"),
        "{message}"
    );
}
