//! The OpenAPI 3.1 document of the whole HTTP surface, served at `GET /api/openapi.json`.
//!
//! The document is not written by hand: every handler carries a `#[utoipa::path]`
//! annotation and `app::routes` registers handlers only through `utoipa_axum::routes!`,
//! which adds the route to the router and the operation to the document in one step. A
//! plain `.route(…)` would add a route the document does not show, so clippy forbids it
//! (`clippy.toml`). This module holds what the operations share: the document's header,
//! the bearer scheme, and the error answers.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

use crate::error::ErrorBody;

/// The name of the bearer security scheme, as operations cite it in `security(...)`.
pub const BEARER: &str = "bearer";

/// What the document says before any operation is added: title, tags, the bearer scheme
/// and the error body.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "channel-bridge",
        description = "Connects messaging apps a help desk does not support to the help desk \
            as a custom channel. `/api/v1` needs `Authorization: Bearer <token>` (roles \
            `rep` and `admin`); webhooks are authenticated by each platform's signature; \
            the operational endpoints and this document are open. Every error answers \
            `{\"error\": {\"code\", \"message\"}}`. Lists answer `{\"items\": [...], \
            \"next_cursor\": ...}`: pass `next_cursor` back as `cursor` for the next page \
            (`limit` from 1 to 200; more is refused). A query parameter an operation does \
            not declare, an empty value, or a filter naming no configured channel, inbox, \
            rep or ticket status answers 422 naming it."
    ),
    modifiers(&BearerScheme),
    components(schemas(ErrorBody)),
    tags(
        (name = "webhooks", description = "Inbound webhooks from platforms and in-house apps"),
        (name = "conversations", description = "Conversations, their messages and rep replies"),
        (name = "tickets", description = "Tickets: status, owner, properties, trash, history"),
        (name = "contacts", description = "The people on the platform side: timeline, create, merge"),
        (name = "inboxes", description = "Groups of channels and the reps who work them"),
        (name = "snippets", description = "Reusable reply texts with placeholders"),
        (name = "deliveries", description = "The outbox: pending and dead-lettered sends"),
        (name = "channels", description = "Configured channels"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer scheme `/api/v1` operations name in their `security`.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut Document) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A token from `[[api.tokens]]` in the config (stored there as its SHA-256). \
                 Role `rep` may read and reply; some operations need role `admin`.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// The bearer token is missing or unknown: every `/api/v1` operation can answer this.
#[derive(IntoResponses)]
#[response(
    status = 401,
    description = "No `Authorization: Bearer` token, or one the config does not know \
        (`unauthorized`).",
    headers(("www-authenticate" = String, description = "`Bearer`"))
)]
pub struct Unauthorized(pub ErrorBody);

/// The operation is for admins and the token is a rep's.
#[derive(IntoResponses)]
#[response(
    status = 403,
    description = "This needs a token with role `admin` (`forbidden`)."
)]
pub struct AdminOnly(pub ErrorBody);

/// The store failed: every operation that reads or writes it can answer these.
#[derive(IntoResponses)]
pub enum StoreErrors {
    #[response(
        status = 500,
        description = "An unexpected storage error (`internal`); the details are in the log."
    )]
    Internal(ErrorBody),
    #[response(
        status = 503,
        description = "Storage is unavailable (`storage_unavailable`); try again after \
            `Retry-After` seconds.",
        headers(("retry-after" = u64, description = "Seconds to wait before retrying"))
    )]
    Unavailable(ErrorBody),
}

/// A JSON request body was refused (see `api::JsonBody`).
#[derive(IntoResponses)]
pub enum JsonBodyErrors {
    #[response(
        status = 400,
        description = "The body is not JSON (`malformed_json`) or could not be read."
    )]
    Malformed(ErrorBody),
    #[response(
        status = 413,
        description = "The body is larger than `server.max_body_bytes` (`payload_too_large`)."
    )]
    TooLarge(ErrorBody),
    #[response(
        status = 415,
        description = "The body is not sent as `application/json` (`unsupported_media_type`)."
    )]
    NotJson(ErrorBody),
    #[response(
        status = 422,
        description = "The body does not fit, or contradicts what is stored \
            (`invalid_request`); the message starts with the field's path."
    )]
    Invalid(ErrorBody),
}

/// The whole document: the same routes the daemon serves, with their operations.
pub fn document() -> Document {
    let mut document = crate::app::routes().into_openapi();
    declare_unknown_parameter_refusal(&mut document);
    document
}

/// Every `/api/v1` operation refuses query parameters it does not declare (`api::params`,
/// which wraps every route): an operation that documents no 422 of its own gets this one.
/// Added here rather than on each handler so that no operation, now or later, misses it.
fn declare_unknown_parameter_refusal(document: &mut Document) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let refusal = ResponseBuilder::new()
        .description(
            "A query parameter this operation does not take (`invalid_request`, naming it).",
        )
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    for (path, item) in document.paths.paths.iter_mut() {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let answer = operation
                .responses
                .responses
                .entry("422".to_owned())
                .or_insert_with(|| refusal.clone().into());
            // An operation's own 422 (a body that does not fit) covers this case too.
            if let RefOr::T(own) = answer
                && !own.description.contains("does not take")
            {
                own.description
                    .push_str(" Also: a query parameter this operation does not take.");
            }
        }
    }
}

/// A tagged enum's variant is documented as `allOf: [its struct, {"type": …}]`, and the
/// struct, which refuses unknown fields, as `additionalProperties: false`: together no
/// value fits (`type` is unknown to the struct). The struct's closure moves to the variant
/// as `unevaluatedProperties: false`, which sees through `allOf`, so a `{"type": "text",
/// "text": "hi"}` fits and a field neither declares still does not.
fn close_tagged_variants(document: &mut serde_json::Value) {
    let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(|s| s.as_object_mut())
    else {
        return;
    };
    let mut opened = Vec::new();
    for schema in schemas.values_mut() {
        let Some(variants) = schema.get_mut("oneOf").and_then(|v| v.as_array_mut()) else {
            continue;
        };
        for variant in variants {
            let target = variant
                .pointer("/allOf/0/$ref")
                .and_then(|r| r.as_str())
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .map(str::to_owned);
            let tagged = variant.pointer("/allOf/1/properties/type").is_some();
            if let (Some(target), true) = (target, tagged) {
                variant["unevaluatedProperties"] = serde_json::Value::Bool(false);
                opened.push(target);
            }
        }
    }
    for name in opened {
        if let Some(schema) = schemas.get_mut(&name).and_then(|s| s.as_object_mut()) {
            schema.remove("additionalProperties");
        }
    }
}

/// The OpenAPI 3.1 document of this daemon, generated from the code that serves it.
///
/// Needs no token: it is documentation and shows no data.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses(
        (status = 200, description = "This document.", body = Object,
            content_type = "application/json"),
    )
)]
pub async fn serve() -> impl IntoResponse {
    // Built once: the document only changes with the binary.
    static JSON: LazyLock<String> = LazyLock::new(|| {
        let mut document = serde_json::to_value(document()).expect("the document serializes");
        close_tagged_variants(&mut document);
        serde_json::to_string(&document).expect("the document serializes")
    });
    ([(header::CONTENT_TYPE, "application/json")], JSON.as_str())
}
