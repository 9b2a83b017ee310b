//! Reply snippets: those in the config (read-only) and those admins manage through the
//! API (stored, so they survive restarts). A reply names one with `snippet_id`; the
//! placeholders are filled by `desk::snippets` from the contact, the rep and the ticket.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::openapi::{AdminOnly, JsonBodyErrors, StoreErrors, Unauthorized};
use super::{AdminCaller, Caller, JsonBody};
use crate::app::AppState;
use crate::desk::snippets::{self as rules, Values};
use crate::error::{ApiError, ErrorBody};
use crate::model::Conversation;
use crate::store::{SaveMode, StoredSnippet};

/// Where a snippet is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SnippetSource {
    /// `[snippets.ID]` in the config: read-only here.
    Config,
    /// Created through the API.
    Api,
}

/// A reply snippet.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Snippet {
    pub id: String,
    /// The text with its `{{placeholders}}` (`{{contact.first_name|there}}` gives a fallback).
    pub text: String,
    pub source: SnippetSource,
    /// The placeholders the text uses.
    pub placeholders: Vec<String>,
    /// Who created it (API snippets).
    pub created_by: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Every snippet, in id order.
#[derive(Serialize, ToSchema)]
pub struct SnippetList {
    items: Vec<Snippet>,
    /// Always null: every snippet is on the one page.
    next_cursor: Option<String>,
}

fn placeholders(text: &str) -> Vec<String> {
    rules::parse(text)
        .map(|t| t.placeholders())
        .unwrap_or_default()
}

fn from_config(id: &str, text: &str) -> Snippet {
    Snippet {
        id: id.to_owned(),
        text: text.to_owned(),
        source: SnippetSource::Config,
        placeholders: placeholders(text),
        created_by: None,
        updated_at: None,
    }
}

fn from_store(stored: StoredSnippet) -> Snippet {
    Snippet {
        placeholders: placeholders(&stored.text),
        id: stored.id,
        text: stored.text,
        source: SnippetSource::Api,
        created_by: Some(stored.created_by),
        updated_at: Some(stored.updated_at),
    }
}

/// Every snippet: the config's, then the stored ones whose id the config does not use
/// (a config snippet wins over a stored one of the same id).
async fn all(state: &AppState) -> Result<Vec<Snippet>, ApiError> {
    let runtime = state.runtime.load_full();
    let mut items: Vec<Snippet> = runtime
        .config
        .snippets
        .iter()
        .map(|(id, s)| from_config(id, &s.text))
        .collect();
    for stored in state.store.snippets().await? {
        if !runtime.config.snippets.contains_key(&stored.id) {
            items.push(from_store(stored));
        }
    }
    items.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(items)
}

async fn find(state: &AppState, id: &str) -> Result<Option<Snippet>, ApiError> {
    Ok(all(state).await?.into_iter().find(|s| s.id == id))
}

/// The text of snippet `id` for a reply in `conversation` by `caller`.
pub async fn render_for(
    state: &AppState,
    caller: &Caller,
    id: &str,
    conversation: &Conversation,
) -> Result<String, ApiError> {
    let snippet = find(state, id)
        .await?
        .ok_or_else(|| ApiError::unprocessable(format!("snippet_id: no snippet {id:?}")))?;
    let fail = |e: rules::SnippetError| {
        ApiError::unprocessable(format!("snippet_id: snippet {id:?}: {e}"))
    };
    let template = rules::parse(&snippet.text).map_err(fail)?;
    let runtime = state.runtime.load();
    let rep = caller.rep.as_deref().and_then(|r| runtime.config.rep(r));
    let values = Values {
        contact_name: conversation.contact.display_name.clone(),
        contact_email: conversation.contact.email.clone(),
        rep_name: rep.and_then(|r| r.name.clone()),
        rep_email: rep.and_then(|r| r.email.clone()),
        ticket_id: Some(conversation.ticket_id.to_string()),
    };
    template.render(&values).map_err(fail)
}

fn check_text(text: &str) -> Result<(), ApiError> {
    rules::parse(text)
        .map(|_| ())
        .map_err(|e| ApiError::unprocessable(format!("text: {e}")))
}

#[utoipa::path(
    get,
    path = "/api/v1/snippets",
    operation_id = "list_snippets",
    tag = "snippets",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every snippet, from the config and created here.",
            body = SnippetList),
        Unauthorized,
        StoreErrors,
    )
)]
/// Lists the reply snippets reps can send.
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<SnippetList>, ApiError> {
    Ok(Json(SnippetList {
        items: all(&state).await?,
        next_cursor: None,
    }))
}

/// A new snippet: `{"id": "refund-done", "text": "Hi {{contact.first_name|there}}, …"}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnippet {
    /// 1 to 64 letters, digits, `-` and `_`; what replies name as `snippet_id`.
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    id: String,
    /// Not blank; every `{{placeholder}}` must be one snippets know (else 422 naming it).
    #[schema(min_length = 1, pattern = r"\S")]
    text: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/snippets",
    operation_id = "create_snippet",
    tag = "snippets",
    security(("bearer" = [])),
    request_body = CreateSnippet,
    responses(
        (status = 201, description = "Created.", body = Snippet),
        (status = 409, description = "A snippet with this id exists (`conflict`).",
            body = ErrorBody),
        JsonBodyErrors,
        AdminOnly,
        Unauthorized,
        StoreErrors,
    )
)]
/// Creates a snippet. Unknown placeholders answer 422 naming them. Admins only.
pub async fn create(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    JsonBody(request): JsonBody<CreateSnippet>,
) -> Result<(StatusCode, Json<Snippet>), ApiError> {
    if !crate::config::is_name(&request.id) {
        return Err(ApiError::unprocessable(
            "id: use 1 to 64 letters, digits, '-' and '_'",
        ));
    }
    check_text(&request.text)?;
    if state
        .runtime
        .load()
        .config
        .snippets
        .contains_key(&request.id)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("id: the config defines a snippet {:?}", request.id),
        ));
    }
    let stored = state
        .store
        .save_snippet(
            &request.id,
            &request.text,
            &caller.author(),
            SaveMode::Create,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(from_store(stored))))
}

#[utoipa::path(
    get,
    path = "/api/v1/snippets/{id}",
    operation_id = "get_snippet",
    tag = "snippets",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The snippet.")),
    responses(
        (status = 200, description = "The snippet.", body = Snippet),
        (status = 404, description = "No such snippet (`not_found`).", body = ErrorBody),
        Unauthorized,
        StoreErrors,
    )
)]
/// One snippet.
pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Snippet>, ApiError> {
    find(&state, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("snippet"))
}

/// `{"text": "…"}`: the snippet's new text.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSnippet {
    /// Not blank; every `{{placeholder}}` must be one snippets know (else 422 naming it).
    #[schema(min_length = 1, pattern = r"\S")]
    text: String,
}

/// A config snippet cannot change here.
fn read_only(state: &AppState, id: &str) -> Result<(), ApiError> {
    if state.runtime.load().config.snippets.contains_key(id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "read_only",
            format!("snippet {id:?} is defined in the config; change it there"),
        ));
    }
    Ok(())
}

#[utoipa::path(
    patch,
    path = "/api/v1/snippets/{id}",
    operation_id = "update_snippet",
    tag = "snippets",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The snippet.")),
    request_body = UpdateSnippet,
    responses(
        (status = 200, description = "The snippet as it is now.", body = Snippet),
        (status = 404, description = "No such snippet (`not_found`).", body = ErrorBody),
        (status = 409, description = "The snippet is in the config (`read_only`).",
            body = ErrorBody),
        JsonBodyErrors,
        AdminOnly,
        Unauthorized,
        StoreErrors,
    )
)]
/// Replaces a snippet's text. Admins only.
pub async fn update(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<UpdateSnippet>,
) -> Result<Json<Snippet>, ApiError> {
    read_only(&state, &id)?;
    check_text(&request.text)?;
    let stored = state
        .store
        .save_snippet(&id, &request.text, &caller.author(), SaveMode::Replace)
        .await?;
    Ok(Json(from_store(stored)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/snippets/{id}",
    operation_id = "delete_snippet",
    tag = "snippets",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The snippet.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such snippet (`not_found`).", body = ErrorBody),
        (status = 409, description = "The snippet is in the config (`read_only`).",
            body = ErrorBody),
        AdminOnly,
        Unauthorized,
        StoreErrors,
    )
)]
/// Deletes a snippet. Admins only.
pub async fn delete(
    State(state): State<AppState>,
    _admin: AdminCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    read_only(&state, &id)?;
    state.store.delete_snippet(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
