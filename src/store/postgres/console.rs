//! What the operations page and the inbox's markers read, and the reads they record: per
//! channel outbox counts and last inbound message, and who has read which conversation.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::get;
use crate::model::{ConversationId, from_millis};
use crate::store::{ChannelDeliveries, ConversationMarks, StoreError};

/// Per channel with jobs: exact pending and dead counts, and the newest error.
pub async fn delivery_summary(c: &mut PgConnection) -> Result<Vec<ChannelDeliveries>, StoreError> {
    let rows = sqlx::query(
        "SELECT channel_id, count(*) FILTER (WHERE state = 'pending') AS pending,
                count(*) FILTER (WHERE state = 'dead') AS dead
         FROM jobs GROUP BY channel_id ORDER BY channel_id",
    )
    .fetch_all(&mut *c)
    .await?;
    let mut summary = rows
        .iter()
        .map(|row| {
            Ok(ChannelDeliveries {
                channel_id: get(row, "channel_id")?,
                pending: get::<i64>(row, "pending")?.max(0) as u64,
                dead: get::<i64>(row, "dead")?.max(0) as u64,
                last_error: None,
                last_error_at: None,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let newest = sqlx::query(
        "SELECT DISTINCT ON (channel_id) channel_id, updated_at, last_error FROM jobs
         WHERE last_error IS NOT NULL ORDER BY channel_id, updated_at DESC, seq DESC",
    )
    .fetch_all(&mut *c)
    .await?;
    for row in &newest {
        let channel: String = get(row, "channel_id")?;
        if let Some(s) = summary.iter_mut().find(|s| s.channel_id == channel) {
            s.last_error = get(row, "last_error")?;
            s.last_error_at = Some(from_millis(get(row, "updated_at")?));
        }
    }
    Ok(summary)
}

/// When each channel last stored an inbound message: the end of
/// `messages_inbound_by_channel`, one probe per channel.
pub async fn last_inbound(
    c: &mut PgConnection,
    channels: &[String],
) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError> {
    let mut out = BTreeMap::new();
    for channel in channels {
        let at: Option<(i64,)> = sqlx::query_as(
            "SELECT created_at FROM messages
             WHERE channel_id = $1 AND direction = 'inbound' ORDER BY seq DESC LIMIT 1",
        )
        .bind(channel)
        .fetch_optional(&mut *c)
        .await?;
        if let Some((at,)) = at {
            out.insert(channel.clone(), from_millis(at));
        }
    }
    Ok(out)
}

/// Marks the conversation read by `reader` up to its newest message; a read never moves
/// back.
pub async fn mark_read(
    c: &mut PgConnection,
    reader: &str,
    conversation: &ConversationId,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO conversation_reads (reader, conversation_id, read_seq)
         SELECT $1, $2, COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = $2
         ON CONFLICT (reader, conversation_id)
         DO UPDATE SET read_seq = GREATEST(conversation_reads.read_seq, EXCLUDED.read_seq)",
    )
    .bind(reader)
    .bind(conversation.as_str())
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// The reader's markers for each of these conversations: each a walk back from the
/// conversation's newest message on `messages_by_conversation`.
pub async fn marks(
    c: &mut PgConnection,
    reader: &str,
    conversations: &[ConversationId],
) -> Result<Vec<ConversationMarks>, StoreError> {
    let ids: Vec<&str> = conversations.iter().map(|c| c.as_str()).collect();
    let rows = sqlx::query(
        "SELECT c.id,
            (SELECT m.seq FROM messages m WHERE m.conversation_id = c.id
               AND m.direction = 'inbound' ORDER BY m.seq DESC LIMIT 1) AS inbound,
            (SELECT r.read_seq FROM conversation_reads r
               WHERE r.reader = $1 AND r.conversation_id = c.id) AS read,
            (SELECT m.direction FROM messages m WHERE m.conversation_id = c.id
               AND m.direction <> 'internal' ORDER BY m.seq DESC LIMIT 1) AS last
         FROM conversations c WHERE c.id = ANY($2)",
    )
    .bind(reader)
    .bind(&ids)
    .fetch_all(&mut *c)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for id in conversations {
        let Some(row) = rows
            .iter()
            .find(|r| get::<String>(r, "id").is_ok_and(|x| x == id.as_str()))
        else {
            continue;
        };
        let inbound: Option<i64> = get(row, "inbound")?;
        let read: Option<i64> = get(row, "read")?;
        let last: Option<String> = get(row, "last")?;
        out.push(ConversationMarks {
            conversation_id: id.clone(),
            unread: inbound.is_some_and(|seq| seq > read.unwrap_or(0)),
            waiting_on_us: last.as_deref() == Some("inbound"),
        });
    }
    Ok(out)
}
