//! Contacts as reps manage them on SQLite: created through the API, merged (identifiers
//! and conversations move in one transaction, and the merge is recorded), their history,
//! and the open/unassigned counts inboxes show.

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use super::tickets::{self, audit, from_to};
use super::{OnConstraint, events};
use crate::model::{Contact, ContactId, from_millis};
use crate::store::sequences::AuditRow;
use crate::store::{Actor, AuditEntry, ChannelCounts, NewContact, StoreError};

/// Records what happened to a contact.
fn record(
    conn: &Connection,
    contact: &str,
    action: &str,
    actor: &Actor,
    changes: Value,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO contact_audit (contact_id, action, actor, changes, at, actor_type)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        contact,
        action,
        actor.name,
        changes.to_string(),
        now,
        actor.kind.as_str()
    ])?;
    Ok(())
}

/// The contact an identifier already belongs to, if any.
fn holder(
    conn: &Connection,
    channel: &str,
    kind: &str,
    value: &str,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT contact_id FROM contact_identifiers
             WHERE channel_id = ?1 AND kind = ?2 AND value = ?3",
        )?
        .query_row(params![channel, kind, value], |r| r.get(0))
        .optional()?)
}

pub fn create(
    conn: &Connection,
    new: &NewContact,
    actor: &Actor,
    now: i64,
) -> Result<Contact, StoreError> {
    for (i, identifier) in new.identifiers.iter().enumerate() {
        if let Some(other) = holder(
            conn,
            &identifier.channel_id,
            &identifier.kind,
            &identifier.value,
        )? {
            return Err(StoreError::Conflict(format!(
                "identifiers[{i}]: {} {:?} on channel {} already belongs to contact {other}",
                identifier.kind, identifier.value, identifier.channel_id
            )));
        }
    }
    let id = ContactId::new();
    conn.prepare_cached(
        "INSERT INTO contacts (id, display_name, email, owner_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![
        id.as_str(),
        new.display_name,
        new.email,
        new.owner_id,
        now
    ])?;
    for identifier in &new.identifiers {
        conn.prepare_cached(
            "INSERT INTO contact_identifiers (channel_id, kind, value, contact_id)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            identifier.channel_id,
            identifier.kind,
            identifier.value,
            id.as_str()
        ])?;
    }
    record(
        conn,
        id.as_str(),
        "created",
        actor,
        json!({"identifiers": new.identifiers, "display_name": new.display_name,
               "email": new.email, "owner_id": new.owner_id}),
        now,
    )?;
    tickets::contact(conn, &id)
}

pub fn merge(
    conn: &Connection,
    into: &ContactId,
    from: &ContactId,
    actor: &Actor,
    now: i64,
) -> Result<Contact, StoreError> {
    if into == from {
        return Err(StoreError::Invalid(
            "from: a contact cannot be merged into itself".into(),
        ));
    }
    let survivor = tickets::contact(conn, into)?;
    let absorbed = match tickets::contact(conn, from) {
        Err(StoreError::NotFound(_)) => {
            return Err(StoreError::Invalid(format!("from: no contact {from}")));
        }
        Err(StoreError::Merged(other)) => {
            return Err(StoreError::Invalid(format!(
                "from: contact {from} was already merged into {other}"
            )));
        }
        other => other?,
    };
    // Replies find the contact's identifier by channel: two on one channel would leave
    // them not knowing where to go.
    let theirs: BTreeSet<&str> = survivor
        .identifiers
        .iter()
        .map(|i| i.channel_id.as_str())
        .collect();
    if let Some(shared) = absorbed
        .identifiers
        .iter()
        .find(|i| theirs.contains(i.channel_id.as_str()))
    {
        return Err(StoreError::Conflict(format!(
            "both contacts have an identifier on channel {}; a contact has one identifier per channel",
            shared.channel_id
        )));
    }

    conn.prepare_cached("UPDATE contact_identifiers SET contact_id = ?1 WHERE contact_id = ?2")?
        .execute(params![into.as_str(), from.as_str()])?;
    let mut statement = conn.prepare_cached(
        "SELECT id, ticket_id, deleted_at IS NULL FROM conversations WHERE contact_id = ?1 ORDER BY seq",
    )?;
    let conversations: Vec<(String, String, bool)> = statement
        .query_map([from.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    // Per-contact threads are keyed by the contact: they follow it, so the absorbed
    // contact's next message lands in the same conversation as before.
    conn.prepare_cached(
        "UPDATE conversations SET contact_id = ?1,
             thread_key = CASE WHEN thread_key = 'contact:' || ?2 THEN 'contact:' || ?1
                               ELSE thread_key END
         WHERE contact_id = ?2",
    )?
    .execute(params![into.as_str(), from.as_str()])
    .on_constraint(|| {
        StoreError::Conflict("both contacts have an open conversation in the same thread".into())
    })?;
    for (conversation, ticket, live) in &conversations {
        conn.prepare_cached(
            "UPDATE messages SET sender_id = ?2
             WHERE conversation_id = ?1 AND sender_type = 'contact' AND sender_id = ?3",
        )?
        .execute(params![conversation, into.as_str(), from.as_str()])?;
        audit(
            conn,
            AuditRow {
                ticket,
                entity: "conversation",
                entity_id: conversation,
                action: "contact_merged",
                actor,
                changes: json!({"contact_id": from_to(from.as_str(), into.as_str())}),
                at: now,
            },
        )?;
        if *live {
            events::emit(
                conn,
                "conversation.contact_merged",
                conversation,
                json!({"contact_id": into, "previous_contact_id": from}),
                now,
            )?;
        }
    }
    // The survivor keeps what it has and takes what only the other one knew.
    conn.prepare_cached(
        "UPDATE contacts SET display_name = COALESCE(display_name, ?2),
             email = COALESCE(email, ?3), owner_id = COALESCE(owner_id, ?4), updated_at = ?5
         WHERE id = ?1",
    )?
    .execute(params![
        into.as_str(),
        absorbed.display_name,
        absorbed.email,
        absorbed.owner_id,
        now
    ])?;
    conn.prepare_cached(
        "UPDATE contacts SET merged_into = ?1, updated_at = ?3 WHERE id = ?2 OR merged_into = ?2",
    )?
    .execute(params![into.as_str(), from.as_str(), now])?;
    let moved: Vec<&str> = conversations.iter().map(|(c, _, _)| c.as_str()).collect();
    record(
        conn,
        into.as_str(),
        "merged",
        actor,
        json!({"from": from, "identifiers": absorbed.identifiers, "conversations": moved,
               "display_name": absorbed.display_name, "email": absorbed.email,
               "owner_id": absorbed.owner_id}),
        now,
    )?;
    record(
        conn,
        from.as_str(),
        "merged_into",
        actor,
        json!({"into": into}),
        now,
    )?;
    tickets::contact(conn, into)
}

pub fn history(conn: &Connection, id: &ContactId) -> Result<Vec<AuditEntry>, StoreError> {
    tickets::contact(conn, id)?;
    let mut statement = conn.prepare_cached(
        "SELECT at, actor, action, changes, actor_type FROM contact_audit WHERE contact_id = ?1
         ORDER BY seq",
    )?;
    let rows = statement.query_map([id.as_str()], |r| {
        Ok(AuditEntry {
            at: from_millis(r.get(0)?),
            actor: r.get(1)?,
            actor_type: crate::store::actor_type(&r.get::<_, String>(4)?),
            entity: "contact".into(),
            entity_id: id.to_string(),
            action: r.get(2)?,
            changes: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
            reason: None,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn counts(conn: &Connection) -> Result<Vec<ChannelCounts>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT channel_id, count(*), count(*) FILTER (WHERE owner_id IS NULL) FROM conversations
         WHERE status = 'open' AND deleted_at IS NULL GROUP BY channel_id",
    )?;
    let rows = statement.query_map([], |r| {
        Ok(ChannelCounts {
            channel_id: r.get(0)?,
            open: r.get::<_, i64>(1)? as u64,
            unassigned: r.get::<_, i64>(2)? as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
