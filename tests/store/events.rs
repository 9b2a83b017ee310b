//! Live events: written with the change they report, read in order from a cursor,
//! filtered by channel and owner; and the wake-up signal streams wait on.

use std::sync::Arc;

use channel_bridge::model::DeliveryStatus;
use channel_bridge::model::event::{InboundEvent, StatusUpdate};
use channel_bridge::store::{ConversationUpdate, Event, EventFilter, Store};
use serde_json::json;

use crate::support::*;

conformance!(
    an_empty_store_has_no_events,
    events_report_messages_assignments_status_changes_and_deliveries_in_order,
    events_after_a_cursor_start_after_it_and_stop_at_the_limit,
    event_streams_filter_by_channel_and_by_owner,
    a_write_wakes_whoever_waits_for_changes,
    a_new_message_event_names_the_contact_and_previews_the_text,
);

async fn all_after(store: &dyn Store, after: i64, filter: &EventFilter) -> Vec<Event> {
    store
        .events_after(after, filter, 1000)
        .await
        .expect("events")
}

async fn an_empty_store_has_no_events(store: Arc<dyn Store>, _: &Backend) {
    assert_eq!(store.latest_event().await.unwrap(), 0);
    assert!(
        all_after(&*store, 0, &EventFilter::default())
            .await
            .is_empty()
    );
}

async fn events_report_messages_assignments_status_changes_and_deliveries_in_order(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let rules = rules("chat");
    let start = store.latest_event().await.unwrap();
    let inbound = post(&*store, &rules, Msg::new("m1", "ana")).await;
    let conversation = inbound.conversation.clone();
    store
        .update_conversation(
            &conversation,
            ConversationUpdate {
                owner_id: Some(Some("alice".into())),
                ..Default::default()
            },
            &actor(),
        )
        .await
        .unwrap();
    let reply = reply(&*store, &conversation, "hi").await;
    deliver_next(&*store, "chat", "out-1").await;
    let ticket = ticket_of(&*store, &conversation).await.id;
    store
        .update_ticket(&ticket, to_status("closed"), &actor())
        .await
        .unwrap();

    let events = all_after(&*store, start, &EventFilter::default()).await;
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "message.created",
            "conversation.assigned",
            "message.created",
            "delivery.updated",
            "ticket.status_changed",
            "conversation.status_changed",
        ]
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id), "ids increase");
    assert!(events[0].id > start);
    assert_eq!(store.latest_event().await.unwrap(), events[5].id);
    for e in &events {
        assert_eq!(e.channel_id.as_deref(), Some("chat"));
        assert_eq!(e.conversation_id.as_deref(), Some(conversation.as_str()));
    }
    assert!(events.windows(2).all(|w| w[0].at <= w[1].at));

    assert_eq!(events[0].owner_id, None, "unassigned when it arrived");
    assert_eq!(events[0].data["message_id"], json!(inbound.message));
    assert_eq!(events[0].data["direction"], "inbound");
    assert_eq!(events[0].data["new_conversation"], true);
    assert_eq!(events[1].owner_id.as_deref(), Some("alice"));
    assert_eq!(events[1].data["owner_id"], "alice");
    assert_eq!(events[2].data["message_id"], json!(reply.id));
    assert_eq!(events[2].data["direction"], "outbound");
    assert_eq!(events[3].data["message_id"], json!(reply.id));
    assert_eq!(events[3].data["status"], "sent");
    assert_eq!(events[4].data["ticket_id"], json!(ticket));
    assert_eq!(events[4].data["status"], "closed");
    assert_eq!(events[4].data["previous_status"], "new");
    assert_eq!(events[5].data["status"], "closed");

    // A status report is an event too.
    ingest(
        &*store,
        &rules,
        vec![InboundEvent::Status(StatusUpdate {
            platform_message_id: "out-1".into(),
            status: DeliveryStatus::Read,
            error: None,
        })],
    )
    .await;
    let last = all_after(&*store, events[5].id, &EventFilter::default()).await;
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].kind, "delivery.updated");
    assert_eq!(last[0].data["status"], "read");
}

async fn events_after_a_cursor_start_after_it_and_stop_at_the_limit(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let rules = rules("chat");
    for i in 0..5 {
        post(&*store, &rules, Msg::new(&format!("m{i}"), "ana")).await;
    }
    let all = all_after(&*store, 0, &EventFilter::default()).await;
    assert_eq!(all.len(), 5);
    let first_two = store
        .events_after(0, &EventFilter::default(), 2)
        .await
        .unwrap();
    assert_eq!(
        first_two.iter().map(|e| e.id).collect::<Vec<_>>(),
        [all[0].id, all[1].id]
    );
    let rest = all_after(&*store, first_two[1].id, &EventFilter::default()).await;
    assert_eq!(
        rest.iter().map(|e| e.id).collect::<Vec<_>>(),
        all[2..].iter().map(|e| e.id).collect::<Vec<_>>()
    );
    assert!(
        all_after(&*store, all[4].id, &EventFilter::default())
            .await
            .is_empty()
    );
}

async fn event_streams_filter_by_channel_and_by_owner(store: Arc<dyn Store>, _: &Backend) {
    let chat = post(&*store, &rules("chat"), Msg::new("m1", "ana")).await;
    let wa = post(&*store, &rules("wa"), Msg::new("m1", "bo")).await;
    store
        .update_conversation(
            &chat.conversation,
            ConversationUpdate {
                owner_id: Some(Some("alice".into())),
                ..Default::default()
            },
            &actor(),
        )
        .await
        .unwrap();
    post(&*store, &rules("chat"), Msg::new("m2", "ana")).await;
    post(&*store, &rules("wa"), Msg::new("m2", "bo")).await;

    let on_wa = all_after(
        &*store,
        0,
        &EventFilter {
            channel: Some("wa".into()),
            owner: None,
        },
    )
    .await;
    assert_eq!(on_wa.len(), 2);
    assert!(
        on_wa
            .iter()
            .all(|e| e.conversation_id.as_deref() == Some(wa.conversation.as_str()))
    );

    // Alice's stream: what happened in her conversation once it was hers.
    let alices = all_after(
        &*store,
        0,
        &EventFilter {
            channel: None,
            owner: Some("alice".into()),
        },
    )
    .await;
    let kinds: Vec<_> = alices.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["conversation.assigned", "message.created"]);
    assert!(
        alices
            .iter()
            .all(|e| e.conversation_id.as_deref() == Some(chat.conversation.as_str()))
    );
    let both = all_after(
        &*store,
        0,
        &EventFilter {
            channel: Some("wa".into()),
            owner: Some("alice".into()),
        },
    )
    .await;
    assert!(both.is_empty());
}

async fn a_write_wakes_whoever_waits_for_changes(store: Arc<dyn Store>, _: &Backend) {
    let mut changes = store.changes();
    changes.borrow_and_update();
    post(&*store, &rules("chat"), Msg::new("m1", "ana")).await;
    assert!(
        changes.has_changed().expect("the store is open"),
        "an ingest that made an event must wake streams"
    );
}

async fn a_new_message_event_names_the_contact_and_previews_the_text(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let rules = rules("chat");
    let start = store.latest_event().await.unwrap();
    let nameless = post(&*store, &rules, Msg::new("m0", "bo").text("who?")).await;
    let inbound = post(
        &*store,
        &rules,
        Msg::new("m1", "ana")
            .name("Ana")
            .text("where is\nmy parcel?"),
    )
    .await;
    reply(&*store, &inbound.conversation, "On its way").await;

    let events = all_after(&*store, start, &EventFilter::default()).await;
    let created: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "message.created")
        .map(|e| {
            (
                e.conversation_id.clone().unwrap(),
                e.data["contact_name"].clone(),
                e.data["preview"].clone(),
            )
        })
        .collect();
    assert_eq!(
        created,
        [
            (
                nameless.conversation.to_string(),
                json!(null),
                json!("who?")
            ),
            (
                inbound.conversation.to_string(),
                json!("Ana"),
                json!("where is my parcel?")
            ),
            (
                inbound.conversation.to_string(),
                json!("Ana"),
                json!("On its way")
            ),
        ]
    );
}
