//! One chunk of clearing old raw payloads: its statements in PostgreSQL's dialect; the
//! chunking and when to move past a chunk are `store::purge`'s.

use sqlx::PgConnection;

use super::get;
use crate::store::StoreError;
use crate::store::purge::{CHUNK, Chunk};

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
    Ok(Chunk::done(cleared, last, young, newer))
}
