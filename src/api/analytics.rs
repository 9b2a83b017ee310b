//! `GET /api/v1/analytics?from&to`: volumes, first-response and resolution times.

use axum::Json;
use axum::extract::{RawQuery, State};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{Caller, query};
use crate::app::AppState;
use utoipa::{IntoParams, ToSchema};

use super::openapi::{StoreErrors, Unauthorized};
use crate::desk::analytics::{self, ChannelFigures, RepFigures, Report};
use crate::error::ApiError;
use crate::error::ErrorBody;

/// The period when none is given: the last 30 days.
const DEFAULT_DAYS: i64 = 30;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Period {
    /// Start of the period (RFC 3339); default 30 days before `to`.
    #[param(value_type = Option<DateTime<Utc>>)]
    from: Option<String>,
    /// End of the period, exclusive (RFC 3339); default now.
    #[param(value_type = Option<DateTime<Utc>>)]
    to: Option<String>,
}

/// Figures for one period, per channel and per rep.
#[derive(Serialize, ToSchema)]
pub struct Analytics {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    channels: Vec<ChannelFigures>,
    reps: Vec<RepFigures>,
}

#[utoipa::path(
    get,
    path = "/api/v1/analytics",
    operation_id = "analytics",
    tag = "analytics",
    security(("bearer" = [])),
    params(Period),
    responses(
        (status = 200, description = "Volumes, first-response and resolution times (median, p90).", body = Analytics),
        (status = 422, description = "A parameter this operation does not take, a time that \
            is not RFC 3339, or `from` not before `to` (`invalid_request`, naming it).",
            body = ErrorBody),
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn report(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Analytics>, ApiError> {
    let period: Period = query(raw.as_deref())?;
    let to = super::time("to", period.to.as_deref())?.unwrap_or_else(Utc::now);
    let from =
        super::time("from", period.from.as_deref())?.unwrap_or(to - Duration::days(DEFAULT_DAYS));
    if from >= to {
        return Err(ApiError::unprocessable("from: must be before to"));
    }
    let facts = state.store.analytics(from, to).await?;
    let Report { channels, reps } = analytics::report(facts.within(&caller.scope));
    Ok(Json(Analytics {
        from,
        to,
        channels,
        reps,
    }))
}
