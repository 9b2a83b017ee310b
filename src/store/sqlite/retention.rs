//! One chunk of clearing old raw payloads through the writer: its statements in SQLite's
//! dialect; the chunking and when to move past a chunk are `store::purge`'s. The payload is
//! kept only to look into how a platform's webhook was parsed; the message's parts stay.

use rusqlite::{Connection, params};

use crate::store::StoreError;
use crate::store::purge::{CHUNK, Chunk};

/// Clears `raw` of the messages with `after < seq <= after + CHUNK` created before `before`
/// (unix ms).
pub fn clear_raw_chunk(conn: &Connection, after: i64, before: i64) -> Result<Chunk, StoreError> {
    let last = after + CHUNK;
    let cleared = conn
        .prepare_cached(
            "UPDATE messages SET raw = NULL
             WHERE seq > ?1 AND seq <= ?2 AND created_at < ?3 AND raw IS NOT NULL",
        )?
        .execute(params![after, last, before])? as u64;
    let (young, newer): (i64, bool) = conn
        .prepare_cached(
            "SELECT (SELECT count(*) FROM messages WHERE seq > ?1 AND seq <= ?2 AND created_at >= ?3),
                    EXISTS (SELECT 1 FROM messages WHERE seq > ?2)",
        )?
        .query_row(params![after, last, before], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(Chunk::done(cleared, last, young, newer))
}
