//! Tickets, their conversations and contacts as reps change them: status rules, owners,
//! trash, and the audit trail. Runs on the writer thread; the rules come from `desk`.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde_json::{Value, json};

use super::{OnConstraint, events, queries};
use crate::desk::inboxes::Scope;
use crate::desk::tickets::{self, ConversationEffect, Restored};
use crate::model::{Contact, ContactId, ConversationId, ConversationStatus, Ticket, TicketId};
use crate::store::shared::json;
use crate::store::{
    Actor, AuditEntry, ContactUpdate, ConversationUpdate, Page, StoreError, TicketChange,
    TicketFilter, Trashed,
};

/// Records one change in the audit trail.
#[allow(clippy::too_many_arguments)]
pub(super) fn audit(
    conn: &Connection,
    ticket: &str,
    entity: &str,
    entity_id: &str,
    action: &str,
    actor: &Actor,
    changes: Value,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO audit (ticket_id, entity, entity_id, action, actor, changes, reason, at,
             actor_type)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        ticket,
        entity,
        entity_id,
        action,
        actor.name,
        changes.to_string(),
        actor.reason,
        now,
        actor.kind.as_str()
    ])?;
    Ok(())
}

pub(super) use crate::desk::tickets::from_to;

/// A ticket that is not in the trash, with its conversations (oldest first).
pub fn ticket(conn: &Connection, id: &TicketId) -> Result<Ticket, StoreError> {
    load_ticket(conn, id, false)
}

/// A ticket, live or (with `trashed`) in the trash, with the conversations that share
/// its state: the live ones, or those trashed with it.
pub(super) fn load_ticket(
    conn: &Connection,
    id: &TicketId,
    trashed: bool,
) -> Result<Ticket, StoreError> {
    let sql = if trashed {
        "SELECT pipeline, status, priority, owner_id, properties, created_at, closed_at, deleted_at
         FROM tickets WHERE id = ?1 AND deleted_at IS NOT NULL"
    } else {
        "SELECT pipeline, status, priority, owner_id, properties, created_at, closed_at, deleted_at
         FROM tickets WHERE id = ?1 AND deleted_at IS NULL"
    };
    let (row, deleted_at) = conn
        .prepare_cached(sql)?
        .query_row([id.as_str()], |r| {
            Ok((
                (
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ),
                r.get::<_, Option<i64>>(7)?,
            ))
        })
        .optional()?
        .ok_or(StoreError::NotFound("ticket"))?;
    let mut statement = conn.prepare_cached(
        "SELECT id FROM conversations WHERE ticket_id = ?1 AND deleted_at IS ?2 ORDER BY seq",
    )?;
    let conversation_ids = statement
        .query_map(params![id.as_str(), deleted_at], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    Ok(crate::store::views::ticket_from_row(
        id,
        row,
        conversation_ids,
        deleted_at,
    ))
}

/// Applies a ticket change inside the caller's transaction: checks the status against
/// its pipeline, then moves the ticket's conversations as the lifecycle rules say.
pub fn apply_ticket_change(
    conn: &Connection,
    id: &TicketId,
    change: &TicketChange,
    actor: &Actor,
    now: i64,
) -> Result<Ticket, StoreError> {
    let current = ticket(conn, id)?;
    let plan = tickets::plan_change(&current, &change.pipelines, change.as_desk())
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    conn.prepare_cached(
        "UPDATE tickets SET status = ?2, owner_id = ?3, properties = ?4, updated_at = ?5,
             closed_at = CASE WHEN ?6 THEN COALESCE(closed_at, ?5) ELSE NULL END, priority = ?7
         WHERE id = ?1",
    )?
    .execute(params![
        id.as_str(),
        plan.status,
        plan.owner_id,
        json(&plan.properties)?,
        now,
        plan.closed,
        plan.priority
    ])?;
    if let Some(payload) = &plan.status_event {
        for conversation in &current.conversation_ids {
            events::emit(
                conn,
                "ticket.status_changed",
                conversation.as_str(),
                payload.clone(),
                now,
            )?;
        }
    }
    for record in plan.audit {
        audit(
            conn,
            id.as_str(),
            "ticket",
            id.as_str(),
            record.action,
            actor,
            record.changes,
            now,
        )?;
    }
    match plan.conversations {
        ConversationEffect::CloseAll => {
            for conversation in &current.conversation_ids {
                set_conversation_status(
                    conn,
                    id.as_str(),
                    conversation,
                    ConversationStatus::Closed,
                    actor,
                    now,
                )?;
            }
        }
        ConversationEffect::Reopen(conversation) => {
            set_conversation_status(
                conn,
                id.as_str(),
                &conversation,
                ConversationStatus::Open,
                actor,
                now,
            )?;
        }
        ConversationEffect::Nothing => {}
    }
    ticket(conn, id)
}

fn set_conversation_status(
    conn: &Connection,
    ticket: &str,
    id: &ConversationId,
    status: ConversationStatus,
    actor: &Actor,
    now: i64,
) -> Result<(), StoreError> {
    let changed = match status {
        ConversationStatus::Closed => conn
            .prepare_cached("UPDATE conversations SET status = 'closed', closed_at = ?2 WHERE id = ?1 AND status = 'open'")?
            .execute(params![id.as_str(), now])?,
        ConversationStatus::Open => conn
            .prepare_cached("UPDATE conversations SET status = 'open', closed_at = NULL WHERE id = ?1 AND status = 'closed'")?
            .execute([id.as_str()])
            .on_constraint(|| StoreError::Conflict(format!(
                "conversation {id} cannot reopen: the contact has another open conversation on that channel"
            )))?,
    };
    if changed > 0 {
        let (payload, record) = tickets::conversation_status_record(status);
        events::emit(
            conn,
            "conversation.status_changed",
            id.as_str(),
            payload,
            now,
        )?;
        audit(
            conn,
            ticket,
            "conversation",
            id.as_str(),
            record.action,
            actor,
            record.changes,
            now,
        )?;
    }
    Ok(())
}

pub fn update_conversation(
    conn: &Connection,
    id: &ConversationId,
    update: &ConversationUpdate,
    actor: &Actor,
    now: i64,
) -> Result<(), StoreError> {
    let (ticket, owner): (String, Option<String>) = conn
        .prepare_cached(
            "SELECT ticket_id, owner_id FROM conversations WHERE id = ?1 AND deleted_at IS NULL",
        )?
        .query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or(StoreError::NotFound("conversation"))?;
    if let Some(requested) = &update.owner_id {
        let ticket_owner: Option<String> = conn
            .prepare_cached("SELECT owner_id FROM tickets WHERE id = ?1")?
            .query_row([&ticket], |r| r.get(0))?;
        let assignment = tickets::plan_assignment(
            owner.as_deref(),
            ticket_owner.as_deref(),
            requested.as_deref(),
            &actor.name,
        );
        if let Some(assignment) = assignment {
            conn.prepare_cached("UPDATE conversations SET owner_id = ?2 WHERE id = ?1")?
                .execute(params![id.as_str(), assignment.owner_id])?;
            events::emit(
                conn,
                "conversation.assigned",
                id.as_str(),
                assignment.event,
                now,
            )?;
            let record = assignment.audit;
            audit(
                conn,
                &ticket,
                "conversation",
                id.as_str(),
                record.action,
                actor,
                record.changes,
                now,
            )?;
            if let Some(record) = assignment.ticket {
                conn.prepare_cached(
                    "UPDATE tickets SET owner_id = ?2, updated_at = ?3 WHERE id = ?1",
                )?
                .execute(params![ticket, assignment.owner_id, now])?;
                audit(
                    conn,
                    &ticket,
                    "ticket",
                    &ticket,
                    record.action,
                    actor,
                    record.changes,
                    now,
                )?;
            }
        }
    }
    if let Some(status) = update.status {
        // Closing a conversation closes only it: its ticket stays as it is.
        set_conversation_status(conn, &ticket, id, status, actor, now)?;
    }
    Ok(())
}

pub fn delete_conversation(
    conn: &Connection,
    id: &ConversationId,
    actor: &Actor,
    now: i64,
) -> Result<Trashed, StoreError> {
    let ticket: String = conn
        .prepare_cached("SELECT ticket_id FROM conversations WHERE id = ?1 AND deleted_at IS NULL")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::NotFound("conversation"))?;
    delete_ticket(conn, &TicketId::from_stored(ticket), actor, now)
}

pub fn delete_ticket(
    conn: &Connection,
    id: &TicketId,
    actor: &Actor,
    now: i64,
) -> Result<Trashed, StoreError> {
    let changed = conn
        .prepare_cached("UPDATE tickets SET deleted_at = ?2, updated_at = ?2 WHERE id = ?1 AND deleted_at IS NULL")?
        .execute(params![id.as_str(), now])?;
    if changed == 0 {
        return Err(StoreError::NotFound("ticket"));
    }
    let mut statement = conn.prepare_cached(
        "UPDATE conversations SET deleted_at = ?2 WHERE ticket_id = ?1 AND deleted_at IS NULL
         RETURNING seq, id",
    )?;
    let mut trashed: Vec<(i64, String)> = statement
        .query_map(params![id.as_str(), now], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    trashed.sort();
    let queued_replies: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM jobs WHERE state = 'pending' AND kind = ?2
               AND ordering_key IN (SELECT id FROM conversations WHERE ticket_id = ?1)",
        )?
        .query_row(params![id.as_str(), crate::store::JOB_DELIVER], |r| {
            r.get(0)
        })?;
    let receipt = Trashed {
        ticket_id: id.clone(),
        conversation_ids: trashed
            .into_iter()
            .map(|(_, c)| ConversationId::from_stored(c))
            .collect(),
        queued_replies: queued_replies as u64,
    };
    audit(
        conn,
        id.as_str(),
        "ticket",
        id.as_str(),
        "deleted",
        actor,
        tickets::trash_record(&receipt.conversation_ids, receipt.queued_replies),
        now,
    )?;
    Ok(receipt)
}

pub fn restore_ticket(
    conn: &Connection,
    id: &TicketId,
    actor: &Actor,
    now: i64,
) -> Result<Ticket, StoreError> {
    let deleted_at: Option<i64> = conn
        .prepare_cached("SELECT deleted_at FROM tickets WHERE id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::NotFound("ticket"))?;
    let Some(deleted_at) = deleted_at else {
        return Err(StoreError::Conflict(format!(
            "ticket {id} is not in the trash"
        )));
    };
    conn.prepare_cached("UPDATE tickets SET deleted_at = NULL, updated_at = ?2 WHERE id = ?1")?
        .execute(params![id.as_str(), now])?;
    let mut statement = conn
        .prepare_cached("SELECT id FROM conversations WHERE ticket_id = ?1 AND deleted_at = ?2")?;
    let conversations: Vec<String> = statement
        .query_map(params![id.as_str(), deleted_at], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for conversation in conversations {
        let status: String = conn
            .prepare_cached("SELECT status FROM conversations WHERE id = ?1")?
            .query_row([&conversation], |r| r.get(0))?;
        let restored = conn
            .prepare_cached("UPDATE conversations SET deleted_at = NULL WHERE id = ?1")?
            .execute([&conversation]);
        let outcome = match restored {
            Ok(_) => Restored::AsItWas,
            // The contact has opened another conversation meanwhile: one open per thread.
            Err(e) if super::is_constraint(&e) => {
                conn.prepare_cached(
                    "UPDATE conversations SET deleted_at = NULL, status = 'closed', closed_at = COALESCE(closed_at, ?2)
                     WHERE id = ?1",
                )?
                .execute(params![conversation, now])?;
                Restored::Closed
            }
            Err(e) => return Err(e.into()),
        };
        let (changes, reason) = outcome.record(&status);
        let actor = Actor {
            reason: reason.or_else(|| actor.reason.clone()),
            ..actor.clone()
        };
        audit(
            conn,
            id.as_str(),
            "conversation",
            &conversation,
            "restored",
            &actor,
            changes,
            now,
        )?;
    }
    audit(
        conn,
        id.as_str(),
        "ticket",
        id.as_str(),
        "restored",
        actor,
        json!({}),
        now,
    )?;
    ticket(conn, id)
}

/// Tickets, the newest first: the live ones, or those in the trash. Seen through a scope
/// or a channel, a ticket is listed when one of its conversations (live, or trashed with
/// it) is on an allowed channel.
pub fn tickets(
    conn: &Connection,
    filter: &TicketFilter,
    before: i64,
    limit: u32,
) -> Result<Page<Ticket>, StoreError> {
    let mut sql = String::from("SELECT t.id, t.seq FROM tickets t WHERE ");
    sql += if filter.trashed {
        "t.deleted_at IS NOT NULL"
    } else {
        "t.deleted_at IS NULL"
    };
    let mut args: Vec<SqlValue> = Vec::new();
    if filter.channel.is_some() || filter.scope != Scope::All {
        sql += " AND EXISTS (SELECT 1 FROM conversations c WHERE c.ticket_id = t.id
                     AND c.deleted_at IS t.deleted_at";
        super::queries::push_channels(&mut sql, &mut args, filter.channel.as_ref(), &filter.scope)?;
        sql += ")";
    }
    if let Some(status) = &filter.status {
        args.push(SqlValue::Text(status.clone()));
        sql += &format!(" AND t.status = ?{}", args.len());
    }
    if let Some(pipeline) = &filter.pipeline {
        args.push(SqlValue::Text(pipeline.clone()));
        sql += &format!(" AND t.pipeline = ?{}", args.len());
    }
    match filter.owner.as_deref() {
        Some("none") => sql += " AND t.owner_id IS NULL",
        Some(owner) => {
            args.push(SqlValue::Text(owner.into()));
            sql += &format!(" AND t.owner_id = ?{}", args.len());
        }
        None => {}
    }
    if let Some(from) = filter.from {
        args.push(SqlValue::Integer(from.timestamp_millis()));
        sql += &format!(" AND t.updated_at >= ?{}", args.len());
    }
    if let Some(to) = filter.to {
        args.push(SqlValue::Integer(to.timestamp_millis()));
        sql += &format!(" AND t.updated_at < ?{}", args.len());
    }
    if before > 0 {
        args.push(SqlValue::Integer(before));
        sql += &format!(" AND t.seq < ?{}", args.len());
    }
    args.push(SqlValue::Integer(i64::from(limit) + 1));
    sql += &format!(" ORDER BY t.seq DESC LIMIT ?{}", args.len());
    let rows: Vec<(String, i64)> = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let more = rows.len() > limit as usize;
    let mut items = Vec::with_capacity(rows.len().min(limit as usize));
    let mut last = None;
    for (id, seq) in rows.into_iter().take(limit as usize) {
        items.push(load_ticket(
            conn,
            &TicketId::from_stored(id),
            filter.trashed,
        )?);
        last = Some(seq);
    }
    Ok(Page {
        items,
        next_cursor: last.filter(|_| more).map(|seq| seq.to_string()),
    })
}

pub fn purge_trash(conn: &Connection, before: i64) -> Result<u64, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id FROM tickets WHERE deleted_at IS NOT NULL AND deleted_at < ?1",
    )?;
    let tickets: Vec<String> = statement
        .query_map([before], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for ticket in &tickets {
        conn.prepare_cached(
            "DELETE FROM message_text WHERE rowid IN (
                 SELECT m.seq FROM messages m JOIN conversations c ON c.id = m.conversation_id
                 WHERE c.ticket_id = ?1)",
        )?
        .execute([ticket])?;
        conn.prepare_cached(
            "DELETE FROM messages WHERE conversation_id IN (SELECT id FROM conversations WHERE ticket_id = ?1)",
        )?
        .execute([ticket])?;
        conn.prepare_cached(
            "DELETE FROM jobs WHERE ordering_key IN (SELECT id FROM conversations WHERE ticket_id = ?1)",
        )?
        .execute([ticket])?;
        conn.prepare_cached(
            "DELETE FROM conversation_reads WHERE conversation_id IN (SELECT id FROM conversations WHERE ticket_id = ?1)",
        )?
        .execute([ticket])?;
        conn.prepare_cached("DELETE FROM conversations WHERE ticket_id = ?1")?
            .execute([ticket])?;
        conn.prepare_cached("DELETE FROM audit WHERE ticket_id = ?1")?
            .execute([ticket])?;
        conn.prepare_cached("DELETE FROM tickets WHERE id = ?1")?
            .execute([ticket])?;
    }
    events::purge(conn, before)?;
    Ok(tickets.len() as u64)
}

pub fn history(conn: &Connection, id: &TicketId) -> Result<Vec<AuditEntry>, StoreError> {
    let exists: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM tickets WHERE id = ?1 AND deleted_at IS NULL")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()?;
    if exists.is_none() {
        return Err(StoreError::NotFound("ticket"));
    }
    let mut statement = conn.prepare_cached(
        "SELECT at, actor, entity, entity_id, action, changes, reason, actor_type FROM audit
         WHERE ticket_id = ?1 ORDER BY seq",
    )?;
    let rows = statement.query_map([id.as_str()], |r| {
        Ok(AuditEntry::from_row((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
        )))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn contact(conn: &Connection, id: &ContactId) -> Result<Contact, StoreError> {
    let (display_name, email, owner_id, merged_into) = conn
        .prepare_cached(
            "SELECT display_name, email, owner_id, merged_into FROM contacts WHERE id = ?1",
        )?
        .query_row([id.as_str()], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })
        .optional()?
        .ok_or(StoreError::NotFound("contact"))?;
    if let Some(into) = merged_into {
        return Err(StoreError::Merged(ContactId::from_stored(into)));
    }
    Ok(Contact {
        id: id.clone(),
        display_name,
        email,
        owner_id,
        identifiers: queries::contact_identifiers(conn, id.as_str())?,
    })
}

pub fn update_contact(
    conn: &Connection,
    id: &ContactId,
    update: &ContactUpdate,
    now: i64,
) -> Result<Contact, StoreError> {
    let current = contact(conn, id)?;
    let owner = update.owner_id.clone().unwrap_or(current.owner_id);
    let email = update.email.clone().unwrap_or(current.email);
    conn.prepare_cached(
        "UPDATE contacts SET owner_id = ?2, email = ?3, updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![id.as_str(), owner, email, now])?;
    contact(conn, id)
}

/// Indexes what a message says for full-text search (`rowid` = the message's seq).
pub fn index_text(
    conn: &Connection,
    seq: i64,
    parts: &[crate::model::Part],
) -> Result<(), StoreError> {
    let text: Vec<&str> = parts.iter().filter_map(|p| p.text()).collect();
    conn.prepare_cached("DELETE FROM message_text WHERE rowid = ?1")?
        .execute([seq])?;
    if !text.is_empty() {
        conn.prepare_cached("INSERT INTO message_text (rowid, body) VALUES (?1, ?2)")?
            .execute(params![seq, text.join(" ")])?;
    }
    Ok(())
}

/// Turns what a rep typed into an FTS5 query: every word must appear (as a prefix for the
/// last one, unless it is a single character), and nothing typed is read as FTS syntax.
pub fn fts_query(q: &str) -> Option<String> {
    let typed: Vec<&str> = q
        // FTS5 reads a NUL as the end of the query (a syntax error: 500), and it is no
        // part of a word anyway; PostgreSQL's search splits there too.
        .split(|ch: char| ch.is_whitespace() || ch == '\0')
        .filter(|w| !w.is_empty())
        .collect();
    let words: Vec<String> = typed
        .iter()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    let (last, rest) = words.split_last()?;
    let mut query = rest.join(" ");
    if !query.is_empty() {
        query.push(' ');
    }
    query.push_str(last);
    if crate::desk::search::searched_as_prefix(typed.last()?) {
        query.push('*');
    }
    Some(query)
}

/// The raw facts of the analytics report for `[from, to)` (unix ms).
pub fn analytics(
    conn: &Connection,
    from: i64,
    to: i64,
) -> Result<crate::desk::analytics::Facts, StoreError> {
    let mut facts = crate::desk::analytics::Facts::default();
    let mut statement = conn.prepare_cached(
        "SELECT channel_id, count(*) FROM conversations
         WHERE created_at >= ?1 AND created_at < ?2 AND deleted_at IS NULL GROUP BY channel_id",
    )?;
    facts.conversations = statement
        .query_map(params![from, to], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<Result<_, _>>()?;
    let mut statement = conn.prepare_cached(
        "SELECT m.channel_id, count(*) FILTER (WHERE m.direction = 'inbound'),
                count(*) FILTER (WHERE m.direction = 'outbound')
         FROM messages m JOIN conversations c ON c.id = m.conversation_id
         WHERE m.created_at >= ?1 AND m.created_at < ?2 AND c.deleted_at IS NULL GROUP BY m.channel_id",
    )?;
    facts.messages = statement
        .query_map(params![from, to], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        })?
        .collect::<Result<_, _>>()?;
    // First response: from a conversation's first inbound message to its first rep reply.
    let mut statement = conn.prepare_cached(
        "SELECT c.channel_id, CASE WHEN r.sender_type = 'rep' THEN r.sender_id END,
                (r.created_at - i.first_in) / 1000.0
         FROM conversations c
         JOIN (SELECT conversation_id, MIN(created_at) AS first_in FROM messages
               WHERE direction = 'inbound' GROUP BY conversation_id) i ON i.conversation_id = c.id
         JOIN messages r ON r.seq = (SELECT MIN(seq) FROM messages
                                     WHERE conversation_id = c.id AND direction = 'outbound'
                                       AND sender_type IN ('rep', 'token'))
         WHERE c.created_at >= ?1 AND c.created_at < ?2 AND c.deleted_at IS NULL",
    )?;
    facts.first_responses = statement
        .query_map(params![from, to], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    // Resolution: tickets closed in the period, from creation to close; the channel is the
    // one of the ticket's first conversation.
    let mut statement = conn.prepare_cached(
        "SELECT (SELECT channel_id FROM conversations WHERE ticket_id = t.id ORDER BY seq LIMIT 1),
                t.owner_id, (t.closed_at - t.created_at) / 1000.0
         FROM tickets t
         WHERE t.closed_at >= ?1 AND t.closed_at < ?2 AND t.deleted_at IS NULL",
    )?;
    facts.resolutions = statement
        .query_map(params![from, to], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                r.get(1)?,
                r.get(2)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut statement = conn.prepare_cached(
        "SELECT channel_id, sender_id, count(*) FROM messages
         WHERE direction = 'outbound' AND sender_type = 'rep' AND created_at >= ?1 AND created_at < ?2
         GROUP BY channel_id, sender_id",
    )?;
    facts.replies = statement
        .query_map(params![from, to], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
        })?
        .collect::<Result<_, _>>()?;
    Ok(facts)
}
