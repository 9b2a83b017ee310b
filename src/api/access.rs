//! What a caller may see: the conversations, tickets and contacts of their inboxes'
//! channels. Anything else answers 404, exactly as an unknown id does, so ids of other
//! inboxes do not leak. Checked above the store, against the scope the request started
//! with.

use super::Caller;
use crate::app::AppState;
use crate::desk::inboxes::Scope;
use crate::error::ApiError;
use crate::model::{Contact, ContactId, Conversation, ConversationId, TicketId};
use crate::store::{ConversationFilter, PageRequest, StoreError};

/// The conversation, if the caller may see it.
pub async fn conversation(
    state: &AppState,
    caller: &Caller,
    id: &ConversationId,
) -> Result<Conversation, ApiError> {
    let conversation = state.store.conversation(id).await?;
    if caller.sees(&conversation.channel_id) {
        Ok(conversation)
    } else {
        Err(ApiError::not_found("conversation"))
    }
}

/// Succeeds if the caller may see the ticket: one of its conversations is in their scope.
pub async fn ticket(state: &AppState, caller: &Caller, id: &TicketId) -> Result<(), ApiError> {
    if caller.scope == Scope::All {
        return Ok(());
    }
    let ticket = state.store.ticket(id).await?;
    for conversation in &ticket.conversation_ids {
        match state.store.conversation(conversation).await {
            Ok(c) if caller.sees(&c.channel_id) => return Ok(()),
            Ok(_) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::not_found("ticket"))
}

/// Whether the caller may see a contact: they are reached on one of the caller's channels,
/// or have a conversation there.
pub async fn sees_contact(
    state: &AppState,
    caller: &Caller,
    contact: &Contact,
) -> Result<bool, ApiError> {
    if caller.scope == Scope::All
        || contact
            .identifiers
            .iter()
            .any(|i| caller.sees(&i.channel_id))
    {
        return Ok(true);
    }
    let filter = ConversationFilter {
        scope: caller.scope.clone(),
        contact: Some(contact.id.clone()),
        ..ConversationFilter::default()
    };
    let page = PageRequest {
        limit: 1,
        cursor: None,
    };
    Ok(!state
        .store
        .conversations(&filter, &page)
        .await?
        .items
        .is_empty())
}

/// The contact, if the caller may see it. A merged contact answers 404 naming the contact
/// it was merged into, when the caller may see that one.
pub async fn contact(
    state: &AppState,
    caller: &Caller,
    id: &ContactId,
) -> Result<Contact, ApiError> {
    match state.store.contact(id).await {
        Ok(contact) if sees_contact(state, caller, &contact).await? => Ok(contact),
        Ok(_) => Err(ApiError::not_found("contact")),
        Err(StoreError::Merged(into)) => {
            let survivor = state.store.contact(&into).await;
            match survivor {
                Ok(survivor) if sees_contact(state, caller, &survivor).await? => {
                    Err(StoreError::Merged(into).into())
                }
                _ => Err(ApiError::not_found("contact")),
            }
        }
        Err(e) => Err(e.into()),
    }
}
