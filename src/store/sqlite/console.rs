//! What the operations page and the inbox's markers read, and the reads they record: per
//! channel outbox counts and last inbound message, and who has read which conversation.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::model::{ConversationId, from_millis};
use crate::store::{ChannelDeliveries, ConversationMarks, StoreError};

/// Per channel with jobs: exact pending and dead counts, and the newest error.
pub fn delivery_summary(conn: &Connection) -> Result<Vec<ChannelDeliveries>, StoreError> {
    let mut summary: Vec<ChannelDeliveries> = conn
        .prepare_cached(
            "SELECT channel_id, count(*) FILTER (WHERE state = 'pending'),
                    count(*) FILTER (WHERE state = 'dead')
             FROM jobs GROUP BY channel_id ORDER BY channel_id",
        )?
        .query_map([], |r| {
            Ok(ChannelDeliveries {
                channel_id: r.get(0)?,
                pending: r.get::<_, i64>(1)? as u64,
                dead: r.get::<_, i64>(2)? as u64,
                last_error: None,
                last_error_at: None,
            })
        })?
        .collect::<Result<_, _>>()?;
    // SQLite returns the bare columns of the row that holds the MAX.
    let mut errors = conn.prepare_cached(
        "SELECT channel_id, MAX(updated_at), last_error FROM jobs
         WHERE last_error IS NOT NULL GROUP BY channel_id",
    )?;
    let newest = errors.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in newest {
        let (channel, at, error) = row?;
        if let Some(s) = summary.iter_mut().find(|s| s.channel_id == channel) {
            s.last_error = Some(error);
            s.last_error_at = Some(from_millis(at));
        }
    }
    Ok(summary)
}

/// When each channel last stored an inbound message: the end of
/// `messages_inbound_by_channel`, one probe per channel.
pub fn last_inbound(
    conn: &Connection,
    channels: &[String],
) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT created_at FROM messages
         WHERE channel_id = ?1 AND direction = 'inbound' ORDER BY seq DESC LIMIT 1",
    )?;
    let mut out = BTreeMap::new();
    for channel in channels {
        if let Some(at) = statement
            .query_row([channel], |r| r.get::<_, i64>(0))
            .optional()?
        {
            out.insert(channel.clone(), from_millis(at));
        }
    }
    Ok(out)
}

/// Marks the conversation read by `reader` up to its newest message; a read never moves
/// back.
pub fn mark_read(
    conn: &Connection,
    reader: &str,
    conversation: &ConversationId,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO conversation_reads (reader, conversation_id, read_seq)
         SELECT ?1, ?2, COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = ?2
         ON CONFLICT (reader, conversation_id)
         DO UPDATE SET read_seq = MAX(read_seq, excluded.read_seq)",
    )?
    .execute(params![reader, conversation.as_str()])?;
    Ok(())
}

/// The reader's markers for each of these conversations: each a walk back from the
/// conversation's newest message on `messages_by_conversation`.
pub fn marks(
    conn: &Connection,
    reader: &str,
    conversations: &[ConversationId],
) -> Result<Vec<ConversationMarks>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT
            (SELECT m.seq FROM messages m WHERE m.conversation_id = c.id
               AND m.direction = 'inbound' ORDER BY m.seq DESC LIMIT 1),
            (SELECT r.read_seq FROM conversation_reads r
               WHERE r.reader = ?1 AND r.conversation_id = c.id),
            (SELECT m.direction FROM messages m WHERE m.conversation_id = c.id
               AND m.direction <> 'internal' ORDER BY m.seq DESC LIMIT 1)
         FROM conversations c WHERE c.id = ?2",
    )?;
    let mut out = Vec::with_capacity(conversations.len());
    for id in conversations {
        let row = statement
            .query_row(params![reader, id.as_str()], |r| {
                Ok((
                    r.get::<_, Option<i64>>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .optional()?;
        if let Some((inbound, read, last)) = row {
            out.push(ConversationMarks {
                conversation_id: id.clone(),
                unread: inbound.is_some_and(|seq| seq > read.unwrap_or(0)),
                waiting_on_us: last.as_deref() == Some("inbound"),
            });
        }
    }
    Ok(out)
}
