//! Internal comments on PostgreSQL: the steps of `store::sequences::comments`.

use sqlx::PgConnection;

use super::ingest::body_text;
use crate::model::{MessageId, Part};
use crate::store::sequences::comments::CommentTx;
use crate::store::shared::json;
use crate::store::{NewComment, StoreError};

impl CommentTx for PgConnection {
    async fn comment_target(&mut self, conversation: &str) -> Result<(String, String), StoreError> {
        sqlx::query_as(
            "SELECT c.channel_id, COALESCE(k.display_name, k.id) FROM conversations c
             JOIN contacts k ON k.id = c.contact_id
             WHERE c.id = $1 AND c.deleted_at IS NULL",
        )
        .bind(conversation)
        .fetch_optional(self)
        .await?
        .ok_or(StoreError::NotFound("conversation"))
    }

    async fn insert_comment(
        &mut self,
        id: &MessageId,
        channel: &str,
        comment: &NewComment,
        parts: &[Part],
        at: i64,
    ) -> Result<(), StoreError> {
        // body_text: reps find their own notes with the conversation search too.
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, channel_id, direction, kind, sender_type,
                 sender_id, parts, delivery_status, mentions, created_at, body_text)
             VALUES ($1, $2, $3, 'internal', 'comment', $9, $4, $5, 'internal', $6, $7, $8)",
        )
        .bind(id.as_str())
        .bind(comment.conversation_id.as_str())
        .bind(channel)
        .bind(&comment.author.id)
        .bind(json(&parts)?)
        .bind(json(&comment.mention_ids())?)
        .bind(at)
        .bind(body_text(parts))
        .bind(comment.author.kind.as_str())
        .execute(self)
        .await?;
        Ok(())
    }
}
