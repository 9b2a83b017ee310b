//! Webhook ingress: `POST /hooks/{channel}` (and `GET` for platform handshakes), and
//! HubSpot's `POST /hubspot/webhook` (`hubspot.rs`). Owns the
//! HTTP side (lookup, body limit, raw bytes, the public URL); the channel's adapter
//! verifies and parses; the store commits. The answer is 200 only after the commit, so a
//! platform that got 200 can forget the message.

pub mod hubspot;

use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use crate::adapters::generic::WireBody;
use crate::adapters::{HandshakeError, RawRequest};
use crate::api::openapi::StoreErrors;
use crate::api::read_body;
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::model::ReplaceNul;
use crate::runtime::{LiveChannel, Runtime};
use crate::store::{EditSkipped, IngestOutcome};
use crate::telemetry;

/// How long a platform is told to wait before redelivering to a disabled channel.
const DISABLED_RETRY_AFTER_SECS: u64 = 60;

/// What a webhook's events did, in the order they came.
#[derive(Serialize, ToSchema)]
pub struct WebhookReceipt {
    /// New messages stored.
    stored: usize,
    /// Messages and edits seen before, not stored again.
    duplicates: usize,
    /// One outcome per event.
    results: Vec<IngestOutcome>,
}

/// Slack's `url_verification` answer: the `challenge` its signed check sent.
#[derive(Serialize, ToSchema)]
pub struct WebhookChallenge {
    challenge: String,
}

/// What a webhook is answered with: what its events did, or, for a platform checking
/// the URL (Slack's `url_verification`), the challenge it sent.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Only the document names `Challenge`: the adapter writes its body.
pub enum WebhookAnswer {
    Receipt(WebhookReceipt),
    Challenge(WebhookChallenge),
}

/// Takes a platform's webhook: verified by the channel's adapter, parsed, and stored in
/// one transaction before the answer, so a platform that got 200 can forget it.
///
/// The body and its signature are the channel's platform's: for `generic` channels (the
/// contract for in-house apps), the body below, signed with Standard Webhooks headers.
#[utoipa::path(
    post,
    path = "/hooks/{channel}",
    operation_id = "receive_webhook",
    tag = "webhooks",
    params(
        ("channel" = String, Path, description = "The channel's id: its table name in the config."),
        ("webhook-id" = Option<String>, Header, description = "Generic channels: the \
            delivery's unique id."),
        ("webhook-timestamp" = Option<i64>, Header, description = "Generic channels: unix \
            seconds, within 5 minutes of now."),
        ("webhook-signature" = Option<String>, Header, description = "Generic channels: \
            `v1,<base64 HMAC-SHA256(key, \"{id}.{timestamp}.{body}\")>`; several, space \
            separated, are accepted."),
    ),
    request_body(content = WireBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Stored (or recognized as already stored); for Slack's \
            signed `url_verification` check, the `challenge` it sent.", body = WebhookAnswer),
        (status = 400, description = "The body cannot be read as the platform's events \
            (`malformed_json`, `invalid_event`).", body = ErrorBody),
        (status = 401, description = "The signature is missing, stale or wrong \
            (`missing_signature`, `invalid_timestamp`, `invalid_signature`).", body = ErrorBody),
        (status = 404, description = "No such channel (`unknown_channel`), or one removed \
            longer ago than `reload.removed_channel_grace_s`.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes` \
            (`payload_too_large`).", body = ErrorBody),
        (status = 415, description = "The content type is not the platform's \
            (`unsupported_media_type`).", body = ErrorBody),
        StoreErrors,
        (status = 503, description = "The channel is disabled (`channel_disabled`), was removed \
            by a reload within `reload.removed_channel_grace_s` (`channel_removed`), or storage \
            is unavailable (`storage_unavailable`): redeliver after `Retry-After` seconds.",
            body = ErrorBody, headers(("retry-after" = u64))),
    )
)]
pub async fn receive(
    State(state): State<AppState>,
    Path(channel_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let result = handle(&state, &channel_id, uri, headers, body, started).await;
    if let Err(e) = &result {
        telemetry::webhook_rejected(
            channel_label(&state.runtime.load(), &channel_id),
            e.code,
            &e.message,
        );
    }
    result
}

/// The channel's id as a metric label: the id of a configured channel, else one label for
/// all unknown ones, since anyone can call `/hooks/<anything>`.
fn channel_label<'a>(runtime: &Runtime, channel_id: &'a str) -> &'a str {
    if runtime.channel(channel_id).is_some() {
        channel_id
    } else {
        telemetry::UNKNOWN_CHANNEL
    }
}

/// A platform's GET verification (Meta's `hub.challenge`): answered by the adapter.
///
/// Only `whatsapp`, `messenger` and `instagram` channels have one; every other channel
/// answers 405.
#[utoipa::path(
    get,
    path = "/hooks/{channel}",
    operation_id = "webhook_handshake",
    tag = "webhooks",
    params(
        ("channel" = String, Path, description = "The channel's id: its table name in the \
            config. Only a `whatsapp`, `messenger` or `instagram` channel answers GET."),
        ("hub.mode" = Option<String>, Query, description = "Meta: `subscribe`; required.",
            pattern = "^subscribe$"),
        ("hub.verify_token" = Option<String>, Query, description = "Meta: the channel's \
            `verify_token`; required."),
        ("hub.challenge" = Option<String>, Query, description = "Meta: what to echo back; \
            required, 1 to 256 bytes, no control characters."),
    ),
    responses(
        (status = 200, description = "The answer the platform expects (its challenge, \
            echoed), in the platform's content type.", body = String,
            content_type = "text/plain"),
        (status = 400, description = "The handshake is malformed (`invalid_handshake`).",
            body = ErrorBody),
        (status = 403, description = "The verify token is wrong (`invalid_verify_token`).",
            body = ErrorBody),
        (status = 404, description = "No such channel (`unknown_channel`).", body = ErrorBody),
        (status = 405, description = "The channel's platform has no GET handshake \
            (`method_not_allowed`); generic channels do not.", body = ErrorBody),
        (status = 503, description = "The channel is disabled (`channel_disabled`) or was \
            removed by a reload within `reload.removed_channel_grace_s` (`channel_removed`).",
            body = ErrorBody, headers(("retry-after" = u64))),
    )
)]
pub async fn handshake(
    State(state): State<AppState>,
    Path(channel_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let runtime = state.runtime.load_full();
    let channel = serving(&runtime, &channel_id)?;
    let request = raw_request(&runtime, Method::GET, &uri, headers, Default::default());
    match channel.adapter.handshake(&request) {
        Ok(reply) => Ok(([(header::CONTENT_TYPE, reply.content_type)], reply.body).into_response()),
        Err(e) => {
            let error = match e {
                HandshakeError::NotSupported => ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    e.to_string(),
                ),
                HandshakeError::Forbidden => {
                    ApiError::new(StatusCode::FORBIDDEN, "invalid_verify_token", e.to_string())
                }
                HandshakeError::Invalid(_) => {
                    ApiError::new(StatusCode::BAD_REQUEST, "invalid_handshake", e.to_string())
                }
            };
            telemetry::webhook_rejected(
                channel_label(&runtime, &channel_id),
                error.code,
                &error.message,
            );
            Err(error)
        }
    }
}

/// The channel, if it exists and takes traffic: else 404, or 503 so the platform
/// redelivers once it is enabled (or added back) again. A channel a reload removed
/// answers 503 for `reload.removed_channel_grace_s`: most platforms treat 404 as final.
fn serving<'a>(runtime: &'a Runtime, channel_id: &str) -> Result<&'a LiveChannel, ApiError> {
    let Some(channel) = runtime.channel(channel_id) else {
        if runtime.recently_removed(channel_id, Utc::now()).is_some() {
            return Err(ApiError::unavailable(
                "channel_removed",
                format!("channel {channel_id:?} was removed from the config; redeliver later"),
                DISABLED_RETRY_AFTER_SECS,
            ));
        }
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_channel",
            format!("no channel {channel_id:?}"),
        ));
    };
    if !channel.config.enabled {
        return Err(ApiError::unavailable(
            "channel_disabled",
            format!("channel {channel_id:?} is disabled; redeliver later"),
            DISABLED_RETRY_AFTER_SECS,
        ));
    }
    Ok(channel)
}

/// The request as the platform sent it, with the URL it called (public URL + path).
fn raw_request(
    runtime: &Runtime,
    method: Method,
    uri: &Uri,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> RawRequest {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let base = match &runtime.config.server.public_url {
        Some(public) => public.clone(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    RawRequest {
        method,
        url: format!("{base}{path}"),
        query: uri.query().map(str::to_owned),
        headers,
        body,
    }
}

async fn handle(
    state: &AppState,
    channel_id: &str,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
    started: Instant,
) -> Result<Response, ApiError> {
    // One snapshot for the whole request: a reload mid-request does not mix configs.
    let runtime = state.runtime.load_full();
    let channel = serving(&runtime, channel_id)?;
    let body = read_body(body, runtime.config.server.max_body_bytes).await?;
    let request = raw_request(&runtime, Method::POST, &uri, headers, body);
    channel.adapter.verify(&request, Utc::now())?;
    if let Some(reply) = channel.adapter.challenge(&request) {
        return Ok(([(header::CONTENT_TYPE, reply.content_type)], reply.body).into_response());
    }
    let mut events = channel.adapter.parse(&request)?;
    // PostgreSQL cannot store a NUL and SQLite can: one rule for both (model::nul).
    events.replace_nul();
    telemetry::webhook_received(channel_id, events.len());
    let outcomes = if events.is_empty() {
        // Verification pings (LINE's empty event list, Viber's `webhook`) store nothing.
        Vec::new()
    } else {
        state.store.ingest(&channel.rules, events).await?
    };

    let stored = outcomes
        .iter()
        .filter(|o| matches!(o, IngestOutcome::Stored { .. }))
        .count();
    if stored > 0 {
        // A new message may have queued an email to its owner (or a delivery): the worker
        // sends it now, as it does a reply, not at its next look.
        state.wake.notify_one();
    }
    let duplicates = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o,
                IngestOutcome::Duplicate { .. }
                    | IngestOutcome::Edited {
                        skipped: Some(EditSkipped::Duplicate),
                        ..
                    }
            )
        })
        .count();
    for outcome in &outcomes {
        if let IngestOutcome::Edited {
            id,
            skipped: Some(EditSkipped::Stale),
            ..
        } = outcome
        {
            telemetry::stale_edit(channel_id, id);
        }
    }
    for outcome in &outcomes {
        if let IngestOutcome::Stored {
            routed,
            owner_not_emailed,
            conversation_id,
            ..
        } = outcome
        {
            if let Some(routed) = routed {
                telemetry::routed(routed.rule, routed.assigned);
            }
            if let Some(reason) = owner_not_emailed {
                telemetry::owner_not_emailed(channel_id, conversation_id.as_str(), reason);
            }
        }
    }
    let mut conversations = outcomes.iter().filter_map(|o| match o {
        IngestOutcome::Stored {
            conversation_id, ..
        } => Some(conversation_id),
        _ => None,
    });
    // A webhook of one conversation names it on the request's log lines; a batch
    // spanning several would name one arbitrarily, so it names none.
    if let Some(first) = conversations.next()
        && conversations.all(|c| c == first)
    {
        crate::request::record_conversation(first.as_str());
    }
    telemetry::webhook_stored(channel_id, stored, duplicates, started.elapsed());
    Ok(Json(WebhookReceipt {
        stored,
        duplicates,
        results: outcomes,
    })
    .into_response())
}
