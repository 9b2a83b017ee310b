//! The embedded store: one SQLite file in WAL mode with `synchronous = FULL`, so a commit
//! is on disk before the webhook that caused it is acknowledged. Writes are group-committed
//! by one writer thread ([`writer`]); reads use a pool of read-only connections.
//!
//! One process owns the file (an exclusive lock on `<file>.lock`), which is what lets it
//! take back every outbox lease at start-up: nobody else can be holding one.

mod desk;
mod events;
mod ingest;
mod outbox;
mod queries;
mod readers;
mod routing;
pub mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, ErrorCode};

use self::readers::Readers;
use self::writer::Writer;
use crate::adapters::{InboundEvent, Outbound};
use crate::model::{
    Contact, ContactId, Conversation, ConversationId, JobId, Message, MessageId, Ticket, TicketId,
    from_millis,
};
use crate::store::{
    Actor, AuditEntry, ChannelRules, ContactUpdate, ConversationFilter, ConversationUpdate,
    Delivery, DigestRep, Event, EventFilter, IngestOutcome, Job, JobOutcome, JobState,
    LeaseRequest, NewReply, Page, PageRequest, QueueStats, Store, StoreError, TicketChange,
};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_init.sql"),
    include_str!("../../../migrations/sqlite/0002_edits_and_notes.sql"),
    include_str!("../../../migrations/sqlite/0003_tickets_audit_search.sql"),
    include_str!("../../../migrations/sqlite/0004_events.sql"),
    include_str!("../../../migrations/sqlite/0005_routing.sql"),
    include_str!("../../../migrations/sqlite/0006_notifications.sql"),
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
            ) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Internal(e.to_string()),
        }
    }
}

pub struct SqliteStore {
    writer: Writer,
    readers: Readers,
    path: PathBuf,
    /// Held until `close` (or process exit, when the OS releases it).
    lock: std::sync::Mutex<Option<File>>,
    /// Bumped after writes that may have produced events (SSE streams wait on it).
    changes: tokio::sync::watch::Sender<u64>,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn parse_seq(cursor: &Option<String>) -> Result<i64, StoreError> {
    match cursor {
        None => Ok(0),
        Some(c) => c
            .parse()
            .map_err(|_| StoreError::Invalid(format!("cursor {c:?} is not one this server gave"))),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(path))
            .await
            .map_err(|e| StoreError::Internal(format!("open task failed: {e}")))?
    }

    fn open_blocking(path: PathBuf) -> Result<Self, StoreError> {
        let unavailable = |what: &str, e: std::io::Error| {
            StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
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
            ))
        })?;

        let conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;",
        )?;
        migrate(&conn)?;
        // This process owns the file, so any lease left from before was a crashed run's.
        let released = outbox::release_all(&conn, None)?;
        if released > 0 {
            tracing::info!(released, "Took back outbox leases left by an earlier run.");
        }
        let readers = Readers::open(&path, READERS)?;
        let writer = Writer::start(conn, Box::new(crate::telemetry::record_batch))
            .map_err(|e| StoreError::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            writer,
            readers,
            path,
            lock: std::sync::Mutex::new(Some(lock)),
            changes: tokio::sync::watch::Sender::new(0),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tells event streams to look for new events.
    fn changed<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if result.is_ok() {
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        result
    }
}

/// Applies the migrations not yet applied, each in its own transaction.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let applied: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Internal(format!(
            "the database is at schema version {applied}, newer than this binary knows ({}); run a newer channel-bridge",
            MIGRATIONS.len()
        )));
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
            .write(move |conn| ingest::create_reply(conn, &reply, now_ms()))
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
            .write(move |conn| desk::update_conversation(conn, &id, &update, &actor, now_ms()))
            .await;
        self.changed(result)
    }

    async fn ticket(&self, id: &TicketId) -> Result<Ticket, StoreError> {
        let id = id.clone();
        self.readers.read(move |conn| desk::ticket(conn, &id)).await
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
            .write(move |conn| desk::apply_ticket_change(conn, &id, &change, &actor, now_ms()))
            .await;
        self.changed(result)
    }

    async fn delete_conversation(
        &self,
        id: &ConversationId,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let (id, actor) = (id.clone(), actor.clone());
        self.writer
            .write(move |conn| desk::delete_conversation(conn, &id, &actor, now_ms()))
            .await
    }

    async fn delete_ticket(&self, id: &TicketId, actor: &Actor) -> Result<(), StoreError> {
        let (id, actor) = (id.clone(), actor.clone());
        self.writer
            .write(move |conn| desk::delete_ticket(conn, &id, &actor, now_ms()))
            .await
    }

    async fn restore_ticket(&self, id: &TicketId, actor: &Actor) -> Result<Ticket, StoreError> {
        let (id, actor) = (id.clone(), actor.clone());
        self.writer
            .write(move |conn| desk::restore_ticket(conn, &id, &actor, now_ms()))
            .await
    }

    async fn purge_trash(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = before.timestamp_millis();
        self.writer
            .write(move |conn| desk::purge_trash(conn, before))
            .await
    }

    async fn ticket_history(&self, id: &TicketId) -> Result<Vec<AuditEntry>, StoreError> {
        let id = id.clone();
        self.readers
            .read(move |conn| desk::history(conn, &id))
            .await
    }

    async fn contact(&self, id: &ContactId) -> Result<Contact, StoreError> {
        let id = id.clone();
        self.readers
            .read(move |conn| desk::contact(conn, &id))
            .await
    }

    async fn update_contact(
        &self,
        id: &ContactId,
        update: ContactUpdate,
    ) -> Result<Contact, StoreError> {
        let id = id.clone();
        self.writer
            .write(move |conn| desk::update_contact(conn, &id, &update, now_ms()))
            .await
    }

    async fn conversations(
        &self,
        filter: &ConversationFilter,
        page: &PageRequest,
    ) -> Result<Page<Conversation>, StoreError> {
        let cursor = match &page.cursor {
            None => None,
            Some(c) => Some(
                c.split_once(':')
                    .and_then(|(at, seq)| Some((at.parse().ok()?, seq.parse().ok()?)))
                    .ok_or_else(|| {
                        StoreError::Invalid(format!("cursor {c:?} is not one this server gave"))
                    })?,
            ),
        };
        let filter = filter.clone();
        let limit = page.limit;
        self.readers
            .read(move |conn| queries::conversations(conn, &filter, cursor, limit))
            .await
    }

    async fn messages(
        &self,
        conversation: &ConversationId,
        page: &PageRequest,
    ) -> Result<Page<Message>, StoreError> {
        let after = parse_seq(&page.cursor)?;
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
        self.readers
            .read(move |conn| events::after(conn, after, &filter, limit))
            .await
    }

    async fn analytics(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<crate::desk::analytics::Facts, StoreError> {
        let (from, to) = (from.timestamp_millis(), to.timestamp_millis());
        self.readers
            .read(move |conn| desk::analytics(conn, from, to))
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
                        routing::backfill(conn, &channels, now, timeout)
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
                    routing::backfill(conn, &channels, now_ms(), first.presence_timeout_ms)
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
        link_base: Option<String>,
        interval_ms: i64,
        presence_timeout_ms: i64,
    ) -> Result<usize, StoreError> {
        self.writer
            .write(move |conn| {
                routing::queue_digests(
                    conn,
                    &reps,
                    link_base.as_deref(),
                    now_ms(),
                    interval_ms,
                    presence_timeout_ms,
                )
            })
            .await
    }

    async fn latest_event(&self) -> Result<i64, StoreError> {
        self.readers.read(events::latest).await
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
        let after = parse_seq(&page.cursor)?;
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

    async fn close(&self) {
        self.writer.stop().await;
        self.readers.close();
        // Closing the file releases the lock, so a new store may open the database.
        self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::{InboundContact, InboundMessage, StatusWatermark};
    use crate::config::{Threading, TicketTemplate};
    use crate::model::{DeliveryStatus, Identifier, Part, Sender, SenderKind, TextPart};

    fn rules() -> ChannelRules {
        ChannelRules {
            channel_id: "page".into(),
            threading: Threading::PerContact,
            reopen: true,
            ticket: TicketTemplate {
                pipeline: "support".into(),
                status: "new".into(),
                priority: None,
                properties: Default::default(),
            },
            routing: Default::default(),
            presence_timeout_ms: 300_000,
        }
    }

    fn text(s: &str) -> Vec<Part> {
        vec![Part::Text(TextPart { text: s.into() })]
    }

    fn psid() -> Identifier {
        Identifier {
            kind: "messenger_psid".into(),
            value: "psid-1".into(),
        }
    }

    /// A store with one conversation and `n` replies to it already sent.
    async fn with_sent_replies(n: usize) -> (SqliteStore, tempfile::TempDir, ConversationId) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let inbound = InboundEvent::Message(InboundMessage {
            platform_message_id: "mid-1".into(),
            thread_id: None,
            from: InboundContact {
                identifier: psid(),
                display_name: None,
                email: None,
            },
            reply_to: None,
            parts: text("hi"),
            sent_at: None,
            raw: serde_json::json!({}),
        });
        let outcome = store.ingest(&rules(), vec![inbound]).await.unwrap();
        let IngestOutcome::Stored {
            conversation_id, ..
        } = &outcome[0]
        else {
            panic!("{outcome:?}")
        };
        for i in 0..n {
            store
                .create_reply(NewReply {
                    conversation_id: conversation_id.clone(),
                    parts: text(&format!("reply {i}")),
                    reply_to: None,
                    sender: Sender {
                        kind: SenderKind::Rep,
                        id: "alice".into(),
                    },
                    run_at: Utc::now(),
                    ticket_change: None,
                    via: None,
                })
                .await
                .unwrap();
            let request = LeaseRequest {
                owner: "w".into(),
                now: Utc::now(),
                lease: std::time::Duration::from_secs(60),
                channels: vec!["page".into()],
                limit: 10,
            };
            let jobs = store.lease_jobs(&request).await.unwrap();
            assert_eq!(jobs.len(), 1, "one reply in flight per conversation");
            let sent = JobOutcome::Sent {
                platform_message_id: Some(format!("out-{i}")),
                note: None,
            };
            store.finish_job(&jobs[0], "w", sent).await.unwrap();
        }
        (store, dir, conversation_id.clone())
    }

    #[tokio::test]
    async fn a_read_watermark_marks_every_reply_sent_before_it_as_read() {
        let (store, _dir, conversation) = with_sent_replies(3).await;
        let mark = InboundEvent::Watermark(StatusWatermark {
            contact: psid(),
            status: DeliveryStatus::Read,
            up_to: Utc::now() + chrono::Duration::seconds(1),
        });
        let outcome = store.ingest(&rules(), vec![mark]).await.unwrap();
        assert_eq!(outcome, vec![IngestOutcome::Watermark { updated: 3 }]);
        let page = PageRequest {
            limit: 50,
            cursor: None,
        };
        let messages = store.messages(&conversation, &page).await.unwrap().items;
        let statuses: Vec<_> = messages.iter().skip(1).map(|m| m.delivery.status).collect();
        assert_eq!(statuses, vec![DeliveryStatus::Read; 3]);
    }

    #[tokio::test]
    async fn a_watermark_before_a_reply_was_sent_leaves_it_alone() {
        let (store, _dir, conversation) = with_sent_replies(1).await;
        let mark = InboundEvent::Watermark(StatusWatermark {
            contact: psid(),
            status: DeliveryStatus::Delivered,
            up_to: Utc::now() - chrono::Duration::hours(1),
        });
        let outcome = store.ingest(&rules(), vec![mark]).await.unwrap();
        assert_eq!(outcome, vec![IngestOutcome::Watermark { updated: 0 }]);
        let page = PageRequest {
            limit: 50,
            cursor: None,
        };
        let reply = store
            .messages(&conversation, &page)
            .await
            .unwrap()
            .items
            .pop()
            .unwrap();
        assert_eq!(reply.delivery.status, DeliveryStatus::Sent);
    }
}

#[cfg(test)]
mod ticket_tests {
    use std::sync::Arc;

    use rusqlite::params;

    use super::*;
    use crate::adapters::{InboundContact, InboundMessage};
    use crate::config::{PipelineConfig, StatusConfig, Threading, TicketTemplate};
    use crate::model::{ConversationStatus, Identifier, Part, TextPart};

    fn rules(channel: &str) -> ChannelRules {
        ChannelRules {
            channel_id: channel.into(),
            threading: Threading::PerContact,
            reopen: true,
            ticket: TicketTemplate {
                pipeline: "support".into(),
                status: "new".into(),
                priority: None,
                properties: Default::default(),
            },
            routing: Default::default(),
            presence_timeout_ms: 300_000,
        }
    }

    async fn conversation(
        store: &SqliteStore,
        channel: &str,
        user: &str,
    ) -> (ConversationId, TicketId) {
        let event = InboundEvent::Message(InboundMessage {
            platform_message_id: format!("{channel}-{user}"),
            thread_id: None,
            from: InboundContact {
                identifier: Identifier {
                    kind: "app_user".into(),
                    value: user.into(),
                },
                display_name: None,
                email: None,
            },
            reply_to: None,
            parts: vec![Part::Text(TextPart { text: "hi".into() })],
            sent_at: None,
            raw: serde_json::json!({}),
        });
        let outcome = store.ingest(&rules(channel), vec![event]).await.unwrap();
        let IngestOutcome::Stored {
            conversation_id, ..
        } = &outcome[0]
        else {
            panic!("{outcome:?}")
        };
        let c = store.conversation(conversation_id).await.unwrap();
        (c.id, c.ticket_id)
    }

    /// One ticket over two conversations (as after a reply through another channel).
    async fn ticket_with_two_conversations() -> (
        SqliteStore,
        tempfile::TempDir,
        TicketId,
        [ConversationId; 2],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let (first, ticket) = conversation(&store, "chat", "ana").await;
        let (second, other) = conversation(&store, "mail", "ana").await;
        let (t, o, s) = (ticket.clone(), other.clone(), second.clone());
        store
            .writer
            .write(move |conn| {
                conn.execute(
                    "UPDATE conversations SET ticket_id = ?1 WHERE id = ?2",
                    params![t.as_str(), s.as_str()],
                )?;
                conn.execute("DELETE FROM tickets WHERE id = ?1", [o.as_str()])?;
                Ok(())
            })
            .await
            .unwrap();
        (store, dir, ticket, [first, second])
    }

    fn change(status: &str) -> TicketChange {
        let status_config = |id: &str, closed: bool| StatusConfig {
            id: id.into(),
            closed,
            requires: Vec::new(),
        };
        let pipeline = PipelineConfig {
            statuses: vec![status_config("new", false), status_config("closed", true)],
        };
        TicketChange {
            status: Some(status.into()),
            owner_id: None,
            properties: None,
            pipelines: Arc::new([("support".to_owned(), pipeline)].into()),
        }
    }

    async fn statuses(store: &SqliteStore, ids: &[ConversationId]) -> Vec<ConversationStatus> {
        let mut out = Vec::new();
        for id in ids {
            out.push(store.conversation(id).await.unwrap().status);
        }
        out
    }

    #[tokio::test]
    async fn closing_a_ticket_closes_all_its_conversations() {
        let (store, _dir, ticket, conversations) = ticket_with_two_conversations().await;
        store
            .update_ticket(&ticket, change("closed"), &Actor::new("t"))
            .await
            .unwrap();
        assert_eq!(
            statuses(&store, &conversations).await,
            [ConversationStatus::Closed; 2]
        );
    }

    #[tokio::test]
    async fn reopening_a_ticket_with_two_conversations_reopens_neither() {
        let (store, _dir, ticket, conversations) = ticket_with_two_conversations().await;
        store
            .update_ticket(&ticket, change("closed"), &Actor::new("t"))
            .await
            .unwrap();
        let reopened = store
            .update_ticket(&ticket, change("new"), &Actor::new("t"))
            .await
            .unwrap();
        assert_eq!(reopened.status, "new");
        assert_eq!(reopened.conversation_ids.len(), 2);
        assert_eq!(
            statuses(&store, &conversations).await,
            [ConversationStatus::Closed; 2]
        );
    }

    #[tokio::test]
    async fn deleting_one_conversation_trashes_the_ticket_and_all_its_conversations_and_purge_removes_them()
     {
        let (store, _dir, ticket, [first, second]) = ticket_with_two_conversations().await;
        store
            .delete_conversation(&first, &Actor::new("t"))
            .await
            .unwrap();
        assert!(matches!(
            store.ticket(&ticket).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.conversation(&second).await,
            Err(StoreError::NotFound(_))
        ));

        // Not yet past retention: nothing purged, still restorable.
        let purged = store
            .purge_trash(Utc::now() - chrono::Duration::days(1))
            .await
            .unwrap();
        assert_eq!(purged, 0);
        store
            .restore_ticket(&ticket, &Actor::new("t"))
            .await
            .unwrap();
        assert!(store.conversation(&second).await.is_ok());

        store
            .delete_ticket(&ticket, &Actor::new("t"))
            .await
            .unwrap();
        let purged = store
            .purge_trash(Utc::now() + chrono::Duration::seconds(1))
            .await
            .unwrap();
        assert_eq!(purged, 1);
        assert!(matches!(
            store.restore_ticket(&ticket, &Actor::new("t")).await,
            Err(StoreError::NotFound(_))
        ));
        let page = PageRequest {
            limit: 10,
            cursor: None,
        };
        assert!(matches!(
            store.messages(&first, &page).await,
            Err(StoreError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn analytics_figures_on_a_seeded_data_set() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        // Three conversations on "chat": answered after 60 s and 180 s by alice and
        // 120 s by bob; two tickets resolved, after 1 h (owner bob) and 3 h (no owner).
        let mut conversations = Vec::new();
        for user in ["ana", "bo", "cy"] {
            conversations.push(conversation(&store, "chat", user).await);
        }
        for ((id, _), rep) in conversations.iter().zip(["alice", "bob", "alice"]) {
            store
                .create_reply(NewReply {
                    conversation_id: id.clone(),
                    parts: vec![Part::Text(TextPart {
                        text: "hello".into(),
                    })],
                    reply_to: None,
                    sender: crate::model::Sender {
                        kind: crate::model::SenderKind::Rep,
                        id: rep.into(),
                    },
                    run_at: Utc::now(),
                    ticket_change: None,
                    via: None,
                })
                .await
                .unwrap();
        }
        let base = 1_800_000_000_000i64;
        let seeded: Vec<(String, String)> = conversations
            .iter()
            .map(|(c, t)| (c.as_str().to_owned(), t.as_str().to_owned()))
            .collect();
        store
            .writer
            .write(move |conn| {
                for (i, (conversation, ticket)) in seeded.iter().enumerate() {
                    let answered_after = [60_000, 120_000, 180_000][i];
                    conn.execute(
                        "UPDATE conversations SET created_at = ?2 WHERE id = ?1",
                        params![conversation, base],
                    )?;
                    conn.execute(
                        "UPDATE messages SET created_at = ?2 + CASE direction WHEN 'inbound' THEN 0 ELSE ?3 END
                         WHERE conversation_id = ?1",
                        params![conversation, base, answered_after],
                    )?;
                    let (closed, owner) = match i {
                        0 => (Some(base + 3_600_000), Some("bob")),
                        1 => (Some(base + 10_800_000), None),
                        _ => (None, None),
                    };
                    conn.execute(
                        "UPDATE tickets SET created_at = ?2, closed_at = ?3, owner_id = ?4 WHERE id = ?1",
                        params![ticket, base, closed, owner],
                    )?;
                }
                Ok(())
            })
            .await
            .unwrap();
        let from = crate::model::from_millis(base - 1);
        let to = crate::model::from_millis(base + 86_400_000);
        let report = crate::desk::analytics::report(store.analytics(from, to).await.unwrap());

        let chat = &report.channels[0];
        assert_eq!(chat.channel_id, "chat");
        assert_eq!(
            (
                chat.conversations,
                chat.messages_inbound,
                chat.messages_outbound
            ),
            (3, 3, 3)
        );
        assert_eq!(chat.first_response.count, 3);
        assert_eq!(chat.first_response.median_s, Some(120.0));
        assert_eq!(chat.first_response.p90_s, Some(180.0));
        assert_eq!(chat.resolution.count, 2);
        assert_eq!(chat.resolution.median_s, Some(3600.0));
        assert_eq!(chat.resolution.p90_s, Some(10800.0));
        let alice = report.reps.iter().find(|r| r.rep_id == "alice").unwrap();
        assert_eq!(alice.replies, 2);
        assert_eq!(alice.first_response.median_s, Some(60.0));
        assert_eq!(alice.first_response.p90_s, Some(180.0));
        let bob = report.reps.iter().find(|r| r.rep_id == "bob").unwrap();
        assert_eq!((bob.replies, bob.first_response.median_s), (1, Some(120.0)));
        assert_eq!(bob.resolution.median_s, Some(3600.0));

        // Outside the period there is nothing.
        let before = crate::model::from_millis(base - 10_000_000);
        let report = crate::desk::analytics::report(store.analytics(before, from).await.unwrap());
        assert!(report.channels.is_empty());
    }
}
