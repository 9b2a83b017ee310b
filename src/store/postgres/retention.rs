//! Clearing the raw platform payloads of old inbound messages, as the SQLite store does:
//! short transactions over chunks of the primary key, from where the last purge stopped,
//! with no index on `created_at`. A chunk is passed over only when all of its messages
//! are older than the cutoff (days ago), so a sequence number handed out to a transaction
//! that commits later is never skipped: that message is new.

use sqlx::PgConnection;

use super::get;
use crate::store::StoreError;

/// Messages looked at per transaction.
pub const CHUNK: i64 = 2000;

/// What one chunk did.
pub struct Chunk {
    /// Payloads cleared.
    pub cleared: u64,
    /// Where the next chunk starts, if this one held only messages past the cutoff and
    /// newer messages follow; `None` once the cutoff (or the newest message) is reached.
    pub next: Option<i64>,
}

/// Clears `raw` of the messages with `after < seq <= after + CHUNK` created before `before`
/// (unix ms).
pub async fn clear_raw_chunk(
    c: &mut PgConnection,
    after: i64,
    before: i64,
) -> Result<Chunk, StoreError> {
    let last = after + CHUNK;
    let cleared = sqlx::query(
        "UPDATE messages SET raw = NULL
         WHERE seq > $1 AND seq <= $2 AND created_at < $3 AND raw IS NOT NULL",
    )
    .bind(after)
    .bind(last)
    .bind(before)
    .execute(&mut *c)
    .await?
    .rows_affected();
    let row = sqlx::query(
        "SELECT (SELECT count(*) FROM messages
                 WHERE seq > $1 AND seq <= $2 AND created_at >= $3) AS young,
                EXISTS (SELECT 1 FROM messages WHERE seq > $2) AS newer",
    )
    .bind(after)
    .bind(last)
    .bind(before)
    .fetch_one(&mut *c)
    .await?;
    let (young, newer): (i64, bool) = (get(&row, "young")?, get(&row, "newer")?);
    Ok(Chunk {
        cleared,
        next: (young == 0 && newer).then_some(last),
    })
}
