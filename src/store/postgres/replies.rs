//! A rep's reply and its delivery job in one transaction: the ticket change made with it,
//! the conversation a `via_channel` reply moves to, the event and the job.

use sqlx::PgConnection;

use super::{events, outbox, tickets};
use crate::model::{
    ConversationId, Delivery, DeliveryStatus, Direction, Message, MessageId, TicketId, from_millis,
};
use crate::store::{Actor, NewReply, StoreError, Via};

/// Takes a transaction-scoped advisory lock on `key` (hashed to the lock space).
use super::ingest::{body_text, contact_name, json, lock, sender_key};

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
    match owner {
        Some(other) if other != contact => {
            return Err(StoreError::Conflict(format!(
                "via_channel: {} on {} belongs to another contact",
                via.identifier.value, via.channel_id
            )));
        }
        Some(_) => {}
        None => {
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
    }
    let existing: Option<String> = sqlx::query_scalar(
        "SELECT id FROM conversations WHERE channel_id = $1 AND contact_id = $2 AND ticket_id = $3
           AND deleted_at IS NULL ORDER BY seq DESC LIMIT 1",
    )
    .bind(&via.channel_id)
    .bind(&contact)
    .bind(ticket)
    .fetch_optional(&mut *c)
    .await?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let key = format!("contact:{contact}");
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
        return Err(StoreError::Conflict(format!(
            "via_channel: the contact already has an open conversation on {} (another ticket)",
            via.channel_id
        )));
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
        tickets::apply_ticket_change(
            c,
            &TicketId::from_stored(ticket.clone()),
            change,
            &actor,
            now,
        )
        .await?;
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
            .ok_or_else(|| {
                StoreError::Invalid(format!(
                    "reply_to: message {target} is not a message of conversation {conversation}"
                ))
            })?,
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
    let contact_name = contact_name(c, conversation).await?;
    events::emit(
        c,
        "message.created",
        conversation,
        serde_json::json!({"message_id": id, "direction": "outbound", "sender": reply.sender,
            "contact_name": contact_name,
            "preview": crate::desk::notify::preview(&reply.parts)}),
        now,
    )
    .await?;
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
    Ok(Message {
        id,
        kind: crate::model::MessageKind::Message,
        mentions: Vec::new(),
        conversation_id: ConversationId::from_stored(conversation.to_owned()),
        channel_id: channel,
        direction: Direction::Outbound,
        platform_message_id: None,
        sender: reply.sender.clone(),
        reply_to: reply_to.map(MessageId::from_stored),
        parts: reply.parts.clone(),
        delivery: Delivery {
            status: DeliveryStatus::Queued,
            error: None,
            attempts: 0,
            note: None,
        },
        created_at: from_millis(now),
        edited_at: None,
        history: Vec::new(),
        retracted_at: None,
    })
}
