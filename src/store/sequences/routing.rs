//! Routing inside the ingest transaction: read presence, load and the rotation cursor,
//! ask `desk::routing` for a decision and record it (owner, audit, event), and e-mail a
//! contact's offline owner. The rules are `desk::routing` and `desk::ingest`; the reads
//! and writes are each store's.

use std::future::Future;

use super::tickets::TicketTx;
use super::{AuditRow, audit_record};
use crate::desk::ingest::{OwnerEmailFacts, OwnerNotice, owner_email, owner_notice};
use crate::desk::routing::{self, Decision, Recording, RepState, Rule};
use crate::model::outbound::Email;
use crate::model::{ConversationId, Part};
use crate::store::{Actor, ChannelRules, OwnerSlot, RepSlot, RoutingPlan, StoreError};

/// The reads and writes routing needs, in each store's SQL.
pub(crate) trait RoutingTx: TicketTx {
    /// Holds the round-robin rotation (cursor and loads) until the transaction ends, so
    /// two replicas never decide from the same reading. SQLite's one writer holds it.
    fn hold_rotation(&mut self) -> impl Future<Output = Result<(), StoreError>>;

    /// The presence `rep` last reported, and when.
    fn presence(
        &mut self,
        rep: &str,
    ) -> impl Future<Output = Result<Option<(String, i64)>, StoreError>>;

    /// How many open conversations `rep` owns.
    fn load(&mut self, rep: &str) -> impl Future<Output = Result<u32, StoreError>>;

    /// The rep `channel`'s rotation last gave a conversation to.
    fn last_rep(
        &mut self,
        channel: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>>;

    /// Moves `channel`'s rotation on to `rep`.
    fn advance_rotation(
        &mut self,
        channel: &str,
        rep: &str,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// A contact's owner and display name.
    fn owner_and_name(
        &mut self,
        contact: &str,
    ) -> impl Future<Output = Result<(Option<String>, Option<String>), StoreError>>;

    /// A conversation's first inbound message: its id and stored parts.
    fn first_inbound(
        &mut self,
        conversation: &str,
    ) -> impl Future<Output = Result<(String, String), StoreError>>;

    /// Queues an e-mail about `conversation` for the mailer.
    fn enqueue_email(
        &mut self,
        conversation: &str,
        email: &Email,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// A channel's open, unassigned conversations (id and contact), oldest first.
    fn waiting(
        &mut self,
        channel: &str,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>>;
}

/// Whether `rep` is online: presence older than `timeout_ms` counts as offline.
pub(crate) async fn online(
    tx: &mut impl RoutingTx,
    rep: &str,
    now: i64,
    timeout_ms: i64,
) -> Result<bool, StoreError> {
    let reported = tx.presence(rep).await?;
    Ok(routing::is_online(
        reported.as_ref().map(|(s, at)| (s.as_str(), *at)),
        now,
        timeout_ms,
    ))
}

async fn state(
    tx: &mut impl RoutingTx,
    slot: &RepSlot,
    now: i64,
    timeout_ms: i64,
) -> Result<RepState, StoreError> {
    Ok(RepState {
        id: slot.id.clone(),
        online: online(tx, &slot.id, now, timeout_ms).await?,
        load: tx.load(&slot.id).await?,
        capacity: slot.capacity,
    })
}

/// Routes a new or reopened conversation and records the decision.
pub(crate) async fn route(
    tx: &mut impl RoutingTx,
    rules: &ChannelRules,
    conversation: &ConversationId,
    contact: &str,
    now: i64,
    timeout_ms: i64,
) -> Result<Decision, StoreError> {
    let rule = match &rules.routing {
        RoutingPlan::Nobody => Rule::Nobody,
        RoutingPlan::RoundRobin { pool } => {
            tx.hold_rotation().await?;
            let mut states = Vec::with_capacity(pool.len());
            for slot in pool {
                states.push(state(tx, slot, now, timeout_ms).await?);
            }
            let last = tx.last_rep(&rules.channel_id).await?;
            Rule::RoundRobin { pool: states, last }
        }
        RoutingPlan::ContactOwner { .. } => {
            let (owner, _) = tx.owner_and_name(contact).await?;
            let slot = rules.routing.owner_slot(owner);
            let state = match &slot {
                OwnerSlot::Rep(rep) => Some(state(tx, rep, now, timeout_ms).await?),
                _ => None,
            };
            rules.routing.contact_owner_rule(slot, state)
        }
    };
    let decision = routing::decide(&rule);
    if let Some(recording) = routing::recording(&decision) {
        record(tx, rules, conversation, recording, now).await?;
    }
    Ok(decision)
}

/// Writes what `desk::routing::recording` says a decision leaves behind.
async fn record(
    tx: &mut impl RoutingTx,
    rules: &ChannelRules,
    conversation: &ConversationId,
    recording: Recording<'_>,
    now: i64,
) -> Result<(), StoreError> {
    let ticket = tx.ticket_of(conversation).await?;
    let actor = Actor {
        reason: Some(recording.note.to_owned()),
        ..Actor::system("routing")
    };
    let (ticket, id) = (ticket.as_str(), conversation.as_str());
    let decided = audit_record(recording.action, recording.changes);
    let row = AuditRow::conversation(ticket, id, decided, &actor, now);
    tx.audit(row).await?;
    let (Some(rep), Some(event)) = (recording.assignee, recording.event) else {
        return Ok(());
    };
    tx.set_conversation_owner(conversation, Some(rep)).await?;
    // The conversation's owner is its ticket's owner too.
    tx.set_ticket_owner(ticket, Some(rep), now).await?;
    if recording.advances_rotation {
        tx.advance_rotation(&rules.channel_id, rep).await?;
    }
    tx.emit("conversation.assigned", id, event, now).await
}

/// A message just stored, as the offline owner's e-mail quotes it.
pub(crate) struct NewInbound<'a> {
    pub conversation: &'a str,
    pub contact: &'a str,
    pub message: &'a str,
    pub parts: &'a [Part],
}

/// For contact-owner channels: queues an e-mail of a new inbound message to the contact's
/// owner when the owner is offline. Returns why an offline owner was not e-mailed (no
/// address, no `[smtp]`), if so.
pub(crate) async fn email_offline_owner(
    tx: &mut impl RoutingTx,
    rules: &ChannelRules,
    new: &NewInbound<'_>,
    now: i64,
    timeout_ms: i64,
) -> Result<Option<&'static str>, StoreError> {
    if !matches!(rules.routing, RoutingPlan::ContactOwner { .. }) {
        return Ok(None);
    }
    let (owner, name) = tx.owner_and_name(new.contact).await?;
    let OwnerSlot::Rep(slot) = rules.routing.owner_slot(owner) else {
        return Ok(None);
    };
    let online = online(tx, &slot.id, now, timeout_ms).await?;
    let mail = rules.routing.owner_mail(slot);
    let target = match owner_notice(online, mail, rules.routing.mail_target(slot)) {
        OwnerNotice::Nothing => return Ok(None),
        OwnerNotice::NotEmailed(why) => return Ok(Some(why)),
        OwnerNotice::Email(target) => target,
    };
    let (first_id, first_parts) = tx.first_inbound(new.conversation).await?;
    let email = owner_email(&OwnerEmailFacts {
        to: target.to,
        contact_name: name.as_deref(),
        contact_id: new.contact,
        channel_name: &target.from.channel_name,
        link_base: target.from.link_base.as_deref(),
        conversation: new.conversation,
        message: new.message,
        parts: new.parts,
        first_id: &first_id,
        first_parts: &first_parts,
    });
    tx.enqueue_email(new.conversation, &email, now).await?;
    Ok(None)
}

/// Assigns waiting (open, unassigned) conversations of round-robin channels, oldest
/// first, while someone is eligible. Returns how many were assigned.
pub(crate) async fn backfill(
    tx: &mut impl RoutingTx,
    channels: &[ChannelRules],
    now: i64,
    timeout_ms: i64,
) -> Result<usize, StoreError> {
    let mut assigned = 0;
    for rules in channels
        .iter()
        .filter(|r| matches!(r.routing, RoutingPlan::RoundRobin { .. }))
    {
        // Held before reading who waits, so two replicas backfilling at once do not both
        // assign the same conversation.
        tx.hold_rotation().await?;
        for (conversation, contact) in tx.waiting(&rules.channel_id).await? {
            let conversation = ConversationId::from_stored(conversation);
            let decision = route(tx, rules, &conversation, &contact, now, timeout_ms).await?;
            if decision.assignee.is_none() {
                break;
            }
            assigned += 1;
        }
    }
    Ok(assigned)
}
