//! What a platform told us, normalized: the events adapters parse webhooks into and the
//! store ingests.

use chrono::{DateTime, Utc};

use super::{DeliveryStatus, EditOrder, Identifier, Part, ReplaceNul};

/// What a platform told us, normalized.
#[derive(Clone, Debug, PartialEq)]
pub enum InboundEvent {
    Message(InboundMessage),
    /// A contact changed the content of a message they sent earlier.
    Edit(MessageEdit),
    /// A contact took back a message they sent (LINE unsend); it is kept, marked retracted.
    Retract {
        platform_message_id: String,
    },
    Status(StatusUpdate),
    /// Every message we sent to this contact up to a time reached a status (Messenger's
    /// delivery and read watermarks).
    Watermark(StatusWatermark),
}

impl ReplaceNul for InboundEvent {
    fn replace_nul(&mut self) {
        match self {
            InboundEvent::Message(InboundMessage {
                platform_message_id,
                thread_id,
                from,
                reply_to,
                conversation_hint,
                parts,
                sent_at: _,
                raw,
            }) => {
                platform_message_id.replace_nul();
                thread_id.replace_nul();
                from.identifier.replace_nul();
                from.display_name.replace_nul();
                from.email.replace_nul();
                reply_to.replace_nul();
                conversation_hint.replace_nul();
                parts.replace_nul();
                raw.replace_nul();
            }
            InboundEvent::Edit(edit) => {
                edit.platform_message_id.replace_nul();
                edit.parts.replace_nul();
            }
            InboundEvent::Retract {
                platform_message_id,
            } => platform_message_id.replace_nul(),
            InboundEvent::Status(status) => {
                status.platform_message_id.replace_nul();
                status.error.replace_nul();
            }
            InboundEvent::Watermark(mark) => mark.contact.replace_nul(),
        }
    }
}

/// New content for an earlier inbound message; the old content is kept as history.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageEdit {
    pub platform_message_id: String,
    pub parts: Vec<Part>,
    pub edited_at: Option<DateTime<Utc>>,
    /// Where the platform puts this edit among the message's edits, if it says.
    pub order: Option<EditOrder>,
}

/// A status that applies to all our messages to one contact sent up to `up_to`.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusWatermark {
    pub contact: Identifier,
    pub status: DeliveryStatus,
    pub up_to: DateTime<Utc>,
}

/// A message from a contact, ready to be threaded and stored.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundMessage {
    /// The platform's id for this message: the deduplication key within a channel.
    pub platform_message_id: String,
    /// The platform's chat or thread id, used by `platform_thread` threading.
    pub thread_id: Option<String>,
    pub from: InboundContact,
    /// The platform id of the message this one quotes.
    pub reply_to: Option<String>,
    /// Our own id (`conv_…` or `msg_…`) the platform says this message answers (an
    /// e-mail's plus-addressed recipient or In-Reply-To): it joins that conversation when
    /// the conversation is on this channel and of the same contact.
    pub conversation_hint: Option<String>,
    pub parts: Vec<Part>,
    pub sent_at: Option<DateTime<Utc>>,
    /// The platform's payload for this message, kept whole.
    pub raw: serde_json::Value,
}

/// The sender as the platform describes them.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundContact {
    pub identifier: Identifier,
    pub display_name: Option<String>,
    pub email: Option<String>,
}

/// A platform's report on a message we sent.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusUpdate {
    pub platform_message_id: String,
    pub status: DeliveryStatus,
    pub error: Option<String>,
}
