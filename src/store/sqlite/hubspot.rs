//! [`HubspotStore`] on SQLite: the message ↔ HubSpot id map, publish reads, uploaded files.

use async_trait::async_trait;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use super::{SqliteStore, now_ms};
use crate::model::{ConversationId, MessageId, from_millis};
use crate::store::hubspot::{
    AccountChange, AccountState, ChannelQueue, HubspotLink, HubspotQueue, HubspotStore,
    PARKED_PREFIX, PublishSource, ReportedStatus, WebhookOutcome, WebhookRecord, status_key,
    status_payload,
};
use crate::store::sequences::hubspot::HubspotTx;
use crate::store::sequences::{self, ready};
use crate::store::shared::json;
use crate::store::{
    JOB_CHANNEL_HUBSPOT, JOB_HUBSPOT_PUBLISH, JOB_HUBSPOT_STATUS, PublishNote, StoreError,
};

/// Queues the publish of a new inbound message (or, with `note`, of a follow-up on it);
/// one conversation's publishes run in order.
pub fn enqueue_publish(
    conn: &Connection,
    conversation: &str,
    message: &MessageId,
    note: Option<&PublishNote>,
    now: i64,
) -> Result<(), StoreError> {
    let payload = crate::store::hubspot_publish_payload(message, note);
    super::outbox::insert_job(
        conn,
        crate::store::JOB_HUBSPOT_PUBLISH,
        JOB_CHANNEL_HUBSPOT,
        &format!("hubspot:{conversation}"),
        &payload,
        now,
        now,
    )?;
    Ok(())
}

fn publish_source(conn: &Connection, id: &MessageId) -> Result<PublishSource, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT m.conversation_id, m.channel_id, m.parts, m.platform_sent_at, m.created_at,
                    m.sender_id, m.reply_to, c.display_name, c.email
             FROM messages m LEFT JOIN contacts c ON c.id = m.sender_id
             WHERE m.id = ?1 AND m.direction = 'inbound'",
        )?
        .query_row([id.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Option<String>>(8)?,
            ))
        })
        .optional()?
        .ok_or(StoreError::NotFound("message"))?;
    let (conversation, channel, parts, sent_at, created_at, contact, reply_to, name, email) = row;
    let parts = crate::store::shared::parts(&parts)?;
    let contact = contact.unwrap_or_default();
    let identifier = super::queries::channel_identifier(conn, &contact, &channel)?;
    let in_reply_to = match reply_to {
        Some(target) => conn
            .prepare_cached(
                "SELECT hubspot_message_id FROM hubspot_messages WHERE message_id = ?1",
            )?
            .query_row([target], |r| r.get::<_, String>(0))
            .optional()?,
        None => None,
    };
    Ok(PublishSource {
        message_id: id.clone(),
        conversation_id: ConversationId::from_stored(conversation),
        channel_id: channel,
        parts,
        sent_at: sent_at.map(from_millis),
        received_at: from_millis(created_at),
        contact: identifier,
        contact_name: name,
        contact_email: email,
        in_reply_to,
    })
}

const LINK_COLUMNS: &str =
    "message_id, hubspot_message_id, hubspot_thread_id, direction, published_at";

fn link(row: &Row) -> rusqlite::Result<HubspotLink> {
    Ok(HubspotLink::from_row((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    )))
}

fn find_link(
    conn: &Connection,
    column: &str,
    value: &str,
) -> Result<Option<HubspotLink>, StoreError> {
    let sql = format!("SELECT {LINK_COLUMNS} FROM hubspot_messages WHERE {column} = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([value], link)
        .optional()?)
}

fn record_link(conn: &Connection, link: &HubspotLink) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO hubspot_messages (message_id, hubspot_message_id, hubspot_thread_id,
             direction, published_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT DO NOTHING",
    )?
    .execute(params![
        link.message_id.as_str(),
        link.hubspot_message_id,
        link.hubspot_thread_id,
        link.direction.as_str(),
        link.published_at.timestamp_millis(),
    ])?;
    Ok(())
}

fn files(conn: &Connection, message: &MessageId) -> Result<Vec<(u32, String)>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT part, file_id FROM hubspot_files WHERE message_id = ?1 ORDER BY part",
    )?;
    let rows = statement.query_map([message.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn queue(conn: &Connection) -> Result<HubspotQueue, StoreError> {
    let (pending, dead): (i64, i64) = conn
        .prepare_cached(
            "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'dead')
             FROM jobs WHERE channel_id = ?1",
        )?
        .query_row([JOB_CHANNEL_HUBSPOT], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(HubspotQueue {
        pending: pending as u64,
        dead: dead as u64,
    })
}

/// Queues a status report to HubSpot on a rep's message.
fn enqueue_status(
    conn: &Connection,
    message: Option<&MessageId>,
    hubspot_message_id: &str,
    status: ReportedStatus,
    error: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    super::outbox::insert_job(
        conn,
        JOB_HUBSPOT_STATUS,
        JOB_CHANNEL_HUBSPOT,
        &status_key(hubspot_message_id),
        &status_payload(message, hubspot_message_id, status, error),
        now,
        now,
    )?;
    Ok(())
}

/// When our message `message` is a rep's HubSpot reply, queues the report of its new
/// status to HubSpot (in the transaction that moved it).
pub fn report_status(
    conn: &Connection,
    message: &str,
    status: ReportedStatus,
    error: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let hubspot_id: Option<String> = conn
        .prepare_cached(
            "SELECT hubspot_message_id FROM hubspot_messages
             WHERE message_id = ?1 AND direction = 'out'",
        )?
        .query_row([message], |r| r.get(0))
        .optional()?;
    if let Some(hubspot_id) = hubspot_id {
        let message = MessageId::from_stored(message.to_owned());
        enqueue_status(conn, Some(&message), &hubspot_id, status, error, now)?;
    }
    Ok(())
}

impl HubspotTx for super::WriterTx<'_> {
    async fn claim_event(&mut self, event: &WebhookRecord, at: i64) -> Result<bool, StoreError> {
        let fresh = self
            .0
            .prepare_cached(
                "INSERT INTO hubspot_events (event_key, type, payload, outcome, received_at)
                 VALUES (?1, ?2, ?3, 'pending', ?4)
                 ON CONFLICT (event_key) DO NOTHING",
            )?
            .execute(params![event.key, event.kind, event.payload, at])?;
        Ok(fresh > 0)
    }

    async fn finish_event(
        &mut self,
        key: &str,
        outcome: &str,
        message: Option<&MessageId>,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE hubspot_events SET outcome = ?2, message_id = ?3 WHERE event_key = ?1",
            )?
            .execute(params![key, outcome, message.map(MessageId::as_str)])?;
        Ok(())
    }

    async fn hubspot_message_known(&mut self, hubspot_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT 1 FROM hubspot_messages WHERE hubspot_message_id = ?1")?
            .exists([hubspot_id])?)
    }

    async fn linked_conversation(
        &mut self,
        id: &str,
        linked: &[String],
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT id FROM conversations WHERE id = ?1 AND deleted_at IS NULL
                   AND channel_id IN (SELECT value FROM json_each(?2))",
            )?
            .query_row(params![id, json(&linked)?], |r| r.get(0))
            .optional()?)
    }

    async fn thread_conversation(
        &mut self,
        thread: &str,
        linked: &[String],
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT m.conversation_id FROM hubspot_messages h
                 JOIN messages m ON m.id = h.message_id
                 JOIN conversations c ON c.id = m.conversation_id AND c.deleted_at IS NULL
                 WHERE h.hubspot_thread_id = ?1
                   AND c.channel_id IN (SELECT value FROM json_each(?2))
                 ORDER BY h.published_at DESC LIMIT 1",
            )?
            .query_row(params![thread, json(&linked)?], |r| r.get(0))
            .optional()?)
    }

    async fn quoted(
        &mut self,
        hubspot_id: &str,
        conversation: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT h.message_id FROM hubspot_messages h JOIN messages m ON m.id = h.message_id
                 WHERE h.hubspot_message_id = ?1 AND m.conversation_id = ?2
                   AND m.direction != 'internal'",
            )?
            .query_row(params![hubspot_id, conversation], |r| r.get(0))
            .optional()?)
    }

    async fn enqueue_status(
        &mut self,
        message: Option<&MessageId>,
        hubspot_id: &str,
        status: ReportedStatus,
        error: Option<&str>,
        at: i64,
    ) -> Result<(), StoreError> {
        enqueue_status(self.0, message, hubspot_id, status, error, at)
    }

    async fn record_link(&mut self, link: &HubspotLink) -> Result<(), StoreError> {
        record_link(self.0, link)
    }

    async fn record_account(
        &mut self,
        change: &AccountChange,
        kind: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "INSERT INTO hubspot_accounts (channel_account_id, authorized, deleted, name,
                     last_event, updated_at)
                 VALUES (?1, COALESCE(?2, 1), ?3, ?4, ?5, ?6)
                 ON CONFLICT (channel_account_id) DO UPDATE SET
                     authorized = COALESCE(?2, authorized),
                     deleted = ?3, name = COALESCE(?4, name), last_event = ?5, updated_at = ?6
                 RETURNING authorized AND NOT deleted",
            )?
            .query_row(
                params![
                    change.channel_account_id,
                    change.authorized,
                    change.deleted,
                    change.name,
                    kind,
                    at
                ],
                |r| r.get(0),
            )?)
    }

    async fn release_parked(&mut self, at: i64) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE jobs SET run_at = ?1, updated_at = ?1
                 WHERE kind = ?2 AND state = 'pending' AND run_at > ?1 AND last_error LIKE ?3",
            )?
            .execute(params![
                at,
                JOB_HUBSPOT_PUBLISH,
                format!("{PARKED_PREFIX}%")
            ])?;
        Ok(())
    }
}

fn accounts(conn: &Connection) -> Result<Vec<AccountState>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT channel_account_id, authorized, deleted, name, last_event, updated_at
         FROM hubspot_accounts ORDER BY channel_account_id",
    )?;
    let rows = statement.query_map([], |r| {
        Ok(AccountState {
            channel_account_id: r.get(0)?,
            authorized: r.get(1)?,
            deleted: r.get(2)?,
            name: r.get(3)?,
            last_event: r.get(4)?,
            updated_at: from_millis(r.get(5)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The `hubspot_publish` (and any other `@hubspot`) jobs per channel of their message.
fn queues(conn: &Connection) -> Result<Vec<ChannelQueue>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT m.channel_id,
                count(*) FILTER (WHERE j.state = 'pending'),
                count(*) FILTER (WHERE j.state = 'dead')
         FROM jobs j LEFT JOIN messages m ON m.id = json_extract(j.payload, '$.message_id')
         WHERE j.channel_id = ?1
         GROUP BY m.channel_id ORDER BY m.channel_id",
    )?;
    let rows = statement.query_map([JOB_CHANNEL_HUBSPOT], |r| {
        Ok(ChannelQueue {
            channel_id: r.get(0)?,
            pending: r.get::<_, i64>(1)? as u64,
            dead: r.get::<_, i64>(2)? as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// [`crate::store::hubspot::read_queues`] on the SQLite file at `path`.
pub(crate) async fn read_hubspot_queues(path: &Path) -> Result<Vec<ChannelQueue>, StoreError> {
    if !path.exists() {
        return Err(StoreError::Unavailable(
            format!(
                "no database at {} (storage.path): has the daemon run with this config?",
                path.display()
            )
            .into(),
        ));
    }
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        // The daemon's writer may hold the file for a moment: wait rather than fail.
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        queues(&conn)
    })
    .await
    .map_err(|e| StoreError::Internal(crate::store::Detail::caused_by("the read failed", e)))?
}

#[async_trait]
impl HubspotStore for SqliteStore {
    async fn publish_source(&self, message: &MessageId) -> Result<PublishSource, StoreError> {
        let message = message.clone();
        self.readers
            .read(move |conn| publish_source(conn, &message))
            .await
    }

    async fn hubspot_link(&self, message: &MessageId) -> Result<Option<HubspotLink>, StoreError> {
        let message = message.clone();
        self.readers
            .read(move |conn| find_link(conn, "message_id", message.as_str()))
            .await
    }

    async fn hubspot_link_by_hubspot_id(
        &self,
        hubspot_message_id: &str,
    ) -> Result<Option<HubspotLink>, StoreError> {
        let id = hubspot_message_id.to_owned();
        self.readers
            .read(move |conn| find_link(conn, "hubspot_message_id", &id))
            .await
    }

    async fn record_hubspot_link(&self, link: &HubspotLink) -> Result<(), StoreError> {
        let link = link.clone();
        self.writer
            .write(move |conn| record_link(conn, &link))
            .await
    }

    async fn hubspot_files(&self, message: &MessageId) -> Result<Vec<(u32, String)>, StoreError> {
        let message = message.clone();
        self.readers.read(move |conn| files(conn, &message)).await
    }

    async fn record_hubspot_file(
        &self,
        message: &MessageId,
        part: u32,
        file_id: &str,
    ) -> Result<(), StoreError> {
        let (message, file_id) = (message.clone(), file_id.to_owned());
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO hubspot_files (message_id, part, file_id, created_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (message_id, part) DO UPDATE SET file_id = excluded.file_id",
                )?
                .execute(params![message.as_str(), part, file_id, now_ms()])?;
                Ok(())
            })
            .await
    }

    async fn hubspot_queue(&self) -> Result<HubspotQueue, StoreError> {
        self.readers.read(queue).await
    }

    async fn record_webhook(
        &self,
        events: Vec<WebhookRecord>,
    ) -> Result<Vec<WebhookOutcome>, StoreError> {
        let now = now_ms();
        self.writer
            .write(move |conn| {
                let tx = &mut super::WriterTx(conn);
                ready(sequences::hubspot::record_webhook(tx, &events, now))
            })
            .await
    }

    async fn hubspot_accounts(&self) -> Result<Vec<AccountState>, StoreError> {
        self.readers.read(accounts).await
    }

    async fn clear_event_payloads(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        let before = before.timestamp_millis();
        let mut cleared = 0;
        loop {
            let n = self
                .writer
                .write(move |conn| {
                    Ok(conn
                        .prepare_cached(
                            "UPDATE hubspot_events SET payload = ''
                             WHERE rowid IN (SELECT rowid FROM hubspot_events
                                 WHERE received_at < ?1 AND payload <> '' LIMIT ?2)",
                        )?
                        .execute(params![before, crate::store::hubspot::CLEAR_CHUNK])?
                        as u64)
                })
                .await?;
            cleared += n;
            if n < crate::store::hubspot::CLEAR_CHUNK as u64 {
                return Ok(cleared);
            }
        }
    }
}
