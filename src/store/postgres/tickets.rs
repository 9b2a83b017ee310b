//! Tickets, conversations' owner and status, trash, audit trail, contacts and analytics:
//! the steps of `store::sequences::tickets` in PostgreSQL, and its reads.
//!
//! The sequences and their rules are shared with SQLite. What SQLite's single writer gives for free is asked for
//! here: a row that is read and then written is locked first (`FOR UPDATE`), so changes
//! made at once on several replicas apply one after the other and none is lost. A unique
//! index that a racing transaction trips aborts this one as `Contended`, and running it
//! again sees what the other did.

use sqlx::PgConnection;

use super::{events, get, queries};
use crate::desk::inboxes::Scope;
use crate::desk::tickets::{Restored, TicketPlan};
use crate::model::{Contact, ContactId, ConversationId, ConversationStatus, Ticket, TicketId};
use crate::store::sequences::AuditRow;
use crate::store::sequences::tickets::{OwnerFacts, TicketTx};
use crate::store::shared::json;
use crate::store::{AuditEntry, Page, StoreError, TicketFilter};

/// Records one change in the audit trail.
pub(super) async fn audit(c: &mut PgConnection, row: AuditRow<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit (ticket_id, entity, entity_id, action, actor, changes, reason, at,
             actor_type)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(row.ticket)
    .bind(row.entity)
    .bind(row.entity_id)
    .bind(row.action)
    .bind(&row.actor.name)
    .bind(row.changes.to_string())
    .bind(&row.actor.reason)
    .bind(row.at)
    .bind(row.actor.kind.as_str())
    .execute(&mut *c)
    .await?;
    Ok(())
}

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
    let row = (
        get(row, "pipeline")?,
        get(row, "status")?,
        get(row, "priority")?,
        get(row, "owner_id")?,
        get(row, "properties")?,
        get(row, "created_at")?,
        get(row, "closed_at")?,
    );
    Ok(crate::store::views::ticket_from_row(
        id,
        row,
        conversation_ids,
        trashed_at,
    ))
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

impl TicketTx for PgConnection {
    async fn ticket(&mut self, id: &TicketId, lock: bool) -> Result<Ticket, StoreError> {
        load_ticket(self, id, lock).await
    }

    async fn write_ticket(
        &mut self,
        id: &TicketId,
        plan: &TicketPlan,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE tickets SET status = $2, owner_id = $3, properties = $4, updated_at = $5,
                 closed_at = CASE WHEN $6 THEN COALESCE(closed_at, $5) ELSE NULL END,
                 priority = $7
             WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(&plan.status)
        .bind(&plan.owner_id)
        .bind(json(&plan.properties)?)
        .bind(at)
        .bind(plan.closed)
        .bind(&plan.priority)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn move_conversation(
        &mut self,
        id: &ConversationId,
        status: ConversationStatus,
        at: i64,
    ) -> Result<bool, StoreError> {
        let changed = match status {
            ConversationStatus::Closed => sqlx::query(
                "UPDATE conversations SET status = 'closed', closed_at = $2
                 WHERE id = $1 AND status = 'open'",
            )
            .bind(id.as_str())
            .bind(at)
            .execute(&mut *self)
            .await?
            .rows_affected(),
            ConversationStatus::Open => {
                // Asked first, because a failed statement would abort the whole transaction.
                // Should another replica open one in between, the index aborts this
                // transaction as contended and the retry answers with this conflict.
                if thread_taken(self, id.as_str()).await? {
                    return Err(StoreError::Conflict(format!(
                        "conversation {id} cannot reopen: the contact has another open conversation on that channel"
                    )));
                }
                sqlx::query(
                    "UPDATE conversations SET status = 'open', closed_at = NULL
                     WHERE id = $1 AND status = 'closed'",
                )
                .bind(id.as_str())
                .execute(&mut *self)
                .await?
                .rows_affected()
            }
        };
        Ok(changed > 0)
    }

    async fn owner_facts(&mut self, id: &ConversationId) -> Result<OwnerFacts, StoreError> {
        // Locked in the order every change here takes them: the ticket, then the conversation.
        let ticket = TicketTx::ticket_of(self, id).await?.to_string();
        let ticket_owner: Option<String> =
            sqlx::query_scalar("SELECT owner_id FROM tickets WHERE id = $1 FOR UPDATE")
                .bind(&ticket)
                .fetch_one(&mut *self)
                .await?;
        let row = sqlx::query(
            "SELECT ticket_id, owner_id FROM conversations WHERE id = $1 AND deleted_at IS NULL
             FOR UPDATE",
        )
        .bind(id.as_str())
        .fetch_optional(&mut *self)
        .await?
        .ok_or(StoreError::NotFound("conversation"))?;
        if get::<String>(&row, "ticket_id")? != ticket {
            // It joined another ticket in between: run again with that one.
            return Err(StoreError::Contended(
                format!("conversation {id} moved to another ticket").into(),
            ));
        }
        Ok(OwnerFacts {
            ticket,
            owner: get(&row, "owner_id")?,
            ticket_owner,
        })
    }

    async fn set_conversation_owner(
        &mut self,
        id: &ConversationId,
        owner: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE conversations SET owner_id = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(owner)
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn set_ticket_owner(
        &mut self,
        ticket: &str,
        owner: Option<&str>,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE tickets SET owner_id = $2, updated_at = $3 WHERE id = $1")
            .bind(ticket)
            .bind(owner)
            .bind(at)
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn ticket_of(&mut self, conversation: &ConversationId) -> Result<TicketId, StoreError> {
        let ticket: String = sqlx::query_scalar(
            "SELECT ticket_id FROM conversations WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(conversation.as_str())
        .fetch_optional(&mut *self)
        .await?
        .ok_or(StoreError::NotFound("conversation"))?;
        Ok(TicketId::from_stored(ticket))
    }

    async fn trash(
        &mut self,
        id: &TicketId,
        at: i64,
    ) -> Result<(Vec<ConversationId>, u64), StoreError> {
        let changed = sqlx::query(
            "UPDATE tickets SET deleted_at = $2, updated_at = $2
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id.as_str())
        .bind(at)
        .execute(&mut *self)
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
        .bind(at)
        .fetch_all(&mut *self)
        .await?;
        // RETURNING gives no order.
        trashed.sort();
        let queued: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE state = 'pending' AND kind = $2
               AND ordering_key IN (SELECT id FROM conversations WHERE ticket_id = $1)",
        )
        .bind(id.as_str())
        .bind(crate::store::JOB_DELIVER)
        .fetch_one(&mut *self)
        .await?;
        let ids = trashed
            .into_iter()
            .map(|(_, c)| ConversationId::from_stored(c));
        Ok((ids.collect(), queued as u64))
    }

    async fn untrash(&mut self, id: &TicketId, at: i64) -> Result<Option<Vec<String>>, StoreError> {
        let deleted_at: Option<i64> =
            sqlx::query_scalar("SELECT deleted_at FROM tickets WHERE id = $1 FOR UPDATE")
                .bind(id.as_str())
                .fetch_optional(&mut *self)
                .await?
                .ok_or(StoreError::NotFound("ticket"))?;
        let Some(deleted_at) = deleted_at else {
            return Ok(None);
        };
        sqlx::query("UPDATE tickets SET deleted_at = NULL, updated_at = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(at)
            .execute(&mut *self)
            .await?;
        let conversations = sqlx::query_scalar(
            "SELECT id FROM conversations WHERE ticket_id = $1 AND deleted_at = $2 ORDER BY seq",
        )
        .bind(id.as_str())
        .bind(deleted_at)
        .fetch_all(&mut *self)
        .await?;
        Ok(Some(conversations))
    }

    async fn untrash_conversation(
        &mut self,
        id: &str,
        at: i64,
    ) -> Result<(bool, Restored), StoreError> {
        let open: bool =
            sqlx::query_scalar("SELECT status = 'open' FROM conversations WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *self)
                .await?;
        // Asked first, because a failed statement would abort the whole transaction.
        let taken = open && thread_taken(self, id).await?;
        let outcome = Restored::of(open, taken);
        match outcome {
            // The contact has opened another conversation meanwhile: one open per thread.
            Restored::Closed => sqlx::query(
                "UPDATE conversations SET deleted_at = NULL, status = 'closed',
                     closed_at = COALESCE(closed_at, $2)
                 WHERE id = $1",
            )
            .bind(id)
            .bind(at),
            Restored::AsItWas => {
                sqlx::query("UPDATE conversations SET deleted_at = NULL WHERE id = $1").bind(id)
            }
        }
        .execute(&mut *self)
        .await?;
        Ok((open, outcome))
    }

    async fn contact(&mut self, id: &ContactId, lock: bool) -> Result<Contact, StoreError> {
        load_contact(self, id, lock).await
    }

    async fn write_contact(
        &mut self,
        id: &ContactId,
        owner: Option<&str>,
        email: Option<&str>,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE contacts SET owner_id = $2, email = $3, updated_at = $4 WHERE id = $1")
            .bind(id.as_str())
            .bind(owner)
            .bind(email)
            .bind(at)
            .execute(&mut *self)
            .await?;
        Ok(())
    }
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
    let rows: Vec<crate::store::views::AuditRow> = sqlx::query_as(
        "SELECT at, actor, entity, entity_id, action, changes, reason, actor_type FROM audit
         WHERE ticket_id = $1 ORDER BY seq",
    )
    .bind(id.as_str())
    .fetch_all(&mut *c)
    .await?;
    Ok(rows.into_iter().map(AuditEntry::from_row).collect())
}

/// A contact with its identifiers.
pub async fn contact(c: &mut PgConnection, id: &ContactId) -> Result<Contact, StoreError> {
    load_contact(c, id, false).await
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
