//! The lists reps browse: conversations (newest activity first, filtered, searched by what
//! was said) and a conversation's messages, page by page.

use std::sync::Arc;

use channel_bridge::model::event::{InboundEvent, MessageEdit};
use channel_bridge::model::{
    ChannelIdentifier, ConversationId, ConversationStatus, Media, MediaPart, MessageId, Part,
    from_millis,
};
use channel_bridge::store::{
    ConversationFilter, ConversationUpdate, NewContact, PageRequest, Store, StoreError,
};

use crate::support::*;

conformance!(
    conversations_are_listed_newest_activity_first_page_by_page,
    conversations_with_the_same_activity_time_page_without_gaps_or_repeats,
    conversations_filter_by_channel_status_owner_and_ticket_status,
    conversations_filter_by_activity_time,
    conversations_are_found_by_what_was_said,
    a_search_reads_what_a_rep_types_as_words_never_as_syntax,
    a_conversation_comes_with_its_contact_and_identifiers_in_byte_order,
    an_edit_changes_what_a_conversation_is_found_by,
    messages_are_listed_oldest_first_page_by_page,
);

/// Sets each conversation's last activity (unix ms): the API has no way to age them.
async fn set_activity(backend: &Backend, conversations: &[(&ConversationId, i64)]) {
    for (id, at) in conversations {
        let changed = backend
            .execute(&format!(
                "UPDATE conversations SET last_message_at = {at} WHERE id = '{}'",
                id.as_str()
            ))
            .await;
        assert_eq!(changed, 1);
    }
}

/// Every page of a filtered list, `limit` at a time.
async fn list_all(
    store: &dyn Store,
    filter: &ConversationFilter,
    limit: u32,
) -> Vec<Vec<ConversationId>> {
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .conversations(filter, &PageRequest { limit, cursor })
            .await
            .expect("list");
        pages.push(page.items.into_iter().map(|c| c.id).collect());
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return pages,
        }
        assert!(pages.len() < 100, "the cursor does not move on");
    }
}

async fn ids(store: &dyn Store, filter: ConversationFilter) -> Vec<ConversationId> {
    list_all(store, &filter, 100).await.concat()
}

async fn conversations_are_listed_newest_activity_first_page_by_page(
    store: Arc<dyn Store>,
    backend: &Backend,
) {
    let rules = rules("chat");
    let mut cs = Vec::new();
    for user in ["ana", "bo", "cy", "dan", "eve"] {
        cs.push(open_conversation(&*store, &rules, user).await);
    }
    let base = 1_800_000_000_000;
    // Bo wrote last.
    let activity = [base, base + 4000, base + 1000, base + 2000, base + 3000];
    let seeded: Vec<_> = cs.iter().zip(activity).collect();
    set_activity(backend, &seeded).await;

    let pages = list_all(&*store, &ConversationFilter::default(), 2).await;
    let [ana, bo, cy, dan, eve] = <[_; 5]>::try_from(cs).unwrap();
    assert_eq!(pages, vec![vec![bo, eve], vec![dan, cy], vec![ana]]);
    let first = store
        .conversations(&ConversationFilter::default(), &page(1))
        .await
        .unwrap();
    assert_eq!(first.items[0].last_message_at, from_millis(base + 4000));

    let bad = PageRequest {
        limit: 2,
        cursor: Some("yesterday".into()),
    };
    assert!(matches!(
        store
            .conversations(&ConversationFilter::default(), &bad)
            .await,
        Err(StoreError::Invalid(_))
    ));
}

async fn conversations_with_the_same_activity_time_page_without_gaps_or_repeats(
    store: Arc<dyn Store>,
    backend: &Backend,
) {
    let rules = rules("chat");
    let mut cs = Vec::new();
    for i in 0..7 {
        cs.push(open_conversation(&*store, &rules, &format!("user-{i}")).await);
    }
    let seeded: Vec<_> = cs.iter().map(|c| (c, 1_800_000_000_000)).collect();
    set_activity(backend, &seeded).await;

    let pages = list_all(&*store, &ConversationFilter::default(), 3).await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 1]
    );
    let mut listed = pages.concat();
    // Ties go newest first.
    cs.reverse();
    assert_eq!(listed, cs);
    listed.sort();
    listed.dedup();
    assert_eq!(listed.len(), 7);

    // Folded in from the twin test that compared both stores' cursors: a cursor is the
    // last item's `last_message_at:seq`, the same on both, and one that is not is refused.
    let first = store
        .conversations(&ConversationFilter::default(), &page(3))
        .await
        .unwrap();
    let cursor = first.next_cursor.expect("a second page");
    let (at, seq) = cursor.split_once(':').expect("at:seq");
    assert_eq!(at, "1800000000000", "{cursor}");
    assert!(seq.parse::<u64>().is_ok(), "{cursor}");
    let bad = PageRequest {
        limit: 3,
        cursor: Some("yesterday".into()),
    };
    let refused = store
        .conversations(&ConversationFilter::default(), &bad)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
}

async fn conversations_filter_by_channel_status_owner_and_ticket_status(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let ana = open_conversation(&*store, &rules("chat"), "ana").await;
    let bo = open_conversation(&*store, &rules("chat"), "bo").await;
    let cy = open_conversation(&*store, &rules("wa"), "cy").await;
    store
        .update_conversation(
            &ana,
            ConversationUpdate {
                owner_id: Some(Some("alice".into())),
                status: Some(ConversationStatus::Closed),
            },
            &actor(),
        )
        .await
        .unwrap();
    let bo_ticket = ticket_of(&*store, &bo).await.id;
    store
        .update_ticket(&bo_ticket, to_status("waiting"), &actor())
        .await
        .unwrap();

    let sorted = |mut v: Vec<ConversationId>| {
        v.sort();
        v
    };
    let filter = |f: fn(&mut ConversationFilter)| {
        let mut filter = ConversationFilter::default();
        f(&mut filter);
        filter
    };
    let s = &*store;
    assert_eq!(
        sorted(ids(s, filter(|f| f.channel = Some("chat".into()))).await),
        sorted(vec![ana.clone(), bo.clone()])
    );
    assert_eq!(
        ids(s, filter(|f| f.status = Some(ConversationStatus::Closed))).await,
        vec![ana.clone()]
    );
    assert_eq!(
        ids(s, filter(|f| f.owner = Some("alice".into()))).await,
        vec![ana.clone()]
    );
    assert_eq!(
        sorted(ids(s, filter(|f| f.owner = Some("none".into()))).await),
        sorted(vec![bo.clone(), cy.clone()])
    );
    assert_eq!(
        ids(s, filter(|f| f.ticket_status = Some("waiting".into()))).await,
        vec![bo.clone()]
    );
    assert_eq!(
        ids(
            s,
            filter(|f| {
                f.channel = Some("chat".into());
                f.status = Some(ConversationStatus::Open);
                f.owner = Some("none".into());
                f.ticket_status = Some("waiting".into());
            })
        )
        .await,
        vec![bo]
    );
    assert!(
        ids(
            s,
            filter(|f| {
                f.channel = Some("wa".into());
                f.owner = Some("alice".into());
            })
        )
        .await
        .is_empty()
    );
}

async fn conversations_filter_by_activity_time(store: Arc<dyn Store>, backend: &Backend) {
    let rules = rules("chat");
    let base = 1_800_000_000_000;
    let mut cs = Vec::new();
    for user in ["ana", "bo", "cy"] {
        cs.push(open_conversation(&*store, &rules, user).await);
    }
    let seeded: Vec<_> = cs.iter().zip([base, base + 1000, base + 2000]).collect();
    set_activity(backend, &seeded).await;

    let window = |from: Option<i64>, to: Option<i64>| ConversationFilter {
        from: from.map(from_millis),
        to: to.map(from_millis),
        ..Default::default()
    };
    // `from` is inclusive, `to` exclusive.
    assert_eq!(
        ids(&*store, window(Some(base + 1000), None)).await,
        vec![cs[2].clone(), cs[1].clone()]
    );
    assert_eq!(
        ids(&*store, window(None, Some(base + 1000))).await,
        vec![cs[0].clone()]
    );
    assert_eq!(
        ids(&*store, window(Some(base + 1000), Some(base + 2000))).await,
        vec![cs[1].clone()]
    );
    assert!(
        ids(&*store, window(Some(base + 3000), None))
            .await
            .is_empty()
    );
}

async fn conversations_are_found_by_what_was_said(store: Arc<dyn Store>, _: &Backend) {
    let rules = rules("chat");
    let ana = post(
        &*store,
        &rules,
        Msg::new("m1", "ana").text("My parcel never arrived"),
    )
    .await
    .conversation;
    let bo = post(&*store, &rules, Msg::new("m2", "bo").text("Refund please"))
        .await
        .conversation;
    let image = Part::Image(MediaPart {
        media: Media::default(),
        caption: Some("photo of the damaged parcel".into()),
    });
    let cy = post(&*store, &rules, Msg::new("m3", "cy").parts(vec![image]))
        .await
        .conversation;
    let dan = post(&*store, &rules, Msg::new("m4", "dan").text("hello"))
        .await
        .conversation;
    // What reps write is found too.
    reply(&*store, &dan, "Your parcel left our warehouse").await;

    let search = |q: &str| {
        let store = store.clone();
        let q = q.to_owned();
        async move {
            let mut found = ids(
                &*store,
                ConversationFilter {
                    q: Some(q),
                    ..Default::default()
                },
            )
            .await;
            found.sort();
            found
        }
    };
    let sorted = |mut v: Vec<ConversationId>| {
        v.sort();
        v
    };
    let parcel = sorted(vec![ana.clone(), cy.clone(), dan.clone()]);
    assert_eq!(search("parcel").await, parcel);
    assert_eq!(search("PARCEL").await, parcel, "case does not matter");
    assert_eq!(search("parc").await, parcel, "the last word is a prefix");
    assert_eq!(
        search("parcel arrived").await,
        vec![ana.clone()],
        "every word"
    );
    assert_eq!(search("refund").await, vec![bo.clone()]);
    assert!(search("nothing-like-this").await.is_empty());
    // A NUL (PostgreSQL text cannot hold one; FTS5 stops reading at it) parts words.
    assert_eq!(
        search("parcel\0arr").await,
        vec![ana.clone()],
        "a NUL between words"
    );
    // Whatever a rep types is a search, never syntax.
    for odd in [
        "\"parcel", "parcel\"", "p*", "a OR b", "(x", "it's", "-x", ":", "\0", "a\0\"",
    ] {
        store
            .conversations(
                &ConversationFilter {
                    q: Some(odd.into()),
                    ..Default::default()
                },
                &page(10),
            )
            .await
            .unwrap_or_else(|e| panic!("q={odd:?}: {e}"));
    }
    // One character is a word, not the start of every word with it (nor, accents
    // folded, of words that start with another letter).
    let plan = post(
        &*store,
        &rules,
        Msg::new("m5", "eve").text("plan B, été en ville"),
    )
    .await
    .conversation;
    let big = post(&*store, &rules, Msg::new("m6", "fay").text("big news"))
        .await
        .conversation;
    assert_eq!(search("bi").await, vec![big.clone()]);
    assert_eq!(search("b").await, vec![plan.clone()]);
    assert_eq!(search("plan b").await, vec![plan.clone()]);
    assert!(search("e").await.is_empty(), "no word is just e");
    assert_eq!(search("en").await, vec![plan.clone()], "two are a prefix");
    // Nothing typed means no search.
    assert_eq!(
        search("   ").await,
        sorted(vec![ana, bo, cy, dan, plan, big]),
        "a blank query filters nothing"
    );
}

/// Folded in from the SQLite-vs-PostgreSQL twin test that was in
/// `src/store/postgres/queries.rs`: every word must be found, the last one as a prefix,
/// and quotes, operators and backslashes (FTS5's and tsquery's syntax) are plain text.
async fn a_search_reads_what_a_rep_types_as_words_never_as_syntax(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let rules = rules("chat");
    let mut said = Vec::new();
    for (user, text) in [
        ("ana", "Hello world, my order #42 is late"),
        ("bo", "Don't panic: the refund (50%) is on its way"),
        ("cy", r#"see C:\temp\x and a&b | c! 'quoted' "dq" x:y"#),
        ("dee", "donald trump"),
        ("eve", "hello there"),
    ] {
        let id = format!("m-{user}");
        said.push(
            post(&*store, &rules, Msg::new(&id, user).text(text))
                .await
                .conversation,
        );
    }
    let [hello_world, panic, syntax, _donald, hello_there] =
        <[ConversationId; 5]>::try_from(said.clone()).expect("five conversations");
    let cases: Vec<(&str, Vec<&ConversationId>)> = vec![
        ("hel", vec![&hello_world, &hello_there]),
        ("HELLO wor", vec![&hello_world]),
        ("world hello", vec![&hello_world]),
        ("hello panic", vec![]),
        ("wor", vec![&hello_world]),
        ("orld", vec![]),
        // Only the last word is a prefix.
        ("hel world", vec![]),
        ("don't panic", vec![&panic]),
        ("refund (50%)", vec![&panic]),
        ("a&b", vec![&syntax]),
        (r"C:\temp\x", vec![&syntax]),
        ("'quoted'", vec![&syntax]),
        (r#""dq""#, vec![&syntax]),
        ("x:y", vec![&syntax]),
        ("!hello", vec![&hello_world, &hello_there]),
        ("hel !", vec![]),
        ("hello ! (", vec![&hello_world, &hello_there]),
        (r"hello\", vec![&hello_world, &hello_there]),
        (r"\'", vec![]),
        ("&|!", vec![]),
        (":*", vec![]),
        ("(hello | panic)", vec![]),
        ("hello:* | panic", vec![]),
        ("it''s <-> panic", vec![]),
        ("x'); DROP TABLE messages; --", vec![]),
        // No words: no search at all.
        ("   ", said.iter().collect()),
    ];
    for (q, expected) in cases {
        let mut found = ids(
            &*store,
            ConversationFilter {
                q: Some(q.into()),
                ..Default::default()
            },
        )
        .await;
        found.sort();
        let mut expected: Vec<ConversationId> = expected.into_iter().cloned().collect();
        expected.sort();
        assert_eq!(found, expected, "q = {q:?}");
    }
}

/// Folded in from the twin test that compared both stores' conversation views: the
/// contact comes with every identifier, in byte order (upper case first, as SQLite's
/// BINARY collation sorts; channel ids are case-sensitive), and a conversation that does not exist is not found.
async fn a_conversation_comes_with_its_contact_and_identifiers_in_byte_order(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let identifier = |channel: &str, kind: &str, value: &str| ChannelIdentifier {
        channel_id: channel.into(),
        kind: kind.into(),
        value: value.into(),
    };
    store
        .create_contact(
            NewContact {
                display_name: Some("Ana".into()),
                email: None,
                owner_id: None,
                identifiers: vec![
                    identifier("chat", "app_user", "ana-1"),
                    identifier("mail", "email", "ana@example.com"),
                    identifier("Sms", "app_user", "ana-0"),
                ],
            },
            &actor(),
        )
        .await
        .unwrap();
    let conversation = post(&*store, &rules("chat"), Msg::new("m1", "ana-1"))
        .await
        .conversation;
    let view = store.conversation(&conversation).await.unwrap();
    assert_eq!(view.contact.display_name.as_deref(), Some("Ana"));
    let identifiers: Vec<(&str, &str, &str)> = view
        .contact
        .identifiers
        .iter()
        .map(|i| (i.channel_id.as_str(), i.kind.as_str(), i.value.as_str()))
        .collect();
    assert_eq!(
        identifiers,
        [
            ("Sms", "app_user", "ana-0"),
            ("chat", "app_user", "ana-1"),
            ("mail", "email", "ana@example.com"),
        ]
    );
    let missing = store
        .conversation(&ConversationId::from_stored("conv_nope".into()))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound("conversation"))),
        "{missing:?}"
    );
}

async fn an_edit_changes_what_a_conversation_is_found_by(store: Arc<dyn Store>, _: &Backend) {
    let rules = rules("chat");
    let ana = post(&*store, &rules, Msg::new("m1", "ana").text("lost parcel"))
        .await
        .conversation;
    ingest(
        &*store,
        &rules,
        vec![InboundEvent::Edit(MessageEdit {
            platform_message_id: "m1".into(),
            parts: text("lost suitcase"),
            edited_at: None,
            order: None,
        })],
    )
    .await;
    let search = |q: &str| ConversationFilter {
        q: Some(q.into()),
        ..Default::default()
    };
    assert!(ids(&*store, search("parcel")).await.is_empty());
    assert_eq!(ids(&*store, search("suitcase")).await, vec![ana]);
}

async fn messages_are_listed_oldest_first_page_by_page(store: Arc<dyn Store>, _: &Backend) {
    let rules = rules("chat");
    let mut sent: Vec<MessageId> = Vec::new();
    let first = post(&*store, &rules, Msg::new("m0", "ana")).await;
    sent.push(first.message);
    for i in 1..5 {
        sent.push(
            post(&*store, &rules, Msg::new(&format!("m{i}"), "ana"))
                .await
                .message,
        );
    }
    sent.push(reply(&*store, &first.conversation, "a reply").await.id);
    // Another conversation's messages never show up here.
    post(&*store, &rules, Msg::new("other", "bo")).await;

    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .messages(&first.conversation, &PageRequest { limit: 4, cursor })
            .await
            .unwrap();
        pages.push(page.items.iter().map(|m| m.id.clone()).collect::<Vec<_>>());
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 2]);
    assert_eq!(pages.concat(), sent);

    let bad = PageRequest {
        limit: 4,
        cursor: Some("-".into()),
    };
    assert!(matches!(
        store.messages(&first.conversation, &bad).await,
        Err(StoreError::Invalid(_))
    ));
}
