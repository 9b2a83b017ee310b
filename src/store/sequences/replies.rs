//! What a rep's reply writes, in order: the ticket change it carries (first, so a status
//! the ticket may not take stops the reply), the conversation it goes into (its own, or
//! the contact's on another channel for a `via_channel` reply), the message, the event and
//! the delivery job. The rules are `desk::tickets` and `desk::replies`; the reads and
//! writes are each store's.

use std::future::Future;

use super::ingest::IngestTx;
use super::tickets::apply_change;
use crate::desk::replies::{ViaConversation, ViaFacts, plan_via};
use crate::model::{ConversationId, Message, MessageId, TicketId};
use crate::store::{Actor, NewReply, StoreError, Via};

/// The reads and writes a reply needs beyond ingest's, in each store's SQL.
pub(crate) trait ReplyTx: IngestTx {
    /// A live conversation's channel and ticket, held (ticket, then conversation) so that
    /// replies to one conversation are numbered and queued in commit order.
    fn reply_target(
        &mut self,
        conversation: &str,
    ) -> impl Future<Output = Result<(String, String), StoreError>>;

    /// `target`, when it is a message of `conversation` a reply may quote (not internal).
    fn quotable(
        &mut self,
        target: &MessageId,
        conversation: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>>;

    /// A conversation's contact.
    fn contact_in(
        &mut self,
        conversation: &str,
    ) -> impl Future<Output = Result<String, StoreError>>;

    /// The contact's latest live conversation on `channel` that belongs to `ticket`.
    fn on_ticket(
        &mut self,
        channel: &str,
        contact: &str,
        ticket: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>>;

    /// Opens a conversation of `contact` on `via`'s channel, on `ticket`, owned by whoever
    /// owns `from`. A conflict when the thread has an open conversation already.
    fn open_via(
        &mut self,
        via: &Via,
        thread_key: &str,
        ticket: &str,
        contact: &str,
        from: &str,
        at: i64,
    ) -> impl Future<Output = Result<ConversationId, StoreError>>;

    /// Stores a reply, queued (and indexes its text for search).
    fn insert_outbound(
        &mut self,
        id: &MessageId,
        channel: &str,
        conversation: &str,
        reply: &NewReply,
        reply_to: Option<&str>,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// Moves a conversation's last activity on to `at`.
    fn touch(
        &mut self,
        conversation: &str,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// Queues a message's delivery on `channel`, due at `run_at`.
    fn enqueue_delivery(
        &mut self,
        channel: &str,
        conversation: &str,
        message: &MessageId,
        run_at: i64,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>>;
}

/// Stores a rep's reply and its delivery job.
pub(crate) async fn create_reply(
    tx: &mut impl ReplyTx,
    reply: &NewReply,
    now: i64,
) -> Result<Message, StoreError> {
    let conversation = reply.conversation_id.as_str();
    let (channel, ticket) = tx.reply_target(conversation).await?;
    if let Some(change) = &reply.ticket_change {
        let actor = Actor::of(&reply.sender);
        let id = TicketId::from_stored(ticket.clone());
        apply_change(tx, &id, change, &actor, now).await?;
    }
    let reply_to = match &reply.reply_to {
        Some(target) => Some(
            tx.quotable(target, conversation)
                .await?
                .ok_or_else(|| NewReply::not_quotable(target, conversation))?,
        ),
        // Quoting is the rep's choice: a reply quotes nothing by default, or every reply
        // on WhatsApp and Telegram would show as a quote.
        None => None,
    };
    let (conversation, channel) = match &reply.via {
        Some(via) => (
            via_conversation(tx, conversation, &ticket, via, now).await?,
            via.channel_id.clone(),
        ),
        None => (conversation.to_owned(), channel),
    };
    let conversation = conversation.as_str();
    let id = MessageId::new();
    tx.insert_outbound(&id, &channel, conversation, reply, reply_to.as_deref(), now)
        .await?;
    let payload = reply.created_event(&id, tx.contact_name(conversation).await?);
    tx.emit("message.created", conversation, payload, now)
        .await?;
    tx.touch(conversation, now).await?;
    let run_at = reply.run_at.timestamp_millis();
    tx.enqueue_delivery(&channel, conversation, &id, run_at, now)
        .await?;
    Ok(reply.queued_message(id, conversation, channel, reply_to, now))
}

/// The contact's conversation on `via.channel_id` that belongs to `ticket`, created (open,
/// on that ticket) if there is none; the contact gets `via.identifier` on that channel.
async fn via_conversation(
    tx: &mut impl ReplyTx,
    from: &str,
    ticket: &str,
    via: &Via,
    now: i64,
) -> Result<String, StoreError> {
    let contact = tx.contact_in(from).await?;
    let channel = via.channel_id.as_str();
    // The hold ingest takes for this identifier: a message racing the reply cannot make a
    // second contact of it.
    tx.hold_sender(channel, &via.identifier).await?;
    let owner = tx.contact_of(channel, &via.identifier).await?;
    let existing = tx.on_ticket(channel, &contact, ticket).await?;
    let facts = ViaFacts {
        contact: &contact,
        identifier_owner: owner.as_deref(),
        existing: existing.as_deref(),
    };
    let plan = plan_via(via, facts).map_err(|e| StoreError::Conflict(e.to_string()))?;
    if plan.add_identifier {
        tx.add_identifier(channel, &via.identifier, &contact)
            .await?;
    }
    match plan.conversation {
        ViaConversation::Existing(id) => Ok(id),
        ViaConversation::Open { thread_key } => {
            let id = tx
                .open_via(via, &thread_key, ticket, &contact, from, now)
                .await?;
            Ok(id.to_string())
        }
    }
}
