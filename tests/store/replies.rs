//! Replies: stored with their delivery job, with a ticket change or through another
//! channel; what a send needs; delivery status from reports and watermarks.

use std::sync::Arc;

use channel_bridge::model::event::{InboundEvent, StatusUpdate, StatusWatermark};
use channel_bridge::model::{
    ConversationId, ConversationStatus, DeliveryStatus, Direction, Identifier, MessageId,
};
use channel_bridge::store::{ConversationUpdate, IngestOutcome, JobState, Store, StoreError, Via};
use chrono::{Duration, Utc};

use crate::support::*;

conformance!(
    a_reply_is_stored_queued_with_its_delivery_job,
    a_reply_quotes_only_the_message_the_rep_chose,
    a_reply_may_only_answer_a_message_of_its_own_conversation,
    a_reply_to_an_unknown_or_trashed_conversation_is_not_found,
    a_reply_with_a_ticket_change_stores_both,
    a_reply_whose_ticket_change_is_refused_stores_nothing,
    a_reply_via_another_channel_joins_the_contacts_conversation_there_on_the_same_ticket,
    a_reply_via_an_identifier_of_another_contact_is_a_conflict,
    outbound_has_what_an_adapter_needs_to_send,
    status_reports_move_a_reply_forward_only,
    a_failure_report_fails_a_sent_reply_with_its_error,
    a_status_that_arrives_before_its_send_completes_is_applied_when_it_does,
    a_read_watermark_marks_every_reply_sent_before_it_as_read,
    a_watermark_before_a_reply_was_sent_leaves_it_alone,
    a_watermark_moves_neither_queued_replies_nor_other_contacts_replies,
);

async fn a_reply_is_stored_queued_with_its_delivery_job(store: Arc<dyn Store>, _: &Backend) {
    let conversation = open_conversation(&*store, &rules("chat"), "ana").await;
    let before = store.conversation(&conversation).await.unwrap();
    let reply = reply(&*store, &conversation, "On its way!").await;

    assert!(reply.id.as_str().starts_with("msg_"));
    assert_eq!(reply.conversation_id, conversation);
    assert_eq!(reply.channel_id, "chat");
    assert_eq!(reply.direction, Direction::Outbound);
    assert_eq!(reply.sender, rep("alice"));
    assert_eq!(reply.parts, text("On its way!"));
    assert_eq!(reply.platform_message_id, None);
    assert_eq!(reply.delivery.status, DeliveryStatus::Queued);
    assert_eq!(
        (reply.delivery.attempts, reply.delivery.error.clone()),
        (0, None)
    );
    assert_eq!(store.message(&reply.id).await.unwrap(), reply);
    assert_eq!(messages(&*store, &conversation).await.last(), Some(&reply));

    let after = store.conversation(&conversation).await.unwrap();
    assert!(after.last_message_at >= before.last_message_at);
    assert_eq!(after.last_message_at, reply.created_at);

    let jobs = store
        .deliveries(JobState::Pending, &page(10))
        .await
        .unwrap()
        .items;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert!(job.id.as_str().starts_with("job_"));
    assert_eq!(job.kind, "deliver");
    assert_eq!(job.state, JobState::Pending);
    assert_eq!(job.channel_id, "chat");
    assert_eq!(job.conversation_id.as_deref(), Some(conversation.as_str()));
    assert_eq!(job.message_id.as_ref(), Some(&reply.id));
    assert_eq!((job.attempts, job.last_error.clone()), (0, None));
}

async fn a_reply_quotes_only_the_message_the_rep_chose(store: Arc<dyn Store>, _: &Backend) {
    let rules = rules("chat");
    let first = post(&*store, &rules, Msg::new("m1", "ana")).await;
    post(&*store, &rules, Msg::new("m2", "ana")).await;
    reply(&*store, &first.conversation, "a rep's reply is not inbound").await;

    let by_default = reply(&*store, &first.conversation, "hi").await;
    assert_eq!(by_default.reply_to, None);

    let mut chosen = new_reply(&first.conversation, "about your first message");
    chosen.reply_to = Some(first.message.clone());
    let chosen = store.create_reply(chosen).await.unwrap();
    assert_eq!(chosen.reply_to, Some(first.message));
}

async fn a_reply_may_only_answer_a_message_of_its_own_conversation(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let rules = rules("chat");
    let ana = post(&*store, &rules, Msg::new("m1", "ana")).await;
    let bo = post(&*store, &rules, Msg::new("m2", "bo")).await;
    for target in [bo.message.clone(), MessageId::new()] {
        let mut r = new_reply(&ana.conversation, "hi");
        r.reply_to = Some(target);
        match store.create_reply(r).await {
            Err(StoreError::Invalid(_)) => {}
            other => panic!("expected invalid, got {other:?}"),
        }
    }
    assert_eq!(messages(&*store, &ana.conversation).await.len(), 1);
    let pending = store
        .deliveries(JobState::Pending, &page(10))
        .await
        .unwrap();
    assert!(pending.items.is_empty(), "no job either");
}

async fn a_reply_to_an_unknown_or_trashed_conversation_is_not_found(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let trashed = open_conversation(&*store, &rules("chat"), "ana").await;
    store.delete_conversation(&trashed, &actor()).await.unwrap();
    for conversation in [ConversationId::new(), trashed] {
        match store.create_reply(new_reply(&conversation, "hi")).await {
            Err(StoreError::NotFound(_)) => {}
            other => panic!("expected not found, got {other:?}"),
        }
    }
    let pending = store
        .deliveries(JobState::Pending, &page(10))
        .await
        .unwrap();
    assert!(pending.items.is_empty());
}

async fn a_reply_with_a_ticket_change_stores_both(store: Arc<dyn Store>, _: &Backend) {
    let conversation = open_conversation(&*store, &rules("chat"), "ana").await;
    let mut r = new_reply(&conversation, "Refunded!");
    let mut change = to_status("resolved");
    change.properties = Some(object(serde_json::json!({"resolution": "refunded"})));
    r.ticket_change = Some(change);
    let reply = store.create_reply(r).await.unwrap();

    let ticket = ticket_of(&*store, &conversation).await;
    assert_eq!(ticket.status, "resolved");
    assert_eq!(ticket.properties["resolution"], "refunded");
    assert!(ticket.closed_at.is_some());
    assert_eq!(
        store.conversation(&conversation).await.unwrap().status,
        ConversationStatus::Closed
    );
    assert_eq!(store.message(&reply.id).await.unwrap().id, reply.id);
    let history = store.ticket_history(&ticket.id).await.unwrap();
    let change = history
        .iter()
        .find(|e| e.entity == "ticket" && e.action == "status_changed")
        .expect("the status change is in the history");
    assert_eq!(change.actor, "alice", "changed by the rep who replied");
}

async fn a_reply_whose_ticket_change_is_refused_stores_nothing(store: Arc<dyn Store>, _: &Backend) {
    let conversation = open_conversation(&*store, &rules("chat"), "ana").await;
    let before = ticket_of(&*store, &conversation).await;
    let mut r = new_reply(&conversation, "Refunded!");
    r.ticket_change = Some(to_status("resolved")); // without its required resolution
    match store.create_reply(r).await {
        Err(StoreError::Invalid(why)) => assert!(why.contains("resolution"), "{why}"),
        other => panic!("expected invalid, got {other:?}"),
    }
    assert_eq!(ticket_of(&*store, &conversation).await, before);
    assert_eq!(messages(&*store, &conversation).await.len(), 1);
    let pending = store
        .deliveries(JobState::Pending, &page(10))
        .await
        .unwrap();
    assert!(pending.items.is_empty());
}

fn email(address: &str) -> Identifier {
    Identifier {
        kind: "email".into(),
        value: address.into(),
    }
}

async fn a_reply_via_another_channel_joins_the_contacts_conversation_there_on_the_same_ticket(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let chat = open_conversation(&*store, &rules("chat"), "ana").await;
    store
        .update_conversation(
            &chat,
            ConversationUpdate {
                owner_id: Some(Some("alice".into())),
                ..Default::default()
            },
            &actor(),
        )
        .await
        .unwrap();
    let via = || Via {
        channel_id: "mail".into(),
        identifier: email("ana@example.com"),
    };
    let mut r = new_reply(&chat, "Answering by email");
    r.via = Some(via());
    let first = store.create_reply(r).await.unwrap();

    assert_ne!(first.conversation_id, chat);
    assert_eq!(first.channel_id, "mail");
    let (chat_conversation, mail) = (
        store.conversation(&chat).await.unwrap(),
        store.conversation(&first.conversation_id).await.unwrap(),
    );
    assert_eq!(mail.channel_id, "mail");
    assert_eq!(mail.status, ConversationStatus::Open);
    assert_eq!(mail.ticket_id, chat_conversation.ticket_id);
    assert_eq!(mail.contact.id, chat_conversation.contact.id);
    assert_eq!(mail.owner_id.as_deref(), Some("alice"));
    let ticket = store.ticket(&mail.ticket_id).await.unwrap();
    assert_eq!(ticket.conversation_ids, vec![chat.clone(), mail.id.clone()]);
    let contact = store.contact(&mail.contact.id).await.unwrap();
    assert!(
        contact
            .identifiers
            .iter()
            .any(|i| i.channel_id == "mail" && i.value == "ana@example.com"),
        "{contact:?}"
    );
    assert_eq!(
        store.outbound(&first.id).await.unwrap().to,
        email("ana@example.com")
    );
    let job = &store
        .deliveries(JobState::Pending, &page(10))
        .await
        .unwrap()
        .items[0];
    assert_eq!(job.channel_id, "mail");
    assert_eq!(job.conversation_id.as_deref(), Some(mail.id.as_str()));

    // The next reply through that channel goes into the same conversation.
    let mut r = new_reply(&chat, "And again");
    r.via = Some(via());
    let second = store.create_reply(r).await.unwrap();
    assert_eq!(second.conversation_id, mail.id);
    assert_eq!(
        store
            .ticket(&mail.ticket_id)
            .await
            .unwrap()
            .conversation_ids
            .len(),
        2
    );
}

async fn a_reply_via_an_identifier_of_another_contact_is_a_conflict(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    // Bo wrote in by email, so that address is his.
    post(
        &*store,
        &rules("mail"),
        Msg::new("e1", "bo").identifier(email("bo@example.com")),
    )
    .await;
    let ana = open_conversation(&*store, &rules("chat"), "ana").await;
    let mut r = new_reply(&ana, "hi");
    r.via = Some(Via {
        channel_id: "mail".into(),
        identifier: email("bo@example.com"),
    });
    match store.create_reply(r).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(ticket_of(&*store, &ana).await.conversation_ids, vec![ana]);
}

async fn outbound_has_what_an_adapter_needs_to_send(store: Arc<dyn Store>, _: &Backend) {
    let inbound = post(
        &*store,
        &rules("chat"),
        Msg::new("m1", "ana").thread("chat-9"),
    )
    .await;
    let mut quoting = new_reply(&inbound.conversation, "hello back");
    quoting.reply_to = Some(inbound.message.clone());
    let reply = store.create_reply(quoting).await.unwrap();
    let outbound = store.outbound(&reply.id).await.unwrap();
    assert_eq!(outbound.message_id, reply.id);
    assert_eq!(outbound.conversation_id, inbound.conversation);
    assert_eq!(outbound.platform_thread_id.as_deref(), Some("chat-9"));
    assert_eq!(outbound.to, user("ana"));
    assert_eq!(
        outbound.reply_to.as_deref(),
        Some("m1"),
        "the platform's id of the message the rep chose"
    );
    assert_eq!(outbound.parts, text("hello back"));
    // Inbound messages are not sent anywhere.
    assert!(matches!(
        store.outbound(&inbound.message).await,
        Err(StoreError::NotFound(_))
    ));
}

fn status(platform_id: &str, status: DeliveryStatus, error: Option<&str>) -> InboundEvent {
    InboundEvent::Status(StatusUpdate {
        platform_message_id: platform_id.into(),
        status,
        error: error.map(str::to_owned),
    })
}

async fn status_reports_move_a_reply_forward_only(store: Arc<dyn Store>, _: &Backend) {
    let rules = rules("chat");
    let conversation = open_conversation(&*store, &rules, "ana").await;
    let reply = reply(&*store, &conversation, "hi").await;
    deliver_next(&*store, "chat", "out-1").await;
    let sent = store.message(&reply.id).await.unwrap();
    assert_eq!(sent.delivery.status, DeliveryStatus::Sent);
    assert_eq!(sent.platform_message_id.as_deref(), Some("out-1"));
    assert_eq!(sent.delivery.attempts, 1);

    let steps = [
        (DeliveryStatus::Delivered, true, DeliveryStatus::Delivered),
        (DeliveryStatus::Read, true, DeliveryStatus::Read),
        (DeliveryStatus::Delivered, false, DeliveryStatus::Read),
        (DeliveryStatus::Sent, false, DeliveryStatus::Read),
        (DeliveryStatus::Failed, false, DeliveryStatus::Read),
    ];
    for (reported, applied, now) in steps {
        let outcome = ingest(&*store, &rules, vec![status("out-1", reported, None)]).await;
        assert_eq!(
            outcome,
            vec![IngestOutcome::Status {
                id: "out-1".into(),
                applied
            }],
            "{reported:?}"
        );
        assert_eq!(
            store.message(&reply.id).await.unwrap().delivery.status,
            now,
            "after {reported:?}"
        );
    }
}

async fn a_failure_report_fails_a_sent_reply_with_its_error(store: Arc<dyn Store>, _: &Backend) {
    let rules = rules("chat");
    let conversation = open_conversation(&*store, &rules, "ana").await;
    let reply = reply(&*store, &conversation, "hi").await;
    deliver_next(&*store, "chat", "out-1").await;
    let outcome = ingest(
        &*store,
        &rules,
        vec![status(
            "out-1",
            DeliveryStatus::Failed,
            Some("user blocked the bot"),
        )],
    )
    .await;
    assert_eq!(
        outcome,
        vec![IngestOutcome::Status {
            id: "out-1".into(),
            applied: true
        }]
    );
    let failed = store.message(&reply.id).await.unwrap();
    assert_eq!(failed.delivery.status, DeliveryStatus::Failed);
    assert_eq!(
        failed.delivery.error.as_deref(),
        Some("user blocked the bot")
    );
    // Failed is final.
    ingest(
        &*store,
        &rules,
        vec![status("out-1", DeliveryStatus::Read, None)],
    )
    .await;
    assert_eq!(
        store.message(&reply.id).await.unwrap().delivery.status,
        DeliveryStatus::Failed
    );
}

async fn a_status_that_arrives_before_its_send_completes_is_applied_when_it_does(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let chat = rules("chat");
    let conversation = open_conversation(&*store, &chat, "ana").await;
    let reply = reply(&*store, &conversation, "hi").await;
    let jobs = lease(&*store, "worker", &["chat"]).await;

    // The platform is faster than our commit of the send.
    let early = ingest(
        &*store,
        &chat,
        vec![status("out-9", DeliveryStatus::Delivered, None)],
    )
    .await;
    assert_eq!(
        early,
        vec![IngestOutcome::Status {
            id: "out-9".into(),
            applied: false
        }]
    );
    // The same platform id on another channel is about another message.
    ingest(
        &*store,
        &rules("wa"),
        vec![status("out-9", DeliveryStatus::Read, None)],
    )
    .await;

    store
        .finish_job(&jobs[0], "worker", sent("out-9"))
        .await
        .unwrap();
    let message = store.message(&reply.id).await.unwrap();
    assert_eq!(message.delivery.status, DeliveryStatus::Delivered);
    assert_eq!(message.platform_message_id.as_deref(), Some("out-9"));
}

fn psid() -> Identifier {
    Identifier {
        kind: "messenger_psid".into(),
        value: "psid-1".into(),
    }
}

/// A Messenger-like channel with one conversation and `n` replies to it already sent.
async fn with_sent_replies(store: &dyn Store, n: usize) -> ConversationId {
    let inbound = post(
        store,
        &rules("page"),
        Msg::new("mid-1", "x").identifier(psid()),
    )
    .await;
    for i in 0..n {
        reply(store, &inbound.conversation, &format!("reply {i}")).await;
        deliver_next(store, "page", &format!("out-{i}")).await;
    }
    inbound.conversation
}

fn watermark(contact: Identifier, status: DeliveryStatus, up_to: Duration) -> InboundEvent {
    InboundEvent::Watermark(StatusWatermark {
        contact,
        status,
        up_to: Utc::now() + up_to,
    })
}

async fn a_read_watermark_marks_every_reply_sent_before_it_as_read(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let conversation = with_sent_replies(&*store, 3).await;
    let mark = watermark(psid(), DeliveryStatus::Read, Duration::seconds(1));
    let outcome = ingest(&*store, &rules("page"), vec![mark]).await;
    assert_eq!(outcome, vec![IngestOutcome::Watermark { updated: 3 }]);
    let statuses: Vec<_> = messages(&*store, &conversation)
        .await
        .iter()
        .skip(1)
        .map(|m| m.delivery.status)
        .collect();
    assert_eq!(statuses, vec![DeliveryStatus::Read; 3]);
}

async fn a_watermark_before_a_reply_was_sent_leaves_it_alone(store: Arc<dyn Store>, _: &Backend) {
    let conversation = with_sent_replies(&*store, 1).await;
    let mark = watermark(psid(), DeliveryStatus::Delivered, -Duration::hours(1));
    let outcome = ingest(&*store, &rules("page"), vec![mark]).await;
    assert_eq!(outcome, vec![IngestOutcome::Watermark { updated: 0 }]);
    let reply = messages(&*store, &conversation).await.pop().unwrap();
    assert_eq!(reply.delivery.status, DeliveryStatus::Sent);
}

async fn a_watermark_moves_neither_queued_replies_nor_other_contacts_replies(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let page_rules = rules("page");
    let conversation = with_sent_replies(&*store, 1).await;
    let queued = reply(&*store, &conversation, "not sent yet").await;
    let other = Identifier {
        kind: "messenger_psid".into(),
        value: "psid-2".into(),
    };
    let theirs = post(
        &*store,
        &page_rules,
        Msg::new("mid-2", "y").identifier(other.clone()),
    )
    .await;
    reply(&*store, &theirs.conversation, "to the other contact").await;

    // Only the one sent reply to psid-1 moves.
    let mark = watermark(psid(), DeliveryStatus::Delivered, Duration::seconds(1));
    let outcome = ingest(&*store, &page_rules, vec![mark]).await;
    assert_eq!(outcome, vec![IngestOutcome::Watermark { updated: 1 }]);
    assert_eq!(
        store.message(&queued.id).await.unwrap().delivery.status,
        DeliveryStatus::Queued
    );
    // A read watermark moves the delivered reply on; a second one finds nothing to move.
    let read = watermark(psid(), DeliveryStatus::Read, Duration::seconds(1));
    let outcome = ingest(&*store, &page_rules, vec![read.clone()]).await;
    assert_eq!(outcome, vec![IngestOutcome::Watermark { updated: 1 }]);
    let outcome = ingest(&*store, &page_rules, vec![read]).await;
    assert_eq!(outcome, vec![IngestOutcome::Watermark { updated: 0 }]);
    assert_eq!(
        messages(&*store, &theirs.conversation).await[1]
            .delivery
            .status,
        DeliveryStatus::Queued
    );
}
