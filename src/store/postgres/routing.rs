//! Routing inside the ingest transaction, with its state shared by every replica:
//! presence, load and the rotation cursor live in the database. Round-robin decisions
//! take an advisory lock so two replicas never read the same cursor and pick the same rep.

use std::collections::HashMap;

use sqlx::PgConnection;

use super::{events, get, outbox};
use crate::desk::ingest::{OwnerEmailFacts, OwnerNotice, owner_email, owner_notice};
use crate::desk::notify;
use crate::desk::routing::{self, Decision, Recording, RepState, Rule};
use crate::model::Part;
use crate::store::{
    Actor, ChannelRules, DigestLinks, DigestRep, OwnerSlot, RepSlot, RoutingPlan, StoreError,
};

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

/// Takes the lock a routing decision under `rules` needs, if any. Callers that will also
/// emit events take it first: locks are always taken routing first, then events.
pub async fn lock_for(c: &mut PgConnection, rules: &ChannelRules) -> Result<(), StoreError> {
    match rules.routing {
        RoutingPlan::RoundRobin { .. } => lock(c, ROUTING_LOCK).await,
        _ => Ok(()),
    }
}

/// Presence older than this counts as offline.
pub async fn online(
    c: &mut PgConnection,
    rep: &str,
    now: i64,
    timeout_ms: i64,
) -> Result<bool, StoreError> {
    let reported = presence(c, rep).await?;
    Ok(routing::is_online(
        reported.as_ref().map(|(s, at)| (s.as_str(), *at)),
        now,
        timeout_ms,
    ))
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

async fn state(
    c: &mut PgConnection,
    slot: &RepSlot,
    now: i64,
    timeout_ms: i64,
) -> Result<RepState, StoreError> {
    Ok(RepState {
        id: slot.id.clone(),
        online: online(c, &slot.id, now, timeout_ms).await?,
        load: load(c, &slot.id).await?,
        capacity: slot.capacity,
    })
}

/// Routes a new or reopened conversation and records the decision.
pub async fn route(
    c: &mut PgConnection,
    rules: &ChannelRules,
    conversation: &str,
    contact: &str,
    now: i64,
    timeout_ms: i64,
) -> Result<Decision, StoreError> {
    let rule = match &rules.routing {
        RoutingPlan::Nobody => Rule::Nobody,
        RoutingPlan::RoundRobin { pool } => {
            lock(c, ROUTING_LOCK).await?;
            let mut states = Vec::with_capacity(pool.len());
            for slot in pool {
                states.push(state(c, slot, now, timeout_ms).await?);
            }
            Rule::RoundRobin {
                pool: states,
                last: sqlx::query_scalar(
                    "SELECT last_rep FROM routing_state WHERE channel_id = $1",
                )
                .bind(&rules.channel_id)
                .fetch_optional(&mut *c)
                .await?,
            }
        }
        RoutingPlan::ContactOwner { .. } => {
            let owner: Option<String> =
                sqlx::query_scalar("SELECT owner_id FROM contacts WHERE id = $1")
                    .bind(contact)
                    .fetch_one(&mut *c)
                    .await?;
            let slot = rules.routing.owner_slot(owner);
            let state = match &slot {
                OwnerSlot::Rep(rep) => Some(state(c, rep, now, timeout_ms).await?),
                _ => None,
            };
            rules.routing.contact_owner_rule(slot, state)
        }
    };
    let decision = routing::decide(&rule);
    if let Some(recording) = routing::recording(&decision) {
        record(c, rules, conversation, &recording, now).await?;
    }
    Ok(decision)
}

/// Writes what `desk::routing::recording` says a decision leaves behind.
async fn record(
    c: &mut PgConnection,
    rules: &ChannelRules,
    conversation: &str,
    recording: &Recording<'_>,
    now: i64,
) -> Result<(), StoreError> {
    let ticket: String = sqlx::query_scalar("SELECT ticket_id FROM conversations WHERE id = $1")
        .bind(conversation)
        .fetch_one(&mut *c)
        .await?;
    let actor = Actor::system("routing");
    sqlx::query(
        "INSERT INTO audit (ticket_id, entity, entity_id, action, actor, changes, reason, at,
             actor_type)
         VALUES ($1, 'conversation', $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&ticket)
    .bind(conversation)
    .bind(recording.action)
    .bind(&actor.name)
    .bind(&recording.reason)
    .bind(recording.note)
    .bind(now)
    .bind(actor.kind.as_str())
    .execute(&mut *c)
    .await?;
    let (Some(rep), Some(event)) = (recording.assignee, &recording.event) else {
        return Ok(());
    };
    sqlx::query("UPDATE conversations SET owner_id = $2 WHERE id = $1")
        .bind(conversation)
        .bind(rep)
        .execute(&mut *c)
        .await?;
    // The conversation's owner is its ticket's owner too.
    sqlx::query("UPDATE tickets SET owner_id = $2, updated_at = $3 WHERE id = $1")
        .bind(&ticket)
        .bind(rep)
        .bind(now)
        .execute(&mut *c)
        .await?;
    if recording.advances_rotation {
        sqlx::query(
            "INSERT INTO routing_state (channel_id, last_rep) VALUES ($1, $2)
             ON CONFLICT (channel_id) DO UPDATE SET last_rep = excluded.last_rep",
        )
        .bind(&rules.channel_id)
        .bind(rep)
        .execute(&mut *c)
        .await?;
    }
    events::emit(c, "conversation.assigned", conversation, event.clone(), now).await
}

/// For contact-owner channels: queues an email of a new inbound message to the contact's
/// owner when the owner is offline. Returns why an offline owner was not emailed (no
/// address, no `[smtp]`), if so.
#[allow(clippy::too_many_arguments)]
pub async fn email_offline_owner(
    c: &mut PgConnection,
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
    let (owner, name): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT owner_id, display_name FROM contacts WHERE id = $1")
            .bind(contact)
            .fetch_one(&mut *c)
            .await?;
    let OwnerSlot::Rep(slot) = rules.routing.owner_slot(owner) else {
        return Ok(None);
    };
    let online = online(c, &slot.id, now, timeout_ms).await?;
    let mail = rules.routing.owner_mail(slot);
    let target = match owner_notice(online, mail, rules.routing.mail_target(slot)) {
        OwnerNotice::Nothing => return Ok(None),
        OwnerNotice::NotEmailed(why) => return Ok(Some(why)),
        OwnerNotice::Email(target) => target,
    };
    let (first_id, first_parts): (String, String) = sqlx::query_as(
        "SELECT id, parts FROM messages WHERE conversation_id = $1 AND direction = 'inbound'
         ORDER BY seq LIMIT 1",
    )
    .bind(conversation)
    .fetch_one(&mut *c)
    .await?;
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
    outbox::enqueue_email(c, conversation, &job, now).await?;
    Ok(None)
}

/// Assigns waiting (open, unassigned) conversations of round-robin channels, oldest
/// first, while someone is eligible. Returns how many were assigned.
pub async fn backfill(
    c: &mut PgConnection,
    channels: &[ChannelRules],
    now: i64,
    timeout_ms: i64,
) -> Result<usize, StoreError> {
    let mut assigned = 0;
    for rules in channels
        .iter()
        .filter(|r| matches!(r.routing, RoutingPlan::RoundRobin { .. }))
    {
        // Taken before reading who waits, so two replicas backfilling at once do not
        // both assign the same conversation.
        lock(c, ROUTING_LOCK).await?;
        let waiting: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, contact_id FROM conversations
             WHERE channel_id = $1 AND status = 'open' AND owner_id IS NULL AND deleted_at IS NULL
             ORDER BY created_at, seq",
        )
        .bind(&rules.channel_id)
        .fetch_all(&mut *c)
        .await?;
        for (conversation, contact) in waiting {
            if route(c, rules, &conversation, &contact, now, timeout_ms)
                .await?
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
