//! The embedded store: one SQLite file in WAL mode. Writes are group-committed by one
//! writer thread ([`writer`]) with `synchronous = NORMAL`, and a syncer thread flushes the
//! log before the webhook or call that caused a commit is answered, while the writer runs
//! the next batch. Reads use a pool of read-only connections, and a checkpointer thread
//! copies the log into the database file off the writer's path.
//!
//! One process owns the file (an exclusive lock on `<file>.lock`), which is what lets it
//! take back every outbox lease at start-up: nobody else can be holding one.

mod checkpointer;
mod comments;
mod console;
mod contacts;
mod events;
mod hubspot;
mod imap;
mod tickets;
pub(crate) use hubspot::read_hubspot_queues;
mod ingest;
#[cfg(test)]
mod migration_tests;
mod outbox;
mod queries;
mod readers;
mod replies;
mod retention;
mod routing;
mod search;
mod sessions;
mod snippets;
mod uploads;
pub mod writer;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, ErrorCode};

use self::checkpointer::Checkpointer;
use self::readers::Readers;
use self::writer::Writer;
use crate::model::event::InboundEvent;
use crate::model::outbound::Outbound;
use crate::model::{
    Contact, ContactId, Conversation, ConversationId, JobId, Message, MessageId, Ticket, TicketId,
    from_millis,
};
use crate::store::sequences::{self, ready};
use crate::store::{
    Actor, AuditEntry, ChannelCounts, ChannelRules, ContactUpdate, ConversationFilter,
    ConversationUpdate, Delivery, Detail, DigestLinks, DigestRep, Event, EventFilter,
    IngestOutcome, Job, JobOutcome, JobState, LeaseRequest, NewComment, NewContact, NewReply, Page,
    PageRequest, QueueStats, SaveMode, Store, StoreError, StoredSnippet, TicketChange,
    TicketFilter, Trashed,
};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_init.sql"),
    include_str!("../../../migrations/sqlite/0002_edits_and_notes.sql"),
    include_str!("../../../migrations/sqlite/0003_tickets_audit_search.sql"),
    include_str!("../../../migrations/sqlite/0004_events.sql"),
    include_str!("../../../migrations/sqlite/0005_routing.sql"),
    include_str!("../../../migrations/sqlite/0006_notifications.sql"),
    include_str!("../../../migrations/sqlite/0007_inboxes_comments_contacts_snippets.sql"),
    include_str!("../../../migrations/sqlite/0008_job_heads_last_inbound.sql"),
    include_str!("../../../migrations/sqlite/0009_actor_kinds.sql"),
    include_str!("../../../migrations/sqlite/0011_console_sessions.sql"),
    include_str!("../../../migrations/sqlite/0012_hubspot.sql"),
    include_str!("../../../migrations/sqlite/0013_hubspot_webhook.sql"),
    include_str!("../../../migrations/sqlite/0014_console_reads.sql"),
    include_str!("../../../migrations/sqlite/0015_uploads.sql"),
    include_str!("../../../migrations/sqlite/0016_imap_cursors.sql"),
    include_str!("../../../migrations/sqlite/0017_search_indexer.sql"),
];

const READERS: usize = 4;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::OutOfMemory
                | ErrorCode::FileLockingProtocolFailed,
            ) => StoreError::Unavailable(Detail::caused_by(e.to_string(), e)),
            _ => StoreError::Internal(Detail::caused_by(e.to_string(), e)),
        }
    }
}

/// True when a statement broke a constraint: a UNIQUE index (one open conversation per
/// thread, a snippet's id) or a foreign key.
pub(crate) fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
}

/// The one place a constraint violation becomes a store error the caller words.
pub(crate) trait OnConstraint<T> {
    /// A constraint violation answers `conflict()`; any other error maps as usual.
    fn on_constraint(self, conflict: impl FnOnce() -> StoreError) -> Result<T, StoreError>;
}

impl<T> OnConstraint<T> for rusqlite::Result<T> {
    fn on_constraint(self, conflict: impl FnOnce() -> StoreError) -> Result<T, StoreError> {
        self.map_err(|e| {
            if is_constraint(&e) {
                conflict()
            } else {
                e.into()
            }
        })
    }
}

/// The writer's connection, inside its transaction, as the shared sequences
/// (`store::sequences`) take it; [`sequences::ready`] runs them to the end in one poll.
pub(crate) struct WriterTx<'c>(pub(crate) &'c Connection);

impl sequences::Tx for WriterTx<'_> {
    async fn emit(
        &mut self,
        kind: &str,
        conversation: &str,
        data: serde_json::Value,
        at: i64,
    ) -> Result<(), StoreError> {
        events::emit(self.0, kind, conversation, data, at)
    }

    async fn audit(&mut self, row: sequences::AuditRow<'_>) -> Result<(), StoreError> {
        tickets::audit(self.0, row)
    }
}

pub struct SqliteStore {
    writer: Writer,
    indexer: search::Indexer,
    checkpointer: Checkpointer,
    readers: Readers,
    path: PathBuf,
    /// Held until `close` (or process exit, when the OS releases it).
    lock: std::sync::Mutex<Option<File>>,
    /// Bumped after writes that may have produced events (SSE streams wait on it).
    changes: tokio::sync::watch::Sender<u64>,
    /// Messages up to this seq have had their raw payloads cleared: each purge goes on
    /// from here rather than walking the table from the start.
    raw_cleared_through: std::sync::atomic::AtomicI64,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_owned();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || Self::open_blocking(path, &runtime))
            .await
            .map_err(|e| StoreError::Internal(Detail::caused_by("open task failed", e)))?
    }

    fn open_blocking(path: PathBuf, runtime: &tokio::runtime::Handle) -> Result<Self, StoreError> {
        let unavailable = |what: &str, e: std::io::Error| {
            StoreError::Unavailable(format!("{what} {}: {e}", path.display()).into())
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| unavailable("cannot create the folder of", e))?;
        }
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| unavailable("cannot open the lock file of", e))?;
        lock.try_lock().map_err(|_| {
            StoreError::Unavailable(format!(
                "{} is in use by another channel-bridge process (SQLite serves one process; use PostgreSQL for several)",
                path.display()
            ).into())
        })?;

        let conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // journal_size_limit: when the writer restarts a fully checkpointed log, it cuts
        // the file back to this size instead of keeping a burst's (or a full disk's) peak.
        // The migrations and the lease release below run with FULL; the writer thread
        // runs with NORMAL, its syncer flushing the log (writer.rs).
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA temp_store = MEMORY;
             PRAGMA wal_autocheckpoint = 8000;
             PRAGMA journal_size_limit = {};
             PRAGMA cache_size = -32768;",
            checkpointer::WAL_SIZE_LIMIT
        ))?;
        migrate(&conn)?;
        // This process owns the file, so any lease left from before was a crashed run's.
        let released = outbox::release_all(&conn, None)?;
        if released > 0 {
            tracing::info!(released, "Took back outbox leases left by an earlier run.");
        }
        let readers = Readers::open(&path, READERS)?;
        let durability = durability(&conn, &path)?;
        let power_cut = durability.fault.is_some();
        let writer = Writer::start(conn, durability, Box::new(crate::telemetry::record_batch))
            .map_err(|e| {
                StoreError::Internal(Detail::caused_by("cannot start the writer thread", e))
            })?;
        let checkpointer = if power_cut {
            // A simulated power cut needs a log that only grows (writer/fault.rs).
            Checkpointer::idle()
        } else {
            Checkpointer::start(&path, checkpointer::WAL_SIZE_LIMIT)?
        };
        let changes = tokio::sync::watch::Sender::new(0);
        let indexer = search::Indexer::start(
            runtime,
            writer.clone(),
            readers.clone(),
            changes.subscribe(),
        );
        Ok(Self {
            writer,
            indexer,
            checkpointer,
            readers,
            path,
            lock: std::sync::Mutex::new(Some(lock)),
            changes,
            raw_cleared_through: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs raw SQL (one or more `;`-separated statements) in one transaction on the
    /// writer thread and returns how many rows it changed. Only for tests that seed what
    /// the `Store` API cannot make (timestamps in the past); the PostgreSQL store has the
    /// same method, so such seeding stays portable SQL.
    #[doc(hidden)]
    pub async fn execute_for_tests(&self, sql: &str) -> Result<u64, StoreError> {
        let sql = sql.to_owned();
        self.writer
            .write(move |conn| {
                let before = conn.total_changes();
                conn.execute_batch(&sql)?;
                Ok(conn.total_changes() - before)
            })
            .await
    }

    /// How many messages wait for the search indexer (what a fresh bulk load still has
    /// to index).
    pub async fn search_backlog(&self) -> Result<u64, StoreError> {
        self.readers.read(search::backlog).await
    }

    /// Tells event streams to look for new events.
    fn changed<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if result.is_ok() {
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        result
    }
}

/// Switches the writer's connection to `synchronous = NORMAL` and hands its syncer the
/// log to flush, after flushing once what start-up wrote: the log file (created by the
/// first open, or recovered from a crash in which the OS kept frames nobody flushed) and
/// the folder that holds its name.
fn durability(conn: &Connection, path: &Path) -> Result<writer::Durability, StoreError> {
    let unavailable = |what: &str, e: std::io::Error| {
        StoreError::Unavailable(format!("{what} {}: {e}", path.display()).into())
    };
    let mut wal_path = path.as_os_str().to_owned();
    wal_path.push("-wal");
    let wal_path = PathBuf::from(wal_path);
    let fault = writer::fault::PowerCut::from_env(&wal_path);
    if fault.is_some() {
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
    // SQLite keeps the log (same file, same inode) while any connection is open; the
    // syncer holds it open until the writer stops.
    let wal = File::open(&wal_path).map_err(|e| unavailable("cannot open the log of", e))?;
    wal.sync_all()
        .map_err(|e| unavailable("cannot flush the log of", e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| unavailable("cannot flush the folder of", e))?;
    }
    Ok(writer::Durability {
        wal: Some(wal),
        mark: Some(Box::new(events::latest)),
        fault,
    })
}

/// Applies the migrations not yet applied, each in its own transaction.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let applied: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Internal(format!(
            "the database is at schema version {applied}, newer than this binary knows ({}); run a newer channel-bridge",
            MIGRATIONS.len()
        ).into()));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))
        .inspect_err(|_| {
            let _ = conn.execute_batch("ROLLBACK");
        })?;
        tracing::info!(version = i + 1, "Applied database migration.");
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn hubspot(&self) -> &dyn crate::store::hubspot::HubspotStore {
        self
    }

    fn imap(&self) -> &dyn crate::store::imap::ImapStore {
        self
    }

    async fn ingest(
        &self,
        rules: &ChannelRules,
        events: Vec<InboundEvent>,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let rules = rules.clone();
        let result = self
            .writer
            .write(move |conn| ingest::ingest(conn, &rules, &events, now_ms()))
            .await;
        self.changed(result)
    }

    async fn create_reply(&self, reply: NewReply) -> Result<Message, StoreError> {
        let result = self
            .writer
            .write(move |conn| {
                let tx = &mut WriterTx(conn);
                ready(sequences::replies::create_reply(tx, &reply, now_ms()))
            })
            .await;
        self.changed(result)
    }

    async fn conversation(&self, id: &ConversationId) -> Result<Conversation, StoreError> {
        let id = id.clone();
        self.readers
            .read(move |conn| queries::conversation(conn, &id))
            .await
    }

    async fn update_conversation(
        &self,
        id: &ConversationId,
        update: ConversationUpdate,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let (id, actor) = (id.clone(), actor.clone());
        let result = self
            .writer
            .write(move |conn| {
                ready(sequences::tickets::update_conversation(
                    &mut WriterTx(conn),
                    &id,
                    &update,
                    &actor,
                    now_ms(),
                ))
            })
            .await;
        self.changed(result)
    }

    async fn ticket(&self, id: &TicketId) -> Result<Ticket, StoreError> {
        let id = id.clone();
        self.readers
            .read(move |conn| tickets::ticket(conn, &id))
            .await
    }

    async fn update_ticket(
        &self,
        id: &TicketId,
        change: TicketChange,
        actor: &Actor,
    ) -> Result<Ticket, StoreError> {
        let (id, actor) = (id.clone(), actor.clone());
        let result = self
            .writer
            .write(move |conn| {
                ready(sequences::tickets::apply_change(
                    &mut WriterTx(conn),
                    &id,
                    &change,
                    &actor,
                    now_ms(),
                ))
            })
            .await;
        self.changed(result)
    }

    async fn delete_conversation(
        &self,
        id: &ConversationId,
        actor: &Actor,
    ) -> Result<Trashed, StoreError> {
        let (id, actor) = (id.clone(), actor.clone());
        self.writer
            .write(move |conn| {
                ready(sequences::tickets::delete_conversation(
                    &mut WriterTx(conn),
                    &id,
                    &actor,
                    now_ms(),
                ))
            })
            .await
    }

    async fn delete_ticket(&self, id: &TicketId, actor: &Actor) -> Result<Trashed, StoreError> {
        let (id, actor) = (id.clone(), actor.clone());
        self.writer
            .write(move |conn| {
                ready(sequences::tickets::delete_ticket(
                    &mut WriterTx(conn),
                    &id,
                    &actor,
                    now_ms(),
                ))
            })
            .await
    }

    async fn tickets(
        &self,
        filter: &TicketFilter,
        page: &PageRequest,
    ) -> Result<Page<Ticket>, StoreError> {
        let before = crate::store::parse_seq_cursor(&page.cursor)?;
        let filter = filter.clone();
        let limit = page.limit;
        self.readers
            .read(move |conn| tickets::tickets(conn, &filter, before, limit))
            .await
    }

    async fn restore_ticket(&self, id: &TicketId, actor: &Actor) -> Result<Ticket, StoreError> {
        let (id, actor) = (id.clone(), actor.clone());
        self.writer
            .write(move |conn| {
                ready(sequences::tickets::restore_ticket(
                    &mut WriterTx(conn),
                    &id,
                    &actor,
                    now_ms(),
                ))
            })
            .await
    }

    async fn purge_trash(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = before.timestamp_millis();
        self.writer
            .write(move |conn| tickets::purge_trash(conn, before))
            .await
    }

    async fn purge_raw_payloads(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = before.timestamp_millis();
        crate::store::purge::in_chunks(&self.raw_cleared_through, |after| {
            self.writer
                .write(move |conn| retention::clear_raw_chunk(conn, after, before))
        })
        .await
    }

    async fn ticket_history(&self, id: &TicketId) -> Result<Vec<AuditEntry>, StoreError> {
        let id = id.clone();
        self.readers
            .read(move |conn| tickets::history(conn, &id))
            .await
    }

    async fn contact(&self, id: &ContactId) -> Result<Contact, StoreError> {
        let id = id.clone();
        self.readers
            .read(move |conn| tickets::contact(conn, &id))
            .await
    }

    async fn update_contact(
        &self,
        id: &ContactId,
        update: ContactUpdate,
    ) -> Result<Contact, StoreError> {
        let id = id.clone();
        self.writer
            .write(move |conn| {
                ready(sequences::tickets::update_contact(
                    &mut WriterTx(conn),
                    &id,
                    &update,
                    now_ms(),
                ))
            })
            .await
    }

    async fn conversations(
        &self,
        filter: &ConversationFilter,
        page: &PageRequest,
    ) -> Result<Page<Conversation>, StoreError> {
        let cursor = crate::store::parse_activity_cursor(&page.cursor)?;
        let filter = filter.clone();
        let limit = page.limit;
        if filter.q.is_some() && self.readers.read(search::anything_pending).await? {
            search::catch_up(&self.writer).await?;
        }
        self.readers
            .read(move |conn| queries::conversations(conn, &filter, cursor, limit))
            .await
    }

    async fn add_comment(&self, comment: NewComment) -> Result<Message, StoreError> {
        let result = self
            .writer
            .write(move |conn| {
                let tx = &mut WriterTx(conn);
                ready(sequences::comments::add(tx, &comment, now_ms()))
            })
            .await;
        self.changed(result)
    }

    async fn create_contact(
        &self,
        contact: NewContact,
        actor: &Actor,
    ) -> Result<Contact, StoreError> {
        let actor = actor.clone();
        self.writer
            .write(move |conn| {
                let tx = &mut WriterTx(conn);
                ready(sequences::contacts::create(tx, &contact, &actor, now_ms()))
            })
            .await
    }

    async fn merge_contacts(
        &self,
        into: &ContactId,
        from: &ContactId,
        actor: &Actor,
    ) -> Result<Contact, StoreError> {
        let (into, from, actor) = (into.clone(), from.clone(), actor.clone());
        let result = self
            .writer
            .write(move |conn| {
                let tx = &mut WriterTx(conn);
                ready(sequences::contacts::merge(
                    tx,
                    &into,
                    &from,
                    &actor,
                    now_ms(),
                ))
            })
            .await;
        self.changed(result)
    }

    async fn contact_history(&self, id: &ContactId) -> Result<Vec<AuditEntry>, StoreError> {
        let id = id.clone();
        self.readers
            .read(move |conn| contacts::history(conn, &id))
            .await
    }

    async fn conversation_counts(&self) -> Result<Vec<ChannelCounts>, StoreError> {
        self.readers.read(contacts::counts).await
    }

    async fn snippets(&self) -> Result<Vec<StoredSnippet>, StoreError> {
        self.readers.read(snippets::list).await
    }

    async fn save_snippet(
        &self,
        id: &str,
        text: &str,
        by: &str,
        mode: SaveMode,
    ) -> Result<StoredSnippet, StoreError> {
        let (id, text, by) = (id.to_owned(), text.to_owned(), by.to_owned());
        self.writer
            .write(move |conn| snippets::save(conn, &id, &text, &by, mode, now_ms()))
            .await
    }

    async fn delete_snippet(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.writer
            .write(move |conn| snippets::delete(conn, &id))
            .await
    }

    async fn messages(
        &self,
        conversation: &ConversationId,
        page: &PageRequest,
    ) -> Result<Page<Message>, StoreError> {
        let after = crate::store::parse_seq_cursor(&page.cursor)?;
        let conversation = conversation.clone();
        let limit = page.limit;
        self.readers
            .read(move |conn| queries::messages(conn, &conversation, after, limit))
            .await
    }

    async fn message(&self, id: &MessageId) -> Result<Message, StoreError> {
        let id = id.clone();
        self.readers
            .read(move |conn| queries::message(conn, &id))
            .await
    }

    async fn message_raw(&self, id: &MessageId) -> Result<Option<serde_json::Value>, StoreError> {
        let id = id.clone();
        let raw: Option<String> = self
            .readers
            .read(move |conn| {
                use rusqlite::OptionalExtension;
                Ok(conn
                    .prepare_cached("SELECT raw FROM messages WHERE id = ?1")?
                    .query_row([id.as_str()], |r| r.get::<_, Option<String>>(0))
                    .optional()?
                    .flatten())
            })
            .await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    async fn lease_jobs(&self, request: &LeaseRequest) -> Result<Vec<Job>, StoreError> {
        let request = request.clone();
        self.writer
            .write(move |conn| outbox::lease(conn, &request))
            .await
    }

    async fn next_due(&self, channels: &[String]) -> Result<Option<DateTime<Utc>>, StoreError> {
        let channels = channels.to_vec();
        let due = self
            .readers
            .read(move |conn| outbox::next_due(conn, &channels))
            .await?;
        Ok(due.map(from_millis))
    }

    async fn outbound(&self, message: &MessageId) -> Result<Outbound, StoreError> {
        let id = message.clone();
        self.readers
            .read(move |conn| queries::outbound(conn, &id))
            .await
    }

    async fn finish_job(
        &self,
        job: &Job,
        owner: &str,
        outcome: JobOutcome,
    ) -> Result<(), StoreError> {
        let job = job.clone();
        let owner = owner.to_owned();
        let result = self
            .writer
            .write(move |conn| outbox::finish(conn, &job, &owner, &outcome, now_ms()))
            .await;
        self.changed(result)
    }

    async fn events_after(
        &self,
        after: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let filter = filter.clone();
        // A stream tells a client only what is durable: events of a batch still being
        // flushed wait for the next look (the `changes` bump after that batch's answer).
        let through = self.writer.durable_mark();
        self.readers
            .read(move |conn| events::after(conn, after, through, &filter, limit))
            .await
    }

    async fn analytics(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<crate::desk::analytics::Facts, StoreError> {
        let (from, to) = (from.timestamp_millis(), to.timestamp_millis());
        self.readers
            .read(move |conn| tickets::analytics(conn, from, to))
            .await
    }

    async fn set_presence(
        &self,
        rep: &str,
        status: &str,
        channels: Vec<ChannelRules>,
    ) -> Result<usize, StoreError> {
        let (rep, status) = (rep.to_owned(), status.to_owned());
        let result = self
            .writer
            .write(move |conn| {
                let now = now_ms();
                routing::set_presence(conn, &rep, &status, now)?;
                match (status.as_str(), channels.first()) {
                    ("online", Some(first)) => {
                        let timeout = first.presence_timeout_ms;
                        ready(sequences::routing::backfill(
                            &mut WriterTx(conn),
                            &channels,
                            now,
                            timeout,
                        ))
                    }
                    _ => Ok(0),
                }
            })
            .await;
        self.changed(result)
    }

    async fn backfill(&self, channels: Vec<ChannelRules>) -> Result<usize, StoreError> {
        let result = self
            .writer
            .write(move |conn| match channels.first() {
                Some(first) => {
                    let (now, timeout) = (now_ms(), first.presence_timeout_ms);
                    ready(sequences::routing::backfill(
                        &mut WriterTx(conn),
                        &channels,
                        now,
                        timeout,
                    ))
                }
                None => Ok(0),
            })
            .await;
        self.changed(result)
    }

    async fn rep_states(
        &self,
        reps: Vec<String>,
        presence_timeout_ms: i64,
    ) -> Result<std::collections::HashMap<String, (String, u32)>, StoreError> {
        self.readers
            .read(move |conn| routing::reps(conn, &reps, now_ms(), presence_timeout_ms))
            .await
    }

    async fn set_notify(&self, rep: &str, enabled: bool) -> Result<(), StoreError> {
        let rep = rep.to_owned();
        self.writer
            .write(move |conn| routing::set_notify(conn, &rep, enabled))
            .await
    }

    async fn notify_choices(&self) -> Result<std::collections::HashMap<String, bool>, StoreError> {
        self.readers.read(routing::notify_choices).await
    }

    async fn queue_digests(
        &self,
        reps: Vec<DigestRep>,
        links: DigestLinks,
        interval_ms: i64,
        presence_timeout_ms: i64,
    ) -> Result<usize, StoreError> {
        self.writer
            .write(move |conn| {
                routing::queue_digests(
                    conn,
                    &reps,
                    &links,
                    now_ms(),
                    interval_ms,
                    presence_timeout_ms,
                )
            })
            .await
    }

    async fn latest_event(&self) -> Result<i64, StoreError> {
        let durable = self.writer.durable_mark();
        let latest = self.readers.read(events::latest).await?;
        Ok(latest.min(durable))
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let owner = owner.to_owned();
        self.writer
            .write(move |conn| outbox::release_all(conn, Some(&owner)))
            .await
    }

    async fn deliveries(
        &self,
        state: JobState,
        page: &PageRequest,
    ) -> Result<Page<Delivery>, StoreError> {
        let after = crate::store::parse_seq_cursor(&page.cursor)?;
        let limit = page.limit;
        self.readers
            .read(move |conn| outbox::list(conn, state, after, limit))
            .await
    }

    async fn retry_delivery(&self, id: &JobId, now: DateTime<Utc>) -> Result<Delivery, StoreError> {
        let id = id.clone();
        let now = now.timestamp_millis();
        self.writer
            .write(move |conn| outbox::retry(conn, &id, now))
            .await
    }

    async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let now = now_ms();
        self.readers
            .read(move |conn| outbox::stats(conn, now))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.readers
            .read(|conn| {
                Ok(conn
                    .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                    .map(|_| ())?)
            })
            .await
    }

    async fn create_session(
        &self,
        session: &crate::store::ConsoleSession,
    ) -> Result<(), StoreError> {
        let session = session.clone();
        self.writer
            .write(move |conn| sessions::create(conn, &session))
            .await
    }

    async fn session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::store::ConsoleSession>, StoreError> {
        let id_hash = id_hash.to_owned();
        self.readers
            .read(move |conn| sessions::find(conn, &id_hash, now))
            .await
    }

    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let id_hash = id_hash.to_owned();
        self.writer
            .write(move |conn| sessions::delete(conn, &id_hash))
            .await
    }

    async fn save_upload(&self, upload: &crate::store::Upload) -> Result<(), StoreError> {
        let upload = upload.clone();
        self.writer
            .write(move |conn| uploads::save(conn, &upload))
            .await
    }

    async fn upload(&self, token: &str) -> Result<Option<crate::store::Upload>, StoreError> {
        let token = token.to_owned();
        self.readers
            .read(move |conn| uploads::find(conn, &token))
            .await
    }

    async fn purge_uploads(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.writer
            .write(move |conn| uploads::purge(conn, before))
            .await
    }

    async fn delivery_summary(&self) -> Result<Vec<crate::store::ChannelDeliveries>, StoreError> {
        self.readers.read(console::delivery_summary).await
    }

    async fn last_inbound(
        &self,
        channels: &[String],
    ) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError> {
        let channels = channels.to_vec();
        self.readers
            .read(move |conn| console::last_inbound(conn, &channels))
            .await
    }

    async fn mark_read(
        &self,
        reader: &str,
        conversation: &ConversationId,
    ) -> Result<(), StoreError> {
        let (reader, conversation) = (reader.to_owned(), conversation.clone());
        self.writer
            .write(move |conn| console::mark_read(conn, &reader, &conversation))
            .await
    }

    async fn conversation_marks(
        &self,
        reader: &str,
        conversations: &[ConversationId],
    ) -> Result<Vec<crate::store::ConversationMarks>, StoreError> {
        let (reader, conversations) = (reader.to_owned(), conversations.to_vec());
        self.readers
            .read(move |conn| console::marks(conn, &reader, &conversations))
            .await
    }

    async fn close(&self) {
        self.indexer.stop();
        self.writer.stop().await;
        self.checkpointer.stop();
        self.readers.close();
        // Closing the file releases the lock, so a new store may open the database.
        self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}
