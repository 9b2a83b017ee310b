//! Conversations and their messages: list, show, reply.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

use super::openapi::{AdminOnly, JsonBodyErrors, StoreErrors, Unauthorized};
use super::{Caller, JsonBody, Paging, access, given, query};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::model::{Conversation, ConversationId, ConversationStatus, Message, MessageId, Part};
use crate::store::{ConversationFilter, ConversationUpdate, NewReply, Page, TicketChange, Trashed};
use crate::telemetry;

/// The conversation list's filters; they combine with AND. Read as text (see [`Paging`]),
/// documented as what they must parse to. A filter that names nothing (a channel, rep,
/// inbox or ticket status the config does not have, or an empty value) is refused with
/// 422 naming it, never answered with an unfiltered or an empty list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only conversations of this channel: one of the caller's configured channels.
    #[param(min_length = 1)]
    channel: Option<String>,
    /// Only conversations of this inbox's channels (one of the caller's inboxes).
    #[param(min_length = 1)]
    inbox: Option<String>,
    /// Only open or only closed conversations.
    #[param(value_type = Option<ConversationStatus>)]
    status: Option<String>,
    /// Only conversations this rep (a `[[reps]]` id) owns, or `none` for those nobody owns.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    owner: Option<String>,
    /// Only conversations whose ticket has this status (a status of a configured pipeline).
    #[param(min_length = 1)]
    ticket_status: Option<String>,
    /// `true`: only conversations nobody owns (the same as `owner=none`).
    #[param(value_type = Option<bool>)]
    unassigned: Option<String>,
    /// Only conversations active at or after this time (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    from: Option<String>,
    /// Only conversations active before this time (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    to: Option<String>,
    /// Full-text search over message text and captions; empty matches everything.
    q: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    paging: Paging,
}

/// Lists conversations, the most recently active first.
#[utoipa::path(
    get,
    path = "/api/v1/conversations",
    operation_id = "list_conversations",
    tag = "conversations",
    security(("bearer" = [])),
    params(ListQuery, Paging),
    responses(
        (status = 200, description = "One page of conversations.", body = Page<Conversation>),
        (status = 422, description = "A parameter this operation does not take, or a filter \
            or paging value that does not fit or names nothing configured: an unknown \
            channel, inbox, rep or ticket status (`invalid_request`, naming it).",
            body = ErrorBody),
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<Conversation>>, ApiError> {
    let q: ListQuery = query(raw.as_deref())?;
    let runtime = state.runtime.load_full();
    let scope = match given("inbox", q.inbox)? {
        None => caller.scope.clone(),
        Some(inbox) => {
            let found = crate::desk::inboxes::inboxes_of(
                &runtime.config,
                caller.role,
                caller.rep.as_deref(),
            )
            .into_iter()
            .find(|i| i.id == inbox)
            .ok_or_else(|| {
                ApiError::unprocessable(format!("inbox: no inbox {inbox:?} of yours"))
            })?;
            // One of the caller's inboxes: within what the caller sees.
            found.scope
        }
    };
    let channel = given("channel", q.channel)?;
    if let Some(channel) = &channel {
        check_channel(&runtime, &caller, "channel", channel)?;
    }
    let status = match given("status", q.status)? {
        None => None,
        Some(s) => Some(
            ConversationStatus::parse(&s)
                .ok_or_else(|| ApiError::unprocessable("status: must be open or closed"))?,
        ),
    };
    let owner = owner_filter(&runtime, q.unassigned, q.owner)?;
    let ticket_status = given("ticket_status", q.ticket_status)?;
    if let Some(wanted) = &ticket_status {
        check_ticket_status(&runtime, "ticket_status", wanted)?;
    }
    let filter = ConversationFilter {
        channel,
        scope,
        contact: None,
        status,
        owner,
        ticket_status,
        from: super::time("from", q.from.as_deref())?,
        to: super::time("to", q.to.as_deref())?,
        q: q.q.filter(|s| !s.trim().is_empty()),
    };
    let page = q.paging.page()?;
    Ok(Json(state.store.conversations(&filter, &page).await?))
}

/// A channel filter must name one of the caller's configured channels: a typo, or a
/// channel of another inbox, is an error rather than an empty list.
pub(crate) fn check_channel(
    runtime: &crate::runtime::Runtime,
    caller: &Caller,
    name: &str,
    channel: &str,
) -> Result<(), ApiError> {
    if runtime.channel(channel).is_none() || !caller.sees(channel) {
        return Err(ApiError::unprocessable(format!(
            "{name}: no channel {channel:?} of yours"
        )));
    }
    Ok(())
}

/// A rep filter must name a rep of the config.
pub(crate) fn check_rep(
    runtime: &crate::runtime::Runtime,
    name: &str,
    rep: &str,
) -> Result<(), ApiError> {
    if runtime.config.rep(rep).is_none() {
        return Err(ApiError::unprocessable(format!(
            "{name}: no rep {rep:?} in the config"
        )));
    }
    Ok(())
}

/// The owner filter of a list, from `unassigned` (`true` is `owner=none`) and `owner` (a
/// rep of the config, or `none`).
pub(crate) fn owner_filter(
    runtime: &crate::runtime::Runtime,
    unassigned: Option<String>,
    owner: Option<String>,
) -> Result<Option<String>, ApiError> {
    let owner = match given("unassigned", unassigned)?.as_deref() {
        None | Some("false") => given("owner", owner)?,
        Some("true") => Some("none".to_owned()),
        Some(_) => return Err(ApiError::unprocessable("unassigned: must be true or false")),
    };
    if let Some(owner) = owner.as_deref().filter(|o| *o != "none") {
        check_rep(runtime, "owner", owner)?;
    }
    Ok(owner)
}

/// A ticket status filter must name a status of a configured pipeline.
pub(crate) fn check_ticket_status(
    runtime: &crate::runtime::Runtime,
    name: &str,
    wanted: &str,
) -> Result<(), ApiError> {
    let known = runtime
        .config
        .pipelines
        .values()
        .flat_map(|p| &p.statuses)
        .any(|s| s.id == wanted);
    if !known {
        return Err(ApiError::unprocessable(format!(
            "{name}: no pipeline has a status {wanted:?}"
        )));
    }
    Ok(())
}

fn conversation_id(raw: &str) -> Result<ConversationId, ApiError> {
    ConversationId::parse(raw).ok_or_else(|| ApiError::not_found("conversation"))
}

/// One conversation with its contact, ticket id, owner and status.
#[utoipa::path(
    get,
    path = "/api/v1/conversations/{id}",
    operation_id = "get_conversation",
    tag = "conversations",
    security(("bearer" = [])),
    params(("id" = ConversationId, Path, description = "The conversation.")),
    responses(
        (status = 200, description = "The conversation.", body = Conversation),
        (status = 404, description = "No such conversation (`not_found`).", body = ErrorBody),
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, ApiError> {
    let id = conversation_id(&id)?;
    Ok(Json(access::conversation(&state, &caller, &id).await?))
}

/// A conversation's messages and internal comments (`"type": "comment"`), oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/conversations/{id}/messages",
    operation_id = "list_messages",
    tag = "conversations",
    security(("bearer" = [])),
    params(("id" = ConversationId, Path, description = "The conversation."), Paging),
    responses(
        (status = 200, description = "One page of messages.", body = Page<Message>),
        (status = 404, description = "No such conversation (`not_found`).", body = ErrorBody),
        (status = 422, description = "A paging parameter does not fit (`invalid_request`).",
            body = ErrorBody),
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<Message>>, ApiError> {
    let id = conversation_id(&id)?;
    let paging: Paging = query(raw.as_deref())?;
    access::conversation(&state, &caller, &id).await?;
    Ok(Json(state.store.messages(&id, &paging.page()?).await?))
}

/// A rep's reply, optionally moving the ticket in the same request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"parts": [{"type": "text", "text": "Your order ships today."}]}))]
pub struct ReplyRequest {
    /// What to send, in order; `unsupported` parts cannot be sent. Required unless
    /// `snippet_id` is given.
    // Read as JSON first, so that a bad part is reported with its path.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Part>>, min_items = 1)]
    parts: Option<Value>,
    /// Send this snippet instead of `parts`, its placeholders filled from the contact,
    /// the rep and the ticket: the rendered text is what is stored and sent.
    #[serde(default)]
    snippet_id: Option<String>,
    /// The message this quotes, if the rep chose one: the platform shows the reply as a
    /// quote of it where it can. Without it the reply quotes nothing.
    #[serde(default)]
    #[schema(value_type = Option<MessageId>)]
    reply_to: Option<String>,
    /// Moves the conversation's ticket to this status with the reply, or refuses both.
    #[serde(default)]
    ticket_status: Option<String>,
    /// Merged into the ticket's properties with the reply; `null` removes a key.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    ticket_properties: Option<Map<String, Value>>,
    /// Send through another channel of the same contact instead (an `email` channel, to
    /// the contact's email); the conversation there joins the same ticket.
    #[serde(default)]
    via_channel: Option<String>,
}

/// Replies to the contact. The message is stored with its delivery job and sent in the
/// background: watch its `delivery.status`. While the outbox is behind on the reply's
/// channel, the answer waits for it to catch up, for up to `delivery.pace_max_wait_ms`.
#[utoipa::path(
    post,
    path = "/api/v1/conversations/{id}/messages",
    operation_id = "reply",
    tag = "conversations",
    security(("bearer" = [])),
    params(("id" = ConversationId, Path, description = "The conversation.")),
    request_body = ReplyRequest,
    responses(
        (status = 202, description = "Stored and queued for delivery; \
            `waiting_for_channel` is true when its channel is disabled or removed.",
            body = AcceptedReply),
        (status = 404, description = "No such conversation (`not_found`).", body = ErrorBody),
        JsonBodyErrors,
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn reply(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<ReplyRequest>,
) -> Result<(StatusCode, Json<AcceptedReply>), ApiError> {
    let conversation_id = conversation_id(&id)?;
    let conversation = access::conversation(&state, &caller, &conversation_id).await?;
    let parts = match (&request.parts, request.snippet_id.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(
                "snippet_id: give parts or snippet_id, not both",
            ));
        }
        (None, None) => return Err(ApiError::unprocessable("parts: is required")),
        (Some(parts), None) => {
            Part::parse_list(parts, "parts").map_err(|e| ApiError::unprocessable(e.to_string()))?
        }
        (None, Some(snippet)) => {
            let text = super::snippets::render_for(&state, &caller, snippet, &conversation).await?;
            vec![Part::Text(crate::model::TextPart { text })]
        }
    };
    if let Some(i) = parts.iter().position(|p| matches!(p, Part::Unsupported(_))) {
        return Err(ApiError::unprocessable(format!(
            "parts[{i}].type: not a part type that can be sent"
        )));
    }
    let reply_to = match request.reply_to.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(MessageId::parse(raw).ok_or_else(|| {
            ApiError::unprocessable(format!("reply_to: {raw:?} is not a message id"))
        })?),
    };
    // An owned snapshot, not a guard: the request may wait for the outbox while it holds it.
    let runtime = state.runtime.load_full();
    let first_delay = runtime.first_delay();
    let via = match request.via_channel.as_deref() {
        None | Some("") => None,
        Some(id) => {
            let requested = crate::desk::replies::Requested {
                id,
                kind: runtime.channel(id).map(|c| c.config.adapter.kind()),
                visible: caller.sees(id),
            };
            let via = crate::desk::replies::via(requested, conversation.contact.email.as_deref())
                .map_err(|refused| ApiError::unprocessable(refused.to_string()))?;
            Some(via)
        }
    };
    let ticket_change = match (request.ticket_status, request.ticket_properties) {
        (None, None) => None,
        (status, properties) => Some(TicketChange {
            status,
            owner_id: None,
            priority: None,
            properties,
            pipelines: Arc::new(runtime.config.pipelines.clone()),
        }),
    };
    // Backpressure: while the outbox is behind on this channel, the reply waits for it.
    let channel = via
        .as_ref()
        .map_or(conversation.channel_id.as_str(), |via| {
            via.channel_id.as_str()
        });
    let pacing = &runtime.config.delivery;
    let paced = state
        .pacer
        .admit(
            channel,
            Duration::from_millis(pacing.pace_target_ms),
            Duration::from_millis(pacing.pace_max_wait_ms),
        )
        .await;
    telemetry::reply_paced(channel, paced);
    let message = state
        .store
        .create_reply(NewReply {
            conversation_id,
            parts,
            reply_to,
            sender: caller.sender(),
            run_at: Utc::now() + first_delay,
            ticket_change,
            via,
        })
        .await?;
    state.wake.notify_one();
    let waiting_for_channel = runtime
        .channel(&message.channel_id)
        .is_none_or(|channel| !channel.config.enabled);
    Ok((
        StatusCode::ACCEPTED,
        Json(AcceptedReply {
            message,
            waiting_for_channel,
        }),
    ))
}

/// A stored reply, and whether it waits for its channel.
#[derive(Serialize, ToSchema)]
pub struct AcceptedReply {
    #[serde(flatten)]
    pub message: Message,
    /// True when the reply's channel is disabled or no longer configured: the reply is
    /// kept and sent once the channel is enabled (or added back).
    pub waiting_for_channel: bool,
}

/// A change to a conversation: `{"owner_id": "alice" | null, "status": "open" | "closed"}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConversationUpdate)]
pub struct UpdateRequest {
    /// A rep id (`[[reps]]`; the ticket's owner follows), or `null` to unassign; leave out
    /// to keep. The rep must work an inbox of the conversation's channel.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    owner_id: Option<Option<String>>,
    /// Closing closes only this conversation; its ticket stays as it is.
    #[serde(default)]
    status: Option<ConversationStatus>,
}

/// Changes a conversation's owner or status.
#[utoipa::path(
    patch,
    path = "/api/v1/conversations/{id}",
    operation_id = "update_conversation",
    tag = "conversations",
    security(("bearer" = [])),
    params(("id" = ConversationId, Path, description = "The conversation.")),
    request_body = UpdateRequest,
    responses(
        (status = 200, description = "The conversation as it is now.", body = Conversation),
        (status = 404, description = "No such conversation (`not_found`).", body = ErrorBody),
        (status = 409, description = "It cannot reopen: the contact has another open \
            conversation on that channel (`conflict`).", body = ErrorBody),
        JsonBodyErrors,
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<UpdateRequest>,
) -> Result<Json<Conversation>, ApiError> {
    let id = conversation_id(&id)?;
    let conversation = access::conversation(&state, &caller, &id).await?;
    if let Some(Some(owner)) = &request.owner_id {
        let runtime = state.runtime.load();
        if !runtime.config.reps.iter().any(|r| &r.id == owner) {
            return Err(ApiError::unprocessable(format!(
                "owner_id: no rep {owner:?} in the config"
            )));
        }
        if !crate::desk::inboxes::rep_works_channel(
            &runtime.config,
            owner,
            &conversation.channel_id,
        ) {
            return Err(ApiError::unprocessable(format!(
                "owner_id: rep {owner:?} does not work an inbox of channel {:?}, so could not \
                 see this conversation",
                conversation.channel_id
            )));
        }
    }
    let update = ConversationUpdate {
        owner_id: request.owner_id,
        status: request.status,
    };
    state
        .store
        .update_conversation(&id, update, &caller.actor())
        .await?;
    // Closing or handing over a conversation frees its owner's capacity.
    let assigned = state
        .store
        .backfill(state.runtime.load().all_rules())
        .await?;
    crate::telemetry::backfilled(assigned);
    Ok(Json(state.store.conversation(&id).await?))
}

/// Moves the conversation (with its ticket and the ticket's other conversations) to the
/// trash. Admins only. Their replies still queued for delivery are not cancelled: the
/// answer says how many, and so does the ticket's history.
#[utoipa::path(
    delete,
    path = "/api/v1/conversations/{id}",
    operation_id = "delete_conversation",
    tag = "conversations",
    security(("bearer" = [])),
    params(("id" = ConversationId, Path, description = "The conversation.")),
    responses(
        (status = 200, description = "In the trash, with its ticket: what went there.",
            body = Trashed),
        (status = 404, description = "No such conversation (`not_found`).", body = ErrorBody),
        AdminOnly,
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Trashed>, ApiError> {
    caller.require_admin()?;
    let id = conversation_id(&id)?;
    access::conversation(&state, &caller, &id).await?;
    Ok(Json(
        state
            .store
            .delete_conversation(&id, &caller.actor())
            .await?,
    ))
}
