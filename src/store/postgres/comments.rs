//! Internal comments: a row in the thread with direction `internal`, an event for it and
//! one per mentioned rep, and an email job for each mentioned rep who is offline. Nothing
//! here queues a delivery or touches the conversation or its ticket.

use serde_json::json;
use sqlx::PgConnection;

use super::ingest::{body_text, json};
use super::{events, outbox, routing};
use crate::model::outbound::Email;
use crate::model::{
    ConversationId, Delivery, DeliveryStatus, Direction, Message, MessageId, MessageKind, Part,
    TextPart, from_millis,
};
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
    let parts = vec![Part::Text(TextPart {
        text: comment.text.clone(),
    })];
    let mentions: Vec<&str> = comment.mentions.iter().map(|m| m.rep_id.as_str()).collect();
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
        json!({"message_id": id, "author": comment.author.id, "mentions": mentions}),
        now,
    )
    .await?;
    for mention in &comment.mentions {
        events::emit(
            c,
            "comment.mentioned",
            conversation,
            json!({"message_id": id, "rep_id": mention.rep_id, "author": comment.author.id,
                   "text": comment.text}),
            now,
        )
        .await?;
        let Some(address) = &mention.email else {
            continue;
        };
        if routing::online(c, &mention.rep_id, now, comment.presence_timeout_ms).await? {
            continue;
        }
        let link = comment
            .link_base
            .as_ref()
            .map(|b| format!("{b}/api/v1/conversations/{conversation}"));
        let (subject, text) = crate::desk::notify::mention_email(
            &comment.author_name,
            &contact,
            &comment.channel_name,
            &comment.text,
            link.as_deref(),
        );
        let email = Email {
            to: address.clone(),
            subject,
            text,
            id: format!("{id}-{}", mention.rep_id),
            thread: conversation.to_owned(),
            reply_to: None,
        };
        outbox::enqueue_email(c, conversation, &email, now).await?;
    }
    Ok(Message {
        id,
        kind: MessageKind::Comment,
        conversation_id: ConversationId::from_stored(conversation.to_owned()),
        channel_id: channel,
        direction: Direction::Internal,
        platform_message_id: None,
        sender: comment.author.clone(),
        reply_to: None,
        parts,
        mentions: mentions.into_iter().map(str::to_owned).collect(),
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
    })
}
