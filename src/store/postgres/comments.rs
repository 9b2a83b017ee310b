//! Internal comments: a row in the thread with direction `internal`, an event for it and
//! one per mentioned rep, and an email job for each mentioned rep who is offline. Nothing
//! here queues a delivery or touches the conversation or its ticket.

use sqlx::PgConnection;

use super::ingest::body_text;
use super::{events, outbox, routing};
use crate::model::{Message, MessageId};
use crate::store::shared::json;
use crate::store::{NewComment, StoreError};

pub async fn add(
    c: &mut PgConnection,
    comment: &NewComment,
    now: i64,
) -> Result<Message, StoreError> {
    let conversation = comment.conversation_id.as_str();
    let (channel, contact): (String, String) = sqlx::query_as(
        "SELECT c.channel_id, COALESCE(k.display_name, k.id) FROM conversations c
         JOIN contacts k ON k.id = c.contact_id
         WHERE c.id = $1 AND c.deleted_at IS NULL",
    )
    .bind(conversation)
    .fetch_optional(&mut *c)
    .await?
    .ok_or(StoreError::NotFound("conversation"))?;
    let parts = comment.parts();
    let mentions = comment.mention_ids();
    let id = MessageId::new();
    // Reps find their own notes with the conversation search too (body_text).
    sqlx::query(
        "INSERT INTO messages (id, conversation_id, channel_id, direction, kind, sender_type,
             sender_id, parts, delivery_status, mentions, created_at, body_text)
         VALUES ($1, $2, $3, 'internal', 'comment', $9, $4, $5, 'internal', $6, $7, $8)",
    )
    .bind(id.as_str())
    .bind(conversation)
    .bind(&channel)
    .bind(&comment.author.id)
    .bind(json(&parts)?)
    .bind(json(&mentions)?)
    .bind(now)
    .bind(body_text(&parts))
    .bind(comment.author.kind.as_str())
    .execute(&mut *c)
    .await?;
    events::emit(
        c,
        "comment.created",
        conversation,
        comment.created_event(&id),
        now,
    )
    .await?;
    for mention in &comment.mentions {
        let payload = comment.mentioned_event(&id, mention);
        events::emit(c, "comment.mentioned", conversation, payload, now).await?;
        let Some(email) = comment.mention_email(&id, conversation, &contact, mention) else {
            continue;
        };
        if routing::online(c, &mention.rep_id, now, comment.presence_timeout_ms).await? {
            continue;
        }
        outbox::enqueue_email(c, conversation, &email, now).await?;
    }
    Ok(comment.stored_message(id, conversation, channel, now))
}
