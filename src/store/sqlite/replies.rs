//! A rep's reply and its delivery job, run on the writer thread inside the batch's
//! transaction: the ticket change made with it, the conversation a `via_channel` reply
//! moves to, the event and the job.

use rusqlite::{Connection, OptionalExtension, params};

use crate::model::{
    ConversationId, Delivery, DeliveryStatus, Direction, Message, MessageId, TicketId, from_millis,
};
use crate::store::{Actor, NewReply, StoreError, Via};

use super::ingest::{contact_name, json};
use super::tickets;
use super::{OnConstraint, events, outbox};

/// The contact's conversation on `via.channel_id` that belongs to `ticket`, created (open,
/// on that ticket) if there is none; the contact gets `via.identifier` on that channel.
fn via_conversation(
    conn: &Connection,
    from: &str,
    ticket: &str,
    via: &Via,
    now: i64,
) -> Result<String, StoreError> {
    let contact: String = conn
        .prepare_cached("SELECT contact_id FROM conversations WHERE id = ?1")?
        .query_row([from], |r| r.get(0))?;
    let owner: Option<String> = conn
        .prepare_cached(
            "SELECT contact_id FROM contact_identifiers WHERE channel_id = ?1 AND kind = ?2 AND value = ?3",
        )?
        .query_row(params![via.channel_id, via.identifier.kind, via.identifier.value], |r| r.get(0))
        .optional()?;
    match owner {
        Some(other) if other != contact => {
            return Err(StoreError::Conflict(format!(
                "via_channel: {} on {} belongs to another contact",
                via.identifier.value, via.channel_id
            )));
        }
        Some(_) => {}
        None => {
            conn.prepare_cached(
                "INSERT INTO contact_identifiers (channel_id, kind, value, contact_id) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![via.channel_id, via.identifier.kind, via.identifier.value, contact])?;
        }
    }
    let existing: Option<String> = conn
        .prepare_cached(
            "SELECT id FROM conversations WHERE channel_id = ?1 AND contact_id = ?2 AND ticket_id = ?3
               AND deleted_at IS NULL ORDER BY seq DESC LIMIT 1",
        )?
        .query_row(params![via.channel_id, contact, ticket], |r| r.get(0))
        .optional()?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let id = ConversationId::new();
    conn.prepare_cached(
        "INSERT INTO conversations (id, channel_id, thread_key, status, ticket_id, contact_id,
             owner_id, created_at, last_message_at)
         VALUES (?1, ?2, ?3, 'open', ?4, ?5, (SELECT owner_id FROM conversations WHERE id = ?6), ?7, ?7)",
    )?
    .execute(params![id.as_str(), via.channel_id, format!("contact:{contact}"), ticket, contact, from, now])
    .on_constraint(|| {
        StoreError::Conflict(format!(
            "via_channel: the contact already has an open conversation on {} (another ticket)",
            via.channel_id
        ))
    })?;
    Ok(id.to_string())
}

/// Stores a rep's reply and its delivery job.
pub fn create_reply(conn: &Connection, reply: &NewReply, now: i64) -> Result<Message, StoreError> {
    let conversation = reply.conversation_id.as_str();
    let (channel, ticket): (String, String) = conn
        .prepare_cached(
            "SELECT channel_id, ticket_id FROM conversations WHERE id = ?1 AND deleted_at IS NULL",
        )?
        .query_row([conversation], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or(StoreError::NotFound("conversation"))?;
    // First, so a status the ticket may not take stops the reply too (nothing stored).
    if let Some(change) = &reply.ticket_change {
        let actor = Actor::of(&reply.sender);
        tickets::apply_ticket_change(
            conn,
            &TicketId::from_stored(ticket.clone()),
            change,
            &actor,
            now,
        )?;
    }
    let reply_to: Option<String> = match &reply.reply_to {
        Some(target) => Some(
            // An internal comment is never quoted to the contact.
            conn.prepare_cached(
                "SELECT id FROM messages
                 WHERE id = ?1 AND conversation_id = ?2 AND direction != 'internal'",
            )?
            .query_row(params![target.as_str(), conversation], |r| r.get(0))
            .optional()?
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
            via_conversation(conn, conversation, &ticket, via, now)?,
            via.channel_id.clone(),
        ),
        None => (conversation.to_owned(), channel),
    };
    let conversation = conversation.as_str();
    let id = MessageId::new();
    conn.prepare_cached(
        "INSERT INTO messages (id, conversation_id, channel_id, direction, sender_type, sender_id,
             reply_to, parts, delivery_status, created_at)
         VALUES (?1, ?2, ?3, 'outbound', ?4, ?5, ?6, ?7, 'queued', ?8)",
    )?
    .execute(params![
        id.as_str(),
        conversation,
        channel,
        reply.sender.kind.as_str(),
        reply.sender.id,
        reply_to,
        json(&reply.parts)?,
        now
    ])?;
    tickets::index_text(conn, conn.last_insert_rowid(), &reply.parts)?;
    events::emit(
        conn,
        "message.created",
        conversation,
        serde_json::json!({"message_id": id, "direction": "outbound", "sender": reply.sender,
            "contact_name": contact_name(conn, conversation)?,
            "preview": crate::desk::notify::preview(&reply.parts)}),
        now,
    )?;
    conn.prepare_cached("UPDATE conversations SET last_message_at = ?2 WHERE id = ?1")?
        .execute(params![conversation, now])?;
    outbox::enqueue_delivery(
        conn,
        &channel,
        conversation,
        &id,
        reply.run_at.timestamp_millis(),
        now,
    )?;
    Ok(Message {
        id,
        kind: crate::model::MessageKind::Message,
        conversation_id: ConversationId::from_stored(conversation.to_owned()),
        channel_id: channel,
        direction: Direction::Outbound,
        platform_message_id: None,
        sender: reply.sender.clone(),
        reply_to: reply_to.map(MessageId::from_stored),
        parts: reply.parts.clone(),
        mentions: Vec::new(),
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
