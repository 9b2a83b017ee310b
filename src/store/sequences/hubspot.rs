//! What HubSpot's webhook events write, in order: each event once (by its key), a rep's
//! HubSpot message as a reply into the conversation it answers (or a failed status back
//! to HubSpot when it has none), and an account's change, which releases the publishes
//! parked while it was unusable. The reads and writes are each store's.

use std::future::Future;

use super::replies::{ReplyTx, create_reply};
use crate::model::MessageId;
use crate::store::StoreError;
use crate::store::hubspot::{
    AccountChange, HubspotLink, HubspotReply, ReportedStatus, WebhookAction, WebhookOutcome,
    WebhookRecord, outcome_label,
};

/// The reads and writes HubSpot's events need beyond a reply's, in each store's SQL.
pub(crate) trait HubspotTx: ReplyTx {
    /// Records an event as pending; false when its key was seen before.
    fn claim_event(
        &mut self,
        event: &WebhookRecord,
        at: i64,
    ) -> impl Future<Output = Result<bool, StoreError>>;

    /// Records what an event did (`outcome`) and the message it stored, if any.
    fn finish_event(
        &mut self,
        key: &str,
        outcome: &str,
        message: Option<&MessageId>,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// Whether a HubSpot message id is linked to one of ours already.
    fn hubspot_message_known(
        &mut self,
        hubspot_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>>;

    /// The live conversation `id`, when it is on one of the `linked` channels.
    fn linked_conversation(
        &mut self,
        id: &str,
        linked: &[String],
    ) -> impl Future<Output = Result<Option<String>, StoreError>>;

    /// The live conversation on a `linked` channel whose message we published into HubSpot
    /// thread `thread` last.
    fn thread_conversation(
        &mut self,
        thread: &str,
        linked: &[String],
    ) -> impl Future<Output = Result<Option<String>, StoreError>>;

    /// Our message a HubSpot message id stands for, when it is in `conversation` and not
    /// internal.
    fn quoted(
        &mut self,
        hubspot_id: &str,
        conversation: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>>;

    /// Queues a status report to HubSpot on a rep's message.
    fn enqueue_status(
        &mut self,
        message: Option<&MessageId>,
        hubspot_id: &str,
        status: ReportedStatus,
        error: Option<&str>,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// Links one of our messages to HubSpot's (once).
    fn record_link(&mut self, link: &HubspotLink) -> impl Future<Output = Result<(), StoreError>>;

    /// Takes an account's change (an account first heard of is authorized unless the
    /// event says otherwise); true when the account is now usable.
    fn record_account(
        &mut self,
        change: &AccountChange,
        kind: &str,
        at: i64,
    ) -> impl Future<Output = Result<bool, StoreError>>;

    /// Makes the publishes parked while an account was unusable due now.
    fn release_parked(&mut self, at: i64) -> impl Future<Output = Result<(), StoreError>>;
}

/// Applies HubSpot's webhook events, each once, in order.
pub(crate) async fn record_webhook(
    tx: &mut impl HubspotTx,
    events: &[WebhookRecord],
    now: i64,
) -> Result<Vec<WebhookOutcome>, StoreError> {
    let mut outcomes = Vec::with_capacity(events.len());
    for event in events {
        if !tx.claim_event(event, now).await? {
            outcomes.push(WebhookOutcome::Duplicate);
            continue;
        }
        let (outcome, message) = match &event.action {
            WebhookAction::Reply(reply) => record_reply(tx, reply, now).await?,
            WebhookAction::Account(change) => {
                if tx.record_account(change, &event.kind, now).await? {
                    // Publishes parked while the account was not usable go now, not at
                    // their next look.
                    tx.release_parked(now).await?;
                }
                (WebhookOutcome::Account, None)
            }
            WebhookAction::Ignore => (WebhookOutcome::Ignored, None),
        };
        let label = outcome_label(&outcome);
        tx.finish_event(&event.key, label, message.as_ref()).await?;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Stores a rep's HubSpot message as a reply, or tells HubSpot it failed when it answers
/// no conversation we can reach.
async fn record_reply(
    tx: &mut impl HubspotTx,
    reply: &HubspotReply,
    now: i64,
) -> Result<(WebhookOutcome, Option<MessageId>), StoreError> {
    // The event key already deduplicates; HubSpot's message id is the last word.
    if tx.hubspot_message_known(&reply.hubspot_message_id).await? {
        return Ok((WebhookOutcome::Duplicate, None));
    }
    let conversation = match &reply.refused {
        Some(_) => None,
        None => reply_conversation(tx, reply).await?,
    };
    let Some(conversation) = conversation else {
        let reason = reply.unroutable_reason();
        let (id, failed) = (&reply.hubspot_message_id, ReportedStatus::Failed);
        tx.enqueue_status(None, id, failed, Some(&reason), now)
            .await?;
        return Ok((WebhookOutcome::Unroutable { reason }, None));
    };
    // A quote of a message of another conversation (or none we know) is dropped, not refused.
    let reply_to = match &reply.in_reply_to {
        Some(quoted) => tx.quoted(quoted, &conversation).await?,
        None => None,
    };
    let new_reply = reply.new_reply(conversation, reply_to, now);
    let message = create_reply(tx, &new_reply, now).await?;
    tx.record_link(&reply.link(&message.id, now)).await?;
    Ok((
        WebhookOutcome::Replied {
            message_id: message.id.clone(),
            conversation_id: message.conversation_id,
        },
        Some(message.id),
    ))
}

/// The conversation a rep's HubSpot message goes to: one HubSpot names by our id, else
/// the one whose messages we published into its HubSpot thread (the latest).
async fn reply_conversation(
    tx: &mut impl HubspotTx,
    reply: &HubspotReply,
) -> Result<Option<String>, StoreError> {
    for id in &reply.conversations {
        let found = tx.linked_conversation(id, &reply.linked_channels).await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    match &reply.hubspot_thread_id {
        Some(thread) => {
            let linked = &reply.linked_channels;
            tx.thread_conversation(thread, linked).await
        }
        None => Ok(None),
    }
}
