//! `GET /api/v1/analytics?from&to`: volumes, first-response and resolution times.

use axum::Json;
use axum::extract::{RawQuery, State};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{Caller, query};
use crate::app::AppState;
use crate::desk::analytics::{self, Report};
use crate::error::ApiError;

/// The period when none is given: the last 30 days.
const DEFAULT_DAYS: i64 = 30;

#[derive(Deserialize)]
struct Period {
    from: Option<String>,
    to: Option<String>,
}

#[derive(Serialize)]
pub struct Analytics {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    #[serde(flatten)]
    report: Report,
}

fn time(name: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match raw {
        None | Some("") => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| ApiError::unprocessable(format!("{name}: {s:?} is not an RFC 3339 time"))),
    }
}

pub async fn report(
    State(state): State<AppState>,
    _caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Analytics>, ApiError> {
    let period: Period = query(raw.as_deref())?;
    let to = time("to", period.to.as_deref())?.unwrap_or_else(Utc::now);
    let from = time("from", period.from.as_deref())?.unwrap_or(to - Duration::days(DEFAULT_DAYS));
    if from >= to {
        return Err(ApiError::unprocessable("from: must be before to"));
    }
    let facts = state.store.analytics(from, to).await?;
    Ok(Json(Analytics {
        from,
        to,
        report: analytics::report(facts),
    }))
}
