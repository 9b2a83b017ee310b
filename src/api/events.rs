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

use super::{Caller, given, query};
use crate::app::AppState;
use crate::error::ApiError;
use utoipa::{IntoParams, ToSchema};

use super::openapi::{StoreErrors, Unauthorized};
use crate::error::ErrorBody;
use crate::store::{Event, EventFilter, Store};

/// Events read from the store at a time.
const BATCH: u32 = 200;

/// The stream's filters. Like the conversation list's, a filter that names nothing
/// configured is refused with 422 naming it.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Only events of this channel: one of the caller's configured channels.
    #[param(min_length = 1)]
    channel: Option<String>,
    /// Only events of conversations this rep (a `[[reps]]` id) owns.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    owner: Option<String>,
    /// For clients that cannot set the `Last-Event-ID` header (browsers' EventSource can):
    /// resume after this event id.
    #[param(value_type = Option<i64>, minimum = 0)]
    last_event_id: Option<String>,
}

/// One server-sent event as the stream frames it (the OpenAPI document describes each
/// event of a `text/event-stream` this way).
#[derive(ToSchema)]
// Never built: the stream writes the frame with axum's `Event`; this only documents it.
#[allow(dead_code)]
struct EventFrame {
    /// The event's id, to resume after with `Last-Event-ID`.
    #[schema(pattern = "^[0-9]+$")]
    id: String,
    /// Its kind: `message.created`, `conversation.assigned`, ….
    event: String,
    /// The whole event as JSON: `{"id", "kind", "channel_id", "conversation_id",
    /// "owner_id", "data", "at"}` (the `Event` schema).
    #[schema(content_media_type = "application/json")]
    data: String,
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
        ("last-event-id" = Option<i64>, Header, minimum = 0,
            description = "Resume after this event id (the `id:` of an event); wins over \
            `last_event_id`. Empty is the same as not sent."),
    ),
    responses(
        (status = 200, description = "Server-sent events, each `id: <event id>`, `event: <kind>`, `data: <Event as JSON>`.",
         content_type = "text/event-stream", body = EventFrame),
        (status = 422, description = "A parameter this operation does not take, `Last-Event-ID` \
            or `last_event_id` not an event id, or a filter naming no channel of yours or no \
            rep (`invalid_request`, naming it).", body = ErrorBody),
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
    let channel = given("channel", q.channel)?;
    let owner = given("owner", q.owner)?;
    {
        let runtime = state.runtime.load();
        if let Some(channel) = &channel {
            super::conversations::check_channel(&runtime, &caller, "channel", channel)?;
        }
        if let Some(owner) = &owner {
            super::conversations::check_rep(&runtime, "owner", owner)?;
        }
    }
    // The header as EventSource sends it (empty means none, as in the SSE spec) wins over
    // the query parameter; both are checked when both are sent.
    let header = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("\u{fffd}").trim().to_owned())
        .filter(|v| !v.is_empty());
    let header = header
        .map(|id| event_id("Last-Event-ID", &id))
        .transpose()?;
    let param = given("last_event_id", q.last_event_id)?
        .map(|id| event_id("last_event_id", &id))
        .transpose()?;
    let after = match header.or(param) {
        None => state.store.latest_event().await?,
        Some(after) => after,
    };
    let cursor = Cursor {
        changes: state.store.changes(),
        store: state.store.clone(),
        runtime: state.runtime.clone(),
        role: caller.role,
        rep: caller.rep.clone(),
        filter: EventFilter { channel, owner },
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

/// An event id as the stream sends it in `id:`: a whole number from 0.
fn event_id(name: &str, raw: &str) -> Result<i64, ApiError> {
    raw.parse::<u64>()
        .ok()
        .and_then(|id| i64::try_from(id).ok())
        .ok_or_else(|| ApiError::unprocessable(format!("{name}: {raw:?} is not an event id")))
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
