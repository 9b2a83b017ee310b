//! Threading: which conversation an inbound message joins, when a closed one reopens, and
//! one ticket per new conversation.

use std::sync::Arc;

use channel_bridge::config::Threading;
use channel_bridge::model::ConversationStatus;
use channel_bridge::store::{ConversationUpdate, Store};

use crate::support::*;

conformance!(
    per_contact_threading_keeps_one_open_conversation_per_contact,
    platform_thread_threading_keys_conversations_by_the_platforms_thread,
    a_message_after_close_reopens_the_conversation_when_reopen_is_true,
    a_reopened_conversation_brings_its_closed_ticket_back_at_the_channels_start_status,
    with_reopen_false_a_message_after_close_starts_a_new_conversation_and_ticket,
    reopen_takes_the_most_recent_closed_conversation,
    every_new_conversation_gets_a_ticket_of_its_own,
    a_trashed_conversation_is_not_threaded_into,
    a_conversation_hint_joins_the_named_conversation_of_the_same_contact,
    a_conversation_hint_to_a_closed_conversation_follows_the_reopen_rule,
);

async fn a_conversation_hint_joins_the_named_conversation_of_the_same_contact(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let mut rules = rules("mail");
    rules.threading = Threading::PlatformThread;
    let a = post(&*store, &rules, Msg::new("m1", "ana").thread("t1")).await;
    let b = post(&*store, &rules, Msg::new("m2", "ana").thread("t2")).await;
    assert_ne!(a.conversation, b.conversation);
    // By conversation id (a plus-addressed reply), even with a thread of its own.
    let by_conversation = post(
        &*store,
        &rules,
        Msg::new("m3", "ana")
            .thread("t3")
            .hint(a.conversation.as_str()),
    )
    .await;
    assert_eq!(by_conversation.conversation, a.conversation);
    assert!(!by_conversation.new_conversation);
    // By one of the conversation's message ids (In-Reply-To our mail).
    let by_message = post(
        &*store,
        &rules,
        Msg::new("m4", "ana").thread("t4").hint(b.message.as_str()),
    )
    .await;
    assert_eq!(by_message.conversation, b.conversation);
    // Another contact naming ana's conversation does not get into it.
    let forged = post(
        &*store,
        &rules,
        Msg::new("m5", "bo")
            .thread("t5")
            .hint(a.conversation.as_str()),
    )
    .await;
    assert_ne!(forged.conversation, a.conversation);
    assert!(forged.new_conversation);
    // An unknown hint falls back to ordinary threading.
    let unknown = post(
        &*store,
        &rules,
        Msg::new("m6", "ana")
            .thread("t1")
            .hint("conv_01JZZZZZZZZZZZZZZZZZZZZZZZ"),
    )
    .await;
    assert_eq!(unknown.conversation, a.conversation);
}

async fn a_conversation_hint_to_a_closed_conversation_follows_the_reopen_rule(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let mut rules = rules("mail");
    rules.threading = Threading::PlatformThread;
    let a = post(&*store, &rules, Msg::new("m1", "ana").thread("t1")).await;
    close(&*store, &a.conversation).await;
    let reopened = post(
        &*store,
        &rules,
        Msg::new("m2", "ana")
            .thread("t9")
            .hint(a.conversation.as_str()),
    )
    .await;
    assert_eq!(reopened.conversation, a.conversation);
    let conversation = store.conversation(&a.conversation).await.unwrap();
    assert_eq!(conversation.status, ConversationStatus::Open);

    close(&*store, &a.conversation).await;
    rules.reopen = false;
    let fresh = post(
        &*store,
        &rules,
        Msg::new("m3", "ana")
            .thread("t1")
            .hint(a.conversation.as_str()),
    )
    .await;
    assert_ne!(fresh.conversation, a.conversation);
    assert!(fresh.new_conversation);
}

async fn close(store: &dyn Store, conversation: &channel_bridge::model::ConversationId) {
    store
        .update_conversation(
            conversation,
            ConversationUpdate {
                status: Some(ConversationStatus::Closed),
                ..Default::default()
            },
            &actor(),
        )
        .await
        .expect("close");
}

async fn per_contact_threading_keeps_one_open_conversation_per_contact(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let rules = rules("chat");
    // The platform's chat id is where replies go, but does not split a contact's messages.
    let first = post(&*store, &rules, Msg::new("m1", "ana").thread("t1")).await;
    let second = post(&*store, &rules, Msg::new("m2", "ana").thread("t2")).await;
    let other = post(&*store, &rules, Msg::new("m3", "bo").thread("t1")).await;
    assert!(first.new_conversation && !second.new_conversation && other.new_conversation);
    assert_eq!(first.conversation, second.conversation);
    assert_ne!(first.conversation, other.conversation);
    let conversation = store.conversation(&first.conversation).await.unwrap();
    assert_eq!(conversation.platform_thread_id.as_deref(), Some("t1"));
    assert!(conversation.thread_key.starts_with("contact:"));
    assert_eq!(messages(&*store, &first.conversation).await.len(), 2);
}

async fn platform_thread_threading_keys_conversations_by_the_platforms_thread(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let mut rules = rules("tg");
    rules.threading = Threading::PlatformThread;
    let ana_in_group = post(&*store, &rules, Msg::new("m1", "ana").thread("group-1")).await;
    let ana_in_private = post(&*store, &rules, Msg::new("m2", "ana").thread("ana-dm")).await;
    let bo_in_group = post(&*store, &rules, Msg::new("m3", "bo").thread("group-1")).await;
    let no_thread = post(&*store, &rules, Msg::new("m4", "ana")).await;

    assert_ne!(ana_in_group.conversation, ana_in_private.conversation);
    assert_eq!(ana_in_group.conversation, bo_in_group.conversation);
    assert!(!bo_in_group.new_conversation);
    assert!(
        no_thread.new_conversation,
        "no thread id: keyed by the contact"
    );
    let group = store
        .conversation(&ana_in_group.conversation)
        .await
        .unwrap();
    assert_eq!(group.thread_key, "thread:group-1");
    assert_eq!(group.platform_thread_id.as_deref(), Some("group-1"));
    let fallback = store.conversation(&no_thread.conversation).await.unwrap();
    assert_eq!(
        fallback.thread_key,
        format!("contact:{}", fallback.contact.id)
    );
}

async fn a_message_after_close_reopens_the_conversation_when_reopen_is_true(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let rules = rules("chat");
    let first = post(&*store, &rules, Msg::new("m1", "ana")).await;
    let ticket = ticket_of(&*store, &first.conversation).await;
    close(&*store, &first.conversation).await;

    let again = post(&*store, &rules, Msg::new("m2", "ana")).await;
    assert_eq!(again.conversation, first.conversation);
    assert!(!again.new_conversation);
    let conversation = store.conversation(&first.conversation).await.unwrap();
    assert_eq!(conversation.status, ConversationStatus::Open);
    assert_eq!(conversation.ticket_id, ticket.id);
    assert_eq!(ticket_of(&*store, &first.conversation).await.status, "new");
}

async fn a_reopened_conversation_brings_its_closed_ticket_back_at_the_channels_start_status(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let rules = rules("chat");
    let first = post(&*store, &rules, Msg::new("m1", "ana")).await;
    let ticket = ticket_of(&*store, &first.conversation).await.id;
    store
        .update_ticket(&ticket, to_status("waiting"), &actor())
        .await
        .unwrap();
    let closed = store
        .update_ticket(&ticket, to_status("closed"), &actor())
        .await
        .unwrap();
    assert!(closed.closed_at.is_some());

    post(&*store, &rules, Msg::new("m2", "ana")).await;
    let reopened = store.ticket(&ticket).await.unwrap();
    assert_eq!(reopened.status, "new", "the channel's start status");
    assert_eq!(reopened.closed_at, None);
    assert_eq!(
        store
            .conversation(&first.conversation)
            .await
            .unwrap()
            .status,
        ConversationStatus::Open
    );
}

async fn with_reopen_false_a_message_after_close_starts_a_new_conversation_and_ticket(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let mut rules = rules("chat");
    rules.reopen = false;
    let first = post(&*store, &rules, Msg::new("m1", "ana")).await;
    close(&*store, &first.conversation).await;

    let second = post(&*store, &rules, Msg::new("m2", "ana")).await;
    assert!(second.new_conversation);
    assert_ne!(second.conversation, first.conversation);
    let (old, new) = (
        store.conversation(&first.conversation).await.unwrap(),
        store.conversation(&second.conversation).await.unwrap(),
    );
    assert_eq!(old.status, ConversationStatus::Closed);
    assert_eq!(new.status, ConversationStatus::Open);
    assert_ne!(old.ticket_id, new.ticket_id);
    assert_eq!(old.contact.id, new.contact.id);
    assert_eq!(old.thread_key, new.thread_key);
}

async fn reopen_takes_the_most_recent_closed_conversation(store: Arc<dyn Store>, _: &Backend) {
    let mut no_reopen = rules("chat");
    no_reopen.reopen = false;
    let older = post(&*store, &no_reopen, Msg::new("m1", "ana")).await;
    close(&*store, &older.conversation).await;
    let newer = post(&*store, &no_reopen, Msg::new("m2", "ana")).await;
    close(&*store, &newer.conversation).await;

    let again = post(&*store, &rules("chat"), Msg::new("m3", "ana")).await;
    assert_eq!(again.conversation, newer.conversation);
    assert_eq!(
        store
            .conversation(&older.conversation)
            .await
            .unwrap()
            .status,
        ConversationStatus::Closed
    );
}

async fn every_new_conversation_gets_a_ticket_of_its_own(store: Arc<dyn Store>, _: &Backend) {
    let rules = rules("chat");
    let mut tickets = Vec::new();
    for user in ["ana", "bo", "cy"] {
        let conversation = open_conversation(&*store, &rules, user).await;
        let ticket = ticket_of(&*store, &conversation).await;
        assert_eq!(ticket.conversation_ids, vec![conversation]);
        tickets.push(ticket.id);
    }
    tickets.sort();
    tickets.dedup();
    assert_eq!(tickets.len(), 3);
}

async fn a_trashed_conversation_is_not_threaded_into(store: Arc<dyn Store>, _: &Backend) {
    let rules = rules("chat");
    let first = post(&*store, &rules, Msg::new("m1", "ana")).await;
    store
        .delete_conversation(&first.conversation, &actor())
        .await
        .unwrap();
    let second = post(&*store, &rules, Msg::new("m2", "ana")).await;
    assert!(second.new_conversation);
    assert_ne!(second.conversation, first.conversation);
    let ticket = ticket_of(&*store, &second.conversation).await;
    assert_eq!(ticket.conversation_ids, vec![second.conversation]);
}
