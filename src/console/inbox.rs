//! The inbox: conversations newest activity first, with the API's filters and search,
//! each person's unread and waiting-on-us markers (kept in the store, so they follow the
//! person, not the browser), live updates (the API's event stream), presence and keyboard
//! navigation.

use std::collections::HashMap;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::session::Fields;
use super::{Console, PageError, json, layout};
use crate::api::{self, Caller};
use crate::app::AppState;
use crate::error::ApiError;
use crate::model::{Conversation, ConversationId};
use crate::store::ConversationMarks;

/// The inbox filters a page takes, in the API's names.
const FILTERS: &[&str] = &[
    "inbox",
    "channel",
    "status",
    "owner",
    "ticket_status",
    "q",
    "from",
    "to",
    "cursor",
];

/// The API query for the inbox's own: blank filters left out (the API refuses them), and
/// a date from the date picker as the start of that day (`to`: the end of it) in UTC.
pub fn api_query(fields: &Fields) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for name in FILTERS {
        let Some(value) = fields.get(name) else {
            continue;
        };
        let value = match *name {
            "from" if is_date(value) => format!("{value}T00:00:00Z"),
            "to" if is_date(value) => format!("{value}T23:59:59.999Z"),
            _ => value.to_owned(),
        };
        out.append_pair(name, &value);
    }
    out.finish()
}

fn is_date(s: &str) -> bool {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

fn fields(raw: Option<&str>) -> Fields {
    Fields(serde_urlencoded::from_str(raw.unwrap_or_default()).unwrap_or_default())
}

/// The contact as a row or a title names them.
pub fn contact_name(conversation: &Conversation) -> String {
    let contact = &conversation.contact;
    contact
        .display_name
        .clone()
        .or_else(|| contact.identifiers.first().map(|i| i.value.clone()))
        .unwrap_or_else(|| "Unknown contact".to_owned())
}

/// `GET /inbox`.
pub async fn page(
    State(state): State<AppState>,
    console: Console,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let live_after = state.store.latest_event().await.map_err(ApiError::from)?;
    let form = fields(raw.as_deref());
    let query = api_query(&form);
    let listed = api::conversations::list(
        State(state.clone()),
        console.caller.clone(),
        RawQuery(Some(query)),
    )
    .await;
    let (page, error) = match listed {
        Ok(page) => (Some(page.0), None),
        Err(e) if e.status == axum::http::StatusCode::UNPROCESSABLE_ENTITY => (None, Some(e)),
        Err(e) => return Err(e.into()),
    };
    let marks = match &page {
        Some(p) => {
            let ids: Vec<ConversationId> = p.items.iter().map(|c| c.id.clone()).collect();
            state
                .store
                .conversation_marks(&reader(&console.caller), &ids)
                .await
                .map_err(ApiError::from)?
        }
        None => Vec::new(),
    };
    let marks: HashMap<&ConversationId, &ConversationMarks> =
        marks.iter().map(|m| (&m.conversation_id, m)).collect();
    let presence = presence_form(&state, &console).await;
    let runtime = state.runtime.load_full();
    let config = &runtime.config;
    let inboxes = crate::desk::inboxes::inboxes_of(
        config,
        console.caller.role,
        console.caller.rep.as_deref(),
    );
    let channels: Vec<&String> = config
        .channels
        .keys()
        .filter(|c| console.caller.sees(c))
        .collect();
    let statuses: std::collections::BTreeSet<&str> = config
        .pipelines
        .values()
        .flat_map(|p| &p.statuses)
        .map(|s| s.id.as_str())
        .collect();
    let selected = |name: &str, value: &str| form.get(name) == Some(value);
    let items = page
        .as_ref()
        .map(|p| p.items.as_slice())
        .unwrap_or_default();
    let body = html! {
        h1 { "Inbox" }
        form.filters method="get" action="/inbox" {
            input type="search" name="q" placeholder="Search messages" value=(form.get("q").unwrap_or_default()) aria-label="Search";
            select name="inbox" aria-label="Inbox" {
                option value="" { "All my inboxes" }
                @for i in &inboxes { option value=(i.id) selected[selected("inbox", &i.id)] { (i.id) } }
            }
            select name="channel" aria-label="Channel" {
                option value="" { "Any channel" }
                @for c in &channels { option value=(c) selected[selected("channel", c)] { (c) } }
            }
            select name="status" aria-label="Status" {
                option value="" { "Open or closed" }
                option value="open" selected[selected("status", "open")] { "Open" }
                option value="closed" selected[selected("status", "closed")] { "Closed" }
            }
            select name="owner" aria-label="Owner" {
                option value="" { "Anyone" }
                option value="none" selected[selected("owner", "none")] { "Unassigned" }
                @for r in &config.reps { option value=(r.id) selected[selected("owner", &r.id)] { (r.id) } }
            }
            select name="ticket_status" aria-label="Ticket status" {
                option value="" { "Any ticket status" }
                @for s in &statuses { option value=(s) selected[selected("ticket_status", s)] { (s) } }
            }
            label { "From " input type="date" name="from" value=(form.get("from").unwrap_or_default()); }
            label { "To " input type="date" name="to" value=(form.get("to").unwrap_or_default()); }
            button type="submit" { "Filter" }
            a href="/inbox" { "Clear" }
        }
        (layout::error(error.as_ref().map(|e| e.message.as_str())))
        table.inbox #inbox data-live="inbox" {
            thead { tr { th { "Contact" } th { "Channel" } th { "Status" } th { "Owner" } th { "Last activity" } } }
            tbody #rows {
                @for c in items { (row(c, marks.get(&c.id).copied())) }
                @if items.is_empty() && error.is_none() {
                    tr { td colspan="5" .empty { "No conversations match." } }
                }
            }
        }
        @if let Some(next) = page.as_ref().and_then(|p| p.next_cursor.as_deref()) {
            p { a rel="next" href=(next_link(&form, next)) { "Older conversations →" } }
        }
        p.hint { "Keys: " kbd { "j" } "/" kbd { "k" } " move, " kbd { "Enter" } " opens, " kbd { "r" } " replies." }
    };
    Ok(layout::page("Inbox", &console, presence, Some(live_after), body).into_response())
}

/// Whose reads the unread markers follow: the rep, or a token bound to no rep by its name
/// (prefixed, so it never shares a rep's reads).
pub fn reader(caller: &Caller) -> String {
    match &caller.rep {
        Some(rep) => rep.clone(),
        None => format!("token:{}", caller.name),
    }
}

/// One conversation as an inbox row, with this reader's markers: unread (an inbound
/// message since they last opened it) and waiting on us (the contact spoke last).
pub fn row(c: &Conversation, marks: Option<&ConversationMarks>) -> Markup {
    let href = format!("/c/{}", c.id);
    let unread = marks.is_some_and(|m| m.unread);
    let waiting = marks.is_some_and(|m| m.waiting_on_us);
    html! {
        tr.row data-href=(href) data-id=(c.id.to_string()) data-last=(c.last_message_at.timestamp_millis())
            .closed[c.status == crate::model::ConversationStatus::Closed]
            .unassigned[c.owner_id.is_none()]
            .unread[unread]
            .waiting[waiting] {
            td {
                @if unread { span.dot title="Unread: a new message since you last opened it" { span.sr { "unread " } } }
                @else { span.dot {} }
                a href=(href) { (contact_name(c)) }
                @if waiting { " " span.tag.waiting-tag title="The contact wrote last: a reply is owed" { "waiting on us" } }
            }
            td { (c.channel_id) }
            td { (c.status.as_str()) }
            td { @match &c.owner_id { Some(o) => (o), None => span.tag { "unassigned" } } }
            td { (layout::time(&c.last_message_at)) }
        }
    }
}

fn next_link(form: &Fields, cursor: &str) -> String {
    let mut kept: Vec<(String, String)> = form
        .0
        .iter()
        .filter(|(k, v)| k != "cursor" && !v.is_empty())
        .cloned()
        .collect();
    kept.push(("cursor".into(), cursor.to_owned()));
    format!(
        "/inbox?{}",
        serde_urlencoded::to_string(&kept).unwrap_or_default()
    )
}

/// The signed-in rep's presence, with buttons to change it (none for a token bound to no
/// rep).
async fn presence_form(state: &AppState, console: &Console) -> Option<Markup> {
    let rep = console.caller.rep.clone()?;
    let reps = api::reps::list(State(state.clone()), console.caller.clone())
        .await
        .ok()
        .map(|r| json(r.0))?;
    let status = reps["items"]
        .as_array()?
        .iter()
        .find(|r| r["id"] == rep.as_str())
        .and_then(|r| r["status"].as_str())
        .unwrap_or("offline")
        .to_owned();
    Some(html! {
        form.inline.presence method="post" action="/presence" {
            (layout::csrf(console))
            span.presence-now data-status=(status) { (status) }
            @for s in ["online", "away", "offline"] {
                @if s != status {
                    button.link type="submit" name="status" value=(s) { "Go " (s) }
                }
            }
        }
    })
}

/// `POST /presence`: the rep's own presence, as `PUT /api/v1/reps/{id}/presence`.
pub async fn presence(
    State(state): State<AppState>,
    console: Console,
    headers: HeaderMap,
    axum::Form(form): axum::Form<Fields>,
) -> Result<Response, PageError> {
    console.check_csrf(&form)?;
    let Some(rep) = console.caller.rep.clone() else {
        return Err(crate::error::ApiError::forbidden("this token is bound to no rep").into());
    };
    let request = serde_json::from_value(serde_json::json!({
        "status": form.get("status").unwrap_or_default(),
    }))
    .map_err(|e| crate::error::ApiError::unprocessable(format!("status: {e}")))?;
    let _ = api::reps::presence(
        State(state),
        console.caller,
        axum::extract::Path(rep),
        api::JsonBody(request),
    )
    .await?;
    let back = headers
        .get(axum::http::header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| url::Url::parse(r).ok())
        .map(|u| match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        });
    Ok(Redirect::to(&super::local_path(back.as_deref(), "/inbox")).into_response())
}

/// `GET /console/events`: the API's event stream for this session's caller (an
/// `EventSource` cannot send a bearer token); the same scope, re-read for every batch.
/// The query goes to the API as it came (`last_event_id`: the page's `data-events-after`),
/// checked there like any API query.
pub async fn events(
    State(state): State<AppState>,
    console: Console,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    Ok(
        api::events::stream(State(state), console.caller, headers, RawQuery(raw))
            .await?
            .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_filters_are_left_out_and_dates_become_whole_days() {
        let form = Fields(vec![
            ("channel".into(), "".into()),
            ("status".into(), "open".into()),
            ("from".into(), "2026-01-02".into()),
            ("to".into(), "2026-01-03".into()),
            ("evil".into(), "x".into()),
        ]);
        assert_eq!(
            api_query(&form),
            "status=open&from=2026-01-02T00%3A00%3A00Z&to=2026-01-03T23%3A59%3A59.999Z"
        );
    }
}
