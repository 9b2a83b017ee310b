//! The outbox as operators see it: pending and dead-lettered deliveries, and redrive.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::openapi::{AdminOnly, StoreErrors, Unauthorized};
use super::{Caller, Paging, query};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::model::JobId;
use crate::store::{ChannelDeliveries, Delivery, JobState, Page};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Which deliveries: dead-lettered (the default) or still being tried.
    #[param(value_type = Option<JobState>)]
    state: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    paging: Paging,
}

/// Lists deliveries in one state, oldest first. Admins only.
#[utoipa::path(
    get,
    path = "/api/v1/deliveries",
    operation_id = "list_deliveries",
    tag = "deliveries",
    security(("bearer" = [])),
    params(ListQuery, Paging),
    responses(
        (status = 200, description = "One page of deliveries.", body = Page<Delivery>),
        (status = 422, description = "A parameter this operation does not take, or one \
            that does not fit (`invalid_request`, naming it).", body = ErrorBody),
        AdminOnly,
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<Delivery>>, ApiError> {
    caller.require_admin()?;
    let q: ListQuery = query(raw.as_deref())?;
    let job_state = match super::given("state", q.state)?.as_deref() {
        None => JobState::Dead,
        Some(s) => JobState::parse(s)
            .ok_or_else(|| ApiError::unprocessable("state: must be dead or pending"))?,
    };
    Ok(Json(
        state.store.deliveries(job_state, &q.paging.page()?).await?,
    ))
}

/// Sends a dead-lettered delivery again from the start of the retry schedule, or makes a
/// pending one that waits out its backoff due now. Admins only.
#[utoipa::path(
    post,
    path = "/api/v1/deliveries/{id}/retry",
    operation_id = "retry_delivery",
    tag = "deliveries",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The delivery.")),
    responses(
        (status = 200, description = "Queued again.", body = Delivery),
        (status = 404, description = "No such delivery (`not_found`).", body = ErrorBody),
        (status = 409, description = "The delivery is being sent right now (`conflict`).",
            body = ErrorBody),
        AdminOnly,
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Delivery>, ApiError> {
    caller.require_admin()?;
    let id = JobId::parse(&id).ok_or_else(|| ApiError::not_found("delivery"))?;
    let delivery = state.store.retry_delivery(&id, Utc::now()).await?;
    tracing::info!(job = %id, by = %caller.name, "Delivery queued to run now.");
    state.wake.notify_one();
    Ok(Json(delivery))
}

/// Per channel, the outbox at a glance.
#[derive(Serialize, ToSchema)]
pub struct DeliverySummary {
    /// Every channel with a pending or dead delivery, by id; a channel absent here has
    /// none.
    pub items: Vec<ChannelDeliveries>,
}

/// Counts each channel's pending and dead deliveries exactly, with the newest error
/// among them. Admins only.
#[utoipa::path(
    get,
    path = "/api/v1/deliveries/summary",
    operation_id = "summarize_deliveries",
    tag = "deliveries",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Per channel, its pending and dead deliveries.",
            body = DeliverySummary),
        AdminOnly,
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn summary(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<DeliverySummary>, ApiError> {
    caller.require_admin()?;
    Ok(Json(DeliverySummary {
        items: state.store.delivery_summary().await?,
    }))
}
