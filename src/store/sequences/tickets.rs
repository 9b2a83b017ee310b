//! What a rep's change to a ticket, a conversation or a contact writes, in order: the
//! change itself, the events, the audit trail, and the conversations a ticket's status
//! moves. The rules are `desk::tickets`; the steps are each store's.

use std::future::Future;

use serde_json::json;

use super::{AuditRow, Tx, audit_record};
use crate::desk::tickets::{self, ConversationEffect, Restored, TicketPlan};
use crate::model::{Contact, ContactId, ConversationId, ConversationStatus, Ticket, TicketId};
use crate::store::{Actor, ContactUpdate, ConversationUpdate, StoreError, TicketChange, Trashed};

/// What assigning a conversation starts from, read (and on PostgreSQL locked: the ticket,
/// then the conversation) for the change.
pub(crate) struct OwnerFacts {
    pub ticket: String,
    pub owner: Option<String>,
    pub ticket_owner: Option<String>,
}

/// The steps the ticket sequences take, in each store's SQL.
pub(crate) trait TicketTx: Tx {
    /// A live ticket with its conversations; `lock` holds them until the transaction ends.
    fn ticket(
        &mut self,
        id: &TicketId,
        lock: bool,
    ) -> impl Future<Output = Result<Ticket, StoreError>>;

    /// Writes a planned change's status, owner, properties, priority and close time.
    fn write_ticket(
        &mut self,
        id: &TicketId,
        plan: &TicketPlan,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// Moves a conversation to `status` unless it is there; true when it moved. Reopening
    /// one whose thread has another open conversation is a conflict.
    fn move_conversation(
        &mut self,
        id: &ConversationId,
        status: ConversationStatus,
        at: i64,
    ) -> impl Future<Output = Result<bool, StoreError>>;

    /// A live conversation's ticket and owners, held for an assignment.
    fn owner_facts(
        &mut self,
        id: &ConversationId,
    ) -> impl Future<Output = Result<OwnerFacts, StoreError>>;

    /// Gives a conversation to `owner` (none: unassigned).
    fn set_conversation_owner(
        &mut self,
        id: &ConversationId,
        owner: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// Gives a ticket to `owner` (none: unassigned).
    fn set_ticket_owner(
        &mut self,
        ticket: &str,
        owner: Option<&str>,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// The ticket of a live conversation.
    fn ticket_of(
        &mut self,
        conversation: &ConversationId,
    ) -> impl Future<Output = Result<TicketId, StoreError>>;

    /// Moves a live ticket and its live conversations to the trash: those conversations
    /// (oldest first) and how many replies are still queued for the ticket.
    fn trash(
        &mut self,
        id: &TicketId,
        at: i64,
    ) -> impl Future<Output = Result<(Vec<ConversationId>, u64), StoreError>>;

    /// Takes a ticket out of the trash: the conversations trashed with it (oldest first),
    /// or none when the ticket is not in the trash.
    fn untrash(
        &mut self,
        id: &TicketId,
        at: i64,
    ) -> impl Future<Output = Result<Option<Vec<String>>, StoreError>>;

    /// Takes one of those conversations out: whether it was open, and how it came back.
    fn untrash_conversation(
        &mut self,
        id: &str,
        at: i64,
    ) -> impl Future<Output = Result<(bool, Restored), StoreError>>;

    /// A contact with its identifiers; `lock` holds its row until the transaction ends.
    fn contact(
        &mut self,
        id: &ContactId,
        lock: bool,
    ) -> impl Future<Output = Result<Contact, StoreError>>;

    /// Sets a contact's owner and e-mail address.
    fn write_contact(
        &mut self,
        id: &ContactId,
        owner: Option<&str>,
        email: Option<&str>,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>>;
}

/// Applies a ticket change: checks the status against its pipeline, writes the ticket,
/// then moves its conversations as the lifecycle rules say.
pub(crate) async fn apply_change(
    tx: &mut impl TicketTx,
    id: &TicketId,
    change: &TicketChange,
    actor: &Actor,
    at: i64,
) -> Result<Ticket, StoreError> {
    // Locked on PostgreSQL: a concurrent change (another replica's) merges into ours.
    let current = tx.ticket(id, true).await?;
    let plan = tickets::plan_change(&current, &change.pipelines, change.as_desk())
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    tx.write_ticket(id, &plan, at).await?;
    if let Some(data) = &plan.status_event {
        for conversation in &current.conversation_ids {
            let kind = "ticket.status_changed";
            tx.emit(kind, conversation.as_str(), data.clone(), at)
                .await?;
        }
    }
    let ticket = id.as_str();
    for record in plan.audit {
        tx.audit(AuditRow::ticket(ticket, record, actor, at))
            .await?;
    }
    match plan.conversations {
        ConversationEffect::CloseAll => {
            for conversation in &current.conversation_ids {
                let closed = ConversationStatus::Closed;
                move_conversation(tx, ticket, conversation, closed, actor, at).await?;
            }
        }
        ConversationEffect::Reopen(conversation) => {
            let open = ConversationStatus::Open;
            move_conversation(tx, ticket, &conversation, open, actor, at).await?;
        }
        ConversationEffect::Nothing => {}
    }
    tx.ticket(id, false).await
}

/// Moves one conversation to `status` and, when it moved, says so in events and audit.
async fn move_conversation(
    tx: &mut impl TicketTx,
    ticket: &str,
    id: &ConversationId,
    status: ConversationStatus,
    actor: &Actor,
    at: i64,
) -> Result<(), StoreError> {
    if tx.move_conversation(id, status, at).await? {
        let (data, record) = tickets::conversation_status_record(status);
        tx.emit("conversation.status_changed", id.as_str(), data, at)
            .await?;
        let row = AuditRow::conversation(ticket, id.as_str(), record, actor, at);
        tx.audit(row).await?;
    }
    Ok(())
}

/// Assigns a conversation (its ticket follows) and opens or closes it, as `update` says.
pub(crate) async fn update_conversation(
    tx: &mut impl TicketTx,
    id: &ConversationId,
    update: &ConversationUpdate,
    actor: &Actor,
    at: i64,
) -> Result<(), StoreError> {
    let facts = tx.owner_facts(id).await?;
    let ticket = facts.ticket.as_str();
    let assignment = update.owner_id.as_ref().and_then(|requested| {
        tickets::plan_assignment(
            facts.owner.as_deref(),
            facts.ticket_owner.as_deref(),
            requested.as_deref(),
            &actor.name,
        )
    });
    if let Some(assignment) = assignment {
        let owner = assignment.owner_id.as_deref();
        tx.set_conversation_owner(id, owner).await?;
        tx.emit("conversation.assigned", id.as_str(), assignment.event, at)
            .await?;
        let record = assignment.audit;
        let row = AuditRow::conversation(ticket, id.as_str(), record, actor, at);
        tx.audit(row).await?;
        if let Some(record) = assignment.ticket {
            tx.set_ticket_owner(ticket, owner, at).await?;
            tx.audit(AuditRow::ticket(ticket, record, actor, at))
                .await?;
        }
    }
    if let Some(status) = update.status {
        // Closing a conversation closes only it: its ticket stays as it is.
        move_conversation(tx, ticket, id, status, actor, at).await?;
    }
    Ok(())
}

/// Moves the conversation's ticket, with all its conversations, to the trash.
pub(crate) async fn delete_conversation(
    tx: &mut impl TicketTx,
    id: &ConversationId,
    actor: &Actor,
    at: i64,
) -> Result<Trashed, StoreError> {
    let ticket = tx.ticket_of(id).await?;
    delete_ticket(tx, &ticket, actor, at).await
}

/// Moves a ticket and its conversations to the trash (until a purge or a restore). Their
/// queued replies stay queued: the answer and the audit trail say how many.
pub(crate) async fn delete_ticket(
    tx: &mut impl TicketTx,
    id: &TicketId,
    actor: &Actor,
    at: i64,
) -> Result<Trashed, StoreError> {
    let (conversation_ids, queued_replies) = tx.trash(id, at).await?;
    let changes = tickets::trash_record(&conversation_ids, queued_replies);
    let deleted = audit_record("deleted", changes);
    tx.audit(AuditRow::ticket(id.as_str(), deleted, actor, at))
        .await?;
    Ok(Trashed {
        ticket_id: id.clone(),
        conversation_ids,
        queued_replies,
    })
}

/// Takes a ticket and the conversations trashed with it out of the trash. A conversation
/// whose thread has opened another one meanwhile comes back closed, and the audit says why.
pub(crate) async fn restore_ticket(
    tx: &mut impl TicketTx,
    id: &TicketId,
    actor: &Actor,
    at: i64,
) -> Result<Ticket, StoreError> {
    let Some(conversations) = tx.untrash(id, at).await? else {
        return Err(StoreError::Conflict(format!(
            "ticket {id} is not in the trash"
        )));
    };
    for conversation in conversations {
        let (open, outcome) = tx.untrash_conversation(&conversation, at).await?;
        let (changes, reason) = outcome.record(if open { "open" } else { "closed" });
        let actor = Actor {
            reason: reason.or_else(|| actor.reason.clone()),
            ..actor.clone()
        };
        let restored = audit_record("restored", changes);
        tx.audit(AuditRow::conversation(
            id.as_str(),
            &conversation,
            restored,
            &actor,
            at,
        ))
        .await?;
    }
    let restored = audit_record("restored", json!({}));
    tx.audit(AuditRow::ticket(id.as_str(), restored, actor, at))
        .await?;
    tx.ticket(id, false).await
}

/// Sets a contact's owner and e-mail address, as far as `update` gives them.
pub(crate) async fn update_contact(
    tx: &mut impl TicketTx,
    id: &ContactId,
    update: &ContactUpdate,
    at: i64,
) -> Result<Contact, StoreError> {
    let current = tx.contact(id, true).await?;
    let owner = update.owner_id.clone().unwrap_or(current.owner_id);
    let email = update.email.clone().unwrap_or(current.email);
    tx.write_contact(id, owner.as_deref(), email.as_deref(), at)
        .await?;
    tx.contact(id, false).await
}
