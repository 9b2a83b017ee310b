//! Contacts on PostgreSQL: the steps of creating and merging them (the sequences are
//! `store::sequences::contacts`), their history, and the open/unassigned counts inboxes
//! show.

use serde_json::Value;
use sqlx::PgConnection;

use super::{get, tickets};
use crate::model::{Contact, ContactId, from_millis};
use crate::store::sequences::contacts::{Absorbed, ContactTx};
use crate::store::{Actor, AuditEntry, ChannelCounts, StoreError};

impl ContactTx for PgConnection {
    async fn record_contact(
        &mut self,
        contact: &str,
        action: &str,
        actor: &Actor,
        changes: Value,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO contact_audit (contact_id, action, actor, changes, at, actor_type)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(contact)
        .bind(action)
        .bind(&actor.name)
        .bind(changes.to_string())
        .bind(at)
        .bind(actor.kind.as_str())
        .execute(self)
        .await?;
        Ok(())
    }

    async fn hold_pair(&mut self, into: &ContactId, from: &ContactId) -> Result<(), StoreError> {
        // In id order, so two opposite merges cannot deadlock.
        sqlx::query("SELECT 1 FROM contacts WHERE id = $1 OR id = $2 ORDER BY id FOR UPDATE")
            .bind(into.as_str())
            .bind(from.as_str())
            .execute(self)
            .await?;
        Ok(())
    }

    async fn conversations_to_move(
        &mut self,
        into: &ContactId,
        from: &ContactId,
    ) -> Result<Vec<Absorbed>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, ticket_id, deleted_at IS NULL AS live, thread_key, channel_id, status
             FROM conversations WHERE contact_id = $1 ORDER BY seq FOR UPDATE",
        )
        .bind(from.as_str())
        .fetch_all(&mut *self)
        .await?;
        let mut conversations = Vec::with_capacity(rows.len());
        for row in &rows {
            let live: bool = get(row, "live")?;
            let key: String = get(row, "thread_key")?;
            let status: String = get(row, "status")?;
            // Checked before the move: in PostgreSQL a failed update would abort the whole
            // transaction.
            if live && status == "open" && key == format!("contact:{from}") {
                let taken: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM conversations WHERE channel_id = $1 AND thread_key = $2
                       AND status = 'open' AND deleted_at IS NULL",
                )
                .bind(get::<String>(row, "channel_id")?)
                .bind(format!("contact:{into}"))
                .fetch_optional(&mut *self)
                .await?;
                if taken.is_some() {
                    return Err(StoreError::Conflict(
                        "both contacts have an open conversation in the same thread".into(),
                    ));
                }
            }
            conversations.push((get(row, "id")?, get(row, "ticket_id")?, live));
        }
        Ok(conversations)
    }

    async fn move_to(&mut self, into: &ContactId, from: &ContactId) -> Result<(), StoreError> {
        sqlx::query("UPDATE contact_identifiers SET contact_id = $1 WHERE contact_id = $2")
            .bind(into.as_str())
            .bind(from.as_str())
            .execute(&mut *self)
            .await?;
        sqlx::query(
            "UPDATE conversations SET contact_id = $1,
                 thread_key = CASE WHEN thread_key = 'contact:' || $2 THEN 'contact:' || $1
                                   ELSE thread_key END
             WHERE contact_id = $2",
        )
        .bind(into.as_str())
        .bind(from.as_str())
        .execute(self)
        .await?;
        Ok(())
    }

    async fn reattribute(
        &mut self,
        conversation: &str,
        into: &ContactId,
        from: &ContactId,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE messages SET sender_id = $2
             WHERE conversation_id = $1 AND sender_type = 'contact' AND sender_id = $3",
        )
        .bind(conversation)
        .bind(into.as_str())
        .bind(from.as_str())
        .execute(self)
        .await?;
        Ok(())
    }

    async fn absorb(
        &mut self,
        into: &ContactId,
        absorbed: &Contact,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE contacts SET display_name = COALESCE(display_name, $2),
                 email = COALESCE(email, $3), owner_id = COALESCE(owner_id, $4), updated_at = $5
             WHERE id = $1",
        )
        .bind(into.as_str())
        .bind(&absorbed.display_name)
        .bind(&absorbed.email)
        .bind(&absorbed.owner_id)
        .bind(at)
        .execute(&mut *self)
        .await?;
        sqlx::query(
            "UPDATE contacts SET merged_into = $1, updated_at = $3 WHERE id = $2 OR merged_into = $2",
        )
        .bind(into.as_str())
        .bind(absorbed.id.as_str())
        .bind(at)
        .execute(self)
        .await?;
        Ok(())
    }
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
