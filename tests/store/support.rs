//! What every conformance test stands on: a fresh store of either backend (its own SQLite
//! file or its own PostgreSQL schema, dropped afterwards even when the test panics), the
//! backend's raw-SQL escape hatch for seeding, and builders in the domain's words.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use channel_bridge::config::{PipelineConfig, Secret, StatusConfig, Threading, TicketTemplate};
use channel_bridge::model::event::{InboundContact, InboundEvent, InboundMessage};
use channel_bridge::model::{
    ConversationId, Identifier, Message, MessageId, Part, Sender, SenderKind, TextPart, Ticket,
};
use channel_bridge::store::postgres::PgStore;
use channel_bridge::store::sqlite::SqliteStore;
use channel_bridge::store::{
    Actor, ChannelRules, IngestOutcome, Job, JobOutcome, LeaseRequest, NewReply, PageRequest,
    RepSlot, RoutingPlan, Store, TicketChange,
};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// The variable naming the PostgreSQL server the `postgres::` tests run on.
pub const PG_VAR: &str = "CHANNEL_BRIDGE_TEST_PG";

/// The store under test and the backend behind it.
pub struct Env {
    store: Arc<dyn Store>,
    backend: Backend,
}

impl Env {
    /// A store on a new SQLite file in a temporary folder.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("store.db");
        let store = Arc::new(
            SqliteStore::open(&path)
                .await
                .expect("the SQLite store opens"),
        );
        Self {
            store: store.clone(),
            backend: Backend::Sqlite {
                store,
                path,
                _dir: dir,
            },
        }
    }

    /// A store in a new schema of the database `CHANNEL_BRIDGE_TEST_PG` names.
    pub async fn postgres(test: &str) -> Self {
        let guard = PgSchema::new(test);
        let store = Arc::new(
            PgStore::open(&guard.url(), Some(guard.name()), 8)
                .await
                .unwrap_or_else(|e| panic!("the PostgreSQL store opens on {PG_VAR}: {e}")),
        );
        Self {
            store: store.clone(),
            backend: Backend::Postgres {
                store,
                _schema: guard,
            },
        }
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Closes the store; the file or schema goes when `self` is dropped.
    pub async fn finish(self) {
        self.store.close().await;
    }
}

/// The concrete store behind `Arc<dyn Store>`, for the few things the trait does not offer.
pub enum Backend {
    Sqlite {
        store: Arc<SqliteStore>,
        path: std::path::PathBuf,
        _dir: tempfile::TempDir,
    },
    Postgres {
        store: Arc<PgStore>,
        _schema: PgSchema,
    },
}

impl Backend {
    /// The `[storage]` config naming this store's database, for what reads it without
    /// the store (`hubspot status`).
    pub fn storage(&self) -> channel_bridge::config::StorageConfig {
        match self {
            Backend::Sqlite { path, .. } => {
                channel_bridge::config::StorageConfig::Sqlite { path: path.clone() }
            }
            Backend::Postgres { _schema, .. } => channel_bridge::config::StorageConfig::Postgres {
                url: _schema.url(),
                schema: Some(_schema.name().to_owned()),
                max_connections: 1,
            },
        }
    }

    /// Runs portable SQL (literal values, no placeholders) on the store's own database
    /// and returns how many rows it changed: seeding the API cannot do, such as moving
    /// timestamps into the past.
    pub async fn execute(&self, sql: &str) -> u64 {
        match self {
            Backend::Sqlite { store, .. } => store
                .execute_for_tests(sql)
                .await
                .unwrap_or_else(|e| panic!("seeding SQL failed on SQLite: {e}\n{sql}")),
            Backend::Postgres { store, .. } => {
                use sqlx::Executor as _;
                store
                    .pool()
                    .execute(sqlx::raw_sql(sql))
                    .await
                    .unwrap_or_else(|e| panic!("seeding SQL failed on PostgreSQL: {e}\n{sql}"))
                    .rows_affected()
            }
        }
    }
}

impl Backend {
    /// The number a `SELECT count(*) …` in portable SQL answers on the store's database:
    /// what a purge left, which no read of the trait shows.
    pub async fn count(&self, sql: &str) -> i64 {
        match self {
            Backend::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).expect("open the SQLite file");
                conn.query_row(sql, [], |r| r.get(0))
                    .unwrap_or_else(|e| panic!("counting failed on SQLite: {e}\n{sql}"))
            }
            Backend::Postgres { store, .. } => sqlx::query_scalar(sql)
                .fetch_one(store.pool())
                .await
                .unwrap_or_else(|e| panic!("counting failed on PostgreSQL: {e}\n{sql}")),
        }
    }
}

/// A test's PostgreSQL schema; dropping it drops the schema with everything in it.
pub struct PgSchema {
    url: String,
    schema: String,
}

impl PgSchema {
    /// A new, not yet created schema name on `CHANNEL_BRIDGE_TEST_PG`. Made before any
    /// store opens, so a store that fails to open is cleaned up too. PostgreSQL tests are
    /// ignored unless the variable was set at build time (`cfg(pg_tests)`), so one run
    /// without it anyway fails rather than passes.
    pub fn new(test: &str) -> Self {
        let url = std::env::var(PG_VAR)
            .unwrap_or_else(|_| panic!("{test} needs {PG_VAR}=postgres://… (not set)"));
        Self {
            url,
            schema: format!("cbt_{:016x}", fastrand::u64(..)),
        }
    }

    pub fn name(&self) -> &str {
        &self.schema
    }

    /// The database URL with the schema's name as `application_name` on every
    /// connection, so cleanup can find and end them before dropping the schema.
    pub fn url(&self) -> Secret {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        Secret::new(format!(
            "{}{separator}application_name={}",
            self.url, self.schema
        ))
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop may run while a test panics inside its runtime, where blocking on another
        // future is not allowed: a thread with its own runtime does the work.
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let done = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                use sqlx::{Connection as _, Executor as _};
                let mut conn = sqlx::PgConnection::connect(&url)
                    .await
                    .map_err(|e| e.to_string())?;
                // A transaction a panicking test left open would hold DROP SCHEMA up.
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&schema)
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
                conn.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(())
            })
        })
        .join();
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = writeln!(std::io::stderr(), "cannot drop schema {}: {e}", self.schema);
            }
            Err(_) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "cannot drop schema {}: the cleanup panicked",
                    self.schema
                );
            }
        }
    }
}

/// Turns each listed `async fn name(store: Arc<dyn Store>, backend: &Backend)` of the
/// calling module into two tests, `sqlite::name` and `postgres::name`; the `postgres::`
/// ones are ignored unless `CHANNEL_BRIDGE_TEST_PG` was set at build time (build.rs). A
/// test written but not listed is dead code, which `-D warnings` refuses.
macro_rules! conformance {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let env = $crate::support::Env::sqlite().await;
                    super::$name(env.store(), env.backend()).await;
                    env.finish().await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    not(pg_tests),
                    ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
                )]
                async fn $name() {
                    let test = concat!(module_path!(), "::", stringify!($name));
                    let env = $crate::support::Env::postgres(test).await;
                    super::$name(env.store(), env.backend()).await;
                    env.finish().await;
                }
            )+
        }
    };
}

// ---- Channels and tickets -------------------------------------------------------------

/// A channel with per-contact threading that reopens, tickets in `support` at `new`, and
/// nobody to route to.
pub fn rules(channel: &str) -> ChannelRules {
    ChannelRules {
        channel_id: channel.into(),
        threading: Threading::PerContact,
        reopen: true,
        ticket: TicketTemplate {
            pipeline: "support".into(),
            status: "new".into(),
            priority: None,
            properties: Map::new(),
        },
        routing: RoutingPlan::Nobody,
        presence_timeout_ms: 300_000,
        hubspot_account: None,
    }
}

/// Rules that round-robin over `reps` (id, capacity), in that order.
pub fn round_robin(channel: &str, reps: &[(&str, u32)]) -> ChannelRules {
    ChannelRules {
        routing: RoutingPlan::RoundRobin {
            pool: reps
                .iter()
                .map(|(id, capacity)| RepSlot {
                    id: (*id).into(),
                    capacity: *capacity,
                    email: Some(format!("{id}@example.com")),
                })
                .collect(),
        },
        ..rules(channel)
    }
}

/// The `support` pipeline: new, waiting, closed (closes), resolved (closes, requires
/// `resolution`).
pub fn pipelines() -> Arc<BTreeMap<String, PipelineConfig>> {
    let status = |id: &str, closed: bool, requires: &[&str]| StatusConfig {
        id: id.into(),
        closed,
        requires: requires.iter().map(|s| s.to_string()).collect(),
    };
    let support = PipelineConfig {
        statuses: vec![
            status("new", false, &[]),
            status("waiting", false, &[]),
            status("closed", true, &[]),
            status("resolved", true, &["resolution"]),
        ],
    };
    Arc::new([("support".to_owned(), support)].into())
}

/// A ticket change that changes nothing yet.
pub fn change() -> TicketChange {
    TicketChange {
        status: None,
        owner_id: None,
        priority: None,
        properties: None,
        pipelines: pipelines(),
    }
}

/// A move to `status`.
pub fn to_status(status: &str) -> TicketChange {
    TicketChange {
        status: Some(status.into()),
        ..change()
    }
}

/// A JSON object from a `json!` literal.
pub fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

pub fn actor() -> Actor {
    Actor::new(SenderKind::Rep, "tester")
}

// ---- Inbound ----------------------------------------------------------------------------

pub fn text(s: &str) -> Vec<Part> {
    vec![Part::Text(TextPart { text: s.into() })]
}

/// An `app_user` identifier.
pub fn user(value: &str) -> Identifier {
    Identifier {
        kind: "app_user".into(),
        value: value.into(),
    }
}

/// An inbound message under construction: `Msg::new("m1", "ana").text("hi")`.
pub struct Msg(InboundMessage);

impl Msg {
    /// Message `id` from the `app_user` `from`, saying "hello".
    pub fn new(id: &str, from: &str) -> Self {
        Self(InboundMessage {
            conversation_hint: None,
            platform_message_id: id.into(),
            thread_id: None,
            from: InboundContact {
                identifier: user(from),
                display_name: None,
                email: None,
            },
            reply_to: None,
            parts: text("hello"),
            sent_at: None,
            raw: serde_json::json!({"id": id}),
        })
    }

    pub fn text(mut self, s: &str) -> Self {
        self.0.parts = text(s);
        self
    }

    pub fn parts(mut self, parts: Vec<Part>) -> Self {
        self.0.parts = parts;
        self
    }

    pub fn identifier(mut self, identifier: Identifier) -> Self {
        self.0.from.identifier = identifier;
        self
    }

    pub fn thread(mut self, thread: &str) -> Self {
        self.0.thread_id = Some(thread.into());
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        self.0.from.display_name = Some(name.into());
        self
    }

    pub fn email(mut self, email: &str) -> Self {
        self.0.from.email = Some(email.into());
        self
    }

    /// Names our conversation or message this one answers (an e-mail's reply-to tag).
    pub fn hint(mut self, id: &str) -> Self {
        self.0.conversation_hint = Some(id.into());
        self
    }

    pub fn reply_to(mut self, platform_id: &str) -> Self {
        self.0.reply_to = Some(platform_id.into());
        self
    }
}

impl From<Msg> for InboundEvent {
    fn from(m: Msg) -> Self {
        InboundEvent::Message(m.0)
    }
}

/// What `ingest` said about a message it stored.
#[derive(Clone, Debug)]
pub struct Stored {
    pub message: MessageId,
    pub conversation: ConversationId,
    pub new_conversation: bool,
}

impl Stored {
    pub fn of(outcome: &IngestOutcome) -> Self {
        match outcome {
            IngestOutcome::Stored {
                message_id,
                conversation_id,
                new_conversation,
                ..
            } => Self {
                message: message_id.clone(),
                conversation: conversation_id.clone(),
                new_conversation: *new_conversation,
            },
            other => panic!("expected a stored message, got {other:?}"),
        }
    }
}

pub async fn ingest(
    store: &dyn Store,
    rules: &ChannelRules,
    events: Vec<InboundEvent>,
) -> Vec<IngestOutcome> {
    store.ingest(rules, events).await.expect("ingest succeeds")
}

/// Ingests one message that must be stored.
pub async fn post(store: &dyn Store, rules: &ChannelRules, message: Msg) -> Stored {
    let outcome = ingest(store, rules, vec![message.into()]).await;
    assert_eq!(outcome.len(), 1, "{outcome:?}");
    Stored::of(&outcome[0])
}

/// A new conversation from `user` on `rules`' channel (the message id is derived from both).
pub async fn open_conversation(
    store: &dyn Store,
    rules: &ChannelRules,
    user: &str,
) -> ConversationId {
    let id = format!("{}-{user}-{}", rules.channel_id, fastrand::u32(..));
    post(store, rules, Msg::new(&id, user)).await.conversation
}

pub async fn ticket_of(store: &dyn Store, conversation: &ConversationId) -> Ticket {
    let c = store
        .conversation(conversation)
        .await
        .expect("conversation");
    store.ticket(&c.ticket_id).await.expect("ticket")
}

// ---- Replies and the outbox -------------------------------------------------------------

pub fn rep(id: &str) -> Sender {
    Sender {
        kind: SenderKind::Rep,
        id: id.into(),
    }
}

/// A reply by alice, due now.
pub fn new_reply(conversation: &ConversationId, s: &str) -> NewReply {
    NewReply {
        conversation_id: conversation.clone(),
        parts: text(s),
        reply_to: None,
        sender: rep("alice"),
        run_at: Utc::now(),
        ticket_change: None,
        via: None,
    }
}

pub async fn reply(store: &dyn Store, conversation: &ConversationId, s: &str) -> Message {
    store
        .create_reply(new_reply(conversation, s))
        .await
        .expect("the reply is stored")
}

/// A reply due at `at`.
pub async fn reply_at(
    store: &dyn Store,
    conversation: &ConversationId,
    s: &str,
    at: DateTime<Utc>,
) -> Message {
    let mut r = new_reply(conversation, s);
    r.run_at = at;
    store.create_reply(r).await.expect("the reply is stored")
}

pub fn lease_request(owner: &str, channels: &[&str], now: DateTime<Utc>) -> LeaseRequest {
    LeaseRequest {
        owner: owner.into(),
        now,
        lease: Duration::from_secs(60),
        channels: channels.iter().map(|c| c.to_string()).collect(),
        limit: 100,
    }
}

/// Leases every due job of `channels` for `owner`, now.
pub async fn lease(store: &dyn Store, owner: &str, channels: &[&str]) -> Vec<Job> {
    store
        .lease_jobs(&lease_request(owner, channels, Utc::now()))
        .await
        .expect("lease succeeds")
}

/// The message a delivery job sends.
pub fn message_of(job: &Job) -> MessageId {
    match &job.kind {
        channel_bridge::store::JobKind::Deliver { message_id } => message_id.clone(),
        other => panic!("not a delivery: {other:?}"),
    }
}

pub fn sent(platform_id: &str) -> JobOutcome {
    JobOutcome::Sent {
        platform_message_id: Some(platform_id.into()),
        note: None,
    }
}

/// Leases the one due job of `channel` and finishes it as sent under `platform_id`.
pub async fn deliver_next(store: &dyn Store, channel: &str, platform_id: &str) -> MessageId {
    let jobs = lease(store, "worker", &[channel]).await;
    assert_eq!(jobs.len(), 1, "exactly one job is due: {jobs:?}");
    store
        .finish_job(&jobs[0], "worker", sent(platform_id))
        .await
        .expect("finish");
    message_of(&jobs[0])
}

pub fn page(limit: u32) -> PageRequest {
    PageRequest {
        limit,
        cursor: None,
    }
}

/// Every message of a conversation, oldest first.
pub async fn messages(store: &dyn Store, conversation: &ConversationId) -> Vec<Message> {
    store
        .messages(conversation, &page(1000))
        .await
        .expect("messages")
        .items
}

/// Milliseconds since the epoch (the resolution the stores keep).
pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// `t` cut to whole milliseconds, as it comes back from a store.
pub fn to_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    channel_bridge::model::from_millis(ms(t))
}
