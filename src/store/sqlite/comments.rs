//! Internal comments on SQLite: the steps of `store::sequences::comments`.

use rusqlite::{OptionalExtension, params};

use super::{WriterTx, search};
use crate::model::{MessageId, Part};
use crate::store::sequences::comments::CommentTx;
use crate::store::shared::json;
use crate::store::{NewComment, StoreError};

impl CommentTx for WriterTx<'_> {
    async fn comment_target(&mut self, conversation: &str) -> Result<(String, String), StoreError> {
        self.0
            .prepare_cached(
                "SELECT c.channel_id, COALESCE(k.display_name, k.id) FROM conversations c
                 JOIN contacts k ON k.id = c.contact_id
                 WHERE c.id = ?1 AND c.deleted_at IS NULL",
            )?
            .query_row([conversation], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
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
        let conn = self.0;
        conn.prepare_cached(
            "INSERT INTO messages (id, conversation_id, channel_id, direction, kind, sender_type,
                 sender_id, parts, delivery_status, mentions, created_at)
             VALUES (?1, ?2, ?3, 'internal', 'comment', ?8, ?4, ?5, 'internal', ?6, ?7)",
        )?
        .execute(params![
            id.as_str(),
            comment.conversation_id.as_str(),
            channel,
            comment.author.id,
            json(&parts)?,
            json(&comment.mention_ids())?,
            at,
            comment.author.kind.as_str()
        ])?;
        search::queue(conn, conn.last_insert_rowid(), parts, true)
    }
}
