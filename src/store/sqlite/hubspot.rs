//! [`HubspotStore`] on SQLite: the message ↔ HubSpot id map, publish reads, uploaded files.

use async_trait::async_trait;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use super::{SqliteStore, now_ms};
use crate::model::{ConversationId, Identifier, MessageId, Part, from_millis};
use crate::store::hubspot::{
    ChannelQueue, HubspotDirection, HubspotLink, HubspotQueue, HubspotStore, PublishSource,
};
use crate::store::{JOB_CHANNEL_HUBSPOT, StoreError};

/// Queues the publish of a new inbound message; one conversation's publishes run in order.
pub fn enqueue_publish(
    conn: &Connection,
    conversation: &str,
    message: &MessageId,
    now: i64,
) -> Result<(), StoreError> {
    let payload = serde_json::json!({"message_id": message}).to_string();
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
    let parts: Vec<Part> = serde_json::from_str(&parts)
        .map_err(|e| StoreError::Internal(crate::store::Detail::caused_by("stored parts", e)))?;
    let contact = contact.unwrap_or_default();
    let identifier = conn
        .prepare_cached(
            "SELECT kind, value FROM contact_identifiers WHERE contact_id = ?1 AND channel_id = ?2
             ORDER BY kind LIMIT 1",
        )?
        .query_row(params![contact, channel], |r| {
            Ok(Identifier {
                kind: r.get(0)?,
                value: r.get(1)?,
            })
        })
        .optional()?
        .ok_or_else(|| {
            StoreError::Invalid(format!(
                "contact {contact} has no identifier on channel {channel}"
            ))
        })?;
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
    let direction: String = row.get(3)?;
    Ok(HubspotLink {
        message_id: MessageId::from_stored(row.get(0)?),
        hubspot_message_id: row.get(1)?,
        hubspot_thread_id: row.get(2)?,
        direction: HubspotDirection::parse(&direction).unwrap_or(HubspotDirection::In),
        published_at: from_millis(row.get(4)?),
    })
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
}
