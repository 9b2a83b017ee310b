//! [`HubspotStore`] on SQLite: the message ↔ HubSpot id map, publish reads, uploaded files.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, now_ms};
use crate::model::{ConversationId, Identifier, MessageId, Part, from_millis};
use crate::store::hubspot::{
    HubspotDirection, HubspotLink, HubspotQueue, HubspotStore, PublishSource,
};
use crate::store::{JOB_CHANNEL_HUBSPOT, PublishNote, StoreError};

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
