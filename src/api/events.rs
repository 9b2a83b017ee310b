//! `GET /api/v1/events`: server-sent events for new messages, assignments, status changes
//! and delivery updates. Each event carries its id; a client that reconnects with
//! `Last-Event-ID` gets everything it missed, from the store, in order. A rep's stream
//! carries only events of their inboxes' channels (scope re-read from the live config for
//! every batch), plus the `comment.mentioned` events addressed to them.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{Caller, query};
use crate::app::AppState;
use crate::error::ApiError;
use utoipa::IntoParams;

use super::openapi::{StoreErrors, Unauthorized};
use crate::error::ErrorBody;
use crate::store::{Event, EventFilter, Store};

/// Events read from the store at a time.
const BATCH: u32 = 200;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Only events of this channel.
    channel: Option<String>,
    /// Only events of conversations this rep owns.
    owner: Option<String>,
    /// For clients that cannot set the `Last-Event-ID` header (browsers' EventSource can).
    last_event_id: Option<String>,
}

struct Cursor {
    store: Arc<dyn Store>,
    runtime: crate::runtime::SharedRuntime,
    role: crate::config::Role,
    rep: Option<String>,
    filter: EventFilter,
    after: i64,
    ready: VecDeque<Event>,
    changes: tokio::sync::watch::Receiver<u64>,
    shutdown: CancellationToken,
}

#[utoipa::path(
    get,
    path = "/api/v1/events",
    operation_id = "stream_events",
    tag = "events",
    security(("bearer" = [])),
    params(
        EventsQuery,
        ("last-event-id" = Option<String>, Header, description = "Resume after this event id"),
    ),
    responses(
        (status = 200, description = "Server-sent events, each `id: <event id>`, `event: <kind>`, `data: <Event as JSON>`.",
         content_type = "text/event-stream", body = Event),
        (status = 422, description = "`last_event_id` is not an event id.", body = ErrorBody),
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let q: EventsQuery = query(raw.as_deref())?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(q.last_event_id);
    let after = match resume.as_deref() {
        None | Some("") => state.store.latest_event().await?,
        Some(id) => id.trim().parse::<i64>().map_err(|_| {
            ApiError::unprocessable(format!("last_event_id: {id:?} is not an event id"))
        })?,
    };
    let cursor = Cursor {
        changes: state.store.changes(),
        store: state.store.clone(),
        runtime: state.runtime.clone(),
        role: caller.role,
        rep: caller.rep.clone(),
        filter: EventFilter {
            channel: q.channel.filter(|c| !c.is_empty()),
            owner: q.owner.filter(|o| !o.is_empty()),
        },
        after,
        ready: VecDeque::new(),
        shutdown: state.shutdown.clone(),
    };
    let events = futures_util::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(event) = c.ready.pop_front() {
                return Some((Ok(sse(&event)), c));
            }
            if c.shutdown.is_cancelled() {
                return None;
            }
            // Mark the current version seen before reading, so a write that lands after the
            // read still wakes us.
            c.changes.borrow_and_update();
            match c.store.events_after(c.after, &c.filter, BATCH).await {
                Ok(events) if !events.is_empty() => {
                    c.after = events.last().map_or(c.after, |e| e.id);
                    let scope = crate::desk::inboxes::scope(
                        &c.runtime.load().config,
                        c.role,
                        c.rep.as_deref(),
                    );
                    c.ready.extend(
                        events
                            .into_iter()
                            .filter(|e| visible(e, &scope, c.rep.as_deref())),
                    );
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "Could not read events for a stream; trying again.");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            tokio::select! {
                changed = c.changes.changed() => if changed.is_err() { return None },
                _ = c.shutdown.cancelled() => return None,
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// An event of the caller's channels, or a mention of the caller's rep (a colleague
/// shared that comment with them on purpose, whatever inbox it is in).
fn visible(event: &Event, scope: &crate::desk::inboxes::Scope, rep: Option<&str>) -> bool {
    let mentions_me = event.kind == "comment.mentioned"
        && rep.is_some_and(|rep| event.data["rep_id"].as_str() == Some(rep));
    mentions_me || event.channel_id.as_deref().is_some_and(|c| scope.allows(c))
}

fn sse(event: &Event) -> SseEvent {
    SseEvent::default()
        .id(event.id.to_string())
        .event(event.kind.clone())
        .data(serde_json::to_string(event).unwrap_or_default())
}
