//! The changes the API and the console ask the store to make: replies, ticket, conversation
//! and contact changes, comments, snippets, uploads, and who makes them.

use chrono::{DateTime, Utc};

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::config::PipelineConfig;
use crate::model::{ConversationId, ConversationStatus, MessageId, Part, Sender, SenderKind};

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

impl NewReply {
    /// The reply as both stores answer it once stored: queued, in `conversation` on
    /// `channel` (another one's when it went `via` a channel), quoting `reply_to`.
    pub(crate) fn queued_message(
        &self,
        id: MessageId,
        conversation: &str,
        channel: String,
        reply_to: Option<String>,
        now: i64,
    ) -> crate::model::Message {
        use crate::model::{Delivery, DeliveryStatus, Direction, MessageKind, from_millis};
        crate::model::Message {
            id,
            kind: MessageKind::Message,
            conversation_id: ConversationId::from_stored(conversation.to_owned()),
            channel_id: channel,
            direction: Direction::Outbound,
            platform_message_id: None,
            sender: self.sender.clone(),
            reply_to: reply_to.map(MessageId::from_stored),
            parts: self.parts.clone(),
            mentions: Vec::new(),
            delivery: Delivery {
                status: DeliveryStatus::Queued,
                error: None,
                attempts: 0,
                note: None,
            },
            created_at: from_millis(now),
            edited_at: None,
            history: Vec::new(),
            retracted_at: None,
        }
    }

    /// The `message.created` payload of the stored reply `id`.
    pub(crate) fn created_event(&self, id: &MessageId, contact_name: Option<String>) -> Value {
        serde_json::json!({"message_id": id, "direction": "outbound", "sender": self.sender,
            "contact_name": contact_name,
            "preview": crate::desk::notify::preview(&self.parts)})
    }

    /// The refusal of a `reply_to` that is not a message of `conversation` the contact saw.
    pub(crate) fn not_quotable(target: &MessageId, conversation: &str) -> super::StoreError {
        super::StoreError::Invalid(format!(
            "reply_to: message {target} is not a message of conversation {conversation}"
        ))
    }
}

/// Where a `via_channel` reply goes, as `desk::replies::via` decides it.
pub use crate::desk::replies::Via;

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

impl TicketChange {
    /// The change as `desk::tickets::plan_change` reads it.
    pub fn as_desk(&self) -> crate::desk::tickets::Change<'_> {
        crate::desk::tickets::Change {
            status: self.status.as_deref(),
            owner_id: self.owner_id.as_ref().map(Option::as_deref),
            priority: self.priority,
            properties: self.properties.as_ref(),
        }
    }
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

impl NewComment {
    /// What the comment says, as a message's parts.
    pub(crate) fn parts(&self) -> Vec<Part> {
        vec![Part::Text(crate::model::TextPart {
            text: self.text.clone(),
        })]
    }

    /// The ids of the reps it mentions, in order.
    pub(crate) fn mention_ids(&self) -> Vec<&str> {
        self.mentions.iter().map(|m| m.rep_id.as_str()).collect()
    }

    /// The `comment.created` payload of the stored comment `id`.
    pub(crate) fn created_event(&self, id: &MessageId) -> Value {
        serde_json::json!({"message_id": id, "author": self.author.id, "mentions": self.mention_ids()})
    }

    /// The `comment.mentioned` payload telling `mention` about comment `id`.
    pub(crate) fn mentioned_event(&self, id: &MessageId, mention: &Mention) -> Value {
        serde_json::json!({"message_id": id, "rep_id": mention.rep_id, "author": self.author.id,
               "text": self.text})
    }

    /// The e-mail telling `mention` about comment `id` in `conversation` (of the contact
    /// named `contact`), or `None` when there is nowhere to send it. The store sends it
    /// only while the rep is offline.
    pub(crate) fn mention_email(
        &self,
        id: &MessageId,
        conversation: &str,
        contact: &str,
        mention: &Mention,
    ) -> Option<crate::model::outbound::Email> {
        let address = mention.email.as_ref()?;
        let link = self
            .link_base
            .as_ref()
            .map(|b| format!("{b}/api/v1/conversations/{conversation}"));
        let (subject, text) = crate::desk::notify::mention_email(
            &self.author_name,
            contact,
            &self.channel_name,
            &self.text,
            link.as_deref(),
        );
        Some(crate::model::outbound::Email {
            to: address.clone(),
            subject,
            text,
            id: format!("{id}-{}", mention.rep_id),
            thread: conversation.to_owned(),
            reply_to: None,
        })
    }

    /// The comment as both stores answer it once stored.
    pub(crate) fn stored_message(
        &self,
        id: MessageId,
        conversation: &str,
        channel: String,
        now: i64,
    ) -> crate::model::Message {
        use crate::model::{Delivery, DeliveryStatus, Direction, MessageKind, from_millis};
        crate::model::Message {
            id,
            kind: MessageKind::Comment,
            conversation_id: ConversationId::from_stored(conversation.to_owned()),
            channel_id: channel,
            direction: Direction::Internal,
            platform_message_id: None,
            sender: self.author.clone(),
            reply_to: None,
            parts: self.parts(),
            mentions: self.mention_ids().into_iter().map(str::to_owned).collect(),
            delivery: Delivery {
                status: DeliveryStatus::Internal,
                error: None,
                attempts: 0,
                note: None,
            },
            created_at: from_millis(now),
            edited_at: None,
            history: Vec::new(),
            retracted_at: None,
        }
    }
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

/// Whether saving a snippet creates it (refused if the id exists) or replaces its text
/// (refused if it does not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveMode {
    Create,
    Replace,
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
