//! Reps: presence (which routing reads) and where each stands.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::openapi::{JsonBodyErrors, StoreErrors, Unauthorized};
use super::{Caller, JsonBody};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};

/// A rep's presence report (also the heartbeat).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceRequest {
    status: Presence,
}

#[derive(Deserialize, Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Presence {
    Online,
    Away,
    Offline,
}

/// The presence recorded, and how many waiting conversations it brought the rep.
#[derive(Serialize, ToSchema)]
pub struct PresenceReply {
    id: String,
    status: Presence,
    assigned: usize,
}

#[utoipa::path(
    put,
    path = "/api/v1/reps/{id}/presence",
    operation_id = "set_presence",
    tag = "reps",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "A rep id from `[[reps]]`")),
    request_body = PresenceRequest,
    responses(
        (status = 200, description = "Recorded; coming online assigns waiting conversations of the rep's round-robin channels.", body = PresenceReply),
        (status = 403, description = "A rep token setting another rep's presence (`forbidden`): \
            reps set their own, admins anyone's.", body = ErrorBody),
        (status = 404, description = "No such rep in the config.", body = ErrorBody),
        Unauthorized,
        JsonBodyErrors,
        StoreErrors,
    )
)]
/// Presence expires after `presence.timeout_s` without a new report.
pub async fn presence(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<PresenceRequest>,
) -> Result<Json<PresenceReply>, ApiError> {
    let runtime = state.runtime.load_full();
    if !runtime.config.reps.iter().any(|r| r.id == id) {
        return Err(ApiError::not_found("rep"));
    }
    caller.require_self_or_admin(&id)?;
    let status = match request.status {
        Presence::Online => "online",
        Presence::Away => "away",
        Presence::Offline => "offline",
    };
    let assigned = state
        .store
        .set_presence(&id, status, runtime.all_rules())
        .await?;
    crate::telemetry::backfilled(assigned);
    Ok(Json(PresenceReply {
        id,
        status: request.status,
        assigned,
    }))
}

/// A rep as routing sees them.
#[derive(Serialize, ToSchema)]
pub struct RepInfo {
    id: String,
    teams: Vec<String>,
    capacity: u32,
    /// `online`, `away` or `offline` (an expired presence is offline).
    status: String,
    open_conversations: u32,
    notify: bool,
}

#[derive(Serialize, ToSchema)]
pub struct RepList {
    items: Vec<RepInfo>,
    /// Always null: every rep is on the one page.
    next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/reps",
    operation_id = "list_reps",
    tag = "reps",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every configured rep with presence, load and capacity.", body = RepList),
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<RepList>, ApiError> {
    let runtime = state.runtime.load_full();
    let config = &runtime.config;
    let ids: Vec<String> = config.reps.iter().map(|r| r.id.clone()).collect();
    let timeout = (config.presence.timeout_s * 1000) as i64;
    let states = state.store.rep_states(ids, timeout).await?;
    let choices = state.store.notify_choices().await?;
    let items = config
        .reps
        .iter()
        .map(|rep| {
            let (status, load) = states
                .get(&rep.id)
                .cloned()
                .unwrap_or_else(|| ("offline".into(), 0));
            RepInfo {
                id: rep.id.clone(),
                teams: rep.teams.clone(),
                capacity: rep.capacity,
                status,
                open_conversations: load,
                notify: choices.get(&rep.id).copied().unwrap_or(rep.notify),
            }
        })
        .collect();
    Ok(Json(RepList {
        items,
        next_cursor: None,
    }))
}

/// A rep's own choice about notification digests.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationsRequest {
    enabled: bool,
}

#[derive(Serialize, ToSchema)]
pub struct NotificationsReply {
    id: String,
    enabled: bool,
}

#[utoipa::path(
    put,
    path = "/api/v1/reps/{id}/notifications",
    operation_id = "set_notifications",
    tag = "reps",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "A rep id from `[[reps]]`")),
    request_body = NotificationsRequest,
    responses(
        (status = 200, description = "Recorded; it overrides the rep's `notify` in the config.", body = NotificationsReply),
        (status = 403, description = "A rep token setting another rep's notifications \
            (`forbidden`): reps set their own, admins anyone's.", body = ErrorBody),
        (status = 404, description = "No such rep in the config.", body = ErrorBody),
        Unauthorized,
        JsonBodyErrors,
        StoreErrors,
    )
)]
/// Turns a rep's email digests (sent while offline) on or off.
pub async fn notifications(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<NotificationsRequest>,
) -> Result<Json<NotificationsReply>, ApiError> {
    if !state.runtime.load().config.reps.iter().any(|r| r.id == id) {
        return Err(ApiError::not_found("rep"));
    }
    caller.require_self_or_admin(&id)?;
    state.store.set_notify(&id, request.enabled).await?;
    Ok(Json(NotificationsReply {
        id,
        enabled: request.enabled,
    }))
}
