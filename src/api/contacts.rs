//! Contacts: who is on the other side, with their identifiers on every channel, owner and
//! email; their conversations across channels (the timeline a rep reads before
//! answering); creating a contact for a new sender and merging two that are one person.

use std::collections::{HashMap, HashSet};

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::openapi::{JsonBodyErrors, StoreErrors, Unauthorized};
use super::{Caller, JsonBody, Paging, access, query};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::model::{ChannelIdentifier, Contact, ContactId, Conversation, Ticket, TicketId};
use crate::store::{AuditEntry, ContactUpdate, ConversationFilter, NewContact, Page};

fn contact_id(raw: &str) -> Result<ContactId, ApiError> {
    ContactId::parse(raw).ok_or_else(|| ApiError::not_found("contact"))
}

fn check_owner(state: &AppState, field: &str, owner: &str) -> Result<(), ApiError> {
    if state.runtime.load().config.rep(owner).is_none() {
        return Err(ApiError::unprocessable(format!(
            "{field}: no rep {owner:?} in the config"
        )));
    }
    Ok(())
}

fn check_email(field: &str, email: &str) -> Result<(), ApiError> {
    if !email.contains('@') {
        return Err(ApiError::unprocessable(format!(
            "{field}: {email:?} is not an email address"
        )));
    }
    Ok(())
}

/// One contact with the identifiers that reach them on each channel.
#[utoipa::path(
    get,
    path = "/api/v1/contacts/{id}",
    operation_id = "get_contact",
    tag = "contacts",
    security(("bearer" = [])),
    params(("id" = ContactId, Path, description = "The contact.")),
    responses(
        (status = 200, description = "The contact.", body = Contact),
        (status = 404, description = "No such contact (`not_found`), or it was merged into \
            another (`contact_merged`, naming it).", body = ErrorBody),
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Contact>, ApiError> {
    Ok(Json(
        access::contact(&state, &caller, &contact_id(&id)?).await?,
    ))
}

/// `{"owner_id"?: "alice" | null, "email"?: "…" | null}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ContactUpdate)]
pub struct UpdateRequest {
    /// A rep id (`[[reps]]`), or `null` to clear; leave out to keep.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    owner_id: Option<Option<String>>,
    /// An email address, or `null` to clear; leave out to keep.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>, format = Email)]
    email: Option<Option<String>>,
}

/// Changes a contact's owner or email.
#[utoipa::path(
    patch,
    path = "/api/v1/contacts/{id}",
    operation_id = "update_contact",
    tag = "contacts",
    security(("bearer" = [])),
    params(("id" = ContactId, Path, description = "The contact.")),
    request_body = UpdateRequest,
    responses(
        (status = 200, description = "The contact as it is now.", body = Contact),
        (status = 404, description = "No such contact (`not_found`, `contact_merged`).",
            body = ErrorBody),
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
) -> Result<Json<Contact>, ApiError> {
    let id = contact_id(&id)?;
    access::contact(&state, &caller, &id).await?;
    if let Some(Some(owner)) = &request.owner_id {
        check_owner(&state, "owner_id", owner)?;
    }
    if let Some(Some(email)) = &request.email {
        check_email("email", email)?;
    }
    let update = ContactUpdate {
        owner_id: request.owner_id,
        email: request.email,
    };
    Ok(Json(state.store.update_contact(&id, update).await?))
}

/// How a new contact is reached on one channel.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIdentifier {
    /// A channel of the caller's inboxes.
    channel_id: String,
    /// The channel's identifier type (`telegram_user`, `whatsapp_user`, `app_user`, …);
    /// leave out for the channel's usual one.
    #[serde(rename = "type", default)]
    kind: Option<String>,
    /// The platform's id of the person (a Telegram user id, a phone number, your app's
    /// user id); not blank.
    #[schema(min_length = 1, pattern = r"\S")]
    value: String,
}

/// `{"display_name"?, "email"?, "owner_id"?, "identifiers": [{"channel_id", "type"?, "value"}]}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"display_name": "Ana", "identifiers": [{"channel_id": "tg", "value": "5550123"}]}))]
pub struct CreateRequest {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    #[schema(format = Email)]
    email: Option<String>,
    /// A rep id (`[[reps]]`).
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    owner_id: Option<String>,
    /// At least one; one per channel.
    #[schema(min_items = 1)]
    identifiers: Vec<NewIdentifier>,
}

/// Creates a contact for a sender not seen yet; their messages then join this contact.
#[utoipa::path(
    post,
    path = "/api/v1/contacts",
    operation_id = "create_contact",
    tag = "contacts",
    security(("bearer" = [])),
    request_body = CreateRequest,
    responses(
        (status = 201, description = "Created.", body = Contact),
        (status = 409, description = "An identifier already belongs to another contact \
            (`conflict`, naming it): merge instead.", body = ErrorBody),
        JsonBodyErrors,
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<CreateRequest>,
) -> Result<(StatusCode, Json<Contact>), ApiError> {
    if request.identifiers.is_empty() {
        return Err(ApiError::unprocessable(
            "identifiers: give at least one; a contact is reached through them",
        ));
    }
    if let Some(owner) = &request.owner_id {
        check_owner(&state, "owner_id", owner)?;
    }
    if let Some(email) = &request.email {
        check_email("email", email)?;
    }
    let runtime = state.runtime.load_full();
    let mut seen = HashSet::new();
    let mut identifiers = Vec::new();
    for (i, identifier) in request.identifiers.into_iter().enumerate() {
        let at = format!("identifiers[{i}]");
        let channel = runtime
            .channel(&identifier.channel_id)
            .filter(|_| caller.sees(&identifier.channel_id))
            .ok_or_else(|| {
                ApiError::unprocessable(format!(
                    "{at}.channel_id: no channel {:?}",
                    identifier.channel_id
                ))
            })?;
        if !seen.insert(identifier.channel_id.clone()) {
            return Err(ApiError::unprocessable(format!(
                "{at}.channel_id: one identifier per channel"
            )));
        }
        let types = channel.config.adapter.identifier_types();
        let kind = match identifier.kind {
            None => types[0].to_owned(),
            Some(kind) if types.contains(&kind.as_str()) => kind,
            Some(kind) => {
                return Err(ApiError::unprocessable(format!(
                    "{at}.type: a {} channel knows contacts as {}, not {kind:?}",
                    channel.config.adapter.kind(),
                    types.join(" or ")
                )));
            }
        };
        let value = identifier.value.trim().to_owned();
        if value.is_empty() {
            return Err(ApiError::unprocessable(format!(
                "{at}.value: must not be empty"
            )));
        }
        if kind == crate::adapters::email::IDENTIFIER_TYPE {
            check_email(&format!("{at}.value"), &value)?;
        }
        identifiers.push(ChannelIdentifier {
            channel_id: identifier.channel_id,
            kind,
            value,
        });
    }
    let contact = state
        .store
        .create_contact(
            NewContact {
                display_name: request.display_name.filter(|n| !n.trim().is_empty()),
                email: request.email,
                owner_id: request.owner_id,
                identifiers,
            },
            &caller.actor(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(contact)))
}

/// The ticket of a conversation in a contact's timeline.
#[derive(Clone, Serialize, ToSchema)]
pub struct TicketSummary {
    id: TicketId,
    pipeline: String,
    status: String,
    priority: Option<String>,
    owner_id: Option<String>,
    closed_at: Option<DateTime<Utc>>,
}

impl From<Ticket> for TicketSummary {
    fn from(t: Ticket) -> Self {
        Self {
            id: t.id,
            pipeline: t.pipeline,
            status: t.status,
            priority: t.priority,
            owner_id: t.owner_id,
            closed_at: t.closed_at,
        }
    }
}

/// A conversation of the contact with its ticket's status.
#[derive(Serialize, ToSchema)]
pub struct ContactConversation {
    #[serde(flatten)]
    conversation: Conversation,
    ticket: TicketSummary,
}

/// The contact's past and current conversations across the caller's channels, most
/// recently active first, each with its ticket's status.
#[utoipa::path(
    get,
    path = "/api/v1/contacts/{id}/conversations",
    operation_id = "contact_conversations",
    tag = "contacts",
    security(("bearer" = [])),
    params(("id" = ContactId, Path, description = "The contact."), Paging),
    responses(
        (status = 200, description = "One page of the contact's conversations.",
            body = Page<ContactConversation>),
        (status = 404, description = "No such contact (`not_found`, `contact_merged`).",
            body = ErrorBody),
        (status = 422, description = "A paging parameter does not fit (`invalid_request`).",
            body = ErrorBody),
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn conversations(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<ContactConversation>>, ApiError> {
    let id = contact_id(&id)?;
    let paging: Paging = query(raw.as_deref())?;
    let page = paging.page()?;
    access::contact(&state, &caller, &id).await?;
    let filter = ConversationFilter {
        scope: caller.scope.clone(),
        contact: Some(id),
        ..ConversationFilter::default()
    };
    let conversations = state.store.conversations(&filter, &page).await?;
    // A ticket may hold several of the contact's conversations: read each once.
    let mut tickets: HashMap<TicketId, TicketSummary> = HashMap::new();
    let mut items = Vec::with_capacity(conversations.items.len());
    for conversation in conversations.items {
        let ticket = match tickets.get(&conversation.ticket_id) {
            Some(ticket) => ticket.clone(),
            None => {
                let ticket =
                    TicketSummary::from(state.store.ticket(&conversation.ticket_id).await?);
                tickets.insert(conversation.ticket_id.clone(), ticket.clone());
                ticket
            }
        };
        items.push(ContactConversation {
            conversation,
            ticket,
        });
    }
    Ok(Json(Page {
        items,
        next_cursor: conversations.next_cursor,
    }))
}

/// `{"from": "ctc_…"}`: the contact to merge into this one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// It goes away: its identifiers and conversations move to this contact, and its id
    /// then answers 404 `contact_merged`.
    #[schema(value_type = ContactId)]
    from: String,
}

/// Merges another contact that is the same person into this one, in one transaction:
/// identifiers and conversations move, fields this contact lacks are taken from the
/// other, and the merge is recorded in both contacts' history and the tickets' history.
#[utoipa::path(
    post,
    path = "/api/v1/contacts/{id}/merge",
    operation_id = "merge_contacts",
    tag = "contacts",
    security(("bearer" = [])),
    params(("id" = ContactId, Path, description = "The contact that stays.")),
    request_body = MergeRequest,
    responses(
        (status = 200, description = "The merged contact.", body = Contact),
        (status = 404, description = "No such contact (`not_found`, `contact_merged`).",
            body = ErrorBody),
        (status = 409, description = "Both have an identifier on the same channel \
            (`conflict`).", body = ErrorBody),
        JsonBodyErrors,
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn merge(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<MergeRequest>,
) -> Result<Json<Contact>, ApiError> {
    let into = access::contact(&state, &caller, &contact_id(&id)?).await?;
    let from = ContactId::parse(&request.from).ok_or_else(|| {
        ApiError::unprocessable(format!("from: {:?} is not a contact id", request.from))
    })?;
    if from == into.id {
        return Err(ApiError::unprocessable(
            "from: a contact cannot be merged into itself",
        ));
    }
    if let Err(e) = access::contact(&state, &caller, &from).await {
        return Err(if e.status == StatusCode::NOT_FOUND {
            ApiError::unprocessable(format!("from: {}", e.message))
        } else {
            e
        });
    }
    Ok(Json(
        state
            .store
            .merge_contacts(&into.id, &from, &caller.actor())
            .await?,
    ))
}

/// What happened to the contact outside its tickets: created here, merged.
#[utoipa::path(
    get,
    path = "/api/v1/contacts/{id}/history",
    operation_id = "contact_history",
    tag = "contacts",
    security(("bearer" = [])),
    params(("id" = ContactId, Path, description = "The contact.")),
    responses(
        (status = 200, description = "Every recorded change, oldest first; `next_cursor` is \
            null.", body = Page<AuditEntry>),
        (status = 404, description = "No such contact (`not_found`, `contact_merged`).",
            body = ErrorBody),
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    let id = contact_id(&id)?;
    access::contact(&state, &caller, &id).await?;
    Ok(Json(Page {
        items: state.store.contact_history(&id).await?,
        next_cursor: None,
    }))
}
