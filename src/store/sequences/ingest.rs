//! What storing an inbound message writes, in order: dedupe, contact, thread, message,
//! event, routing when the conversation was created or reopened, and the e-mail to an
//! offline owner. The rules are `desk::ingest`, `desk::threading` and `desk::routing`;
//! the reads and writes are each store's.

use std::future::Future;

use serde_json::Value;

use super::routing::{self, NewInbound, RoutingTx};
use crate::desk::{self, ingest::Threaded, threading::ThreadDecision};
use crate::model::event::{InboundContact, InboundMessage, MessageEdit};
use crate::model::{ContactId, ConversationId, Identifier, MessageId, Part};
use crate::store::{
    ChannelRules, EditPlan, EditSkipped, IngestOutcome, PublishNote, Routed, RoutingPlan,
    StoreError, plan_edit,
};

/// A conversation as threading finds it: its id and its ticket's.
pub(crate) type Found = (String, String);

/// An inbound message as an edit finds it (parts and history as stored: JSON).
pub(crate) struct Editable {
    pub id: String,
    pub conversation: String,
    pub parts: String,
    pub history: Option<String>,
    /// Its position in the table, which SQLite's search index is keyed by.
    pub seq: i64,
}

/// An inbound message's row: what [`IngestTx::insert_inbound`] stores.
pub(crate) struct InboundRow<'a> {
    pub id: &'a MessageId,
    pub channel: &'a str,
    pub conversation: &'a ConversationId,
    pub contact: &'a ContactId,
    pub message: &'a InboundMessage,
    pub at: i64,
}

/// The reads and writes storing a message needs, in each store's SQL.
pub(crate) trait IngestTx: RoutingTx {
    /// Holds a sender's messages on `channel` (and the creation of their contact) until
    /// the transaction ends, so the duplicate check, the contact and the conversation are
    /// decided once across replicas.
    fn hold_sender(
        &mut self,
        channel: &str,
        sender: &Identifier,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// Holds a platform thread (several senders share it) until the transaction ends.
    fn hold_thread(
        &mut self,
        channel: &str,
        key: &str,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// The inbound message stored under a platform's id on `channel`, if any.
    fn inbound_id(
        &mut self,
        channel: &str,
        platform_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>>;

    /// The contact an identifier on `channel` belongs to, if any.
    fn contact_of(
        &mut self,
        channel: &str,
        identifier: &Identifier,
    ) -> impl Future<Output = Result<Option<String>, StoreError>>;

    /// The contact the sender's identifier on `channel` belongs to, if any; with
    /// `refresh`, having taken the name and e-mail address the message brings, where they
    /// differ (one statement on PostgreSQL).
    fn sender_contact(
        &mut self,
        channel: &str,
        from: &InboundContact,
        refresh: bool,
        at: i64,
    ) -> impl Future<Output = Result<Option<String>, StoreError>>;

    /// Creates a contact (its identifiers are added one by one after it).
    fn insert_contact(
        &mut self,
        id: &ContactId,
        name: Option<&str>,
        email: Option<&str>,
        owner: Option<&str>,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// Gives a contact an identifier on `channel`.
    fn add_identifier(
        &mut self,
        channel: &str,
        identifier: &Identifier,
        contact: &str,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// The live conversation of `contact` on `channel` that `hint` (a conversation's or a
    /// message's id) names, with whether it is open.
    fn hinted(
        &mut self,
        channel: &str,
        contact: &ContactId,
        hint: &str,
    ) -> impl Future<Output = Result<Option<(Found, bool)>, StoreError>>;

    /// The live open (or, with `open` false, the latest closed) conversation of a thread.
    fn in_thread(
        &mut self,
        channel: &str,
        key: &str,
        open: bool,
    ) -> impl Future<Output = Result<Option<Found>, StoreError>>;

    /// Notes that `message` arrived in an open conversation.
    fn append(
        &mut self,
        conversation: &str,
        message: &MessageId,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// Reopens a conversation for `message`; a closed ticket comes back with it, at the
    /// channel's start status.
    fn reopen(
        &mut self,
        found: &Found,
        rules: &ChannelRules,
        message: &MessageId,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// Creates a conversation and its ticket, as the channel's rules say, for `message`.
    fn create(
        &mut self,
        rules: &ChannelRules,
        key: &str,
        contact: &ContactId,
        m: &InboundMessage,
        message: &MessageId,
        at: i64,
    ) -> impl Future<Output = Result<ConversationId, StoreError>>;

    /// The display name of a conversation's contact, for live clients.
    fn contact_name(
        &mut self,
        conversation: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>>;

    /// Stores an inbound message (and indexes its text for search) and appends its
    /// `message.created` event, with `event` as its data: one statement on PostgreSQL.
    fn insert_inbound(
        &mut self,
        row: InboundRow<'_>,
        event: Value,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// The inbound message a platform's id names on `channel`, held for an edit.
    fn editable(
        &mut self,
        channel: &str,
        platform_id: &str,
    ) -> impl Future<Output = Result<Option<Editable>, StoreError>>;

    /// Gives a message the edit's parts (and reindexes them), with its new history.
    fn write_edit(
        &mut self,
        message: &Editable,
        parts: &[Part],
        history: &str,
        edited_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// The inbound message a platform's id names on `channel` (id and conversation), held,
    /// unless it was taken back already.
    fn unretracted(
        &mut self,
        channel: &str,
        platform_id: &str,
    ) -> impl Future<Output = Result<Option<(String, String)>, StoreError>>;

    /// Marks the inbound message a platform's id names taken back (the first time counts);
    /// false when there is no such message.
    fn retract(
        &mut self,
        channel: &str,
        platform_id: &str,
        at: i64,
    ) -> impl Future<Output = Result<bool, StoreError>>;

    /// Queues a message's publication to HubSpot, with `note` when it is about a change.
    fn enqueue_publish(
        &mut self,
        conversation: &str,
        message: &MessageId,
        note: Option<&PublishNote>,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>>;
}

/// Stores an inbound message, unless it is a duplicate, and routes and announces it.
pub(crate) async fn store_message(
    tx: &mut impl IngestTx,
    rules: &ChannelRules,
    m: &InboundMessage,
    now: i64,
) -> Result<IngestOutcome, StoreError> {
    let channel = rules.channel_id.as_str();
    tx.hold_sender(channel, &m.from.identifier).await?;
    if let Some(id) = tx.inbound_id(channel, &m.platform_message_id).await? {
        return Ok(IngestOutcome::Duplicate {
            id: m.platform_message_id.clone(),
            message_id: MessageId::from_stored(id),
        });
    }

    let contact = contact(tx, channel, &m.from, now).await?;
    let key =
        desk::threading::thread_key(rules.threading, contact.as_str(), m.thread_id.as_deref());
    if m.thread_id.is_some() {
        tx.hold_thread(channel, &key).await?;
    }
    let id = MessageId::new();
    let (conversation, threaded) = thread(tx, rules, &key, &contact, m, &id, now).await?;
    let contact_name = tx.contact_name(conversation.as_str()).await?;
    let plan = desk::ingest::plan_message(
        threaded,
        rules.hubspot_account.is_some(),
        &id,
        contact_name.as_deref(),
        &m.parts,
    );
    if plan.route && matches!(rules.routing, RoutingPlan::RoundRobin { .. }) {
        // The rotation is held before the events are: every transaction that holds both
        // takes them in this order.
        tx.hold_rotation().await?;
    }

    let row = InboundRow {
        id: &id,
        channel,
        conversation: &conversation,
        contact: &contact,
        message: m,
        at: now,
    };
    tx.insert_inbound(row, plan.event).await?;
    // Jobs are queued after the events: PostgreSQL holds a job's ordering key last.
    if plan.publish {
        tx.enqueue_publish(conversation.as_str(), &id, None, now)
            .await?;
    }
    let timeout = rules.presence_timeout_ms;
    let routed = if plan.route {
        let contact = contact.as_str();
        let decision = routing::route(tx, rules, &conversation, contact, now, timeout).await?;
        Some(Routed::of(&decision))
    } else {
        None
    };
    let new = NewInbound {
        conversation: conversation.as_str(),
        contact: contact.as_str(),
        message: id.as_str(),
        parts: &m.parts,
    };
    let owner_not_emailed = routing::email_offline_owner(tx, rules, &new, now, timeout).await?;
    Ok(IngestOutcome::Stored {
        id: m.platform_message_id.clone(),
        message_id: id,
        conversation_id: conversation,
        new_conversation: plan.new_conversation,
        routed,
        owner_not_emailed,
    })
}

/// Replaces an inbound message's parts, keeping what it said before in `history`; a
/// channel linked to HubSpot publishes a note saying so (HubSpot cannot edit a message).
pub(crate) async fn apply_edit(
    tx: &mut impl IngestTx,
    rules: &ChannelRules,
    edit: &MessageEdit,
    now: i64,
) -> Result<IngestOutcome, StoreError> {
    let channel = rules.channel_id.as_str();
    let skipped = |why| Ok(IngestOutcome::edited(&edit.platform_message_id, Some(why)));
    let Some(current) = tx.editable(channel, &edit.platform_message_id).await? else {
        return skipped(EditSkipped::UnknownMessage);
    };
    let hubspot = rules.hubspot_account.is_some();
    let history = current.history.as_deref();
    let (history, edited_at, note) = match plan_edit(&current.parts, history, edit, hubspot, now)? {
        EditPlan::Skip(why) => return skipped(why),
        EditPlan::Apply {
            history,
            edited_at,
            note,
        } => (history, edited_at, note),
    };
    tx.write_edit(&current, &edit.parts, &history, edited_at)
        .await?;
    if let Some(note) = note {
        let message = MessageId::from_stored(current.id);
        tx.enqueue_publish(&current.conversation, &message, Some(&note), now)
            .await?;
    }
    Ok(IngestOutcome::edited(&edit.platform_message_id, None))
}

/// Marks an inbound message taken back; the first time, a channel linked to HubSpot
/// publishes a note saying so (HubSpot cannot delete a message).
pub(crate) async fn retract(
    tx: &mut impl IngestTx,
    rules: &ChannelRules,
    platform_id: &str,
    now: i64,
) -> Result<IngestOutcome, StoreError> {
    let channel = rules.channel_id.as_str();
    let first = match rules.hubspot_account {
        Some(_) => tx.unretracted(channel, platform_id).await?,
        None => None,
    };
    let applied = tx.retract(channel, platform_id, now).await?;
    // After the retraction's event: PostgreSQL holds a job's ordering key last.
    if let Some((id, conversation)) = first {
        let (message, note) = (MessageId::from_stored(id), PublishNote::Retracted);
        tx.enqueue_publish(&conversation, &message, Some(&note), now)
            .await?;
    }
    Ok(IngestOutcome::Retracted {
        id: platform_id.to_owned(),
        applied,
    })
}

/// The sender's contact: found by identifier (and given the details the message brings),
/// or created.
async fn contact(
    tx: &mut impl IngestTx,
    channel: &str,
    from: &InboundContact,
    now: i64,
) -> Result<ContactId, StoreError> {
    let (name, email) = (from.display_name.as_deref(), from.email.as_deref());
    let refresh = desk::ingest::brings_details(name, email);
    if let Some(id) = tx.sender_contact(channel, from, refresh, now).await? {
        return Ok(ContactId::from_stored(id));
    }
    let id = ContactId::new();
    tx.insert_contact(&id, name, email, None, now).await?;
    tx.add_identifier(channel, &from.identifier, id.as_str())
        .await?;
    Ok(id)
}

/// Finds, reopens or creates the conversation for `key`, which gets `message` as its
/// latest inbound message.
async fn thread(
    tx: &mut impl IngestTx,
    rules: &ChannelRules,
    key: &str,
    contact: &ContactId,
    m: &InboundMessage,
    message: &MessageId,
    now: i64,
) -> Result<(ConversationId, Threaded), StoreError> {
    let channel = rules.channel_id.as_str();
    // A hint (an e-mail answering our mail) names the conversation directly; only one of
    // the same contact on this channel is taken, so a forged header reaches no one else's.
    let hinted = match &m.conversation_hint {
        Some(hint) => tx.hinted(channel, contact, hint).await?,
        None => None,
    };
    let (open, closed) = match desk::ingest::hinted(hinted, rules.reopen) {
        Some(found) => found,
        None => {
            let open = tx.in_thread(channel, key, true).await?;
            let closed = if desk::ingest::wants_closed(open.is_some(), rules.reopen) {
                tx.in_thread(channel, key, false).await?
            } else {
                None
            };
            (open, closed)
        }
    };
    match desk::threading::decide(open, closed, rules.reopen) {
        ThreadDecision::Append((id, _)) => {
            tx.append(&id, message, now).await?;
            Ok((ConversationId::from_stored(id), Threaded::Appended))
        }
        ThreadDecision::Reopen(found) => {
            tx.reopen(&found, rules, message, now).await?;
            Ok((ConversationId::from_stored(found.0), Threaded::Reopened))
        }
        ThreadDecision::Create => {
            let id = tx.create(rules, key, contact, m, message, now).await?;
            Ok((id, Threaded::Created))
        }
    }
}
