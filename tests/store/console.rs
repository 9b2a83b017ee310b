//! What the web console reads from the store: each channel's outbox counted exactly with
//! its newest error, each channel's last inbound message, and per reader which
//! conversations are unread and which wait on us.

use std::sync::Arc;

use channel_bridge::model::ConversationId;
use channel_bridge::store::{ConversationMarks, JobOutcome, NewComment, Store};
use chrono::{Duration, Utc};

use crate::support::*;

conformance!(
    the_delivery_summary_counts_each_channels_pending_and_dead_jobs_with_the_newest_error,
    last_inbound_is_each_channels_newest_inbound_message_and_replies_do_not_move_it,
    a_conversation_is_unread_until_opened_and_a_new_inbound_message_makes_it_unread_again,
    reads_are_kept_per_reader,
    a_conversation_waits_on_us_while_the_contacts_message_is_the_last_comments_aside,
    purging_a_conversation_from_the_trash_drops_its_reads,
);

async fn the_delivery_summary_counts_each_channels_pending_and_dead_jobs_with_the_newest_error(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    assert!(store.delivery_summary().await.unwrap().is_empty());
    let chat = open_conversation(&*store, &rules("chat"), "ana").await;
    let chat2 = open_conversation(&*store, &rules("chat"), "bo").await;
    let mail = open_conversation(&*store, &rules("mail"), "cy").await;
    reply(&*store, &chat, "one").await;
    reply(&*store, &chat2, "two").await;
    reply(&*store, &mail, "three").await;
    reply(&*store, &mail, "four").await;
    // On chat: one dies, then the other is retried later with a newer error.
    let jobs = lease(&*store, "w", &["chat"]).await;
    assert_eq!(jobs.len(), 2);
    store
        .finish_job(
            &jobs[0],
            "w",
            JobOutcome::Dead {
                error: "HTTP 400: old".into(),
            },
        )
        .await
        .unwrap();
    // "Newest" is by the time an attempt ended, to the millisecond: two attempts ending in
    // the same one would tie (the test failed so once, in a CI run).
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store
        .finish_job(
            &jobs[1],
            "w",
            JobOutcome::Retry {
                at: Utc::now() + Duration::hours(1),
                error: "HTTP 503: newest".into(),
            },
        )
        .await
        .unwrap();

    let summary = store.delivery_summary().await.unwrap();
    let ids: Vec<&str> = summary.iter().map(|s| s.channel_id.as_str()).collect();
    assert_eq!(ids, ["chat", "mail"], "channels with jobs, by id");
    assert_eq!((summary[0].pending, summary[0].dead), (1, 1));
    assert_eq!(summary[0].last_error.as_deref(), Some("HTTP 503: newest"));
    assert!(summary[0].last_error_at.is_some());
    assert_eq!((summary[1].pending, summary[1].dead), (2, 0));
    assert_eq!(summary[1].last_error, None, "no attempt failed on mail");
    assert_eq!(summary[1].last_error_at, None);
}

async fn last_inbound_is_each_channels_newest_inbound_message_and_replies_do_not_move_it(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let channels = ["chat".to_owned(), "mail".to_owned(), "quiet".to_owned()];
    assert!(store.last_inbound(&channels).await.unwrap().is_empty());
    let before = to_ms(Utc::now());
    let chat = post(&*store, &rules("chat"), Msg::new("c1", "ana"))
        .await
        .conversation;
    post(&*store, &rules("chat"), Msg::new("c2", "ana")).await;
    post(&*store, &rules("mail"), Msg::new("m1", "bo")).await;
    let after = Utc::now();
    let last = store.last_inbound(&channels).await.unwrap();
    assert_eq!(
        last.keys().map(String::as_str).collect::<Vec<_>>(),
        ["chat", "mail"],
        "a channel that never received anything is absent"
    );
    let newest_chat = messages(&*store, &chat).await.last().unwrap().created_at;
    assert_eq!(last["chat"], newest_chat);
    assert!(last["mail"] >= before && last["mail"] <= after);
    reply(&*store, &chat, "a reply is outbound").await;
    assert_eq!(
        store.last_inbound(&channels).await.unwrap()["chat"],
        newest_chat
    );
}

async fn marks(store: &dyn Store, reader: &str, c: &ConversationId) -> (bool, bool) {
    let marks = store
        .conversation_marks(reader, std::slice::from_ref(c))
        .await
        .unwrap();
    match &marks[..] {
        [
            ConversationMarks {
                unread,
                waiting_on_us,
                ..
            },
        ] => (*unread, *waiting_on_us),
        other => panic!("one conversation's marks, got {other:?}"),
    }
}

async fn a_conversation_is_unread_until_opened_and_a_new_inbound_message_makes_it_unread_again(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let c = post(&*store, &rules("chat"), Msg::new("u1", "ana"))
        .await
        .conversation;
    assert!(marks(&*store, "alice", &c).await.0, "never opened: unread");
    store.mark_read("alice", &c).await.unwrap();
    assert!(!marks(&*store, "alice", &c).await.0, "opened: read");
    reply(&*store, &c, "our own reply").await;
    assert!(
        !marks(&*store, "alice", &c).await.0,
        "our reply leaves it read"
    );
    post(&*store, &rules("chat"), Msg::new("u2", "ana")).await;
    assert!(
        marks(&*store, "alice", &c).await.0,
        "a new inbound message: unread"
    );
    store.mark_read("alice", &c).await.unwrap();
    assert!(!marks(&*store, "alice", &c).await.0);

    let unknown = ConversationId::new();
    let both = store
        .conversation_marks("alice", &[unknown, c.clone()])
        .await
        .unwrap();
    assert_eq!(both.len(), 1, "an unknown id is left out");
    assert_eq!(both[0].conversation_id, c);
}

async fn reads_are_kept_per_reader(store: Arc<dyn Store>, _: &Backend) {
    let c = post(&*store, &rules("chat"), Msg::new("r1", "ana"))
        .await
        .conversation;
    store.mark_read("alice", &c).await.unwrap();
    store.mark_read("alice", &c).await.unwrap();
    assert!(!marks(&*store, "alice", &c).await.0);
    assert!(marks(&*store, "bob", &c).await.0, "bob has not opened it");
}

async fn a_conversation_waits_on_us_while_the_contacts_message_is_the_last_comments_aside(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let c = post(&*store, &rules("chat"), Msg::new("w1", "ana"))
        .await
        .conversation;
    assert!(
        marks(&*store, "alice", &c).await.1,
        "the contact spoke last"
    );
    store
        .add_comment(NewComment {
            conversation_id: c.clone(),
            author: rep("bob"),
            author_name: "bob".into(),
            channel_name: "chat".into(),
            text: "looking into it".into(),
            mentions: Vec::new(),
            presence_timeout_ms: 60_000,
            link_base: None,
        })
        .await
        .unwrap();
    assert!(
        marks(&*store, "alice", &c).await.1,
        "a comment is no answer"
    );
    reply(&*store, &c, "on it").await;
    assert!(!marks(&*store, "alice", &c).await.1, "we replied last");
    post(&*store, &rules("chat"), Msg::new("w2", "ana")).await;
    assert!(marks(&*store, "alice", &c).await.1);
}

async fn purging_a_conversation_from_the_trash_drops_its_reads(
    store: Arc<dyn Store>,
    backend: &Backend,
) {
    let gone = post(&*store, &rules("chat"), Msg::new("p1", "ana"))
        .await
        .conversation;
    let kept = post(&*store, &rules("chat"), Msg::new("p2", "bo"))
        .await
        .conversation;
    for reader in ["alice", "bob"] {
        store.mark_read(reader, &gone).await.unwrap();
    }
    store.mark_read("alice", &kept).await.unwrap();
    store.delete_conversation(&gone, &actor()).await.unwrap();
    let purged = store
        .purge_trash(Utc::now() + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert_eq!(
        backend.execute("DELETE FROM conversation_reads").await,
        1,
        "only the kept conversation's read is left"
    );
}
