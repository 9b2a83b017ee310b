//! `GET /api/openapi.json`: an OpenAPI 3.1 document of exactly what the router serves.
//!
//! The document and the router are built from the same annotations, and clippy refuses
//! routes added any other way; these tests check the result from outside, against the
//! running app: every documented operation is served, nothing else is served on a
//! documented path, the documented security is what the app enforces, and every
//! reference resolves.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::Value;

use crate::harness::{ADMIN_TOKEN, TestApp};

/// The HTTP API of ARCHITECTURE.md §11, as served today: what users and scripts rely on.
/// The document may hold more; it must hold these.
const CONTRACT: &[(&str, &[&str])] = &[
    ("/hooks/{channel}", &["get", "post"]),
    ("/api/v1/conversations", &["get"]),
    ("/api/v1/conversations/{id}", &["get", "patch", "delete"]),
    ("/api/v1/conversations/{id}/messages", &["get", "post"]),
    ("/api/v1/messages/{id}/parts/{n}/media", &["get"]),
    ("/api/v1/uploads", &["post"]),
    ("/media/uploads/{token}", &["get"]),
    ("/api/v1/tickets/{id}", &["get", "patch", "delete"]),
    ("/api/v1/tickets/{id}/history", &["get"]),
    ("/api/v1/tickets/{id}/restore", &["post"]),
    ("/api/v1/contacts/{id}", &["get", "patch"]),
    ("/api/v1/deliveries", &["get"]),
    ("/api/v1/deliveries/{id}/retry", &["post"]),
    ("/api/v1/channels", &["get"]),
    ("/api/openapi.json", &["get"]),
    ("/healthz", &["get"]),
    ("/readyz", &["get"]),
    ("/metrics", &["get"]),
];

/// The methods the probe tries on every documented path.
const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

/// Fetches the document as anyone would: no token.
async fn document(app: &TestApp) -> Value {
    let response = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("request reaches the app");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).expect("the document is JSON")
}

/// Documented path → its methods.
fn operations(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| METHODS.contains(&k.as_str()) || *k == "head" || *k == "options")
                .cloned()
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// A concrete URL path for a templated one; the ids need not exist.
fn concrete(path: &str) -> String {
    path.replace("{channel}", "demo")
        .replace("{id}", "x")
        .replace("{n}", "0")
}

/// What the router answers when it has no route for a path or a method (app.rs).
fn router_refusal(status: u16, body: &Value) -> Option<&'static str> {
    let error = (
        body["error"]["code"].as_str(),
        body["error"]["message"].as_str(),
    );
    match (status, error) {
        (404, (Some("not_found"), Some("no such endpoint"))) => Some("no route"),
        (405, (Some("method_not_allowed"), Some("method not allowed here"))) => Some("no method"),
        _ => None,
    }
}

async fn call(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    app.api(method, path, None, token).await
}

#[tokio::test]
async fn the_document_is_openapi_3_1_json_and_needs_no_token() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1"), "{version}");
    assert_eq!(doc["info"]["title"], "channel-bridge");
    assert!(doc["info"]["version"].is_string());
}

#[tokio::test]
async fn the_documented_surface_includes_every_route_of_the_contract() {
    let app = TestApp::spawn().await;
    let documented = operations(&document(&app).await);
    for (path, methods) in CONTRACT {
        let got = documented
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is not in the document"));
        for method in *methods {
            assert!(
                got.contains(*method),
                "{method} {path} is not in the document"
            );
        }
    }
}

/// Derived from the code, not from a list: each documented operation is served, and on a
/// documented path every other method gets the router's 405.
#[tokio::test]
async fn the_router_serves_exactly_the_documented_methods_on_each_documented_path() {
    let app = TestApp::spawn().await;
    let documented = operations(&document(&app).await);

    let (status, body) = call(&app, "get", "/surely/not/a/route", None).await;
    assert_eq!(router_refusal(status, &body), Some("no route"), "{body}");

    for (path, methods) in &documented {
        let url = concrete(path);
        for method in METHODS {
            // Without a token nothing on /api/v1 gets past authentication, and a webhook
            // without a signature is refused: the probe changes nothing.
            let (status, body) = call(&app, method, &url, None).await;
            let refusal = router_refusal(status, &body);
            if methods.contains(*method) {
                assert_eq!(
                    refusal, None,
                    "{method} {path} is documented but not routed ({status} {body})"
                );
            } else {
                assert_eq!(
                    refusal,
                    Some("no method"),
                    "{method} {path} is routed but not documented ({status} {body})"
                );
            }
        }
    }
}

/// Every `/api/v1` operation declares the bearer scheme, nothing else declares security,
/// and the app enforces exactly that: 401 without a token, something else with one.
#[tokio::test]
async fn every_api_v1_operation_declares_the_bearer_scheme_the_app_enforces() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");

    let bearer = serde_json::json!([{"bearer": []}]);
    for (path, methods) in operations(&doc) {
        for method in methods {
            let operation = &doc["paths"][&path][&method];
            let url = concrete(&path);
            let (status, body) = call(&app, &method, &url, None).await;
            if path.starts_with("/api/v1/") {
                assert_eq!(
                    operation["security"], bearer,
                    "{method} {path} must declare the bearer scheme"
                );
                assert_eq!(
                    (status, body["error"]["code"].as_str()),
                    (401, Some("unauthorized")),
                    "{method} {path} without a token: {body}"
                );
                assert!(
                    operation["responses"]["401"].is_object(),
                    "{method} {path} must document its 401"
                );
                // An event stream never ends: check its status, not its body.
                if operation["responses"]["200"]["content"]["text/event-stream"].is_object() {
                    let response = app
                        .http
                        .get(app.url(&url))
                        .bearer_auth(ADMIN_TOKEN)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200, "{method} {path} with a token");
                    continue;
                }
                let (status, body) = call(&app, &method, &url, Some(ADMIN_TOKEN)).await;
                assert_ne!(status, 401, "{method} {path} with a token: {body}");
            } else {
                assert!(
                    operation.get("security").is_none(),
                    "{method} {path} is open and must not declare security"
                );
                assert_ne!(
                    body["error"]["code"].as_str(),
                    Some("unauthorized"),
                    "{method} {path} is documented as open: {body}"
                );
            }
        }
    }
}

/// Collects every `$ref` in the document.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => out.push(target),
                    _ => refs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_reference_resolves_within_the_document() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 20, "expected schemas to be referenced");
    for target in found {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{target} points outside the document"));
        assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
    }
}

/// The paged lists, the resources and the request bodies have named schemas with the
/// fields §11 promises.
#[tokio::test]
async fn resources_and_request_bodies_have_schemas() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    let properties = |name: &str| -> BTreeSet<String> {
        schemas[name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("schema {name} has no properties"))
            .keys()
            .cloned()
            .collect()
    };
    let has = |name: &str, fields: &[&str]| {
        let got = properties(name);
        for field in fields {
            assert!(got.contains(*field), "{name} has no {field}: {got:?}");
        }
    };
    has(
        "Conversation",
        &[
            "id",
            "channel_id",
            "thread_key",
            "status",
            "owner_id",
            "ticket_id",
            "contact",
            "created_at",
            "last_message_at",
        ],
    );
    has(
        "Ticket",
        &[
            "id",
            "pipeline",
            "status",
            "priority",
            "owner_id",
            "properties",
            "conversation_ids",
            "created_at",
            "closed_at",
        ],
    );
    has(
        "Contact",
        &["id", "display_name", "owner_id", "identifiers"],
    );
    has(
        "Message",
        &[
            "id",
            "conversation_id",
            "channel_id",
            "direction",
            "platform_message_id",
            "sender",
            "reply_to",
            "parts",
            "delivery",
            "created_at",
        ],
    );
    has("Media", &["platform_ref", "url", "mime_type", "size_bytes"]);
    has("Delivery", &["id", "state", "attempts", "last_error"]);
    has("AuditEntry", &["at", "actor", "action", "changes"]);
    for page in [
        "Page_Conversation",
        "Page_Message",
        "Page_Delivery",
        "Page_AuditEntry",
    ] {
        has(page, &["items", "next_cursor"]);
    }
    has("ReplyRequest", &["parts", "reply_to", "ticket_status"]);
    has("ConversationUpdate", &["owner_id", "status"]);
    has("TicketUpdate", &["status", "owner_id", "properties"]);
    has("ContactUpdate", &["owner_id", "email"]);

    let part_types: BTreeSet<&str> = schemas["Part"]["oneOf"]
        .as_array()
        .expect("Part is one of its kinds")
        .iter()
        .map(|kind| {
            kind["allOf"][1]["properties"]["type"]["enum"][0]
                .as_str()
                .expect("each kind names its type")
        })
        .collect();
    let expected = [
        "text",
        "image",
        "video",
        "audio",
        "voice_note",
        "sticker",
        "file",
        "location",
        "contact",
        "unsupported",
    ];
    assert_eq!(part_types, expected.into_iter().collect());
    // A variant is its struct plus `type`; the struct alone must not forbid `type`.
    for variant in schemas["Part"]["oneOf"].as_array().unwrap() {
        assert_eq!(variant["unevaluatedProperties"], false, "{variant}");
        let name = variant["allOf"][0]["$ref"].as_str().unwrap();
        let name = name.trim_start_matches("#/components/schemas/");
        assert!(
            schemas[name].get("additionalProperties").is_none(),
            "{name} forbids the variant's type"
        );
    }

    // Each request body is the schema of what its handler reads.
    let body_of = |path: &str, method: &str| {
        doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .map(str::to_owned)
    };
    let expected_bodies = [
        (
            "/api/v1/conversations/{id}/messages",
            "post",
            "ReplyRequest",
        ),
        ("/api/v1/conversations/{id}", "patch", "ConversationUpdate"),
        ("/api/v1/tickets/{id}", "patch", "TicketUpdate"),
        ("/api/v1/contacts/{id}", "patch", "ContactUpdate"),
        ("/hooks/{channel}", "post", "GenericWebhook"),
    ];
    for (path, method, schema) in expected_bodies {
        assert_eq!(
            body_of(path, method).as_deref(),
            Some(format!("#/components/schemas/{schema}").as_str()),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn lists_document_paging_and_the_conversation_filters() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let query = |path: &str| -> BTreeMap<String, Value> {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .map(|p| (p["name"].as_str().unwrap().to_owned(), p.clone()))
            .collect()
    };
    for path in [
        "/api/v1/conversations",
        "/api/v1/conversations/{id}/messages",
        "/api/v1/deliveries",
        "/api/v1/contacts/{id}/conversations",
    ] {
        let params = query(path);
        let limit = &params["limit"]["schema"];
        assert_eq!(limit["type"], "integer", "{path}");
        assert_eq!(limit["minimum"], 1, "{path}");
        assert!(
            limit.get("maximum").is_none(),
            "{path}: a larger limit is served as a full page, not refused"
        );
        assert!(
            limit["description"]
                .as_str()
                .or(params["limit"]["description"].as_str())
                .unwrap_or_default()
                .contains(&channel_bridge::api::MAX_PAGE.to_string()),
            "{path}: the page size is documented"
        );
        assert_eq!(
            limit["default"],
            channel_bridge::api::DEFAULT_PAGE,
            "{path}"
        );
        assert!(params.contains_key("cursor"), "{path}");
    }
    let filters: BTreeSet<String> = query("/api/v1/conversations").into_keys().collect();
    for filter in [
        "channel",
        "status",
        "owner",
        "ticket_status",
        "unassigned",
        "from",
        "to",
        "q",
        "inbox",
    ] {
        assert!(filters.contains(filter), "no {filter} filter: {filters:?}");
    }
    assert!(query("/api/v1/deliveries").contains_key("state"));
}

/// Every error status answers `{"error": {"code", "message"}}`, and says so.
#[tokio::test]
async fn every_error_status_documents_the_error_body() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], serde_json::json!(["error"]));
    let detail = doc
        .pointer(
            error["properties"]["error"]["$ref"]
                .as_str()
                .expect("error is a named schema")
                .trim_start_matches('#'),
        )
        .expect("it resolves");
    assert_eq!(detail["required"], serde_json::json!(["code", "message"]));

    let mut errors = 0;
    for (path, methods) in operations(&doc) {
        for method in methods {
            let responses = doc["paths"][&path][&method]["responses"]
                .as_object()
                .unwrap();
            for (status, response) in responses {
                let code: u16 = status.parse().expect("statuses are numbers");
                // /readyz answers 503 with its readiness report, not an error.
                if code < 400 || (path == "/readyz" && code == 503) {
                    continue;
                }
                errors += 1;
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
        }
    }
    assert!(errors > 50, "only {errors} error responses documented");
}

#[tokio::test]
async fn operation_ids_are_unique() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let mut seen = BTreeSet::new();
    for (path, methods) in operations(&doc) {
        for method in methods {
            let id = doc["paths"][&path][&method]["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"))
                .to_owned();
            assert!(seen.insert(id.clone()), "operationId {id} is used twice");
        }
    }
}

/// Every `/api/v1` operation refuses query parameters it does not declare, and says so.
#[tokio::test]
async fn every_api_v1_operation_documents_the_422_for_an_unknown_parameter() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    for (path, methods) in operations(&doc) {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        for method in methods {
            let answer = &doc["paths"][&path][&method]["responses"]["422"];
            let description = answer["description"].as_str().unwrap_or_default();
            assert!(
                description.contains("does not take"),
                "{method} {path}: 422 {answer}"
            );
        }
    }
}

/// What the handlers check about a value is declared: formats, bounds and lengths a
/// client can validate against before calling.
#[tokio::test]
async fn enforced_formats_and_lengths_are_declared() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let param = |path: &str, name: &str| -> Value {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} has no parameter {name}"))["schema"]
            .clone()
    };
    for (path, name) in [
        ("/api/v1/analytics", "from"),
        ("/api/v1/analytics", "to"),
        ("/api/v1/conversations", "from"),
        ("/api/v1/conversations", "to"),
    ] {
        assert_eq!(param(path, name)["format"], "date-time", "{path} {name}");
    }
    for name in ["channel", "inbox", "ticket_status"] {
        assert_eq!(
            param("/api/v1/conversations", name)["minLength"],
            1,
            "{name}"
        );
    }
    assert!(param("/api/v1/conversations", "owner")["pattern"].is_string());
    let last = param("/api/v1/events", "last_event_id");
    assert_eq!(
        (&last["type"], &last["minimum"]),
        (&serde_json::json!("integer"), &serde_json::json!(0)),
        "{last}"
    );

    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("CreateSnippet", "text"),
        ("UpdateSnippet", "text"),
        ("CommentRequest", "text"),
        ("NewIdentifier", "value"),
    ] {
        let declared = &schemas[schema]["properties"][field];
        assert_eq!(declared["minLength"], 1, "{schema}.{field}: {declared}");
    }
    assert!(schemas["CreateSnippet"]["properties"]["id"]["pattern"].is_string());
    for schema in ["TicketUpdate", "ConversationUpdate", "ContactUpdate"] {
        let owner = &schemas[schema]["properties"]["owner_id"];
        assert!(owner["pattern"].is_string(), "{schema}.owner_id: {owner}");
    }
}

/// The handshake is documented with the parameters Meta sends, and as answered only by
/// the channels that have one.
#[tokio::test]
async fn the_webhook_handshake_documents_its_parameters_and_which_channels_answer() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let operation = &doc["paths"]["/hooks/{channel}"]["get"];
    let names: BTreeSet<&str> = operation["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["hub.challenge", "hub.mode", "hub.verify_token"].into()
    );
    assert!(operation["responses"]["405"].is_object());
}

/// A reply's 202 is the stored message plus `waiting_for_channel`, always present.
#[tokio::test]
async fn the_reply_answer_documents_the_message_and_waiting_for_channel() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let answer = &doc["paths"]["/api/v1/conversations/{id}/messages"]["post"]["responses"]["202"]["content"]
        ["application/json"]["schema"]["$ref"];
    assert_eq!(answer, "#/components/schemas/AcceptedReply");
    let schema = &doc["components"]["schemas"]["AcceptedReply"];
    let text = schema.to_string();
    assert!(
        text.contains("\"#/components/schemas/Message\""),
        "it is a Message: {schema}"
    );
    // Wherever the flattened shape puts it: a required boolean.
    fn requires(value: &Value, field: &str) -> bool {
        match value {
            Value::Object(map) => {
                let here = map
                    .get("required")
                    .and_then(Value::as_array)
                    .is_some_and(|r| r.iter().any(|f| f == field))
                    && map
                        .get("properties")
                        .is_some_and(|p| p[field]["type"] == "boolean");
                here || map.values().any(|v| requires(v, field))
            }
            Value::Array(items) => items.iter().any(|v| requires(v, field)),
            _ => false,
        }
    }
    assert!(requires(schema, "waiting_for_channel"), "{schema}");
}
