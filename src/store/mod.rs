//! Persistence behind one object-safe trait: the ingest transaction, replies with their
//! delivery jobs, the outbox, and the reads the API needs. Implementations only load and
//! persist; the rules they apply come from `desk`. The store knows nothing of platforms.

mod error;
pub mod hubspot;
pub mod imap;
pub mod postgres;
pub mod sqlite;

pub use error::{Chain, Detail, StoreError};

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::model::event::InboundEvent;
use crate::model::outbound::Outbound;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::config::{ChannelConfig, PipelineConfig, StorageConfig, Threading, TicketTemplate};
use crate::model::{
    Contact, ContactId, Conversation, ConversationId, ConversationStatus, JobId, Message,
    MessageId, Part, Sender, SenderKind, Ticket, TicketId,
};

/// The help-desk rules of one channel, as the ingest transaction needs them.
#[derive(Clone, Debug)]
pub struct ChannelRules {
    pub channel_id: String,
    pub threading: Threading,
    pub reopen: bool,
    pub ticket: TicketTemplate,
    pub routing: RoutingPlan,
    /// A rep's presence older than this counts as offline.
    pub presence_timeout_ms: i64,
    /// The HubSpot channel account new inbound messages are published to (each queues a
    /// `HubspotPublish` job in the ingest transaction); `None` when not linked.
    pub hubspot_account: Option<String>,
}

/// A channel's routing rule with the reps it involves resolved from config.
#[derive(Clone, Debug, Default)]
pub enum RoutingPlan {
    #[default]
    Nobody,
    /// Round-robin over these reps (in rotation order).
    RoundRobin { pool: Vec<RepSlot> },
    /// The contact's owner; offline owners get each inbound message by email.
    ContactOwner {
        reps: Vec<RepSlot>,
        /// Where emails to offline owners come from; `None` when no `[smtp]` is configured.
        email: Option<OwnerEmail>,
    },
}

/// A contact's owner as contact-owner routing finds them.
pub(crate) enum OwnerSlot<'a> {
    None,
    /// Not a rep who works the channel's inbox (or no longer a rep at all).
    Outside(String),
    Rep(&'a RepSlot),
}

impl RoutingPlan {
    /// The contact owner `owner` among the reps this plan may give work to.
    pub(crate) fn owner_slot(&self, owner: Option<String>) -> OwnerSlot<'_> {
        let RoutingPlan::ContactOwner { reps, .. } = self else {
            return OwnerSlot::None;
        };
        match owner {
            None => OwnerSlot::None,
            Some(o) => match reps.iter().find(|r| r.id == o) {
                Some(slot) => OwnerSlot::Rep(slot),
                None => OwnerSlot::Outside(o),
            },
        }
    }

    /// Whether an offline owner `slot` can be emailed under this plan.
    pub(crate) fn owner_mail(&self, slot: &RepSlot) -> crate::desk::routing::OwnerMail {
        let smtp = matches!(self, RoutingPlan::ContactOwner { email: Some(_), .. });
        crate::desk::routing::OwnerMail::of(smtp, slot.email.as_deref())
    }
}

/// A rep as routing sees them.
#[derive(Clone, Debug)]
pub struct RepSlot {
    pub id: String,
    pub capacity: u32,
    pub email: Option<String>,
}

/// What an owner email needs beyond the message.
#[derive(Clone, Debug)]
pub struct OwnerEmail {
    /// Base of the conversation link (`server.public_url`).
    pub link_base: Option<String>,
    /// The channel as the email names it (`channels.ID.name`).
    pub channel_name: String,
}

/// A rep as digests need them.
#[derive(Clone, Debug)]
pub struct DigestRep {
    pub id: String,
    pub email: String,
    /// `[[reps]].notify`; the rep's own choice (through the API) overrides it.
    pub notify: bool,
}

/// What digest emails say besides the messages.
#[derive(Clone, Debug, Default)]
pub struct DigestLinks {
    /// Base of the conversation links (`server.public_url`).
    pub link_base: Option<String>,
    /// Channels by id as the email names them (`channels.ID.name`); an id not here is
    /// named as it is.
    pub channel_names: std::collections::HashMap<String, String>,
}

impl DigestLinks {
    /// What the email calls channel `id`.
    pub fn channel_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.channel_names.get(id).map_or(id, String::as_str)
    }
}

/// The channel id email jobs are queued under (they run whenever `[smtp]` is set).
pub const JOB_CHANNEL_SMTP: &str = "@smtp";
/// The channel id HubSpot jobs are queued under (they run whenever `[hubspot]` is set), so
/// they do not wait on the platform channel's own queue.
pub const JOB_CHANNEL_HUBSPOT: &str = "@hubspot";

impl ChannelRules {
    pub fn new(channel_id: &str, channel: &ChannelConfig, config: &crate::config::Config) -> Self {
        let slot = |r: &crate::config::RepConfig| RepSlot {
            id: r.id.clone(),
            capacity: r.capacity,
            email: r.email.clone(),
        };
        // Only reps who can see the channel's conversations are given them.
        let works = |r: &&crate::config::RepConfig| {
            crate::desk::inboxes::rep_works_channel(config, &r.id, channel_id)
        };
        let routing = match &channel.routing {
            crate::config::RoutingConfig::Nobody => RoutingPlan::Nobody,
            crate::config::RoutingConfig::UsersAndTeams { users, teams } => {
                RoutingPlan::RoundRobin {
                    pool: crate::desk::routing::pool(users, teams, &config.reps)
                        .into_iter()
                        .filter(works)
                        .map(slot)
                        .collect(),
                }
            }
            crate::config::RoutingConfig::ContactOwner => RoutingPlan::ContactOwner {
                reps: config.reps.iter().filter(works).map(slot).collect(),
                email: config.smtp.as_ref().map(|_| OwnerEmail {
                    link_base: config.server.public_url.clone(),
                    channel_name: channel.name.clone(),
                }),
            },
        };
        Self {
            channel_id: channel_id.to_owned(),
            threading: channel.threading,
            reopen: channel.reopen,
            ticket: channel.ticket.clone(),
            routing,
            presence_timeout_ms: (config.presence.timeout_s * 1000) as i64,
            hubspot_account: channel
                .hubspot
                .as_ref()
                .map(|link| link.channel_account_id.clone()),
        }
    }
}

/// What happened to one inbound event.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum IngestOutcome {
    /// A new message, stored in `conversation_id`.
    Stored {
        id: String,
        message_id: MessageId,
        conversation_id: ConversationId,
        new_conversation: bool,
        /// The routing decision, when the message opened or reopened its conversation
        /// (for metrics; not part of the webhook's answer).
        #[serde(skip)]
        routed: Option<Routed>,
        /// Why the contact's offline owner was not emailed this message (`no_address`,
        /// `no_smtp`), for the log and metric; not part of the webhook's answer.
        #[serde(skip)]
        owner_not_emailed: Option<&'static str>,
    },
    /// Seen before: nothing was stored again.
    Duplicate { id: String, message_id: MessageId },
    /// A status report, recorded; `applied` if it moved a message's status.
    Status { id: String, applied: bool },
    /// An edit; `applied` when it changed the message, else `skipped` says why.
    Edited {
        id: String,
        applied: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<EditSkipped>,
    },
    /// A retraction; `applied` unless the message is unknown.
    Retracted { id: String, applied: bool },
    /// A watermark: how many of our messages it moved forward.
    Watermark { updated: usize },
}

/// Why an edit left its message as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EditSkipped {
    /// No inbound message has that id on the channel.
    UnknownMessage,
    /// The edit was applied before (a redelivery or a replay), or changes nothing.
    Duplicate,
    /// The platform ordered it before the edit the message already shows.
    Stale,
}

/// What an edit does to a stored message, decided by `desk::edits` from its versions.
pub(crate) enum EditPlan {
    Skip(EditSkipped),
    /// Store the edit's parts, with this as the new `history` (JSON).
    Apply {
        history: String,
    },
}

/// Plans an edit of a message that says `parts` now and said `history` before (both as
/// stored: JSON). Each revision keeps, in `replaced_by`, the order of the edit that
/// replaced it, so every version's order is known.
pub(crate) fn plan_edit(
    parts: &str,
    history: Option<&str>,
    edit: &crate::model::event::MessageEdit,
    now: i64,
) -> Result<EditPlan, StoreError> {
    use crate::desk::edits::{EditVerdict, Version, judge};
    use crate::model::EditOrder;
    let mut revisions: Vec<Value> = history
        .and_then(|h| serde_json::from_str(h).ok())
        .unwrap_or_default();
    let current: Value = serde_json::from_str(parts).unwrap_or_default();
    // A version whose parts cannot be read back matches no edit.
    let read_parts = |v: &Value| serde_json::from_value::<Vec<Part>>(v.clone()).unwrap_or_default();
    let order_of = |revision: &Value| -> Option<EditOrder> {
        serde_json::from_value(revision.get("replaced_by")?.clone()).ok()
    };
    let mut versions = Vec::with_capacity(revisions.len() + 1);
    let mut order = None;
    for revision in revisions
        .iter()
        .chain(std::iter::once(&serde_json::json!({"parts": current})))
    {
        versions.push(Version {
            order: order.take(),
            parts: read_parts(&revision["parts"]),
        });
        order = order_of(revision);
    }
    match judge(&versions, edit.order.as_ref(), &edit.parts) {
        EditVerdict::Duplicate => Ok(EditPlan::Skip(EditSkipped::Duplicate)),
        EditVerdict::Stale => Ok(EditPlan::Skip(EditSkipped::Stale)),
        EditVerdict::Apply => {
            revisions.push(serde_json::json!({
                "parts": current,
                "replaced_at": crate::model::from_millis(now),
                "replaced_by": edit.order,
            }));
            let history = serde_json::to_string(&revisions)
                .map_err(|e| StoreError::Internal(Detail::caused_by("cannot encode JSON", e)))?;
            Ok(EditPlan::Apply { history })
        }
    }
}

/// Which edit of its message a history (as [`plan_edit`] writes it) records: 1 after the
/// first edit.
pub(crate) fn edit_revision(history: &str) -> u32 {
    serde_json::from_str::<Vec<Value>>(history)
        .map_or(1, |h| u32::try_from(h.len()).unwrap_or(u32::MAX))
}

/// How routing decided about a conversation: by which rule, and whether someone got it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Routed {
    /// `nobody`, `users_and_teams` or `contact_owner`.
    pub rule: &'static str,
    pub assigned: bool,
}

/// A rep's reply, to be stored with its delivery job.
#[derive(Clone, Debug)]
pub struct NewReply {
    pub conversation_id: ConversationId,
    pub parts: Vec<Part>,
    /// The message the rep chose to quote; none by default.
    pub reply_to: Option<MessageId>,
    pub sender: Sender,
    /// When the first send attempt is due.
    pub run_at: DateTime<Utc>,
    /// A change to the conversation's ticket made with the reply: both or neither.
    pub ticket_change: Option<TicketChange>,
    /// Send through another channel of the same contact (the conversation there joins the
    /// same ticket).
    pub via: Option<Via>,
}

/// Where a `via_channel` reply goes: a channel and the contact's identifier on it.
#[derive(Clone, Debug)]
pub struct Via {
    pub channel_id: String,
    pub identifier: crate::model::Identifier,
}

/// A change to a conversation; `None` fields stay as they are.
#[derive(Clone, Debug, Default)]
pub struct ConversationUpdate {
    /// `Some(None)` unassigns.
    pub owner_id: Option<Option<String>>,
    pub status: Option<ConversationStatus>,
}

/// A change to a ticket; `None` fields stay as they are. Checked against `pipelines`
/// inside the transaction that applies it.
#[derive(Clone, Debug)]
pub struct TicketChange {
    pub status: Option<String>,
    /// `Some(None)` unassigns.
    pub owner_id: Option<Option<String>>,
    /// `Some(None)` clears it.
    pub priority: Option<Option<crate::desk::tickets::Priority>>,
    /// Merged into the ticket's properties; a `null` value removes a key.
    pub properties: Option<Map<String, Value>>,
    pub pipelines: Arc<BTreeMap<String, PipelineConfig>>,
}

/// A change to a contact; `Some(None)` clears a field.
#[derive(Clone, Debug, Default)]
pub struct ContactUpdate {
    pub owner_id: Option<Option<String>>,
    pub email: Option<Option<String>>,
}

/// Who makes a change and why, for the audit trail.
#[derive(Clone, Debug)]
pub struct Actor {
    pub kind: SenderKind,
    pub name: String,
    pub reason: Option<String>,
}

impl Actor {
    /// An actor of this kind: a rep's id, a token's name, `routing` for the bridge.
    pub fn new(kind: SenderKind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
            reason: None,
        }
    }

    /// The bridge itself, acting on a rule (`routing`).
    pub fn system(name: impl Into<String>) -> Self {
        Self::new(SenderKind::System, name)
    }

    /// Whoever wrote a message.
    pub fn of(sender: &Sender) -> Self {
        Self::new(sender.kind, sender.id.clone())
    }
}

/// The kind of actor an audit row names; a value no version wrote reads as `system`.
pub(crate) fn actor_type(stored: &str) -> SenderKind {
    SenderKind::parse(stored).unwrap_or(SenderKind::System)
}

/// One recorded change of a ticket or one of its conversations.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    /// What `actor` names: a `rep`, a `token` bound to no rep, or `system`.
    pub actor_type: SenderKind,
    pub entity: String,
    pub entity_id: String,
    pub action: String,
    pub changes: Value,
    pub reason: Option<String>,
}

/// A live event (new message, assignment, status change, delivery update).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Event {
    /// Increasing; the SSE id a client resumes from.
    pub id: i64,
    /// `message.created`, `conversation.assigned`, `conversation.status_changed`,
    /// `ticket.status_changed`, `delivery.updated`, `comment.created`, `comment.mentioned`
    /// (`data.rep_id` is the rep mentioned), `conversation.contact_merged`.
    pub kind: String,
    pub channel_id: Option<String>,
    pub conversation_id: Option<String>,
    /// The conversation's owner when the event happened.
    pub owner_id: Option<String>,
    /// What happened: ids, the new status or owner. `message.created` also carries
    /// `contact_name` (the display name, or null) and `preview` (the text on one line, cut
    /// near 120 characters), so a client shows it without another call.
    #[schema(value_type = Object)]
    pub data: Value,
    pub at: DateTime<Utc>,
}

/// Which events a stream wants.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub channel: Option<String>,
    pub owner: Option<String>,
}

/// Filters of the conversation list.
#[derive(Clone, Debug, Default)]
pub struct ConversationFilter {
    pub channel: Option<String>,
    /// Only conversations on channels this scope allows (a caller's inboxes).
    pub scope: crate::desk::inboxes::Scope,
    /// Only this contact's conversations.
    pub contact: Option<ContactId>,
    pub status: Option<ConversationStatus>,
    /// A rep id, or `none` for unassigned.
    pub owner: Option<String>,
    pub ticket_status: Option<String>,
    /// Last activity at or after.
    pub from: Option<DateTime<Utc>>,
    /// Last activity before.
    pub to: Option<DateTime<Utc>>,
    /// Full-text search over message text and captions.
    pub q: Option<String>,
}

/// Filters of the ticket list.
#[derive(Clone, Debug, Default)]
pub struct TicketFilter {
    /// Only tickets with a conversation on a channel this scope allows.
    pub scope: crate::desk::inboxes::Scope,
    /// Only tickets with a conversation on this channel.
    pub channel: Option<String>,
    pub status: Option<String>,
    pub pipeline: Option<String>,
    /// A rep id, or `none` for unassigned.
    pub owner: Option<String>,
    /// Tickets in the trash instead of the live ones.
    pub trashed: bool,
    /// Changed at or after.
    pub from: Option<DateTime<Utc>>,
    /// Changed before.
    pub to: Option<DateTime<Utc>>,
}

/// What one delete moved to the trash.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Trashed {
    pub ticket_id: TicketId,
    /// Every conversation of the ticket: they go to the trash together.
    pub conversation_ids: Vec<ConversationId>,
    /// Replies of those conversations still queued for delivery. Trashing does not cancel
    /// them: they are sent as if nothing happened.
    pub queued_replies: u64,
}

/// A rep's internal comment on a conversation, and whom it notifies.
#[derive(Clone, Debug)]
pub struct NewComment {
    pub conversation_id: ConversationId,
    /// The rep, or the token bound to no rep, writing it.
    pub author: Sender,
    /// The author as mention emails name them (the rep's `name`, else the author's id).
    pub author_name: String,
    /// The conversation's channel as mention emails name it (`channels.ID.name`).
    pub channel_name: String,
    pub text: String,
    /// The reps it mentions, each notified by an event (and an email while offline).
    pub mentions: Vec<Mention>,
    /// A rep's presence older than this counts as offline.
    pub presence_timeout_ms: i64,
    /// Base of the conversation link in mention emails (`server.public_url`).
    pub link_base: Option<String>,
}

/// A mentioned rep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mention {
    pub rep_id: String,
    /// Where to email them while they are offline; `None` when `[smtp]` is not set or the
    /// rep has no email.
    pub email: Option<String>,
}

/// A contact created through the API, with the identifiers that reach them.
#[derive(Clone, Debug)]
pub struct NewContact {
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub owner_id: Option<String>,
    pub identifiers: Vec<crate::model::ChannelIdentifier>,
}

/// How many open and unassigned conversations a channel has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelCounts {
    pub channel_id: String,
    pub open: u64,
    pub unassigned: u64,
}

/// A reply snippet created through the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSnippet {
    pub id: String,
    pub text: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Whether saving a snippet creates it (refused if the id exists) or replaces its text
/// (refused if it does not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveMode {
    Create,
    Replace,
}

/// A page request: at most `limit` items after `cursor`.
#[derive(Clone, Debug)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<String>,
}

/// One page of a list and the cursor of the next, if there is more.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A job leased to a worker.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub kind: JobKind,
    pub channel_id: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// The reply to send, when the store read it while leasing (saving the worker a
    /// read); `None` means the worker reads it with [`Store::outbound`].
    pub outbound: Option<Box<crate::model::outbound::Outbound>>,
}

/// What a job does.
#[derive(Clone, Debug, PartialEq)]
pub enum JobKind {
    /// Send an outbound message through its channel's adapter.
    Deliver { message_id: MessageId },
    /// Send an email through SMTP.
    Email(crate::model::outbound::Email),
    /// Publish an inbound message into HubSpot (custom-channel mode), or with `note` a
    /// follow-up saying it was edited or taken back; runs under [`JOB_CHANNEL_HUBSPOT`],
    /// one at a time per conversation.
    HubspotPublish {
        message_id: MessageId,
        note: Option<PublishNote>,
    },
    /// Report a delivery status on a rep's HubSpot message (`PATCH …/messages/{id}`);
    /// runs under [`JOB_CHANNEL_HUBSPOT`], in order per HubSpot message.
    HubspotStatus {
        /// Our reply, when there is one (an unroutable message has none).
        message_id: Option<MessageId>,
        hubspot_message_id: String,
        status: hubspot::ReportedStatus,
        error: Option<String>,
    },
}

/// A follow-up about a message HubSpot already has: HubSpot can neither edit nor delete a
/// published message, so the change is published as a note in reply to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishNote {
    /// The contact edited it; `revision` counts its edits (1 for the first).
    Edited { revision: u32 },
    /// The contact took it back.
    Retracted,
}

impl PublishNote {
    /// What tells this note apart from the message and from other notes on it (part of
    /// its `integrationIdempotencyId`).
    pub fn key(&self) -> String {
        match self {
            PublishNote::Edited { revision } => format!("edited-{revision}"),
            PublishNote::Retracted => "retracted".into(),
        }
    }
}

/// The stored payload of a `hubspot_publish` job.
pub(crate) fn hubspot_publish_payload(message: &MessageId, note: Option<&PublishNote>) -> String {
    match note {
        None => serde_json::json!({"message_id": message}),
        Some(PublishNote::Edited { revision }) => {
            serde_json::json!({"message_id": message, "note": "edited", "revision": revision})
        }
        Some(PublishNote::Retracted) => {
            serde_json::json!({"message_id": message, "note": "retracted"})
        }
    }
    .to_string()
}

/// How a job attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub enum JobOutcome {
    /// The platform took the message.
    Sent {
        platform_message_id: Option<String>,
        note: Option<String>,
    },
    /// Try again at `at`.
    Retry { at: DateTime<Utc>, error: String },
    /// No more tries: the job is dead-lettered and the message failed.
    Dead { error: String },
    /// Not attempted (its channel went away or was disabled): put it back untouched.
    Released,
    /// Not attempted, and not to be for a while (its HubSpot channel account is not
    /// authorized): due again at `at`, its attempts untouched, `reason` shown as its error.
    Park { at: DateTime<Utc>, reason: String },
}

/// A request for due jobs.
#[derive(Clone, Debug)]
pub struct LeaseRequest {
    pub owner: String,
    pub now: DateTime<Utc>,
    pub lease: Duration,
    /// Only jobs of these channels are leased; the others wait.
    pub channels: Vec<String>,
    pub limit: usize,
}

/// `pending`: waiting for (or between) attempts; `dead`: out of attempts, waiting for a
/// retry by an operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Dead,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(JobState::Pending),
            "dead" => Some(JobState::Dead),
            _ => None,
        }
    }
}

/// A job as the deliveries API shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Delivery {
    pub id: JobId,
    /// `deliver` (a reply to its platform), `email`, `hubspot_publish` (a contact's
    /// message into HubSpot) or `hubspot_status` (a reply's status reported to HubSpot).
    pub kind: &'static str,
    pub state: JobState,
    pub channel_id: String,
    pub conversation_id: Option<String>,
    pub message_id: Option<MessageId>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How much work waits in the outbox.
#[derive(Clone, Debug, Default)]
pub struct QueueStats {
    pub pending: u64,
    pub dead: u64,
    /// How long the longest-waiting due job has been due.
    pub oldest_due_age: Duration,
    /// Open (not trashed) conversations per channel; channels without any are absent.
    pub open_conversations: Vec<(String, u64)>,
}

/// Per channel, what waits in the outbox: exact counts and the newest error.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChannelDeliveries {
    pub channel_id: String,
    /// Deliveries still being tried.
    pub pending: u64,
    /// Dead-lettered deliveries, waiting for a redrive.
    pub dead: u64,
    /// The newest error among its pending and dead deliveries.
    pub last_error: Option<String>,
    /// When that error was recorded.
    pub last_error_at: Option<DateTime<Utc>>,
}

/// A conversation's markers for one reader in the console's inbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationMarks {
    pub conversation_id: ConversationId,
    /// An inbound message arrived after the reader last opened it (or they never did).
    pub unread: bool,
    /// Its last message (internal comments aside) is the contact's: a reply is owed.
    pub waiting_on_us: bool,
}

/// A signed-in web console session (`src/console`). The cookie's secret is never stored,
/// only its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleSession {
    /// SHA-256 (hex) of the cookie's secret.
    pub id_hash: String,
    /// SHA-256 (hex) of the API token signed in with: the session lasts only while a token
    /// with that hash is configured.
    pub token_sha256: String,
    /// What the session's forms must send back (CSRF).
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A file a rep uploaded to attach to a reply (`POST /api/v1/uploads`), served without
/// credentials at `/media/uploads/{token}` so the platforms can fetch it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    /// `upl_` and a time-ordered id: names the upload in answers and logs.
    pub id: String,
    /// 32 random bytes as hex: the only thing that opens the file.
    pub token: String,
    pub filename: Option<String>,
    pub content_type: String,
    pub bytes: Vec<u8>,
    /// Who uploaded it (the caller's rep, else the token's name).
    pub uploaded_by: String,
    pub created_at: DateTime<Utc>,
}

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

/// How the outbox tables name a job's kind.
pub(crate) const JOB_DELIVER: &str = "deliver";
pub(crate) const JOB_EMAIL: &str = "email";
pub(crate) const JOB_HUBSPOT_PUBLISH: &str = "hubspot_publish";
pub(crate) const JOB_HUBSPOT_STATUS: &str = "hubspot_status";

impl JobKind {
    /// Reads a job back from its stored kind and JSON payload.
    pub(crate) fn decode(kind: &str, payload: &str) -> Result<Self, StoreError> {
        let value: Value = serde_json::from_str(payload)
            .map_err(|e| StoreError::Internal(Detail::caused_by("job payload is not JSON", e)))?;
        match kind {
            JOB_DELIVER => {
                let id = value["message_id"].as_str().unwrap_or_default();
                Ok(JobKind::Deliver {
                    message_id: MessageId::from_stored(id.to_owned()),
                })
            }
            JOB_EMAIL => serde_json::from_value(value)
                .map(JobKind::Email)
                .map_err(|e| StoreError::Internal(Detail::caused_by("email job payload", e))),
            JOB_HUBSPOT_PUBLISH => {
                let id = value["message_id"].as_str().unwrap_or_default();
                let note = match value["note"].as_str() {
                    None => None,
                    Some("edited") => Some(PublishNote::Edited {
                        revision: value["revision"]
                            .as_u64()
                            .and_then(|r| u32::try_from(r).ok())
                            .unwrap_or(1),
                    }),
                    Some("retracted") => Some(PublishNote::Retracted),
                    Some(other) => {
                        return Err(StoreError::Internal(
                            format!("unknown HubSpot note {other:?}").into(),
                        ));
                    }
                };
                Ok(JobKind::HubspotPublish {
                    message_id: MessageId::from_stored(id.to_owned()),
                    note,
                })
            }
            JOB_HUBSPOT_STATUS => {
                let text = |k: &str| value[k].as_str().map(str::to_owned);
                let status = text("status")
                    .as_deref()
                    .and_then(hubspot::ReportedStatus::parse)
                    .ok_or_else(|| {
                        StoreError::Internal("status job without a valid status".into())
                    })?;
                Ok(JobKind::HubspotStatus {
                    message_id: text("message_id").map(MessageId::from_stored),
                    hubspot_message_id: text("hubspot_message_id").unwrap_or_default(),
                    status,
                    error: text("error"),
                })
            }
            other => Err(StoreError::Internal(
                format!("unknown job kind {other:?}").into(),
            )),
        }
    }
}

/// A stored job kind as the deliveries API names it.
pub(crate) fn job_kind_label(kind: &str) -> &'static str {
    match kind {
        JOB_DELIVER => JOB_DELIVER,
        JOB_EMAIL => JOB_EMAIL,
        JOB_HUBSPOT_PUBLISH => JOB_HUBSPOT_PUBLISH,
        JOB_HUBSPOT_STATUS => JOB_HUBSPOT_STATUS,
        _ => "unknown",
    }
}

/// The conversation a job's ordering key names: delivery jobs order under the
/// conversation's id, emails under `email:{conversation}`, HubSpot publishes under
/// `hubspot:{conversation}`; HubSpot status reports order under the HubSpot message
/// (`hubspot-status:{id}`) and name no conversation.
pub(crate) fn conversation_of_key(key: String) -> Option<String> {
    if key.starts_with("hubspot-status:") {
        return None;
    }
    Some(
        key.strip_prefix("email:")
            .or_else(|| key.strip_prefix("hubspot:"))
            .map(str::to_owned)
            .unwrap_or(key),
    )
}

/// Reads a `seq` cursor (0 when there is none).
pub(crate) fn parse_seq_cursor(cursor: &Option<String>) -> Result<i64, StoreError> {
    match cursor {
        None => Ok(0),
        Some(c) => c
            .parse()
            .map_err(|_| StoreError::Invalid(format!("cursor {c:?} is not one this server gave"))),
    }
}

/// Reads a conversation-list cursor, `last_message_at:seq`.
pub(crate) fn parse_activity_cursor(
    cursor: &Option<String>,
) -> Result<Option<(i64, i64)>, StoreError> {
    cursor
        .as_ref()
        .map(|c| {
            c.split_once(':')
                .and_then(|(at, seq)| Some((at.parse().ok()?, seq.parse().ok()?)))
                .ok_or_else(|| {
                    StoreError::Invalid(format!("cursor {c:?} is not one this server gave"))
                })
        })
        .transpose()
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
