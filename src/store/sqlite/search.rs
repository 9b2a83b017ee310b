//! Full-text search, indexed off the ingest path (docs/ARCHITECTURE.md §3).
//!
//! A write that stores or changes a message's text only queues its seq in
//! `search_pending`, in the same transaction. The indexer, a task of its own, gathers
//! what is queued for [`GATHER`] and indexes it through the writer in one request of up to
//! [`BATCH`] messages: FTS5 writes one segment per transaction, so a few large batches
//! cost far less than one small insert in every ingest batch, which leaves room for the
//! prefix indexes that let search as you type stream its newest matches. A search first
//! indexes whatever is still queued ([`catch_up`]), so it finds every message written
//! before it began.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::watch;

use super::readers::Readers;
use super::writer::Writer;
use crate::model::Part;
use crate::store::StoreError;

/// How long the indexer lets queued messages gather before it indexes them.
const GATHER: Duration = Duration::from_millis(50);
/// The most messages one indexing request takes.
const BATCH: usize = 1000;
/// The most queued messages a search indexes before it runs. Only a backlog larger than
/// this (the re-index after an upgrade) is searched as far as it has been indexed.
const CATCH_UP: usize = 5000;

/// Queues a message's text for the index: `fresh` for a new message (nothing to replace),
/// otherwise its entry is replaced. A new message without text is not queued.
pub fn queue(conn: &Connection, seq: i64, parts: &[Part], fresh: bool) -> Result<(), StoreError> {
    if fresh && !parts.iter().any(|p| p.text().is_some()) {
        return Ok(());
    }
    // A seq already queued keeps its flag: a new message edited before it was indexed
    // still has no entry to replace.
    conn.prepare_cached(
        "INSERT INTO search_pending (seq, fresh) VALUES (?1, ?2) ON CONFLICT (seq) DO NOTHING",
    )?
    .execute(params![seq, fresh])?;
    Ok(())
}

/// Indexes up to `limit` queued messages, newest first (after an upgrade that re-indexes,
/// recent messages are searchable first), and returns how many it took.
pub fn index_pending(conn: &Connection, limit: usize) -> Result<usize, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT p.seq, p.fresh, m.parts FROM search_pending p LEFT JOIN messages m ON m.seq = p.seq
         ORDER BY p.seq DESC LIMIT ?1",
    )?;
    let queued: Vec<(i64, bool, Option<String>)> = statement
        .query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let Some(&(oldest, ..)) = queued.last() else {
        return Ok(0);
    };
    for (seq, fresh, parts) in &queued {
        if !fresh {
            conn.prepare_cached("DELETE FROM message_text WHERE rowid = ?1")?
                .execute([seq])?;
        }
        // A message purged since it was queued has nothing left to index.
        let Some(parts) = parts else { continue };
        // Stored parts that no longer parse are not searchable, but must not stop the
        // index for every other message.
        let parts: Vec<Part> = serde_json::from_str(parts).unwrap_or_default();
        let text: Vec<&str> = parts.iter().filter_map(|p| p.text()).collect();
        if !text.is_empty() {
            conn.prepare_cached("INSERT INTO message_text (rowid, body) VALUES (?1, ?2)")?
                .execute(params![seq, text.join(" ")])?;
        }
    }
    // Everything queued from `oldest` up was taken, in this same transaction.
    conn.prepare_cached("DELETE FROM search_pending WHERE seq >= ?1")?
        .execute([oldest])?;
    Ok(queued.len())
}

/// Whether anything waits for the index (read from any connection).
pub fn anything_pending(conn: &Connection) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM search_pending LIMIT 1")?
        .query_row([], |_| Ok(()))
        .optional()?
        .is_some())
}

/// How many messages are queued for indexing.
pub fn backlog(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM search_pending")?
        .query_row([], |r| r.get::<_, i64>(0))?
        .max(0) as u64)
}

/// Indexes what is queued before a search runs, so it sees every message written before
/// it began (up to [`CATCH_UP`] of them).
pub async fn catch_up(writer: &Writer) -> Result<(), StoreError> {
    let mut left = CATCH_UP;
    while left > 0 {
        let limit = left.min(BATCH);
        let taken = writer.write(move |conn| index_pending(conn, limit)).await?;
        if taken < limit {
            break;
        }
        left -= taken;
    }
    Ok(())
}

/// The background indexer: runs until the store closes.
pub struct Indexer {
    task: tokio::task::JoinHandle<()>,
}

impl Indexer {
    /// Starts indexing what is queued now (what an earlier run left), then again a
    /// moment after each write the store reports in `changes` that left text queued.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        writer: Writer,
        readers: Readers,
        changes: watch::Receiver<u64>,
    ) -> Self {
        Self {
            task: runtime.spawn(run(writer, readers, changes)),
        }
    }

    /// Stops the indexer; what is still queued is indexed by the next run.
    pub fn stop(&self) {
        self.task.abort();
    }
}

async fn run(writer: Writer, readers: Readers, mut changes: watch::Receiver<u64>) {
    loop {
        loop {
            match writer.write(|conn| index_pending(conn, BATCH)).await {
                Ok(taken) if taken == BATCH => continue,
                Ok(_) => break,
                Err(_) if writer.is_closed() => return,
                Err(e) => {
                    // The queue is durable: nothing is lost, the next round tries again.
                    tracing::warn!(error = %e, "Could not index messages for search; will retry.");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
        loop {
            if changes.changed().await.is_err() {
                return;
            }
            tokio::time::sleep(GATHER).await;
            changes.borrow_and_update();
            // Most writes queue no text (deliveries, ticket changes, presence): a look
            // through a reader spares the writer an empty request for each of them.
            if readers.read(anything_pending).await.unwrap_or(true) {
                break;
            }
        }
    }
}

/// The longest prefix `message_text` indexes (migration 0017): a typed prefix up to this
/// long is one term of the index, whose matches stream newest first.
const LONGEST_INDEXED_PREFIX: usize = 8;
/// A longer prefix that begins at most this many indexed words is searched as those words.
const MOST_WORDS_FOR_A_PREFIX: usize = 32;

/// The words a rep typed.
fn typed_words(q: &str) -> Vec<&str> {
    q
        // FTS5 reads a NUL as the end of the query (a syntax error: 500), and it is no
        // part of a word anyway; PostgreSQL's search splits there too.
        .split(|ch: char| ch.is_whitespace() || ch == '\0')
        .filter(|w| !w.is_empty())
        .collect()
}

/// `word` as an FTS5 phrase: nothing in it is read as FTS syntax.
fn phrase(word: &str) -> String {
    format!("\"{}\"", word.replace('"', "\"\""))
}

/// Turns the words a rep typed into an FTS5 query: every word must appear (as a prefix for
/// the last one, unless it is a single character), and nothing typed is read as FTS syntax.
fn fts_query(typed: &[&str]) -> Option<String> {
    let last = typed.last()?;
    let mut query: Vec<String> = typed.iter().map(|w| phrase(w)).collect();
    if crate::desk::search::searched_as_prefix(last) {
        query.last_mut()?.push('*');
    }
    Some(query.join(" "))
}

/// [`fts_query`] for a search on `conn`. A last word longer than the prefix indexes is
/// searched as the indexed words it begins (`"a" AND ("word1" OR "word2")`): FTS5 would
/// build such a prefix's whole match list before its first row, 36 ms at 1M messages
/// for a word in every one, where words stream newest first. Only plain ASCII words
/// are expanded (their indexed form is their lowercase); anything else, a prefix of no
/// word or of too many, or a failed look-up is searched as a prefix, which finds the same.
pub fn fts_query_on(conn: &Connection, q: &str) -> Option<String> {
    let typed = typed_words(q);
    let (last, rest) = typed.split_last()?;
    let long = last.len() > LONGEST_INDEXED_PREFIX
        && last.bytes().all(|b| b.is_ascii_alphanumeric())
        && crate::desk::search::searched_as_prefix(last);
    if long {
        match words_beginning(conn, &last.to_ascii_lowercase()) {
            Ok(words) if (1..=MOST_WORDS_FOR_A_PREFIX).contains(&words.len()) => {
                let any: Vec<String> = words.iter().map(|w| phrase(w)).collect();
                let mut query: Vec<String> = rest.iter().map(|w| phrase(w)).collect();
                query.push(format!("({})", any.join(" OR ")));
                // Explicit: FTS5 does not read an implicit AND before a parenthesis.
                return Some(query.join(" AND "));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "Search vocabulary not read; searching the prefix.")
            }
        }
    }
    fts_query(&typed)
}

/// The indexed words that begin with `prefix`, up to one more than
/// [`MOST_WORDS_FOR_A_PREFIX`].
fn words_beginning(conn: &Connection, prefix: &str) -> Result<Vec<String>, StoreError> {
    // The index's terms, in the connection's own temp schema (readers open the database
    // read-only); a no-op once it exists. The `instance` view, not `row`: `row` counts
    // each term's documents before yielding it (23 ms for a word in 1M messages), where
    // an instance row is the term's first posting, a seek away.
    conn.execute_batch(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.search_terms
             USING fts5vocab(main, 'message_text', 'instance')",
    )?;
    // `>=` and `<=` only: fts5vocab seeks on those and scans for `>`. The word after
    // `word` is the first at or after `word` + U+0001, since no word holds a control
    // character; the largest character bounds the words that begin with `prefix`.
    let upper = format!("{prefix}\u{10FFFF}");
    let mut statement = conn.prepare_cached(
        "SELECT term FROM temp.search_terms WHERE term >= ?1 AND term <= ?2 LIMIT 1",
    )?;
    let mut words: Vec<String> = Vec::new();
    let mut from = prefix.to_owned();
    while words.len() <= MOST_WORDS_FOR_A_PREFIX {
        let Some(word) = statement
            .query_row(params![from, upper], |r| r.get::<_, String>(0))
            .optional()?
        else {
            break;
        };
        from = format!("{word}\u{1}");
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{ConversationFilter, PageRequest, Store};

    /// A store with one conversation whose messages `seqs` say `text`, queued for the
    /// index the way a write queues them, without telling the indexer; with `indexer`
    /// false, the indexer is stopped first, so only the test indexes.
    async fn store_with_queued(
        seqs: &[i64],
        text: &str,
        indexer: bool,
    ) -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
        if !indexer {
            store.indexer.stop();
        }
        let mut seed = String::from(
            "INSERT INTO contacts (id, created_at, updated_at) VALUES ('ctc_a', 1, 1);
             INSERT INTO tickets (id, pipeline, status, created_at, updated_at)
                 VALUES ('tkt_a', 'support', 'new', 1, 1);
             INSERT INTO conversations (id, channel_id, thread_key, status, ticket_id,
                 contact_id, created_at, last_message_at)
                 VALUES ('conv_a', 'demo', 'k', 'open', 'tkt_a', 'ctc_a', 1, 1);",
        );
        for seq in seqs {
            seed += &format!(
                "INSERT INTO messages (seq, id, conversation_id, channel_id, direction,
                     platform_message_id, sender_type, sender_id, parts, delivery_status,
                     created_at)
                     VALUES ({seq}, 'msg_{seq}', 'conv_a', 'demo', 'inbound', 'p{seq}',
                         'contact', 'ctc_a', '[{{\"type\":\"text\",\"text\":\"{text} {seq}\"}}]',
                         'received', 1);
                 INSERT INTO search_pending (seq, fresh) VALUES ({seq}, 1);"
            );
        }
        store.execute_for_tests(&seed).await.unwrap();
        (store, dir)
    }

    async fn count(store: &SqliteStore, sql: &'static str) -> i64 {
        store
            .readers
            .read(move |conn| Ok(conn.query_row(sql, [], |r| r.get(0))?))
            .await
            .unwrap()
    }

    async fn indexed(store: &SqliteStore, fts: &str) -> Vec<i64> {
        let fts = fts.to_owned();
        store
            .readers
            .read(move |conn| {
                let mut statement = conn.prepare(
                    "SELECT rowid FROM message_text WHERE message_text MATCH ?1 ORDER BY rowid",
                )?;
                let seqs: Result<Vec<i64>, _> = statement.query_map([fts], |r| r.get(0))?.collect();
                Ok(seqs?)
            })
            .await
            .unwrap()
    }

    /// What a search for `q` runs on a reader, and the messages it finds, newest first.
    async fn searched(store: &SqliteStore, q: &str) -> (String, Vec<i64>) {
        let q = q.to_owned();
        store
            .readers
            .read(move |conn| {
                let fts = fts_query_on(conn, &q).expect("a query");
                let mut statement = conn.prepare(
                    "SELECT rowid FROM message_text WHERE message_text MATCH ?1
                     ORDER BY rowid DESC",
                )?;
                let seqs: Result<Vec<i64>, _> =
                    statement.query_map([&fts], |r| r.get(0))?.collect();
                Ok((fts, seqs?))
            })
            .await
            .unwrap()
    }

    async fn store_with_text(texts: &[&str]) -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
        let mut seed = String::new();
        for (seq, text) in texts.iter().enumerate() {
            seed += &format!("INSERT INTO message_text (rowid, body) VALUES ({seq}, '{text}');");
        }
        store.execute_for_tests(&seed).await.unwrap();
        (store, dir)
    }

    #[tokio::test]
    async fn a_last_word_longer_than_the_prefix_indexes_is_searched_as_the_words_it_begins() {
        let (store, _dir) = store_with_text(&[
            "Parcel Deliverie5 delayed",
            "deliveries delayed again",
            "delivered delayed",
            "deliveries on time",
            // A word that begins with another is found too.
            "deliveriesxyz delayed",
        ])
        .await;
        let (fts, found) = searched(&store, "delayed DELIVERIE").await;
        assert_eq!(
            fts,
            r#""delayed" AND ("deliverie5" OR "deliveries" OR "deliveriesxyz")"#
        );
        assert_eq!(found, [4, 1, 0]);
        // Up to the longest indexed prefix, the prefix itself is searched.
        assert_eq!(
            searched(&store, "delayed DELIVERI").await,
            (r#""delayed" "DELIVERI"*"#.into(), vec![4, 1, 0])
        );
    }

    #[tokio::test]
    async fn a_long_prefix_of_no_word_many_words_or_other_letters_is_searched_as_a_prefix() {
        let many: Vec<String> = (0..=MOST_WORDS_FOR_A_PREFIX)
            .map(|n| format!("longprefix{n}"))
            .collect();
        let mut texts: Vec<&str> = many.iter().map(String::as_str).collect();
        texts.push("déjàvuxxxxx");
        let (store, _dir) = store_with_text(&texts).await;
        let (fts, found) = searched(&store, "longprefix").await;
        assert_eq!(fts, r#""longprefix"*"#);
        assert_eq!(found.len(), MOST_WORDS_FOR_A_PREFIX + 1);
        assert_eq!(
            searched(&store, "nosuchword").await,
            (r#""nosuchword"*"#.into(), vec![])
        );
        assert_eq!(searched(&store, "déjàvuxxx").await.0, r#""déjàvuxxx"*"#);
    }

    #[tokio::test]
    async fn queued_messages_are_indexed_newest_first_a_batch_at_a_time() {
        let (store, _dir) = store_with_queued(&[1, 2, 3], "parcel", false).await;
        let taken = store
            .writer
            .write(|conn| index_pending(conn, 2))
            .await
            .unwrap();
        assert_eq!(taken, 2);
        assert_eq!(indexed(&store, "parcel").await, [2, 3]);
        assert_eq!(
            count(&store, "SELECT seq FROM search_pending").await,
            1,
            "the oldest waits for the next batch"
        );
        let taken = store
            .writer
            .write(|conn| index_pending(conn, 2))
            .await
            .unwrap();
        assert_eq!(taken, 1);
        assert_eq!(indexed(&store, "parc*").await, [1, 2, 3]);
    }

    #[tokio::test]
    async fn an_edit_replaces_the_entry_and_a_purged_message_leaves_none() {
        let (store, _dir) = store_with_queued(&[1, 2], "parcel", false).await;
        store
            .writer
            .write(|conn| index_pending(conn, BATCH))
            .await
            .unwrap();
        store
            .execute_for_tests(
                "UPDATE messages SET parts = '[{\"type\":\"text\",\"text\":\"refund\"}]' WHERE seq = 1;
                 INSERT INTO search_pending (seq, fresh) VALUES (1, 0);
                 DELETE FROM messages WHERE seq = 2;
                 INSERT INTO search_pending (seq, fresh) VALUES (2, 0);",
            )
            .await
            .unwrap();
        store
            .writer
            .write(|conn| index_pending(conn, BATCH))
            .await
            .unwrap();
        assert_eq!(indexed(&store, "refund").await, [1]);
        assert!(indexed(&store, "parcel").await.is_empty());
        assert_eq!(
            count(&store, "SELECT count(*) FROM search_pending").await,
            0
        );
    }

    #[tokio::test]
    async fn the_indexer_indexes_what_writes_queued_without_waiting_for_a_search() {
        let (store, _dir) = store_with_queued(&[1, 2], "parcel", true).await;
        store.changed(Ok(())).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while count(&store, "SELECT count(*) FROM search_pending").await > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the indexer left the queue"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(indexed(&store, "parcel").await, [1, 2]);
    }

    #[tokio::test]
    async fn a_search_finds_a_message_still_waiting_for_the_indexer() {
        // Nothing told the indexer: only the search's own catch-up can index it.
        let (store, _dir) = store_with_queued(&[1], "parcel", false).await;
        let filter = ConversationFilter {
            q: Some("parc".into()),
            ..ConversationFilter::default()
        };
        let page = PageRequest {
            limit: 10,
            cursor: None,
        };
        let found = store.conversations(&filter, &page).await.unwrap().items;
        assert_eq!(found.len(), 1);
        assert_eq!(
            count(&store, "SELECT count(*) FROM search_pending").await,
            0
        );
    }

    #[tokio::test]
    async fn an_earlier_run_s_queue_is_indexed_at_start_up() {
        let (store, dir) = store_with_queued(&[1], "parcel", false).await;
        store.close().await;
        let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while count(&store, "SELECT count(*) FROM search_pending").await > 0 {
            assert!(std::time::Instant::now() < deadline, "nothing indexed it");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(indexed(&store, "parcel").await, [1]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_that_queue_no_text_cost_the_writer_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        SqliteStore::open(&path).await.unwrap().close().await;
        // The store's own writer reports batches to the metrics; this one counts them.
        let batches = Arc::new(AtomicUsize::new(0));
        let counted = batches.clone();
        let writer = Writer::start(
            rusqlite::Connection::open(&path).unwrap(),
            super::super::writer::Durability::at_commit(),
            Box::new(move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .unwrap();
        let readers = Readers::open(&path, 1).unwrap();
        let changes = watch::Sender::new(0u64);
        let indexer = Indexer::start(
            &tokio::runtime::Handle::current(),
            writer.clone(),
            readers.clone(),
            changes.subscribe(),
        );
        let settled = |want: usize| {
            let batches = batches.clone();
            async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while batches.load(Ordering::SeqCst) < want {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the indexer never ran"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        settled(1).await; // the look at what an earlier run left
        for _ in 0..5 {
            changes.send_modify(|n| *n += 1);
            tokio::time::sleep(GATHER * 2).await;
        }
        assert_eq!(
            batches.load(Ordering::SeqCst),
            1,
            "writes that queued no text sent the writer requests"
        );

        writer
            .write(|conn| {
                conn.execute_batch("INSERT INTO search_pending (seq, fresh) VALUES (7, 0)")?;
                Ok(())
            })
            .await
            .unwrap();
        changes.send_modify(|n| *n += 1);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left: i64 = readers
                .read(|conn| {
                    Ok(conn.query_row("SELECT count(*) FROM search_pending", [], |r| r.get(0))?)
                })
                .await
                .unwrap();
            if left == 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "queued text was never indexed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            batches.load(Ordering::SeqCst),
            3,
            "that write, then the indexer's"
        );
        indexer.stop();
        writer.stop().await;
    }
}
