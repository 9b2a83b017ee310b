//! Reps: presence (which routing reads) and where each stands.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, JsonBody};
use crate::app::AppState;
use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceRequest {
    status: Presence,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Presence {
    Online,
    Away,
    Offline,
}

/// `PUT /api/v1/reps/{id}/presence {"status": "online" | "away" | "offline"}`: also the
/// heartbeat (presence expires after `presence.timeout_s`). Coming online assigns waiting
/// conversations of the rep's round-robin channels.
pub async fn presence(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<PresenceRequest>,
) -> Result<Json<Value>, ApiError> {
    let runtime = state.runtime.load_full();
    if !runtime.config.reps.iter().any(|r| r.id == id) {
        return Err(ApiError::not_found("rep"));
    }
    let status = match request.status {
        Presence::Online => "online",
        Presence::Away => "away",
        Presence::Offline => "offline",
    };
    let assigned = state
        .store
        .set_presence(&id, status, runtime.all_rules())
        .await?;
    Ok(Json(
        json!({"id": id, "status": status, "assigned": assigned}),
    ))
}

/// `GET /api/v1/reps`: every configured rep with presence, load and capacity.
pub async fn list(State(state): State<AppState>, _caller: Caller) -> Result<Json<Value>, ApiError> {
    let runtime = state.runtime.load_full();
    let config = &runtime.config;
    let ids: Vec<String> = config.reps.iter().map(|r| r.id.clone()).collect();
    let timeout = (config.presence.timeout_s * 1000) as i64;
    let states = state.store.rep_states(ids, timeout).await?;
    let items: Vec<Value> = config
        .reps
        .iter()
        .map(|rep| {
            let (status, load) = states
                .get(&rep.id)
                .cloned()
                .unwrap_or_else(|| ("offline".into(), 0));
            json!({"id": rep.id, "teams": rep.teams, "capacity": rep.capacity, "status": status,
                   "open_conversations": load, "notify": rep.notify})
        })
        .collect();
    Ok(Json(json!({"items": items, "next_cursor": null})))
}
