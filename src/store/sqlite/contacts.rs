//! Contacts on SQLite: the steps of creating and merging them (the sequences are
//! `store::sequences::contacts`), their history, and the open/unassigned counts inboxes
//! show.

use rusqlite::{Connection, params};
use serde_json::Value;

use super::{OnConstraint, WriterTx, tickets};
use crate::model::{Contact, ContactId, from_millis};
use crate::store::sequences::contacts::{Absorbed, ContactTx};
use crate::store::{Actor, AuditEntry, ChannelCounts, StoreError};

impl ContactTx for WriterTx<'_> {
    async fn record_contact(
        &mut self,
        contact: &str,
        action: &str,
        actor: &Actor,
        changes: Value,
        at: i64,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO contact_audit (contact_id, action, actor, changes, at, actor_type)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                contact,
                action,
                actor.name,
                changes.to_string(),
                at,
                actor.kind.as_str()
            ])?;
        Ok(())
    }

    async fn hold_pair(&mut self, _: &ContactId, _: &ContactId) -> Result<(), StoreError> {
        // The writer thread is the only writer: both rows are held already.
        Ok(())
    }

    async fn conversations_to_move(
        &mut self,
        _: &ContactId,
        from: &ContactId,
    ) -> Result<Vec<Absorbed>, StoreError> {
        // A clash of open per-contact threads shows as `move_to`'s constraint violation.
        let mut statement = self.0.prepare_cached(
            "SELECT id, ticket_id, deleted_at IS NULL FROM conversations WHERE contact_id = ?1
             ORDER BY seq",
        )?;
        let rows =
            statement.query_map([from.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    async fn move_to(&mut self, into: &ContactId, from: &ContactId) -> Result<(), StoreError> {
        let (into, from) = (into.as_str(), from.as_str());
        self.0
            .prepare_cached("UPDATE contact_identifiers SET contact_id = ?1 WHERE contact_id = ?2")?
            .execute(params![into, from])?;
        self.0
            .prepare_cached(
                "UPDATE conversations SET contact_id = ?1,
                     thread_key = CASE WHEN thread_key = 'contact:' || ?2 THEN 'contact:' || ?1
                                       ELSE thread_key END
                 WHERE contact_id = ?2",
            )?
            .execute(params![into, from])
            .on_constraint(|| {
                StoreError::Conflict(
                    "both contacts have an open conversation in the same thread".into(),
                )
            })?;
        Ok(())
    }

    async fn reattribute(
        &mut self,
        conversation: &str,
        into: &ContactId,
        from: &ContactId,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE messages SET sender_id = ?2
                 WHERE conversation_id = ?1 AND sender_type = 'contact' AND sender_id = ?3",
            )?
            .execute(params![conversation, into.as_str(), from.as_str()])?;
        Ok(())
    }

    async fn absorb(
        &mut self,
        into: &ContactId,
        absorbed: &Contact,
        at: i64,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE contacts SET display_name = COALESCE(display_name, ?2),
                     email = COALESCE(email, ?3), owner_id = COALESCE(owner_id, ?4), updated_at = ?5
                 WHERE id = ?1",
            )?
            .execute(params![
                into.as_str(),
                absorbed.display_name,
                absorbed.email,
                absorbed.owner_id,
                at
            ])?;
        self.0
            .prepare_cached(
                "UPDATE contacts SET merged_into = ?1, updated_at = ?3
                 WHERE id = ?2 OR merged_into = ?2",
            )?
            .execute(params![into.as_str(), absorbed.id.as_str(), at])?;
        Ok(())
    }
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
