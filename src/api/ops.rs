//! Liveness, readiness and metrics: what orchestrators and Prometheus call.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::reload::ReloadStatus;
use crate::telemetry;

/// The answer of `/healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// The answer of `/readyz`.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, or `not_ready` (with a 503) when the store does not answer.
    #[schema(example = "ready")]
    status: &'static str,
    /// `ok`, or why the store does not answer.
    store: String,
    /// The last config reload; a refused one leaves the daemon ready on the old config.
    config: ReloadStatus,
}

/// Alive: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses((status = 200, description = "The process answers.", body = Health))
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Ready: the store answers. The running config is always valid (an invalid one is never
/// swapped in), so a refused reload leaves the daemon ready; it is shown under `config`.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready to take traffic.", body = Readiness),
        (status = 503, description = "The store does not answer.", body = Readiness),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let config = state
        .reload
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Readiness {
                status: "ready",
                store: "ok".into(),
                config,
            }),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness {
                status: "not_ready",
                store: e.to_string(),
                config,
            }),
        ),
    }
}

/// Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Every metric, in the Prometheus text format.",
            body = String, content_type = "text/plain; version=0.0.4"),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Ok(stats) = state.store.queue_stats().await {
        telemetry::queue_depth(stats.pending, stats.dead, stats.oldest_due_age);
        let channels: Vec<String> = state
            .runtime
            .load()
            .config
            .channels
            .keys()
            .cloned()
            .collect();
        telemetry::open_conversations(&channels, &stats.open_conversations);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        telemetry::metrics().render(),
    )
}
