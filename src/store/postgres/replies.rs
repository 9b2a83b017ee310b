//! A rep's reply and its delivery job in one transaction. The rules come from `desk` (the
//! ticket change from `desk::tickets`, where a `via_channel` reply goes from
//! `desk::replies`); this file locks and loads their facts and writes what they decide:
//! the ticket change, the via conversation, the message, the event and the job.

use sqlx::PgConnection;

use super::{events, outbox};
use crate::desk::replies::{ViaConflict, ViaConversation, ViaFacts, plan_via};
use crate::model::{ConversationId, Message, MessageId, TicketId};
use crate::store::sequences::tickets;
use crate::store::{Actor, NewReply, StoreError, Via};

use super::ingest::{body_text, contact_name, lock, sender_key};
use crate::store::shared::json;

/// The contact's conversation on `via.channel_id` that belongs to `ticket`, created (open,
/// on that ticket) if there is none; the contact gets `via.identifier` on that channel.
async fn via_conversation(
    c: &mut PgConnection,
    from: &str,
    ticket: &str,
    via: &Via,
    now: i64,
) -> Result<String, StoreError> {
    let contact: String = sqlx::query_scalar("SELECT contact_id FROM conversations WHERE id = $1")
        .bind(from)
        .fetch_one(&mut *c)
        .await?;
    lock(
        c,
        &sender_key(&via.channel_id, &via.identifier.kind, &via.identifier.value),
    )
    .await?;
    let owner: Option<String> = sqlx::query_scalar(
        "SELECT contact_id FROM contact_identifiers WHERE channel_id = $1 AND kind = $2 AND value = $3",
    )
    .bind(&via.channel_id)
    .bind(&via.identifier.kind)
    .bind(&via.identifier.value)
    .fetch_optional(&mut *c)
    .await?;
    let existing: Option<String> = sqlx::query_scalar(
        "SELECT id FROM conversations WHERE channel_id = $1 AND contact_id = $2 AND ticket_id = $3
           AND deleted_at IS NULL ORDER BY seq DESC LIMIT 1",
    )
    .bind(&via.channel_id)
    .bind(&contact)
    .bind(ticket)
    .fetch_optional(&mut *c)
    .await?;
    let facts = ViaFacts {
        contact: &contact,
        identifier_owner: owner.as_deref(),
        existing: existing.as_deref(),
    };
    let plan = plan_via(via, facts).map_err(|e| StoreError::Conflict(e.to_string()))?;
    if plan.add_identifier {
        sqlx::query(
            "INSERT INTO contact_identifiers (channel_id, kind, value, contact_id) VALUES ($1, $2, $3, $4)",
        )
        .bind(&via.channel_id)
        .bind(&via.identifier.kind)
        .bind(&via.identifier.value)
        .bind(&contact)
        .execute(&mut *c)
        .await?;
    }
    let key = match plan.conversation {
        ViaConversation::Existing(id) => return Ok(id),
        ViaConversation::Open { thread_key } => thread_key,
    };
    // Checked first: in PostgreSQL a failed insert would abort the whole transaction.
    let taken: Option<String> = sqlx::query_scalar(
        "SELECT id FROM conversations
         WHERE channel_id = $1 AND thread_key = $2 AND status = 'open' AND deleted_at IS NULL",
    )
    .bind(&via.channel_id)
    .bind(&key)
    .fetch_optional(&mut *c)
    .await?;
    if taken.is_some() {
        return Err(StoreError::Conflict(
            ViaConflict::ThreadTaken {
                channel: via.channel_id.clone(),
            }
            .to_string(),
        ));
    }
    let id = ConversationId::new();
    sqlx::query(
        "INSERT INTO conversations (id, channel_id, thread_key, status, ticket_id, contact_id,
             owner_id, created_at, last_message_at)
         VALUES ($1, $2, $3, 'open', $4, $5, (SELECT owner_id FROM conversations WHERE id = $6), $7, $7)",
    )
    .bind(id.as_str())
    .bind(&via.channel_id)
    .bind(&key)
    .bind(ticket)
    .bind(&contact)
    .bind(from)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(id.to_string())
}

/// Stores a rep's reply and its delivery job.
pub async fn create_reply(
    c: &mut PgConnection,
    reply: &NewReply,
    now: i64,
) -> Result<Message, StoreError> {
    let conversation = reply.conversation_id.as_str();
    // Locked (ticket first, then the conversation, the order tickets.rs locks them in), so
    // replies to one conversation get their seq and job order in commit order.
    let ticket: String = sqlx::query_scalar(
        "SELECT ticket_id FROM conversations WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(conversation)
    .fetch_optional(&mut *c)
    .await?
    .ok_or(StoreError::NotFound("conversation"))?;
    sqlx::query("SELECT 1 FROM tickets WHERE id = $1 FOR UPDATE")
        .bind(&ticket)
        .execute(&mut *c)
        .await?;
    let (channel, ticket): (String, String) = sqlx::query_as(
        "SELECT channel_id, ticket_id FROM conversations WHERE id = $1 AND deleted_at IS NULL
         FOR UPDATE",
    )
    .bind(conversation)
    .fetch_optional(&mut *c)
    .await?
    .ok_or(StoreError::NotFound("conversation"))?;
    // First, so a status the ticket may not take stops the reply too (nothing stored).
    if let Some(change) = &reply.ticket_change {
        let actor = Actor::of(&reply.sender);
        let id = TicketId::from_stored(ticket.clone());
        tickets::apply_change(c, &id, change, &actor, now).await?;
    }
    let reply_to: Option<String> = match &reply.reply_to {
        Some(target) => Some(
            // An internal comment is never quoted to the contact.
            sqlx::query_scalar(
                "SELECT id FROM messages
                 WHERE id = $1 AND conversation_id = $2 AND direction != 'internal'",
            )
            .bind(target.as_str())
            .bind(conversation)
            .fetch_optional(&mut *c)
            .await?
            .ok_or_else(|| NewReply::not_quotable(target, conversation))?,
        ),
        // Quoting is the rep's choice: a reply quotes nothing by default, or every reply
        // on WhatsApp and Telegram would show as a quote.
        None => None,
    };
    // Through another channel: the reply goes into the contact's conversation there, on
    // the same ticket (created if it has none yet).
    let (conversation, channel) = match &reply.via {
        Some(via) => (
            via_conversation(c, conversation, &ticket, via, now).await?,
            via.channel_id.clone(),
        ),
        None => (conversation.to_owned(), channel),
    };
    let conversation = conversation.as_str();
    let id = MessageId::new();
    sqlx::query(
        "INSERT INTO messages (id, conversation_id, channel_id, direction, sender_type, sender_id,
             reply_to, parts, delivery_status, created_at, body_text)
         VALUES ($1, $2, $3, 'outbound', $4, $5, $6, $7, 'queued', $8, $9)",
    )
    .bind(id.as_str())
    .bind(conversation)
    .bind(&channel)
    .bind(reply.sender.kind.as_str())
    .bind(&reply.sender.id)
    .bind(&reply_to)
    .bind(json(&reply.parts)?)
    .bind(now)
    .bind(body_text(&reply.parts))
    .execute(&mut *c)
    .await?;
    let payload = reply.created_event(&id, contact_name(c, conversation).await?);
    events::emit(c, "message.created", conversation, payload, now).await?;
    sqlx::query(
        "UPDATE conversations SET last_message_at = GREATEST(last_message_at, $2) WHERE id = $1",
    )
    .bind(conversation)
    .bind(now)
    .execute(&mut *c)
    .await?;
    outbox::enqueue_delivery(
        c,
        &channel,
        conversation,
        &id,
        reply.run_at.timestamp_millis(),
        now,
    )
    .await?;
    Ok(reply.queued_message(id, conversation, channel, reply_to, now))
}
