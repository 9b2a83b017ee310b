//! Clearing old raw payloads in chunks of the messages' primary key, the same in both
//! dialects: each chunk is one short write, from where the last purge stopped, so ingest
//! never waits long behind it and no index on `created_at` is needed (rows are appended in
//! time order). The dialects only run one chunk's statements.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};

use super::StoreError;

/// Messages looked at per write transaction.
pub const CHUNK: i64 = 2000;

/// What one chunk did.
#[derive(Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Payloads cleared.
    pub cleared: u64,
    /// Where the next chunk starts; `None` once the cutoff (or the newest message) is reached.
    pub next: Option<i64>,
}

impl Chunk {
    /// The chunk ending at `last` cleared `cleared` payloads and held `young` messages
    /// newer than the cutoff; `newer` says whether messages follow it. The purge moves past
    /// a chunk only when none of its messages is young, so a sequence number handed to a
    /// transaction that commits later is never skipped: that message is new.
    pub fn done(cleared: u64, last: i64, young: i64, newer: bool) -> Self {
        Self {
            cleared,
            next: (young == 0 && newer).then_some(last),
        }
    }
}

/// Runs `clear_chunk(after)` (which clears `after < seq <= after + CHUNK`) from `cursor`
/// until a chunk says to stop, moving `cursor` past every chunk left behind; returns the
/// payloads cleared.
pub async fn in_chunks<F, Fut>(cursor: &AtomicI64, mut clear_chunk: F) -> Result<u64, StoreError>
where
    F: FnMut(i64) -> Fut,
    Fut: Future<Output = Result<Chunk, StoreError>>,
{
    let mut cleared = 0;
    loop {
        let chunk = clear_chunk(cursor.load(Ordering::Relaxed)).await?;
        cleared += chunk.cleared;
        match chunk.next {
            Some(next) => cursor.store(next, Ordering::Relaxed),
            None => return Ok(cleared),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_with_a_young_message_is_where_the_next_purge_starts_again() {
        assert_eq!(Chunk::done(5, 2000, 1, true).next, None);
        assert_eq!(Chunk::done(5, 2000, 0, true).next, Some(2000));
        assert_eq!(Chunk::done(5, 2000, 0, false).next, None);
    }

    #[tokio::test]
    async fn chunks_run_until_one_stops_and_the_cursor_keeps_the_last_one_passed() {
        let cursor = AtomicI64::new(0);
        let mut seen = Vec::new();
        let cleared = in_chunks(&cursor, |after| {
            seen.push(after);
            let chunk = Chunk::done(3, after + CHUNK, i64::from(after >= 2 * CHUNK), true);
            async move { Ok(chunk) }
        })
        .await
        .unwrap();
        assert_eq!(cleared, 9);
        assert_eq!(seen, [0, CHUNK, 2 * CHUNK]);
        assert_eq!(cursor.load(Ordering::Relaxed), 2 * CHUNK);
    }
}
