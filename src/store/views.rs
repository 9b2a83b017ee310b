//! What the store reads back for the API and the console: audit entries, events, list
//! filters, pages and their cursors, counts and sessions.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use serde_json::Value;

use super::StoreError;
use crate::model::{ContactId, ConversationId, ConversationStatus, SenderKind, TicketId};

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

/// A ticket row as both stores select it: `pipeline, status, priority, owner_id,
/// properties, created_at, closed_at`.
pub(crate) type TicketRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    Option<i64>,
);

/// The ticket `id` from its row and its conversations (oldest first), live or trashed at
/// `trashed_at`; properties that do not parse (never written by us) read as none.
pub(crate) fn ticket_from_row(
    id: &crate::model::TicketId,
    row: TicketRow,
    conversation_ids: Vec<String>,
    trashed_at: Option<i64>,
) -> crate::model::Ticket {
    use crate::model::{ConversationId, from_millis};
    let (pipeline, status, priority, owner_id, properties, created_at, closed_at) = row;
    crate::model::Ticket {
        id: id.clone(),
        pipeline,
        status,
        priority,
        owner_id,
        properties: serde_json::from_str(&properties).unwrap_or_default(),
        conversation_ids: conversation_ids
            .into_iter()
            .map(ConversationId::from_stored)
            .collect(),
        created_at: from_millis(created_at),
        closed_at: closed_at.map(from_millis),
        trashed_at: trashed_at.map(from_millis),
    }
}

/// An audit row as both stores select it: `at, actor, entity, entity_id, action, changes,
/// reason, actor_type`.
pub(crate) type AuditRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
);

impl AuditEntry {
    /// The entry an audit row stores; `changes` that do not parse (never written by us)
    /// read as null.
    pub(crate) fn from_row(row: AuditRow) -> Self {
        let (at, actor, entity, entity_id, action, changes, reason, actor_type) = row;
        Self {
            at: crate::model::from_millis(at),
            actor,
            actor_type: super::actor_type(&actor_type),
            entity,
            entity_id,
            action,
            changes: serde_json::from_str(&changes).unwrap_or_default(),
            reason,
        }
    }
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
