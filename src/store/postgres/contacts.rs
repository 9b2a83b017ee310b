//! Contacts as reps manage them: created through the API, merged (identifiers and
//! conversations move in one transaction, and the merge is recorded), their history, and
//! the open/unassigned counts inboxes show.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use sqlx::PgConnection;

use super::tickets::{self, audit, from_to};
use super::{events, get, ingest};
use crate::model::{Contact, ContactId, from_millis};
use crate::store::sequences::AuditRow;
use crate::store::{Actor, AuditEntry, ChannelCounts, NewContact, StoreError};

/// Records what happened to a contact.
async fn record(
    c: &mut PgConnection,
    contact: &str,
    action: &str,
    actor: &Actor,
    changes: Value,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO contact_audit (contact_id, action, actor, changes, at, actor_type)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(contact)
    .bind(action)
    .bind(&actor.name)
    .bind(changes.to_string())
    .bind(now)
    .bind(actor.kind.as_str())
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub async fn create(
    c: &mut PgConnection,
    new: &NewContact,
    actor: &Actor,
    now: i64,
) -> Result<Contact, StoreError> {
    for (i, identifier) in new.identifiers.iter().enumerate() {
        // The same lock ingest takes for this sender, so a message racing the creation
        // cannot make a second contact.
        ingest::lock(
            c,
            &ingest::sender_key(&identifier.channel_id, &identifier.kind, &identifier.value),
        )
        .await?;
        let other: Option<String> = sqlx::query_scalar(
            "SELECT contact_id FROM contact_identifiers
             WHERE channel_id = $1 AND kind = $2 AND value = $3",
        )
        .bind(&identifier.channel_id)
        .bind(&identifier.kind)
        .bind(&identifier.value)
        .fetch_optional(&mut *c)
        .await?;
        if let Some(other) = other {
            return Err(StoreError::Conflict(format!(
                "identifiers[{i}]: {} {:?} on channel {} already belongs to contact {other}",
                identifier.kind, identifier.value, identifier.channel_id
            )));
        }
    }
    let id = ContactId::new();
    sqlx::query(
        "INSERT INTO contacts (id, display_name, email, owner_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(id.as_str())
    .bind(&new.display_name)
    .bind(&new.email)
    .bind(&new.owner_id)
    .bind(now)
    .execute(&mut *c)
    .await?;
    for identifier in &new.identifiers {
        sqlx::query(
            "INSERT INTO contact_identifiers (channel_id, kind, value, contact_id)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&identifier.channel_id)
        .bind(&identifier.kind)
        .bind(&identifier.value)
        .bind(id.as_str())
        .execute(&mut *c)
        .await?;
    }
    record(
        c,
        id.as_str(),
        "created",
        actor,
        json!({"identifiers": new.identifiers, "display_name": new.display_name,
               "email": new.email, "owner_id": new.owner_id}),
        now,
    )
    .await?;
    tickets::contact(c, &id).await
}

pub async fn merge(
    c: &mut PgConnection,
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
    // Both rows held (in id order, so two opposite merges cannot deadlock).
    let (first, second) = if into.as_str() < from.as_str() {
        (into, from)
    } else {
        (from, into)
    };
    sqlx::query("SELECT 1 FROM contacts WHERE id = $1 OR id = $2 ORDER BY id FOR UPDATE")
        .bind(first.as_str())
        .bind(second.as_str())
        .execute(&mut *c)
        .await?;
    let survivor = tickets::contact_locked(c, into).await?;
    let absorbed = match tickets::contact_locked(c, from).await {
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
    let rows = sqlx::query(
        "SELECT id, ticket_id, deleted_at IS NULL AS live, thread_key, channel_id, status
         FROM conversations WHERE contact_id = $1 ORDER BY seq FOR UPDATE",
    )
    .bind(from.as_str())
    .fetch_all(&mut *c)
    .await?;
    let mut conversations = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: String = get(row, "id")?;
        let ticket: String = get(row, "ticket_id")?;
        let live: bool = get(row, "live")?;
        let key: String = get(row, "thread_key")?;
        let channel: String = get(row, "channel_id")?;
        let status: String = get(row, "status")?;
        // Checked first: in PostgreSQL a failed update would abort the whole transaction.
        if live && status == "open" && key == format!("contact:{from}") {
            let taken: Option<String> = sqlx::query_scalar(
                "SELECT id FROM conversations WHERE channel_id = $1 AND thread_key = $2
                   AND status = 'open' AND deleted_at IS NULL",
            )
            .bind(&channel)
            .bind(format!("contact:{into}"))
            .fetch_optional(&mut *c)
            .await?;
            if taken.is_some() {
                return Err(StoreError::Conflict(
                    "both contacts have an open conversation in the same thread".into(),
                ));
            }
        }
        conversations.push((id, ticket, live));
    }
    sqlx::query("UPDATE contact_identifiers SET contact_id = $1 WHERE contact_id = $2")
        .bind(into.as_str())
        .bind(from.as_str())
        .execute(&mut *c)
        .await?;
    // Per-contact threads are keyed by the contact: they follow it, so the absorbed
    // contact's next message lands in the same conversation as before.
    sqlx::query(
        "UPDATE conversations SET contact_id = $1,
             thread_key = CASE WHEN thread_key = 'contact:' || $2 THEN 'contact:' || $1
                               ELSE thread_key END
         WHERE contact_id = $2",
    )
    .bind(into.as_str())
    .bind(from.as_str())
    .execute(&mut *c)
    .await?;
    for (conversation, ticket, _) in &conversations {
        sqlx::query(
            "UPDATE messages SET sender_id = $2
             WHERE conversation_id = $1 AND sender_type = 'contact' AND sender_id = $3",
        )
        .bind(conversation)
        .bind(into.as_str())
        .bind(from.as_str())
        .execute(&mut *c)
        .await?;
        audit(
            c,
            AuditRow {
                ticket,
                entity: "conversation",
                entity_id: conversation,
                action: "contact_merged",
                actor,
                changes: json!({"contact_id": from_to(from.as_str(), into.as_str())}),
                at: now,
            },
        )
        .await?;
    }
    // The survivor keeps what it has and takes what only the other one knew.
    sqlx::query(
        "UPDATE contacts SET display_name = COALESCE(display_name, $2),
             email = COALESCE(email, $3), owner_id = COALESCE(owner_id, $4), updated_at = $5
         WHERE id = $1",
    )
    .bind(into.as_str())
    .bind(&absorbed.display_name)
    .bind(&absorbed.email)
    .bind(&absorbed.owner_id)
    .bind(now)
    .execute(&mut *c)
    .await?;
    sqlx::query(
        "UPDATE contacts SET merged_into = $1, updated_at = $3 WHERE id = $2 OR merged_into = $2",
    )
    .bind(into.as_str())
    .bind(from.as_str())
    .bind(now)
    .execute(&mut *c)
    .await?;
    let moved: Vec<&str> = conversations.iter().map(|(c, _, _)| c.as_str()).collect();
    record(
        c,
        into.as_str(),
        "merged",
        actor,
        json!({"from": from, "identifiers": absorbed.identifiers, "conversations": moved,
               "display_name": absorbed.display_name, "email": absorbed.email,
               "owner_id": absorbed.owner_id}),
        now,
    )
    .await?;
    record(
        c,
        from.as_str(),
        "merged_into",
        actor,
        json!({"into": into}),
        now,
    )
    .await?;
    // Events last: the events lock is taken after every row lock.
    for (conversation, _, live) in &conversations {
        if *live {
            events::emit(
                c,
                "conversation.contact_merged",
                conversation,
                json!({"contact_id": into, "previous_contact_id": from}),
                now,
            )
            .await?;
        }
    }
    tickets::contact(c, into).await
}

pub async fn history(c: &mut PgConnection, id: &ContactId) -> Result<Vec<AuditEntry>, StoreError> {
    tickets::contact(c, id).await?;
    let rows = sqlx::query(
        "SELECT at, actor, action, changes, actor_type FROM contact_audit WHERE contact_id = $1
         ORDER BY seq",
    )
    .bind(id.as_str())
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditEntry {
                at: from_millis(get(r, "at")?),
                actor: get(r, "actor")?,
                actor_type: crate::store::actor_type(&get::<String>(r, "actor_type")?),
                entity: "contact".into(),
                entity_id: id.to_string(),
                action: get(r, "action")?,
                changes: serde_json::from_str(&get::<String>(r, "changes")?).unwrap_or_default(),
                reason: None,
            })
        })
        .collect()
}

pub async fn counts(c: &mut PgConnection) -> Result<Vec<ChannelCounts>, StoreError> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT channel_id, count(*), count(*) FILTER (WHERE owner_id IS NULL) FROM conversations
         WHERE status = 'open' AND deleted_at IS NULL GROUP BY channel_id",
    )
    .fetch_all(&mut *c)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(channel_id, open, unassigned)| ChannelCounts {
            channel_id,
            open: open as u64,
            unassigned: unassigned as u64,
        })
        .collect())
}
