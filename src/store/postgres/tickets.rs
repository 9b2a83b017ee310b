//! Tickets, conversations' owner and status, trash, audit trail, contacts and analytics.
//!
//! The same changes, audit entries, events and errors as the SQLite store's `desk`; the
//! rules come from `crate::desk`. What SQLite's single writer gives for free is asked for
//! here: a row that is read and then written is locked first (`FOR UPDATE`), so changes
//! made at once on several replicas apply one after the other and none is lost. A unique
//! index that a racing transaction trips aborts this one as `Contended`, and running it
//! again sees what the other did.

use serde_json::{Value, json};
use sqlx::PgConnection;

use super::ingest::json;
use super::{events, get, queries};
use crate::desk::inboxes::Scope;
use crate::desk::tickets::{self, ConversationEffect, Restored};
use crate::model::{
    Contact, ContactId, ConversationId, ConversationStatus, Ticket, TicketId, from_millis,
};
use crate::store::{
    Actor, AuditEntry, ContactUpdate, ConversationUpdate, Page, StoreError, TicketChange,
    TicketFilter, Trashed,
};

/// Records one change in the audit trail.
#[allow(clippy::too_many_arguments)]
pub(super) async fn audit(
    c: &mut PgConnection,
    ticket: &str,
    entity: &str,
    entity_id: &str,
    action: &str,
    actor: &Actor,
    changes: Value,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit (ticket_id, entity, entity_id, action, actor, changes, reason, at,
             actor_type)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(ticket)
    .bind(entity)
    .bind(entity_id)
    .bind(action)
    .bind(&actor.name)
    .bind(changes.to_string())
    .bind(&actor.reason)
    .bind(now)
    .bind(actor.kind.as_str())
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(super) use crate::desk::tickets::from_to;

/// A ticket that is not in the trash, with its conversations (oldest first).
pub async fn ticket(c: &mut PgConnection, id: &TicketId) -> Result<Ticket, StoreError> {
    load_ticket(c, id, false).await
}

/// Reads a ticket; with `lock`, holds its row and its conversations' until the
/// transaction ends. Changes lock a ticket before its conversations, and before their
/// first event (whose lock serialises event writers), so they wait on each other in one
/// order rather than deadlock.
async fn load_ticket(
    c: &mut PgConnection,
    id: &TicketId,
    lock: bool,
) -> Result<Ticket, StoreError> {
    let sql = if lock {
        "SELECT pipeline, status, priority, owner_id, properties, created_at, closed_at
         FROM tickets WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"
    } else {
        "SELECT pipeline, status, priority, owner_id, properties, created_at, closed_at
         FROM tickets WHERE id = $1 AND deleted_at IS NULL"
    };
    let row = sqlx::query(sql)
        .bind(id.as_str())
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NotFound("ticket"))?;
    let sql = if lock {
        "SELECT id FROM conversations WHERE ticket_id = $1 AND deleted_at IS NULL ORDER BY seq
         FOR UPDATE"
    } else {
        "SELECT id FROM conversations WHERE ticket_id = $1 AND deleted_at IS NULL ORDER BY seq"
    };
    let conversation_ids: Vec<String> = sqlx::query_scalar(sql)
        .bind(id.as_str())
        .fetch_all(&mut *c)
        .await?;
    ticket_from_row(id, &row, conversation_ids, None)
}

/// A ticket in the trash, with the conversations trashed with it.
async fn trashed_ticket(c: &mut PgConnection, id: &TicketId) -> Result<Ticket, StoreError> {
    let row = sqlx::query(
        "SELECT pipeline, status, priority, owner_id, properties, created_at, closed_at, deleted_at
         FROM tickets WHERE id = $1 AND deleted_at IS NOT NULL",
    )
    .bind(id.as_str())
    .fetch_optional(&mut *c)
    .await?
    .ok_or(StoreError::NotFound("ticket"))?;
    let deleted_at: i64 = get(&row, "deleted_at")?;
    let conversation_ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM conversations WHERE ticket_id = $1 AND deleted_at = $2 ORDER BY seq",
    )
    .bind(id.as_str())
    .bind(deleted_at)
    .fetch_all(&mut *c)
    .await?;
    ticket_from_row(id, &row, conversation_ids, Some(deleted_at))
}

/// A ticket from its row (`pipeline`, `status`, `priority`, `owner_id`, `properties`,
/// `created_at`, `closed_at`) and its conversations, live or trashed at `trashed_at`.
fn ticket_from_row(
    id: &TicketId,
    row: &sqlx::postgres::PgRow,
    conversation_ids: Vec<String>,
    trashed_at: Option<i64>,
) -> Result<Ticket, StoreError> {
    let properties: String = get(row, "properties")?;
    Ok(Ticket {
        id: id.clone(),
        pipeline: get(row, "pipeline")?,
        status: get(row, "status")?,
        priority: get(row, "priority")?,
        owner_id: get(row, "owner_id")?,
        properties: serde_json::from_str(&properties).unwrap_or_default(),
        conversation_ids: conversation_ids
            .into_iter()
            .map(ConversationId::from_stored)
            .collect(),
        created_at: from_millis(get(row, "created_at")?),
        closed_at: get::<Option<i64>>(row, "closed_at")?.map(from_millis),
        trashed_at: trashed_at.map(from_millis),
    })
}

/// Tickets, the newest first: the live ones, or those in the trash. Seen through a scope
/// or a channel, a ticket is listed when one of its conversations (live, or trashed with
/// it) is on an allowed channel.
pub async fn tickets(
    c: &mut PgConnection,
    filter: &TicketFilter,
    before: i64,
    limit: u32,
) -> Result<Page<Ticket>, StoreError> {
    // Only fixed SQL is pushed; every value the caller gave is bound.
    let mut sql: sqlx::QueryBuilder<sqlx::Postgres> =
        sqlx::QueryBuilder::new("SELECT t.id, t.seq FROM tickets t WHERE ");
    sql.push(if filter.trashed {
        "t.deleted_at IS NOT NULL"
    } else {
        "t.deleted_at IS NULL"
    });
    if filter.channel.is_some() || filter.scope != Scope::All {
        sql.push(
            " AND EXISTS (SELECT 1 FROM conversations c WHERE c.ticket_id = t.id
                 AND c.deleted_at IS NOT DISTINCT FROM t.deleted_at",
        );
        super::queries::push_channels(&mut sql, filter.channel.as_ref(), &filter.scope);
        sql.push(")");
    }
    if let Some(status) = &filter.status {
        sql.push(" AND t.status = ").push_bind(status.clone());
    }
    if let Some(pipeline) = &filter.pipeline {
        sql.push(" AND t.pipeline = ").push_bind(pipeline.clone());
    }
    match filter.owner.as_deref() {
        Some("none") => {
            sql.push(" AND t.owner_id IS NULL");
        }
        Some(owner) => {
            sql.push(" AND t.owner_id = ").push_bind(owner.to_owned());
        }
        None => {}
    }
    if let Some(from) = filter.from {
        sql.push(" AND t.updated_at >= ")
            .push_bind(from.timestamp_millis());
    }
    if let Some(to) = filter.to {
        sql.push(" AND t.updated_at < ")
            .push_bind(to.timestamp_millis());
    }
    if before > 0 {
        sql.push(" AND t.seq < ").push_bind(before);
    }
    sql.push(" ORDER BY t.seq DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
    let rows: Vec<(String, i64)> = sql.build_query_as().fetch_all(&mut *c).await?;
    let more = rows.len() > limit as usize;
    let mut items = Vec::with_capacity(rows.len().min(limit as usize));
    let mut last = None;
    for (id, seq) in rows.into_iter().take(limit as usize) {
        let id = TicketId::from_stored(id);
        items.push(if filter.trashed {
            trashed_ticket(c, &id).await?
        } else {
            load_ticket(c, &id, false).await?
        });
        last = Some(seq);
    }
    Ok(Page {
        items,
        next_cursor: last.filter(|_| more).map(|seq| seq.to_string()),
    })
}

/// Applies a ticket change inside the caller's transaction: checks the status against
/// its pipeline, then moves the ticket's conversations as the lifecycle rules say.
pub async fn apply_ticket_change(
    c: &mut PgConnection,
    id: &TicketId,
    change: &TicketChange,
    actor: &Actor,
    now: i64,
) -> Result<Ticket, StoreError> {
    // Locked: a concurrent change (another replica's) merges its properties into ours.
    let current = load_ticket(c, id, true).await?;
    let plan = tickets::plan_change(&current, &change.pipelines, change.as_desk())
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    sqlx::query(
        "UPDATE tickets SET status = $2, owner_id = $3, properties = $4, updated_at = $5,
             closed_at = CASE WHEN $6 THEN COALESCE(closed_at, $5) ELSE NULL END, priority = $7
         WHERE id = $1",
    )
    .bind(id.as_str())
    .bind(&plan.status)
    .bind(&plan.owner_id)
    .bind(json(&plan.properties)?)
    .bind(now)
    .bind(plan.closed)
    .bind(&plan.priority)
    .execute(&mut *c)
    .await?;
    if let Some(payload) = &plan.status_event {
        for conversation in &current.conversation_ids {
            events::emit(
                c,
                "ticket.status_changed",
                conversation.as_str(),
                payload.clone(),
                now,
            )
            .await?;
        }
    }
    for record in plan.audit {
        audit(
            c,
            id.as_str(),
            "ticket",
            id.as_str(),
            record.action,
            actor,
            record.changes,
            now,
        )
        .await?;
    }
    match plan.conversations {
        ConversationEffect::CloseAll => {
            for conversation in &current.conversation_ids {
                set_conversation_status(
                    c,
                    id.as_str(),
                    conversation,
                    ConversationStatus::Closed,
                    actor,
                    now,
                )
                .await?;
            }
        }
        ConversationEffect::Reopen(conversation) => {
            set_conversation_status(
                c,
                id.as_str(),
                &conversation,
                ConversationStatus::Open,
                actor,
                now,
            )
            .await?;
        }
        ConversationEffect::Nothing => {}
    }
    ticket(c, id).await
}

/// Whether a closed conversation cannot reopen because its thread has another open one
/// (the unique index `conversations_one_open_per_thread` would refuse it).
async fn thread_taken(c: &mut PgConnection, id: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (
             SELECT 1 FROM conversations me JOIN conversations other
                 ON other.channel_id = me.channel_id AND other.thread_key = me.thread_key
             WHERE me.id = $1 AND other.id <> me.id
               AND other.status = 'open' AND other.deleted_at IS NULL)",
    )
    .bind(id)
    .fetch_one(&mut *c)
    .await?)
}

async fn set_conversation_status(
    c: &mut PgConnection,
    ticket: &str,
    id: &ConversationId,
    status: ConversationStatus,
    actor: &Actor,
    now: i64,
) -> Result<(), StoreError> {
    let changed = match status {
        ConversationStatus::Closed => sqlx::query(
            "UPDATE conversations SET status = 'closed', closed_at = $2
             WHERE id = $1 AND status = 'open'",
        )
        .bind(id.as_str())
        .bind(now)
        .execute(&mut *c)
        .await?
        .rows_affected(),
        ConversationStatus::Open => {
            // Asked first, because a failed statement would abort the whole transaction.
            // Should another replica open one in between, the index aborts this
            // transaction as contended and the retry answers with this conflict.
            if thread_taken(c, id.as_str()).await? {
                return Err(StoreError::Conflict(format!(
                    "conversation {id} cannot reopen: the contact has another open conversation on that channel"
                )));
            }
            sqlx::query(
                "UPDATE conversations SET status = 'open', closed_at = NULL
                 WHERE id = $1 AND status = 'closed'",
            )
            .bind(id.as_str())
            .execute(&mut *c)
            .await?
            .rows_affected()
        }
    };
    if changed > 0 {
        let (payload, record) = tickets::conversation_status_record(status);
        events::emit(c, "conversation.status_changed", id.as_str(), payload, now).await?;
        audit(
            c,
            ticket,
            "conversation",
            id.as_str(),
            record.action,
            actor,
            record.changes,
            now,
        )
        .await?;
    }
    Ok(())
}

/// Assigns a conversation (its ticket follows) and opens or closes it, as `update` says.
pub async fn update_conversation(
    c: &mut PgConnection,
    id: &ConversationId,
    update: &ConversationUpdate,
    actor: &Actor,
    now: i64,
) -> Result<(), StoreError> {
    // Locked in the order every change here takes them: the ticket, then the conversation.
    let ticket: String = sqlx::query_scalar(
        "SELECT ticket_id FROM conversations WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id.as_str())
    .fetch_optional(&mut *c)
    .await?
    .ok_or(StoreError::NotFound("conversation"))?;
    let ticket_owner: Option<String> =
        sqlx::query_scalar("SELECT owner_id FROM tickets WHERE id = $1 FOR UPDATE")
            .bind(&ticket)
            .fetch_one(&mut *c)
            .await?;
    let row = sqlx::query(
        "SELECT ticket_id, owner_id FROM conversations WHERE id = $1 AND deleted_at IS NULL
         FOR UPDATE",
    )
    .bind(id.as_str())
    .fetch_optional(&mut *c)
    .await?
    .ok_or(StoreError::NotFound("conversation"))?;
    if get::<String>(&row, "ticket_id")? != ticket {
        // It joined another ticket in between: run again with that one.
        return Err(StoreError::Contended(
            format!("conversation {id} moved to another ticket").into(),
        ));
    }
    let owner: Option<String> = get(&row, "owner_id")?;
    if let Some(new_owner) = &update.owner_id
        && *new_owner != owner
    {
        sqlx::query("UPDATE conversations SET owner_id = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(new_owner)
            .execute(&mut *c)
            .await?;
        events::emit(
            c,
            "conversation.assigned",
            id.as_str(),
            json!({"owner_id": new_owner, "previous_owner_id": owner, "by": actor.name}),
            now,
        )
        .await?;
        audit(
            c,
            &ticket,
            "conversation",
            id.as_str(),
            "owner_changed",
            actor,
            json!({"owner_id": from_to(owner.clone(), new_owner.clone())}),
            now,
        )
        .await?;
        // A conversation's owner is its ticket's owner too (never the other way round).
        if ticket_owner != *new_owner {
            sqlx::query("UPDATE tickets SET owner_id = $2, updated_at = $3 WHERE id = $1")
                .bind(&ticket)
                .bind(new_owner)
                .bind(now)
                .execute(&mut *c)
                .await?;
            audit(
                c,
                &ticket,
                "ticket",
                &ticket,
                "owner_changed",
                actor,
                json!({"owner_id": from_to(ticket_owner, new_owner.clone())}),
                now,
            )
            .await?;
        }
    }
    if let Some(status) = update.status {
        // Closing a conversation closes only it: its ticket stays as it is.
        set_conversation_status(c, &ticket, id, status, actor, now).await?;
    }
    Ok(())
}

/// Moves the conversation's ticket, with all its conversations, to the trash.
pub async fn delete_conversation(
    c: &mut PgConnection,
    id: &ConversationId,
    actor: &Actor,
    now: i64,
) -> Result<Trashed, StoreError> {
    let ticket: String = sqlx::query_scalar(
        "SELECT ticket_id FROM conversations WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id.as_str())
    .fetch_optional(&mut *c)
    .await?
    .ok_or(StoreError::NotFound("conversation"))?;
    delete_ticket(c, &TicketId::from_stored(ticket), actor, now).await
}

/// Moves a ticket and its conversations to the trash (until `purge_trash` or a restore).
/// Their queued replies stay queued: the answer and the audit trail say how many.
pub async fn delete_ticket(
    c: &mut PgConnection,
    id: &TicketId,
    actor: &Actor,
    now: i64,
) -> Result<Trashed, StoreError> {
    let changed = sqlx::query(
        "UPDATE tickets SET deleted_at = $2, updated_at = $2 WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id.as_str())
    .bind(now)
    .execute(&mut *c)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(StoreError::NotFound("ticket"));
    }
    let mut trashed: Vec<(i64, String)> = sqlx::query_as(
        "UPDATE conversations SET deleted_at = $2 WHERE ticket_id = $1 AND deleted_at IS NULL
         RETURNING seq, id",
    )
    .bind(id.as_str())
    .bind(now)
    .fetch_all(&mut *c)
    .await?;
    trashed.sort();
    let queued_replies: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE state = 'pending' AND kind = $2
           AND ordering_key IN (SELECT id FROM conversations WHERE ticket_id = $1)",
    )
    .bind(id.as_str())
    .bind(crate::store::JOB_DELIVER)
    .fetch_one(&mut *c)
    .await?;
    let receipt = Trashed {
        ticket_id: id.clone(),
        conversation_ids: trashed
            .into_iter()
            .map(|(_, c)| ConversationId::from_stored(c))
            .collect(),
        queued_replies: queued_replies as u64,
    };
    audit(
        c,
        id.as_str(),
        "ticket",
        id.as_str(),
        "deleted",
        actor,
        tickets::trash_record(&receipt.conversation_ids, receipt.queued_replies),
        now,
    )
    .await?;
    Ok(receipt)
}

/// Takes a ticket and the conversations trashed with it out of the trash.
pub async fn restore_ticket(
    c: &mut PgConnection,
    id: &TicketId,
    actor: &Actor,
    now: i64,
) -> Result<Ticket, StoreError> {
    let deleted_at: Option<i64> =
        sqlx::query_scalar("SELECT deleted_at FROM tickets WHERE id = $1 FOR UPDATE")
            .bind(id.as_str())
            .fetch_optional(&mut *c)
            .await?
            .ok_or(StoreError::NotFound("ticket"))?;
    let Some(deleted_at) = deleted_at else {
        return Err(StoreError::Conflict(format!(
            "ticket {id} is not in the trash"
        )));
    };
    sqlx::query("UPDATE tickets SET deleted_at = NULL, updated_at = $2 WHERE id = $1")
        .bind(id.as_str())
        .bind(now)
        .execute(&mut *c)
        .await?;
    let conversations: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM conversations WHERE ticket_id = $1 AND deleted_at = $2 ORDER BY seq",
    )
    .bind(id.as_str())
    .bind(deleted_at)
    .fetch_all(&mut *c)
    .await?;
    for conversation in conversations {
        let open: bool =
            sqlx::query_scalar("SELECT status = 'open' FROM conversations WHERE id = $1")
                .bind(&conversation)
                .fetch_one(&mut *c)
                .await?;
        let taken = open && thread_taken(c, &conversation).await?;
        let outcome = Restored::of(open, taken);
        match outcome {
            Restored::Closed => {
                sqlx::query(
                    "UPDATE conversations SET deleted_at = NULL, status = 'closed',
                         closed_at = COALESCE(closed_at, $2)
                     WHERE id = $1",
                )
                .bind(&conversation)
                .bind(now)
                .execute(&mut *c)
                .await?;
            }
            Restored::AsItWas => {
                sqlx::query("UPDATE conversations SET deleted_at = NULL WHERE id = $1")
                    .bind(&conversation)
                    .execute(&mut *c)
                    .await?;
            }
        }
        let (changes, reason) = outcome.record(if open { "open" } else { "closed" });
        let actor = Actor {
            reason: reason.or_else(|| actor.reason.clone()),
            ..actor.clone()
        };
        audit(
            c,
            id.as_str(),
            "conversation",
            &conversation,
            "restored",
            &actor,
            changes,
            now,
        )
        .await?;
    }
    audit(
        c,
        id.as_str(),
        "ticket",
        id.as_str(),
        "restored",
        actor,
        json!({}),
        now,
    )
    .await?;
    ticket(c, id).await
}

/// Deletes for good the tickets trashed before `before` (unix ms), with their
/// conversations, messages, jobs and audit trail, and the events older than that.
/// Returns how many tickets went.
pub async fn purge_trash(c: &mut PgConnection, before: i64) -> Result<u64, StoreError> {
    // Locked, so a restore or another replica's purge waits for this one (and then finds
    // the rows gone) instead of racing it.
    let tickets: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM tickets WHERE deleted_at IS NOT NULL AND deleted_at < $1
         ORDER BY seq FOR UPDATE",
    )
    .bind(before)
    .fetch_all(&mut *c)
    .await?;
    if !tickets.is_empty() {
        for sql in [
            "DELETE FROM messages WHERE conversation_id IN
                 (SELECT id FROM conversations WHERE ticket_id = ANY($1))",
            "DELETE FROM jobs WHERE ordering_key IN
                 (SELECT id FROM conversations WHERE ticket_id = ANY($1))",
            "DELETE FROM conversation_reads WHERE conversation_id IN
                 (SELECT id FROM conversations WHERE ticket_id = ANY($1))",
            "DELETE FROM conversations WHERE ticket_id = ANY($1)",
            "DELETE FROM audit WHERE ticket_id = ANY($1)",
            "DELETE FROM tickets WHERE id = ANY($1)",
        ] {
            sqlx::query(sql).bind(&tickets).execute(&mut *c).await?;
        }
    }
    events::purge(c, before).await?;
    Ok(tickets.len() as u64)
}

/// A ticket's audit trail, oldest first.
pub async fn history(c: &mut PgConnection, id: &TicketId) -> Result<Vec<AuditEntry>, StoreError> {
    let exists: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM tickets WHERE id = $1 AND deleted_at IS NULL")
            .bind(id.as_str())
            .fetch_optional(&mut *c)
            .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound("ticket"));
    }
    let rows = sqlx::query(
        "SELECT at, actor, entity, entity_id, action, changes, reason, actor_type FROM audit
         WHERE ticket_id = $1 ORDER BY seq",
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
                entity: get(r, "entity")?,
                entity_id: get(r, "entity_id")?,
                action: get(r, "action")?,
                changes: serde_json::from_str(&get::<String>(r, "changes")?).unwrap_or_default(),
                reason: get(r, "reason")?,
            })
        })
        .collect()
}

/// A contact with its identifiers.
pub async fn contact(c: &mut PgConnection, id: &ContactId) -> Result<Contact, StoreError> {
    load_contact(c, id, false).await
}

/// A contact, its row held until the transaction ends.
pub async fn contact_locked(c: &mut PgConnection, id: &ContactId) -> Result<Contact, StoreError> {
    load_contact(c, id, true).await
}

/// Reads a contact; with `lock`, holds its row until the transaction ends.
async fn load_contact(
    c: &mut PgConnection,
    id: &ContactId,
    lock: bool,
) -> Result<Contact, StoreError> {
    let sql = if lock {
        "SELECT display_name, email, owner_id, merged_into FROM contacts WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT display_name, email, owner_id, merged_into FROM contacts WHERE id = $1"
    };
    let row = sqlx::query(sql)
        .bind(id.as_str())
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NotFound("contact"))?;
    if let Some(into) = get::<Option<String>>(&row, "merged_into")? {
        return Err(StoreError::Merged(ContactId::from_stored(into)));
    }
    Ok(Contact {
        id: id.clone(),
        display_name: get(&row, "display_name")?,
        email: get(&row, "email")?,
        owner_id: get(&row, "owner_id")?,
        identifiers: queries::contact_identifiers(c, id.as_str()).await?,
    })
}

/// Sets a contact's owner and email, as far as `update` gives them.
pub async fn update_contact(
    c: &mut PgConnection,
    id: &ContactId,
    update: &ContactUpdate,
    now: i64,
) -> Result<Contact, StoreError> {
    let current = load_contact(c, id, true).await?;
    let owner = update.owner_id.clone().unwrap_or(current.owner_id);
    let email = update.email.clone().unwrap_or(current.email);
    sqlx::query("UPDATE contacts SET owner_id = $2, email = $3, updated_at = $4 WHERE id = $1")
        .bind(id.as_str())
        .bind(owner)
        .bind(email)
        .bind(now)
        .execute(&mut *c)
        .await?;
    contact(c, id).await
}

/// The raw facts of the analytics report for `[from, to)` (unix ms).
pub async fn analytics(
    c: &mut PgConnection,
    from: i64,
    to: i64,
) -> Result<crate::desk::analytics::Facts, StoreError> {
    let mut facts = crate::desk::analytics::Facts::default();
    let count = |r: &sqlx::postgres::PgRow, column: &str| -> Result<u64, StoreError> {
        Ok(u64::try_from(get::<i64>(r, column)?).unwrap_or(0))
    };
    let rows = sqlx::query(
        "SELECT channel_id, count(*) AS conversations FROM conversations
         WHERE created_at >= $1 AND created_at < $2 AND deleted_at IS NULL
         GROUP BY channel_id ORDER BY channel_id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut *c)
    .await?;
    facts.conversations = rows
        .iter()
        .map(|r| Ok((get(r, "channel_id")?, count(r, "conversations")?)))
        .collect::<Result<_, StoreError>>()?;
    let rows = sqlx::query(
        "SELECT m.channel_id, count(*) FILTER (WHERE m.direction = 'inbound') AS inbound,
                count(*) FILTER (WHERE m.direction = 'outbound') AS outbound
         FROM messages m JOIN conversations c ON c.id = m.conversation_id
         WHERE m.created_at >= $1 AND m.created_at < $2 AND c.deleted_at IS NULL
         GROUP BY m.channel_id ORDER BY m.channel_id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut *c)
    .await?;
    facts.messages = rows
        .iter()
        .map(|r| {
            Ok((
                get(r, "channel_id")?,
                count(r, "inbound")?,
                count(r, "outbound")?,
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    // First response: from a conversation's first inbound message to its first rep reply.
    // Seconds are computed in double precision, as SQLite does.
    let rows = sqlx::query(
        "SELECT c.channel_id, CASE WHEN r.sender_type = 'rep' THEN r.sender_id END AS sender_id,
                (r.created_at - i.first_in)::float8 / 1000 AS seconds
         FROM conversations c
         JOIN (SELECT conversation_id, MIN(created_at) AS first_in FROM messages
               WHERE direction = 'inbound' GROUP BY conversation_id) i ON i.conversation_id = c.id
         JOIN messages r ON r.seq = (SELECT MIN(seq) FROM messages
                                     WHERE conversation_id = c.id AND direction = 'outbound'
                                       AND sender_type IN ('rep', 'token'))
         WHERE c.created_at >= $1 AND c.created_at < $2 AND c.deleted_at IS NULL
         ORDER BY c.seq",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut *c)
    .await?;
    facts.first_responses = rows
        .iter()
        .map(|r| {
            Ok((
                get(r, "channel_id")?,
                get(r, "sender_id")?,
                get(r, "seconds")?,
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    // Resolution: tickets closed in the period, from creation to close; the channel is the
    // one of the ticket's first conversation.
    let rows = sqlx::query(
        "SELECT (SELECT channel_id FROM conversations WHERE ticket_id = t.id ORDER BY seq LIMIT 1)
                    AS channel_id,
                t.owner_id, (t.closed_at - t.created_at)::float8 / 1000 AS seconds
         FROM tickets t
         WHERE t.closed_at >= $1 AND t.closed_at < $2 AND t.deleted_at IS NULL
         ORDER BY t.seq",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut *c)
    .await?;
    facts.resolutions = rows
        .iter()
        .map(|r| {
            Ok((
                get::<Option<String>>(r, "channel_id")?.unwrap_or_default(),
                get(r, "owner_id")?,
                get(r, "seconds")?,
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    let rows = sqlx::query(
        "SELECT channel_id, sender_id, count(*) AS replies FROM messages
         WHERE direction = 'outbound' AND sender_type = 'rep' AND created_at >= $1 AND created_at < $2
         GROUP BY channel_id, sender_id ORDER BY channel_id, sender_id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut *c)
    .await?;
    facts.replies = rows
        .iter()
        .map(|r| {
            Ok((
                get(r, "channel_id")?,
                get(r, "sender_id")?,
                count(r, "replies")?,
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(facts)
}

#[cfg(test)]
mod tests {
    //! Every change made on a SQLite store and a PostgreSQL store seeded alike, with the
    //! answers, audit trails and events compared, besides what each test expects outright.

    use std::collections::BTreeMap;
    use std::sync::Arc;

    use chrono::Utc;
    use serde_json::{Map, json};

    use super::super::queries::tests::{BASE, Twin, both, i, page, t};
    use super::*;
    use crate::config::{PipelineConfig, StatusConfig};
    use crate::model::Conversation;
    use crate::store::{ConversationFilter, Store};

    fn pipelines() -> Arc<BTreeMap<String, PipelineConfig>> {
        let status = |id: &str, closed: bool, requires: &[&str]| StatusConfig {
            id: id.into(),
            closed,
            requires: requires.iter().map(|r| r.to_string()).collect(),
        };
        let pipeline = PipelineConfig {
            statuses: vec![
                status("new", false, &[]),
                status("pending", false, &[]),
                status("closed", true, &["resolution"]),
            ],
        };
        Arc::new([("support".to_owned(), pipeline)].into())
    }

    fn change(status: Option<&str>) -> TicketChange {
        TicketChange {
            status: status.map(str::to_owned),
            owner_id: None,
            priority: None,
            properties: None,
            pipelines: pipelines(),
        }
    }

    fn props(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    fn tid(id: &str) -> TicketId {
        TicketId::from_stored(id.into())
    }

    fn cid(id: &str) -> ConversationId {
        ConversationId::from_stored(id.into())
    }

    fn actor(name: &str, reason: Option<&str>) -> Actor {
        Actor {
            kind: crate::model::SenderKind::Rep,
            name: name.into(),
            reason: reason.map(str::to_owned),
        }
    }

    /// Contacts ana and bo. Ticket t1 (new) has two open conversations, c1 on chat and
    /// c2 on mail, both ana's; ticket t2 (new) has bo's open conversation c3 on chat.
    async fn seeded() -> Twin {
        let twin = Twin::new().await;
        twin.contact("ana", Some("Ana"), None).await;
        twin.contact("bo", Some("Bo"), None).await;
        twin.identifier("ana", "chat", "app_user", "ana-1").await;
        twin.identifier("bo", "chat", "app_user", "bo-1").await;
        twin.ticket("t1", "new", None, None).await;
        twin.ticket("t2", "new", None, None).await;
        twin.conversation("c1", "chat", "ana", "t1", "open", None, BASE + 10)
            .await;
        twin.conversation("c2", "mail", "ana", "t1", "open", None, BASE + 20)
            .await;
        twin.conversation("c3", "chat", "bo", "t2", "open", None, BASE + 30)
            .await;
        for (id, conversation, channel) in [("m1", "c1", "chat"), ("m2", "c2", "mail")] {
            twin.message(
                id,
                conversation,
                channel,
                "inbound",
                ("contact", "ana"),
                "help",
                BASE,
            )
            .await;
        }
        twin.message("m3", "c3", "chat", "inbound", ("contact", "bo"), "hi", BASE)
            .await;
        twin
    }

    async fn conversation(twin: &Twin, id: &str) -> Result<Conversation, StoreError> {
        twin.agree(both!(twin, |s| s.conversation(&cid(id)).await))
    }

    async fn history(
        twin: &Twin,
        id: &str,
    ) -> Vec<(String, String, String, Value, Option<String>)> {
        twin.agree(both!(twin, |s| s.ticket_history(&tid(id)).await))
            .unwrap()
            .into_iter()
            .map(|e| (e.actor, e.entity_id, e.action, e.changes, e.reason))
            .collect()
    }

    /// (kind, conversation, data) of every event.
    async fn events(twin: &Twin) -> Vec<(String, String, Value)> {
        twin.events()
            .await
            .into_iter()
            .map(|e| (e.kind, e.conversation_id.unwrap_or_default(), e.data))
            .collect()
    }

    fn entry(
        actor: &str,
        entity_id: &str,
        action: &str,
        changes: Value,
        reason: Option<&str>,
    ) -> (String, String, String, Value, Option<String>) {
        (
            actor.into(),
            entity_id.into(),
            action.into(),
            changes,
            reason.map(str::to_owned),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(pg_tests),
        ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
    )]
    async fn closing_a_ticket_needs_its_properties_and_closes_every_conversation() {
        let twin = seeded().await;
        let ticket = twin
            .agree(both!(twin, |s| s.ticket(&tid("t1")).await))
            .unwrap();
        assert_eq!(ticket.conversation_ids, [cid("c1"), cid("c2")]);
        assert_eq!(
            (ticket.pipeline.as_str(), ticket.status.as_str()),
            ("support", "new")
        );

        // The status requires a resolution, given with the move.
        let result = twin.agree(both!(twin, |s| s
            .update_ticket(&tid("t1"), change(Some("closed")), &actor("api", None))
            .await));
        assert!(matches!(&result, Err(StoreError::Invalid(e)) if e.contains("resolution")));
        let result = twin.agree(both!(twin, |s| s
            .update_ticket(&tid("t1"), change(Some("gone")), &actor("api", None))
            .await));
        assert!(matches!(result, Err(StoreError::Invalid(_))));

        let closing = TicketChange {
            owner_id: Some(Some("alice".into())),
            properties: Some(props(json!({"resolution": "refund", "tier": "gold"}))),
            ..change(Some("closed"))
        };
        let closed = twin
            .agree(both!(twin, |s| s
                .update_ticket(&tid("t1"), closing.clone(), &actor("api", Some("done")))
                .await))
            .unwrap();
        assert_eq!(closed.status, "closed");
        assert_eq!(closed.owner_id.as_deref(), Some("alice"));
        assert_eq!(
            Value::Object(closed.properties.clone()),
            json!({"resolution": "refund", "tier": "gold"})
        );
        assert!(closed.closed_at.is_some_and(|at| at > from_millis(BASE)));
        for id in ["c1", "c2"] {
            assert_eq!(
                conversation(&twin, id).await.unwrap().status,
                ConversationStatus::Closed
            );
        }
        assert_eq!(
            history(&twin, "t1").await,
            [
                entry(
                    "api",
                    "t1",
                    "status_changed",
                    json!({"status": {"from": "new", "to": "closed"}}),
                    Some("done")
                ),
                entry(
                    "api",
                    "t1",
                    "owner_changed",
                    json!({"owner_id": {"from": null, "to": "alice"}}),
                    Some("done")
                ),
                entry(
                    "api",
                    "t1",
                    "properties_changed",
                    json!({"properties": {"from": {}, "to": {"resolution": "refund", "tier": "gold"}}}),
                    Some("done")
                ),
                entry(
                    "api",
                    "c1",
                    "status_changed",
                    json!({"status": {"from": "open", "to": "closed"}}),
                    Some("done")
                ),
                entry(
                    "api",
                    "c2",
                    "status_changed",
                    json!({"status": {"from": "open", "to": "closed"}}),
                    Some("done")
                ),
            ]
        );
        let changed = json!({"ticket_id": "t1", "status": "closed", "previous_status": "new"});
        assert_eq!(
            events(&twin).await,
            [
                ("ticket.status_changed".into(), "c1".into(), changed.clone()),
                ("ticket.status_changed".into(), "c2".into(), changed),
                (
                    "conversation.status_changed".into(),
                    "c1".into(),
                    json!({"status": "closed"})
                ),
                (
                    "conversation.status_changed".into(),
                    "c2".into(),
                    json!({"status": "closed"})
                ),
            ]
        );

        // A change that moves nothing records nothing; a null property removes it.
        let same = twin
            .agree(both!(twin, |s| s
                .update_ticket(&tid("t1"), change(None), &actor("api", None))
                .await))
            .unwrap();
        assert_eq!(same.closed_at, closed.closed_at);
        let result = twin.agree(both!(twin, |s| s
            .update_ticket(
                &tid("t1"),
                TicketChange {
                    properties: Some(props(json!({"resolution": null}))),
                    ..change(None)
                },
                &actor("api", None)
            )
            .await));
        assert!(
            matches!(result, Err(StoreError::Invalid(_))),
            "the status requires it"
        );
        let trimmed = twin
            .agree(both!(twin, |s| s
                .update_ticket(
                    &tid("t1"),
                    TicketChange {
                        properties: Some(props(json!({"tier": null}))),
                        ..change(None)
                    },
                    &actor("api", None)
                )
                .await))
            .unwrap();
        assert_eq!(
            Value::Object(trimmed.properties),
            json!({"resolution": "refund"})
        );
        assert_eq!(history(&twin, "t1").await.len(), 6);

        // Reopened with two conversations: neither reopens; the close time goes.
        let reopened = twin
            .agree(both!(twin, |s| s
                .update_ticket(&tid("t1"), change(Some("pending")), &actor("api", None))
                .await))
            .unwrap();
        assert_eq!(reopened.closed_at, None);
        for id in ["c1", "c2"] {
            assert_eq!(
                conversation(&twin, id).await.unwrap().status,
                ConversationStatus::Closed
            );
        }
        let result = twin.agree(both!(twin, |s| s
            .update_ticket(&tid("nope"), change(None), &actor("api", None))
            .await));
        assert!(matches!(result, Err(StoreError::NotFound("ticket"))));
    }

    /// What SQLite's single writer does by itself: a change made while another replica's
    /// is in flight starts from what that one wrote, rather than writing over it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(pg_tests),
        ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
    )]
    async fn a_ticket_change_waits_for_a_concurrent_one_and_keeps_what_it_wrote() {
        let twin = seeded().await;
        let pool = twin.pg.pool();
        let mut other = pool.begin().await.unwrap();
        let other_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *other)
            .await
            .unwrap();
        sqlx::query("UPDATE tickets SET properties = '{\"x\": 1}' WHERE id = 't1'")
            .execute(&mut *other)
            .await
            .unwrap();
        let change = TicketChange {
            properties: Some(props(json!({"y": 2}))),
            ..change(None)
        };
        let (id, api) = (tid("t1"), actor("api", None));
        let (changed, ()) = tokio::join!(twin.pg.update_ticket(&id, change, &api), async {
            // Commits once the change is waiting for it (not after some time).
            loop {
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                )
                .bind(other_pid)
                .fetch_one(pool)
                .await
                .unwrap();
                if waiting > 0 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            other.commit().await.unwrap();
        });
        let changed = changed.unwrap();
        assert_eq!(Value::Object(changed.properties), json!({"x": 1, "y": 2}));
        let history = twin.pg.ticket_history(&tid("t1")).await.unwrap();
        assert_eq!(
            history.last().map(|e| &e.changes),
            Some(&json!({"properties": {"from": {"x": 1}, "to": {"x": 1, "y": 2}}}))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(pg_tests),
        ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
    )]
    async fn reopening_a_ticket_reopens_its_only_conversation_unless_the_thread_has_another() {
        let twin = seeded().await;
        let closing = TicketChange {
            properties: Some(props(json!({"resolution": "answered"}))),
            ..change(Some("closed"))
        };
        twin.agree(both!(twin, |s| s
            .update_ticket(&tid("t2"), closing.clone(), &actor("api", None))
            .await))
            .unwrap();
        twin.agree(both!(twin, |s| s
            .update_ticket(&tid("t2"), change(Some("new")), &actor("api", None))
            .await))
            .unwrap();
        assert_eq!(
            conversation(&twin, "c3").await.unwrap().status,
            ConversationStatus::Open
        );

        // Closed again; then bo writes again and gets a new conversation on that thread.
        twin.agree(both!(twin, |s| s
            .update_ticket(&tid("t2"), closing.clone(), &actor("api", None))
            .await))
            .unwrap();
        twin.ticket("t3", "new", None, None).await;
        twin.conversation("c4", "chat", "bo", "t3", "open", None, BASE + 40)
            .await;
        let before = twin.events().await.len();
        let result = twin.agree(both!(twin, |s| s
            .update_ticket(&tid("t2"), change(Some("new")), &actor("api", None))
            .await));
        // A conflict (409), not a contended transaction tried again and again (503).
        assert!(
            matches!(&result, Err(StoreError::Conflict(e)) if e.contains("cannot reopen")),
            "{result:?}"
        );
        // Nothing of the refused change stayed.
        let t2 = twin
            .agree(both!(twin, |s| s.ticket(&tid("t2")).await))
            .unwrap();
        assert_eq!(t2.status, "closed");
        assert_eq!(twin.events().await.len(), before);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(pg_tests),
        ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
    )]
    async fn assigning_a_conversation_assigns_its_ticket_and_closing_it_closes_only_it() {
        let twin = seeded().await;
        let assign = |owner: Option<&str>| ConversationUpdate {
            owner_id: Some(owner.map(str::to_owned)),
            status: None,
        };
        twin.agree(both!(twin, |s| s
            .update_conversation(&cid("c1"), assign(Some("alice")), &actor("api", None))
            .await))
            .unwrap();
        // Assigning again to the same rep changes nothing.
        twin.agree(both!(twin, |s| s
            .update_conversation(&cid("c1"), assign(Some("alice")), &actor("api", None))
            .await))
            .unwrap();
        // The ticket already belongs to alice: only the conversation's owner changes.
        twin.agree(both!(twin, |s| s
            .update_conversation(&cid("c2"), assign(Some("alice")), &actor("api", None))
            .await))
            .unwrap();
        twin.agree(both!(twin, |s| s
            .update_conversation(&cid("c1"), assign(None), &actor("api", Some("away")))
            .await))
            .unwrap();
        assert_eq!(conversation(&twin, "c1").await.unwrap().owner_id, None);
        let t1 = twin
            .agree(both!(twin, |s| s.ticket(&tid("t1")).await))
            .unwrap();
        assert_eq!(t1.owner_id, None);

        let close = ConversationUpdate {
            owner_id: None,
            status: Some(ConversationStatus::Closed),
        };
        twin.agree(both!(twin, |s| s
            .update_conversation(&cid("c1"), close.clone(), &actor("api", None))
            .await))
            .unwrap();
        let t1 = twin
            .agree(both!(twin, |s| s.ticket(&tid("t1")).await))
            .unwrap();
        assert_eq!((t1.status.as_str(), t1.closed_at), ("new", None));
        assert_eq!(
            conversation(&twin, "c2").await.unwrap().status,
            ConversationStatus::Open
        );
        assert_eq!(
            history(&twin, "t1").await,
            [
                entry(
                    "api",
                    "c1",
                    "owner_changed",
                    json!({"owner_id": {"from": null, "to": "alice"}}),
                    None
                ),
                entry(
                    "api",
                    "t1",
                    "owner_changed",
                    json!({"owner_id": {"from": null, "to": "alice"}}),
                    None
                ),
                entry(
                    "api",
                    "c2",
                    "owner_changed",
                    json!({"owner_id": {"from": null, "to": "alice"}}),
                    None
                ),
                entry(
                    "api",
                    "c1",
                    "owner_changed",
                    json!({"owner_id": {"from": "alice", "to": null}}),
                    Some("away")
                ),
                entry(
                    "api",
                    "t1",
                    "owner_changed",
                    json!({"owner_id": {"from": "alice", "to": null}}),
                    Some("away")
                ),
                entry(
                    "api",
                    "c1",
                    "status_changed",
                    json!({"status": {"from": "open", "to": "closed"}}),
                    None
                ),
            ]
        );
        assert_eq!(
            events(&twin).await,
            [
                (
                    "conversation.assigned".into(),
                    "c1".into(),
                    json!({"owner_id": "alice", "previous_owner_id": null, "by": "api"})
                ),
                (
                    "conversation.assigned".into(),
                    "c2".into(),
                    json!({"owner_id": "alice", "previous_owner_id": null, "by": "api"})
                ),
                (
                    "conversation.assigned".into(),
                    "c1".into(),
                    json!({"owner_id": null, "previous_owner_id": "alice", "by": "api"})
                ),
                (
                    "conversation.status_changed".into(),
                    "c1".into(),
                    json!({"status": "closed"})
                ),
            ]
        );
        // An event carries the conversation's owner and channel, for stream filters.
        let owners: Vec<Option<String>> = twin
            .events()
            .await
            .into_iter()
            .map(|e| e.owner_id)
            .collect();
        assert_eq!(
            owners,
            [Some("alice".into()), Some("alice".into()), None, None]
        );

        // Reopening works while the thread is free, and is refused once it is not.
        let reopen = ConversationUpdate {
            owner_id: None,
            status: Some(ConversationStatus::Open),
        };
        twin.agree(both!(twin, |s| s
            .update_conversation(&cid("c1"), reopen.clone(), &actor("api", None))
            .await))
            .unwrap();
        twin.agree(both!(twin, |s| s
            .update_conversation(&cid("c1"), close.clone(), &actor("api", None))
            .await))
            .unwrap();
        twin.ticket("t9", "new", None, None).await;
        twin.conversation("c9", "chat", "ana", "t9", "open", None, BASE + 90)
            .await;
        let result = twin.agree(both!(twin, |s| s
            .update_conversation(&cid("c1"), reopen.clone(), &actor("api", None))
            .await));
        assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
        // Reopening an open conversation is no change at all.
        twin.agree(both!(twin, |s| s
            .update_conversation(&cid("c9"), reopen.clone(), &actor("api", None))
            .await))
            .unwrap();
        let result = twin.agree(both!(twin, |s| s
            .update_conversation(&cid("nope"), close.clone(), &actor("api", None))
            .await));
        assert!(matches!(result, Err(StoreError::NotFound("conversation"))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(pg_tests),
        ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
    )]
    async fn the_trash_hides_restores_and_purges_a_ticket_with_everything_it_holds() {
        let twin = seeded().await;
        twin.exec(
            "INSERT INTO jobs (id, kind, channel_id, ordering_key, payload, state, run_at,
                 created_at, updated_at)
             VALUES ($1, 'deliver', 'chat', $2, '{}', 'pending', $3, $3, $3)",
            &[t("j1"), t("c1"), i(BASE)],
        )
        .await;
        twin.agree(both!(twin, |s| s
            .update_conversation(
                &cid("c2"),
                ConversationUpdate {
                    owner_id: Some(Some("alice".into())),
                    status: None
                },
                &actor("api", None)
            )
            .await))
            .unwrap();

        // Deleting one conversation trashes its ticket and every conversation of it.
        twin.agree(both!(twin, |s| s
            .delete_conversation(&cid("c1"), &actor("api", Some("spam")))
            .await))
            .unwrap();
        for id in ["c1", "c2"] {
            assert!(matches!(
                conversation(&twin, id).await,
                Err(StoreError::NotFound("conversation"))
            ));
        }
        for result in [
            twin.agree(both!(twin, |s| s.ticket(&tid("t1")).await.map(|_| ()))),
            twin.agree(both!(twin, |s| s
                .ticket_history(&tid("t1"))
                .await
                .map(|_| ()))),
            twin.agree(both!(twin, |s| s
                .delete_ticket(&tid("t1"), &actor("api", None))
                .await
                .map(|_| ()))),
            twin.agree(both!(twin, |s| s
                .delete_conversation(&cid("c2"), &actor("api", None))
                .await
                .map(|_| ()))),
        ] {
            assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
        }
        let listed = twin
            .agree(both!(twin, |s| s
                .conversations(&ConversationFilter::default(), &page(10, None))
                .await))
            .unwrap();
        assert_eq!(listed.items.len(), 1);

        // Not yet past retention: nothing purged, still restorable.
        let purged = twin
            .agree(both!(twin, |s| s
                .purge_trash(Utc::now() - chrono::Duration::days(1))
                .await))
            .unwrap();
        assert_eq!(purged, 0);
        // Meanwhile ana wrote again on chat: c1 comes back closed; c2 comes back open.
        twin.ticket("t5", "new", None, None).await;
        twin.conversation("c5", "chat", "ana", "t5", "open", None, BASE + 50)
            .await;
        let restored = twin
            .agree(both!(twin, |s| s
                .restore_ticket(&tid("t1"), &actor("api", None))
                .await))
            .unwrap();
        assert_eq!(restored.conversation_ids, [cid("c1"), cid("c2")]);
        assert_eq!(
            conversation(&twin, "c1").await.unwrap().status,
            ConversationStatus::Closed
        );
        assert_eq!(
            conversation(&twin, "c2").await.unwrap().status,
            ConversationStatus::Open
        );
        let result = twin.agree(both!(twin, |s| s
            .restore_ticket(&tid("t1"), &actor("api", None))
            .await));
        assert!(
            matches!(&result, Err(StoreError::Conflict(e)) if e.contains("not in the trash")),
            "{result:?}"
        );
        assert_eq!(
            history(&twin, "t1").await,
            [
                entry(
                    "api",
                    "c2",
                    "owner_changed",
                    json!({"owner_id": {"from": null, "to": "alice"}}),
                    None
                ),
                entry(
                    "api",
                    "t1",
                    "owner_changed",
                    json!({"owner_id": {"from": null, "to": "alice"}}),
                    None
                ),
                entry(
                    "api",
                    "t1",
                    "deleted",
                    json!({
                        "conversations": 2,
                        "conversation_ids": ["c1", "c2"],
                        "queued_replies": 1,
                        "queued_replies_cancelled": false,
                    }),
                    Some("spam")
                ),
                entry(
                    "api",
                    "c1",
                    "restored",
                    json!({"status": {"from": "open", "to": "closed"}}),
                    Some(
                        "the contact has opened another conversation on this channel since: \
                         this one comes back closed"
                    )
                ),
                entry("api", "c2", "restored", json!({"status": "open"}), None),
                entry("api", "t1", "restored", json!({}), None),
            ]
        );

        // Trashed again and past retention: gone for good, with what hung on it.
        twin.agree(both!(twin, |s| s
            .delete_ticket(&tid("t1"), &actor("api", None))
            .await))
            .unwrap();
        let purged = twin
            .agree(both!(twin, |s| s
                .purge_trash(Utc::now() + chrono::Duration::seconds(1))
                .await))
            .unwrap();
        assert_eq!(purged, 1);
        let result = twin.agree(both!(twin, |s| s
            .restore_ticket(&tid("t1"), &actor("api", None))
            .await));
        assert!(matches!(result, Err(StoreError::NotFound("ticket"))));
        let result = twin.agree(both!(twin, |s| s
            .messages(&cid("c1"), &page(10, None))
            .await));
        assert!(matches!(result, Err(StoreError::NotFound("conversation"))));
        for (sql, left) in [
            ("SELECT count(*) FROM tickets WHERE id = 't1'", 0),
            (
                "SELECT count(*) FROM conversations WHERE ticket_id = 't1'",
                0,
            ),
            (
                "SELECT count(*) FROM messages WHERE conversation_id IN ('c1', 'c2')",
                0,
            ),
            ("SELECT count(*) FROM jobs", 0),
            ("SELECT count(*) FROM audit WHERE ticket_id = 't1'", 0),
            // Events older than the cut-off go too.
            ("SELECT count(*) FROM events", 0),
            // Other tickets stay.
            ("SELECT count(*) FROM messages", 1),
            ("SELECT count(*) FROM tickets", 2),
        ] {
            assert_eq!(twin.count(sql, &[]).await, (left, left), "{sql}");
        }
        let purged = twin
            .agree(both!(twin, |s| s
                .purge_trash(Utc::now() + chrono::Duration::seconds(1))
                .await))
            .unwrap();
        assert_eq!(purged, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(pg_tests),
        ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
    )]
    async fn a_contact_reads_with_identifiers_and_updates_owner_and_email() {
        let twin = seeded().await;
        let ana = ContactId::from_stored("ana".into());
        let contact = twin.agree(both!(twin, |s| s.contact(&ana).await)).unwrap();
        assert_eq!(contact.display_name.as_deref(), Some("Ana"));
        assert_eq!(contact.identifiers.len(), 1);
        let updated = twin
            .agree(both!(twin, |s| s
                .update_contact(
                    &ana,
                    ContactUpdate {
                        owner_id: Some(Some("alice".into())),
                        email: Some(Some("ana@example.com".into())),
                    }
                )
                .await))
            .unwrap();
        assert_eq!(
            (updated.owner_id.as_deref(), updated.email.as_deref()),
            (Some("alice"), Some("ana@example.com"))
        );
        // Only what is given changes; `Some(None)` clears.
        let updated = twin
            .agree(both!(twin, |s| s
                .update_contact(
                    &ana,
                    ContactUpdate {
                        owner_id: None,
                        email: Some(None),
                    }
                )
                .await))
            .unwrap();
        assert_eq!(
            (updated.owner_id.as_deref(), updated.email),
            (Some("alice"), None)
        );
        let nobody = ContactId::from_stored("nobody".into());
        let result = twin.agree(both!(twin, |s| s
            .update_contact(&nobody, ContactUpdate::default())
            .await));
        assert!(matches!(result, Err(StoreError::NotFound("contact"))));
    }

    /// The data set of the SQLite store's `analytics_figures_on_a_seeded_data_set`: three
    /// conversations on "chat" answered after 60 s and 180 s by alice and 120 s by bob;
    /// two tickets resolved, after 1 h (owner bob) and 3 h (no owner).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(pg_tests),
        ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
    )]
    async fn analytics_figures_on_a_seeded_data_set() {
        let twin = Twin::new().await;
        let base = 1_800_000_000_000i64;
        for (n, (user, rep)) in [("ana", "alice"), ("bo", "bob"), ("cy", "alice")]
            .into_iter()
            .enumerate()
        {
            let (conversation, ticket) = (format!("c-{user}"), format!("t-{user}"));
            twin.contact(user, None, None).await;
            twin.ticket(&ticket, "new", None, None).await;
            twin.conversation(&conversation, "chat", user, &ticket, "open", None, base)
                .await;
            twin.exec(
                "UPDATE conversations SET created_at = $2 WHERE id = $1",
                &[t(&conversation), i(base)],
            )
            .await;
            twin.message(
                &format!("in-{user}"),
                &conversation,
                "chat",
                "inbound",
                ("contact", user),
                "hi",
                base,
            )
            .await;
            let answered_after = [60_000, 120_000, 180_000][n];
            twin.message(
                &format!("out-{user}"),
                &conversation,
                "chat",
                "outbound",
                ("rep", rep),
                "hello",
                base + answered_after,
            )
            .await;
            let (closed, owner) = match n {
                0 => (Some(base + 3_600_000), Some("bob")),
                1 => (Some(base + 10_800_000), None),
                _ => (None, None),
            };
            twin.exec(
                "UPDATE tickets SET created_at = $2, closed_at = $3, owner_id = $4 WHERE id = $1",
                &[
                    t(&ticket),
                    i(base),
                    super::super::queries::tests::opt_i(closed),
                    super::super::queries::tests::opt(owner),
                ],
            )
            .await;
        }
        // A bot's reply is no response; a trashed conversation counts for nothing.
        twin.message(
            "bot",
            "c-cy",
            "chat",
            "outbound",
            ("bot", "echo"),
            "auto",
            base + 1,
        )
        .await;
        twin.contact("dee", None, None).await;
        twin.ticket("t-dee", "new", None, None).await;
        twin.conversation("c-dee", "chat", "dee", "t-dee", "open", None, base)
            .await;
        twin.exec(
            "UPDATE conversations SET created_at = $1, deleted_at = $1 WHERE id = 'c-dee'",
            &[i(base)],
        )
        .await;
        twin.exec(
            "UPDATE tickets SET deleted_at = $1 WHERE id = 't-dee'",
            &[i(base)],
        )
        .await;
        twin.message(
            "in-dee",
            "c-dee",
            "chat",
            "inbound",
            ("contact", "dee"),
            "hi",
            base,
        )
        .await;

        let from = from_millis(base - 1);
        let to = from_millis(base + 86_400_000);
        let (sqlite, pg) = both!(twin, |s| s.analytics(from, to).await.unwrap());
        // The same rows on both (each list in its own order; the report does not care).
        let sorted = |facts: &crate::desk::analytics::Facts| {
            let mut lines: Vec<String> = Vec::new();
            lines.extend(
                facts
                    .conversations
                    .iter()
                    .map(|f| format!("conversations {f:?}")),
            );
            lines.extend(facts.messages.iter().map(|f| format!("messages {f:?}")));
            lines.extend(facts.first_responses.iter().map(|f| format!("first {f:?}")));
            lines.extend(
                facts
                    .resolutions
                    .iter()
                    .map(|f| format!("resolution {f:?}")),
            );
            lines.extend(facts.replies.iter().map(|f| format!("replies {f:?}")));
            lines.sort();
            lines
        };
        assert_eq!(sorted(&pg), sorted(&sqlite));
        let report = crate::desk::analytics::report(pg);
        assert_eq!(report, crate::desk::analytics::report(sqlite));

        let chat = &report.channels[0];
        assert_eq!(chat.channel_id, "chat");
        assert_eq!(
            (
                chat.conversations,
                chat.messages_inbound,
                chat.messages_outbound
            ),
            (3, 3, 4)
        );
        assert_eq!(chat.first_response.count, 3);
        assert_eq!(chat.first_response.median_s, Some(120.0));
        assert_eq!(chat.first_response.p90_s, Some(180.0));
        assert_eq!(chat.resolution.count, 2);
        assert_eq!(chat.resolution.median_s, Some(3600.0));
        assert_eq!(chat.resolution.p90_s, Some(10800.0));
        let alice = report.reps.iter().find(|r| r.rep_id == "alice").unwrap();
        assert_eq!(alice.replies, 2);
        assert_eq!(alice.first_response.median_s, Some(60.0));
        assert_eq!(alice.first_response.p90_s, Some(180.0));
        let bob = report.reps.iter().find(|r| r.rep_id == "bob").unwrap();
        assert_eq!((bob.replies, bob.first_response.median_s), (1, Some(120.0)));
        assert_eq!(bob.resolution.median_s, Some(3600.0));
        assert!(report.reps.iter().all(|r| r.rep_id != "echo"));

        // Outside the period there is nothing.
        let before = from_millis(base - 10_000_000);
        let (sqlite, pg) = both!(twin, |s| s.analytics(before, from).await.unwrap());
        assert_eq!(sorted(&pg), sorted(&sqlite));
        assert!(crate::desk::analytics::report(pg).channels.is_empty());
    }
}
