//! A rep's reply in PostgreSQL: the steps of `store::sequences::replies`, in one
//! transaction that holds the rows it decides on.

use sqlx::PgConnection;

use super::ingest::body_text;
use super::outbox;
use crate::desk::replies::ViaConflict;
use crate::model::{ConversationId, MessageId};
use crate::store::sequences::replies::ReplyTx;
use crate::store::shared::json;
use crate::store::{NewReply, StoreError, Via};

impl ReplyTx for PgConnection {
    async fn reply_target(&mut self, conversation: &str) -> Result<(String, String), StoreError> {
        // Ticket first, then the conversation: the order tickets.rs locks them in.
        let ticket: String = sqlx::query_scalar(
            "SELECT ticket_id FROM conversations WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(conversation)
        .fetch_optional(&mut *self)
        .await?
        .ok_or(StoreError::NotFound("conversation"))?;
        sqlx::query("SELECT 1 FROM tickets WHERE id = $1 FOR UPDATE")
            .bind(&ticket)
            .execute(&mut *self)
            .await?;
        sqlx::query_as(
            "SELECT channel_id, ticket_id FROM conversations WHERE id = $1 AND deleted_at IS NULL
             FOR UPDATE",
        )
        .bind(conversation)
        .fetch_optional(self)
        .await?
        .ok_or(StoreError::NotFound("conversation"))
    }

    async fn quotable(
        &mut self,
        target: &MessageId,
        conversation: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM messages
             WHERE id = $1 AND conversation_id = $2 AND direction != 'internal'",
        )
        .bind(target.as_str())
        .bind(conversation)
        .fetch_optional(self)
        .await?)
    }

    async fn contact_in(&mut self, conversation: &str) -> Result<String, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT contact_id FROM conversations WHERE id = $1")
                .bind(conversation)
                .fetch_one(self)
                .await?,
        )
    }

    async fn on_ticket(
        &mut self,
        channel: &str,
        contact: &str,
        ticket: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM conversations WHERE channel_id = $1 AND contact_id = $2
               AND ticket_id = $3 AND deleted_at IS NULL ORDER BY seq DESC LIMIT 1",
        )
        .bind(channel)
        .bind(contact)
        .bind(ticket)
        .fetch_optional(self)
        .await?)
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
        let channel = via.channel_id.as_str();
        // Checked first: in PostgreSQL a failed insert would abort the whole transaction.
        let taken: Option<String> = sqlx::query_scalar(
            "SELECT id FROM conversations
             WHERE channel_id = $1 AND thread_key = $2 AND status = 'open' AND deleted_at IS NULL",
        )
        .bind(channel)
        .bind(thread_key)
        .fetch_optional(&mut *self)
        .await?;
        if taken.is_some() {
            let channel = channel.to_owned();
            return Err(StoreError::Conflict(
                ViaConflict::ThreadTaken { channel }.to_string(),
            ));
        }
        let id = ConversationId::new();
        sqlx::query(
            "INSERT INTO conversations (id, channel_id, thread_key, status, ticket_id, contact_id,
                 owner_id, created_at, last_message_at)
             VALUES ($1, $2, $3, 'open', $4, $5,
                 (SELECT owner_id FROM conversations WHERE id = $6), $7, $7)",
        )
        .bind(id.as_str())
        .bind(channel)
        .bind(thread_key)
        .bind(ticket)
        .bind(contact)
        .bind(from)
        .bind(at)
        .execute(self)
        .await?;
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
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, channel_id, direction, sender_type,
                 sender_id, reply_to, parts, delivery_status, created_at, body_text)
             VALUES ($1, $2, $3, 'outbound', $4, $5, $6, $7, 'queued', $8, $9)",
        )
        .bind(id.as_str())
        .bind(conversation)
        .bind(channel)
        .bind(reply.sender.kind.as_str())
        .bind(&reply.sender.id)
        .bind(reply_to)
        .bind(json(&reply.parts)?)
        .bind(at)
        .bind(body_text(&reply.parts))
        .execute(self)
        .await?;
        Ok(())
    }

    async fn touch(&mut self, conversation: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE conversations SET last_message_at = GREATEST(last_message_at, $2)
             WHERE id = $1",
        )
        .bind(conversation)
        .bind(at)
        .execute(self)
        .await?;
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
        outbox::enqueue_delivery(self, channel, conversation, message, run_at, at).await?;
        Ok(())
    }
}
