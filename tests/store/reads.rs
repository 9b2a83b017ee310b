//! Reads on one seeded data set, answered alike by both stores: the conversation list's
//! every filter, a search with a NUL in it, a conversation's messages page by page and
//! what a send needs of a reply. (Folded in from the PostgreSQL store's in-file twin
//! tests, which ran each case on both stores side by side.)

use std::sync::Arc;

use channel_bridge::model::{
    Conversation, ConversationId, ConversationStatus, MessageId, Part, TextPart, from_millis,
};
use channel_bridge::store::{ConversationFilter, Page, PageRequest, Store, StoreError};

use crate::seed::{BASE, Seed};
use crate::support::Backend;

conformance!(
    conversations_filter_by_every_field_newest_activity_first,
    a_search_with_a_nul_is_answered_not_refused,
    messages_page_oldest_first_and_outbound_has_what_a_send_needs,
);

fn page(limit: u32, cursor: Option<&str>) -> PageRequest {
    PageRequest {
        limit,
        cursor: cursor.map(str::to_owned),
    }
}

fn ids<T>(page: &Page<T>, id: impl Fn(&T) -> &str) -> Vec<String> {
    page.items.iter().map(|item| id(item).to_owned()).collect()
}

fn conversation_ids(page: &Page<Conversation>) -> Vec<String> {
    ids(page, |c| c.id.as_str())
}

/// Six conversations on two channels, one in the trash:
///
/// | id   | channel | contact | ticket (status) | status | owner | last message |
/// |------|---------|---------|-----------------|--------|-------|--------------|
/// | c1   | chat    | ana     | t1 (new)        | open   | alice | BASE+1000    |
/// | c2   | chat    | bo      | t2 (closed)     | closed | -     | BASE+3000    |
/// | c3   | mail    | ana     | t3 (new)        | open   | bob   | BASE+3000    |
/// | c4   | mail    | cy      | t4 (pending)    | open   | -     | BASE+2000    |
/// | c5   | chat    | cy      | t5 (new)        | closed | alice | BASE+4000    |
/// | c6   | chat    | dee     | t6 (new), trash | open   | -     | BASE+5000    |
async fn seeded(backend: &Backend) -> Seed<'_> {
    let seed = Seed(backend);
    for (contact, name) in [("ana", "Ana"), ("bo", "Bo"), ("cy", "Cy"), ("dee", "Dee")] {
        seed.contact(contact, Some(name), None).await;
    }
    seed.identifier("ana", "chat", "app_user", "ana-1").await;
    seed.identifier("ana", "mail", "email", "ana@example.com")
        .await;
    seed.identifier("ana", "chat", "App_user", "ana-0").await;
    seed.identifier("bo", "chat", "app_user", "bo-1").await;
    seed.identifier("cy", "chat", "app_user", "cy-1").await;
    for (ticket, status, closed) in [
        ("t1", "new", None),
        ("t2", "closed", Some(BASE + 3000)),
        ("t3", "new", None),
        ("t4", "pending", None),
        ("t5", "new", None),
        ("t6", "new", None),
    ] {
        seed.ticket(ticket, status, None, closed).await;
    }
    for (id, channel, contact, ticket, status, owner, last) in [
        ("c1", "chat", "ana", "t1", "open", Some("alice"), 1000),
        ("c2", "chat", "bo", "t2", "closed", None, 3000),
        ("c3", "mail", "ana", "t3", "open", Some("bob"), 3000),
        ("c4", "mail", "cy", "t4", "open", None, 2000),
        ("c5", "chat", "cy", "t5", "closed", Some("alice"), 4000),
        ("c6", "chat", "dee", "t6", "open", None, 5000),
    ] {
        seed.conversation(id, channel, contact, ticket, status, owner, BASE + last)
            .await;
    }
    seed.exec(&format!(
        "UPDATE tickets SET deleted_at = {} WHERE id = 't6'",
        BASE + 6000
    ))
    .await;
    seed.exec(&format!(
        "UPDATE conversations SET deleted_at = {} WHERE id = 'c6'",
        BASE + 6000
    ))
    .await;
    let texts = [
        ("m1", "c1", "chat", "Hello world, my order #42 is late"),
        (
            "m2",
            "c2",
            "chat",
            "Don't panic: the refund (50%) is on its way",
        ),
        (
            "m3",
            "c3",
            "mail",
            r#"see C:\temp\x and a&b | c! 'quoted' "dq" x:y"#,
        ),
        ("m4", "c4", "mail", "donald trump"),
        ("m5", "c5", "chat", "hello there"),
        ("m6", "c6", "chat", "hello from the trash"),
    ];
    for (n, (id, conversation, channel, text)) in texts.into_iter().enumerate() {
        seed.message(
            id,
            conversation,
            channel,
            "inbound",
            ("contact", "someone"),
            text,
            BASE + n as i64,
        )
        .await;
    }
    seed
}

async fn conversations_filter_by_every_field_newest_activity_first(
    store: Arc<dyn Store>,
    backend: &Backend,
) {
    seeded(backend).await;
    let cases: Vec<(ConversationFilter, &[&str])> = vec![
        // Ties on last activity: the later conversation first. The trashed one never.
        (
            ConversationFilter::default(),
            &["c5", "c3", "c2", "c4", "c1"],
        ),
        (
            ConversationFilter {
                channel: Some("chat".into()),
                ..Default::default()
            },
            &["c5", "c2", "c1"],
        ),
        (
            ConversationFilter {
                status: Some(ConversationStatus::Closed),
                ..Default::default()
            },
            &["c5", "c2"],
        ),
        (
            ConversationFilter {
                ticket_status: Some("pending".into()),
                ..Default::default()
            },
            &["c4"],
        ),
        (
            ConversationFilter {
                owner: Some("none".into()),
                ..Default::default()
            },
            &["c2", "c4"],
        ),
        (
            ConversationFilter {
                owner: Some("alice".into()),
                ..Default::default()
            },
            &["c5", "c1"],
        ),
        // From is inclusive, to exclusive.
        (
            ConversationFilter {
                from: Some(from_millis(BASE + 2000)),
                to: Some(from_millis(BASE + 4000)),
                ..Default::default()
            },
            &["c3", "c2", "c4"],
        ),
        (
            ConversationFilter {
                channel: Some("mail".into()),
                status: Some(ConversationStatus::Open),
                owner: Some("bob".into()),
                q: Some("quoted".into()),
                ..Default::default()
            },
            &["c3"],
        ),
        (
            ConversationFilter {
                channel: Some("nowhere".into()),
                ..Default::default()
            },
            &[],
        ),
    ];
    for (filter, expected) in cases {
        let page = store.conversations(&filter, &page(10, None)).await.unwrap();
        assert_eq!(conversation_ids(&page), expected, "{filter:?}");
        assert_eq!(page.next_cursor, None);
    }
}

async fn a_search_with_a_nul_is_answered_not_refused(store: Arc<dyn Store>, backend: &Backend) {
    seeded(backend).await;
    let filter = ConversationFilter {
        q: Some("hello\0wor".into()),
        ..Default::default()
    };
    let page = store.conversations(&filter, &page(10, None)).await.unwrap();
    assert_eq!(conversation_ids(&page), ["c1"]);
}

async fn messages_page_oldest_first_and_outbound_has_what_a_send_needs(
    store: Arc<dyn Store>,
    backend: &Backend,
) {
    let seed = seeded(backend).await;
    for (n, id) in ["r1", "r2", "r3"].into_iter().enumerate() {
        seed.message(
            id,
            "c1",
            "chat",
            "outbound",
            ("rep", "alice"),
            &format!("reply {n}"),
            BASE + 100 + n as i64,
        )
        .await;
    }
    seed.exec(&format!(
        "UPDATE messages SET reply_to = 'm1', attempts = 2, delivery_note = 'sent as a link',
             edited_at = {}, history = '[]'
         WHERE id = 'r1'",
        BASE + 500
    ))
    .await;
    let c1 = ConversationId::from_stored("c1".into());
    let first = store.messages(&c1, &page(2, None)).await.unwrap();
    assert_eq!(ids(&first, |m| m.id.as_str()), ["m1", "r1"]);
    assert_eq!(
        first.items[1].reply_to.as_ref().map(|m| m.as_str()),
        Some("m1")
    );
    assert_eq!(first.items[1].delivery.attempts, 2);
    assert_eq!(first.items[1].edited_at, Some(from_millis(BASE + 500)));
    let cursor = first.next_cursor.clone().expect("a second page");
    let second = store.messages(&c1, &page(2, Some(&cursor))).await.unwrap();
    assert_eq!(ids(&second, |m| m.id.as_str()), ["r2", "r3"]);
    assert_eq!(second.next_cursor, None);
    for (conversation, request) in [("c6", page(2, None)), ("nope", page(2, None))] {
        let id = ConversationId::from_stored(conversation.into());
        let result = store.messages(&id, &request).await;
        assert!(matches!(result, Err(StoreError::NotFound("conversation"))));
    }
    let bad = page(2, Some("x"));
    let result = store.messages(&c1, &bad).await;
    assert!(matches!(result, Err(StoreError::Invalid(_))));

    let r1 = MessageId::from_stored("r1".into());
    let message = store.message(&r1).await.unwrap();
    assert_eq!(message.delivery.note.as_deref(), Some("sent as a link"));
    let missing = MessageId::from_stored("nope".into());
    let result = store.message(&missing).await;
    assert!(matches!(result, Err(StoreError::NotFound("message"))));

    let outbound = store.outbound(&r1).await.unwrap();
    assert_eq!(outbound.conversation_id.as_str(), "c1");
    // The first identifier by kind, in byte order; the quoted message's platform id.
    assert_eq!(
        (outbound.to.kind.as_str(), outbound.to.value.as_str()),
        ("App_user", "ana-0")
    );
    assert_eq!(outbound.reply_to.as_deref(), Some("p-m1"));
    assert_eq!(
        outbound.parts,
        [Part::Text(TextPart {
            text: "reply 0".into()
        })]
    );
    let r2 = store
        .outbound(&MessageId::from_stored("r2".into()))
        .await
        .map(|o| o.reply_to)
        .unwrap();
    assert_eq!(r2, None);
    // Inbound messages are not sent; a contact without an identifier there cannot be.
    let m1 = MessageId::from_stored("m1".into());
    let result = store.outbound(&m1).await.map(|_| ());
    assert!(matches!(result, Err(StoreError::NotFound("message"))));
    seed.message(
        "r4",
        "c4",
        "mail",
        "outbound",
        ("rep", "bob"),
        "hi",
        BASE + 9,
    )
    .await;
    let r4 = MessageId::from_stored("r4".into());
    let result = store.outbound(&r4).await.map(|_| ());
    assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
}
