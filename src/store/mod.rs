//! Persistence behind one object-safe trait: the ingest transaction, replies with their
//! delivery jobs, the outbox, and the reads the API needs. Implementations only load and
//! persist; the rules they apply come from `desk`. The store knows nothing of platforms.

mod error;
pub mod hubspot;
pub mod imap;
pub mod postgres;
pub mod sqlite;

pub use error::{Chain, Detail, StoreError};

mod changes;
mod ingest;
mod jobs;
pub(crate) mod purge;
mod rules;
pub(crate) mod sequences;
pub(crate) mod shared;
mod views;
pub(crate) use changes::actor_type;
pub use changes::{
    Actor, ContactUpdate, ConversationUpdate, Mention, NewComment, NewContact, NewReply, SaveMode,
    TicketChange, Upload, Via,
};
pub(crate) use ingest::{EditPlan, plan_edit};
pub use ingest::{EditSkipped, IngestOutcome, Routed};
pub use jobs::{
    ChannelDeliveries, Delivery, JOB_CHANNEL_HUBSPOT, JOB_CHANNEL_SMTP, Job, JobKind, JobOutcome,
    JobState, LeaseRequest, PublishNote,
};
pub(crate) use jobs::{
    JOB_DELIVER, JOB_EMAIL, JOB_HUBSPOT_PUBLISH, JOB_HUBSPOT_STATUS, hubspot_publish_payload,
};
pub(crate) use rules::OwnerSlot;
pub use rules::{ChannelRules, DigestLinks, DigestRep, OwnerEmail, RepSlot, RoutingPlan};
pub use views::{
    AuditEntry, ChannelCounts, ConsoleSession, ConversationFilter, ConversationMarks, Event,
    EventFilter, Page, PageRequest, QueueStats, StoredSnippet, TicketFilter, Trashed,
};
pub(crate) use views::{parse_activity_cursor, parse_seq_cursor};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::model::event::InboundEvent;
use crate::model::outbound::Outbound;
use std::collections::BTreeMap;

use crate::config::StorageConfig;
use crate::model::{
    Contact, ContactId, Conversation, ConversationId, JobId, Message, MessageId, Ticket, TicketId,
};

/// The persistence the daemon needs; SQLite and PostgreSQL implement it alike.
#[async_trait]
pub trait Store: Send + Sync {
    /// The HubSpot side of the store (custom-channel mode).
    fn hubspot(&self) -> &dyn hubspot::HubspotStore;

    /// The IMAP side of the store: cursors and mailbox leases.
    fn imap(&self) -> &dyn imap::ImapStore;

    /// Stores a verified webhook's events in one transaction, deduplicated and threaded.
    async fn ingest(
        &self,
        rules: &ChannelRules,
        events: Vec<InboundEvent>,
    ) -> Result<Vec<IngestOutcome>, StoreError>;

    /// Stores a reply and its delivery job in one transaction.
    async fn create_reply(&self, reply: NewReply) -> Result<Message, StoreError>;

    async fn conversation(&self, id: &ConversationId) -> Result<Conversation, StoreError>;

    /// Changes a conversation's owner (its ticket's owner follows) or status (only this
    /// conversation; its ticket stays as it is).
    async fn update_conversation(
        &self,
        id: &ConversationId,
        update: ConversationUpdate,
        actor: &Actor,
    ) -> Result<(), StoreError>;

    async fn ticket(&self, id: &TicketId) -> Result<Ticket, StoreError>;

    /// Changes a ticket's status (closing closes its conversations; reopening reopens a
    /// lone conversation), owner (conversations keep theirs) or properties, all or nothing.
    async fn update_ticket(
        &self,
        id: &TicketId,
        change: TicketChange,
        actor: &Actor,
    ) -> Result<Ticket, StoreError>;

    /// Moves a conversation to the trash with its ticket and the ticket's other
    /// conversations.
    async fn delete_conversation(
        &self,
        id: &ConversationId,
        actor: &Actor,
    ) -> Result<Trashed, StoreError>;

    /// Moves a ticket and its conversations to the trash.
    async fn delete_ticket(&self, id: &TicketId, actor: &Actor) -> Result<Trashed, StoreError>;

    /// Tickets, the newest first: live ones, or those in the trash.
    async fn tickets(
        &self,
        filter: &TicketFilter,
        page: &PageRequest,
    ) -> Result<Page<Ticket>, StoreError>;

    /// Brings a trashed ticket back with the conversations trashed with it, recording
    /// what it did to each (one whose contact has opened another meanwhile comes back
    /// closed).
    async fn restore_ticket(&self, id: &TicketId, actor: &Actor) -> Result<Ticket, StoreError>;

    /// Deletes for good what has been in the trash since before `before` (and events
    /// older than it); returns how many tickets went.
    async fn purge_trash(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Clears the platform's raw payload kept with inbound messages received before
    /// `before` (their parts stay); returns how many were cleared.
    async fn purge_raw_payloads(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// The audit trail of a ticket and its conversations, oldest first.
    async fn ticket_history(&self, id: &TicketId) -> Result<Vec<AuditEntry>, StoreError>;

    async fn contact(&self, id: &ContactId) -> Result<Contact, StoreError>;

    async fn update_contact(
        &self,
        id: &ContactId,
        update: ContactUpdate,
    ) -> Result<Contact, StoreError>;

    async fn conversations(
        &self,
        filter: &ConversationFilter,
        page: &PageRequest,
    ) -> Result<Page<Conversation>, StoreError>;

    /// Stores an internal comment in the conversation's thread with its mention events
    /// (and emails to offline mentioned reps). Never queues a delivery; leaves the
    /// conversation and its ticket as they are.
    async fn add_comment(&self, comment: NewComment) -> Result<Message, StoreError>;

    /// Creates a contact with its identifiers; `Conflict` if one already belongs to
    /// another contact.
    async fn create_contact(
        &self,
        contact: NewContact,
        actor: &Actor,
    ) -> Result<Contact, StoreError>;

    /// Merges `from` into `into` in one transaction: identifiers and conversations move,
    /// missing fields are filled from `from`, the merge is recorded, and `from` answers
    /// `Merged(into)` from then on.
    async fn merge_contacts(
        &self,
        into: &ContactId,
        from: &ContactId,
        actor: &Actor,
    ) -> Result<Contact, StoreError>;

    /// What happened to a contact (created, merged), oldest first.
    async fn contact_history(&self, id: &ContactId) -> Result<Vec<AuditEntry>, StoreError>;

    /// Open and unassigned conversations per channel (channels with none are left out).
    async fn conversation_counts(&self) -> Result<Vec<ChannelCounts>, StoreError>;

    /// Snippets created through the API, by id.
    async fn snippets(&self) -> Result<Vec<StoredSnippet>, StoreError>;

    /// Creates a snippet (`Conflict` if the id exists) or replaces its text (`NotFound` if
    /// it does not).
    async fn save_snippet(
        &self,
        id: &str,
        text: &str,
        by: &str,
        mode: SaveMode,
    ) -> Result<StoredSnippet, StoreError>;

    async fn delete_snippet(&self, id: &str) -> Result<(), StoreError>;

    /// A conversation's messages and internal comments, oldest first.
    async fn messages(
        &self,
        conversation: &ConversationId,
        page: &PageRequest,
    ) -> Result<Page<Message>, StoreError>;

    async fn message(&self, id: &MessageId) -> Result<Message, StoreError>;

    /// The platform payload kept with an inbound message (`None` once retention cleared
    /// it): where an e-mail's attachments are served from.
    async fn message_raw(&self, id: &MessageId) -> Result<Option<serde_json::Value>, StoreError>;

    /// Leases due jobs: for each ordering key only the oldest pending job, so messages of
    /// one conversation go out one at a time, in order.
    async fn lease_jobs(&self, request: &LeaseRequest) -> Result<Vec<Job>, StoreError>;

    /// When the next pending job of these channels falls due, if any.
    async fn next_due(&self, channels: &[String]) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Everything an adapter needs to send an outbound message.
    async fn outbound(&self, message: &MessageId) -> Result<Outbound, StoreError>;

    /// Records how a leased job's attempt ended, with its message, in one transaction.
    async fn finish_job(
        &self,
        job: &Job,
        owner: &str,
        outcome: JobOutcome,
    ) -> Result<(), StoreError>;

    /// Gives back every lease `owner` holds (at shutdown), so the jobs run again at once.
    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError>;

    async fn deliveries(
        &self,
        state: JobState,
        page: &PageRequest,
    ) -> Result<Page<Delivery>, StoreError>;

    /// Sends a dead-lettered job again from the start of its schedule, or makes a pending
    /// job that waits out its backoff due now; a job being sent right now is a conflict.
    async fn retry_delivery(&self, id: &JobId, now: DateTime<Utc>) -> Result<Delivery, StoreError>;

    /// Events after `after` (an event id), oldest first.
    async fn events_after(
        &self,
        after: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError>;

    /// The newest event id (0 if none): where a stream without Last-Event-ID starts.
    async fn latest_event(&self) -> Result<i64, StoreError>;

    /// Changes whenever something was written that may have produced events.
    fn changes(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Changes when any process sharing the store may have made a job leasable, where the
    /// store can tell (PostgreSQL's `NOTIFY`); workers also poll, so `None` only delays.
    fn job_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// The raw facts of the analytics report for `[from, to)`.
    async fn analytics(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<crate::desk::analytics::Facts, StoreError>;

    /// Records a rep's presence; when it makes them available, assigns waiting
    /// conversations of the round-robin `channels` (oldest first). Returns how many.
    async fn set_presence(
        &self,
        rep: &str,
        status: &str,
        channels: Vec<ChannelRules>,
    ) -> Result<usize, StoreError>;

    /// Assigns waiting conversations of round-robin `channels` to whoever is available
    /// (after a conversation closes or changes hands). Returns how many.
    async fn backfill(&self, channels: Vec<ChannelRules>) -> Result<usize, StoreError>;

    /// Each rep's effective presence (`online`, `away`, `offline`) and open conversations.
    async fn rep_states(
        &self,
        reps: Vec<String>,
        presence_timeout_ms: i64,
    ) -> Result<std::collections::HashMap<String, (String, u32)>, StoreError>;

    /// Records a rep's own choice to get notification digests or not.
    async fn set_notify(&self, rep: &str, enabled: bool) -> Result<(), StoreError>;

    /// Reps' own notification choices, where they made one.
    async fn notify_choices(&self) -> Result<std::collections::HashMap<String, bool>, StoreError>;

    /// Queues digest emails for offline reps with new messages since their last one.
    async fn queue_digests(
        &self,
        reps: Vec<DigestRep>,
        links: DigestLinks,
        interval_ms: i64,
        presence_timeout_ms: i64,
    ) -> Result<usize, StoreError>;

    /// Counts for the queue and conversation gauges, read when `/metrics` is scraped.
    async fn queue_stats(&self) -> Result<QueueStats, StoreError>;

    /// Stores a new console session, and drops the expired ones.
    async fn create_session(&self, session: &ConsoleSession) -> Result<(), StoreError>;

    /// The console session with this id hash, unless it expired or was signed out.
    async fn session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ConsoleSession>, StoreError>;

    /// Signs a console session out; one already gone is no error.
    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError>;

    /// Per channel with any, its pending and dead deliveries and their newest error,
    /// counted exactly (the operations page).
    async fn delivery_summary(&self) -> Result<Vec<ChannelDeliveries>, StoreError>;

    /// When each of these channels last stored an inbound message; channels that never
    /// did are absent.
    async fn last_inbound(
        &self,
        channels: &[String],
    ) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError>;

    /// Records that `reader` (a rep, or a token's name) has read the conversation up to
    /// its newest message.
    async fn mark_read(
        &self,
        reader: &str,
        conversation: &ConversationId,
    ) -> Result<(), StoreError>;

    /// For `reader`, which of these conversations are unread and which wait on us;
    /// unknown ids are absent.
    async fn conversation_marks(
        &self,
        reader: &str,
        conversations: &[ConversationId],
    ) -> Result<Vec<ConversationMarks>, StoreError>;

    /// Stores an uploaded file, all of it or nothing.
    async fn save_upload(&self, upload: &Upload) -> Result<(), StoreError>;

    /// The uploaded file with this token, if there is one.
    async fn upload(&self, token: &str) -> Result<Option<Upload>, StoreError>;

    /// Deletes the files uploaded before `before` that no message (reply or comment)
    /// names by their token; answers how many went.
    async fn purge_uploads(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Finishes pending writes and closes the database.
    async fn close(&self);
}

/// Opens (and migrates) the store the config names.
pub async fn open(config: &StorageConfig) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    match config {
        StorageConfig::Sqlite { path } => {
            Ok(std::sync::Arc::new(sqlite::SqliteStore::open(path).await?))
        }
        StorageConfig::Postgres {
            url,
            schema,
            max_connections,
        } => Ok(std::sync::Arc::new(
            postgres::PgStore::open(url, schema.as_deref(), *max_connections).await?,
        )),
    }
}
