//! The outbox as operators see it: pending and dead-lettered deliveries, and redrive.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use chrono::Utc;
use serde::Deserialize;

use super::{Caller, Paging, query};
use crate::app::AppState;
use crate::error::ApiError;
use crate::model::JobId;
use crate::store::{Delivery, JobState, Page};

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    #[serde(flatten)]
    paging: Paging,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<Delivery>>, ApiError> {
    caller.require_admin()?;
    let q: ListQuery = query(raw.as_deref())?;
    let job_state = match q.state.as_deref() {
        None | Some("") => JobState::Dead,
        Some(s) => JobState::parse(s)
            .ok_or_else(|| ApiError::unprocessable("state: must be dead or pending"))?,
    };
    Ok(Json(
        state.store.deliveries(job_state, &q.paging.page()?).await?,
    ))
}

pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Delivery>, ApiError> {
    caller.require_admin()?;
    let id = JobId::parse(&id).ok_or_else(|| ApiError::not_found("delivery"))?;
    let delivery = state.store.retry_delivery(&id, Utc::now()).await?;
    tracing::info!(job = %id, by = %caller.name, "Dead-lettered delivery queued again.");
    state.wake.notify_one();
    Ok(Json(delivery))
}
