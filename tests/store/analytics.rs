//! The raw facts behind the analytics report, on a seeded data set with known answers.

use std::sync::Arc;

use channel_bridge::desk::analytics::{Facts, report};
use channel_bridge::model::{ConversationId, TicketId, from_millis};
use channel_bridge::store::Store;
use chrono::{Duration, Utc};

use crate::support::*;

conformance!(
    analytics_figures_on_a_seeded_data_set,
    analytics_count_only_the_period_and_leave_out_the_trash,
);

async fn analytics_figures_on_a_seeded_data_set(store: Arc<dyn Store>, backend: &Backend) {
    // Three conversations on "chat": answered after 60 s and 180 s by alice and 120 s by
    // bob; two tickets resolved, after 1 h (owner bob) and 3 h (no owner).
    let mut conversations: Vec<(ConversationId, TicketId)> = Vec::new();
    for user in ["ana", "bo", "cy"] {
        let c = open_conversation(&*store, &rules("chat"), user).await;
        let t = ticket_of(&*store, &c).await.id;
        conversations.push((c, t));
    }
    for ((c, _), rep_id) in conversations.iter().zip(["alice", "bob", "alice"]) {
        let mut r = new_reply(c, "hello");
        r.sender = rep(rep_id);
        store.create_reply(r).await.unwrap();
    }
    let base = 1_800_000_000_000i64;
    for (i, (c, t)) in conversations.iter().enumerate() {
        let answered_after = [60_000, 120_000, 180_000][i];
        let (closed, owner) = match i {
            0 => ((base + 3_600_000).to_string(), "'bob'"),
            1 => ((base + 10_800_000).to_string(), "NULL"),
            _ => ("NULL".to_owned(), "NULL"),
        };
        let (c, t) = (c.as_str(), t.as_str());
        backend
            .execute(&format!(
                "UPDATE conversations SET created_at = {base} WHERE id = '{c}';
                 UPDATE messages SET created_at = {base} + CASE direction WHEN 'inbound' THEN 0 ELSE {answered_after} END
                     WHERE conversation_id = '{c}';
                 UPDATE tickets SET created_at = {base}, closed_at = {closed}, owner_id = {owner}
                     WHERE id = '{t}';"
            ))
            .await;
    }
    // A bot's reply is no response; a trashed conversation counts for nothing.
    let cy = conversations[2].0.as_str();
    crate::seed::Seed(backend)
        .message(
            "bot",
            cy,
            "chat",
            "outbound",
            ("bot", "echo"),
            "auto",
            base + 1,
        )
        .await;
    let trashed = open_conversation(&*store, &rules("chat"), "dee").await;
    store.delete_conversation(&trashed, &actor()).await.unwrap();
    let trashed = trashed.as_str();
    backend
        .execute(&format!(
            "UPDATE conversations SET created_at = {base} WHERE id = '{trashed}';
             UPDATE messages SET created_at = {base} WHERE conversation_id = '{trashed}';"
        ))
        .await;

    let from = from_millis(base - 1);
    let to = from_millis(base + 86_400_000);
    let figures = report(store.analytics(from, to).await.unwrap());

    assert_eq!(figures.channels.len(), 1);
    let chat = &figures.channels[0];
    assert_eq!(chat.channel_id, "chat");
    assert_eq!(
        (
            chat.conversations,
            chat.messages_inbound,
            chat.messages_outbound
        ),
        (3, 3, 4)
    );
    assert_eq!(chat.first_response.count, 3);
    assert_eq!(chat.first_response.median_s, Some(120.0));
    assert_eq!(chat.first_response.p90_s, Some(180.0));
    assert_eq!(chat.resolution.count, 2);
    assert_eq!(chat.resolution.median_s, Some(3600.0));
    assert_eq!(chat.resolution.p90_s, Some(10800.0));
    let alice = figures.reps.iter().find(|r| r.rep_id == "alice").unwrap();
    assert_eq!(alice.replies, 2);
    assert_eq!(alice.first_response.median_s, Some(60.0));
    assert_eq!(alice.first_response.p90_s, Some(180.0));
    let bob = figures.reps.iter().find(|r| r.rep_id == "bob").unwrap();
    assert_eq!((bob.replies, bob.first_response.median_s), (1, Some(120.0)));
    assert_eq!(bob.resolution.median_s, Some(3600.0));
    assert!(figures.reps.iter().all(|r| r.rep_id != "echo"));

    // Outside the period there is nothing.
    let before = from_millis(base - 10_000_000);
    assert!(is_empty(&store.analytics(before, from).await.unwrap()));
}

async fn analytics_count_only_the_period_and_leave_out_the_trash(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let chat = rules("chat");
    let kept = post(&*store, &chat, Msg::new("m1", "ana"))
        .await
        .conversation;
    post(&*store, &chat, Msg::new("m2", "ana")).await;
    reply(&*store, &kept, "hi").await;
    let trashed = open_conversation(&*store, &chat, "bo").await;
    reply(&*store, &trashed, "hi").await;
    open_conversation(&*store, &rules("wa"), "cy").await;
    store.delete_conversation(&trashed, &actor()).await.unwrap();

    let now = Utc::now();
    let facts = store
        .analytics(now - Duration::hours(1), now + Duration::hours(1))
        .await
        .unwrap();
    let figures = report(facts);
    let counts: Vec<_> = figures
        .channels
        .iter()
        .map(|c| {
            (
                c.channel_id.as_str(),
                c.conversations,
                c.messages_inbound,
                c.messages_outbound,
            )
        })
        .collect();
    assert_eq!(counts, [("chat", 1, 2, 1), ("wa", 1, 1, 0)]);
    assert_eq!(figures.channels[0].first_response.count, 1);
    assert_eq!(figures.channels[0].resolution.count, 0);

    let later = store
        .analytics(now + Duration::hours(1), now + Duration::hours(2))
        .await
        .unwrap();
    assert!(is_empty(&later));
}

fn is_empty(facts: &Facts) -> bool {
    facts.conversations.is_empty()
        && facts.messages.is_empty()
        && facts.first_responses.is_empty()
        && facts.resolutions.is_empty()
        && facts.replies.is_empty()
}
