//! A rep's reply and its delivery job, run on the writer thread inside the batch's
//! transaction. The rules come from `desk` (the ticket change from `desk::tickets`, where
//! a `via_channel` reply goes from `desk::replies`); this file loads their facts and
//! writes what they decide: the ticket change, the via conversation, the message, the
//! event and the job.

use rusqlite::{Connection, OptionalExtension, params};

use crate::desk::replies::{ViaConflict, ViaConversation, ViaFacts, plan_via};
use crate::model::{ConversationId, Message, MessageId, TicketId};
use crate::store::{Actor, NewReply, StoreError, Via};

use super::ingest::contact_name;
use super::{OnConstraint, WriterTx, events, outbox};
use crate::store::sequences::{ready, tickets};
use crate::store::shared::json;

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
    let existing: Option<String> = conn
        .prepare_cached(
            "SELECT id FROM conversations WHERE channel_id = ?1 AND contact_id = ?2 AND ticket_id = ?3
               AND deleted_at IS NULL ORDER BY seq DESC LIMIT 1",
        )?
        .query_row(params![via.channel_id, contact, ticket], |r| r.get(0))
        .optional()?;
    let facts = ViaFacts {
        contact: &contact,
        identifier_owner: owner.as_deref(),
        existing: existing.as_deref(),
    };
    let plan = plan_via(via, facts).map_err(|e| StoreError::Conflict(e.to_string()))?;
    if plan.add_identifier {
        conn.prepare_cached(
            "INSERT INTO contact_identifiers (channel_id, kind, value, contact_id) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![via.channel_id, via.identifier.kind, via.identifier.value, contact])?;
    }
    let thread_key = match plan.conversation {
        ViaConversation::Existing(id) => return Ok(id),
        ViaConversation::Open { thread_key } => thread_key,
    };
    let id = ConversationId::new();
    conn.prepare_cached(
        "INSERT INTO conversations (id, channel_id, thread_key, status, ticket_id, contact_id,
             owner_id, created_at, last_message_at)
         VALUES (?1, ?2, ?3, 'open', ?4, ?5, (SELECT owner_id FROM conversations WHERE id = ?6), ?7, ?7)",
    )?
    .execute(params![id.as_str(), via.channel_id, thread_key, ticket, contact, from, now])
    .on_constraint(|| {
        StoreError::Conflict(
            ViaConflict::ThreadTaken {
                channel: via.channel_id.clone(),
            }
            .to_string(),
        )
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
        let id = TicketId::from_stored(ticket.clone());
        ready(tickets::apply_change(
            &mut WriterTx(conn),
            &id,
            change,
            &actor,
            now,
        ))?;
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
    super::tickets::index_text(conn, conn.last_insert_rowid(), &reply.parts)?;
    let payload = reply.created_event(&id, contact_name(conn, conversation)?);
    events::emit(conn, "message.created", conversation, payload, now)?;
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
    Ok(reply.queued_message(id, conversation, channel, reply_to, now))
}
