//! Clearing the raw platform payloads of old inbound messages. The payload is kept only to
//! look into how a platform's webhook was parsed; the message's parts stay. The work goes
//! in short chunks of the primary key through the writer, so ingest never waits long
//! behind it, and without an index on `created_at` (rows are appended in time order).

use rusqlite::{Connection, params};

use crate::store::StoreError;

/// Messages looked at per write transaction.
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
    Ok(Chunk {
        cleared,
        next: (young == 0 && newer).then_some(last),
    })
}
