//! A rep's reply in SQLite: the steps of `store::sequences::replies`, run on the writer
//! thread inside the batch's transaction.

use rusqlite::{OptionalExtension, params};

use crate::desk::replies::ViaConflict;
use crate::model::{ConversationId, MessageId};
use crate::store::sequences::replies::ReplyTx;
use crate::store::shared::json;
use crate::store::{NewReply, StoreError, Via};

use super::{OnConstraint, WriterTx, outbox, search};

impl ReplyTx for WriterTx<'_> {
    async fn reply_target(&mut self, conversation: &str) -> Result<(String, String), StoreError> {
        // The writer thread is the only writer: the rows are held already.
        self.0
            .prepare_cached(
                "SELECT channel_id, ticket_id FROM conversations WHERE id = ?1 AND deleted_at IS NULL",
            )?
            .query_row([conversation], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .ok_or(StoreError::NotFound("conversation"))
    }

    async fn quotable(
        &mut self,
        target: &MessageId,
        conversation: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT id FROM messages
                 WHERE id = ?1 AND conversation_id = ?2 AND direction != 'internal'",
            )?
            .query_row(params![target.as_str(), conversation], |r| r.get(0))
            .optional()?)
    }

    async fn contact_in(&mut self, conversation: &str) -> Result<String, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT contact_id FROM conversations WHERE id = ?1")?
            .query_row([conversation], |r| r.get(0))?)
    }

    async fn on_ticket(
        &mut self,
        channel: &str,
        contact: &str,
        ticket: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT id FROM conversations WHERE channel_id = ?1 AND contact_id = ?2
                   AND ticket_id = ?3 AND deleted_at IS NULL ORDER BY seq DESC LIMIT 1",
            )?
            .query_row(params![channel, contact, ticket], |r| r.get(0))
            .optional()?)
    }

    async fn open_via(
        &mut self,
        via: &Via,
        thread_key: &str,
        ticket: &str,
        contact: &str,
        from: &str,
        at: i64,
    ) -> Result<ConversationId, StoreError> {
        let id = ConversationId::new();
        let channel = via.channel_id.as_str();
        self.0
            .prepare_cached(
                "INSERT INTO conversations (id, channel_id, thread_key, status, ticket_id,
                     contact_id, owner_id, created_at, last_message_at)
                 VALUES (?1, ?2, ?3, 'open', ?4, ?5,
                     (SELECT owner_id FROM conversations WHERE id = ?6), ?7, ?7)",
            )?
            .execute(params![
                id.as_str(),
                channel,
                thread_key,
                ticket,
                contact,
                from,
                at
            ])
            .on_constraint(|| {
                let channel = channel.to_owned();
                StoreError::Conflict(ViaConflict::ThreadTaken { channel }.to_string())
            })?;
        Ok(id)
    }

    async fn insert_outbound(
        &mut self,
        id: &MessageId,
        channel: &str,
        conversation: &str,
        reply: &NewReply,
        reply_to: Option<&str>,
        at: i64,
    ) -> Result<(), StoreError> {
        let conn = self.0;
        conn.prepare_cached(
            "INSERT INTO messages (id, conversation_id, channel_id, direction, sender_type,
                 sender_id, reply_to, parts, delivery_status, created_at)
             VALUES (?1, ?2, ?3, 'outbound', ?4, ?5, ?6, ?7, 'queued', ?8)",
        )?
        .execute(params![
            id.as_str(),
            conversation,
            channel,
            reply.sender.kind.as_str(),
            reply.sender.id,
            reply_to,
            json(&reply.parts)?,
            at
        ])?;
        search::queue(conn, conn.last_insert_rowid(), &reply.parts, true)
    }

    async fn touch(&mut self, conversation: &str, at: i64) -> Result<(), StoreError> {
        self.0
            .prepare_cached("UPDATE conversations SET last_message_at = ?2 WHERE id = ?1")?
            .execute(params![conversation, at])?;
        Ok(())
    }

    async fn enqueue_delivery(
        &mut self,
        channel: &str,
        conversation: &str,
        message: &MessageId,
        run_at: i64,
        at: i64,
    ) -> Result<(), StoreError> {
        outbox::enqueue_delivery(self.0, channel, conversation, message, run_at, at)?;
        Ok(())
    }
}
