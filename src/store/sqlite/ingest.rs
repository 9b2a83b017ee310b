//! A webhook's events on SQLite: the steps of `store::sequences::ingest` (messages, edits,
//! retractions) and the status reports and watermarks, run on the writer thread inside the
//! batch's transaction (one savepoint per request).

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::{WriterTx, events, search};
use crate::model::event::{
    InboundContact, InboundEvent, InboundMessage, StatusUpdate, StatusWatermark,
};
use crate::model::{
    ContactId, ConversationId, DeliveryStatus, Identifier, MessageId, Part, TicketId,
};
use crate::store::sequences::ingest::{self, Editable, Found, InboundRow, IngestTx};
use crate::store::sequences::{Tx, ready};
use crate::store::shared::{advance_stored, json};
use crate::store::{ChannelRules, IngestOutcome, PublishNote, StoreError};

pub fn ingest(
    conn: &Connection,
    rules: &ChannelRules,
    events: &[InboundEvent],
    now: i64,
) -> Result<Vec<IngestOutcome>, StoreError> {
    events
        .iter()
        .map(|event| match event {
            InboundEvent::Message(message) => ready(ingest::store_message(
                &mut WriterTx(conn),
                rules,
                message,
                now,
            )),
            InboundEvent::Status(status) => record_status(conn, &rules.channel_id, status, now),
            InboundEvent::Edit(edit) => {
                ready(ingest::apply_edit(&mut WriterTx(conn), rules, edit, now))
            }
            InboundEvent::Retract {
                platform_message_id,
            } => {
                let tx = &mut WriterTx(conn);
                ready(ingest::retract(tx, rules, platform_message_id, now))
            }
            InboundEvent::Watermark(mark) => apply_watermark(conn, &rules.channel_id, mark, now),
        })
        .collect()
}

/// Moves forward every reply to the contact sent up to the watermark.
fn apply_watermark(
    conn: &Connection,
    channel: &str,
    mark: &StatusWatermark,
    now: i64,
) -> Result<IngestOutcome, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT m.id, m.delivery_status FROM messages m
         JOIN conversations c ON c.id = m.conversation_id
         JOIN contact_identifiers i ON i.contact_id = c.contact_id AND i.channel_id = m.channel_id
         WHERE m.channel_id = ?1 AND i.kind = ?2 AND i.value = ?3 AND m.direction = 'outbound'
           AND m.created_at <= ?4 AND m.delivery_status IN ('sent', 'delivered')",
    )?;
    let rows: Vec<(String, String)> = statement
        .query_map(
            params![
                channel,
                mark.contact.kind,
                mark.contact.value,
                mark.up_to.timestamp_millis()
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<Result<_, _>>()?;
    let mut updated = 0;
    for (id, status) in rows {
        if let Some(next) = advance_stored(&status, DeliveryStatus::Sent, mark.status) {
            events::delivery_updated(conn, &id, next, None, now)?;
            updated += 1;
        }
    }
    Ok(IngestOutcome::Watermark { updated })
}

/// The display name of a conversation's contact, for live clients (`message.created`).
pub(super) fn contact_name(
    conn: &Connection,
    conversation: &str,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT k.display_name FROM conversations c JOIN contacts k ON k.id = c.contact_id
             WHERE c.id = ?1",
        )?
        .query_row([conversation], |r| r.get(0))
        .optional()?
        .flatten())
}

impl IngestTx for WriterTx<'_> {
    async fn hold_sender(&mut self, _: &str, _: &Identifier) -> Result<(), StoreError> {
        // The writer thread stores one request at a time already.
        Ok(())
    }

    async fn hold_thread(&mut self, _: &str, _: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn inbound_id(
        &mut self,
        channel: &str,
        platform_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT id FROM messages
                 WHERE channel_id = ?1 AND platform_message_id = ?2 AND direction = 'inbound'",
            )?
            .query_row(params![channel, platform_id], |r| r.get(0))
            .optional()?)
    }

    async fn contact_of(
        &mut self,
        channel: &str,
        identifier: &Identifier,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT contact_id FROM contact_identifiers
                 WHERE channel_id = ?1 AND kind = ?2 AND value = ?3",
            )?
            .query_row(params![channel, identifier.kind, identifier.value], |r| {
                r.get(0)
            })
            .optional()?)
    }

    async fn sender_contact(
        &mut self,
        channel: &str,
        from: &InboundContact,
        refresh: bool,
        at: i64,
    ) -> Result<Option<String>, StoreError> {
        let id = self.contact_of(channel, &from.identifier).await?;
        if let (Some(id), true) = (&id, refresh) {
            // The statement also skips the write when nothing differs.
            self.0
                .prepare_cached(
                    "UPDATE contacts SET display_name = COALESCE(?2, display_name),
                         email = COALESCE(?3, email), updated_at = ?4
                     WHERE id = ?1 AND (display_name IS NOT COALESCE(?2, display_name)
                         OR email IS NOT COALESCE(?3, email))",
                )?
                .execute(params![id, from.display_name, from.email, at])?;
        }
        Ok(id)
    }

    async fn insert_contact(
        &mut self,
        id: &ContactId,
        name: Option<&str>,
        email: Option<&str>,
        owner: Option<&str>,
        at: i64,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO contacts (id, display_name, email, owner_id, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            )?
            .execute(params![id.as_str(), name, email, owner, at])?;
        Ok(())
    }

    async fn add_identifier(
        &mut self,
        channel: &str,
        identifier: &Identifier,
        contact: &str,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO contact_identifiers (channel_id, kind, value, contact_id)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![channel, identifier.kind, identifier.value, contact])?;
        Ok(())
    }

    async fn hinted(
        &mut self,
        channel: &str,
        contact: &ContactId,
        hint: &str,
    ) -> Result<Option<(Found, bool)>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT id, ticket_id, status = 'open' FROM conversations
                 WHERE channel_id = ?1 AND contact_id = ?2 AND deleted_at IS NULL
                   AND id = COALESCE((SELECT conversation_id FROM messages WHERE id = ?3), ?3)",
            )?
            .query_row(params![channel, contact.as_str(), hint], |r| {
                Ok(((r.get(0)?, r.get(1)?), r.get(2)?))
            })
            .optional()?)
    }

    async fn in_thread(
        &mut self,
        channel: &str,
        key: &str,
        open: bool,
    ) -> Result<Option<Found>, StoreError> {
        // The status is written into each statement, not bound: with a bound value SQLite
        // cannot use the partial index on open conversations and re-plans on every call.
        let sql = if open {
            "SELECT id, ticket_id FROM conversations
             WHERE channel_id = ?1 AND thread_key = ?2 AND status = 'open' AND deleted_at IS NULL"
        } else {
            "SELECT id, ticket_id FROM conversations
             WHERE channel_id = ?1 AND thread_key = ?2 AND status = 'closed' AND deleted_at IS NULL
             ORDER BY seq DESC LIMIT 1"
        };
        Ok(self
            .0
            .prepare_cached(sql)?
            .query_row(params![channel, key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    async fn append(
        &mut self,
        conversation: &str,
        message: &MessageId,
        at: i64,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE conversations SET last_message_at = ?2, last_inbound_id = ?3 WHERE id = ?1",
            )?
            .execute(params![conversation, at, message.as_str()])?;
        Ok(())
    }

    async fn reopen(
        &mut self,
        (id, ticket): &Found,
        rules: &ChannelRules,
        message: &MessageId,
        at: i64,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE tickets SET status = ?2, closed_at = NULL, updated_at = ?3
                 WHERE id = ?1 AND closed_at IS NOT NULL",
            )?
            .execute(params![ticket, rules.ticket.status, at])?;
        self.0
            .prepare_cached(
                "UPDATE conversations SET status = 'open', closed_at = NULL, last_message_at = ?2,
                     last_inbound_id = ?3
                 WHERE id = ?1",
            )?
            .execute(params![id, at, message.as_str()])?;
        Ok(())
    }

    async fn create(
        &mut self,
        rules: &ChannelRules,
        key: &str,
        contact: &ContactId,
        m: &InboundMessage,
        message: &MessageId,
        at: i64,
    ) -> Result<ConversationId, StoreError> {
        let ticket = TicketId::new();
        let t = &rules.ticket;
        self.0
            .prepare_cached(
                "INSERT INTO tickets (id, pipeline, status, priority, properties, created_at,
                     updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            )?
            .execute(params![
                ticket.as_str(),
                t.pipeline,
                t.status,
                t.priority,
                json(&t.properties)?,
                at
            ])?;
        let id = ConversationId::new();
        // The platform's chat (a Telegram group, a LINE room) is where replies go, whatever
        // the channel's threading mode.
        self.0
            .prepare_cached(
                "INSERT INTO conversations (id, channel_id, thread_key, platform_thread_id, status,
                     ticket_id, contact_id, created_at, last_message_at, last_inbound_id)
                 VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, ?7, ?7, ?8)",
            )?
            .execute(params![
                id.as_str(),
                rules.channel_id,
                key,
                m.thread_id,
                ticket.as_str(),
                contact.as_str(),
                at,
                message.as_str()
            ])?;
        Ok(id)
    }

    async fn contact_name(&mut self, conversation: &str) -> Result<Option<String>, StoreError> {
        contact_name(self.0, conversation)
    }

    async fn insert_inbound(
        &mut self,
        row: InboundRow<'_>,
        event: Value,
    ) -> Result<(), StoreError> {
        let (m, channel, at) = (row.message, row.channel, row.at);
        let conn = self.0;
        let reply_to: Option<String> = match &m.reply_to {
            Some(platform_id) => conn
                .prepare_cached(
                    "SELECT id FROM messages WHERE channel_id = ?1 AND platform_message_id = ?2
                     ORDER BY seq DESC LIMIT 1",
                )?
                .query_row(params![channel, platform_id], |r| r.get(0))
                .optional()?,
            None => None,
        };
        conn.prepare_cached(
            "INSERT INTO messages (id, conversation_id, channel_id, direction, platform_message_id,
                 sender_type, sender_id, reply_to, parts, raw, delivery_status, platform_sent_at,
                 created_at)
             VALUES (?1, ?2, ?3, 'inbound', ?4, 'contact', ?5, ?6, ?7, ?8, 'received', ?9, ?10)",
        )?
        .execute(params![
            row.id.as_str(),
            row.conversation.as_str(),
            channel,
            m.platform_message_id,
            row.contact.as_str(),
            reply_to,
            json(&m.parts)?,
            json(&m.raw)?,
            m.sent_at.map(|t| t.timestamp_millis()),
            at,
        ])?;
        search::queue(conn, conn.last_insert_rowid(), &m.parts, true)?;
        self.emit("message.created", row.conversation.as_str(), event, at)
            .await
    }

    async fn editable(
        &mut self,
        channel: &str,
        platform_id: &str,
    ) -> Result<Option<Editable>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT id, conversation_id, parts, history, seq FROM messages
                 WHERE channel_id = ?1 AND platform_message_id = ?2 AND direction = 'inbound'",
            )?
            .query_row(params![channel, platform_id], |r| {
                Ok(Editable {
                    id: r.get(0)?,
                    conversation: r.get(1)?,
                    parts: r.get(2)?,
                    history: r.get(3)?,
                    seq: r.get(4)?,
                })
            })
            .optional()?)
    }

    async fn write_edit(
        &mut self,
        message: &Editable,
        parts: &[Part],
        history: &str,
        edited_at: i64,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE messages SET parts = ?2, history = ?3, edited_at = ?4 WHERE id = ?1",
            )?
            .execute(params![message.id, json(&parts)?, history, edited_at])?;
        search::queue(self.0, message.seq, parts, false)
    }

    async fn unretracted(
        &mut self,
        channel: &str,
        platform_id: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT id, conversation_id FROM messages
                 WHERE channel_id = ?1 AND platform_message_id = ?2 AND direction = 'inbound'
                   AND retracted_at IS NULL",
            )?
            .query_row(params![channel, platform_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
    }

    async fn retract(
        &mut self,
        channel: &str,
        platform_id: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        let changed = self
            .0
            .prepare_cached(
                "UPDATE messages SET retracted_at = COALESCE(retracted_at, ?3)
                 WHERE channel_id = ?1 AND platform_message_id = ?2 AND direction = 'inbound'",
            )?
            .execute(params![channel, platform_id, at])?;
        Ok(changed > 0)
    }

    async fn enqueue_publish(
        &mut self,
        conversation: &str,
        message: &MessageId,
        note: Option<&PublishNote>,
        at: i64,
    ) -> Result<(), StoreError> {
        super::hubspot::enqueue_publish(self.0, conversation, message, note, at)
    }
}

/// Records a platform's status report and moves the message it names forward, if known.
fn record_status(
    conn: &Connection,
    channel: &str,
    s: &StatusUpdate,
    now: i64,
) -> Result<IngestOutcome, StoreError> {
    conn.prepare_cached(
        "INSERT INTO status_reports (channel_id, platform_message_id, status, error, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        channel,
        s.platform_message_id,
        s.status.as_str(),
        s.error,
        now
    ])?;
    let target: Option<(String, String)> = conn
        .prepare_cached(
            "SELECT id, delivery_status FROM messages
             WHERE channel_id = ?1 AND platform_message_id = ?2 AND direction = 'outbound'
             ORDER BY seq DESC LIMIT 1",
        )?
        .query_row(params![channel, s.platform_message_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let moved = target.and_then(|(id, current)| {
        Some((
            id,
            advance_stored(&current, DeliveryStatus::Queued, s.status)?,
        ))
    });
    if let Some((id, next)) = &moved {
        events::delivery_updated(conn, id, *next, s.error.as_deref(), now)?;
    }
    let applied = moved.is_some();
    Ok(IngestOutcome::Status {
        id: s.platform_message_id.clone(),
        applied,
    })
}
