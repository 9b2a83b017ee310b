//! Tickets: list (and the trash), read, change (status rules, owner, properties), trash
//! and restore, history.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::conversations::{check_channel, check_ticket_status, owner_filter};
use super::openapi::{AdminOnly, JsonBodyErrors, StoreErrors, Unauthorized};
use super::{Caller, JsonBody, Paging, access, given, query};
use crate::app::AppState;
use crate::desk::tickets::Priority;
use crate::error::{ApiError, ErrorBody};
use crate::model::{Ticket, TicketId};
use crate::store::{AuditEntry, Page, TicketChange, TicketFilter, Trashed};

/// The ticket list's filters; they combine with AND. Read as text (see [`Paging`]),
/// documented as what they must parse to. Like the conversation list's, a filter that
/// names nothing (a channel, rep, pipeline or status the config does not have, or an
/// empty value) is refused with 422 naming it, never answered with an unfiltered or an
/// empty list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only tickets with a conversation on this channel: one of the caller's configured
    /// channels.
    #[param(min_length = 1)]
    channel: Option<String>,
    /// Only tickets with this status (a status id of a configured pipeline).
    #[param(min_length = 1)]
    status: Option<String>,
    /// Only tickets of this pipeline (a configured one).
    #[param(min_length = 1)]
    pipeline: Option<String>,
    /// Only tickets this rep (a `[[reps]]` id) owns, or `none` for those nobody owns.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    owner: Option<String>,
    /// `true`: only tickets nobody owns (the same as `owner=none`).
    #[param(value_type = Option<bool>)]
    unassigned: Option<String>,
    /// `true`: the tickets in the trash (with `trashed_at` and the conversations trashed
    /// with them) instead of the live ones.
    #[param(value_type = Option<bool>)]
    trashed: Option<String>,
    /// Only tickets changed at or after this time (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    from: Option<String>,
    /// Only tickets changed before this time (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    to: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    paging: Paging,
}

/// Lists tickets, the newest first: the live ones, or with `trashed=true` those in the
/// trash. Only tickets with a conversation in the caller's inboxes.
#[utoipa::path(
    get,
    path = "/api/v1/tickets",
    operation_id = "list_tickets",
    tag = "tickets",
    security(("bearer" = [])),
    params(ListQuery, Paging),
    responses(
        (status = 200, description = "One page of tickets.", body = Page<Ticket>),
        (status = 422, description = "A parameter this operation does not take, or a filter \
            or paging value that does not fit or names nothing configured: an unknown \
            channel, rep, pipeline or status (`invalid_request`, naming it).",
            body = ErrorBody),
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<Ticket>>, ApiError> {
    let q: ListQuery = query(raw.as_deref())?;
    let runtime = state.runtime.load_full();
    let channel = given("channel", q.channel)?;
    if let Some(channel) = &channel {
        check_channel(&runtime, &caller, "channel", channel)?;
    }
    let pipelines = &runtime.config.pipelines;
    let pipeline = given("pipeline", q.pipeline)?;
    if let Some(wanted) = pipeline.as_deref().filter(|p| !pipelines.contains_key(*p)) {
        return Err(ApiError::unprocessable(format!(
            "pipeline: no pipeline {wanted:?}"
        )));
    }
    let status = given("status", q.status)?;
    if let Some(wanted) = &status {
        check_ticket_status(&runtime, "status", wanted)?;
    }
    let owner = owner_filter(&runtime, q.unassigned, q.owner)?;
    let trashed = match given("trashed", q.trashed)?.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::unprocessable("trashed: must be true or false")),
    };
    let filter = TicketFilter {
        scope: caller.scope.clone(),
        channel,
        status,
        pipeline,
        owner,
        trashed,
        from: super::time("from", q.from.as_deref())?,
        to: super::time("to", q.to.as_deref())?,
    };
    let page = q.paging.page()?;
    Ok(Json(state.store.tickets(&filter, &page).await?))
}

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

/// `{"status"?, "owner_id"?: "alice" | null, "priority"?: "high" | null, "properties"?: {…},
/// "reason"?}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TicketUpdate)]
pub struct UpdateRequest {
    /// A status of the ticket's pipeline. A closed status closes every conversation of the
    /// ticket; a conditional status needs its required properties.
    #[serde(default)]
    #[schema(min_length = 1)]
    status: Option<String>,
    /// A rep id (`[[reps]]`), or `null` to unassign; the conversations keep their owners.
    /// The rep must work an inbox of one of the ticket's channels.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    owner_id: Option<Option<String>>,
    /// `low`, `medium`, `high` or `urgent`, or `null` to clear it; recorded in the history
    /// as `priority_changed`.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<Priority>)]
    priority: Option<Option<Priority>>,
    /// Merged into the ticket's properties; `null` removes a key.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    properties: Option<Map<String, Value>>,
    /// Why, for the audit trail.
    #[serde(default)]
    reason: Option<String>,
}

/// Changes a ticket's status, owner, priority or properties, all or nothing.
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
        priority: request.priority,
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

/// Moves the ticket and its conversations to the trash. Admins only. Their replies still
/// queued for delivery are not cancelled: the answer says how many, and so does the
/// ticket's history.
#[utoipa::path(
    delete,
    path = "/api/v1/tickets/{id}",
    operation_id = "delete_ticket",
    tag = "tickets",
    security(("bearer" = [])),
    params(("id" = TicketId, Path, description = "The ticket.")),
    responses(
        (status = 200, description = "In the trash, with its conversations: what went \
            there.", body = Trashed),
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
) -> Result<Json<Trashed>, ApiError> {
    caller.require_admin()?;
    let id = ticket_id(&id)?;
    access::ticket(&state, &caller, &id).await?;
    Ok(Json(state.store.delete_ticket(&id, &caller.actor()).await?))
}

/// Brings a trashed ticket back (until it is purged). Admins only. Its history records
/// what this did to each conversation: back as it was, or closed when the contact has
/// opened another conversation on that channel since.
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
