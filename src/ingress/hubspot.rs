//! `POST /hubspot/webhook`: the events HubSpot posts to the custom channel's `webhookUrl`
//! (a rep's message to send, channel-account changes). Verified with signature v3 over
//! `{server.public_url}/hubspot/webhook`, parsed (`hubspot::events`), planned
//! (`hubspot::replies`) and committed in one transaction before the answer, so HubSpot,
//! which retries for 24 hours, can forget an event it got 200 for, and a retry stores
//! nothing new.

use axum::Json;
use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::openapi::StoreErrors;
use crate::api::read_body;
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::hubspot::{events, replies, signature};
use crate::model::{ConversationId, MessageId};
use crate::store::hubspot::WebhookOutcome;
use crate::telemetry;

/// The channel label HubSpot's webhooks are counted under in the webhook metrics.
const CHANNEL_LABEL: &str = "@hubspot";
/// How long HubSpot is told to wait while `[hubspot]` is not configured.
const NOT_CONFIGURED_RETRY_AFTER_SECS: u64 = 300;

/// What a HubSpot webhook's events did, in the order they came.
#[derive(Serialize, ToSchema)]
pub struct HubspotWebhookReceipt {
    /// Events recorded now.
    received: usize,
    /// Events recorded before (HubSpot retried): nothing was stored again.
    duplicates: usize,
    results: Vec<HubspotWebhookResult>,
}

/// What became of one event.
#[derive(Serialize, ToSchema)]
pub struct HubspotWebhookResult {
    /// HubSpot's `type`.
    #[serde(rename = "type")]
    kind: String,
    /// `reply` (queued for the contact), `unroutable` (reported to HubSpot as FAILED),
    /// `account`, `ignored` (a type the bridge does not act on) or `duplicate`.
    outcome: &'static str,
    /// Our reply, for `reply`.
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<MessageId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversation_id: Option<ConversationId>,
    /// Why it could not be sent, for `unroutable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// One event as HubSpot posts it (a list of them is accepted too); fields the bridge does
/// not read are kept with the stored event.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HubspotWebhookEvent {
    /// `OUTGOING_CHANNEL_MESSAGE_CREATED`, `CHANNEL_ACCOUNT_CREATED`,
    /// `CHANNEL_ACCOUNT_UPDATED`, `CHANNEL_ACCOUNT_PURGED`; other types are recorded and
    /// acknowledged.
    #[schema(rename = "type")]
    kind: String,
    #[schema(rename = "eventId")]
    event_id: Option<String>,
    /// Our conversation ids (the `integrationThreadId` we published with).
    #[schema(rename = "channelIntegrationThreadIds")]
    thread_ids: Option<Vec<String>>,
    /// The rep's message (`id`, `conversationsThreadId`, `text`, `senders`,
    /// `attachments`, `inReplyToId`); required for `OUTGOING_CHANNEL_MESSAGE_CREATED`.
    #[schema(value_type = Option<Object>)]
    message: Option<serde_json::Value>,
    /// Account events: the channel account; required for them.
    #[schema(rename = "channelAccountId")]
    channel_account_id: Option<String>,
    /// Account events: false when HubSpot stopped taking its messages.
    authorized: Option<bool>,
}

/// Takes HubSpot's custom-channel events: a rep's message becomes a reply sent through
/// the conversation's channel; account changes are recorded (a de-authorized account's
/// publishes wait). Answered 200 only after the events are stored.
#[utoipa::path(
    post,
    path = "/hubspot/webhook",
    operation_id = "receive_hubspot_webhook",
    tag = "webhooks",
    params(
        ("x-hubspot-signature-v3" = String, Header, description = "base64 HMAC-SHA256 \
            with the app's client secret over method + `{server.public_url}/hubspot/webhook` \
            + raw body + timestamp."),
        ("x-hubspot-request-timestamp" = i64, Header, description = "Unix milliseconds, \
            within 5 minutes of now."),
    ),
    request_body(content = HubspotWebhookEvent, content_type = "application/json"),
    responses(
        (status = 200, description = "Stored (or recognized as already stored); unknown \
            event types are acknowledged too.", body = HubspotWebhookReceipt),
        (status = 400, description = "The body is not HubSpot's events (`malformed_json`, \
            `invalid_event`).", body = ErrorBody),
        (status = 401, description = "The signature is missing, stale or wrong \
            (`missing_signature`, `invalid_timestamp`, `invalid_signature`); nothing is \
            stored.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes` \
            (`payload_too_large`).", body = ErrorBody),
        StoreErrors,
        (status = 503, description = "`[hubspot]` is not configured \
            (`hubspot_not_configured`), or storage is unavailable (`storage_unavailable`): \
            HubSpot redelivers.", body = ErrorBody, headers(("retry-after" = u64))),
    )
)]
pub async fn receive(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<HubspotWebhookReceipt>, ApiError> {
    let result = handle(&state, uri, headers, body).await;
    if let Err(e) = &result {
        telemetry::webhook_rejected(CHANNEL_LABEL, e.code, &e.message);
    }
    result
}

async fn handle(
    state: &AppState,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<HubspotWebhookReceipt>, ApiError> {
    let started = std::time::Instant::now();
    let runtime = state.runtime.load_full();
    let Some(client) = runtime.hubspot.clone() else {
        // 503, not 404: HubSpot retries either for a day, and an operator finishing the
        // setup gets the events that arrived meanwhile.
        return Err(ApiError::unavailable(
            "hubspot_not_configured",
            "HubSpot mode is not configured ([hubspot]); redeliver later",
            NOT_CONFIGURED_RETRY_AFTER_SECS,
        ));
    };
    let body = read_body(body, runtime.config.server.max_body_bytes).await?;
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    // HubSpot signs the URL it called: ours as the public sees it.
    let base = match &runtime.config.server.public_url {
        Some(public) => public.clone(),
        None => format!(
            "http://{}",
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost")
        ),
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    signature::verify(
        client.config().client_secret.expose().as_bytes(),
        "POST",
        &format!("{base}{path}"),
        &body,
        header(signature::SIGNATURE_HEADER),
        header(signature::TIMESTAMP_HEADER),
        Utc::now(),
    )
    .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.code(), e.to_string()))?;
    let parsed = events::parse(&body)?;
    telemetry::webhook_received(CHANNEL_LABEL, parsed.len());
    // Replies go only to conversations of channels linked to HubSpot: HubSpot names the
    // conversation, and must not be able to name one of another channel.
    let linked: Vec<String> = runtime
        .config
        .channels
        .iter()
        .filter(|(_, c)| c.hubspot.is_some())
        .map(|(id, _)| id.clone())
        .collect();
    let records: Vec<_> = parsed
        .iter()
        .map(|event| replies::record(event, &linked))
        .collect();
    let outcomes = state.store.hubspot().record_webhook(records).await?;
    let mut results = Vec::with_capacity(outcomes.len());
    let mut duplicates = 0;
    for (event, outcome) in parsed.iter().zip(outcomes) {
        let kind = event.kind.type_name().to_owned();
        let mut result = HubspotWebhookResult {
            kind,
            outcome: crate::store::hubspot::outcome_label(&outcome),
            message_id: None,
            conversation_id: None,
            reason: None,
        };
        match outcome {
            WebhookOutcome::Duplicate => duplicates += 1,
            WebhookOutcome::Replied {
                message_id,
                conversation_id,
            } => {
                result.message_id = Some(message_id);
                result.conversation_id = Some(conversation_id);
            }
            WebhookOutcome::Unroutable { reason } => {
                tracing::warn!(event = %event.key, %reason, "A HubSpot message cannot be sent; HubSpot is told it failed.");
                result.reason = Some(reason);
            }
            WebhookOutcome::Account => {
                tracing::info!(event = %event.key, kind = %result.kind, "Recorded a HubSpot channel account change.");
            }
            WebhookOutcome::Ignored => {
                tracing::info!(event = %event.key, kind = %result.kind, "Acknowledged a HubSpot event type channel-bridge does not act on.");
            }
        }
        results.push(result);
    }
    let received = results.len() - duplicates;
    if received > 0 {
        // A reply (or a status report, or a parked publish) is due now.
        state.wake.notify_one();
    }
    telemetry::webhook_stored(CHANNEL_LABEL, received, duplicates, started.elapsed());
    Ok(Json(HubspotWebhookReceipt {
        received,
        duplicates,
        results,
    }))
}
