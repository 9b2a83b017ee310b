//! Conversations and their messages: list, show, reply.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;

use super::{Caller, JsonBody, Paging, query};
use crate::app::AppState;
use crate::error::ApiError;
use crate::model::{
    Conversation, ConversationId, ConversationStatus, Message, MessageId, Part, Sender, SenderKind,
};
use crate::store::{ConversationFilter, ConversationUpdate, NewReply, Page};

#[derive(Deserialize)]
struct ListQuery {
    channel: Option<String>,
    status: Option<String>,
    owner: Option<String>,
    #[serde(flatten)]
    paging: Paging,
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
    let filter = ConversationFilter {
        channel: q.channel.filter(|c| !c.is_empty()),
        status,
        owner: q.owner.filter(|o| !o.is_empty()),
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

/// A rep's reply.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    parts: Value,
    #[serde(default)]
    reply_to: Option<String>,
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
    let first_delay = state.runtime.load().first_delay();
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
        })
        .await?;
    state.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(message)))
}

/// A change to a conversation: `{"owner_id": "alice" | null, "status": "open" | "closed"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    #[serde(default, deserialize_with = "present")]
    owner_id: Option<Option<String>>,
    #[serde(default)]
    status: Option<ConversationStatus>,
}

/// Tells a field sent as `null` (`Some(None)`) from one not sent (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

pub async fn update(
    State(state): State<AppState>,
    _caller: Caller,
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
    state.store.update_conversation(&id, update).await?;
    Ok(Json(state.store.conversation(&id).await?))
}
