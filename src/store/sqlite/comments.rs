//! Internal comments on SQLite: a row in the thread with direction `internal`, an event
//! for it and one per mentioned rep, and an email job for each mentioned rep who is
//! offline. Nothing here queues a delivery or touches the conversation or its ticket.

use rusqlite::{Connection, OptionalExtension, params};

use super::{events, outbox, routing, tickets};
use crate::model::{Message, MessageId};
use crate::store::shared::json;
use crate::store::{NewComment, StoreError};

pub fn add(conn: &Connection, comment: &NewComment, now: i64) -> Result<Message, StoreError> {
    let conversation = comment.conversation_id.as_str();
    let (channel, contact): (String, String) = conn
        .prepare_cached(
            "SELECT c.channel_id, COALESCE(k.display_name, k.id) FROM conversations c
             JOIN contacts k ON k.id = c.contact_id
             WHERE c.id = ?1 AND c.deleted_at IS NULL",
        )?
        .query_row([conversation], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or(StoreError::NotFound("conversation"))?;
    let parts = comment.parts();
    let mentions = comment.mention_ids();
    let id = MessageId::new();
    conn.prepare_cached(
        "INSERT INTO messages (id, conversation_id, channel_id, direction, kind, sender_type,
             sender_id, parts, delivery_status, mentions, created_at)
         VALUES (?1, ?2, ?3, 'internal', 'comment', ?8, ?4, ?5, 'internal', ?6, ?7)",
    )?
    .execute(params![
        id.as_str(),
        conversation,
        channel,
        comment.author.id,
        json(&parts)?,
        json(&mentions)?,
        now,
        comment.author.kind.as_str()
    ])?;
    // Reps find their own notes with the conversation search too.
    tickets::index_text(conn, conn.last_insert_rowid(), &parts)?;
    events::emit(
        conn,
        "comment.created",
        conversation,
        comment.created_event(&id),
        now,
    )?;
    for mention in &comment.mentions {
        let payload = comment.mentioned_event(&id, mention);
        events::emit(conn, "comment.mentioned", conversation, payload, now)?;
        let Some(email) = comment.mention_email(&id, conversation, &contact, mention) else {
            continue;
        };
        if routing::online(conn, &mention.rep_id, now, comment.presence_timeout_ms)? {
            continue;
        }
        outbox::enqueue_email(conn, conversation, &email, now)?;
    }
    Ok(comment.stored_message(id, conversation, channel, now))
}
