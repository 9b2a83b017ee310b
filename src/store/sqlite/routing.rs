//! Routing inside the ingest transaction: reads presence, load and the rotation cursor,
//! asks `desk::routing` for a decision, and records it (owner, reason, event, email job).

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::{events, outbox};
use crate::desk::ingest::{OwnerEmailFacts, OwnerNotice, owner_email, owner_notice};
use crate::desk::notify::{self, DigestItem};
use crate::desk::routing::{self, Decision, Recording, RepState, Rule};
use crate::model::{JobId, Part};
use crate::store::{
    Actor, ChannelRules, DigestLinks, DigestRep, OwnerSlot, RepSlot, RoutingPlan, StoreError,
};

/// Presence older than this counts as offline.
pub fn online(conn: &Connection, rep: &str, now: i64, timeout_ms: i64) -> Result<bool, StoreError> {
    let reported = presence(conn, rep)?;
    Ok(routing::is_online(
        reported.as_ref().map(|(s, at)| (s.as_str(), *at)),
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

fn state(
    conn: &Connection,
    slot: &RepSlot,
    now: i64,
    timeout_ms: i64,
) -> Result<RepState, StoreError> {
    Ok(RepState {
        id: slot.id.clone(),
        online: online(conn, &slot.id, now, timeout_ms)?,
        load: load(conn, &slot.id)?,
        capacity: slot.capacity,
    })
}

/// Routes a new or reopened conversation and records the decision.
pub fn route(
    conn: &Connection,
    rules: &ChannelRules,
    conversation: &str,
    contact: &str,
    now: i64,
    timeout_ms: i64,
) -> Result<Decision, StoreError> {
    let rule = match &rules.routing {
        RoutingPlan::Nobody => Rule::Nobody,
        RoutingPlan::RoundRobin { pool } => Rule::RoundRobin {
            pool: pool
                .iter()
                .map(|slot| state(conn, slot, now, timeout_ms))
                .collect::<Result<_, _>>()?,
            last: conn
                .prepare_cached("SELECT last_rep FROM routing_state WHERE channel_id = ?1")?
                .query_row([&rules.channel_id], |r| r.get(0))
                .optional()?,
        },
        RoutingPlan::ContactOwner { .. } => {
            let owner: Option<String> = conn
                .prepare_cached("SELECT owner_id FROM contacts WHERE id = ?1")?
                .query_row([contact], |r| r.get(0))?;
            let slot = rules.routing.owner_slot(owner);
            let state = match &slot {
                OwnerSlot::Rep(rep) => Some(state(conn, rep, now, timeout_ms)?),
                _ => None,
            };
            rules.routing.contact_owner_rule(slot, state)
        }
    };
    let decision = routing::decide(&rule);
    if let Some(recording) = routing::recording(&decision) {
        record(conn, rules, conversation, &recording, now)?;
    }
    Ok(decision)
}

/// Writes what `desk::routing::recording` says a decision leaves behind.
fn record(
    conn: &Connection,
    rules: &ChannelRules,
    conversation: &str,
    recording: &Recording<'_>,
    now: i64,
) -> Result<(), StoreError> {
    let ticket: String = conn
        .prepare_cached("SELECT ticket_id FROM conversations WHERE id = ?1")?
        .query_row([conversation], |r| r.get(0))?;
    let actor = Actor::system("routing");
    conn.prepare_cached(
        "INSERT INTO audit (ticket_id, entity, entity_id, action, actor, changes, reason, at,
             actor_type)
         VALUES (?1, 'conversation', ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        ticket,
        conversation,
        recording.action,
        actor.name,
        recording.reason,
        recording.note,
        now,
        actor.kind.as_str()
    ])?;
    let (Some(rep), Some(event)) = (recording.assignee, &recording.event) else {
        return Ok(());
    };
    conn.prepare_cached("UPDATE conversations SET owner_id = ?2 WHERE id = ?1")?
        .execute(params![conversation, rep])?;
    // The conversation's owner is its ticket's owner too.
    conn.prepare_cached("UPDATE tickets SET owner_id = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![ticket, rep, now])?;
    if recording.advances_rotation {
        conn.prepare_cached(
            "INSERT INTO routing_state (channel_id, last_rep) VALUES (?1, ?2)
             ON CONFLICT (channel_id) DO UPDATE SET last_rep = excluded.last_rep",
        )?
        .execute(params![rules.channel_id, rep])?;
    }
    events::emit(
        conn,
        "conversation.assigned",
        conversation,
        event.clone(),
        now,
    )
}

/// For contact-owner channels: queues an email of a new inbound message to the contact's
/// owner when the owner is offline. Returns why an offline owner was not emailed (no
/// address, no `[smtp]`), if so.
#[allow(clippy::too_many_arguments)]
pub fn email_offline_owner(
    conn: &Connection,
    rules: &ChannelRules,
    conversation: &str,
    contact: &str,
    message: &str,
    parts: &[Part],
    now: i64,
    timeout_ms: i64,
) -> Result<Option<&'static str>, StoreError> {
    if !matches!(rules.routing, RoutingPlan::ContactOwner { .. }) {
        return Ok(None);
    }
    let (owner, name): (Option<String>, Option<String>) = conn
        .prepare_cached("SELECT owner_id, display_name FROM contacts WHERE id = ?1")?
        .query_row([contact], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let OwnerSlot::Rep(slot) = rules.routing.owner_slot(owner) else {
        return Ok(None);
    };
    let online = online(conn, &slot.id, now, timeout_ms)?;
    let mail = rules.routing.owner_mail(slot);
    let target = match owner_notice(online, mail, rules.routing.mail_target(slot)) {
        OwnerNotice::Nothing => return Ok(None),
        OwnerNotice::NotEmailed(why) => return Ok(Some(why)),
        OwnerNotice::Email(target) => target,
    };
    let (first_id, first_parts): (String, String) = conn
        .prepare_cached(
            "SELECT id, parts FROM messages WHERE conversation_id = ?1 AND direction = 'inbound'
             ORDER BY seq LIMIT 1",
        )?
        .query_row([conversation], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let job = owner_email(&OwnerEmailFacts {
        to: target.to,
        contact_name: name.as_deref(),
        contact_id: contact,
        channel_name: &target.from.channel_name,
        link_base: target.from.link_base.as_deref(),
        conversation,
        message,
        parts,
        first_id: &first_id,
        first_parts: &first_parts,
    });
    outbox::enqueue_email(conn, conversation, &job, now).map(|_: JobId| None)
}

/// Assigns waiting (open, unassigned) conversations of round-robin channels, oldest
/// first, while someone is eligible. Returns how many were assigned.
pub fn backfill(
    conn: &Connection,
    channels: &[ChannelRules],
    now: i64,
    timeout_ms: i64,
) -> Result<usize, StoreError> {
    let mut assigned = 0;
    for rules in channels
        .iter()
        .filter(|r| matches!(r.routing, RoutingPlan::RoundRobin { .. }))
    {
        let mut statement = conn.prepare_cached(
            "SELECT id, contact_id FROM conversations
             WHERE channel_id = ?1 AND status = 'open' AND owner_id IS NULL AND deleted_at IS NULL
             ORDER BY created_at, seq",
        )?;
        let waiting: Vec<(String, String)> = statement
            .query_map([&rules.channel_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (conversation, contact) in waiting {
            if route(conn, rules, &conversation, &contact, now, timeout_ms)?
                .assignee
                .is_none()
            {
                break;
            }
            assigned += 1;
        }
    }
    Ok(assigned)
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
