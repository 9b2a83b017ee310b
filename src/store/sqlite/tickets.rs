//! Tickets, their conversations and contacts as reps change them: the steps of
//! `store::sequences::tickets` in SQLite, the audit trail, trash, search and analytics.
//! Runs on the writer thread; the rules come from `desk`.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::{OnConstraint, WriterTx, events, queries};
use crate::desk::inboxes::Scope;
use crate::desk::tickets::{Restored, TicketPlan};
use crate::model::{Contact, ContactId, ConversationId, ConversationStatus, Ticket, TicketId};
use crate::store::sequences::AuditRow;
use crate::store::sequences::tickets::{OwnerFacts, TicketTx};
use crate::store::shared::json;
use crate::store::{AuditEntry, Page, StoreError, TicketFilter};

/// Records one change in the audit trail.
pub(super) fn audit(conn: &Connection, row: AuditRow<'_>) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO audit (ticket_id, entity, entity_id, action, actor, changes, reason, at,
             actor_type)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        row.ticket,
        row.entity,
        row.entity_id,
        row.action,
        row.actor.name,
        row.changes.to_string(),
        row.actor.reason,
        row.at,
        row.actor.kind.as_str()
    ])?;
    Ok(())
}

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

impl TicketTx for WriterTx<'_> {
    async fn ticket(&mut self, id: &TicketId, _lock: bool) -> Result<Ticket, StoreError> {
        // The writer thread holds the only write lock there is.
        ticket(self.0, id)
    }

    async fn write_ticket(
        &mut self,
        id: &TicketId,
        plan: &TicketPlan,
        at: i64,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE tickets SET status = ?2, owner_id = ?3, properties = ?4, updated_at = ?5,
                     closed_at = CASE WHEN ?6 THEN COALESCE(closed_at, ?5) ELSE NULL END,
                     priority = ?7
                 WHERE id = ?1",
            )?
            .execute(params![
                id.as_str(),
                plan.status,
                plan.owner_id,
                json(&plan.properties)?,
                at,
                plan.closed,
                plan.priority
            ])?;
        Ok(())
    }

    async fn move_conversation(
        &mut self,
        id: &ConversationId,
        status: ConversationStatus,
        at: i64,
    ) -> Result<bool, StoreError> {
        let changed = match status {
            ConversationStatus::Closed => self.0
                .prepare_cached("UPDATE conversations SET status = 'closed', closed_at = ?2 WHERE id = ?1 AND status = 'open'")?
                .execute(params![id.as_str(), at])?,
            ConversationStatus::Open => self.0
                .prepare_cached("UPDATE conversations SET status = 'open', closed_at = NULL WHERE id = ?1 AND status = 'closed'")?
                .execute([id.as_str()])
                .on_constraint(|| StoreError::Conflict(format!(
                    "conversation {id} cannot reopen: the contact has another open conversation on that channel"
                )))?,
        };
        Ok(changed > 0)
    }

    async fn owner_facts(&mut self, id: &ConversationId) -> Result<OwnerFacts, StoreError> {
        self.0
            .prepare_cached(
                "SELECT c.ticket_id, c.owner_id, t.owner_id
                 FROM conversations c JOIN tickets t ON t.id = c.ticket_id
                 WHERE c.id = ?1 AND c.deleted_at IS NULL",
            )?
            .query_row([id.as_str()], |r| {
                Ok(OwnerFacts {
                    ticket: r.get(0)?,
                    owner: r.get(1)?,
                    ticket_owner: r.get(2)?,
                })
            })
            .optional()?
            .ok_or(StoreError::NotFound("conversation"))
    }

    async fn set_conversation_owner(
        &mut self,
        id: &ConversationId,
        owner: Option<&str>,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached("UPDATE conversations SET owner_id = ?2 WHERE id = ?1")?
            .execute(params![id.as_str(), owner])?;
        Ok(())
    }

    async fn set_ticket_owner(
        &mut self,
        ticket: &str,
        owner: Option<&str>,
        at: i64,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached("UPDATE tickets SET owner_id = ?2, updated_at = ?3 WHERE id = ?1")?
            .execute(params![ticket, owner, at])?;
        Ok(())
    }

    async fn ticket_of(&mut self, conversation: &ConversationId) -> Result<TicketId, StoreError> {
        let ticket: String = self
            .0
            .prepare_cached(
                "SELECT ticket_id FROM conversations WHERE id = ?1 AND deleted_at IS NULL",
            )?
            .query_row([conversation.as_str()], |r| r.get(0))
            .optional()?
            .ok_or(StoreError::NotFound("conversation"))?;
        Ok(TicketId::from_stored(ticket))
    }

    async fn trash(
        &mut self,
        id: &TicketId,
        at: i64,
    ) -> Result<(Vec<ConversationId>, u64), StoreError> {
        let conn = self.0;
        let changed = conn
            .prepare_cached("UPDATE tickets SET deleted_at = ?2, updated_at = ?2 WHERE id = ?1 AND deleted_at IS NULL")?
            .execute(params![id.as_str(), at])?;
        if changed == 0 {
            return Err(StoreError::NotFound("ticket"));
        }
        let mut statement = conn.prepare_cached(
            "UPDATE conversations SET deleted_at = ?2 WHERE ticket_id = ?1 AND deleted_at IS NULL
             RETURNING seq, id",
        )?;
        let mut trashed: Vec<(i64, String)> = statement
            .query_map(params![id.as_str(), at], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        // RETURNING gives no order.
        trashed.sort();
        let queued: i64 = conn
            .prepare_cached(
                "SELECT count(*) FROM jobs WHERE state = 'pending' AND kind = ?2
                   AND ordering_key IN (SELECT id FROM conversations WHERE ticket_id = ?1)",
            )?
            .query_row(params![id.as_str(), crate::store::JOB_DELIVER], |r| {
                r.get(0)
            })?;
        let ids = trashed
            .into_iter()
            .map(|(_, c)| ConversationId::from_stored(c));
        Ok((ids.collect(), queued as u64))
    }

    async fn untrash(&mut self, id: &TicketId, at: i64) -> Result<Option<Vec<String>>, StoreError> {
        let conn = self.0;
        let deleted_at: Option<i64> = conn
            .prepare_cached("SELECT deleted_at FROM tickets WHERE id = ?1")?
            .query_row([id.as_str()], |r| r.get(0))
            .optional()?
            .ok_or(StoreError::NotFound("ticket"))?;
        let Some(deleted_at) = deleted_at else {
            return Ok(None);
        };
        conn.prepare_cached("UPDATE tickets SET deleted_at = NULL, updated_at = ?2 WHERE id = ?1")?
            .execute(params![id.as_str(), at])?;
        let mut statement = conn.prepare_cached(
            "SELECT id FROM conversations WHERE ticket_id = ?1 AND deleted_at = ?2 ORDER BY seq",
        )?;
        let conversations = statement
            .query_map(params![id.as_str(), deleted_at], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(Some(conversations))
    }

    async fn untrash_conversation(
        &mut self,
        id: &str,
        at: i64,
    ) -> Result<(bool, Restored), StoreError> {
        let conn = self.0;
        let open: bool = conn
            .prepare_cached("SELECT status = 'open' FROM conversations WHERE id = ?1")?
            .query_row([id], |r| r.get(0))?;
        let restored = conn
            .prepare_cached("UPDATE conversations SET deleted_at = NULL WHERE id = ?1")?
            .execute([id]);
        match restored {
            Ok(_) => Ok((open, Restored::AsItWas)),
            // The contact has opened another conversation meanwhile: one open per thread.
            Err(e) if super::is_constraint(&e) => {
                conn.prepare_cached(
                    "UPDATE conversations SET deleted_at = NULL, status = 'closed',
                         closed_at = COALESCE(closed_at, ?2)
                     WHERE id = ?1",
                )?
                .execute(params![id, at])?;
                Ok((open, Restored::Closed))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn contact(&mut self, id: &ContactId, _lock: bool) -> Result<Contact, StoreError> {
        contact(self.0, id)
    }

    async fn write_contact(
        &mut self,
        id: &ContactId,
        owner: Option<&str>,
        email: Option<&str>,
        at: i64,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE contacts SET owner_id = ?2, email = ?3, updated_at = ?4 WHERE id = ?1",
            )?
            .execute(params![id.as_str(), owner, email, at])?;
        Ok(())
    }
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
        // A message still queued for the index is dropped from the queue by the
        // indexer, which finds it gone.
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
