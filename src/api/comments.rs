//! Internal comments: notes reps leave on a conversation for each other, shown in its
//! thread with `"type": "comment"`. They never reach the platform, never count as a
//! response, and leave the conversation and its ticket as they are.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::openapi::{JsonBodyErrors, StoreErrors, Unauthorized};
use super::{Caller, JsonBody, access};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::model::{ConversationId, Message};
use crate::store::{Mention, NewComment};

/// `{"text": "check the discount with @bob", "mentions"?: ["carol"]}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"text": "@bob can we refund this one?"}))]
pub struct CommentRequest {
    /// What the comment says (not blank). Every `@rep` that starts a word mentions that
    /// rep (ids match ignoring case); an `@word` that is no rep is plain text.
    #[schema(min_length = 1, pattern = r"\S")]
    text: String,
    /// Reps to mention besides those written as `@rep` in the text; any that is no rep
    /// is refused (422).
    #[serde(default)]
    mentions: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/conversations/{id}/comments",
    operation_id = "add_comment",
    tag = "conversations",
    security(("bearer" = [])),
    params(("id" = ConversationId, Path, description = "The conversation.")),
    request_body = CommentRequest,
    responses(
        (status = 201, description = "Stored in the thread (`\"type\": \"comment\"`, \
            direction `internal`); never sent. Each mentioned rep gets a `comment.mentioned` \
            event, and an email while offline when `[smtp]` is set.", body = Message),
        (status = 404, description = "No such conversation (`not_found`).", body = ErrorBody),
        JsonBodyErrors,
        Unauthorized,
        StoreErrors,
    )
)]
/// Adds an internal comment to a conversation's thread.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<CommentRequest>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let id = ConversationId::parse(&id).ok_or_else(|| ApiError::not_found("conversation"))?;
    let conversation = access::conversation(&state, &caller, &id).await?;
    if request.text.trim().is_empty() {
        return Err(ApiError::unprocessable("text: must not be empty"));
    }
    let runtime = state.runtime.load_full();
    let config = &runtime.config;
    let reps: Vec<&str> = config.reps.iter().map(|r| r.id.as_str()).collect();
    let mentioned = crate::desk::comments::mentions(&request.text, &request.mentions, &reps)
        .map_err(|unknown| {
            let names: Vec<String> = unknown.iter().map(|u| format!("{u:?}")).collect();
            ApiError::unprocessable(format!(
                "mentions: no rep {} in the config",
                names.join(", ")
            ))
        })?;
    let author = caller.sender();
    // Emails name people and channels as the team knows them, not by config ids.
    let author_name = caller
        .rep
        .as_deref()
        .and_then(|rep| config.rep(rep))
        .and_then(|rep| rep.name.clone())
        .unwrap_or_else(|| author.id.clone());
    let channel_name = config
        .channels
        .get(&conversation.channel_id)
        .map_or_else(|| conversation.channel_id.clone(), |c| c.name.clone());
    let mentions = mentioned
        .into_iter()
        // Nobody needs telling about their own note.
        .filter(|rep| caller.rep.as_deref() != Some(rep.as_str()))
        .map(|rep_id| Mention {
            email: runtime
                .mailer
                .as_ref()
                .and_then(|_| config.rep(&rep_id))
                .and_then(|r| r.email.clone()),
            rep_id,
        })
        .collect();
    let comment = state
        .store
        .add_comment(NewComment {
            conversation_id: id,
            author,
            author_name,
            channel_name,
            text: request.text,
            mentions,
            presence_timeout_ms: (config.presence.timeout_s * 1000) as i64,
            link_base: config.server.public_url.clone(),
        })
        .await?;
    state.wake.notify_one();
    Ok((StatusCode::CREATED, Json(comment)))
}
