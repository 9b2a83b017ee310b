//! What an internal comment writes, in order: a row in the thread with direction
//! `internal`, an event for it and one per mentioned rep, and an e-mail for each mentioned
//! rep who is offline. Nothing here queues a delivery or touches the ticket.

use std::future::Future;

use super::routing::{RoutingTx, online};
use crate::model::{Message, MessageId, Part};
use crate::store::{NewComment, StoreError};

/// The reads and writes a comment needs beyond routing's, in each store's SQL.
pub(crate) trait CommentTx: RoutingTx {
    /// A live conversation's channel and its contact as a rep would name them (display
    /// name, else id).
    fn comment_target(
        &mut self,
        conversation: &str,
    ) -> impl Future<Output = Result<(String, String), StoreError>>;

    /// Stores the comment (and indexes its text: reps find their own notes by search).
    fn insert_comment(
        &mut self,
        id: &MessageId,
        channel: &str,
        comment: &NewComment,
        parts: &[Part],
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>>;
}

/// Adds an internal comment to a conversation and tells the reps it mentions.
pub(crate) async fn add(
    tx: &mut impl CommentTx,
    comment: &NewComment,
    now: i64,
) -> Result<Message, StoreError> {
    let conversation = comment.conversation_id.as_str();
    let (channel, contact) = tx.comment_target(conversation).await?;
    let id = MessageId::new();
    tx.insert_comment(&id, &channel, comment, &comment.parts(), now)
        .await?;
    tx.emit(
        "comment.created",
        conversation,
        comment.created_event(&id),
        now,
    )
    .await?;
    let timeout = comment.presence_timeout_ms;
    for mention in &comment.mentions {
        let payload = comment.mentioned_event(&id, mention);
        tx.emit("comment.mentioned", conversation, payload, now)
            .await?;
        let Some(email) = comment.mention_email(&id, conversation, &contact, mention) else {
            continue;
        };
        if !online(tx, &mention.rep_id, now, timeout).await? {
            tx.enqueue_email(conversation, &email, now).await?;
        }
    }
    Ok(comment.stored_message(id, conversation, channel, now))
}
