//! The help-desk rules as the store applies them: owners, ticket status and properties and
//! what they do to conversations, the trash, the audit trail, and contacts.

use std::collections::BTreeMap;
use std::sync::Arc;

use channel_bridge::desk::inboxes::Scope;
use channel_bridge::model::{ConversationId, ConversationStatus, Identifier, SenderKind, TicketId};
use channel_bridge::store::{
    Actor, ContactUpdate, ConversationUpdate, JobState, PageRequest, Store, StoreError,
    TicketFilter, Via,
};
use chrono::{Duration, Utc};
use serde_json::json;

use crate::support::*;

conformance!(
    a_conversations_owner_becomes_its_tickets_owner_but_not_the_other_way_round,
    closing_a_conversation_leaves_its_ticket_open,
    closing_a_ticket_closes_its_conversation_and_reopening_reopens_it,
    closing_a_ticket_closes_all_its_conversations,
    reopening_a_ticket_with_two_conversations_reopens_neither,
    a_status_outside_the_pipeline_is_refused_and_changes_nothing,
    each_move_into_a_conditional_status_must_bring_its_properties,
    a_property_patch_merges_and_null_removes_a_key,
    a_ticket_whose_pipeline_is_gone_cannot_change,
    reopening_a_ticket_whose_contact_has_moved_on_is_a_conflict,
    reopening_a_conversation_while_its_contact_has_another_open_one_is_a_conflict,
    deleting_one_conversation_trashes_the_ticket_and_all_its_conversations_and_purge_removes_them,
    a_restored_conversation_whose_contact_has_moved_on_comes_back_closed,
    only_trashed_tickets_can_be_restored,
    the_ticket_list_is_scoped_filtered_and_lists_the_trash_apart,
    the_history_says_who_changed_what_and_why,
    a_contacts_owner_and_email_can_be_set_and_cleared,
);

fn assign(owner: Option<&str>) -> ConversationUpdate {
    ConversationUpdate {
        owner_id: Some(owner.map(str::to_owned)),
        status: None,
    }
}

fn set_status(status: ConversationStatus) -> ConversationUpdate {
    ConversationUpdate {
        owner_id: None,
        status: Some(status),
    }
}

async fn statuses(store: &dyn Store, ids: &[ConversationId]) -> Vec<ConversationStatus> {
    let mut out = Vec::new();
    for id in ids {
        out.push(store.conversation(id).await.unwrap().status);
    }
    out
}

/// One ticket over two conversations, on "chat" and on "mail": a rep answered Ana's chat
/// by email.
async fn ticket_with_two_conversations(store: &dyn Store) -> (TicketId, [ConversationId; 2]) {
    let chat = open_conversation(store, &rules("chat"), "ana").await;
    let mut r = new_reply(&chat, "answering by email");
    r.via = Some(Via {
        channel_id: "mail".into(),
        identifier: Identifier {
            kind: "email".into(),
            value: "ana@example.com".into(),
        },
    });
    let mail = store.create_reply(r).await.unwrap().conversation_id;
    let ticket = ticket_of(store, &chat).await;
    assert_eq!(ticket.conversation_ids, vec![chat.clone(), mail.clone()]);
    (ticket.id, [chat, mail])
}

async fn a_conversations_owner_becomes_its_tickets_owner_but_not_the_other_way_round(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let conversation = open_conversation(&*store, &rules("chat"), "ana").await;
    store
        .update_conversation(&conversation, assign(Some("alice")), &actor())
        .await
        .unwrap();
    let ticket = ticket_of(&*store, &conversation).await;
    assert_eq!(ticket.owner_id.as_deref(), Some("alice"));

    let mut to_bob = change();
    to_bob.owner_id = Some(Some("bob".into()));
    let ticket = store
        .update_ticket(&ticket.id, to_bob, &actor())
        .await
        .unwrap();
    assert_eq!(ticket.owner_id.as_deref(), Some("bob"));
    assert_eq!(
        store
            .conversation(&conversation)
            .await
            .unwrap()
            .owner_id
            .as_deref(),
        Some("alice")
    );

    store
        .update_conversation(&conversation, assign(None), &actor())
        .await
        .unwrap();
    assert_eq!(
        store.conversation(&conversation).await.unwrap().owner_id,
        None
    );
    assert_eq!(ticket_of(&*store, &conversation).await.owner_id, None);
    assert!(matches!(
        store
            .update_conversation(&ConversationId::new(), assign(Some("alice")), &actor())
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn closing_a_conversation_leaves_its_ticket_open(store: Arc<dyn Store>, _: &Backend) {
    let conversation = open_conversation(&*store, &rules("chat"), "ana").await;
    store
        .update_conversation(
            &conversation,
            set_status(ConversationStatus::Closed),
            &actor(),
        )
        .await
        .unwrap();
    assert_eq!(
        statuses(&*store, std::slice::from_ref(&conversation)).await,
        [ConversationStatus::Closed]
    );
    let ticket = ticket_of(&*store, &conversation).await;
    assert_eq!((ticket.status.as_str(), ticket.closed_at), ("new", None));
}

async fn closing_a_ticket_closes_its_conversation_and_reopening_reopens_it(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let conversation = open_conversation(&*store, &rules("chat"), "ana").await;
    let ticket = ticket_of(&*store, &conversation).await.id;
    let before = to_ms(Utc::now());
    let closed = store
        .update_ticket(&ticket, to_status("closed"), &actor())
        .await
        .unwrap();
    assert_eq!(closed.status, "closed");
    assert!(closed.closed_at.expect("closed") >= before);
    assert_eq!(
        statuses(&*store, std::slice::from_ref(&conversation)).await,
        [ConversationStatus::Closed]
    );

    let reopened = store
        .update_ticket(&ticket, to_status("new"), &actor())
        .await
        .unwrap();
    assert_eq!(
        (reopened.status.as_str(), reopened.closed_at),
        ("new", None)
    );
    assert_eq!(
        statuses(&*store, &[conversation]).await,
        [ConversationStatus::Open]
    );
}

async fn closing_a_ticket_closes_all_its_conversations(store: Arc<dyn Store>, _: &Backend) {
    let (ticket, conversations) = ticket_with_two_conversations(&*store).await;
    store
        .update_ticket(&ticket, to_status("closed"), &actor())
        .await
        .unwrap();
    assert_eq!(
        statuses(&*store, &conversations).await,
        [ConversationStatus::Closed; 2]
    );
}

async fn reopening_a_ticket_with_two_conversations_reopens_neither(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let (ticket, conversations) = ticket_with_two_conversations(&*store).await;
    store
        .update_ticket(&ticket, to_status("closed"), &actor())
        .await
        .unwrap();
    let reopened = store
        .update_ticket(&ticket, to_status("new"), &actor())
        .await
        .unwrap();
    assert_eq!(reopened.status, "new");
    assert_eq!(reopened.conversation_ids.len(), 2);
    assert_eq!(
        statuses(&*store, &conversations).await,
        [ConversationStatus::Closed; 2]
    );
}

async fn a_status_outside_the_pipeline_is_refused_and_changes_nothing(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let conversation = open_conversation(&*store, &rules("chat"), "ana").await;
    let before = ticket_of(&*store, &conversation).await;
    match store
        .update_ticket(&before.id, to_status("escalated"), &actor())
        .await
    {
        Err(StoreError::Invalid(why)) => assert!(why.contains("escalated"), "{why}"),
        other => panic!("expected invalid, got {other:?}"),
    }
    assert_eq!(ticket_of(&*store, &conversation).await, before);
    assert!(matches!(
        store
            .update_ticket(&TicketId::new(), to_status("closed"), &actor())
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn each_move_into_a_conditional_status_must_bring_its_properties(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let conversation = open_conversation(&*store, &rules("chat"), "ana").await;
    let ticket = ticket_of(&*store, &conversation).await.id;
    let resolve = |resolution: Option<&str>| {
        let mut c = to_status("resolved");
        c.properties = resolution.map(|r| object(json!({"resolution": r})));
        c
    };
    match store.update_ticket(&ticket, resolve(None), &actor()).await {
        Err(StoreError::Invalid(why)) => assert!(why.contains("resolution"), "{why}"),
        other => panic!("expected invalid, got {other:?}"),
    }
    let unchanged = store.ticket(&ticket).await.unwrap();
    assert_eq!(
        (unchanged.status.as_str(), unchanged.closed_at),
        ("new", None)
    );
    assert_eq!(
        statuses(&*store, std::slice::from_ref(&conversation)).await,
        [ConversationStatus::Open]
    );

    let resolved = store
        .update_ticket(&ticket, resolve(Some("refunded")), &actor())
        .await
        .unwrap();
    assert_eq!(resolved.status, "resolved");
    assert!(resolved.closed_at.is_some());

    // Reopened and resolved again: the earlier resolution does not count for this one.
    store
        .update_ticket(&ticket, to_status("new"), &actor())
        .await
        .unwrap();
    assert!(matches!(
        store.update_ticket(&ticket, resolve(None), &actor()).await,
        Err(StoreError::Invalid(_))
    ));
    store
        .update_ticket(&ticket, resolve(Some("replaced")), &actor())
        .await
        .unwrap();
    // Staying in it, a change may not take away what it requires.
    let mut remove = change();
    remove.properties = Some(object(json!({"resolution": null})));
    assert!(matches!(
        store.update_ticket(&ticket, remove, &actor()).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        store.ticket(&ticket).await.unwrap().properties["resolution"],
        "replaced"
    );
}

async fn a_property_patch_merges_and_null_removes_a_key(store: Arc<dyn Store>, _: &Backend) {
    let mut rules = rules("chat");
    rules.ticket.properties = object(json!({"source": "chat"}));
    let conversation = open_conversation(&*store, &rules, "ana").await;
    let ticket = ticket_of(&*store, &conversation).await.id;
    let patch = |value: serde_json::Value| {
        let mut c = change();
        c.properties = Some(object(value));
        c
    };
    store
        .update_ticket(
            &ticket,
            patch(json!({"a": 1, "b": {"nested": [1, 2]}})),
            &actor(),
        )
        .await
        .unwrap();
    let ticket = store
        .update_ticket(&ticket, patch(json!({"a": null, "c": "three"})), &actor())
        .await
        .unwrap();
    assert_eq!(
        ticket.properties,
        object(json!({"source": "chat", "b": {"nested": [1, 2]}, "c": "three"}))
    );
    assert_eq!(ticket.status, "new", "a change without a status keeps it");
}

async fn a_ticket_whose_pipeline_is_gone_cannot_change(store: Arc<dyn Store>, _: &Backend) {
    let conversation = open_conversation(&*store, &rules("chat"), "ana").await;
    let ticket = ticket_of(&*store, &conversation).await.id;
    let mut c = to_status("closed");
    c.pipelines = Arc::new(BTreeMap::new());
    assert!(matches!(
        store.update_ticket(&ticket, c, &actor()).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn reopening_a_ticket_whose_contact_has_moved_on_is_a_conflict(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let mut no_reopen = rules("chat");
    no_reopen.reopen = false;
    let old = post(&*store, &no_reopen, Msg::new("m1", "ana"))
        .await
        .conversation;
    let old_ticket = ticket_of(&*store, &old).await.id;
    store
        .update_ticket(&old_ticket, to_status("closed"), &actor())
        .await
        .unwrap();
    // Ana writes again: a new open conversation on the same thread.
    let new = post(&*store, &no_reopen, Msg::new("m2", "ana"))
        .await
        .conversation;

    match store
        .update_ticket(&old_ticket, to_status("new"), &actor())
        .await
    {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    let unchanged = store.ticket(&old_ticket).await.unwrap();
    assert_eq!(unchanged.status, "closed", "all or nothing");
    assert_eq!(
        statuses(&*store, &[old, new]).await,
        [ConversationStatus::Closed, ConversationStatus::Open]
    );
}

async fn reopening_a_conversation_while_its_contact_has_another_open_one_is_a_conflict(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let mut no_reopen = rules("chat");
    no_reopen.reopen = false;
    let old = post(&*store, &no_reopen, Msg::new("m1", "ana"))
        .await
        .conversation;
    store
        .update_conversation(&old, set_status(ConversationStatus::Closed), &actor())
        .await
        .unwrap();
    let new = post(&*store, &no_reopen, Msg::new("m2", "ana"))
        .await
        .conversation;

    // Assigned and reopened in one change: all or nothing.
    let both = ConversationUpdate {
        owner_id: Some(Some("alice".into())),
        status: Some(ConversationStatus::Open),
    };
    match store.update_conversation(&old, both, &actor()).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    let unchanged = store.conversation(&old).await.unwrap();
    assert_eq!(
        (unchanged.status, unchanged.owner_id),
        (ConversationStatus::Closed, None)
    );
    // Once the other one is closed, it may reopen.
    store
        .update_conversation(&new, set_status(ConversationStatus::Closed), &actor())
        .await
        .unwrap();
    store
        .update_conversation(&old, set_status(ConversationStatus::Open), &actor())
        .await
        .unwrap();
    assert_eq!(
        statuses(&*store, &[old, new]).await,
        [ConversationStatus::Open, ConversationStatus::Closed]
    );
}

async fn deleting_one_conversation_trashes_the_ticket_and_all_its_conversations_and_purge_removes_them(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let (ticket, [first, second]) = ticket_with_two_conversations(&*store).await;
    store.delete_conversation(&first, &actor()).await.unwrap();
    for r in [
        store.ticket(&ticket).await.map(drop),
        store.conversation(&first).await.map(drop),
        store.conversation(&second).await.map(drop),
        store.ticket_history(&ticket).await.map(drop),
    ] {
        assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
    }
    let listed = store
        .conversations(&Default::default(), &page(10))
        .await
        .unwrap();
    assert!(listed.items.is_empty(), "the trash is not listed");
    assert!(matches!(
        store.delete_conversation(&first, &actor()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_ticket(&ticket, &actor()).await,
        Err(StoreError::NotFound(_))
    ));

    // Not yet past retention: nothing purged, still restorable.
    let purged = store
        .purge_trash(Utc::now() - Duration::days(1))
        .await
        .unwrap();
    assert_eq!(purged, 0);
    let restored = store.restore_ticket(&ticket, &actor()).await.unwrap();
    assert_eq!(
        restored.conversation_ids,
        vec![first.clone(), second.clone()]
    );
    assert!(store.conversation(&second).await.is_ok());

    store.delete_ticket(&ticket, &actor()).await.unwrap();
    assert!(matches!(
        store.conversation(&second).await,
        Err(StoreError::NotFound(_))
    ));
    let purged = store
        .purge_trash(Utc::now() + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert!(matches!(
        store.restore_ticket(&ticket, &actor()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.messages(&first, &page(10)).await,
        Err(StoreError::NotFound(_))
    ));
    // Its delivery job went with it, and so did every event older than the cut-off.
    let pending = store
        .deliveries(JobState::Pending, &page(10))
        .await
        .unwrap();
    assert!(pending.items.is_empty(), "{:?}", pending.items);
    assert!(
        store
            .events_after(0, &Default::default(), 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_restored_conversation_whose_contact_has_moved_on_comes_back_closed(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let rules = rules("chat");
    let old = post(&*store, &rules, Msg::new("m1", "ana"))
        .await
        .conversation;
    let ticket = ticket_of(&*store, &old).await.id;
    store.delete_conversation(&old, &actor()).await.unwrap();
    let new = post(&*store, &rules, Msg::new("m2", "ana"))
        .await
        .conversation;

    let restored = store.restore_ticket(&ticket, &actor()).await.unwrap();
    assert_eq!(restored.conversation_ids, vec![old.clone()]);
    assert_eq!(
        statuses(&*store, &[old, new]).await,
        [ConversationStatus::Closed, ConversationStatus::Open]
    );
}

async fn only_trashed_tickets_can_be_restored(store: Arc<dyn Store>, _: &Backend) {
    let conversation = open_conversation(&*store, &rules("chat"), "ana").await;
    let ticket = ticket_of(&*store, &conversation).await.id;
    assert!(matches!(
        store.restore_ticket(&ticket, &actor()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.restore_ticket(&TicketId::new(), &actor()).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn the_history_says_who_changed_what_and_why(store: Arc<dyn Store>, _: &Backend) {
    let conversation = open_conversation(&*store, &rules("chat"), "ana").await;
    let ticket = ticket_of(&*store, &conversation).await.id;
    let lead = Actor {
        kind: SenderKind::Rep,
        name: "lead".into(),
        reason: Some("alice covers billing".into()),
    };
    store
        .update_conversation(&conversation, assign(Some("alice")), &lead)
        .await
        .unwrap();
    let mut c = to_status("waiting");
    c.properties = Some(object(json!({"topic": "billing"})));
    store
        .update_ticket(&ticket, c, &Actor::new(SenderKind::Rep, "alice"))
        .await
        .unwrap();
    store
        .delete_ticket(&ticket, &Actor::new(SenderKind::Token, "admin"))
        .await
        .unwrap();
    store
        .restore_ticket(&ticket, &Actor::new(SenderKind::Token, "admin"))
        .await
        .unwrap();

    let history = store.ticket_history(&ticket).await.unwrap();
    let summary: Vec<_> = history
        .iter()
        .map(|e| {
            (
                (e.actor_type, e.actor.as_str()),
                e.entity.as_str(),
                e.action.as_str(),
                e.reason.as_deref(),
            )
        })
        .collect();
    let why = Some("alice covers billing");
    let (rep, token) = (SenderKind::Rep, SenderKind::Token);
    assert_eq!(
        summary,
        vec![
            ((rep, "lead"), "conversation", "owner_changed", why),
            ((rep, "lead"), "ticket", "owner_changed", why),
            ((rep, "alice"), "ticket", "status_changed", None),
            ((rep, "alice"), "ticket", "properties_changed", None),
            ((token, "admin"), "ticket", "deleted", None),
            ((token, "admin"), "conversation", "restored", None),
            ((token, "admin"), "ticket", "restored", None),
        ]
    );
    assert_eq!(history[0].entity_id, conversation.as_str());
    assert_eq!(history[1].entity_id, ticket.as_str());
    assert_eq!(
        history[0].changes,
        json!({"owner_id": {"from": null, "to": "alice"}})
    );
    assert_eq!(
        history[2].changes,
        json!({"status": {"from": "new", "to": "waiting"}})
    );
    assert_eq!(
        history[3].changes,
        json!({"properties": {"from": {}, "to": {"topic": "billing"}}})
    );
    assert!(
        history.windows(2).all(|w| w[0].at <= w[1].at),
        "oldest first"
    );
}

async fn a_contacts_owner_and_email_can_be_set_and_cleared(store: Arc<dyn Store>, _: &Backend) {
    let first = post(&*store, &rules("chat"), Msg::new("m1", "ana").name("Ana")).await;
    let contact = store
        .conversation(&first.conversation)
        .await
        .unwrap()
        .contact
        .id;
    let set = ContactUpdate {
        owner_id: Some(Some("alice".into())),
        email: Some(Some("ana@example.com".into())),
    };
    let updated = store.update_contact(&contact, set).await.unwrap();
    assert_eq!(updated.owner_id.as_deref(), Some("alice"));
    assert_eq!(updated.email.as_deref(), Some("ana@example.com"));
    assert_eq!(updated.display_name.as_deref(), Some("Ana"));
    assert_eq!(store.contact(&contact).await.unwrap(), updated);

    // Fields not named stay as they are.
    let only_email = ContactUpdate {
        owner_id: None,
        email: Some(None),
    };
    let updated = store.update_contact(&contact, only_email).await.unwrap();
    assert_eq!(updated.owner_id.as_deref(), Some("alice"));
    assert_eq!(updated.email, None);
    let clear_owner = ContactUpdate {
        owner_id: Some(None),
        email: None,
    };
    let updated = store.update_contact(&contact, clear_owner).await.unwrap();
    assert_eq!((updated.owner_id, updated.email), (None, None));
    assert_eq!(
        store
            .conversation(&first.conversation)
            .await
            .unwrap()
            .contact
            .owner_id,
        None
    );
    assert!(matches!(
        store
            .update_contact(
                &channel_bridge::model::ContactId::new(),
                ContactUpdate::default()
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn the_ticket_list_is_scoped_filtered_and_lists_the_trash_apart(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let chat = open_conversation(&*store, &rules("chat"), "ana").await;
    let shop = open_conversation(&*store, &rules("shop"), "bo").await;
    let chat_ticket = ticket_of(&*store, &chat).await.id;
    let shop_ticket = ticket_of(&*store, &shop).await.id;
    store
        .update_conversation(&shop, assign(Some("alice")), &actor())
        .await
        .unwrap();
    let list = |filter: TicketFilter| {
        let store = store.clone();
        async move {
            store
                .tickets(&filter, &page(10))
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|t| t.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(TicketFilter::default()).await,
        [shop_ticket.clone(), chat_ticket.clone()],
        "newest first"
    );
    let only_chat = Scope::Only(["chat".to_owned()].into());
    assert_eq!(
        list(TicketFilter {
            scope: only_chat.clone(),
            ..Default::default()
        })
        .await,
        vec![chat_ticket.clone()]
    );
    assert_eq!(
        list(TicketFilter {
            scope: Scope::Except(["chat".to_owned()].into()),
            ..Default::default()
        })
        .await,
        vec![shop_ticket.clone()]
    );
    assert_eq!(
        list(TicketFilter {
            owner: Some("alice".into()),
            ..Default::default()
        })
        .await,
        vec![shop_ticket.clone()]
    );
    assert_eq!(
        list(TicketFilter {
            owner: Some("none".into()),
            channel: Some("chat".into()),
            status: Some("new".into()),
            pipeline: Some("support".into()),
            ..Default::default()
        })
        .await,
        vec![chat_ticket.clone()]
    );
    let first = store
        .tickets(&TicketFilter::default(), &page(1))
        .await
        .unwrap();
    let rest = store
        .tickets(
            &TicketFilter::default(),
            &PageRequest {
                limit: 1,
                cursor: first.next_cursor.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items[0].id, chat_ticket);
    assert_eq!(rest.next_cursor, None);

    let trashed = store.delete_conversation(&chat, &actor()).await.unwrap();
    assert_eq!(trashed.ticket_id, chat_ticket);
    assert_eq!(trashed.conversation_ids, vec![chat.clone()]);
    assert_eq!(trashed.queued_replies, 0);
    assert_eq!(
        list(TicketFilter::default()).await,
        vec![shop_ticket.clone()]
    );
    let trash = store
        .tickets(
            &TicketFilter {
                trashed: true,
                scope: only_chat,
                ..Default::default()
            },
            &page(10),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(trash.len(), 1);
    assert_eq!(trash[0].id, chat_ticket);
    assert_eq!(trash[0].conversation_ids, vec![chat]);
    assert!(trash[0].trashed_at.is_some());
}
