//! Liveness, readiness and metrics: what orchestrators and Prometheus call.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::telemetry;

/// Alive: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready: the store answers. The running config is always valid (an invalid one is never
/// swapped in), so a refused reload leaves the daemon ready; it is shown under `config`.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let config = state
        .reload
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "store": "ok", "config": config})),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "store": e.to_string(), "config": config})),
        ),
    }
}

/// Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Ok(stats) = state.store.queue_stats().await {
        telemetry::queue_depth(stats.pending, stats.dead, stats.oldest_due_age);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        telemetry::metrics().render(),
    )
}
