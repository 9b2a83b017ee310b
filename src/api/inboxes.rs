//! `GET /api/v1/inboxes`: the inboxes the caller works, with how much waits in each.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::Caller;
use super::openapi::{StoreErrors, Unauthorized};
use crate::app::AppState;
use crate::error::ApiError;

/// An inbox: its channels, who works it, and its open and unassigned conversations.
#[derive(Serialize, ToSchema)]
pub struct InboxInfo {
    /// `default` holds every channel no configured inbox lists.
    id: String,
    channels: Vec<String>,
    /// Reps listed directly.
    users: Vec<String>,
    /// Teams whose members work it.
    teams: Vec<String>,
    /// Every rep works it (the `default` inbox when its config lists no members).
    open_to_all: bool,
    /// Open conversations on its channels.
    open: u64,
    /// Open conversations on its channels that nobody owns.
    unassigned: u64,
}

#[derive(Serialize, ToSchema)]
pub struct InboxList {
    items: Vec<InboxInfo>,
    /// Always null: every inbox is on the one page.
    next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/inboxes",
    operation_id = "list_inboxes",
    tag = "inboxes",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's inboxes (every inbox for admins), in id \
            order, with open and unassigned counts.", body = InboxList),
        Unauthorized,
        StoreErrors,
    )
)]
/// Lists the caller's inboxes.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<InboxList>, ApiError> {
    let runtime = state.runtime.load_full();
    let inboxes =
        crate::desk::inboxes::inboxes_of(&runtime.config, caller.role, caller.rep.as_deref());
    let counts = state.store.conversation_counts().await?;
    let items = inboxes
        .into_iter()
        .map(|inbox| {
            // By scope, so `default` also counts channels gone from the config.
            let (open, unassigned) = counts
                .iter()
                .filter(|c| inbox.scope.allows(&c.channel_id))
                .fold((0, 0), |(o, u), c| (o + c.open, u + c.unassigned));
            InboxInfo {
                id: inbox.id,
                channels: inbox.channels,
                users: inbox.users,
                teams: inbox.teams,
                open_to_all: inbox.open_to_all,
                open,
                unassigned,
            }
        })
        .collect();
    Ok(Json(InboxList {
        items,
        next_cursor: None,
    }))
}
