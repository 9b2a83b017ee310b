//! Internal comments on SQLite: a row in the thread with direction `internal`, an event
//! for it and one per mentioned rep, and an email job for each mentioned rep who is
//! offline. Nothing here queues a delivery or touches the conversation or its ticket.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::ingest::json;
use super::{events, outbox, routing, tickets};
use crate::model::outbound::Email;
use crate::model::{
    ConversationId, Delivery, DeliveryStatus, Direction, Message, MessageId, MessageKind, Part,
    TextPart, from_millis,
};
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
    let parts = vec![Part::Text(TextPart {
        text: comment.text.clone(),
    })];
    let mentions: Vec<&str> = comment.mentions.iter().map(|m| m.rep_id.as_str()).collect();
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
        json!({"message_id": id, "author": comment.author.id, "mentions": mentions}),
        now,
    )?;
    for mention in &comment.mentions {
        events::emit(
            conn,
            "comment.mentioned",
            conversation,
            json!({"message_id": id, "rep_id": mention.rep_id, "author": comment.author.id,
                   "text": comment.text}),
            now,
        )?;
        let Some(address) = &mention.email else {
            continue;
        };
        if routing::online(conn, &mention.rep_id, now, comment.presence_timeout_ms)? {
            continue;
        }
        let link = comment
            .link_base
            .as_ref()
            .map(|b| format!("{b}/api/v1/conversations/{conversation}"));
        let (subject, text) = crate::desk::notify::mention_email(
            &comment.author_name,
            &contact,
            &comment.channel_name,
            &comment.text,
            link.as_deref(),
        );
        let email = Email {
            to: address.clone(),
            subject,
            text,
            id: format!("{id}-{}", mention.rep_id),
            thread: conversation.to_owned(),
            reply_to: None,
        };
        outbox::enqueue_email(conn, conversation, &email, now)?;
    }
    Ok(Message {
        id,
        kind: MessageKind::Comment,
        conversation_id: ConversationId::from_stored(conversation.to_owned()),
        channel_id: channel,
        direction: Direction::Internal,
        platform_message_id: None,
        sender: comment.author.clone(),
        reply_to: None,
        parts,
        mentions: mentions.into_iter().map(str::to_owned).collect(),
        delivery: Delivery {
            status: DeliveryStatus::Internal,
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
