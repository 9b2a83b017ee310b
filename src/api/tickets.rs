//! Tickets: read, change (status rules, owner, properties), trash and restore, history.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::openapi::{AdminOnly, JsonBodyErrors, StoreErrors, Unauthorized};
use super::{Caller, JsonBody, access};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::model::{Ticket, TicketId};
use crate::store::{AuditEntry, Page, TicketChange};

fn ticket_id(raw: &str) -> Result<TicketId, ApiError> {
    TicketId::parse(raw).ok_or_else(|| ApiError::not_found("ticket"))
}

/// One ticket with its pipeline status, owner, properties and conversations.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}",
    operation_id = "get_ticket",
    tag = "tickets",
    security(("bearer" = [])),
    params(("id" = TicketId, Path, description = "The ticket.")),
    responses(
        (status = 200, description = "The ticket.", body = Ticket),
        (status = 404, description = "No such ticket (`not_found`).", body = ErrorBody),
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Ticket>, ApiError> {
    let id = ticket_id(&id)?;
    access::ticket(&state, &caller, &id).await?;
    Ok(Json(state.store.ticket(&id).await?))
}

/// `{"status"?, "owner_id"?: "alice" | null, "properties"?: {…}, "reason"?}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TicketUpdate)]
pub struct UpdateRequest {
    /// A status of the ticket's pipeline. A closed status closes every conversation of the
    /// ticket; a conditional status needs its required properties.
    #[serde(default)]
    status: Option<String>,
    /// A rep id, or `null` to unassign; the conversations keep their owners. The rep must
    /// work an inbox of one of the ticket's channels.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    owner_id: Option<Option<String>>,
    /// Merged into the ticket's properties; `null` removes a key.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    properties: Option<Map<String, Value>>,
    /// Why, for the audit trail.
    #[serde(default)]
    reason: Option<String>,
}

/// Changes a ticket's status, owner or properties, all or nothing.
#[utoipa::path(
    patch,
    path = "/api/v1/tickets/{id}",
    operation_id = "update_ticket",
    tag = "tickets",
    security(("bearer" = [])),
    params(("id" = TicketId, Path, description = "The ticket.")),
    request_body = UpdateRequest,
    responses(
        (status = 200, description = "The ticket as it is now.", body = Ticket),
        (status = 404, description = "No such ticket (`not_found`).", body = ErrorBody),
        (status = 409, description = "A conversation it would reopen cannot reopen \
            (`conflict`).", body = ErrorBody),
        JsonBodyErrors,
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<UpdateRequest>,
) -> Result<Json<Ticket>, ApiError> {
    let id = ticket_id(&id)?;
    access::ticket(&state, &caller, &id).await?;
    let runtime = state.runtime.load_full();
    if let Some(Some(owner)) = &request.owner_id {
        if !runtime.config.reps.iter().any(|r| &r.id == owner) {
            return Err(ApiError::unprocessable(format!(
                "owner_id: no rep {owner:?} in the config"
            )));
        }
        if !rep_sees_ticket(&state, &runtime.config, owner, &id).await? {
            return Err(ApiError::unprocessable(format!(
                "owner_id: rep {owner:?} does not work an inbox of any of this ticket's \
                 channels, so could not see it"
            )));
        }
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

/// Whether `rep` works an inbox of one of the ticket's conversations: the ticket is
/// visible to them, so it may be theirs.
async fn rep_sees_ticket(
    state: &AppState,
    config: &crate::config::Config,
    rep: &str,
    id: &TicketId,
) -> Result<bool, ApiError> {
    for conversation in state.store.ticket(id).await?.conversation_ids {
        match state.store.conversation(&conversation).await {
            Ok(c) if crate::desk::inboxes::rep_works_channel(config, rep, &c.channel_id) => {
                return Ok(true);
            }
            Ok(_) | Err(crate::store::StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(false)
}

/// Moves the ticket and its conversations to the trash. Admins only.
#[utoipa::path(
    delete,
    path = "/api/v1/tickets/{id}",
    operation_id = "delete_ticket",
    tag = "tickets",
    security(("bearer" = [])),
    params(("id" = TicketId, Path, description = "The ticket.")),
    responses(
        (status = 204, description = "In the trash, with its conversations."),
        (status = 404, description = "No such ticket (`not_found`).", body = ErrorBody),
        AdminOnly,
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let id = ticket_id(&id)?;
    access::ticket(&state, &caller, &id).await?;
    state.store.delete_ticket(&id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Brings a trashed ticket back (until it is purged). Admins only.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/restore",
    operation_id = "restore_ticket",
    tag = "tickets",
    security(("bearer" = [])),
    params(("id" = TicketId, Path, description = "The ticket.")),
    responses(
        (status = 200, description = "Restored, with the conversations trashed with it.",
            body = Ticket),
        (status = 404, description = "No such ticket, or already purged (`not_found`).",
            body = ErrorBody),
        (status = 409, description = "The ticket is not in the trash (`conflict`).",
            body = ErrorBody),
        AdminOnly,
        Unauthorized,
        StoreErrors,
    )
)]
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

/// The audit trail of a ticket and its conversations, oldest first, in one page.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}/history",
    operation_id = "ticket_history",
    tag = "tickets",
    security(("bearer" = [])),
    params(("id" = TicketId, Path, description = "The ticket.")),
    responses(
        (status = 200, description = "Every recorded change; `next_cursor` is null.",
            body = Page<AuditEntry>),
        (status = 404, description = "No such ticket (`not_found`).", body = ErrorBody),
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    let id = ticket_id(&id)?;
    access::ticket(&state, &caller, &id).await?;
    let entries = state.store.ticket_history(&id).await?;
    Ok(Json(Page {
        items: entries,
        next_cursor: None,
    }))
}
