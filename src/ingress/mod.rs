//! Webhook ingress: `POST /hooks/{channel}`. Owns the HTTP side (lookup, body limit, raw
//! bytes); the channel's adapter verifies and parses; the store commits. The answer is
//! 200 only after the commit, so a platform that got 200 can forget the message.

use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use serde_json::{Value, json};

use crate::adapters::RawRequest;
use crate::api::read_body;
use crate::app::AppState;
use crate::error::ApiError;
use crate::store::IngestOutcome;
use crate::telemetry;

/// How long a platform is told to wait before redelivering to a disabled channel.
const DISABLED_RETRY_AFTER_SECS: u64 = 60;

pub async fn receive(
    State(state): State<AppState>,
    Path(channel_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let result = handle(&state, &channel_id, headers, body, started).await;
    if let Err(e) = &result {
        telemetry::webhook_rejected(&channel_id, e.code, &e.message);
    }
    result
}

async fn handle(
    state: &AppState,
    channel_id: &str,
    headers: HeaderMap,
    body: Body,
    started: Instant,
) -> Result<Json<Value>, ApiError> {
    // One snapshot for the whole request: a reload mid-request does not mix configs.
    let runtime = state.runtime.load_full();
    let channel = runtime.channel(channel_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_channel",
            format!("no channel {channel_id:?}"),
        )
    })?;
    if !channel.config.enabled {
        return Err(ApiError::unavailable(
            "channel_disabled",
            format!("channel {channel_id:?} is disabled; redeliver later"),
            DISABLED_RETRY_AFTER_SECS,
        ));
    }
    let body = read_body(body, runtime.config.server.max_body_bytes).await?;
    let request = RawRequest { headers, body };
    channel.adapter.verify(&request, Utc::now())?;
    let events = channel.adapter.parse(&request)?;
    telemetry::webhook_received(channel_id, events.len());
    let outcomes = state.store.ingest(&channel.rules, events).await?;

    let stored = outcomes
        .iter()
        .filter(|o| matches!(o, IngestOutcome::Stored { .. }))
        .count();
    let duplicates = outcomes
        .iter()
        .filter(|o| matches!(o, IngestOutcome::Duplicate { .. }))
        .count();
    telemetry::webhook_stored(channel_id, stored, duplicates, started.elapsed());
    Ok(Json(
        json!({"stored": stored, "duplicates": duplicates, "results": outcomes}),
    ))
}
