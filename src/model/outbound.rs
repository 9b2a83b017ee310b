//! What leaves the daemon: a reply for an adapter to send, an e-mail for SMTP. Both are
//! what outbox jobs carry.

use serde::{Deserialize, Serialize};

use super::{ConversationId, Identifier, MessageId, Part};

/// A reply ready to leave through an adapter.
#[derive(Clone, Debug, PartialEq)]
pub struct Outbound {
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub platform_thread_id: Option<String>,
    pub to: Identifier,
    /// The platform id of the message this reply quotes.
    pub reply_to: Option<String>,
    pub parts: Vec<Part>,
}

/// An email ready to send, as an outbox job carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    /// Unique per email: `<{id}@{domain of smtp.from}>`.
    pub id: String,
    /// Emails sharing a thread id reply to one root (`In-Reply-To`/`References`).
    pub thread: String,
    /// Where the contact's answer should go (`support+conv_…@example.com`), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}
