//! Conversations and their messages: list, show, reply.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;

use super::{Caller, JsonBody, Paging, query};
use crate::app::AppState;
use crate::error::ApiError;
use crate::model::{
    Conversation, ConversationId, ConversationStatus, Message, MessageId, Part, Sender, SenderKind,
};
use crate::store::{ConversationFilter, ConversationUpdate, NewReply, Page, TicketChange};

#[derive(Deserialize)]
struct ListQuery {
    channel: Option<String>,
    status: Option<String>,
    owner: Option<String>,
    ticket_status: Option<String>,
    /// `true`: only conversations nobody owns (the same as `owner=none`).
    unassigned: Option<String>,
    from: Option<String>,
    to: Option<String>,
    q: Option<String>,
    #[serde(flatten)]
    paging: Paging,
}

fn time(name: &str, raw: Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match raw.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| ApiError::unprocessable(format!("{name}: {s:?} is not an RFC 3339 time"))),
    }
}

pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<Conversation>>, ApiError> {
    let q: ListQuery = query(raw.as_deref())?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            ConversationStatus::parse(s)
                .ok_or_else(|| ApiError::unprocessable("status: must be open or closed"))?,
        ),
    };
    let owner = match q.unassigned.as_deref() {
        None | Some("") | Some("false") => q.owner.filter(|o| !o.is_empty()),
        Some("true") => Some("none".to_owned()),
        Some(_) => return Err(ApiError::unprocessable("unassigned: must be true or false")),
    };
    if let Some(owner) = owner.as_deref().filter(|o| *o != "none") {
        let runtime = state.runtime.load();
        if !runtime.config.reps.iter().any(|r| r.id == owner) {
            return Err(ApiError::unprocessable(format!(
                "owner: no rep {owner:?} (or use none)"
            )));
        }
    }
    let filter = ConversationFilter {
        channel: q.channel.filter(|c| !c.is_empty()),
        status,
        owner,
        ticket_status: q.ticket_status.filter(|s| !s.is_empty()),
        from: time("from", q.from)?,
        to: time("to", q.to)?,
        q: q.q.filter(|s| !s.trim().is_empty()),
    };
    let page = q.paging.page()?;
    Ok(Json(state.store.conversations(&filter, &page).await?))
}

fn conversation_id(raw: &str) -> Result<ConversationId, ApiError> {
    ConversationId::parse(raw).ok_or_else(|| ApiError::not_found("conversation"))
}

pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, ApiError> {
    let id = conversation_id(&id)?;
    Ok(Json(state.store.conversation(&id).await?))
}

pub async fn messages(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<Message>>, ApiError> {
    let id = conversation_id(&id)?;
    let paging: Paging = query(raw.as_deref())?;
    Ok(Json(state.store.messages(&id, &paging.page()?).await?))
}

/// A rep's reply, optionally moving the ticket in the same request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    parts: Value,
    #[serde(default)]
    reply_to: Option<String>,
    #[serde(default)]
    ticket_status: Option<String>,
    #[serde(default)]
    ticket_properties: Option<Map<String, Value>>,
}

pub async fn reply(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<ReplyRequest>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let conversation_id = conversation_id(&id)?;
    let parts = Part::parse_list(&request.parts, "parts")
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    if let Some(i) = parts.iter().position(|p| matches!(p, Part::Unsupported(_))) {
        return Err(ApiError::unprocessable(format!(
            "parts[{i}].type: not a part type that can be sent"
        )));
    }
    let reply_to = match request.reply_to.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(MessageId::parse(raw).ok_or_else(|| {
            ApiError::unprocessable(format!("reply_to: {raw:?} is not a message id"))
        })?),
    };
    let runtime = state.runtime.load();
    let first_delay = runtime.first_delay();
    let ticket_change = match (request.ticket_status, request.ticket_properties) {
        (None, None) => None,
        (status, properties) => Some(TicketChange {
            status,
            owner_id: None,
            properties,
            pipelines: Arc::new(runtime.config.pipelines.clone()),
        }),
    };
    let message = state
        .store
        .create_reply(NewReply {
            conversation_id,
            parts,
            reply_to,
            sender: Sender {
                kind: SenderKind::Rep,
                id: caller.name,
            },
            run_at: Utc::now() + first_delay,
            ticket_change,
        })
        .await?;
    state.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(message)))
}

/// A change to a conversation: `{"owner_id": "alice" | null, "status": "open" | "closed"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    #[serde(default, deserialize_with = "super::present")]
    owner_id: Option<Option<String>>,
    #[serde(default)]
    status: Option<ConversationStatus>,
}

pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<UpdateRequest>,
) -> Result<Json<Conversation>, ApiError> {
    let id = conversation_id(&id)?;
    if let Some(Some(owner)) = &request.owner_id {
        let runtime = state.runtime.load();
        if !runtime.config.reps.iter().any(|r| &r.id == owner) {
            return Err(ApiError::unprocessable(format!(
                "owner_id: no rep {owner:?} in the config"
            )));
        }
    }
    let update = ConversationUpdate {
        owner_id: request.owner_id,
        status: request.status,
    };
    state
        .store
        .update_conversation(&id, update, &caller.actor())
        .await?;
    // Closing or handing over a conversation frees its owner's capacity.
    state
        .store
        .backfill(state.runtime.load().all_rules())
        .await?;
    Ok(Json(state.store.conversation(&id).await?))
}

/// Moves the conversation (with its ticket and the ticket's other conversations) to the
/// trash. Admins only.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let id = conversation_id(&id)?;
    state
        .store
        .delete_conversation(&id, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
