//! HubSpot replies out (issue #18): a rep's message from HubSpot's webhook becomes a reply
//! in our conversation once however often HubSpot retries, its delivery is reported back
//! as status jobs, and channel-account events park and resume publishing.

use std::sync::Arc;

use channel_bridge::model::event::{InboundEvent, StatusUpdate};
use channel_bridge::model::{ConversationId, DeliveryStatus, Identifier, MessageId};
use channel_bridge::store::hubspot::{
    AccountChange, HubspotDirection, HubspotLink, HubspotReply, PARKED_PREFIX, ReportedStatus,
    WebhookAction, WebhookOutcome, WebhookRecord,
};
use channel_bridge::store::{Job, JobKind, JobOutcome, Store};
use chrono::{Duration, Utc};

use crate::seed::Seed;
use crate::support::*;

conformance!(
    a_reps_message_becomes_one_queued_reply_however_often_hubspot_sends_it,
    a_reply_finds_its_conversation_through_the_hubspot_thread_we_published_into,
    a_message_without_a_conversation_is_recorded_and_reported_failed,
    a_conversation_of_a_channel_not_linked_to_hubspot_is_never_replied_to,
    a_sent_then_read_reply_reports_sent_then_read_and_a_dead_one_failed,
    replies_of_other_sources_report_nothing_to_hubspot,
    a_deauthorized_account_parks_publishes_until_it_is_authorized_again,
    old_event_payloads_are_cleared_and_their_keys_still_deduplicate,
    a_send_and_a_publish_name_the_same_identifier_whatever_the_databases_collation,
);

const HUB: &str = "@hubspot";

fn hs_reply(id: &str, conversations: &[&str], thread: Option<&str>) -> WebhookRecord {
    WebhookRecord {
        key: format!("message:{id}"),
        kind: "OUTGOING_CHANNEL_MESSAGE_CREATED".into(),
        payload: format!(r#"{{"message":{{"id":"{id}"}}}}"#),
        action: WebhookAction::Reply(HubspotReply {
            hubspot_message_id: id.into(),
            conversations: conversations.iter().map(|c| c.to_string()).collect(),
            hubspot_thread_id: thread.map(str::to_owned),
            linked_channels: vec!["chat".into()],
            in_reply_to: None,
            parts: text(&format!("reply {id}")),
            sender: rep("hubspot:A-1"),
            refused: None,
        }),
    }
}

fn account(id: &str, authorized: Option<bool>, deleted: bool, kind: &str) -> WebhookRecord {
    WebhookRecord {
        key: format!("event:{kind}-{}", fastrand::u64(..)),
        kind: kind.into(),
        payload: "{}".into(),
        action: WebhookAction::Account(AccountChange {
            channel_account_id: id.into(),
            authorized,
            deleted,
            name: None,
        }),
    }
}

async fn record(store: &dyn Store, events: Vec<WebhookRecord>) -> Vec<WebhookOutcome> {
    store
        .hubspot()
        .record_webhook(events)
        .await
        .expect("the webhook is recorded")
}

fn replied(outcome: &WebhookOutcome) -> (MessageId, ConversationId) {
    match outcome {
        WebhookOutcome::Replied {
            message_id,
            conversation_id,
        } => (message_id.clone(), conversation_id.clone()),
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// The status reports due on `@hubspot`, as (HubSpot message id, status, error).
fn reports(jobs: &[Job]) -> Vec<(String, ReportedStatus, Option<String>)> {
    jobs.iter()
        .map(|j| match &j.kind {
            JobKind::HubspotStatus {
                hubspot_message_id,
                status,
                error,
                ..
            } => (hubspot_message_id.clone(), *status, error.clone()),
            other => panic!("not a status report: {other:?}"),
        })
        .collect()
}

async fn a_reps_message_becomes_one_queued_reply_however_often_hubspot_sends_it(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let conversation = open_conversation(&*store, &rules("chat"), "ana").await;
    let first = record(
        &*store,
        vec![hs_reply("hs-1", &[conversation.as_str()], None)],
    )
    .await;
    let (message, in_conversation) = replied(&first[0]);
    assert_eq!(in_conversation, conversation);
    // HubSpot retries the same delivery, and once more inside a batch.
    let again = record(
        &*store,
        vec![
            hs_reply("hs-1", &[conversation.as_str()], None),
            hs_reply("hs-1", &[conversation.as_str()], None),
        ],
    )
    .await;
    assert_eq!(
        again,
        [WebhookOutcome::Duplicate, WebhookOutcome::Duplicate]
    );

    let thread = messages(&*store, &conversation).await;
    let replies: Vec<_> = thread.iter().filter(|m| m.id == message).collect();
    assert_eq!(thread.len(), 2, "the contact's message and one reply");
    assert_eq!(replies[0].sender.id, "hubspot:A-1");
    assert_eq!(replies[0].delivery.status, DeliveryStatus::Queued);
    let link = store
        .hubspot()
        .hubspot_link_by_hubspot_id("hs-1")
        .await
        .unwrap()
        .expect("HubSpot's id is kept on the reply");
    assert_eq!(link.message_id, message);
    assert_eq!(link.direction, HubspotDirection::Out);
    let jobs = lease(&*store, "w", &["chat"]).await;
    assert_eq!(messages_of_jobs(&jobs), [message]);
}

fn messages_of_jobs(jobs: &[Job]) -> Vec<MessageId> {
    jobs.iter().map(message_of).collect()
}

async fn a_reply_finds_its_conversation_through_the_hubspot_thread_we_published_into(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let stored = post(&*store, &rules("chat"), Msg::new("in-1", "ana")).await;
    store
        .hubspot()
        .record_hubspot_link(&HubspotLink {
            message_id: stored.message.clone(),
            hubspot_message_id: "hs-in-1".into(),
            hubspot_thread_id: Some("T-77".into()),
            direction: HubspotDirection::In,
            published_at: Utc::now(),
        })
        .await
        .unwrap();
    let outcome = record(
        &*store,
        vec![hs_reply("hs-2", &["conv_unknown"], Some("T-77"))],
    )
    .await;
    assert_eq!(replied(&outcome[0]).1, stored.conversation);
}

async fn a_message_without_a_conversation_is_recorded_and_reported_failed(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let outcome = record(&*store, vec![hs_reply("hs-3", &["conv_gone"], Some("T-0"))]).await;
    assert!(
        matches!(&outcome[0], WebhookOutcome::Unroutable { .. }),
        "{outcome:?}"
    );
    let jobs = lease(&*store, "w", &[HUB]).await;
    let reports = reports(&jobs);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].0, "hs-3");
    assert_eq!(reports[0].1, ReportedStatus::Failed);
    assert!(reports[0].2.as_deref().unwrap().contains("no conversation"));
    let listed = store
        .deliveries(channel_bridge::store::JobState::Pending, &page(10))
        .await
        .unwrap()
        .items;
    assert_eq!(listed[0].kind, "hubspot_status");
    assert_eq!(
        listed[0].conversation_id, None,
        "a report names no conversation"
    );
    // A retry of it is a duplicate: it is not reported twice.
    let again = record(&*store, vec![hs_reply("hs-3", &["conv_gone"], None)]).await;
    assert_eq!(again, [WebhookOutcome::Duplicate]);
}

async fn a_conversation_of_a_channel_not_linked_to_hubspot_is_never_replied_to(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let elsewhere = open_conversation(&*store, &rules("private"), "ana").await;
    let outcome = record(&*store, vec![hs_reply("hs-x", &[elsewhere.as_str()], None)]).await;
    assert!(
        matches!(&outcome[0], WebhookOutcome::Unroutable { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        messages(&*store, &elsewhere).await.len(),
        1,
        "nothing added"
    );
    assert!(lease(&*store, "w", &["private"]).await.is_empty());
}

async fn a_sent_then_read_reply_reports_sent_then_read_and_a_dead_one_failed(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let a = open_conversation(&*store, &rules("chat"), "ana").await;
    let b = open_conversation(&*store, &rules("chat"), "bo").await;
    record(&*store, vec![hs_reply("hs-a", &[a.as_str()], None)]).await;
    record(&*store, vec![hs_reply("hs-b", &[b.as_str()], None)]).await;
    let jobs = lease(&*store, "w", &["chat"]).await;
    assert_eq!(jobs.len(), 2);
    for job in &jobs {
        let conversation = store
            .message(&message_of(job))
            .await
            .unwrap()
            .conversation_id;
        let outcome = if conversation == a {
            sent("p-a")
        } else {
            JobOutcome::Dead {
                error: "bot was blocked by the user".into(),
            }
        };
        store.finish_job(job, "w", outcome).await.unwrap();
    }
    // The platform reports the sent one read.
    ingest(
        &*store,
        &rules("chat"),
        vec![InboundEvent::Status(StatusUpdate {
            platform_message_id: "p-a".into(),
            status: DeliveryStatus::Read,
            error: None,
        })],
    )
    .await;

    let mut seen = Vec::new();
    for _ in 0..3 {
        let jobs = lease(&*store, "w", &[HUB]).await;
        for job in &jobs {
            // HubSpot refuses the FAILED report for good: it is dead-lettered.
            let outcome = match reports(std::slice::from_ref(job))[0].1 {
                ReportedStatus::Failed => JobOutcome::Dead {
                    error: "HubSpot refused".into(),
                },
                _ => sent(""),
            };
            store.finish_job(job, "w", outcome).await.unwrap();
        }
        seen.extend(reports(&jobs));
    }
    let of = |id: &str| {
        seen.iter()
            .filter(|r| r.0 == id)
            .map(|r| (r.1, r.2.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of("hs-a"),
        [(ReportedStatus::Sent, None), (ReportedStatus::Read, None)]
    );
    assert_eq!(
        of("hs-b"),
        [(
            ReportedStatus::Failed,
            Some("bot was blocked by the user".into())
        )]
    );

    // Redriving the dead report sends the report again, not the failed reply.
    let dead = store
        .deliveries(channel_bridge::store::JobState::Dead, &page(10))
        .await
        .unwrap()
        .items;
    let report = dead.iter().find(|d| d.kind == "hubspot_status").unwrap();
    store.retry_delivery(&report.id, Utc::now()).await.unwrap();
    let failed_reply = dead.iter().find(|d| d.kind == "deliver").unwrap();
    let message = failed_reply.message_id.clone().unwrap();
    assert_eq!(
        store.message(&message).await.unwrap().delivery.status,
        DeliveryStatus::Failed
    );
    assert!(lease(&*store, "w", &["chat"]).await.is_empty(), "no resend");
}

async fn replies_of_other_sources_report_nothing_to_hubspot(store: Arc<dyn Store>, _: &Backend) {
    let conversation = open_conversation(&*store, &rules("chat"), "ana").await;
    reply(&*store, &conversation, "from our own desk").await;
    deliver_next(&*store, "chat", "p-1").await;
    assert!(lease(&*store, "w", &[HUB]).await.is_empty());
}

async fn a_deauthorized_account_parks_publishes_until_it_is_authorized_again(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let mut linked = rules("chat");
    linked.hubspot_account = Some("2002".into());
    post(&*store, &linked, Msg::new("in-1", "ana")).await;
    record(
        &*store,
        vec![account(
            "2002",
            Some(false),
            false,
            "CHANNEL_ACCOUNT_UPDATED",
        )],
    )
    .await;
    let accounts = store.hubspot().hubspot_accounts().await.unwrap();
    assert_eq!(accounts.len(), 1);
    assert!(!accounts[0].usable());
    assert_eq!(accounts[0].last_event, "CHANNEL_ACCOUNT_UPDATED");

    let jobs = lease(&*store, "w", &[HUB]).await;
    assert_eq!(jobs.len(), 1);
    let reason = format!("{PARKED_PREFIX}HubSpot channel account 2002 is not authorized");
    store
        .finish_job(
            &jobs[0],
            "w",
            JobOutcome::Park {
                at: Utc::now() + Duration::hours(1),
                reason: reason.clone(),
            },
        )
        .await
        .unwrap();
    assert!(lease(&*store, "w", &[HUB]).await.is_empty(), "parked");
    let pending = store
        .deliveries(channel_bridge::store::JobState::Pending, &page(10))
        .await
        .unwrap()
        .items;
    assert_eq!(pending[0].last_error.as_deref(), Some(reason.as_str()));
    assert_eq!(pending[0].attempts, 0, "parking is not an attempt");

    // Renamed, still not authorized: still parked.
    record(
        &*store,
        vec![account("2002", None, false, "CHANNEL_ACCOUNT_UPDATED")],
    )
    .await;
    assert!(!store.hubspot().hubspot_accounts().await.unwrap()[0].usable());
    record(
        &*store,
        vec![account(
            "2002",
            Some(true),
            false,
            "CHANNEL_ACCOUNT_UPDATED",
        )],
    )
    .await;
    let resumed = lease(&*store, "w", &[HUB]).await;
    assert_eq!(resumed.len(), 1, "re-authorizing makes it due at once");
    assert_eq!(resumed[0].attempts, 0);

    record(
        &*store,
        vec![account("2002", None, true, "CHANNEL_ACCOUNT_PURGED")],
    )
    .await;
    let purged = &store.hubspot().hubspot_accounts().await.unwrap()[0];
    assert!(purged.deleted && !purged.usable());
}

async fn old_event_payloads_are_cleared_and_their_keys_still_deduplicate(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let conversation = open_conversation(&*store, &rules("chat"), "ana").await;
    record(
        &*store,
        vec![hs_reply("hs-old", &[conversation.as_str()], None)],
    )
    .await;
    let hubspot = store.hubspot();
    let before_it = Utc::now() - Duration::hours(1);
    assert_eq!(hubspot.clear_event_payloads(before_it).await.unwrap(), 0);
    let after_it = Utc::now() + Duration::seconds(1);
    assert_eq!(hubspot.clear_event_payloads(after_it).await.unwrap(), 1);
    assert_eq!(hubspot.clear_event_payloads(after_it).await.unwrap(), 0);
    let again = record(
        &*store,
        vec![hs_reply("hs-old", &[conversation.as_str()], None)],
    )
    .await;
    assert_eq!(again, [WebhookOutcome::Duplicate]);
}

/// A contact with several identifiers on the channel is reached at the first by kind in
/// byte order, by a reply and by a HubSpot publish alike, even where PostgreSQL sorts text
/// by a language's rules (a database created with such a locale): the two once disagreed.
async fn a_send_and_a_publish_name_the_same_identifier_whatever_the_databases_collation(
    store: Arc<dyn Store>,
    backend: &Backend,
) {
    if let Backend::Postgres { .. } = backend {
        // ICU's root order puts "alpha" before "Zeta"; byte order puts "Zeta" first.
        backend
            .execute(r#"ALTER TABLE contact_identifiers ALTER COLUMN kind TYPE text COLLATE "und-x-icu""#)
            .await;
    }
    let inbound = post(&*store, &rules("chat"), Msg::new("m-1", "ana")).await;
    let conversation = store.conversation(&inbound.conversation).await.unwrap();
    let seed = Seed(backend);
    let contact = conversation.contact.id.as_str();
    seed.identifier(contact, "chat", "alpha", "a-1").await;
    seed.identifier(contact, "chat", "Zeta", "z-1").await;

    let sent = reply(&*store, &inbound.conversation, "hi").await;
    let to = store.outbound(&sent.id).await.unwrap().to;
    let published = store.hubspot().publish_source(&inbound.message).await;
    let expected = Identifier {
        kind: "Zeta".into(),
        value: "z-1".into(),
    };
    assert_eq!(to, expected);
    assert_eq!(published.unwrap().contact, expected);
}
