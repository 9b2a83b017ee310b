//! Routing's reads and writes in PostgreSQL (the sequence is `store::sequences::routing`),
//! with its state shared by every replica: presence, load and the rotation cursor live in
//! the database. Round-robin decisions
//! take an advisory lock so two replicas never read the same cursor and pick the same rep.

use std::collections::HashMap;

use sqlx::PgConnection;

use super::{get, outbox};
use crate::desk::notify;
use crate::desk::routing;
use crate::model::outbound::Email;
use crate::store::sequences::{self, routing::RoutingTx};
use crate::store::{DigestLinks, DigestRep, StoreError};

/// Serialises round-robin decisions (cursor and load) across replicas until commit.
const ROUTING_LOCK: i64 = 0x6362_726f_7574_6521;
/// Serialises digest runs, so two replicas never send a rep the same digest.
const DIGEST_LOCK: i64 = 0x6362_6469_6765_7374;

async fn lock(c: &mut PgConnection, key: i64) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Whether `rep` is online (as routing reads it), for callers outside a sequence.
pub async fn online(
    c: &mut PgConnection,
    rep: &str,
    now: i64,
    timeout_ms: i64,
) -> Result<bool, StoreError> {
    sequences::routing::online(c, rep, now, timeout_ms).await
}

/// The presence `rep` last reported, and when.
async fn presence(c: &mut PgConnection, rep: &str) -> Result<Option<(String, i64)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT status, updated_at FROM presence WHERE rep_id = $1")
            .bind(rep)
            .fetch_optional(&mut *c)
            .await?,
    )
}

async fn load(c: &mut PgConnection, rep: &str) -> Result<u32, StoreError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM conversations
         WHERE owner_id = $1 AND status = 'open' AND deleted_at IS NULL",
    )
    .bind(rep)
    .fetch_one(&mut *c)
    .await?;
    Ok(n as u32)
}

impl RoutingTx for PgConnection {
    async fn hold_rotation(&mut self) -> Result<(), StoreError> {
        lock(self, ROUTING_LOCK).await
    }

    async fn presence(&mut self, rep: &str) -> Result<Option<(String, i64)>, StoreError> {
        presence(self, rep).await
    }

    async fn load(&mut self, rep: &str) -> Result<u32, StoreError> {
        load(self, rep).await
    }

    async fn last_rep(&mut self, channel: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT last_rep FROM routing_state WHERE channel_id = $1")
                .bind(channel)
                .fetch_optional(self)
                .await?,
        )
    }

    async fn advance_rotation(&mut self, channel: &str, rep: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO routing_state (channel_id, last_rep) VALUES ($1, $2)
             ON CONFLICT (channel_id) DO UPDATE SET last_rep = excluded.last_rep",
        )
        .bind(channel)
        .bind(rep)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn owner_and_name(
        &mut self,
        contact: &str,
    ) -> Result<(Option<String>, Option<String>), StoreError> {
        Ok(
            sqlx::query_as("SELECT owner_id, display_name FROM contacts WHERE id = $1")
                .bind(contact)
                .fetch_one(self)
                .await?,
        )
    }

    async fn first_inbound(&mut self, conversation: &str) -> Result<(String, String), StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, parts FROM messages WHERE conversation_id = $1 AND direction = 'inbound'
             ORDER BY seq LIMIT 1",
        )
        .bind(conversation)
        .fetch_one(self)
        .await?)
    }

    async fn enqueue_email(
        &mut self,
        conversation: &str,
        email: &Email,
        at: i64,
    ) -> Result<(), StoreError> {
        outbox::enqueue_email(self, conversation, email, at).await?;
        Ok(())
    }

    async fn waiting(&mut self, channel: &str) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, contact_id FROM conversations
             WHERE channel_id = $1 AND status = 'open' AND owner_id IS NULL AND deleted_at IS NULL
             ORDER BY created_at, seq",
        )
        .bind(channel)
        .fetch_all(self)
        .await?)
    }
}

/// Records a rep's presence.
pub async fn set_presence(
    c: &mut PgConnection,
    rep: &str,
    status: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO presence (rep_id, status, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (rep_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
    )
    .bind(rep)
    .bind(status)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Every rep's effective presence and load.
pub async fn reps(
    c: &mut PgConnection,
    ids: &[String],
    now: i64,
    timeout_ms: i64,
) -> Result<HashMap<String, (String, u32)>, StoreError> {
    let mut out = HashMap::new();
    for id in ids {
        let status = routing::effective_presence(presence(c, id).await?, now, timeout_ms);
        out.insert(id.clone(), (status, load(c, id).await?));
    }
    Ok(out)
}

/// Records a rep's own choice about notifications.
pub async fn set_notify(c: &mut PgConnection, rep: &str, enabled: bool) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO rep_settings (rep_id, notify) VALUES ($1, $2)
         ON CONFLICT (rep_id) DO UPDATE SET notify = excluded.notify",
    )
    .bind(rep)
    .bind(enabled)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Reps' own notification choices, where they made one.
pub async fn notify_choices(c: &mut PgConnection) -> Result<HashMap<String, bool>, StoreError> {
    let rows: Vec<(String, bool)> =
        sqlx::query_as("SELECT rep_id, notify FROM rep_settings WHERE notify IS NOT NULL")
            .fetch_all(&mut *c)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Queues a digest email for each offline rep who wants notifications and has new inbound
/// messages in their conversations since their last digest (at most one per interval).
pub async fn queue_digests(
    c: &mut PgConnection,
    reps: &[DigestRep],
    links: &DigestLinks,
    now: i64,
    interval_ms: i64,
    timeout_ms: i64,
) -> Result<usize, StoreError> {
    lock(c, DIGEST_LOCK).await?;
    let choices = notify_choices(c).await?;
    let mut queued = 0;
    for rep in reps {
        if !rep.wants_digest(&choices) {
            continue;
        }
        let last: Option<i64> =
            sqlx::query_scalar("SELECT last_digest_at FROM rep_settings WHERE rep_id = $1")
                .bind(&rep.id)
                .fetch_optional(&mut *c)
                .await?
                .flatten();
        if online(c, &rep.id, now, timeout_ms).await? {
            // They see messages live; a later digest starts from here.
            mark_digest(c, &rep.id, now).await?;
            continue;
        }
        let Some(since) = notify::digest_since(last, now, interval_ms) else {
            continue;
        };
        let rows = sqlx::query(
            "SELECT COALESCE(k.display_name, k.id) AS contact, c.channel_id, c.id, m.parts
             FROM messages m JOIN conversations c ON c.id = m.conversation_id
             JOIN contacts k ON k.id = c.contact_id
             WHERE c.owner_id = $1 AND c.deleted_at IS NULL AND m.direction = 'inbound'
               AND m.created_at > $2 AND m.created_at <= $3
             ORDER BY m.seq LIMIT 50",
        )
        .bind(&rep.id)
        .bind(since)
        .bind(now)
        .fetch_all(&mut *c)
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let channel = links
                .channel_name(&get::<String>(row, "channel_id")?)
                .to_owned();
            items.push(notify::digest_item(
                get(row, "contact")?,
                channel,
                get(row, "id")?,
                &get::<String>(row, "parts")?,
            ));
        }
        if items.is_empty() {
            continue;
        }
        let email =
            notify::digest_job(&rep.id, &rep.email, &items, links.link_base.as_deref(), now);
        outbox::enqueue_email(c, &email.thread, &email, now).await?;
        mark_digest(c, &rep.id, now).await?;
        queued += 1;
    }
    Ok(queued)
}

async fn mark_digest(c: &mut PgConnection, rep: &str, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO rep_settings (rep_id, last_digest_at) VALUES ($1, $2)
         ON CONFLICT (rep_id) DO UPDATE SET last_digest_at = excluded.last_digest_at",
    )
    .bind(rep)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(())
}
