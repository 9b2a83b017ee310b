//! A conversation: its thread with every part kind, the reply box, internal comments, and
//! the ticket sidebar (status, owner, properties, history, the ticket's other
//! conversations, the contact and their past conversations, merge). Every read and every
//! form goes through the API's handler for it.

use std::collections::HashMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::{Map, Value, json as j};

use super::inbox::contact_name;
use super::session::Fields;
use super::{Console, PageError, json, layout};
use crate::api;
use crate::app::AppState;
use crate::desk::tickets::Priority;
use crate::error::ApiError;
use crate::model::{Direction, Message, MessageKind, Part};

/// A form the API refused, shown again in place with what was typed and why.
pub struct Refused {
    form: &'static str,
    message: String,
    fields: Fields,
}

/// `GET /c/{id}`: a conversation of another inbox is the 404 page.
pub async fn page(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let asked: Fields =
        Fields(serde_urlencoded::from_str(raw.as_deref().unwrap_or_default()).unwrap_or_default());
    render(&state, &console, &id, None, asked.get("reply_to")).await
}

async fn render(
    state: &AppState,
    console: &Console,
    id: &str,
    refused: Option<Refused>,
    reply_to: Option<&str>,
) -> Result<Response, PageError> {
    let caller = &console.caller;
    let s = || State(state.clone());
    let live_after = state.store.latest_event().await.map_err(ApiError::from)?;
    let conversation = api::conversations::show(s(), caller.clone(), Path(id.to_owned()))
        .await?
        .0;
    // Read up to here before the thread is loaded: a message stored meanwhile stays
    // unread rather than being marked read unseen.
    if let Err(e) = state
        .store
        .mark_read(&super::inbox::reader(caller), &conversation.id)
        .await
    {
        tracing::warn!(conversation_id = %conversation.id, error = %e, "Could not record a console read.");
    }
    let messages = api::conversations::messages(
        s(),
        caller.clone(),
        Path(id.to_owned()),
        RawQuery(Some("limit=200".into())),
    )
    .await?
    .0
    .items;
    let ticket_id = conversation.ticket_id.to_string();
    let ticket = api::tickets::show(s(), caller.clone(), Path(ticket_id.clone()))
        .await?
        .0;
    let history = api::tickets::history(s(), caller.clone(), Path(ticket_id.clone()))
        .await?
        .0
        .items;
    let contact_id = conversation.contact.id.to_string();
    let past = api::contacts::conversations(
        s(),
        caller.clone(),
        Path(contact_id.clone()),
        RawQuery(None),
    )
    .await
    .map(|p| json(p.0))
    .unwrap_or(Value::Null);
    let snippets = api::snippets::list(s(), caller.clone())
        .await
        .map(|p| json(p.0))
        .unwrap_or(Value::Null);
    // Admins retry failed deliveries: the outbox names them by message.
    let mut jobs: HashMap<String, (String, String)> = HashMap::new();
    if console.is_admin() {
        for state_name in ["dead", "pending"] {
            if let Ok(page) = api::deliveries::list(
                s(),
                caller.clone(),
                RawQuery(Some(format!("state={state_name}&limit=200"))),
            )
            .await
            {
                for d in page.0.items {
                    if let Some(m) = d.message_id {
                        jobs.insert(m.to_string(), (d.id.to_string(), state_name.to_owned()));
                    }
                }
            }
        }
    }
    let runtime = state.runtime.load_full();
    let config = &runtime.config;
    let statuses = config
        .pipelines
        .get(&ticket.pipeline)
        .map(|p| p.statuses.clone())
        .unwrap_or_default();
    let email_channels: Vec<&String> = config
        .channels
        .iter()
        .filter(|(cid, c)| {
            crate::desk::replies::can_carry(c.adapter.kind())
                && caller.sees(cid)
                && **cid != conversation.channel_id
        })
        .map(|(cid, _)| cid)
        .collect();
    let reps: Vec<&str> = config.reps.iter().map(|r| r.id.as_str()).collect();
    let refused_in = |form: &str| refused.as_ref().filter(|r| r.form == form);
    let value = |form: &str, name: &str| -> String {
        refused_in(form)
            .and_then(|r| r.fields.get(name))
            .unwrap_or_default()
            .to_owned()
    };
    let reply_refused = refused_in("reply");
    let chosen_status = reply_refused
        .and_then(|r| r.fields.get("ticket_status"))
        .map(str::to_owned);
    let chosen_reply_to = reply_refused
        .and_then(|r| r.fields.get("reply_to"))
        .or(reply_to)
        .map(str::to_owned);
    let back = format!("/c/{id}");
    let title = contact_name(&conversation);
    let is_admin = console.is_admin();

    let body = html! {
        div.conversation data-conversation=(id) data-live="conversation" {
            section.thread-column {
                header.conv-head {
                    h1 { (title) }
                    p.meta {
                        span.tag { (conversation.channel_id) } " "
                        span.tag { (conversation.status.as_str()) } " "
                        "owner: " (conversation.owner_id.as_deref().unwrap_or("nobody"))
                    }
                    form.inline method="post" action=(format!("/c/{id}/update")) {
                        (layout::csrf(console))
                        select name="owner_id" aria-label="Owner" {
                            option value="" { "Keep owner" }
                            option value="none" { "Unassign" }
                            @for r in &reps { option value=(r) { "Assign to " (r) } }
                        }
                        select name="status" aria-label="Conversation status" {
                            option value="" { "Keep status" }
                            option value="open" { "Open" }
                            option value="closed" { "Close" }
                        }
                        button type="submit" { "Update" }
                    }
                    (layout::error(refused_in("conversation").map(|r| r.message.as_str())))
                }
                ol.thread #thread {
                    @for m in &messages { (message(m, &jobs, is_admin, console, &back)) }
                }
                section.reply #reply {
                    h2 { "Reply" }
                    (layout::error(reply_refused.map(|r| r.message.as_str())))
                    form #reply-form method="post" action=(format!("/c/{id}/reply")) {
                        (layout::csrf(console))
                        textarea #reply-text name="text" rows="4" placeholder="Write a reply…" aria-label="Reply text" { (value("reply", "text")) }
                        div.reply-options {
                            label { "Reply to "
                                select #reply-to name="reply_to" {
                                    option value="" { "the conversation (no quote)" }
                                    @for m in messages.iter().filter(|m| m.kind == MessageKind::Message) {
                                        option value=(m.id.to_string()) selected[chosen_reply_to.as_deref() == Some(&m.id.to_string())] {
                                            (m.created_at.format("%H:%M")) " " (m.sender.id) ": " (preview(m))
                                        }
                                    }
                                }
                            }
                            label { "Snippet "
                                select name="snippet_id" {
                                    option value="" { "none" }
                                    @for sn in snippets["items"].as_array().into_iter().flatten() {
                                        @let sid = sn["id"].as_str().unwrap_or_default();
                                        option value=(sid) selected[value("reply", "snippet_id") == sid] title=(sn["text"].as_str().unwrap_or_default()) { (sid) }
                                    }
                                }
                            }
                            label { "Via "
                                select name="via_channel" {
                                    option value="" { (conversation.channel_id) " (this conversation)" }
                                    @for c in &email_channels { option value=(c) selected[value("reply", "via_channel") == **c] { (c) " (email)" } }
                                }
                            }
                            // The file is uploaded on choosing it (console.js, POST
                            // /console/uploads); the reply then names its URL.
                            label { "Attach a file "
                                input #attach-file type="file" data-upload="/console/uploads";
                            }
                            span #attach-status role="status" {
                                @let attached = value("reply", "attach_name");
                                @if !attached.is_empty() { "Attached: " (attached) }
                            }
                            input #attach-url type="hidden" name="attach_url" value=(value("reply", "attach_url"));
                            input #attach-type type="hidden" name="attach_type" value=(value("reply", "attach_type"));
                            input #attach-name type="hidden" name="attach_name" value=(value("reply", "attach_name"));
                            input #attach-mime type="hidden" name="attach_mime" value=(value("reply", "attach_mime"));
                            label { "and set ticket status "
                                select #reply-status name="ticket_status" {
                                    option value="" { "(keep " (ticket.status) ")" }
                                    @for st in &statuses {
                                        option value=(st.id) data-requires=(st.requires.join(" ")) selected[chosen_status.as_deref() == Some(&st.id)] { (st.id) @if !st.requires.is_empty() { " (needs " (st.requires.join(", ")) ")" } }
                                    }
                                }
                            }
                        }
                        @for st in statuses.iter().filter(|st| !st.requires.is_empty()) {
                            fieldset.requires data-status=(st.id) hidden[chosen_status.as_deref() != Some(&st.id)] {
                                legend { "Status " (st.id) " needs these properties" }
                                @for p in &st.requires {
                                    @let current = ticket.properties.get(p).map(show_value).unwrap_or_default();
                                    label { (p) " "
                                        input type="text" name=(format!("prop.{p}")) data-required="1"
                                            value=(refused_in("reply").and_then(|r| r.fields.get(&format!("prop.{p}"))).map(str::to_owned).unwrap_or(current));
                                    }
                                }
                            }
                        }
                        p.form-hint #reply-hint hidden {}
                        button type="submit" { "Send" }
                    }
                }
                section.comment {
                    h2 { "Internal comment" }
                    (layout::error(refused_in("comment").map(|r| r.message.as_str())))
                    form method="post" action=(format!("/c/{id}/comment")) {
                        (layout::csrf(console))
                        textarea name="text" rows="2" placeholder="Only reps see this; @rep mentions them" aria-label="Comment text" { (value("comment", "text")) }
                        button type="submit" { "Add comment" }
                    }
                }
            }
            aside.sidebar {
                section.ticket {
                    h2 { "Ticket" }
                    dl {
                        dt { "Id" } dd { code { (ticket_id) } }
                        dt { "Pipeline" } dd { (ticket.pipeline) }
                        dt { "Status" } dd { span.tag #ticket-status { (ticket.status) } }
                        dt { "Priority" } dd { span.tag #priority { (ticket.priority.as_deref().unwrap_or("none")) } }
                        dt { "Owner" } dd { (ticket.owner_id.as_deref().unwrap_or("nobody")) }
                    }
                    (layout::error(refused_in("ticket").map(|r| r.message.as_str())))
                    form.stack method="post" action=(format!("/t/{ticket_id}/update")) {
                        (layout::csrf(console))
                        input type="hidden" name="back" value=(back);
                        label { "Status "
                            select name="status" {
                                option value="" { "(keep)" }
                                @for st in &statuses { option value=(st.id) { (st.id) @if !st.requires.is_empty() { " (needs " (st.requires.join(", ")) ")" } } }
                            }
                        }
                        label { "Priority "
                            select #ticket-priority name="priority" {
                                option value="" { "(keep)" }
                                @for p in Priority::ALL { option value=(p.as_str()) { (p.as_str()) } }
                                option value="none" { "none" }
                            }
                        }
                        label { "Owner "
                            select name="owner_id" {
                                option value="" { "(keep)" }
                                option value="none" { "nobody" }
                                @for r in &reps { option value=(r) { (r) } }
                            }
                        }
                        @for (k, v) in &ticket.properties {
                            label { (k) " " input type="text" name=(format!("prop.{k}")) value=(show_value(v)); }
                        }
                        div.pair {
                            input type="text" name="new_key" placeholder="new property" aria-label="New property name";
                            input type="text" name="new_value" placeholder="value" aria-label="New property value";
                        }
                        input type="text" name="reason" placeholder="Why (for the history)" aria-label="Reason";
                        button type="submit" { "Save ticket" }
                    }
                    @if ticket.conversation_ids.len() > 1 {
                        h3 { "Other conversations of this ticket" }
                        ul { @for c in ticket.conversation_ids.iter().filter(|c| c.to_string() != id) { li { a href=(format!("/c/{c}")) { code { (c) } } } } }
                    }
                    h3 { "History" }
                    ol.history {
                        @for h in history.iter().rev() {
                            li {
                                (layout::time(&h.at)) " " strong { (h.actor) } " " (h.action) " "
                                code { (compact(&h.changes)) }
                                @if let Some(reason) = &h.reason { " — " em { (reason) } }
                            }
                        }
                    }
                }
                section.contact {
                    h2 { "Contact" }
                    div.card {
                        strong { (conversation.contact.display_name.as_deref().unwrap_or("(no name)")) }
                        dl {
                            dt { "Id" } dd { code { (contact_id) } }
                            dt { "Email" } dd { (conversation.contact.email.as_deref().unwrap_or("none")) }
                            dt { "Owner" } dd { (conversation.contact.owner_id.as_deref().unwrap_or("nobody")) }
                            @for i in &conversation.contact.identifiers {
                                dt { (i.channel_id) " " (i.kind) } dd { (i.value) }
                            }
                        }
                    }
                    h3 { "Conversations" }
                    ol.timeline {
                        @for item in past["items"].as_array().into_iter().flatten() {
                            @let cid = item["id"].as_str().unwrap_or_default();
                            li .current[cid == id] {
                                a href=(format!("/c/{cid}")) { (item["channel_id"].as_str().unwrap_or_default()) } " "
                                (item["status"].as_str().unwrap_or_default()) " · ticket "
                                (item["ticket"]["status"].as_str().unwrap_or_default()) " · "
                                (item["last_message_at"].as_str().unwrap_or_default().get(..16).unwrap_or_default())
                            }
                        }
                    }
                    h3 { "Merge" }
                    (layout::error(refused_in("merge").map(|r| r.message.as_str())))
                    form.stack method="post" action=(format!("/contacts/{contact_id}/merge")) {
                        (layout::csrf(console))
                        input type="hidden" name="back" value=(back);
                        input type="text" name="from" placeholder="ctc_… (the duplicate)" aria-label="Contact to merge into this one" value=(value("merge", "from"));
                        button type="submit" { "Merge into this contact" }
                    }
                }
            }
        }
    };
    let status = if refused.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        layout::page(&title, console, None, Some(live_after), body),
    )
        .into_response())
}

/// A property value as a form shows it: text as itself, anything else as JSON.
fn show_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

/// A message's text on one line, for the reply-to picker.
fn preview(m: &Message) -> String {
    let text: String = m
        .parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => t.text.clone(),
            Part::Image(_) => "[image]".into(),
            Part::Video(_) => "[video]".into(),
            Part::Audio(_) => "[audio]".into(),
            Part::VoiceNote(_) => "[voice note]".into(),
            Part::Sticker(_) => "[sticker]".into(),
            Part::File(_) => "[file]".into(),
            Part::Location(_) => "[location]".into(),
            Part::Contact(_) => "[contact]".into(),
            Part::Unsupported(u) => format!("[{}]", u.platform_type),
        })
        .collect::<Vec<_>>()
        .join(" ");
    let line = text.replace('\n', " ");
    if line.chars().count() > 60 {
        format!("{}…", line.chars().take(60).collect::<String>())
    } else {
        line
    }
}

fn message(
    m: &Message,
    jobs: &HashMap<String, (String, String)>,
    is_admin: bool,
    console: &Console,
    back: &str,
) -> Markup {
    let mid = m.id.to_string();
    let class = match (m.kind, m.direction) {
        (MessageKind::Comment, _) => "comment",
        (_, Direction::Inbound) => "inbound",
        (_, Direction::Outbound) => "outbound",
        (_, Direction::Internal) => "comment",
    };
    let delivery = json(&m.delivery);
    let status = delivery["status"].as_str().unwrap_or_default().to_owned();
    html! {
        li.msg.(class).retracted[m.retracted_at.is_some()] id=(format!("m-{mid}")) data-id=(mid) {
            div.msg-head {
                strong { (m.sender.id) }
                @if class == "comment" { " " span.tag.internal { "internal comment" } }
                " " (layout::time(&m.created_at))
                @if let Some(r) = &m.reply_to { " " a.quote href=(format!("#m-{r}")) { "↩ in reply" } }
                @if m.edited_at.is_some() { " " span.tag.edited { "edited" } }
                @if m.kind == MessageKind::Message {
                    " " a.reply-to href=(format!("?reply_to={mid}#reply-text")) data-reply-to=(mid) { "Reply to this" }
                }
            }
            @if let Some(at) = &m.retracted_at {
                p.retracted-note { "Retracted by the sender at " (layout::time(at)) "." }
            }
            div.parts {
                @for (n, part) in m.parts.iter().enumerate() { (render_part(&mid, n, part, &m.mentions)) }
            }
            @if !m.history.is_empty() {
                details.earlier {
                    summary { "Earlier versions (" (m.history.len()) ")" }
                    @for rev in &m.history {
                        div.revision {
                            "Until " (layout::time(&rev.replaced_at)) ": "
                            @for p in &rev.parts { @if let Part::Text(t) = p { span { (t.text) } } }
                        }
                    }
                }
            }
            @if m.direction == Direction::Outbound && m.kind == MessageKind::Message {
                div.delivery {
                    span class=(format!("status status-{status}")) data-delivery=(status) { (status) }
                    @if let Some(error) = &m.delivery.error { " " span.delivery-error { (error) } }
                    @if let Some(note) = &m.delivery.note { " " span.note { (note) } }
                    @if is_admin {
                        @if let Some((job, _)) = jobs.get(&mid) {
                            form.inline method="post" action=(format!("/deliveries/{job}/retry")) {
                                (layout::csrf(console))
                                input type="hidden" name="back" value=(back);
                                button type="submit" { "Retry" }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn render_part(mid: &str, n: usize, part: &Part, mentions: &[String]) -> Markup {
    let src = format!("/console/media/{mid}/{n}");
    html! {
        @match part {
            Part::Text(t) => p.text { (with_mentions(&t.text, mentions)) },
            Part::Image(p) | Part::Sticker(p) => figure {
                img src=(src) alt=(p.caption.as_deref().or(p.media.filename.as_deref()).unwrap_or("image")) loading="lazy";
                @if let Some(c) = &p.caption { figcaption { (c) } }
            },
            Part::Video(p) => figure {
                video controls preload="none" src=(src) {}
                @if let Some(c) = &p.caption { figcaption { (c) } }
            },
            Part::Audio(p) | Part::VoiceNote(p) => figure {
                audio controls preload="none" src=(src) {}
                @if let Some(d) = p.media.duration_s { " " (format!("{d:.0} s")) }
                @if let Some(c) = &p.caption { figcaption { (c) } }
            },
            Part::File(p) => p.file {
                a href=(src) download=(p.media.filename.as_deref().unwrap_or("file")) { "📎 " (p.media.filename.as_deref().unwrap_or("file")) }
                @if let Some(size) = p.media.size_bytes { " (" (size) " bytes)" }
                @if let Some(c) = &p.caption { " — " (c) }
            },
            Part::Location(l) => p.location {
                "📍 " (l.name.as_deref().unwrap_or("Location")) " "
                @if let Some(a) = &l.address { (a) " " }
                code { (format!("{:.6}, {:.6}", l.latitude, l.longitude)) } " "
                a href=(format!("https://www.openstreetmap.org/?mlat={}&mlon={}#map=16/{}/{}", l.latitude, l.longitude, l.latitude, l.longitude)) rel="noopener noreferrer" target="_blank" { "map" }
            },
            Part::Contact(c) => div.card.contact-part {
                strong { (c.name.as_deref().unwrap_or("Contact")) }
                @for p in &c.phones { br; "☎ " (p) }
                @for e in &c.emails { br; "✉ " (e) }
            },
            Part::Unsupported(u) => p.unsupported { "Unsupported message type: " code { (u.platform_type) } },
        }
    }
}

/// Text with each `@rep` that is one of `mentions` marked.
fn with_mentions(text: &str, mentions: &[String]) -> Markup {
    if mentions.is_empty() {
        return html! { (text) };
    }
    html! {
        @for (i, word) in text.split(' ').enumerate() {
            @if i > 0 { " " }
            @let bare = word.trim_start_matches('@').trim_end_matches(|c: char| !c.is_alphanumeric() && c != '_' && c != '-');
            @if word.starts_with('@') && mentions.iter().any(|m| m.eq_ignore_ascii_case(bare)) {
                mark.mention { (word) }
            } @else { (word) }
        }
    }
}

/// Runs an API call for a form: on success back to the conversation, on a 4xx the page
/// again with the refusal in place.
async fn answer<T>(
    state: &AppState,
    console: &Console,
    conversation: &str,
    form_name: &'static str,
    fields: Fields,
    result: Result<T, ApiError>,
    to: String,
) -> Result<Response, PageError> {
    match result {
        Ok(_) => Ok(Redirect::to(&to).into_response()),
        Err(e)
            if matches!(
                e.status,
                StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT | StatusCode::FORBIDDEN
            ) && !conversation.is_empty() =>
        {
            let refused = Refused {
                form: form_name,
                message: e.message,
                fields,
            };
            let mut response = render(state, console, conversation, Some(refused), None).await?;
            *response.status_mut() = e.status;
            Ok(response)
        }
        Err(e) => Err(e.into()),
    }
}

fn body<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::unprocessable(e.to_string()))
}

/// The reply request the reply box makes: the API's `POST …/messages` body.
pub fn reply_request(form: &Fields) -> Value {
    let mut parts = Vec::new();
    if let Some(text) = form.get("text") {
        parts.push(j!({"type": "text", "text": text}));
    }
    if let Some(url) = form.get("attach_url") {
        // Only the media part kinds a file can be sent as; anything else is a file.
        let kind = form
            .get("attach_type")
            .filter(|k| ["image", "video", "audio"].contains(k))
            .unwrap_or("file");
        // An upload's name and type, as the reply box recorded them (console.js).
        let filename = form.get("attach_name");
        let mime_type = form.get("attach_mime");
        parts.push(
            j!({"type": kind, "media": {"url": url, "filename": filename, "mime_type": mime_type}}),
        );
    }
    let mut request = Map::new();
    if !parts.is_empty() {
        request.insert("parts".into(), Value::Array(parts));
    }
    for name in ["snippet_id", "reply_to", "via_channel", "ticket_status"] {
        if let Some(v) = form.get(name) {
            request.insert(name.into(), Value::String(v.to_owned()));
        }
    }
    // Only the properties the chosen status asks for are sent with it.
    if form.get("ticket_status").is_some() {
        let properties: Map<String, Value> = form
            .prefixed("prop.")
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
            .collect();
        if !properties.is_empty() {
            request.insert("ticket_properties".into(), Value::Object(properties));
        }
    }
    Value::Object(request)
}

/// `POST /console/uploads`: the reply box's file, uploaded as soon as it is chosen, with
/// the session's CSRF token in a header. Answers the API's JSON (errors too), which
/// console.js puts into the reply's hidden attachment fields.
pub async fn upload(
    State(state): State<AppState>,
    console: Console,
    RawQuery(query): RawQuery,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    console.check_csrf_header(&headers)?;
    api::uploads::create(
        State(state),
        console.caller.clone(),
        RawQuery(query),
        headers,
        body,
    )
    .await
    .map(IntoResponse::into_response)
}

/// `POST /c/{id}/reply`.
pub async fn reply(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<Fields>,
) -> Result<Response, PageError> {
    console.check_csrf(&form)?;
    let result = match body(reply_request(&form)) {
        Ok(request) => api::conversations::reply(
            State(state.clone()),
            console.caller.clone(),
            Path(id.clone()),
            api::JsonBody(request),
        )
        .await
        .map(|(_, reply)| reply.0.message.id.to_string()),
        Err(e) => Err(e),
    };
    let to = match &result {
        Ok(m) => format!("/c/{id}#m-{m}"),
        Err(_) => format!("/c/{id}"),
    };
    answer(&state, &console, &id, "reply", form, result, to).await
}

/// `POST /c/{id}/comment`.
pub async fn comment(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<Fields>,
) -> Result<Response, PageError> {
    console.check_csrf(&form)?;
    let result = match body(j!({"text": form.get("text").unwrap_or_default()})) {
        Ok(request) => api::comments::create(
            State(state.clone()),
            console.caller.clone(),
            Path(id.clone()),
            api::JsonBody(request),
        )
        .await
        .map(|_| ()),
        Err(e) => Err(e),
    };
    answer(
        &state,
        &console,
        &id,
        "comment",
        form,
        result,
        format!("/c/{id}#reply"),
    )
    .await
}

/// An owner field: blank keeps, `none` clears, anything else names a rep.
fn owner(form: &Fields, request: &mut Map<String, Value>) {
    match form.get("owner_id") {
        None => {}
        Some("none") => {
            request.insert("owner_id".into(), Value::Null);
        }
        Some(rep) => {
            request.insert("owner_id".into(), Value::String(rep.to_owned()));
        }
    }
}

/// `POST /c/{id}/update`: owner and status of the conversation.
pub async fn update(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<Fields>,
) -> Result<Response, PageError> {
    console.check_csrf(&form)?;
    let mut request = Map::new();
    owner(&form, &mut request);
    if let Some(status) = form.get("status") {
        request.insert("status".into(), Value::String(status.to_owned()));
    }
    let result = match body(Value::Object(request)) {
        Ok(request) => api::conversations::update(
            State(state.clone()),
            console.caller.clone(),
            Path(id.clone()),
            api::JsonBody(request),
        )
        .await
        .map(|_| ()),
        Err(e) => Err(e),
    };
    answer(
        &state,
        &console,
        &id,
        "conversation",
        form,
        result,
        format!("/c/{id}"),
    )
    .await
}

/// The conversation a sidebar form came from (`back` = `/c/{id}`).
fn back_conversation(form: &Fields) -> String {
    form.get("back")
        .and_then(|b| b.strip_prefix("/c/"))
        .filter(|c| c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .unwrap_or_default()
        .to_owned()
}

/// `POST /t/{id}/update`: the ticket's status, owner and properties.
pub async fn update_ticket(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<Fields>,
) -> Result<Response, PageError> {
    console.check_csrf(&form)?;
    let mut request = Map::new();
    owner(&form, &mut request);
    if let Some(status) = form.get("status") {
        request.insert("status".into(), Value::String(status.to_owned()));
    }
    match form.get("priority") {
        None => {}
        Some("none") => {
            request.insert("priority".into(), Value::Null);
        }
        Some(p) => {
            request.insert("priority".into(), Value::String(p.to_owned()));
        }
    }
    if let Some(reason) = form.get("reason") {
        request.insert("reason".into(), Value::String(reason.to_owned()));
    }
    let mut properties: Map<String, Value> = Map::new();
    // Every shown property is sent back; a cleared one is removed.
    for (k, v) in form
        .0
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("prop.").map(|k| (k, v)))
    {
        let value = if v.trim().is_empty() {
            Value::Null
        } else {
            Value::String(v.clone())
        };
        properties.insert(k.to_owned(), value);
    }
    if let (Some(k), Some(v)) = (form.get("new_key"), form.get("new_value")) {
        properties.insert(k.trim().to_owned(), Value::String(v.to_owned()));
    }
    if !properties.is_empty() {
        request.insert("properties".into(), Value::Object(properties));
    }
    let result = match body(Value::Object(request)) {
        Ok(request) => api::tickets::update(
            State(state.clone()),
            console.caller.clone(),
            Path(id.clone()),
            api::JsonBody(request),
        )
        .await
        .map(|_| ()),
        Err(e) => Err(e),
    };
    let conversation = back_conversation(&form);
    let to = super::local_path(form.get("back"), "/inbox");
    answer(&state, &console, &conversation, "ticket", form, result, to).await
}

/// `POST /contacts/{id}/merge`: another contact (the duplicate) into this one.
pub async fn merge(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<Fields>,
) -> Result<Response, PageError> {
    console.check_csrf(&form)?;
    let result = match body(j!({"from": form.get("from").unwrap_or_default()})) {
        Ok(request) => api::contacts::merge(
            State(state.clone()),
            console.caller.clone(),
            Path(id.clone()),
            api::JsonBody(request),
        )
        .await
        .map(|_| ()),
        Err(e) => Err(e),
    };
    let conversation = back_conversation(&form);
    let to = super::local_path(form.get("back"), "/inbox");
    answer(&state, &console, &conversation, "merge", form, result, to).await
}

/// `GET /console/media/{id}/{n}`: a part's file through the API's media endpoint (an
/// `<img>` cannot send a bearer token).
pub async fn media(
    State(state): State<AppState>,
    console: Console,
    Path((id, n)): Path<(String, String)>,
) -> Result<Response, PageError> {
    Ok(api::media::fetch(State(state), console.caller, Ok(Path((id, n)))).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Fields {
        Fields(
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        )
    }

    #[test]
    fn a_reply_to_a_chosen_message_with_a_status_carries_its_properties() {
        let request = reply_request(&form(&[
            ("_csrf", "x"),
            ("text", "Refunded."),
            ("reply_to", "msg_1"),
            ("ticket_status", "refunded"),
            ("prop.order_id", "A-7"),
            ("via_channel", ""),
        ]));
        assert_eq!(
            request,
            j!({
                "parts": [{"type": "text", "text": "Refunded."}],
                "reply_to": "msg_1",
                "ticket_status": "refunded",
                "ticket_properties": {"order_id": "A-7"},
            })
        );
    }

    #[test]
    fn properties_are_not_sent_without_a_status() {
        let request = reply_request(&form(&[("text", "hi"), ("prop.order_id", "A-7")]));
        assert_eq!(request, j!({"parts": [{"type": "text", "text": "hi"}]}));
    }

    #[test]
    fn an_attachment_is_a_media_part_by_its_uploads_url_name_and_type() {
        let request = reply_request(&form(&[
            ("attach_url", "https://desk.example/media/uploads/ab12"),
            ("attach_type", "image"),
            ("attach_name", "photo.png"),
            ("attach_mime", "image/png"),
        ]));
        assert_eq!(
            request["parts"][0],
            j!({"type": "image", "media": {"url": "https://desk.example/media/uploads/ab12",
                "filename": "photo.png", "mime_type": "image/png"}})
        );
        let request = reply_request(&form(&[
            ("attach_url", "https://desk.example/media/uploads/cd34"),
            ("attach_type", "program"),
        ]));
        assert_eq!(
            request["parts"][0]["type"], "file",
            "an unknown kind is sent as a file"
        );
    }

    #[test]
    fn mentions_are_marked_and_markup_stays_text() {
        let html = with_mentions("ask @Bob about <b>", &["bob".into()]).into_string();
        assert!(
            html.contains("<mark class=\"mention\">@Bob</mark>"),
            "{html}"
        );
        assert!(html.contains("&lt;b&gt;"), "{html}");
    }
}
