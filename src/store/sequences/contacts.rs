//! What creating and merging contacts writes, in order, and the rules that refuse them: an
//! identifier belongs to one contact, a contact has one identifier per channel, and a
//! contact merges neither into itself nor twice. The reads and writes are each store's.

use std::collections::BTreeSet;
use std::future::Future;

use serde_json::{Value, json};

use super::ingest::IngestTx;
use super::{AuditRow, audit_record};
use crate::desk::tickets::from_to;
use crate::model::{Contact, ContactId, Identifier};
use crate::store::{Actor, NewContact, StoreError};

/// One of the absorbed contact's conversations: its id, its ticket's, and whether it is
/// live (not in the trash).
pub(crate) type Absorbed = (String, String, bool);

/// The reads and writes contacts need beyond ingest's, in each store's SQL.
pub(crate) trait ContactTx: IngestTx {
    /// Records what happened to a contact in its own audit trail.
    fn record_contact(
        &mut self,
        contact: &str,
        action: &str,
        actor: &Actor,
        changes: Value,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// Holds both contacts' rows until the transaction ends, in an order two opposite
    /// merges agree on.
    fn hold_pair(
        &mut self,
        into: &ContactId,
        from: &ContactId,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// `from`'s conversations, oldest first. A conflict when one of them is open in a
    /// per-contact thread where `into` has an open conversation too.
    fn conversations_to_move(
        &mut self,
        into: &ContactId,
        from: &ContactId,
    ) -> impl Future<Output = Result<Vec<Absorbed>, StoreError>>;

    /// Gives `from`'s identifiers and conversations to `into`; per-contact threads follow
    /// their contact, so the absorbed contact's next message lands where it did before.
    fn move_to(
        &mut self,
        into: &ContactId,
        from: &ContactId,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// Makes `into` the sender of what `from` wrote in `conversation`.
    fn reattribute(
        &mut self,
        conversation: &str,
        into: &ContactId,
        from: &ContactId,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// `into` keeps what it has and takes what only `absorbed` knew; `absorbed` (and what
    /// was merged into it before) now points at `into`.
    fn absorb(
        &mut self,
        into: &ContactId,
        absorbed: &Contact,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>>;
}

/// Creates a contact, unless one of its identifiers already belongs to another.
pub(crate) async fn create(
    tx: &mut impl ContactTx,
    new: &NewContact,
    actor: &Actor,
    now: i64,
) -> Result<Contact, StoreError> {
    let identifiers: Vec<(&str, Identifier)> = new
        .identifiers
        .iter()
        .map(|i| {
            let (kind, value) = (i.kind.clone(), i.value.clone());
            (i.channel_id.as_str(), Identifier { kind, value })
        })
        .collect();
    for (i, (channel, sender)) in identifiers.iter().enumerate() {
        // The hold ingest takes for this sender: a message racing the creation cannot
        // make a second contact.
        tx.hold_sender(channel, sender).await?;
        if let Some(other) = tx.contact_of(channel, sender).await? {
            return Err(StoreError::Conflict(format!(
                "identifiers[{i}]: {} {:?} on channel {channel} already belongs to contact {other}",
                sender.kind, sender.value
            )));
        }
    }
    let id = ContactId::new();
    let (name, email) = (new.display_name.as_deref(), new.email.as_deref());
    tx.insert_contact(&id, name, email, new.owner_id.as_deref(), now)
        .await?;
    for (channel, identifier) in &identifiers {
        tx.add_identifier(channel, identifier, id.as_str()).await?;
    }
    let changes = json!({"identifiers": new.identifiers, "display_name": new.display_name,
                         "email": new.email, "owner_id": new.owner_id});
    tx.record_contact(id.as_str(), "created", actor, changes, now)
        .await?;
    tx.contact(&id, false).await
}

/// Merges `from` into `into`: its identifiers, conversations and details move over, and
/// both contacts' trails and each moved conversation's say so.
pub(crate) async fn merge(
    tx: &mut impl ContactTx,
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
    tx.hold_pair(into, from).await?;
    let survivor = tx.contact(into, true).await?;
    let absorbed = match tx.contact(from, true).await {
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

    let conversations = tx.conversations_to_move(into, from).await?;
    tx.move_to(into, from).await?;
    let changes = json!({"contact_id": from_to(from.as_str(), into.as_str())});
    for (conversation, ticket, _) in &conversations {
        tx.reattribute(conversation, into, from).await?;
        let merged = audit_record("contact_merged", changes.clone());
        let row = AuditRow::conversation(ticket, conversation, merged, actor, now);
        tx.audit(row).await?;
    }
    tx.absorb(into, &absorbed, now).await?;
    let moved: Vec<&str> = conversations.iter().map(|(c, _, _)| c.as_str()).collect();
    let merged = json!({"from": from, "identifiers": absorbed.identifiers, "conversations": moved,
                        "display_name": absorbed.display_name, "email": absorbed.email,
                        "owner_id": absorbed.owner_id});
    tx.record_contact(into.as_str(), "merged", actor, merged, now)
        .await?;
    let merged_into = json!({"into": into});
    tx.record_contact(from.as_str(), "merged_into", actor, merged_into, now)
        .await?;
    let data = json!({"contact_id": into, "previous_contact_id": from});
    for (conversation, _, live) in &conversations {
        if *live {
            let kind = "conversation.contact_merged";
            tx.emit(kind, conversation, data.clone(), now).await?;
        }
    }
    tx.contact(into, false).await
}
