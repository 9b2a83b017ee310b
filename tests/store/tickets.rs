//! Ticket and conversation changes on a seeded data set, answered alike by both stores:
//! closing and reopening tickets, assigning and closing conversations, the trash, a
//! contact's reads and updates. (Folded in from the PostgreSQL store's in-file twin tests,
//! which ran each case on both stores side by side.)

use std::collections::BTreeMap;
use std::sync::Arc;

use channel_bridge::config::{PipelineConfig, StatusConfig};
use channel_bridge::model::{
    ContactId, Conversation, ConversationId, ConversationStatus, SenderKind, TicketId, from_millis,
};
use channel_bridge::store::{
    Actor, ContactUpdate, ConversationFilter, ConversationUpdate, EventFilter, PageRequest, Store,
    StoreError, TicketChange,
};
use chrono::Utc;
use serde_json::{Map, Value, json};

use crate::seed::{BASE, Seed};
use crate::support::Backend;

conformance!(
    closing_a_ticket_needs_its_properties_and_closes_every_conversation,
    a_ticket_change_starts_from_what_a_concurrent_change_wrote,
    reopening_a_ticket_reopens_its_only_conversation_unless_the_thread_has_another,
    assigning_a_conversation_assigns_its_ticket_and_closing_it_closes_only_it,
    the_trash_hides_restores_and_purges_a_ticket_with_everything_it_holds,
    a_contact_reads_with_identifiers_and_updates_owner_and_email,
);

/// `support`: new, pending, closed (closes, requires `resolution`).
fn pipelines() -> Arc<BTreeMap<String, PipelineConfig>> {
    let status = |id: &str, closed: bool, requires: &[&str]| StatusConfig {
        id: id.into(),
        closed,
        requires: requires.iter().map(|r| r.to_string()).collect(),
    };
    let pipeline = PipelineConfig {
        statuses: vec![
            status("new", false, &[]),
            status("pending", false, &[]),
            status("closed", true, &["resolution"]),
        ],
    };
    Arc::new([("support".to_owned(), pipeline)].into())
}

fn change(status: Option<&str>) -> TicketChange {
    TicketChange {
        status: status.map(str::to_owned),
        owner_id: None,
        priority: None,
        properties: None,
        pipelines: pipelines(),
    }
}

fn props(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn tid(id: &str) -> TicketId {
    TicketId::from_stored(id.into())
}

fn cid(id: &str) -> ConversationId {
    ConversationId::from_stored(id.into())
}

fn actor(name: &str, reason: Option<&str>) -> Actor {
    Actor {
        kind: SenderKind::Rep,
        name: name.into(),
        reason: reason.map(str::to_owned),
    }
}

fn page(limit: u32) -> PageRequest {
    PageRequest {
        limit,
        cursor: None,
    }
}

/// Contacts ana and bo. Ticket t1 (new) has two open conversations, c1 on chat and
/// c2 on mail, both ana's; ticket t2 (new) has bo's open conversation c3 on chat.
async fn seeded(backend: &Backend) -> Seed<'_> {
    let seed = Seed(backend);
    seed.contact("ana", Some("Ana"), None).await;
    seed.contact("bo", Some("Bo"), None).await;
    seed.identifier("ana", "chat", "app_user", "ana-1").await;
    seed.identifier("bo", "chat", "app_user", "bo-1").await;
    seed.ticket("t1", "new", None, None).await;
    seed.ticket("t2", "new", None, None).await;
    seed.conversation("c1", "chat", "ana", "t1", "open", None, BASE + 10)
        .await;
    seed.conversation("c2", "mail", "ana", "t1", "open", None, BASE + 20)
        .await;
    seed.conversation("c3", "chat", "bo", "t2", "open", None, BASE + 30)
        .await;
    for (id, conversation, channel) in [("m1", "c1", "chat"), ("m2", "c2", "mail")] {
        seed.message(
            id,
            conversation,
            channel,
            "inbound",
            ("contact", "ana"),
            "help",
            BASE,
        )
        .await;
    }
    seed.message("m3", "c3", "chat", "inbound", ("contact", "bo"), "hi", BASE)
        .await;
    seed
}

async fn conversation(store: &dyn Store, id: &str) -> Result<Conversation, StoreError> {
    store.conversation(&cid(id)).await
}

type Entry = (String, String, String, Value, Option<String>);

async fn history(store: &dyn Store, id: &str) -> Vec<Entry> {
    store
        .ticket_history(&tid(id))
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.actor, e.entity_id, e.action, e.changes, e.reason))
        .collect()
}

/// Every event so far.
async fn all_events(store: &dyn Store) -> Vec<channel_bridge::store::Event> {
    store
        .events_after(0, &EventFilter::default(), 1000)
        .await
        .expect("events")
}

/// (kind, conversation, data) of every event.
async fn events(store: &dyn Store) -> Vec<(String, String, Value)> {
    all_events(store)
        .await
        .into_iter()
        .map(|e| (e.kind, e.conversation_id.unwrap_or_default(), e.data))
        .collect()
}

fn entry(
    actor: &str,
    entity_id: &str,
    action: &str,
    changes: Value,
    reason: Option<&str>,
) -> Entry {
    (
        actor.into(),
        entity_id.into(),
        action.into(),
        changes,
        reason.map(str::to_owned),
    )
}

async fn closing_a_ticket_needs_its_properties_and_closes_every_conversation(
    store: Arc<dyn Store>,
    backend: &Backend,
) {
    seeded(backend).await;
    let store = &*store;
    let ticket = store.ticket(&tid("t1")).await.unwrap();
    assert_eq!(ticket.conversation_ids, [cid("c1"), cid("c2")]);
    assert_eq!(
        (ticket.pipeline.as_str(), ticket.status.as_str()),
        ("support", "new")
    );

    // The status requires a resolution, given with the move.
    let result = store
        .update_ticket(&tid("t1"), change(Some("closed")), &actor("api", None))
        .await;
    assert!(matches!(&result, Err(StoreError::Invalid(e)) if e.contains("resolution")));
    let result = store
        .update_ticket(&tid("t1"), change(Some("gone")), &actor("api", None))
        .await;
    assert!(matches!(result, Err(StoreError::Invalid(_))));

    let closing = TicketChange {
        owner_id: Some(Some("alice".into())),
        properties: Some(props(json!({"resolution": "refund", "tier": "gold"}))),
        ..change(Some("closed"))
    };
    let closed = store
        .update_ticket(&tid("t1"), closing.clone(), &actor("api", Some("done")))
        .await
        .unwrap();
    assert_eq!(closed.status, "closed");
    assert_eq!(closed.owner_id.as_deref(), Some("alice"));
    assert_eq!(
        Value::Object(closed.properties.clone()),
        json!({"resolution": "refund", "tier": "gold"})
    );
    assert!(closed.closed_at.is_some_and(|at| at > from_millis(BASE)));
    for id in ["c1", "c2"] {
        assert_eq!(
            conversation(store, id).await.unwrap().status,
            ConversationStatus::Closed
        );
    }
    assert_eq!(
        history(store, "t1").await,
        [
            entry(
                "api",
                "t1",
                "status_changed",
                json!({"status": {"from": "new", "to": "closed"}}),
                Some("done")
            ),
            entry(
                "api",
                "t1",
                "owner_changed",
                json!({"owner_id": {"from": null, "to": "alice"}}),
                Some("done")
            ),
            entry(
                "api",
                "t1",
                "properties_changed",
                json!({"properties": {"from": {}, "to": {"resolution": "refund", "tier": "gold"}}}),
                Some("done")
            ),
            entry(
                "api",
                "c1",
                "status_changed",
                json!({"status": {"from": "open", "to": "closed"}}),
                Some("done")
            ),
            entry(
                "api",
                "c2",
                "status_changed",
                json!({"status": {"from": "open", "to": "closed"}}),
                Some("done")
            ),
        ]
    );
    let changed = json!({"ticket_id": "t1", "status": "closed", "previous_status": "new"});
    assert_eq!(
        events(store).await,
        [
            ("ticket.status_changed".into(), "c1".into(), changed.clone()),
            ("ticket.status_changed".into(), "c2".into(), changed),
            (
                "conversation.status_changed".into(),
                "c1".into(),
                json!({"status": "closed"})
            ),
            (
                "conversation.status_changed".into(),
                "c2".into(),
                json!({"status": "closed"})
            ),
        ]
    );

    // A change that moves nothing records nothing; a null property removes it.
    let same = store
        .update_ticket(&tid("t1"), change(None), &actor("api", None))
        .await
        .unwrap();
    assert_eq!(same.closed_at, closed.closed_at);
    let result = store
        .update_ticket(
            &tid("t1"),
            TicketChange {
                properties: Some(props(json!({"resolution": null}))),
                ..change(None)
            },
            &actor("api", None),
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::Invalid(_))),
        "the status requires it"
    );
    let trimmed = store
        .update_ticket(
            &tid("t1"),
            TicketChange {
                properties: Some(props(json!({"tier": null}))),
                ..change(None)
            },
            &actor("api", None),
        )
        .await
        .unwrap();
    assert_eq!(
        Value::Object(trimmed.properties),
        json!({"resolution": "refund"})
    );
    assert_eq!(history(store, "t1").await.len(), 6);

    // Reopened with two conversations: neither reopens; the close time goes.
    let reopened = store
        .update_ticket(&tid("t1"), change(Some("pending")), &actor("api", None))
        .await
        .unwrap();
    assert_eq!(reopened.closed_at, None);
    for id in ["c1", "c2"] {
        assert_eq!(
            conversation(store, id).await.unwrap().status,
            ConversationStatus::Closed
        );
    }
    let result = store
        .update_ticket(&tid("nope"), change(None), &actor("api", None))
        .await;
    assert!(matches!(result, Err(StoreError::NotFound("ticket"))));
}

/// A change made while another one is in flight starts from what that one wrote, rather
/// than writing over it. On PostgreSQL the other is another replica's open transaction,
/// and the change waits for it; SQLite's single writer runs one write after the other,
/// so there the other change has committed before this one starts.
async fn a_ticket_change_starts_from_what_a_concurrent_change_wrote(
    store: Arc<dyn Store>,
    backend: &Backend,
) {
    seeded(backend).await;
    let change = TicketChange {
        properties: Some(props(json!({"y": 2}))),
        ..change(None)
    };
    let (id, api) = (tid("t1"), actor("api", None));
    let changed = match backend {
        Backend::Sqlite { .. } => {
            backend
                .execute("UPDATE tickets SET properties = '{\"x\": 1}' WHERE id = 't1'")
                .await;
            store.update_ticket(&id, change, &api).await
        }
        Backend::Postgres { store: pg, .. } => {
            let pool = pg.pool();
            let mut other = pool.begin().await.unwrap();
            let other_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut *other)
                .await
                .unwrap();
            sqlx::query("UPDATE tickets SET properties = '{\"x\": 1}' WHERE id = 't1'")
                .execute(&mut *other)
                .await
                .unwrap();
            let (changed, ()) = tokio::join!(store.update_ticket(&id, change, &api), async {
                // Commits once the change is waiting for it (not after some time).
                loop {
                    let waiting: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                    )
                    .bind(other_pid)
                    .fetch_one(pool)
                    .await
                    .unwrap();
                    if waiting > 0 {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                other.commit().await.unwrap();
            });
            changed
        }
    };
    let changed = changed.unwrap();
    assert_eq!(Value::Object(changed.properties), json!({"x": 1, "y": 2}));
    let history = store.ticket_history(&tid("t1")).await.unwrap();
    assert_eq!(
        history.last().map(|e| &e.changes),
        Some(&json!({"properties": {"from": {"x": 1}, "to": {"x": 1, "y": 2}}}))
    );
}

async fn reopening_a_ticket_reopens_its_only_conversation_unless_the_thread_has_another(
    store: Arc<dyn Store>,
    backend: &Backend,
) {
    let seed = seeded(backend).await;
    let store = &*store;
    let closing = TicketChange {
        properties: Some(props(json!({"resolution": "answered"}))),
        ..change(Some("closed"))
    };
    store
        .update_ticket(&tid("t2"), closing.clone(), &actor("api", None))
        .await
        .unwrap();
    store
        .update_ticket(&tid("t2"), change(Some("new")), &actor("api", None))
        .await
        .unwrap();
    assert_eq!(
        conversation(store, "c3").await.unwrap().status,
        ConversationStatus::Open
    );

    // Closed again; then bo writes again and gets a new conversation on that thread.
    store
        .update_ticket(&tid("t2"), closing.clone(), &actor("api", None))
        .await
        .unwrap();
    seed.ticket("t3", "new", None, None).await;
    seed.conversation("c4", "chat", "bo", "t3", "open", None, BASE + 40)
        .await;
    let before = all_events(store).await.len();
    let result = store
        .update_ticket(&tid("t2"), change(Some("new")), &actor("api", None))
        .await;
    // A conflict (409), not a contended transaction tried again and again (503).
    assert!(
        matches!(&result, Err(StoreError::Conflict(e)) if e.contains("cannot reopen")),
        "{result:?}"
    );
    // Nothing of the refused change stayed.
    let t2 = store.ticket(&tid("t2")).await.unwrap();
    assert_eq!(t2.status, "closed");
    assert_eq!(all_events(store).await.len(), before);
}

async fn assigning_a_conversation_assigns_its_ticket_and_closing_it_closes_only_it(
    store: Arc<dyn Store>,
    backend: &Backend,
) {
    let seed = seeded(backend).await;
    let store = &*store;
    let assign = |owner: Option<&str>| ConversationUpdate {
        owner_id: Some(owner.map(str::to_owned)),
        status: None,
    };
    store
        .update_conversation(&cid("c1"), assign(Some("alice")), &actor("api", None))
        .await
        .unwrap();
    // Assigning again to the same rep changes nothing.
    store
        .update_conversation(&cid("c1"), assign(Some("alice")), &actor("api", None))
        .await
        .unwrap();
    // The ticket already belongs to alice: only the conversation's owner changes.
    store
        .update_conversation(&cid("c2"), assign(Some("alice")), &actor("api", None))
        .await
        .unwrap();
    store
        .update_conversation(&cid("c1"), assign(None), &actor("api", Some("away")))
        .await
        .unwrap();
    assert_eq!(conversation(store, "c1").await.unwrap().owner_id, None);
    let t1 = store.ticket(&tid("t1")).await.unwrap();
    assert_eq!(t1.owner_id, None);

    let close = ConversationUpdate {
        owner_id: None,
        status: Some(ConversationStatus::Closed),
    };
    store
        .update_conversation(&cid("c1"), close.clone(), &actor("api", None))
        .await
        .unwrap();
    let t1 = store.ticket(&tid("t1")).await.unwrap();
    assert_eq!((t1.status.as_str(), t1.closed_at), ("new", None));
    assert_eq!(
        conversation(store, "c2").await.unwrap().status,
        ConversationStatus::Open
    );
    assert_eq!(
        history(store, "t1").await,
        [
            entry(
                "api",
                "c1",
                "owner_changed",
                json!({"owner_id": {"from": null, "to": "alice"}}),
                None
            ),
            entry(
                "api",
                "t1",
                "owner_changed",
                json!({"owner_id": {"from": null, "to": "alice"}}),
                None
            ),
            entry(
                "api",
                "c2",
                "owner_changed",
                json!({"owner_id": {"from": null, "to": "alice"}}),
                None
            ),
            entry(
                "api",
                "c1",
                "owner_changed",
                json!({"owner_id": {"from": "alice", "to": null}}),
                Some("away")
            ),
            entry(
                "api",
                "t1",
                "owner_changed",
                json!({"owner_id": {"from": "alice", "to": null}}),
                Some("away")
            ),
            entry(
                "api",
                "c1",
                "status_changed",
                json!({"status": {"from": "open", "to": "closed"}}),
                None
            ),
        ]
    );
    assert_eq!(
        events(store).await,
        [
            (
                "conversation.assigned".into(),
                "c1".into(),
                json!({"owner_id": "alice", "previous_owner_id": null, "by": "api"})
            ),
            (
                "conversation.assigned".into(),
                "c2".into(),
                json!({"owner_id": "alice", "previous_owner_id": null, "by": "api"})
            ),
            (
                "conversation.assigned".into(),
                "c1".into(),
                json!({"owner_id": null, "previous_owner_id": "alice", "by": "api"})
            ),
            (
                "conversation.status_changed".into(),
                "c1".into(),
                json!({"status": "closed"})
            ),
        ]
    );
    // An event carries the conversation's owner and channel, for stream filters.
    let owners: Vec<Option<String>> = all_events(store)
        .await
        .into_iter()
        .map(|e| e.owner_id)
        .collect();
    assert_eq!(
        owners,
        [Some("alice".into()), Some("alice".into()), None, None]
    );

    // Reopening works while the thread is free, and is refused once it is not.
    let reopen = ConversationUpdate {
        owner_id: None,
        status: Some(ConversationStatus::Open),
    };
    store
        .update_conversation(&cid("c1"), reopen.clone(), &actor("api", None))
        .await
        .unwrap();
    store
        .update_conversation(&cid("c1"), close.clone(), &actor("api", None))
        .await
        .unwrap();
    seed.ticket("t9", "new", None, None).await;
    seed.conversation("c9", "chat", "ana", "t9", "open", None, BASE + 90)
        .await;
    let result = store
        .update_conversation(&cid("c1"), reopen.clone(), &actor("api", None))
        .await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    // Reopening an open conversation is no change at all.
    store
        .update_conversation(&cid("c9"), reopen.clone(), &actor("api", None))
        .await
        .unwrap();
    let result = store
        .update_conversation(&cid("nope"), close.clone(), &actor("api", None))
        .await;
    assert!(matches!(result, Err(StoreError::NotFound("conversation"))));
}

async fn the_trash_hides_restores_and_purges_a_ticket_with_everything_it_holds(
    store: Arc<dyn Store>,
    backend: &Backend,
) {
    let seed = seeded(backend).await;
    let store = &*store;
    seed.exec(&format!(
        "INSERT INTO jobs (id, kind, channel_id, ordering_key, payload, state, run_at,
             created_at, updated_at)
         VALUES ('j1', 'deliver', 'chat', 'c1', '{{}}', 'pending', {BASE}, {BASE}, {BASE})"
    ))
    .await;
    store
        .update_conversation(
            &cid("c2"),
            ConversationUpdate {
                owner_id: Some(Some("alice".into())),
                status: None,
            },
            &actor("api", None),
        )
        .await
        .unwrap();

    // Deleting one conversation trashes its ticket and every conversation of it.
    store
        .delete_conversation(&cid("c1"), &actor("api", Some("spam")))
        .await
        .unwrap();
    for id in ["c1", "c2"] {
        assert!(matches!(
            conversation(store, id).await,
            Err(StoreError::NotFound("conversation"))
        ));
    }
    for result in [
        store.ticket(&tid("t1")).await.map(|_| ()),
        store.ticket_history(&tid("t1")).await.map(|_| ()),
        store
            .delete_ticket(&tid("t1"), &actor("api", None))
            .await
            .map(|_| ()),
        store
            .delete_conversation(&cid("c2"), &actor("api", None))
            .await
            .map(|_| ()),
    ] {
        assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
    }
    let listed = store
        .conversations(&ConversationFilter::default(), &page(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);

    // Not yet past retention: nothing purged, still restorable.
    let purged = store
        .purge_trash(Utc::now() - chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!(purged, 0);
    // Meanwhile ana wrote again on chat: c1 comes back closed; c2 comes back open.
    seed.ticket("t5", "new", None, None).await;
    seed.conversation("c5", "chat", "ana", "t5", "open", None, BASE + 50)
        .await;
    let restored = store
        .restore_ticket(&tid("t1"), &actor("api", None))
        .await
        .unwrap();
    assert_eq!(restored.conversation_ids, [cid("c1"), cid("c2")]);
    assert_eq!(
        conversation(store, "c1").await.unwrap().status,
        ConversationStatus::Closed
    );
    assert_eq!(
        conversation(store, "c2").await.unwrap().status,
        ConversationStatus::Open
    );
    let result = store.restore_ticket(&tid("t1"), &actor("api", None)).await;
    assert!(
        matches!(&result, Err(StoreError::Conflict(e)) if e.contains("not in the trash")),
        "{result:?}"
    );
    assert_eq!(
        history(store, "t1").await,
        [
            entry(
                "api",
                "c2",
                "owner_changed",
                json!({"owner_id": {"from": null, "to": "alice"}}),
                None
            ),
            entry(
                "api",
                "t1",
                "owner_changed",
                json!({"owner_id": {"from": null, "to": "alice"}}),
                None
            ),
            entry(
                "api",
                "t1",
                "deleted",
                json!({
                    "conversations": 2,
                    "conversation_ids": ["c1", "c2"],
                    "queued_replies": 1,
                    "queued_replies_cancelled": false,
                }),
                Some("spam")
            ),
            entry(
                "api",
                "c1",
                "restored",
                json!({"status": {"from": "open", "to": "closed"}}),
                Some(
                    "the contact has opened another conversation on this channel since: \
                     this one comes back closed"
                )
            ),
            entry("api", "c2", "restored", json!({"status": "open"}), None),
            entry("api", "t1", "restored", json!({}), None),
        ]
    );

    // Trashed again and past retention: gone for good, with what hung on it.
    store
        .delete_ticket(&tid("t1"), &actor("api", None))
        .await
        .unwrap();
    let purged = store
        .purge_trash(Utc::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(purged, 1);
    let result = store.restore_ticket(&tid("t1"), &actor("api", None)).await;
    assert!(matches!(result, Err(StoreError::NotFound("ticket"))));
    let result = store.messages(&cid("c1"), &page(10)).await;
    assert!(matches!(result, Err(StoreError::NotFound("conversation"))));
    for (sql, left) in [
        ("SELECT count(*) FROM tickets WHERE id = 't1'", 0),
        (
            "SELECT count(*) FROM conversations WHERE ticket_id = 't1'",
            0,
        ),
        (
            "SELECT count(*) FROM messages WHERE conversation_id IN ('c1', 'c2')",
            0,
        ),
        ("SELECT count(*) FROM jobs", 0),
        ("SELECT count(*) FROM audit WHERE ticket_id = 't1'", 0),
        // Events older than the cut-off go too.
        ("SELECT count(*) FROM events", 0),
        // Other tickets stay.
        ("SELECT count(*) FROM messages", 1),
        ("SELECT count(*) FROM tickets", 2),
    ] {
        assert_eq!(backend.count(sql).await, left, "{sql}");
    }
    let purged = store
        .purge_trash(Utc::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(purged, 0);
}

async fn a_contact_reads_with_identifiers_and_updates_owner_and_email(
    store: Arc<dyn Store>,
    backend: &Backend,
) {
    seeded(backend).await;
    let ana = ContactId::from_stored("ana".into());
    let contact = store.contact(&ana).await.unwrap();
    assert_eq!(contact.display_name.as_deref(), Some("Ana"));
    assert_eq!(contact.identifiers.len(), 1);
    let updated = store
        .update_contact(
            &ana,
            ContactUpdate {
                owner_id: Some(Some("alice".into())),
                email: Some(Some("ana@example.com".into())),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.owner_id.as_deref(), updated.email.as_deref()),
        (Some("alice"), Some("ana@example.com"))
    );
    // Only what is given changes; `Some(None)` clears.
    let updated = store
        .update_contact(
            &ana,
            ContactUpdate {
                owner_id: None,
                email: Some(None),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.owner_id.as_deref(), updated.email),
        (Some("alice"), None)
    );
    let nobody = ContactId::from_stored("nobody".into());
    let result = store
        .update_contact(&nobody, ContactUpdate::default())
        .await;
    assert!(matches!(result, Err(StoreError::NotFound("contact"))));
}
