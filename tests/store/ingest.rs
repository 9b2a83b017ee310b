//! Ingest: new messages with their contact, conversation and ticket; deduplication; edits,
//! retractions and quotes; reads of what is not there.

use std::sync::Arc;

use channel_bridge::model::event::{InboundEvent, MessageEdit, StatusUpdate};
use channel_bridge::model::{
    ChannelIdentifier, ContactId, ContactPart, ConversationId, ConversationStatus, DeliveryStatus,
    Direction, EditOrder, LocationPart, Media, MediaPart, MessageId, Part, SenderKind, TextPart,
    TicketId, UnsupportedPart,
};
use channel_bridge::store::{EditSkipped, IngestOutcome, Store, StoreError};
use chrono::Utc;
use serde_json::json;

use crate::support::*;

conformance!(
    a_new_message_is_stored_in_a_new_conversation_with_a_new_ticket_and_contact,
    a_new_ticket_takes_the_channels_ticket_defaults,
    every_kind_of_part_comes_back_as_it_was_stored,
    a_redelivered_message_is_stored_once,
    the_same_platform_id_on_another_channel_is_another_message,
    a_batch_answers_each_event_in_order,
    a_known_contact_is_updated_only_with_what_a_message_brings,
    the_same_identifier_on_two_channels_is_two_contacts,
    an_inbound_quote_links_the_quoted_message_when_it_is_known,
    an_edit_replaces_the_parts_and_keeps_each_earlier_version,
    a_hubspot_linked_channel_queues_a_note_after_its_message_for_each_edit_and_one_unsend,
    an_edit_without_a_time_is_stamped_when_it_arrives,
    edits_apply_once_in_the_platforms_order_and_never_go_back,
    a_retraction_keeps_the_message_and_marks_it_once,
    reads_of_unknown_ids_are_not_found,
);

async fn a_new_message_is_stored_in_a_new_conversation_with_a_new_ticket_and_contact(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let before = to_ms(Utc::now());
    let outcome = ingest(
        &*store,
        &rules("chat"),
        vec![
            Msg::new("m1", "ana")
                .name("Ana")
                .text("Where is my order?")
                .into(),
        ],
    )
    .await;
    let stored = Stored::of(&outcome[0]);
    assert!(matches!(&outcome[0], IngestOutcome::Stored { id, .. } if id == "m1"));
    assert!(stored.new_conversation);

    let conversation = store.conversation(&stored.conversation).await.unwrap();
    assert_eq!(conversation.id, stored.conversation);
    assert_eq!(conversation.channel_id, "chat");
    assert_eq!(conversation.status, ConversationStatus::Open);
    assert_eq!(conversation.owner_id, None);
    assert_eq!(conversation.platform_thread_id, None);
    assert_eq!(
        conversation.thread_key,
        format!("contact:{}", conversation.contact.id)
    );
    assert!(conversation.created_at >= before);
    assert_eq!(conversation.last_message_at, conversation.created_at);
    assert_eq!(conversation.contact.display_name.as_deref(), Some("Ana"));
    assert_eq!(
        conversation.contact.identifiers,
        vec![ChannelIdentifier {
            channel_id: "chat".into(),
            kind: "app_user".into(),
            value: "ana".into(),
        }]
    );
    assert_eq!(
        store.contact(&conversation.contact.id).await.unwrap(),
        conversation.contact
    );

    let ticket = store.ticket(&conversation.ticket_id).await.unwrap();
    assert_eq!(ticket.pipeline, "support");
    assert_eq!(ticket.status, "new");
    assert_eq!(ticket.owner_id, None);
    assert_eq!(ticket.conversation_ids, vec![stored.conversation.clone()]);
    assert_eq!(ticket.closed_at, None);

    let message = store.message(&stored.message).await.unwrap();
    assert_eq!(message.id, stored.message);
    assert_eq!(message.conversation_id, stored.conversation);
    assert_eq!(message.channel_id, "chat");
    assert_eq!(message.direction, Direction::Inbound);
    assert_eq!(message.platform_message_id.as_deref(), Some("m1"));
    assert_eq!(message.sender.kind, SenderKind::Contact);
    assert_eq!(message.sender.id, conversation.contact.id.as_str());
    assert_eq!(message.parts, text("Where is my order?"));
    assert_eq!(message.delivery.status, DeliveryStatus::Received);
    assert_eq!(message.reply_to, None);
    assert_eq!((message.edited_at, message.retracted_at), (None, None));
    assert!(message.history.is_empty());
    assert_eq!(messages(&*store, &stored.conversation).await, vec![message]);
}

async fn a_new_ticket_takes_the_channels_ticket_defaults(store: Arc<dyn Store>, _: &Backend) {
    let mut rules = rules("chat");
    rules.ticket.status = "waiting".into();
    rules.ticket.priority = Some("high".into());
    rules.ticket.properties = object(json!({"source": "chat", "tier": 2}));
    let conversation = open_conversation(&*store, &rules, "ana").await;
    let ticket = ticket_of(&*store, &conversation).await;
    assert_eq!(ticket.status, "waiting");
    assert_eq!(ticket.priority.as_deref(), Some("high"));
    assert_eq!(
        ticket.properties,
        object(json!({"source": "chat", "tier": 2}))
    );
}

async fn every_kind_of_part_comes_back_as_it_was_stored(store: Arc<dyn Store>, _: &Backend) {
    let media = |caption: Option<&str>| MediaPart {
        media: Media {
            platform_ref: Some("file-1".into()),
            url: Some("https://cdn.example.com/a.jpg".into()),
            mime_type: Some("image/jpeg".into()),
            size_bytes: Some(12_345),
            filename: Some("a.jpg".into()),
            duration_s: Some(1.5),
        },
        caption: caption.map(str::to_owned),
    };
    let parts = vec![
        Part::Text(TextPart {
            text: "ünïcødé ✓ \"quoted\" 'single' \\ back".into(),
        }),
        Part::Image(media(Some("my receipt"))),
        Part::VoiceNote(media(None)),
        Part::Location(LocationPart {
            latitude: 52.520008,
            longitude: 13.404954,
            name: Some("Berlin".into()),
            address: None,
        }),
        Part::Contact(ContactPart {
            name: Some("Bo".into()),
            phones: vec!["+4930123".into()],
            emails: vec![],
        }),
        Part::Unsupported(UnsupportedPart {
            platform_type: "poll".into(),
            raw: Some(json!({"question": "tea?", "options": [1, 2]})),
        }),
    ];
    let stored = post(
        &*store,
        &rules("chat"),
        Msg::new("m1", "ana").parts(parts.clone()),
    )
    .await;
    assert_eq!(store.message(&stored.message).await.unwrap().parts, parts);
}

async fn a_redelivered_message_is_stored_once(store: Arc<dyn Store>, _: &Backend) {
    let rules = rules("chat");
    let first = post(&*store, &rules, Msg::new("m1", "ana")).await;
    let again = ingest(&*store, &rules, vec![Msg::new("m1", "ana").into()]).await;
    assert_eq!(
        again,
        vec![IngestOutcome::Duplicate {
            id: "m1".into(),
            message_id: first.message.clone(),
        }]
    );
    // Within one webhook too.
    let batch = ingest(
        &*store,
        &rules,
        vec![Msg::new("m2", "ana").into(), Msg::new("m2", "ana").into()],
    )
    .await;
    let second = Stored::of(&batch[0]);
    assert_eq!(
        batch[1],
        IngestOutcome::Duplicate {
            id: "m2".into(),
            message_id: second.message.clone(),
        }
    );
    assert_eq!(messages(&*store, &first.conversation).await.len(), 2);
}

async fn the_same_platform_id_on_another_channel_is_another_message(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let chat = post(&*store, &rules("chat"), Msg::new("m1", "ana")).await;
    let wa = post(&*store, &rules("wa"), Msg::new("m1", "ana")).await;
    assert_ne!(chat.message, wa.message);
    assert_ne!(chat.conversation, wa.conversation);
    assert!(wa.new_conversation);
}

async fn a_batch_answers_each_event_in_order(store: Arc<dyn Store>, _: &Backend) {
    let outcome = ingest(
        &*store,
        &rules("chat"),
        vec![
            Msg::new("m1", "ana").into(),
            Msg::new("m2", "bo").into(),
            Msg::new("m3", "ana").into(),
            InboundEvent::Status(StatusUpdate {
                platform_message_id: "nobody-knows".into(),
                status: DeliveryStatus::Read,
                error: None,
            }),
            InboundEvent::Retract {
                platform_message_id: "nobody-knows".into(),
            },
            InboundEvent::Edit(MessageEdit {
                platform_message_id: "nobody-knows".into(),
                parts: text("x"),
                edited_at: None,
                order: None,
            }),
        ],
    )
    .await;
    assert_eq!(outcome.len(), 6);
    let (ana, bo, ana_again) = (
        Stored::of(&outcome[0]),
        Stored::of(&outcome[1]),
        Stored::of(&outcome[2]),
    );
    assert!(ana.new_conversation && bo.new_conversation && !ana_again.new_conversation);
    assert_ne!(ana.conversation, bo.conversation);
    assert_eq!(ana.conversation, ana_again.conversation);
    assert_eq!(
        outcome[3..],
        [
            IngestOutcome::Status {
                id: "nobody-knows".into(),
                applied: false
            },
            IngestOutcome::Retracted {
                id: "nobody-knows".into(),
                applied: false
            },
            IngestOutcome::Edited {
                id: "nobody-knows".into(),
                applied: false,
                skipped: Some(EditSkipped::UnknownMessage),
            },
        ]
    );
    let texts: Vec<_> = messages(&*store, &ana.conversation)
        .await
        .into_iter()
        .map(|m| m.platform_message_id)
        .collect();
    assert_eq!(texts, vec![Some("m1".into()), Some("m3".into())]);
}

async fn a_known_contact_is_updated_only_with_what_a_message_brings(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let rules = rules("chat");
    let first = post(
        &*store,
        &rules,
        Msg::new("m1", "ana").name("Ana").email("ana@example.com"),
    )
    .await;
    let contact = store
        .conversation(&first.conversation)
        .await
        .unwrap()
        .contact
        .id;
    // A message that says nothing about the sender changes nothing.
    post(&*store, &rules, Msg::new("m2", "ana")).await;
    let c = store.contact(&contact).await.unwrap();
    assert_eq!(c.display_name.as_deref(), Some("Ana"));
    assert_eq!(c.email.as_deref(), Some("ana@example.com"));
    // A new name replaces the old one; the email stays.
    let third = post(&*store, &rules, Msg::new("m3", "ana").name("Ana Bell")).await;
    let c = store.contact(&contact).await.unwrap();
    assert_eq!(c.display_name.as_deref(), Some("Ana Bell"));
    assert_eq!(c.email.as_deref(), Some("ana@example.com"));
    // A new email alone keeps the name.
    post(
        &*store,
        &rules,
        Msg::new("m4", "ana").email("ana.bell@example.com"),
    )
    .await;
    let c = store.contact(&contact).await.unwrap();
    assert_eq!(c.display_name.as_deref(), Some("Ana Bell"));
    assert_eq!(c.email.as_deref(), Some("ana.bell@example.com"));
    assert_eq!(third.conversation, first.conversation);
    let conversation = store.conversation(&third.conversation).await.unwrap();
    assert_eq!(conversation.contact.id, contact);
}

async fn the_same_identifier_on_two_channels_is_two_contacts(store: Arc<dyn Store>, _: &Backend) {
    let chat = post(&*store, &rules("chat"), Msg::new("m1", "ana")).await;
    let wa = post(&*store, &rules("wa"), Msg::new("m1", "ana")).await;
    let contact = |c: ConversationId| {
        let store = store.clone();
        async move { store.conversation(&c).await.unwrap().contact.id }
    };
    let (a, b): (ContactId, ContactId) = (
        contact(chat.conversation).await,
        contact(wa.conversation).await,
    );
    assert_ne!(a, b);
    assert_eq!(
        store.contact(&b).await.unwrap().identifiers[0].channel_id,
        "wa"
    );
}

async fn an_inbound_quote_links_the_quoted_message_when_it_is_known(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let rules = rules("chat");
    let first = post(&*store, &rules, Msg::new("m1", "ana")).await;
    let quoting = post(&*store, &rules, Msg::new("m2", "ana").reply_to("m1")).await;
    assert_eq!(
        store.message(&quoting.message).await.unwrap().reply_to,
        Some(first.message)
    );
    // A quote of something never stored is kept as a message without a link.
    let unknown = post(&*store, &rules, Msg::new("m3", "ana").reply_to("m0")).await;
    assert_eq!(
        store.message(&unknown.message).await.unwrap().reply_to,
        None
    );
}

async fn an_edit_replaces_the_parts_and_keeps_each_earlier_version(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let rules = rules("chat");
    let stored = post(&*store, &rules, Msg::new("m1", "ana").text("helo")).await;
    let edit = |parts: &str, at: i64| {
        InboundEvent::Edit(MessageEdit {
            platform_message_id: "m1".into(),
            parts: text(parts),
            edited_at: Some(channel_bridge::model::from_millis(at)),
            order: Some(EditOrder(vec![at])),
        })
    };
    let at = 1_800_000_000_000;
    let outcome = ingest(&*store, &rules, vec![edit("hello", at)]).await;
    assert_eq!(
        outcome,
        vec![IngestOutcome::Edited {
            id: "m1".into(),
            applied: true,
            skipped: None,
        }]
    );
    ingest(&*store, &rules, vec![edit("hello!", at + 1000)]).await;

    let message = store.message(&stored.message).await.unwrap();
    assert_eq!(message.parts, text("hello!"));
    assert_eq!(
        message.edited_at,
        Some(channel_bridge::model::from_millis(at + 1000))
    );
    let earlier: Vec<_> = message.history.iter().map(|r| r.parts.clone()).collect();
    assert_eq!(earlier, vec![text("helo"), text("hello")]);
    assert!(message.history[0].replaced_at <= message.history[1].replaced_at);
}

async fn a_hubspot_linked_channel_queues_a_note_after_its_message_for_each_edit_and_one_unsend(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    use channel_bridge::store::{JOB_CHANNEL_HUBSPOT, JobKind, PublishNote};
    let mut rules = rules("chat");
    rules.hubspot_account = Some("2002".into());
    let stored = post(&*store, &rules, Msg::new("m1", "ana").text("helo")).await;
    let edit = |parts: &str, at: i64| {
        InboundEvent::Edit(MessageEdit {
            platform_message_id: "m1".into(),
            parts: text(parts),
            edited_at: Some(channel_bridge::model::from_millis(at)),
            order: Some(EditOrder(vec![at])),
        })
    };
    let at = 1_800_000_000_000;
    let retract = || InboundEvent::Retract {
        platform_message_id: "m1".into(),
    };
    ingest(&*store, &rules, vec![edit("hello", at)]).await;
    // A redelivered edit and a second unsend change nothing, so queue nothing.
    ingest(
        &*store,
        &rules,
        vec![edit("hello", at), edit("hello!", at + 1)],
    )
    .await;
    ingest(&*store, &rules, vec![retract(), retract()]).await;
    // An unlinked channel's edits stay in our desk.
    let plain = crate::support::rules("wa");
    post(&*store, &plain, Msg::new("w1", "bo").text("hi")).await;
    ingest(
        &*store,
        &plain,
        vec![InboundEvent::Edit(MessageEdit {
            platform_message_id: "w1".into(),
            parts: text("hi!"),
            edited_at: None,
            order: None,
        })],
    )
    .await;

    // One conversation's publishes run one at a time, in the order they were queued.
    let mut queued = Vec::new();
    loop {
        let jobs = lease(&*store, "w", &[JOB_CHANNEL_HUBSPOT]).await;
        let Some(job) = jobs.first() else { break };
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        match &job.kind {
            JobKind::HubspotPublish { message_id, note } => {
                assert_eq!(message_id, &stored.message);
                queued.push(note.clone());
            }
            other => panic!("not a publish: {other:?}"),
        }
        store.finish_job(job, "w", sent("hs-1")).await.unwrap();
    }
    assert_eq!(
        queued,
        vec![
            None,
            Some(PublishNote::Edited { revision: 1 }),
            Some(PublishNote::Edited { revision: 2 }),
            Some(PublishNote::Retracted),
        ]
    );
}

async fn an_edit_without_a_time_is_stamped_when_it_arrives(store: Arc<dyn Store>, _: &Backend) {
    let rules = rules("chat");
    let stored = post(&*store, &rules, Msg::new("m1", "ana")).await;
    let before = to_ms(Utc::now());
    ingest(
        &*store,
        &rules,
        vec![InboundEvent::Edit(MessageEdit {
            platform_message_id: "m1".into(),
            parts: text("changed"),
            edited_at: None,
            order: None,
        })],
    )
    .await;
    let after = Utc::now();
    let edited = store
        .message(&stored.message)
        .await
        .unwrap()
        .edited_at
        .expect("edited");
    assert!(before <= edited && edited <= after, "{edited}");
}

async fn edits_apply_once_in_the_platforms_order_and_never_go_back(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let rules = rules("chat");
    let stored = post(&*store, &rules, Msg::new("m1", "ana").text("helo")).await;
    let edit = |parts: &str, order: &[i64]| {
        InboundEvent::Edit(MessageEdit {
            platform_message_id: "m1".into(),
            parts: text(parts),
            edited_at: None,
            order: Some(EditOrder(order.to_vec())),
        })
    };
    let skipped = |why| IngestOutcome::Edited {
        id: "m1".into(),
        applied: false,
        skipped: Some(why),
    };
    let applied = IngestOutcome::Edited {
        id: "m1".into(),
        applied: true,
        skipped: None,
    };
    // The second edit arrives first; the first, arriving late, is stale.
    let outcomes = ingest(
        &*store,
        &rules,
        vec![
            edit("hello!", &[200, 2]),
            edit("hello", &[100, 1]),
            edit("hello!", &[200, 2]),
        ],
    )
    .await;
    assert_eq!(
        outcomes,
        vec![
            applied.clone(),
            skipped(EditSkipped::Stale),
            skipped(EditSkipped::Duplicate)
        ]
    );
    // Replayed one webhook at a time, as a platform or an attacker would.
    for _ in 0..20 {
        let again = ingest(&*store, &rules, vec![edit("hello!", &[200, 2])]).await;
        assert_eq!(again, vec![skipped(EditSkipped::Duplicate)]);
    }
    // A later edit back to the first text applies; replaying the one before it then
    // changes nothing.
    let later = ingest(&*store, &rules, vec![edit("helo", &[300, 3])]).await;
    assert_eq!(later, vec![applied]);
    let replay = ingest(&*store, &rules, vec![edit("hello!", &[200, 2])]).await;
    assert_eq!(replay, vec![skipped(EditSkipped::Duplicate)]);

    let message = store.message(&stored.message).await.unwrap();
    assert_eq!(message.parts, text("helo"));
    let earlier: Vec<_> = message.history.iter().map(|r| r.parts.clone()).collect();
    assert_eq!(earlier, vec![text("helo"), text("hello!")]);
}

async fn a_retraction_keeps_the_message_and_marks_it_once(store: Arc<dyn Store>, _: &Backend) {
    let rules = rules("chat");
    let stored = post(&*store, &rules, Msg::new("m1", "ana").text("oops")).await;
    let retract = || InboundEvent::Retract {
        platform_message_id: "m1".into(),
    };
    let outcome = ingest(&*store, &rules, vec![retract()]).await;
    assert_eq!(
        outcome,
        vec![IngestOutcome::Retracted {
            id: "m1".into(),
            applied: true
        }]
    );
    let first = store.message(&stored.message).await.unwrap();
    let at = first.retracted_at.expect("marked retracted");
    assert_eq!(first.parts, text("oops"));

    // Retracted again (a redelivery): still applied, still the first time.
    let again = ingest(&*store, &rules, vec![retract()]).await;
    assert_eq!(
        again,
        vec![IngestOutcome::Retracted {
            id: "m1".into(),
            applied: true
        }]
    );
    assert_eq!(
        store.message(&stored.message).await.unwrap().retracted_at,
        Some(at)
    );
    // Another channel's message with the same id is another message.
    let elsewhere = ingest(&*store, &crate::support::rules("wa"), vec![retract()]).await;
    assert_eq!(
        elsewhere,
        vec![IngestOutcome::Retracted {
            id: "m1".into(),
            applied: false
        }]
    );
}

async fn reads_of_unknown_ids_are_not_found(store: Arc<dyn Store>, _: &Backend) {
    let not_found = |what: &str, r: Result<(), StoreError>| match r {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("{what}: expected not found, got {other:?}"),
    };
    not_found(
        "conversation",
        store.conversation(&ConversationId::new()).await.map(drop),
    );
    not_found("ticket", store.ticket(&TicketId::new()).await.map(drop));
    not_found("contact", store.contact(&ContactId::new()).await.map(drop));
    not_found("message", store.message(&MessageId::new()).await.map(drop));
    not_found(
        "messages",
        store
            .messages(&ConversationId::new(), &page(10))
            .await
            .map(drop),
    );
    not_found(
        "outbound",
        store.outbound(&MessageId::new()).await.map(drop),
    );
    not_found(
        "history",
        store.ticket_history(&TicketId::new()).await.map(drop),
    );
}
