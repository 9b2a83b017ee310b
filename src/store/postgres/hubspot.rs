//! [`HubspotStore`] on PostgreSQL: the message ↔ HubSpot id map, publish reads, uploaded
//! files. Shared by every replica.

use std::time::Duration;

use async_trait::async_trait;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::{ConnectOptions, Connection, PgConnection};

use super::{ATTEMPTS, PgStore, get, now_ms};
use crate::model::{ConversationId, MessageId, from_millis};
use crate::secret::Secret;
use crate::store::hubspot::{
    AccountChange, AccountState, ChannelQueue, HubspotLink, HubspotQueue, HubspotStore,
    PARKED_PREFIX, PublishSource, ReportedStatus, WebhookOutcome, WebhookRecord, status_key,
    status_payload,
};
use crate::store::sequences::{self, hubspot::HubspotTx};
use crate::store::{
    JOB_CHANNEL_HUBSPOT, JOB_HUBSPOT_PUBLISH, JOB_HUBSPOT_STATUS, PublishNote, StoreError,
};

/// Queues the publish of a new inbound message (or, with `note`, of a follow-up on it);
/// one conversation's publishes run in order.
pub async fn enqueue_publish(
    c: &mut PgConnection,
    conversation: &str,
    message: &MessageId,
    note: Option<&PublishNote>,
    now: i64,
) -> Result<(), StoreError> {
    let payload = crate::store::hubspot_publish_payload(message, note);
    let key = format!("hubspot:{conversation}");
    let kind = crate::store::JOB_HUBSPOT_PUBLISH;
    super::outbox::insert_job(c, kind, JOB_CHANNEL_HUBSPOT, &key, &payload, now, now).await?;
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
    let parts = crate::store::shared::parts(&parts)?;
    let contact: Option<String> = get(&row, "sender_id")?;
    let contact = contact.unwrap_or_default();
    let identifier = super::queries::channel_identifier(c, &contact, &channel).await?;
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
        contact: identifier,
        contact_name: get(&row, "display_name")?,
        contact_email: get(&row, "email")?,
        in_reply_to,
    })
}

const LINK_COLUMNS: &str =
    "message_id, hubspot_message_id, hubspot_thread_id, direction, published_at";

fn link(row: &PgRow) -> Result<HubspotLink, StoreError> {
    Ok(HubspotLink::from_row((
        get(row, "message_id")?,
        get(row, "hubspot_message_id")?,
        get(row, "hubspot_thread_id")?,
        get(row, "direction")?,
        get(row, "published_at")?,
    )))
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

/// Queues a status report to HubSpot on a rep's message.
async fn enqueue_status(
    c: &mut PgConnection,
    message: Option<&MessageId>,
    hubspot_message_id: &str,
    status: ReportedStatus,
    error: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let key = status_key(hubspot_message_id);
    let payload = status_payload(message, hubspot_message_id, status, error);
    let kind = JOB_HUBSPOT_STATUS;
    super::outbox::insert_job(c, kind, JOB_CHANNEL_HUBSPOT, &key, &payload, now, now).await?;
    Ok(())
}

/// When our message `message` is a rep's HubSpot reply, queues the report of its new
/// status to HubSpot (in the transaction that moved it).
pub async fn report_status(
    c: &mut PgConnection,
    message: &str,
    status: ReportedStatus,
    error: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let hubspot_id: Option<String> = sqlx::query_scalar(
        "SELECT hubspot_message_id FROM hubspot_messages WHERE message_id = $1 AND direction = 'out'",
    )
    .bind(message)
    .fetch_optional(&mut *c)
    .await?;
    if let Some(hubspot_id) = hubspot_id {
        let message = MessageId::from_stored(message.to_owned());
        enqueue_status(c, Some(&message), &hubspot_id, status, error, now).await?;
    }
    Ok(())
}

impl HubspotTx for PgConnection {
    async fn claim_event(&mut self, event: &WebhookRecord, at: i64) -> Result<bool, StoreError> {
        let fresh = sqlx::query(
            "INSERT INTO hubspot_events (event_key, type, payload, outcome, received_at)
             VALUES ($1, $2, $3, 'pending', $4)
             ON CONFLICT (event_key) DO NOTHING",
        )
        .bind(&event.key)
        .bind(&event.kind)
        .bind(&event.payload)
        .bind(at)
        .execute(self)
        .await?
        .rows_affected();
        Ok(fresh > 0)
    }

    async fn finish_event(
        &mut self,
        key: &str,
        outcome: &str,
        message: Option<&MessageId>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE hubspot_events SET outcome = $2, message_id = $3 WHERE event_key = $1")
            .bind(key)
            .bind(outcome)
            .bind(message.map(MessageId::as_str))
            .execute(self)
            .await?;
        Ok(())
    }

    async fn hubspot_message_known(&mut self, hubspot_id: &str) -> Result<bool, StoreError> {
        let known: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM hubspot_messages WHERE hubspot_message_id = $1")
                .bind(hubspot_id)
                .fetch_optional(self)
                .await?;
        Ok(known.is_some())
    }

    async fn linked_conversation(
        &mut self,
        id: &str,
        linked: &[String],
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM conversations WHERE id = $1 AND deleted_at IS NULL
               AND channel_id = ANY($2)",
        )
        .bind(id)
        .bind(linked)
        .fetch_optional(self)
        .await?)
    }

    async fn thread_conversation(
        &mut self,
        thread: &str,
        linked: &[String],
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT m.conversation_id FROM hubspot_messages h
             JOIN messages m ON m.id = h.message_id
             JOIN conversations c ON c.id = m.conversation_id AND c.deleted_at IS NULL
             WHERE h.hubspot_thread_id = $1 AND c.channel_id = ANY($2)
             ORDER BY h.published_at DESC LIMIT 1",
        )
        .bind(thread)
        .bind(linked)
        .fetch_optional(self)
        .await?)
    }

    async fn quoted(
        &mut self,
        hubspot_id: &str,
        conversation: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT h.message_id FROM hubspot_messages h JOIN messages m ON m.id = h.message_id
             WHERE h.hubspot_message_id = $1 AND m.conversation_id = $2
               AND m.direction != 'internal'",
        )
        .bind(hubspot_id)
        .bind(conversation)
        .fetch_optional(self)
        .await?)
    }

    async fn enqueue_status(
        &mut self,
        message: Option<&MessageId>,
        hubspot_id: &str,
        status: ReportedStatus,
        error: Option<&str>,
        at: i64,
    ) -> Result<(), StoreError> {
        enqueue_status(self, message, hubspot_id, status, error, at).await
    }

    async fn record_link(&mut self, link: &HubspotLink) -> Result<(), StoreError> {
        record_link(self, link).await
    }

    async fn record_account(
        &mut self,
        change: &AccountChange,
        kind: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO hubspot_accounts (channel_account_id, authorized, deleted, name,
                 last_event, updated_at)
             VALUES ($1, COALESCE($2, TRUE), $3, $4, $5, $6)
             ON CONFLICT (channel_account_id) DO UPDATE SET
                 authorized = COALESCE($2, hubspot_accounts.authorized),
                 deleted = $3, name = COALESCE($4, hubspot_accounts.name), last_event = $5,
                 updated_at = $6
             RETURNING authorized AND NOT deleted",
        )
        .bind(&change.channel_account_id)
        .bind(change.authorized)
        .bind(change.deleted)
        .bind(&change.name)
        .bind(kind)
        .bind(at)
        .fetch_one(self)
        .await?)
    }

    async fn release_parked(&mut self, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET run_at = $1, updated_at = $1
             WHERE kind = $2 AND state = 'pending' AND run_at > $1 AND last_error LIKE $3",
        )
        .bind(at)
        .bind(JOB_HUBSPOT_PUBLISH)
        .bind(format!("{PARKED_PREFIX}%"))
        .execute(self)
        .await?;
        Ok(())
    }
}

async fn accounts(c: &mut PgConnection) -> Result<Vec<AccountState>, StoreError> {
    let rows: Vec<(String, bool, bool, Option<String>, String, i64)> = sqlx::query_as(
        "SELECT channel_account_id, authorized, deleted, name, last_event, updated_at
         FROM hubspot_accounts ORDER BY channel_account_id",
    )
    .fetch_all(&mut *c)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(channel_account_id, authorized, deleted, name, last_event, updated_at)| {
                AccountState {
                    channel_account_id,
                    authorized,
                    deleted,
                    name,
                    last_event,
                    updated_at: from_millis(updated_at),
                }
            },
        )
        .collect())
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

    async fn record_webhook(
        &self,
        events: Vec<WebhookRecord>,
    ) -> Result<Vec<WebhookOutcome>, StoreError> {
        let now = now_ms();
        transaction!(self, |c| sequences::hubspot::record_webhook(
            c, &events, now
        ))
    }

    async fn hubspot_accounts(&self) -> Result<Vec<AccountState>, StoreError> {
        read!(self, |c| accounts(c))
    }

    async fn clear_event_payloads(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        let before = before.timestamp_millis();
        let mut cleared = 0;
        loop {
            let n = transaction!(self, |c| clear_payloads(c, before))?;
            cleared += n;
            if n < crate::store::hubspot::CLEAR_CHUNK as u64 {
                return Ok(cleared);
            }
        }
    }
}

async fn clear_payloads(c: &mut PgConnection, before: i64) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE hubspot_events SET payload = ''
         WHERE event_key IN (SELECT event_key FROM hubspot_events
             WHERE received_at < $1 AND payload <> '' LIMIT $2)",
    )
    .bind(before)
    .bind(crate::store::hubspot::CLEAR_CHUNK)
    .execute(&mut *c)
    .await?
    .rows_affected())
}
