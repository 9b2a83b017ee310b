//! The generic contract's wire shapes: the structs parsing reads and the enums only the
//! OpenAPI document uses.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::model::Part;

/// A generic channel's webhook body: one event, or a list of events (at most 1000) stored
/// in one transaction.
// 1000 is MAX_EVENTS; the document cannot compute it.
#[derive(ToSchema)]
#[serde(untagged)]
#[schema(as = GenericWebhook)]
pub enum WireBody {
    One(WireEvent),
    Many(Vec<WireEvent>),
}

/// One event of a generic channel's webhook, told apart by `type`.
// Only the OpenAPI document uses this enum: `parse_event` dispatches on `type` itself, to
// name a bad field with its path. Its variants are the structs parsing reads.
#[derive(ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = GenericEvent, example = json!({
    "type": "message", "id": "app-msg-123", "timestamp": "2026-11-21T10:00:00Z",
    "from": {"id": "user-42", "name": "Ana", "email": "ana@example.com"},
    "parts": [{"type": "text", "text": "Hi"}]
}))]
pub enum WireEvent {
    /// A new message from the app's user.
    Message(WireMessage),
    /// The user changed a message they sent.
    Edit(WireEdit),
    /// The user took a message back.
    Retract(WireRetract),
    /// How far one of our replies got.
    Status(WireStatus),
}

/// A new message: `id` is the app's own message id, the key for deduplication.
#[derive(Deserialize, ToSchema)]
#[schema(as = GenericMessage)]
pub struct WireMessage {
    #[schema(value_type = String, min_length = 1)]
    pub(super) id: NonEmpty,
    /// The app's thread id, for channels with `threading = "platform_thread"`.
    #[serde(default)]
    pub(super) thread_id: Option<String>,
    /// When the user sent it (default: when it arrived).
    #[serde(default)]
    pub(super) timestamp: Option<DateTime<Utc>>,
    pub(super) from: WireFrom,
    /// The app's id of the message this one quotes.
    #[serde(default)]
    pub(super) reply_to: Option<String>,
    #[schema(value_type = Vec<Part>, min_items = 1)]
    pub(super) parts: Value,
}

/// The app's user who wrote: `id` identifies them as the contact's `app_user` identifier.
#[derive(Deserialize, ToSchema)]
#[schema(as = GenericSender)]
pub struct WireFrom {
    #[schema(value_type = String, min_length = 1)]
    pub(super) id: NonEmpty,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) email: Option<String>,
}

/// A changed message: `id` is the app's id of the message; `parts` replace its parts.
#[derive(Deserialize, ToSchema)]
#[schema(as = GenericEdit)]
pub struct WireEdit {
    #[schema(value_type = String, min_length = 1)]
    pub(super) id: NonEmpty,
    #[serde(default)]
    pub(super) timestamp: Option<DateTime<Utc>>,
    #[schema(value_type = Vec<Part>, min_items = 1)]
    pub(super) parts: Value,
}

/// A message taken back: `id` is the app's id of the message.
#[derive(Deserialize, ToSchema)]
#[schema(as = GenericRetract)]
pub struct WireRetract {
    #[schema(value_type = String, min_length = 1)]
    pub(super) id: NonEmpty,
}

/// A status report on one of our replies: `id` is the id the app answered the send with.
#[derive(Deserialize, ToSchema)]
#[schema(as = GenericStatus)]
pub struct WireStatus {
    #[schema(value_type = String, min_length = 1)]
    pub(super) id: NonEmpty,
    pub(super) status: WireDeliveryStatus,
    #[serde(default)]
    pub(super) error: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = GenericDeliveryStatus)]
pub enum WireDeliveryStatus {
    Sent,
    Delivered,
    Read,
    Failed,
}

/// A string that must have something in it (ids).
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(super) struct NonEmpty(pub(super) String);

impl TryFrom<String> for NonEmpty {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.trim().is_empty() {
            Err("must not be empty")
        } else {
            Ok(Self(s))
        }
    }
}
