//! What operations read from the store: the routing decision each ingest reports (for the
//! assignment metrics), open conversations per channel (a gauge), and the purge of raw
//! platform payloads past their retention.

use std::sync::Arc;

use channel_bridge::model::{ConversationId, ConversationStatus, MessageId};
use channel_bridge::store::{ConversationUpdate, IngestOutcome, Page, PageRequest, Routed, Store};
use chrono::{Duration, Utc};

use crate::support::*;

conformance!(
    each_ingest_reports_the_routing_decision_of_a_new_conversation_and_none_when_appending,
    queue_stats_count_open_conversations_per_channel,
    raw_payloads_past_the_cutoff_are_cleared_and_their_messages_stay,
);

async fn routed(
    store: &dyn Store,
    rules: &channel_bridge::store::ChannelRules,
    msg: Msg,
) -> Option<Routed> {
    match &ingest(store, rules, vec![msg.into()]).await[..] {
        [IngestOutcome::Stored { routed, .. }] => *routed,
        other => panic!("expected one stored message, got {other:?}"),
    }
}

async fn each_ingest_reports_the_routing_decision_of_a_new_conversation_and_none_when_appending(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let nobody = rules("plain");
    assert_eq!(
        routed(&*store, &nobody, Msg::new("p1", "ana")).await,
        Some(Routed {
            rule: "nobody",
            assigned: false
        })
    );
    let round_robin = round_robin("chat", &[("alice", 10)]);
    assert_eq!(
        routed(&*store, &round_robin, Msg::new("c1", "ana")).await,
        Some(Routed {
            rule: "users_and_teams",
            assigned: false
        }),
        "nobody online"
    );
    store
        .set_presence("alice", "online", Vec::new())
        .await
        .unwrap();
    assert_eq!(
        routed(&*store, &round_robin, Msg::new("c2", "bo")).await,
        Some(Routed {
            rule: "users_and_teams",
            assigned: true
        })
    );
    assert_eq!(
        routed(&*store, &round_robin, Msg::new("c3", "bo")).await,
        None,
        "a message appended to an open conversation is not routed"
    );
}

async fn close(store: &dyn Store, conversation: &ConversationId) {
    let update = ConversationUpdate {
        status: Some(ConversationStatus::Closed),
        ..Default::default()
    };
    store
        .update_conversation(conversation, update, &actor())
        .await
        .unwrap();
}

async fn queue_stats_count_open_conversations_per_channel(store: Arc<dyn Store>, _: &Backend) {
    let open = |s: &[(&str, u64)]| -> Vec<(String, u64)> {
        s.iter().map(|(c, n)| (c.to_string(), *n)).collect()
    };
    assert_eq!(
        store.queue_stats().await.unwrap().open_conversations,
        open(&[])
    );
    let chat = rules("chat");
    let first = open_conversation(&*store, &chat, "ana").await;
    let second = open_conversation(&*store, &chat, "bo").await;
    open_conversation(&*store, &chat, "cy").await;
    open_conversation(&*store, &rules("shop"), "ana").await;
    assert_eq!(
        store.queue_stats().await.unwrap().open_conversations,
        open(&[("chat", 3), ("shop", 1)])
    );

    // Closed and trashed ones are not open.
    close(&*store, &first).await;
    store.delete_conversation(&second, &actor()).await.unwrap();
    assert_eq!(
        store.queue_stats().await.unwrap().open_conversations,
        open(&[("chat", 1), ("shop", 1)])
    );
}

/// How many messages still hold a raw payload (counted by a no-op update, which both
/// databases report).
async fn with_raw(backend: &Backend) -> u64 {
    backend
        .execute("UPDATE messages SET raw = raw WHERE raw IS NOT NULL")
        .await
}

async fn all_messages(store: &dyn Store, conversation: &ConversationId) -> Vec<MessageId> {
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page: Page<_> = store
            .messages(conversation, &PageRequest { limit: 200, cursor })
            .await
            .unwrap();
        ids.extend(page.items.into_iter().map(|m| m.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return ids,
        }
    }
}

async fn raw_payloads_past_the_cutoff_are_cleared_and_their_messages_stay(
    store: Arc<dyn Store>,
    backend: &Backend,
) {
    // More messages than one purge chunk (2000), so the purge walks on from chunk to chunk.
    let chat = rules("chat");
    let events = (0..2100)
        .map(|i| Msg::new(&format!("m{i}"), "ana").into())
        .collect();
    let outcomes = ingest(&*store, &chat, events).await;
    let conversation = Stored::of(&outcomes[0]).conversation;
    // The first 2000 arrived 40 days ago.
    let forty_days_ms = 40 * 86_400_000_i64;
    backend
        .execute(&format!(
            "UPDATE messages SET created_at = created_at - {forty_days_ms}
             WHERE seq < (SELECT min(seq) FROM messages) + 2000"
        ))
        .await;
    let cutoff = Utc::now() - Duration::days(30);

    assert_eq!(store.purge_raw_payloads(cutoff).await.unwrap(), 2000);
    assert_eq!(with_raw(backend).await, 100);
    assert_eq!(
        store.purge_raw_payloads(cutoff).await.unwrap(),
        0,
        "done once"
    );
    assert_eq!(
        all_messages(&*store, &conversation).await.len(),
        2100,
        "the messages stay"
    );

    // Later, the rest and a message that came after the last purge go too.
    post(&*store, &chat, Msg::new("late", "ana")).await;
    backend
        .execute(&format!(
            "UPDATE messages SET created_at = created_at - {forty_days_ms} WHERE raw IS NOT NULL"
        ))
        .await;
    assert_eq!(store.purge_raw_payloads(cutoff).await.unwrap(), 101);
    assert_eq!(with_raw(backend).await, 0);
}
