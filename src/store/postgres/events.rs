//! Live events: written with the change they report, read by SSE streams from a cursor.
//!
//! Writers take a transaction-scoped advisory lock before inserting an event, so events
//! commit in `seq` order: a stream that has read up to `seq` never sees a smaller one
//! appear later, whichever replica wrote it.

use serde_json::Value;
use sqlx::PgConnection;

use super::get;
use crate::model::from_millis;
use crate::store::{Event, EventFilter, StoreError};

/// The advisory lock that orders event commits.
const EVENTS_LOCK: i64 = 0x6362_6576_656e_7473;

/// Records an event about a conversation (its channel and current owner are looked up, so
/// streams can filter on them).
pub async fn emit(
    c: &mut PgConnection,
    kind: &str,
    conversation: &str,
    data: Value,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(EVENTS_LOCK)
        .execute(&mut *c)
        .await?;
    sqlx::query(
        "INSERT INTO events (kind, channel_id, conversation_id, owner_id, data, at)
         SELECT $1, c.channel_id, $2, c.owner_id, $3, $4
         FROM (SELECT 1) one LEFT JOIN conversations c ON c.id = $2",
    )
    .bind(kind)
    .bind(conversation)
    .bind(data.to_string())
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Events after `after` (a seq), oldest first.
pub async fn after(
    c: &mut PgConnection,
    after: i64,
    filter: &EventFilter,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, kind, channel_id, conversation_id, owner_id, data, at FROM events
         WHERE seq > $1 AND ($2::text IS NULL OR channel_id = $2)
           AND ($3::text IS NULL OR owner_id = $3)
         ORDER BY seq LIMIT $4",
    )
    .bind(after)
    .bind(&filter.channel)
    .bind(&filter.owner)
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Event {
                id: get(r, "seq")?,
                kind: get(r, "kind")?,
                channel_id: get(r, "channel_id")?,
                conversation_id: get(r, "conversation_id")?,
                owner_id: get(r, "owner_id")?,
                data: serde_json::from_str(&get::<String>(r, "data")?).unwrap_or_default(),
                at: from_millis(get(r, "at")?),
            })
        })
        .collect()
}

/// The newest event's seq (0 when there is none): where a new stream starts.
pub async fn latest(c: &mut PgConnection) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0)::bigint FROM events")
            .fetch_one(&mut *c)
            .await?,
    )
}

pub async fn purge(c: &mut PgConnection, before: i64) -> Result<u64, StoreError> {
    Ok(sqlx::query("DELETE FROM events WHERE at < $1")
        .bind(before)
        .execute(&mut *c)
        .await?
        .rows_affected())
}

/// Sets an outbound message's delivery status (and error, when failed) and reports it.
pub async fn delivery_updated(
    c: &mut PgConnection,
    message: &str,
    status: crate::model::DeliveryStatus,
    error: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let conversation: Option<String> = sqlx::query_scalar(
        "UPDATE messages SET delivery_status = $2,
             delivery_error = CASE WHEN $2 = 'failed' THEN $3 ELSE delivery_error END
         WHERE id = $1
         RETURNING conversation_id",
    )
    .bind(message)
    .bind(status.as_str())
    .bind(error)
    .fetch_optional(&mut *c)
    .await?;
    if let Some(conversation) = conversation {
        let (data, reported) = crate::store::shared::delivery_update(message, status, error);
        emit(c, "delivery.updated", &conversation, data, now).await?;
        if let Some(reported) = reported {
            super::hubspot::report_status(c, message, reported, error, now).await?;
        }
    }
    Ok(())
}
