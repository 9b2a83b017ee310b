//! Tickets: read, change (status rules, owner, properties), trash and restore, history.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Caller, JsonBody};
use crate::app::AppState;
use crate::error::ApiError;
use crate::model::{Ticket, TicketId};
use crate::store::TicketChange;

fn ticket_id(raw: &str) -> Result<TicketId, ApiError> {
    TicketId::parse(raw).ok_or_else(|| ApiError::not_found("ticket"))
}

pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Ticket>, ApiError> {
    Ok(Json(state.store.ticket(&ticket_id(&id)?).await?))
}

/// `{"status"?, "owner_id"?: "alice" | null, "properties"?: {…}, "reason"?}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "super::present")]
    owner_id: Option<Option<String>>,
    #[serde(default)]
    properties: Option<Map<String, Value>>,
    /// Why, for the audit trail.
    #[serde(default)]
    reason: Option<String>,
}

pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<UpdateRequest>,
) -> Result<Json<Ticket>, ApiError> {
    let id = ticket_id(&id)?;
    let runtime = state.runtime.load();
    if let Some(Some(owner)) = &request.owner_id
        && !runtime.config.reps.iter().any(|r| &r.id == owner)
    {
        return Err(ApiError::unprocessable(format!(
            "owner_id: no rep {owner:?} in the config"
        )));
    }
    let change = TicketChange {
        status: request.status,
        owner_id: request.owner_id,
        properties: request.properties,
        pipelines: Arc::new(runtime.config.pipelines.clone()),
    };
    let mut actor = caller.actor();
    actor.reason = request.reason;
    Ok(Json(state.store.update_ticket(&id, change, &actor).await?))
}

/// Moves the ticket and its conversations to the trash. Admins only.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    state
        .store
        .delete_ticket(&ticket_id(&id)?, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Brings a trashed ticket back (until it is purged). Admins only.
pub async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Ticket>, ApiError> {
    caller.require_admin()?;
    Ok(Json(
        state
            .store
            .restore_ticket(&ticket_id(&id)?, &caller.actor())
            .await?,
    ))
}

pub async fn history(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let entries = state.store.ticket_history(&ticket_id(&id)?).await?;
    Ok(Json(json!({"items": entries, "next_cursor": null})))
}
