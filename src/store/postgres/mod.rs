//! The shared store: PostgreSQL through sqlx, for several replicas on one database.
//!
//! Every write is one transaction. What SQLite gets from its single writer, this store
//! gets from the database: a unique partial index keeps one open conversation per thread,
//! advisory locks serialise the messages of one sender, events get their stream position
//! after they commit (`events::sequence`), and outbox jobs are leased with
//! `FOR UPDATE SKIP LOCKED` and a lease expiry, so a replica that dies mid-job has its work
//! finished by another.
//! Transactions the database aborts because of a concurrent one are run again.
//! `NOTIFY` wakes every replica's workers and event streams after a commit.

mod comments;
mod console;
mod contacts;
mod events;
mod ingest;
#[cfg(test)]
mod migration_tests;
mod outbox;
mod queries;
mod replies;
mod retention;
mod routing;
mod sessions;
mod snippets;
mod tickets;
mod uploads;

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Executor, PgConnection, PgPool, Row};
use tokio_util::sync::CancellationToken;

use crate::model::event::InboundEvent;
use crate::model::outbound::Outbound;
use crate::model::{
    Contact, ContactId, Conversation, ConversationId, JobId, Message, MessageId, Ticket, TicketId,
    from_millis,
};
use crate::secret::Secret;
use crate::store::sequences;
use crate::store::{
    Actor, AuditEntry, ChannelCounts, ChannelRules, ContactUpdate, ConversationFilter,
    ConversationUpdate, Delivery, Detail, DigestLinks, DigestRep, Event, EventFilter,
    IngestOutcome, Job, JobOutcome, JobState, LeaseRequest, NewComment, NewContact, NewReply, Page,
    PageRequest, QueueStats, SaveMode, Store, StoreError, StoredSnippet, TicketChange,
    TicketFilter, Trashed,
};

/// Schema migrations, applied in order; `schema_migrations` records which ran.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_init.sql"),
    include_str!("../../../migrations/postgres/0002_inboxes_comments_contacts_snippets.sql"),
    include_str!("../../../migrations/postgres/0003_actor_kinds.sql"),
    include_str!("../../../migrations/postgres/0005_console_sessions.sql"),
    include_str!("../../../migrations/postgres/0006_hubspot.sql"),
    include_str!("../../../migrations/postgres/0007_hubspot_webhook.sql"),
    include_str!("../../../migrations/postgres/0008_console_reads.sql"),
    include_str!("../../../migrations/postgres/0009_uploads.sql"),
    include_str!("../../../migrations/postgres/0010_imap_cursors.sql"),
    include_str!("../../../migrations/postgres/0011_job_heads.sql"),
    include_str!("../../../migrations/postgres/0012_event_positions.sql"),
    include_str!("../../../migrations/postgres/0013_notify_after_commit.sql"),
];

/// How often a transaction the database aborted for a concurrent one is tried in all.
const ATTEMPTS: u32 = 8;

/// Held (per session) while migrating, so replicas starting together migrate once.
const MIGRATION_LOCK: i64 = 0x6362_6d69_6772_6174;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let detail = |e: sqlx::Error| Detail::caused_by(e.to_string(), e);
        match &e {
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // serialization_failure, deadlock_detected, unique_violation: a concurrent
                // transaction got there first; running it again sees what it did.
                Some("40001" | "40P01" | "23505") => StoreError::Contended(detail(e)),
                // A NUL character (PostgreSQL text cannot hold one) or an invalid byte.
                Some("22021" | "22P05") => StoreError::Invalid(
                    "the request holds a character the database cannot store (NUL)".into(),
                ),
                // Class 08 (connection), 53 (resources), 57P (shutdown), 25006 (read-only).
                Some(code)
                    if code.starts_with("08")
                        || code.starts_with("53")
                        || code.starts_with("57P")
                        || code == "25006" =>
                {
                    StoreError::Unavailable(detail(e))
                }
                _ => StoreError::Internal(detail(e)),
            },
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => StoreError::Unavailable(detail(e)),
            _ => StoreError::Internal(detail(e)),
        }
    }
}

/// Runs `$body` (with `$c: &mut PgConnection` inside a transaction) and commits, again
/// from the start when the database aborted it for a concurrent transaction.
/// `transaction!(leasing …)` is for leases: they only take work, so the other replicas
/// are not told (a lease that found nothing to take would otherwise wake every worker,
/// whose leases would wake them again).
macro_rules! transaction {
    ($store:expr, |$c:ident| $body:expr) => {
        transaction!(@run $store, true, |$c| $body)
    };
    (leasing $store:expr, |$c:ident| $body:expr) => {
        transaction!(@run $store, false, |$c| $body)
    };
    (@run $store:expr, $tell_others:expr, |$c:ident| $body:expr) => {{
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = async {
                let mut tx = $store.pool.begin().await?;
                let value = {
                    let $c: &mut PgConnection = &mut tx;
                    $body.await?
                };
                tx.commit().await?;
                Ok::<_, StoreError>(value)
            }
            .await;
            match result {
                Err(StoreError::Contended(why)) if attempt < ATTEMPTS => {
                    tracing::debug!(attempt, %why, "Transaction lost to a concurrent one; running it again.");
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(1..=5 * attempt as u64))).await;
                }
                Ok(value) => {
                    $store.changes.send_modify(|n| *n = n.wrapping_add(1));
                    if $tell_others {
                        $store.committed.send_modify(|n| *n = n.wrapping_add(1));
                    }
                    break Ok(value);
                }
                Err(e) => break Err(e),
            }
        }
    }};
}

/// Runs `$body` with `$c: &mut PgConnection` on a pooled connection, outside a transaction.
macro_rules! read {
    ($store:expr, |$c:ident| $body:expr) => {{
        let mut conn = $store.pool.acquire().await?;
        let $c: &mut PgConnection = &mut conn;
        $body.await
    }};
}

/// A transaction's connection, as the shared sequences (`store::sequences`) take it.
impl sequences::Tx for PgConnection {
    async fn emit(
        &mut self,
        kind: &str,
        conversation: &str,
        data: serde_json::Value,
        at: i64,
    ) -> Result<(), StoreError> {
        events::emit(self, kind, conversation, data, at).await
    }

    async fn audit(&mut self, row: sequences::AuditRow<'_>) -> Result<(), StoreError> {
        tickets::audit(self, row).await
    }
}

// After the macros, which it uses.
mod hubspot;
mod imap;
pub(crate) use hubspot::read_hubspot_queues;

pub struct PgStore {
    pool: PgPool,
    /// The `NOTIFY` channels of this schema.
    events_channel: String,
    jobs_channel: String,
    /// Bumped after local commits and when any replica writes an event.
    changes: tokio::sync::watch::Sender<u64>,
    /// Bumped after local commits only: what the notifier tells the other replicas about.
    committed: tokio::sync::watch::Sender<u64>,
    /// Bumped when any replica queues, finishes or gives back a job.
    jobs: tokio::sync::watch::Sender<u64>,
    stop: CancellationToken,
    /// Messages up to this seq have had their raw payloads cleared: each purge goes on
    /// from here rather than walking the table from the start.
    raw_cleared_through: std::sync::atomic::AtomicI64,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// A schema name as an SQL identifier, quoted.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl PgStore {
    /// Connects to `url`, creates `schema` if it is missing, and migrates it.
    pub async fn open(
        url: &Secret,
        schema: Option<&str>,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        // The URL may hold a password: its parse error must not repeat it.
        let options = PgConnectOptions::from_str(url.expose()).map_err(|_| {
            StoreError::Invalid("storage.url is not a valid postgres:// URL".into())
        })?;
        let search_path = schema.map(quote_ident);
        if let Some(path) = &search_path {
            // Replicas starting together race on `CREATE SCHEMA IF NOT EXISTS` (it can fail
            // on the catalog's unique index), so it runs under the migration lock.
            let mut conn = sqlx::ConnectOptions::connect(&options).await?;
            let mut tx = sqlx::Connection::begin(&mut conn).await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *tx)
                .await?;
            tx.execute(format!("CREATE SCHEMA IF NOT EXISTS {path}").as_str())
                .await?;
            tx.commit().await?;
        }
        let options = match &search_path {
            Some(path) => options.options([("search_path", path.as_str())]),
            None => options,
        };
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        let suffix: String = sqlx::query_scalar("SELECT substr(md5(current_schema()), 1, 16)")
            .fetch_one(&pool)
            .await?;
        migrate(&pool).await?;
        let store = Self {
            pool,
            events_channel: format!("cb_events_{suffix}"),
            jobs_channel: format!("cb_jobs_{suffix}"),
            changes: tokio::sync::watch::Sender::new(0),
            committed: tokio::sync::watch::Sender::new(0),
            jobs: tokio::sync::watch::Sender::new(0),
            stop: CancellationToken::new(),
            raw_cleared_through: std::sync::atomic::AtomicI64::new(0),
        };
        store.listen();
        store.notify_in_background();
        store.sequence_in_background();
        Ok(store)
    }

    /// Bumps `changes` or `jobs` on every notification of this schema's channels,
    /// reconnecting when the connection drops (workers and streams also poll, so a lost
    /// notification only delays).
    fn listen(&self) {
        let (pool, events_channel, jobs_channel, changes, jobs, stop) = (
            self.pool.clone(),
            self.events_channel.clone(),
            self.jobs_channel.clone(),
            self.changes.clone(),
            self.jobs.clone(),
            self.stop.clone(),
        );
        let bump = |w: &tokio::sync::watch::Sender<u64>| w.send_modify(|n| *n = n.wrapping_add(1));
        tokio::spawn(async move {
            loop {
                let listener = async {
                    let mut listener = PgListener::connect_with(&pool).await?;
                    listener
                        .listen_all([events_channel.as_str(), jobs_channel.as_str()])
                        .await?;
                    // Whatever happened while we were not listening may need a look.
                    bump(&changes);
                    bump(&jobs);
                    loop {
                        let notification = listener.recv().await?;
                        if notification.channel() == jobs_channel {
                            bump(&jobs);
                        } else {
                            bump(&changes);
                        }
                    }
                    #[allow(unreachable_code)]
                    Ok::<(), sqlx::Error>(())
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    result = listener => {
                        if let Err(e) = result {
                            tracing::warn!(error = %e, "Lost the PostgreSQL notification connection; reconnecting.");
                        }
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
    }

    /// Tells every replica (this one included) after this replica's commits: on the events
    /// channel when an event was written since the last look, on the jobs channel when a
    /// job is ready to lease. Outside the writing transactions, as PostgreSQL serialises
    /// the commits of transactions that notify. Commits made meanwhile share one look; a
    /// wake lost to a crash only delays, as workers and streams also poll.
    fn notify_in_background(&self) {
        let (pool, events_channel, jobs_channel, mut committed, stop) = (
            self.pool.clone(),
            self.events_channel.clone(),
            self.jobs_channel.clone(),
            self.committed.subscribe(),
            self.stop.clone(),
        );
        tokio::spawn(async move {
            let mut last_event = None;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    changed = committed.changed() => if changed.is_err() { return },
                }
                committed.borrow_and_update();
                let notified = async {
                    let mut conn = pool.acquire().await?;
                    let (newest, ready): (i64, bool) = sqlx::query_as(
                        "SELECT (SELECT COALESCE(MAX(seq), 0) FROM events),
                                EXISTS (SELECT 1 FROM jobs
                                        WHERE state = 'pending' AND head
                                          AND run_at <= $1 AND lease_until <= $1)",
                    )
                    .bind(now_ms())
                    .fetch_one(&mut *conn)
                    .await?;
                    let mut channels = Vec::new();
                    if last_event.is_none_or(|last| newest > last) {
                        channels.push(events_channel.as_str());
                    }
                    if ready {
                        channels.push(jobs_channel.as_str());
                    }
                    if !channels.is_empty() {
                        sqlx::query("SELECT pg_notify(c, '') FROM unnest($1::text[]) AS c")
                            .bind(&channels)
                            .execute(&mut *conn)
                            .await?;
                    }
                    last_event = Some(newest);
                    Ok::<_, sqlx::Error>(())
                };
                if let Err(e) = notified.await {
                    tracing::debug!(error = %e, "Could not notify the other replicas.");
                }
            }
        });
    }

    /// Positions new events a moment after each change this replica sees, so they do
    /// not wait, unpositioned, for the next stream to read (which would then sequence a
    /// long backlog first). Streams still sequence before each read (read-your-writes).
    fn sequence_in_background(&self) {
        /// Changes gathered into one sequencing.
        const GATHER: Duration = Duration::from_millis(100);
        let (pool, mut changes, stop) = (
            self.pool.clone(),
            self.changes.subscribe(),
            self.stop.clone(),
        );
        tokio::spawn(async move {
            loop {
                let sequenced = async {
                    let mut conn = pool.acquire().await?;
                    events::sequence(&mut conn).await
                };
                if let Err(e) = sequenced.await {
                    // The next change, or the next stream read, tries again.
                    tracing::debug!(error = %e, "Could not position new events.");
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    changed = changes.changed() => if changed.is_err() { return },
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(GATHER) => {}
                }
                changes.borrow_and_update();
            }
        });
    }

    /// The pool, for tests that seed data directly.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs raw SQL (one or more `;`-separated statements) in one transaction and returns
    /// how many rows it changed. Only for tests that seed what the `Store` API cannot make;
    /// the SQLite store has the same method, so such seeding stays portable SQL.
    #[doc(hidden)]
    pub async fn execute_for_tests(&self, sql: &str) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::raw_sql(sql).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(changed)
    }
}

/// Applies the migrations not yet applied, under a session advisory lock so replicas
/// starting together migrate once.
async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await?;
    let result = async {
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
        let applied: i64 =
            sqlx::query_scalar("SELECT COALESCE(max(version), 0) FROM schema_migrations")
                .fetch_one(&mut *conn)
                .await?;
        if applied as usize > MIGRATIONS.len() {
            return Err(StoreError::Internal(format!(
                "the database is at schema version {applied}, newer than this binary knows ({}); run a newer channel-bridge",
                MIGRATIONS.len()
            ).into()));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            tx.execute(*sql).await?;
            sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
                .bind(i as i64 + 1)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version = i + 1, "Applied database migration.");
        }
        Ok(())
    }
    .await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await;
    result
}

/// Reads a column, naming it in the error.
fn get<'r, T>(row: &'r sqlx::postgres::PgRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column)
        .map_err(|e| StoreError::Internal(format!("reading column {column}: {e}").into()))
}

#[async_trait]
impl Store for PgStore {
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
        transaction!(self, |c| ingest::ingest(c, rules, &events, now_ms()))
    }

    async fn create_reply(&self, reply: NewReply) -> Result<Message, StoreError> {
        transaction!(self, |c| sequences::replies::create_reply(
            c,
            &reply,
            now_ms()
        ))
    }

    async fn conversation(&self, id: &ConversationId) -> Result<Conversation, StoreError> {
        read!(self, |c| queries::conversation(c, id))
    }

    async fn update_conversation(
        &self,
        id: &ConversationId,
        update: ConversationUpdate,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        transaction!(self, |c| sequences::tickets::update_conversation(
            c,
            id,
            &update,
            actor,
            now_ms()
        ))
    }

    async fn ticket(&self, id: &TicketId) -> Result<Ticket, StoreError> {
        read!(self, |c| tickets::ticket(c, id))
    }

    async fn update_ticket(
        &self,
        id: &TicketId,
        change: TicketChange,
        actor: &Actor,
    ) -> Result<Ticket, StoreError> {
        transaction!(self, |c| sequences::tickets::apply_change(
            c,
            id,
            &change,
            actor,
            now_ms()
        ))
    }

    async fn delete_conversation(
        &self,
        id: &ConversationId,
        actor: &Actor,
    ) -> Result<Trashed, StoreError> {
        transaction!(self, |c| sequences::tickets::delete_conversation(
            c,
            id,
            actor,
            now_ms()
        ))
    }

    async fn delete_ticket(&self, id: &TicketId, actor: &Actor) -> Result<Trashed, StoreError> {
        transaction!(self, |c| sequences::tickets::delete_ticket(
            c,
            id,
            actor,
            now_ms()
        ))
    }

    async fn tickets(
        &self,
        filter: &TicketFilter,
        page: &PageRequest,
    ) -> Result<Page<Ticket>, StoreError> {
        let before = crate::store::parse_seq_cursor(&page.cursor)?;
        read!(self, |c| tickets::tickets(c, filter, before, page.limit))
    }

    async fn restore_ticket(&self, id: &TicketId, actor: &Actor) -> Result<Ticket, StoreError> {
        transaction!(self, |c| sequences::tickets::restore_ticket(
            c,
            id,
            actor,
            now_ms()
        ))
    }

    async fn purge_trash(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = before.timestamp_millis();
        transaction!(self, |c| tickets::purge_trash(c, before))
    }

    async fn purge_raw_payloads(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = before.timestamp_millis();
        crate::store::purge::in_chunks(&self.raw_cleared_through, |after| async move {
            transaction!(self, |c| retention::clear_raw_chunk(c, after, before))
        })
        .await
    }

    async fn ticket_history(&self, id: &TicketId) -> Result<Vec<AuditEntry>, StoreError> {
        read!(self, |c| tickets::history(c, id))
    }

    async fn contact(&self, id: &ContactId) -> Result<Contact, StoreError> {
        read!(self, |c| tickets::contact(c, id))
    }

    async fn update_contact(
        &self,
        id: &ContactId,
        update: ContactUpdate,
    ) -> Result<Contact, StoreError> {
        transaction!(self, |c| sequences::tickets::update_contact(
            c,
            id,
            &update,
            now_ms()
        ))
    }

    async fn conversations(
        &self,
        filter: &ConversationFilter,
        page: &PageRequest,
    ) -> Result<Page<Conversation>, StoreError> {
        let cursor = crate::store::parse_activity_cursor(&page.cursor)?;
        read!(self, |c| queries::conversations(
            c, filter, cursor, page.limit
        ))
    }

    async fn messages(
        &self,
        conversation: &ConversationId,
        page: &PageRequest,
    ) -> Result<Page<Message>, StoreError> {
        let after = crate::store::parse_seq_cursor(&page.cursor)?;
        read!(self, |c| queries::messages(
            c,
            conversation,
            after,
            page.limit
        ))
    }

    async fn message(&self, id: &MessageId) -> Result<Message, StoreError> {
        read!(self, |c| queries::message(c, id))
    }

    async fn message_raw(&self, id: &MessageId) -> Result<Option<serde_json::Value>, StoreError> {
        let raw: Option<Option<String>> = read!(self, |c| {
            sqlx::query_scalar("SELECT raw FROM messages WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(c)
        })?;
        Ok(raw.flatten().and_then(|r| serde_json::from_str(&r).ok()))
    }

    async fn lease_jobs(&self, request: &LeaseRequest) -> Result<Vec<Job>, StoreError> {
        transaction!(leasing self, |c| outbox::lease(c, request))
    }

    async fn next_due(&self, channels: &[String]) -> Result<Option<DateTime<Utc>>, StoreError> {
        let due = read!(self, |c| outbox::next_due(c, channels))?;
        Ok(due.map(from_millis))
    }

    async fn outbound(&self, message: &MessageId) -> Result<Outbound, StoreError> {
        read!(self, |c| queries::outbound(c, message))
    }

    async fn finish_job(
        &self,
        job: &Job,
        owner: &str,
        outcome: JobOutcome,
    ) -> Result<(), StoreError> {
        transaction!(self, |c| outbox::finish(c, job, owner, &outcome, now_ms()))
    }

    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        transaction!(self, |c| outbox::release_all(c, owner))
    }

    async fn deliveries(
        &self,
        state: JobState,
        page: &PageRequest,
    ) -> Result<Page<Delivery>, StoreError> {
        let after = crate::store::parse_seq_cursor(&page.cursor)?;
        read!(self, |c| outbox::list(c, state, after, page.limit))
    }

    async fn retry_delivery(&self, id: &JobId, now: DateTime<Utc>) -> Result<Delivery, StoreError> {
        let now = now.timestamp_millis();
        transaction!(self, |c| outbox::retry(c, id, now))
    }

    async fn events_after(
        &self,
        after: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        read!(self, |c| async {
            events::sequence(c).await?;
            events::after(c, after, filter, limit).await
        })
    }

    async fn latest_event(&self) -> Result<i64, StoreError> {
        read!(self, |c| async {
            events::sequence(c).await?;
            events::latest(c).await
        })
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn job_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.jobs.subscribe())
    }

    async fn analytics(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<crate::desk::analytics::Facts, StoreError> {
        let (from, to) = (from.timestamp_millis(), to.timestamp_millis());
        read!(self, |c| tickets::analytics(c, from, to))
    }

    async fn set_presence(
        &self,
        rep: &str,
        status: &str,
        channels: Vec<ChannelRules>,
    ) -> Result<usize, StoreError> {
        transaction!(self, |c| async {
            let now = now_ms();
            routing::set_presence(c, rep, status, now).await?;
            match (status, channels.first()) {
                ("online", Some(first)) => {
                    sequences::routing::backfill(c, &channels, now, first.presence_timeout_ms).await
                }
                _ => Ok(0),
            }
        })
    }

    async fn backfill(&self, channels: Vec<ChannelRules>) -> Result<usize, StoreError> {
        transaction!(self, |c| async {
            match channels.first() {
                Some(first) => {
                    sequences::routing::backfill(c, &channels, now_ms(), first.presence_timeout_ms)
                        .await
                }
                None => Ok(0),
            }
        })
    }

    async fn rep_states(
        &self,
        reps: Vec<String>,
        presence_timeout_ms: i64,
    ) -> Result<HashMap<String, (String, u32)>, StoreError> {
        read!(self, |c| routing::reps(
            c,
            &reps,
            now_ms(),
            presence_timeout_ms
        ))
    }

    async fn set_notify(&self, rep: &str, enabled: bool) -> Result<(), StoreError> {
        transaction!(self, |c| routing::set_notify(c, rep, enabled))
    }

    async fn notify_choices(&self) -> Result<HashMap<String, bool>, StoreError> {
        read!(self, |c| routing::notify_choices(c))
    }

    async fn queue_digests(
        &self,
        reps: Vec<DigestRep>,
        links: DigestLinks,
        interval_ms: i64,
        presence_timeout_ms: i64,
    ) -> Result<usize, StoreError> {
        transaction!(self, |c| routing::queue_digests(
            c,
            &reps,
            &links,
            now_ms(),
            interval_ms,
            presence_timeout_ms
        ))
    }

    async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        read!(self, |c| outbox::stats(c, now_ms()))
    }

    async fn add_comment(&self, comment: NewComment) -> Result<Message, StoreError> {
        transaction!(self, |c| sequences::comments::add(c, &comment, now_ms()))
    }

    async fn create_contact(
        &self,
        contact: NewContact,
        actor: &Actor,
    ) -> Result<Contact, StoreError> {
        transaction!(self, |c| sequences::contacts::create(
            c,
            &contact,
            actor,
            now_ms()
        ))
    }

    async fn merge_contacts(
        &self,
        into: &ContactId,
        from: &ContactId,
        actor: &Actor,
    ) -> Result<Contact, StoreError> {
        transaction!(self, |c| sequences::contacts::merge(
            c,
            into,
            from,
            actor,
            now_ms()
        ))
    }

    async fn contact_history(&self, id: &ContactId) -> Result<Vec<AuditEntry>, StoreError> {
        read!(self, |c| contacts::history(c, id))
    }

    async fn conversation_counts(&self) -> Result<Vec<ChannelCounts>, StoreError> {
        read!(self, |c| contacts::counts(c))
    }

    async fn snippets(&self) -> Result<Vec<StoredSnippet>, StoreError> {
        read!(self, |c| snippets::list(c))
    }

    async fn save_snippet(
        &self,
        id: &str,
        text: &str,
        by: &str,
        mode: SaveMode,
    ) -> Result<StoredSnippet, StoreError> {
        transaction!(self, |c| snippets::save(c, id, text, by, mode, now_ms()))
    }

    async fn delete_snippet(&self, id: &str) -> Result<(), StoreError> {
        transaction!(self, |c| snippets::delete(c, id))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        read!(self, |c| async {
            sqlx::query("SELECT 1").execute(c).await?;
            Ok(())
        })
    }

    async fn create_session(
        &self,
        session: &crate::store::ConsoleSession,
    ) -> Result<(), StoreError> {
        transaction!(self, |c| sessions::create(c, session))
    }

    async fn session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::store::ConsoleSession>, StoreError> {
        read!(self, |c| sessions::find(c, id_hash, now))
    }

    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        transaction!(self, |c| sessions::delete(c, id_hash))
    }

    async fn save_upload(&self, upload: &crate::store::Upload) -> Result<(), StoreError> {
        transaction!(self, |c| uploads::save(c, upload))
    }

    async fn upload(&self, token: &str) -> Result<Option<crate::store::Upload>, StoreError> {
        read!(self, |c| uploads::find(c, token))
    }

    async fn purge_uploads(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        transaction!(self, |c| uploads::purge(c, before))
    }

    async fn delivery_summary(&self) -> Result<Vec<crate::store::ChannelDeliveries>, StoreError> {
        read!(self, |c| console::delivery_summary(c))
    }

    async fn last_inbound(
        &self,
        channels: &[String],
    ) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError> {
        read!(self, |c| console::last_inbound(c, channels))
    }

    async fn mark_read(
        &self,
        reader: &str,
        conversation: &ConversationId,
    ) -> Result<(), StoreError> {
        transaction!(self, |c| console::mark_read(c, reader, conversation))
    }

    async fn conversation_marks(
        &self,
        reader: &str,
        conversations: &[ConversationId],
    ) -> Result<Vec<crate::store::ConversationMarks>, StoreError> {
        read!(self, |c| console::marks(c, reader, conversations))
    }

    async fn close(&self) {
        self.stop.cancel();
        self.pool.close().await;
    }
}
