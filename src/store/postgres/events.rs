//! Live events: written with the change they report, read by SSE streams from a cursor.
//!
//! A stream that has read up to a position must never see a smaller one appear later,
//! whichever replica wrote it. `seq` cannot promise that: transactions commit in another
//! order than they inserted. So an event is written without a position, and once its
//! transaction has committed, [`sequence`] gives it the next one: positions are handed
//! out one short transaction at a time under an advisory lock, in `seq` order, to
//! committed events only. Readers sequence before they read, so a writer's own events are
//! there when it reads next, and no transaction that writes an event waits for another's
//! COMMIT (ARCHITECTURE.md §5).

use serde_json::Value;
use sqlx::{Connection, PgConnection};

use super::get;
use crate::model::from_millis;
use crate::store::{Event, EventFilter, StoreError};

/// The advisory lock under which positions are handed out.
const EVENTS_LOCK: i64 = 0x6362_6576_656e_7473;
/// Events positioned by one transaction at most.
const SEQUENCE_BATCH: i64 = 10_000;

/// Records an event about a conversation (its channel and current owner are looked up, so
/// streams can filter on them).
pub async fn emit(
    c: &mut PgConnection,
    kind: &str,
    conversation: &str,
    data: Value,
    now: i64,
) -> Result<(), StoreError> {
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

/// Gives the committed events without a position the next positions, in `seq` order,
/// in transactions of its own on `c`, which must be outside one. Cheap when there is
/// nothing to do: one look at a partial index.
pub async fn sequence(c: &mut PgConnection) -> Result<(), StoreError> {
    while sequence_batch(c).await? == SEQUENCE_BATCH as u64 {}
    Ok(())
}

/// [`sequence`] for up to [`SEQUENCE_BATCH`] events; how many it positioned.
async fn sequence_batch(c: &mut PgConnection) -> Result<u64, StoreError> {
    let waiting: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE pos IS NULL)")
            .fetch_one(&mut *c)
            .await?;
    if !waiting {
        return Ok(0);
    }
    let mut tx = c.begin().await?;
    // Waits for a sequencing in progress: it may have begun before our events committed.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(EVENTS_LOCK)
        .execute(&mut *tx)
        .await?;
    // A statement of its own, after the lock: its snapshot sees every earlier sequencing.
    let positioned = sqlx::query(
        "WITH next AS (
             SELECT seq, row_number() OVER (ORDER BY seq) AS n
             FROM events WHERE pos IS NULL ORDER BY seq LIMIT $1),
         top AS (
             UPDATE event_positions SET last = last + (SELECT count(*) FROM next)
             RETURNING last - (SELECT count(*) FROM next) AS pos)
         UPDATE events SET pos = top.pos + next.n
         FROM next, top
         WHERE events.seq = next.seq",
    )
    .bind(SEQUENCE_BATCH)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(positioned)
}

/// Events after `after` (a position), oldest first.
pub async fn after(
    c: &mut PgConnection,
    after: i64,
    filter: &EventFilter,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    let rows = sqlx::query(
        "SELECT pos, kind, channel_id, conversation_id, owner_id, data, at FROM events
         WHERE pos > $1 AND ($2::text IS NULL OR channel_id = $2)
           AND ($3::text IS NULL OR owner_id = $3)
         ORDER BY pos LIMIT $4",
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
                id: get(r, "pos")?,
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

/// The newest event's position (0 when there is none): where a new stream starts.
pub async fn latest(c: &mut PgConnection) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT last FROM event_positions")
        .fetch_one(&mut *c)
        .await?)
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
