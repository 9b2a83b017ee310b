//! The configured channels and whether they are taking traffic.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::Caller;
use crate::app::AppState;
use crate::error::ApiError;

pub async fn list(State(state): State<AppState>, _caller: Caller) -> Result<Json<Value>, ApiError> {
    let runtime = state.runtime.load();
    let public = runtime.config.server.public_url.clone();
    let items: Vec<Value> = runtime
        .config
        .channels
        .iter()
        .map(|(id, channel)| {
            json!({
                "id": id,
                "kind": channel.adapter.kind(),
                "enabled": channel.enabled,
                "threading": channel.threading,
                "reopen": channel.reopen,
                "webhook_url": public.as_ref().map(|base| format!("{base}/hooks/{id}")),
            })
        })
        .collect();
    let reload = state
        .reload
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(Json(
        json!({"items": items, "next_cursor": null, "config": reload}),
    ))
}
