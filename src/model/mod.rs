//! Plain types shared by every layer: messages, conversations, tickets, contacts, ids.
//! Nothing here does I/O.

pub mod event;
pub mod ids;
pub mod message;
pub mod nul;
pub mod outbound;
pub mod url;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub use ids::{ContactId, ConversationId, JobId, MessageId, TicketId};
pub use message::{
    ContactPart, Delivery, DeliveryStatus, Direction, EditOrder, LocationPart, Media, MediaPart,
    Message, MessageKind, Part, PartError, Revision, Sender, SenderKind, TextPart, UnsupportedPart,
};
pub use nul::ReplaceNul;
pub use url::is_http_url;

/// How a contact is reached on one channel (`{"type": "app_user", "value": "user-42"}`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// A contact's identifier together with the channel it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChannelIdentifier {
    pub channel_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// The person on the platform side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Contact {
    pub id: ContactId,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub owner_id: Option<String>,
    pub identifiers: Vec<ChannelIdentifier>,
}

/// How inbound messages are threaded into conversations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Threading {
    /// One open conversation per contact per channel.
    #[default]
    PerContact,
    /// The platform's chat or thread id keys the conversation.
    PlatformThread,
}

/// Open or closed. A new inbound message reopens a closed conversation when its channel
/// has `reopen`, and starts a new one otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    Open,
    Closed,
}

impl ConversationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationStatus::Open => "open",
            ConversationStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(ConversationStatus::Open),
            "closed" => Some(ConversationStatus::Closed),
            _ => None,
        }
    }
}

/// One thread of messages with one contact on one channel; belongs to exactly one ticket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Conversation {
    pub id: ConversationId,
    pub channel_id: String,
    pub thread_key: String,
    /// The platform's own thread or chat id, when the channel threads by it.
    pub platform_thread_id: Option<String>,
    pub status: ConversationStatus,
    pub owner_id: Option<String>,
    pub ticket_id: TicketId,
    pub contact: Contact,
    pub created_at: DateTime<Utc>,
    pub last_message_at: DateTime<Utc>,
}

/// The unit of work: a pipeline status, an owner and properties, over one or more
/// conversations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Ticket {
    pub id: TicketId,
    pub pipeline: String,
    pub status: String,
    /// `low`, `medium`, `high` or `urgent` (`TicketPriority`); null once cleared.
    pub priority: Option<String>,
    pub owner_id: Option<String>,
    #[schema(value_type = Object)]
    pub properties: Map<String, Value>,
    /// Its conversations; for a ticket in the trash, those trashed with it.
    pub conversation_ids: Vec<ConversationId>,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// When it went to the trash; `null` unless it is there (`GET /api/v1/tickets?trashed=true`).
    #[serde(default)]
    pub trashed_at: Option<DateTime<Utc>>,
}

/// Milliseconds since the Unix epoch, the one time format the store keeps.
pub fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The inverse of [`millis`]; out-of-range values (never written by us) map to the epoch.
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The dotted name of the field a deserialization error is about: `base` joined with the
/// error's own path, plus the missing field's name for "missing field `x`" errors (serde
/// reports those at the container).
pub(crate) fn field_path(base: &str, inner: &str, message: &str) -> String {
    let mut path = match (base.is_empty(), inner) {
        (_, ".") => base.to_owned(),
        (true, _) => inner.to_owned(),
        (false, _) => format!("{base}.{inner}"),
    };
    if let Some(missing) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(missing);
    }
    path
}
