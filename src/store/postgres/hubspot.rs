//! [`HubspotStore`] on PostgreSQL: the message ↔ HubSpot id map, publish reads, uploaded
//! files. Shared by every replica.

use std::time::Duration;

use async_trait::async_trait;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::{ConnectOptions, Connection, PgConnection};

use super::{ATTEMPTS, PgStore, get, now_ms};
use crate::model::{ConversationId, Identifier, JobId, MessageId, Part, from_millis};
use crate::secret::Secret;
use crate::store::hubspot::{
    ChannelQueue, HubspotDirection, HubspotLink, HubspotQueue, HubspotStore, PublishSource,
};
use crate::store::{JOB_CHANNEL_HUBSPOT, StoreError};

/// Queues the publish of a new inbound message; one conversation's publishes run in order.
pub async fn enqueue_publish(
    c: &mut PgConnection,
    conversation: &str,
    message: &MessageId,
    now: i64,
) -> Result<(), StoreError> {
    let payload = serde_json::json!({"message_id": message}).to_string();
    sqlx::query(
        "INSERT INTO jobs (id, kind, channel_id, ordering_key, payload, state, run_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6, $6)",
    )
    .bind(JobId::new().as_str())
    .bind(crate::store::JOB_HUBSPOT_PUBLISH)
    .bind(JOB_CHANNEL_HUBSPOT)
    .bind(format!("hubspot:{conversation}"))
    .bind(payload)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(())
}

async fn publish_source(c: &mut PgConnection, id: &MessageId) -> Result<PublishSource, StoreError> {
    let row = sqlx::query(
        "SELECT m.conversation_id, m.channel_id, m.parts, m.platform_sent_at, m.created_at,
                m.sender_id, m.reply_to, c.display_name, c.email
         FROM messages m LEFT JOIN contacts c ON c.id = m.sender_id
         WHERE m.id = $1 AND m.direction = 'inbound'",
    )
    .bind(id.as_str())
    .fetch_optional(&mut *c)
    .await?
    .ok_or(StoreError::NotFound("message"))?;
    let channel: String = get(&row, "channel_id")?;
    let parts: String = get(&row, "parts")?;
    let parts: Vec<Part> = serde_json::from_str(&parts)
        .map_err(|e| StoreError::Internal(crate::store::Detail::caused_by("stored parts", e)))?;
    let contact: Option<String> = get(&row, "sender_id")?;
    let contact = contact.unwrap_or_default();
    let identifier: (String, String) = sqlx::query_as(
        "SELECT kind, value FROM contact_identifiers WHERE contact_id = $1 AND channel_id = $2
         ORDER BY kind LIMIT 1",
    )
    .bind(&contact)
    .bind(&channel)
    .fetch_optional(&mut *c)
    .await?
    .ok_or_else(|| {
        StoreError::Invalid(format!(
            "contact {contact} has no identifier on channel {channel}"
        ))
    })?;
    let reply_to: Option<String> = get(&row, "reply_to")?;
    let in_reply_to = match reply_to {
        Some(target) => {
            sqlx::query_scalar(
                "SELECT hubspot_message_id FROM hubspot_messages WHERE message_id = $1",
            )
            .bind(target)
            .fetch_optional(&mut *c)
            .await?
        }
        None => None,
    };
    Ok(PublishSource {
        message_id: id.clone(),
        conversation_id: ConversationId::from_stored(get(&row, "conversation_id")?),
        channel_id: channel,
        parts,
        sent_at: get::<Option<i64>>(&row, "platform_sent_at")?.map(from_millis),
        received_at: from_millis(get(&row, "created_at")?),
        contact: Identifier {
            kind: identifier.0,
            value: identifier.1,
        },
        contact_name: get(&row, "display_name")?,
        contact_email: get(&row, "email")?,
        in_reply_to,
    })
}

const LINK_COLUMNS: &str =
    "message_id, hubspot_message_id, hubspot_thread_id, direction, published_at";

fn link(row: &PgRow) -> Result<HubspotLink, StoreError> {
    let direction: String = get(row, "direction")?;
    Ok(HubspotLink {
        message_id: MessageId::from_stored(get(row, "message_id")?),
        hubspot_message_id: get(row, "hubspot_message_id")?,
        hubspot_thread_id: get(row, "hubspot_thread_id")?,
        direction: HubspotDirection::parse(&direction).unwrap_or(HubspotDirection::In),
        published_at: from_millis(get(row, "published_at")?),
    })
}

async fn find_link(
    c: &mut PgConnection,
    column: &str,
    value: &str,
) -> Result<Option<HubspotLink>, StoreError> {
    let sql = format!("SELECT {LINK_COLUMNS} FROM hubspot_messages WHERE {column} = $1");
    sqlx::query(&sql)
        .bind(value)
        .fetch_optional(&mut *c)
        .await?
        .as_ref()
        .map(link)
        .transpose()
}

async fn record_link(c: &mut PgConnection, link: &HubspotLink) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO hubspot_messages (message_id, hubspot_message_id, hubspot_thread_id,
             direction, published_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING",
    )
    .bind(link.message_id.as_str())
    .bind(&link.hubspot_message_id)
    .bind(&link.hubspot_thread_id)
    .bind(link.direction.as_str())
    .bind(link.published_at.timestamp_millis())
    .execute(&mut *c)
    .await?;
    Ok(())
}

async fn files(
    c: &mut PgConnection,
    message: &MessageId,
) -> Result<Vec<(u32, String)>, StoreError> {
    let rows: Vec<(i32, String)> = sqlx::query_as(
        "SELECT part, file_id FROM hubspot_files WHERE message_id = $1 ORDER BY part",
    )
    .bind(message.as_str())
    .fetch_all(&mut *c)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(part, id)| (part.max(0) as u32, id))
        .collect())
}

async fn record_file(
    c: &mut PgConnection,
    message: &MessageId,
    part: u32,
    file_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO hubspot_files (message_id, part, file_id, created_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (message_id, part) DO UPDATE SET file_id = excluded.file_id",
    )
    .bind(message.as_str())
    .bind(part as i32)
    .bind(file_id)
    .bind(now_ms())
    .execute(&mut *c)
    .await?;
    Ok(())
}

async fn queue(c: &mut PgConnection) -> Result<HubspotQueue, StoreError> {
    let (pending, dead): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'dead')
         FROM jobs WHERE channel_id = $1",
    )
    .bind(JOB_CHANNEL_HUBSPOT)
    .fetch_one(&mut *c)
    .await?;
    Ok(HubspotQueue {
        pending: pending as u64,
        dead: dead as u64,
    })
}

/// The `hubspot_publish` (and any other `@hubspot`) jobs per channel of their message.
async fn queues(c: &mut PgConnection) -> Result<Vec<ChannelQueue>, StoreError> {
    let rows: Vec<(Option<String>, i64, i64)> = sqlx::query_as(
        "SELECT m.channel_id,
                count(*) FILTER (WHERE j.state = 'pending'),
                count(*) FILTER (WHERE j.state = 'dead')
         FROM jobs j LEFT JOIN messages m ON m.id = (j.payload::jsonb ->> 'message_id')
         WHERE j.channel_id = $1
         GROUP BY m.channel_id ORDER BY m.channel_id",
    )
    .bind(JOB_CHANNEL_HUBSPOT)
    .fetch_all(&mut *c)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(channel_id, pending, dead)| ChannelQueue {
            channel_id,
            pending: pending as u64,
            dead: dead as u64,
        })
        .collect())
}

/// [`crate::store::hubspot::read_queues`] on the database `url` names, in `schema`.
pub(crate) async fn read_hubspot_queues(
    url: &Secret,
    schema: Option<&str>,
) -> Result<Vec<ChannelQueue>, StoreError> {
    // The URL may hold a password: its parse error must not repeat it.
    let options = PgConnectOptions::from_str(url.expose())
        .map_err(|_| StoreError::Invalid("storage.url is not a valid postgres:// URL".into()))?;
    let mut settings = vec![("default_transaction_read_only", "on".to_owned())];
    if let Some(schema) = schema {
        settings.push(("search_path", super::quote_ident(schema)));
    }
    let mut conn = options.options(settings).connect().await?;
    let result = queues(&mut conn).await;
    let _ = conn.close().await;
    result
}

#[async_trait]
impl HubspotStore for PgStore {
    async fn publish_source(&self, message: &MessageId) -> Result<PublishSource, StoreError> {
        read!(self, |c| publish_source(c, message))
    }

    async fn hubspot_link(&self, message: &MessageId) -> Result<Option<HubspotLink>, StoreError> {
        read!(self, |c| find_link(c, "message_id", message.as_str()))
    }

    async fn hubspot_link_by_hubspot_id(
        &self,
        hubspot_message_id: &str,
    ) -> Result<Option<HubspotLink>, StoreError> {
        read!(self, |c| find_link(
            c,
            "hubspot_message_id",
            hubspot_message_id
        ))
    }

    async fn record_hubspot_link(&self, link: &HubspotLink) -> Result<(), StoreError> {
        transaction!(self, |c| record_link(c, link))
    }

    async fn hubspot_files(&self, message: &MessageId) -> Result<Vec<(u32, String)>, StoreError> {
        read!(self, |c| files(c, message))
    }

    async fn record_hubspot_file(
        &self,
        message: &MessageId,
        part: u32,
        file_id: &str,
    ) -> Result<(), StoreError> {
        transaction!(self, |c| record_file(c, message, part, file_id))
    }

    async fn hubspot_queue(&self) -> Result<HubspotQueue, StoreError> {
        read!(self, |c| queue(c))
    }
}
