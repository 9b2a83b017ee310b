//! Live events: written with the change they report, read by SSE streams from a cursor.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::model::from_millis;
use crate::store::{Event, EventFilter, StoreError};

/// Records an event about a conversation (its channel and current owner are looked up, so
/// streams can filter on them).
pub fn emit(
    conn: &Connection,
    kind: &str,
    conversation: &str,
    data: Value,
    now: i64,
) -> Result<(), StoreError> {
    let (channel, owner): (Option<String>, Option<String>) = conn
        .prepare_cached("SELECT channel_id, owner_id FROM conversations WHERE id = ?1")?
        .query_row([conversation], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((None, None));
    conn.prepare_cached(
        "INSERT INTO events (kind, channel_id, conversation_id, owner_id, data, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        kind,
        channel,
        conversation,
        owner,
        data.to_string(),
        now
    ])?;
    Ok(())
}

/// Events after `after` up to `through` (seqs), oldest first.
pub fn after(
    conn: &Connection,
    after: i64,
    through: i64,
    filter: &EventFilter,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT seq, kind, channel_id, conversation_id, owner_id, data, at FROM events
         WHERE seq > ?1 AND seq <= ?5 AND (?2 IS NULL OR channel_id = ?2)
           AND (?3 IS NULL OR owner_id = ?3)
         ORDER BY seq LIMIT ?4",
    )?;
    let rows = statement.query_map(
        params![after, filter.channel, filter.owner, limit, through],
        |r| {
            Ok(Event {
                id: r.get(0)?,
                kind: r.get(1)?,
                channel_id: r.get(2)?,
                conversation_id: r.get(3)?,
                owner_id: r.get(4)?,
                data: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
                at: from_millis(r.get(6)?),
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The newest event's seq (0 when there is none): where a new stream starts.
pub fn latest(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events")?
        .query_row([], |r| r.get(0))?)
}

pub fn purge(conn: &Connection, before: i64) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached("DELETE FROM events WHERE at < ?1")?
        .execute([before])? as u64)
}

/// Sets an outbound message's delivery status (and error, when failed) and reports it.
pub fn delivery_updated(
    conn: &Connection,
    message: &str,
    status: crate::model::DeliveryStatus,
    error: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let conversation: Option<String> = conn
        .prepare_cached(
            "UPDATE messages SET delivery_status = ?2,
                 delivery_error = CASE WHEN ?2 = 'failed' THEN ?3 ELSE delivery_error END
             WHERE id = ?1
             RETURNING conversation_id",
        )?
        .query_row(params![message, status.as_str(), error], |r| r.get(0))
        .optional()?;
    if let Some(conversation) = conversation {
        let (data, reported) = crate::store::shared::delivery_update(message, status, error);
        emit(conn, "delivery.updated", &conversation, data, now)?;
        if let Some(reported) = reported {
            super::hubspot::report_status(conn, message, reported, error, now)?;
        }
    }
    Ok(())
}
