//! A webhook's events on PostgreSQL: the steps of `store::sequences::ingest` (messages,
//! edits, retractions) and the status reports and watermarks, in one transaction.
//!
//! Replicas ingest concurrently, so what SQLite's single writer serialises for free is
//! serialised here with transaction-scoped advisory locks: one per sender (dedupe, contact
//! creation, per-contact threading), one per platform thread, and one per platform message
//! id for status reports racing the send that gives the message that id.

use serde_json::Value;
use sqlx::PgConnection;

use super::events;
use crate::model::event::{
    InboundContact, InboundEvent, InboundMessage, StatusUpdate, StatusWatermark,
};
use crate::model::{
    ContactId, ConversationId, DeliveryStatus, Identifier, MessageId, Part, TicketId,
};
use crate::store::sequences::ingest::{self, Editable, Found, InboundRow, IngestTx};
use crate::store::shared::{advance_stored, json};
use crate::store::{ChannelRules, IngestOutcome, PublishNote, StoreError};

/// Takes a transaction-scoped advisory lock on `key` (hashed to the lock space).
pub async fn lock(c: &mut PgConnection, key: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(key)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// The lock that stores one sender's messages (and creates their contact) one at a time.
pub fn sender_key(channel: &str, kind: &str, value: &str) -> String {
    format!("sender\u{1f}{channel}\u{1f}{kind}\u{1f}{value}")
}

/// The lock that orders a platform message id's status reports against its send.
pub fn platform_id_key(channel: &str, platform_id: &str) -> String {
    format!("pid\u{1f}{channel}\u{1f}{platform_id}")
}

/// What a message says, for full-text search (`None` when it has no text).
pub fn body_text(parts: &[Part]) -> Option<String> {
    let text: Vec<&str> = parts.iter().filter_map(Part::text).collect();
    // PostgreSQL text cannot hold NUL; search does not need it.
    (!text.is_empty()).then(|| text.join(" ").replace('\0', " "))
}

pub async fn ingest(
    c: &mut PgConnection,
    rules: &ChannelRules,
    events: &[InboundEvent],
    now: i64,
) -> Result<Vec<IngestOutcome>, StoreError> {
    let mut outcomes = Vec::with_capacity(events.len());
    for event in events {
        outcomes.push(match event {
            InboundEvent::Message(message) => ingest::store_message(c, rules, message, now).await?,
            InboundEvent::Status(status) => {
                record_status(c, &rules.channel_id, status, now).await?
            }
            InboundEvent::Edit(edit) => ingest::apply_edit(c, rules, edit, now).await?,
            InboundEvent::Retract {
                platform_message_id,
            } => ingest::retract(c, rules, platform_message_id, now).await?,
            InboundEvent::Watermark(mark) => {
                apply_watermark(c, &rules.channel_id, mark, now).await?
            }
        });
    }
    Ok(outcomes)
}

/// Moves forward every reply to the contact sent up to the watermark.
async fn apply_watermark(
    c: &mut PgConnection,
    channel: &str,
    mark: &StatusWatermark,
    now: i64,
) -> Result<IngestOutcome, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.id, m.delivery_status FROM messages m
         JOIN conversations c ON c.id = m.conversation_id
         JOIN contact_identifiers i ON i.contact_id = c.contact_id AND i.channel_id = m.channel_id
         WHERE m.channel_id = $1 AND i.kind = $2 AND i.value = $3 AND m.direction = 'outbound'
           AND m.created_at <= $4 AND m.delivery_status IN ('sent', 'delivered')
         ORDER BY m.seq
         FOR UPDATE OF m",
    )
    .bind(channel)
    .bind(&mark.contact.kind)
    .bind(&mark.contact.value)
    .bind(mark.up_to.timestamp_millis())
    .fetch_all(&mut *c)
    .await?;
    let mut updated = 0;
    for (id, status) in rows {
        if let Some(next) = advance_stored(&status, DeliveryStatus::Sent, mark.status) {
            events::delivery_updated(c, &id, next, None, now).await?;
            updated += 1;
        }
    }
    Ok(IngestOutcome::Watermark { updated })
}

/// The display name of a conversation's contact, for live clients (`message.created`).
pub(super) async fn contact_name(
    c: &mut PgConnection,
    conversation: &str,
) -> Result<Option<String>, StoreError> {
    let name: Option<Option<String>> = sqlx::query_scalar(
        "SELECT k.display_name FROM conversations c JOIN contacts k ON k.id = c.contact_id
         WHERE c.id = $1",
    )
    .bind(conversation)
    .fetch_optional(&mut *c)
    .await?;
    Ok(name.flatten())
}

impl IngestTx for PgConnection {
    async fn hold_sender(&mut self, channel: &str, sender: &Identifier) -> Result<(), StoreError> {
        lock(self, &sender_key(channel, &sender.kind, &sender.value)).await
    }

    async fn hold_thread(&mut self, channel: &str, key: &str) -> Result<(), StoreError> {
        lock(self, &format!("thread\u{1f}{channel}\u{1f}{key}")).await
    }

    async fn inbound_id(
        &mut self,
        channel: &str,
        platform_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM messages
             WHERE channel_id = $1 AND platform_message_id = $2 AND direction = 'inbound'",
        )
        .bind(channel)
        .bind(platform_id)
        .fetch_optional(self)
        .await?)
    }

    async fn contact_of(
        &mut self,
        channel: &str,
        identifier: &Identifier,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT contact_id FROM contact_identifiers
             WHERE channel_id = $1 AND kind = $2 AND value = $3",
        )
        .bind(channel)
        .bind(&identifier.kind)
        .bind(&identifier.value)
        .fetch_optional(self)
        .await?)
    }

    async fn sender_contact(
        &mut self,
        channel: &str,
        from: &InboundContact,
        refresh: bool,
        at: i64,
    ) -> Result<Option<String>, StoreError> {
        if !refresh {
            return self.contact_of(channel, &from.identifier).await;
        }
        // The look-up and the refresh in one round trip; the update also skips the write
        // when nothing differs.
        Ok(sqlx::query_scalar(
            "WITH found AS (
                 SELECT contact_id FROM contact_identifiers
                 WHERE channel_id = $1 AND kind = $2 AND value = $3
             ), refreshed AS (
                 UPDATE contacts SET display_name = COALESCE($4, display_name),
                     email = COALESCE($5, email), updated_at = $6
                 FROM found
                 WHERE contacts.id = found.contact_id
                   AND (display_name IS DISTINCT FROM COALESCE($4, display_name)
                     OR email IS DISTINCT FROM COALESCE($5, email))
             )
             SELECT contact_id FROM found",
        )
        .bind(channel)
        .bind(&from.identifier.kind)
        .bind(&from.identifier.value)
        .bind(&from.display_name)
        .bind(&from.email)
        .bind(at)
        .fetch_optional(self)
        .await?)
    }

    async fn insert_contact(
        &mut self,
        id: &ContactId,
        name: Option<&str>,
        email: Option<&str>,
        owner: Option<&str>,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO contacts (id, display_name, email, owner_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(id.as_str())
        .bind(name)
        .bind(email)
        .bind(owner)
        .bind(at)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn add_identifier(
        &mut self,
        channel: &str,
        identifier: &Identifier,
        contact: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO contact_identifiers (channel_id, kind, value, contact_id)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(channel)
        .bind(&identifier.kind)
        .bind(&identifier.value)
        .bind(contact)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn hinted(
        &mut self,
        channel: &str,
        contact: &ContactId,
        hint: &str,
    ) -> Result<Option<(Found, bool)>, StoreError> {
        let row: Option<(String, String, bool)> = sqlx::query_as(
            "SELECT id, ticket_id, status = 'open' FROM conversations
             WHERE channel_id = $1 AND contact_id = $2 AND deleted_at IS NULL
               AND id = COALESCE((SELECT conversation_id FROM messages WHERE id = $3), $3)",
        )
        .bind(channel)
        .bind(contact.as_str())
        .bind(hint)
        .fetch_optional(self)
        .await?;
        Ok(row.map(|(id, ticket, open)| ((id, ticket), open)))
    }

    async fn in_thread(
        &mut self,
        channel: &str,
        key: &str,
        open: bool,
    ) -> Result<Option<Found>, StoreError> {
        // The status is written into each statement, not bound, so that a generic plan can
        // still use the partial index on open conversations.
        let sql = if open {
            "SELECT id, ticket_id FROM conversations
             WHERE channel_id = $1 AND thread_key = $2 AND status = 'open' AND deleted_at IS NULL"
        } else {
            "SELECT id, ticket_id FROM conversations
             WHERE channel_id = $1 AND thread_key = $2 AND status = 'closed' AND deleted_at IS NULL
             ORDER BY seq DESC LIMIT 1"
        };
        Ok(sqlx::query_as(sql)
            .bind(channel)
            .bind(key)
            .fetch_optional(self)
            .await?)
    }

    async fn append(
        &mut self,
        conversation: &str,
        _: &MessageId,
        at: i64,
    ) -> Result<(), StoreError> {
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

    async fn reopen(
        &mut self,
        (id, ticket): &Found,
        rules: &ChannelRules,
        _: &MessageId,
        at: i64,
    ) -> Result<(), StoreError> {
        // The ticket's row first: tickets.rs locks tickets before their conversations.
        sqlx::query(
            "UPDATE tickets SET status = $2, closed_at = NULL, updated_at = $3
             WHERE id = $1 AND closed_at IS NOT NULL",
        )
        .bind(ticket)
        .bind(&rules.ticket.status)
        .bind(at)
        .execute(&mut *self)
        .await?;
        sqlx::query(
            "UPDATE conversations SET status = 'open', closed_at = NULL, last_message_at = $2
             WHERE id = $1",
        )
        .bind(id)
        .bind(at)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn create(
        &mut self,
        rules: &ChannelRules,
        key: &str,
        contact: &ContactId,
        m: &InboundMessage,
        _: &MessageId,
        at: i64,
    ) -> Result<ConversationId, StoreError> {
        let ticket = TicketId::new();
        let t = &rules.ticket;
        sqlx::query(
            "INSERT INTO tickets (id, pipeline, status, priority, properties, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(ticket.as_str())
        .bind(&t.pipeline)
        .bind(&t.status)
        .bind(&t.priority)
        .bind(json(&t.properties)?)
        .bind(at)
        .execute(&mut *self)
        .await?;
        let id = ConversationId::new();
        // The platform's chat (a Telegram group, a LINE room) is where replies go, whatever
        // the channel's threading mode.
        sqlx::query(
            "INSERT INTO conversations (id, channel_id, thread_key, platform_thread_id, status,
                 ticket_id, contact_id, created_at, last_message_at)
             VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $7)",
        )
        .bind(id.as_str())
        .bind(&rules.channel_id)
        .bind(key)
        .bind(m.thread_id.as_deref())
        .bind(ticket.as_str())
        .bind(contact.as_str())
        .bind(at)
        .execute(self)
        .await?;
        Ok(id)
    }

    async fn contact_name(&mut self, conversation: &str) -> Result<Option<String>, StoreError> {
        contact_name(self, conversation).await
    }

    async fn insert_inbound(
        &mut self,
        row: InboundRow<'_>,
        event: Value,
    ) -> Result<(), StoreError> {
        let (m, channel, at) = (row.message, row.channel, row.at);
        let reply_to: Option<String> = match &m.reply_to {
            Some(platform_id) => {
                sqlx::query_scalar(
                    "SELECT id FROM messages WHERE channel_id = $1 AND platform_message_id = $2
                     ORDER BY seq DESC LIMIT 1",
                )
                .bind(channel)
                .bind(platform_id)
                .fetch_optional(&mut *self)
                .await?
            }
            None => None,
        };
        // The message and its event in one round trip; the event as `events::emit`
        // writes it, with the conversation's channel and owner.
        sqlx::query(
            "WITH m AS (
                 INSERT INTO messages (id, conversation_id, channel_id, direction,
                     platform_message_id, sender_type, sender_id, reply_to, parts, raw,
                     delivery_status, platform_sent_at, created_at, body_text)
                 VALUES ($1, $2, $3, 'inbound', $4, 'contact', $5, $6, $7, $8, 'received', $9,
                     $10, $11)
                 RETURNING conversation_id
             )
             INSERT INTO events (kind, channel_id, conversation_id, owner_id, data, at)
             SELECT 'message.created', c.channel_id, m.conversation_id, c.owner_id, $12, $10
             FROM m LEFT JOIN conversations c ON c.id = m.conversation_id",
        )
        .bind(row.id.as_str())
        .bind(row.conversation.as_str())
        .bind(channel)
        .bind(&m.platform_message_id)
        .bind(row.contact.as_str())
        .bind(reply_to)
        .bind(json(&m.parts)?)
        .bind(json(&m.raw)?)
        .bind(m.sent_at.map(|t| t.timestamp_millis()))
        .bind(at)
        .bind(body_text(&m.parts))
        .bind(event.to_string())
        .execute(self)
        .await?;
        Ok(())
    }

    async fn editable(
        &mut self,
        channel: &str,
        platform_id: &str,
    ) -> Result<Option<Editable>, StoreError> {
        let row: Option<(String, String, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT id, conversation_id, parts, history, seq FROM messages
             WHERE channel_id = $1 AND platform_message_id = $2 AND direction = 'inbound'
             FOR UPDATE",
        )
        .bind(channel)
        .bind(platform_id)
        .fetch_optional(self)
        .await?;
        Ok(row.map(|(id, conversation, parts, history, seq)| Editable {
            id,
            conversation,
            parts,
            history,
            seq,
        }))
    }

    async fn write_edit(
        &mut self,
        message: &Editable,
        parts: &[Part],
        history: &str,
        edited_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE messages SET parts = $2, history = $3, edited_at = $4, body_text = $5
             WHERE id = $1",
        )
        .bind(&message.id)
        .bind(json(&parts)?)
        .bind(history)
        .bind(edited_at)
        .bind(body_text(parts))
        .execute(self)
        .await?;
        Ok(())
    }

    async fn unretracted(
        &mut self,
        channel: &str,
        platform_id: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, conversation_id FROM messages
             WHERE channel_id = $1 AND platform_message_id = $2 AND direction = 'inbound'
               AND retracted_at IS NULL
             FOR UPDATE",
        )
        .bind(channel)
        .bind(platform_id)
        .fetch_optional(self)
        .await?)
    }

    async fn retract(
        &mut self,
        channel: &str,
        platform_id: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE messages SET retracted_at = COALESCE(retracted_at, $3)
             WHERE channel_id = $1 AND platform_message_id = $2 AND direction = 'inbound'",
        )
        .bind(channel)
        .bind(platform_id)
        .bind(at)
        .execute(self)
        .await?;
        Ok(changed.rows_affected() > 0)
    }

    async fn enqueue_publish(
        &mut self,
        conversation: &str,
        message: &MessageId,
        note: Option<&PublishNote>,
        at: i64,
    ) -> Result<(), StoreError> {
        super::hubspot::enqueue_publish(self, conversation, message, note, at).await
    }
}

/// Records a platform's status report and moves the message it names forward, if known.
async fn record_status(
    c: &mut PgConnection,
    channel: &str,
    s: &StatusUpdate,
    now: i64,
) -> Result<IngestOutcome, StoreError> {
    // The send that gives a message this id folds in the reports stored before it; this
    // lock makes sure each report is either seen by that send or sees its result.
    lock(c, &platform_id_key(channel, &s.platform_message_id)).await?;
    sqlx::query(
        "INSERT INTO status_reports (channel_id, platform_message_id, status, error, received_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(channel)
    .bind(&s.platform_message_id)
    .bind(s.status.as_str())
    .bind(&s.error)
    .bind(now)
    .execute(&mut *c)
    .await?;
    let target: Option<(String, String)> = sqlx::query_as(
        "SELECT id, delivery_status FROM messages
         WHERE channel_id = $1 AND platform_message_id = $2 AND direction = 'outbound'
         ORDER BY seq DESC LIMIT 1
         FOR UPDATE",
    )
    .bind(channel)
    .bind(&s.platform_message_id)
    .fetch_optional(&mut *c)
    .await?;
    let moved = target.and_then(|(id, current)| {
        Some((
            id,
            advance_stored(&current, DeliveryStatus::Queued, s.status)?,
        ))
    });
    if let Some((id, next)) = &moved {
        events::delivery_updated(c, id, *next, s.error.as_deref(), now).await?;
    }
    let applied = moved.is_some();
    Ok(IngestOutcome::Status {
        id: s.platform_message_id.clone(),
        applied,
    })
}
