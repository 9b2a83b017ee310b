//! Routing inside ingest (round-robin over online reps below capacity, the contact's
//! owner), presence and its expiry, waiting conversations assigned later, and the emails
//! reps get: owner emails and digests.

use std::collections::HashMap;
use std::sync::Arc;

use channel_bridge::model::outbound::Email;
use channel_bridge::model::{ConversationId, ConversationStatus};
use channel_bridge::store::{
    ChannelRules, ContactUpdate, ConversationUpdate, DigestLinks, DigestRep, JOB_CHANNEL_SMTP,
    JobKind, JobState, OwnerEmail, RepSlot, RoutingPlan, Store,
};

use crate::support::*;

conformance!(
    round_robin_takes_online_reps_in_turn_and_the_ticket_follows,
    round_robin_passes_over_away_and_offline_reps,
    a_rep_at_capacity_is_passed_over_and_with_nobody_left_the_conversation_waits,
    a_rep_coming_online_takes_waiting_conversations_oldest_first,
    a_reopened_conversation_is_routed_again_but_an_appended_message_is_not,
    presence_expires_without_a_heartbeat,
    rep_states_count_each_reps_open_conversations,
    contact_owner_routing_assigns_the_owner_and_emails_them_while_offline,
    reps_own_notification_choices_are_kept,
    an_offline_rep_who_wants_notifications_gets_one_digest_per_interval,
    no_digest_for_reps_who_are_online_opted_out_or_have_nothing_new,
);

async fn owner(store: &dyn Store, conversation: &ConversationId) -> Option<String> {
    store.conversation(conversation).await.unwrap().owner_id
}

async fn online(store: &dyn Store, rep: &str) {
    store.set_presence(rep, "online", Vec::new()).await.unwrap();
}

/// The emails queued since the last call: leased and finished as sent, so each is seen once.
async fn emails(store: &dyn Store) -> Vec<Email> {
    let mut out = Vec::new();
    for job in lease(store, "mailer", &[JOB_CHANNEL_SMTP]).await {
        store
            .finish_job(&job, "mailer", sent("smtp-id"))
            .await
            .expect("finish");
        match job.kind {
            JobKind::Email(email) => out.push(email),
            other => panic!("not an email: {other:?}"),
        }
    }
    out
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

async fn round_robin_takes_online_reps_in_turn_and_the_ticket_follows(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let rules = round_robin("chat", &[("alice", 10), ("bob", 10), ("carol", 10)]);
    for rep in ["alice", "bob", "carol"] {
        online(&*store, rep).await;
    }
    let mut owners = Vec::new();
    for i in 0..7 {
        let c = open_conversation(&*store, &rules, &format!("user-{i}")).await;
        owners.push(owner(&*store, &c).await.expect("assigned"));
        assert_eq!(
            ticket_of(&*store, &c).await.owner_id,
            owners.last().cloned()
        );
        if i == 0 {
            let ticket = ticket_of(&*store, &c).await.id;
            let history = store.ticket_history(&ticket).await.unwrap();
            let routed = history
                .iter()
                .find(|e| e.actor == "routing")
                .expect("the decision is recorded");
            assert_eq!(routed.action, "assigned");
            assert_eq!(routed.entity_id, c.as_str());
            assert_eq!(routed.changes["rule"], "users_and_teams");
            assert_eq!(routed.changes["assignee"], "alice");
            let events = store
                .events_after(0, &Default::default(), 100)
                .await
                .unwrap();
            let assigned = events
                .iter()
                .find(|e| e.kind == "conversation.assigned")
                .expect("an assignment event");
            assert_eq!(assigned.data["owner_id"], "alice");
            assert_eq!(assigned.data["by"], "routing");
        }
    }
    assert_eq!(
        owners,
        ["alice", "bob", "carol", "alice", "bob", "carol", "alice"]
    );
}

async fn round_robin_passes_over_away_and_offline_reps(store: Arc<dyn Store>, _: &Backend) {
    let rules = round_robin("chat", &[("alice", 10), ("bob", 10), ("carol", 10)]);
    store
        .set_presence("alice", "away", Vec::new())
        .await
        .unwrap();
    online(&*store, "bob").await;
    store
        .set_presence("carol", "online", Vec::new())
        .await
        .unwrap();
    store
        .set_presence("carol", "offline", Vec::new())
        .await
        .unwrap();
    for i in 0..3 {
        let c = open_conversation(&*store, &rules, &format!("user-{i}")).await;
        assert_eq!(owner(&*store, &c).await.as_deref(), Some("bob"));
    }
}

async fn a_rep_at_capacity_is_passed_over_and_with_nobody_left_the_conversation_waits(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let rules = round_robin("chat", &[("alice", 1), ("bob", 1)]);
    online(&*store, "alice").await;
    online(&*store, "bob").await;
    let first = open_conversation(&*store, &rules, "ana").await;
    let second = open_conversation(&*store, &rules, "bo").await;
    let third = open_conversation(&*store, &rules, "cy").await;
    assert_eq!(owner(&*store, &first).await.as_deref(), Some("alice"));
    assert_eq!(owner(&*store, &second).await.as_deref(), Some("bob"));
    assert_eq!(owner(&*store, &third).await, None);
    let ticket = ticket_of(&*store, &third).await.id;
    let history = store.ticket_history(&ticket).await.unwrap();
    let waiting = history.iter().find(|e| e.actor == "routing").unwrap();
    assert_eq!(waiting.action, "left_unassigned");
    let outcomes: Vec<_> = waiting.changes["considered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(outcomes, ["at_capacity", "at_capacity"]);

    // Alice closes one: the waiting conversation is hers on the next backfill.
    close(&*store, &first).await;
    assert_eq!(store.backfill(vec![rules.clone()]).await.unwrap(), 1);
    assert_eq!(owner(&*store, &third).await.as_deref(), Some("alice"));
    assert_eq!(store.backfill(vec![rules]).await.unwrap(), 0);
}

async fn a_rep_coming_online_takes_waiting_conversations_oldest_first(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let rules = round_robin("chat", &[("alice", 2)]);
    let mut waiting = Vec::new();
    for user in ["ana", "bo", "cy"] {
        let c = open_conversation(&*store, &rules, user).await;
        assert_eq!(owner(&*store, &c).await, None, "nobody is online");
        waiting.push(c);
    }
    // A channel that routes to nobody has nothing to hand out.
    let nobody = open_conversation(&*store, &crate::support::rules("other"), "dan").await;

    let assigned = store
        .set_presence(
            "alice",
            "online",
            vec![rules, crate::support::rules("other")],
        )
        .await
        .unwrap();
    assert_eq!(assigned, 2);
    assert_eq!(owner(&*store, &waiting[0]).await.as_deref(), Some("alice"));
    assert_eq!(owner(&*store, &waiting[1]).await.as_deref(), Some("alice"));
    assert_eq!(owner(&*store, &waiting[2]).await, None, "alice is full");
    assert_eq!(owner(&*store, &nobody).await, None);
    let states = store
        .rep_states(vec!["alice".into()], 300_000)
        .await
        .unwrap();
    assert_eq!(states["alice"], ("online".to_owned(), 2));
}

async fn a_reopened_conversation_is_routed_again_but_an_appended_message_is_not(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let rules = round_robin("chat", &[("alice", 10), ("bob", 10)]);
    online(&*store, "alice").await;
    let first = post(&*store, &rules, Msg::new("m1", "ana"))
        .await
        .conversation;
    assert_eq!(owner(&*store, &first).await.as_deref(), Some("alice"));
    // A rep unassigns it; the contact writes again into the open conversation.
    let unassign = ConversationUpdate {
        owner_id: Some(None),
        ..Default::default()
    };
    store
        .update_conversation(&first, unassign, &actor())
        .await
        .unwrap();
    post(&*store, &rules, Msg::new("m2", "ana")).await;
    assert_eq!(
        owner(&*store, &first).await,
        None,
        "appending does not route"
    );

    close(&*store, &first).await;
    online(&*store, "bob").await;
    let again = post(&*store, &rules, Msg::new("m3", "ana")).await;
    assert_eq!(again.conversation, first);
    assert_eq!(
        owner(&*store, &first).await.as_deref(),
        Some("bob"),
        "a reopened conversation is routed, next in turn"
    );
}

async fn presence_expires_without_a_heartbeat(store: Arc<dyn Store>, backend: &Backend) {
    let rules = round_robin("chat", &[("alice", 10)]);
    online(&*store, "alice").await;
    let states = store
        .rep_states(vec!["alice".into(), "bob".into()], 300_000)
        .await
        .unwrap();
    assert_eq!(
        states,
        HashMap::from([
            ("alice".to_owned(), ("online".to_owned(), 0)),
            ("bob".to_owned(), ("offline".to_owned(), 0)),
        ])
    );

    // Alice's last report is ten minutes old; the timeout is five.
    let aged = backend
        .execute("UPDATE presence SET updated_at = updated_at - 600000 WHERE rep_id = 'alice'")
        .await;
    assert_eq!(aged, 1);
    let states = store
        .rep_states(vec!["alice".into()], 300_000)
        .await
        .unwrap();
    assert_eq!(states["alice"].0, "offline");
    let c = open_conversation(&*store, &rules, "ana").await;
    assert_eq!(owner(&*store, &c).await, None);
    // A heartbeat brings her back, with the conversation that waited.
    let assigned = store
        .set_presence("alice", "online", vec![rules])
        .await
        .unwrap();
    assert_eq!(assigned, 1);
    assert_eq!(owner(&*store, &c).await.as_deref(), Some("alice"));
}

async fn rep_states_count_each_reps_open_conversations(store: Arc<dyn Store>, _: &Backend) {
    let rules = rules("chat");
    let mut cs = Vec::new();
    for user in ["ana", "bo", "cy", "dan"] {
        cs.push(open_conversation(&*store, &rules, user).await);
    }
    for (c, rep) in cs.iter().zip(["alice", "alice", "alice", "bob"]) {
        let update = ConversationUpdate {
            owner_id: Some(Some(rep.into())),
            ..Default::default()
        };
        store
            .update_conversation(c, update, &actor())
            .await
            .unwrap();
    }
    close(&*store, &cs[0]).await;
    store.delete_conversation(&cs[3], &actor()).await.unwrap();
    store.set_presence("bob", "away", Vec::new()).await.unwrap();

    let states = store
        .rep_states(vec!["alice".into(), "bob".into()], 300_000)
        .await
        .unwrap();
    assert_eq!(states["alice"], ("offline".to_owned(), 2));
    assert_eq!(states["bob"], ("away".to_owned(), 0));
}

fn contact_owner(channel: &str) -> ChannelRules {
    ChannelRules {
        routing: RoutingPlan::ContactOwner {
            reps: vec![RepSlot {
                id: "alice".into(),
                capacity: 10,
                email: Some("alice@example.com".into()),
            }],
            email: Some(OwnerEmail {
                link_base: Some("https://bridge.example.com".into()),
                channel_name: format!("{channel} desk"),
            }),
        },
        ..rules(channel)
    }
}

async fn contact_owner_routing_assigns_the_owner_and_emails_them_while_offline(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let rules = contact_owner("chat");
    let first = post(&*store, &rules, Msg::new("m1", "ana").name("Ana")).await;
    assert_eq!(
        owner(&*store, &first.conversation).await,
        None,
        "no owner yet"
    );
    assert!(emails(&*store).await.is_empty());
    let contact = store
        .conversation(&first.conversation)
        .await
        .unwrap()
        .contact
        .id;
    let owned = ContactUpdate {
        owner_id: Some(Some("alice".into())),
        email: None,
    };
    store.update_contact(&contact, owned).await.unwrap();
    close(&*store, &first.conversation).await;

    let again = post(
        &*store,
        &rules,
        Msg::new("m2", "ana").text("Are you there?"),
    )
    .await;
    assert_eq!(again.conversation, first.conversation);
    assert_eq!(
        owner(&*store, &again.conversation).await.as_deref(),
        Some("alice")
    );
    let sent = emails(&*store).await;
    assert_eq!(sent.len(), 1);
    let email = &sent[0];
    assert_eq!(email.to, "alice@example.com");
    assert_eq!(
        email.subject, "Re: Ana on chat desk: hello",
        "the conversation was opened by m1"
    );
    assert!(email.text.contains("Are you there?"), "{}", email.text);
    assert!(
        email.text.contains(&format!(
            "https://bridge.example.com/api/v1/conversations/{}",
            again.conversation
        )),
        "{}",
        email.text
    );
    assert_eq!(email.id, again.message.as_str());
    assert_eq!(email.thread, again.conversation.as_str());

    // Every new message while she is offline; none once she is online.
    post(&*store, &rules, Msg::new("m3", "ana").text("Hello?")).await;
    let pending = store
        .deliveries(JobState::Pending, &page(10))
        .await
        .unwrap();
    assert_eq!(pending.items.len(), 1);
    assert_eq!(pending.items[0].kind, "email");
    assert_eq!(pending.items[0].channel_id, JOB_CHANNEL_SMTP);
    assert_eq!(
        pending.items[0].conversation_id.as_deref(),
        Some(again.conversation.as_str())
    );
    let sent = emails(&*store).await;
    assert_eq!(sent.len(), 1);
    assert!(sent[0].text.contains("Hello?"), "{}", sent[0].text);
    online(&*store, "alice").await;
    post(&*store, &rules, Msg::new("m4", "ana")).await;
    assert!(emails(&*store).await.is_empty());
}

async fn reps_own_notification_choices_are_kept(store: Arc<dyn Store>, _: &Backend) {
    assert!(store.notify_choices().await.unwrap().is_empty());
    store.set_notify("alice", true).await.unwrap();
    store.set_notify("bob", false).await.unwrap();
    store.set_notify("alice", false).await.unwrap();
    assert_eq!(
        store.notify_choices().await.unwrap(),
        HashMap::from([("alice".to_owned(), false), ("bob".to_owned(), false)])
    );
}

fn digest_rep(id: &str, notify: bool) -> DigestRep {
    DigestRep {
        id: id.into(),
        email: format!("{id}@example.com"),
        notify,
    }
}

/// A conversation from `user` owned by `rep`.
async fn owned_by(store: &dyn Store, user: &str, rep: &str) -> ConversationId {
    let c = post(
        store,
        &rules("chat"),
        Msg::new(&format!("m-{user}"), user)
            .name(user)
            .text(&format!("message from {user}")),
    )
    .await
    .conversation;
    let update = ConversationUpdate {
        owner_id: Some(Some(rep.into())),
        ..Default::default()
    };
    store
        .update_conversation(&c, update, &actor())
        .await
        .unwrap();
    c
}

const HOUR_MS: i64 = 3_600_000;

async fn an_offline_rep_who_wants_notifications_gets_one_digest_per_interval(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let c = owned_by(&*store, "Ana", "alice").await;
    owned_by(&*store, "Bo", "bob").await;
    let reps = vec![digest_rep("alice", true)];
    let queued = store
        .queue_digests(
            reps.clone(),
            DigestLinks {
                link_base: Some("https://bridge.example.com".into()),
                channel_names: [("chat".to_owned(), "Chat desk".to_owned())].into(),
            },
            HOUR_MS,
            300_000,
        )
        .await
        .unwrap();
    assert_eq!(queued, 1);
    let sent = emails(&*store).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "alice@example.com");
    assert_eq!(sent[0].subject, "1 new message in your conversations");
    assert!(
        sent[0].text.contains("Ana on Chat desk: message from Ana"),
        "{}",
        sent[0].text
    );
    assert!(!sent[0].text.contains("Bo"), "only her conversations");
    assert!(
        sent[0].text.contains(&format!(
            "https://bridge.example.com/api/v1/conversations/{c}"
        )),
        "{}",
        sent[0].text
    );

    // New messages within the interval wait for the next digest.
    post(&*store, &rules("chat"), Msg::new("m-again", "Ana")).await;
    let again = store
        .queue_digests(reps, DigestLinks::default(), HOUR_MS, 300_000)
        .await
        .unwrap();
    assert_eq!(again, 0);
}

async fn no_digest_for_reps_who_are_online_opted_out_or_have_nothing_new(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    owned_by(&*store, "Ana", "alice").await;
    owned_by(&*store, "Bo", "bob").await;
    owned_by(&*store, "Cy", "carol").await;
    owned_by(&*store, "Eve", "erin").await;
    online(&*store, "alice").await;
    store.set_notify("bob", false).await.unwrap();
    store.set_notify("erin", true).await.unwrap();
    let reps = vec![
        digest_rep("alice", true),  // online: she sees messages live
        digest_rep("bob", true),    // turned them off himself
        digest_rep("carol", false), // never asked for them
        digest_rep("dave", true),   // nothing new in his conversations
        digest_rep("erin", false),  // turned them on herself
    ];
    let queued = store
        .queue_digests(reps, DigestLinks::default(), HOUR_MS, 300_000)
        .await
        .unwrap();
    assert_eq!(queued, 1);
    let sent = emails(&*store).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "erin@example.com");
}
