//! Routing's reads and writes in SQLite (the sequence is `store::sequences::routing`),
//! presence, and the offline reps' digests.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::{WriterTx, outbox};
use crate::desk::notify::{self, DigestItem};
use crate::desk::routing;
use crate::model::JobId;
use crate::model::outbound::Email;
use crate::store::sequences::routing::RoutingTx;
use crate::store::sequences::{self, ready};
use crate::store::{DigestLinks, DigestRep, StoreError};

/// Whether `rep` is online (as routing reads it), for callers outside a sequence.
pub fn online(conn: &Connection, rep: &str, now: i64, timeout_ms: i64) -> Result<bool, StoreError> {
    ready(sequences::routing::online(
        &mut WriterTx(conn),
        rep,
        now,
        timeout_ms,
    ))
}

/// The presence `rep` last reported, and when.
fn presence(conn: &Connection, rep: &str) -> Result<Option<(String, i64)>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT status, updated_at FROM presence WHERE rep_id = ?1")?
        .query_row([rep], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

fn load(conn: &Connection, rep: &str) -> Result<u32, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM conversations WHERE owner_id = ?1 AND status = 'open' AND deleted_at IS NULL",
        )?
        .query_row([rep], |r| r.get::<_, i64>(0))? as u32)
}

impl RoutingTx for WriterTx<'_> {
    async fn hold_rotation(&mut self) -> Result<(), StoreError> {
        // The writer thread is the only writer: nothing else can read the rotation.
        Ok(())
    }

    async fn presence(&mut self, rep: &str) -> Result<Option<(String, i64)>, StoreError> {
        presence(self.0, rep)
    }

    async fn load(&mut self, rep: &str) -> Result<u32, StoreError> {
        load(self.0, rep)
    }

    async fn last_rep(&mut self, channel: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT last_rep FROM routing_state WHERE channel_id = ?1")?
            .query_row([channel], |r| r.get(0))
            .optional()?)
    }

    async fn advance_rotation(&mut self, channel: &str, rep: &str) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO routing_state (channel_id, last_rep) VALUES (?1, ?2)
                 ON CONFLICT (channel_id) DO UPDATE SET last_rep = excluded.last_rep",
            )?
            .execute(params![channel, rep])?;
        Ok(())
    }

    async fn owner_and_name(
        &mut self,
        contact: &str,
    ) -> Result<(Option<String>, Option<String>), StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT owner_id, display_name FROM contacts WHERE id = ?1")?
            .query_row([contact], |r| Ok((r.get(0)?, r.get(1)?)))?)
    }

    async fn first_inbound(&mut self, conversation: &str) -> Result<(String, String), StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT id, parts FROM messages WHERE conversation_id = ?1 AND direction = 'inbound'
                 ORDER BY seq LIMIT 1",
            )?
            .query_row([conversation], |r| Ok((r.get(0)?, r.get(1)?)))?)
    }

    async fn enqueue_email(
        &mut self,
        conversation: &str,
        email: &Email,
        at: i64,
    ) -> Result<(), StoreError> {
        outbox::enqueue_email(self.0, conversation, email, at).map(|_: JobId| ())
    }

    async fn waiting(&mut self, channel: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut statement = self.0.prepare_cached(
            "SELECT id, contact_id FROM conversations
             WHERE channel_id = ?1 AND status = 'open' AND owner_id IS NULL AND deleted_at IS NULL
             ORDER BY created_at, seq",
        )?;
        let rows = statement.query_map([channel], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Records a rep's presence.
pub fn set_presence(
    conn: &Connection,
    rep: &str,
    status: &str,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO presence (rep_id, status, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (rep_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
    )?
    .execute(params![rep, status, now])?;
    Ok(())
}

/// Every rep's effective presence and load.
pub fn reps(
    conn: &Connection,
    ids: &[String],
    now: i64,
    timeout_ms: i64,
) -> Result<HashMap<String, (String, u32)>, StoreError> {
    let mut out = HashMap::new();
    for id in ids {
        let status = routing::effective_presence(presence(conn, id)?, now, timeout_ms);
        out.insert(id.clone(), (status, load(conn, id)?));
    }
    Ok(out)
}

/// Records a rep's own choice about notifications.
pub fn set_notify(conn: &Connection, rep: &str, enabled: bool) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO rep_settings (rep_id, notify) VALUES (?1, ?2)
         ON CONFLICT (rep_id) DO UPDATE SET notify = excluded.notify",
    )?
    .execute(params![rep, enabled])?;
    Ok(())
}

/// Reps' own notification choices, where they made one.
pub fn notify_choices(conn: &Connection) -> Result<HashMap<String, bool>, StoreError> {
    let mut statement =
        conn.prepare_cached("SELECT rep_id, notify FROM rep_settings WHERE notify IS NOT NULL")?;
    let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Queues a digest email for each offline rep who wants notifications and has new inbound
/// messages in their conversations since their last digest (at most one per interval).
pub fn queue_digests(
    conn: &Connection,
    reps: &[DigestRep],
    links: &DigestLinks,
    now: i64,
    interval_ms: i64,
    timeout_ms: i64,
) -> Result<usize, StoreError> {
    let choices = notify_choices(conn)?;
    let mut queued = 0;
    for rep in reps {
        if !rep.wants_digest(&choices) {
            continue;
        }
        let last: Option<i64> = conn
            .prepare_cached("SELECT last_digest_at FROM rep_settings WHERE rep_id = ?1")?
            .query_row([&rep.id], |r| r.get(0))
            .optional()?
            .flatten();
        let mark = |conn: &Connection| -> Result<(), StoreError> {
            conn.prepare_cached(
                "INSERT INTO rep_settings (rep_id, last_digest_at) VALUES (?1, ?2)
                 ON CONFLICT (rep_id) DO UPDATE SET last_digest_at = excluded.last_digest_at",
            )?
            .execute(params![rep.id, now])?;
            Ok(())
        };
        if online(conn, &rep.id, now, timeout_ms)? {
            // They see messages live; a later digest starts from here.
            mark(conn)?;
            continue;
        }
        let Some(since) = notify::digest_since(last, now, interval_ms) else {
            continue;
        };
        let mut statement = conn.prepare_cached(
            "SELECT COALESCE(k.display_name, k.id), c.channel_id, c.id, m.parts
             FROM messages m JOIN conversations c ON c.id = m.conversation_id
             JOIN contacts k ON k.id = c.contact_id
             WHERE c.owner_id = ?1 AND c.deleted_at IS NULL AND m.direction = 'inbound'
               AND m.created_at > ?2 AND m.created_at <= ?3
             ORDER BY m.seq LIMIT 50",
        )?;
        let items: Vec<DigestItem> = statement
            .query_map(params![rep.id, since, now], |r| {
                let parts: String = r.get(3)?;
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    parts,
                ))
            })?
            .map(|row| {
                row.map(|(contact, channel, conversation, parts)| {
                    let channel = links.channel_name(&channel).to_owned();
                    notify::digest_item(contact, channel, conversation, &parts)
                })
            })
            .collect::<Result<_, _>>()?;
        if items.is_empty() {
            continue;
        }
        let email =
            notify::digest_job(&rep.id, &rep.email, &items, links.link_base.as_deref(), now);
        outbox::enqueue_email(conn, &email.thread, &email, now)?;
        mark(conn)?;
        queued += 1;
    }
    Ok(queued)
}
