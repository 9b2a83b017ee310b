//! What must hold when several replicas (here: several tasks) use one store at once:
//! redeliveries racing each other, a contact's first messages racing each other, workers
//! leasing side by side, reps changing one ticket together, routing staying fair.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use channel_bridge::config::Threading;
use channel_bridge::model::{ConversationId, MessageId};
use channel_bridge::store::{ChannelRules, IngestOutcome, JOB_CHANNEL_HUBSPOT, JobKind, Store};
use chrono::Utc;
use serde_json::json;
use tokio::task::JoinSet;

use crate::support::*;

conformance!(
    concurrent_deliveries_of_one_message_store_it_once,
    concurrent_first_messages_from_one_contact_make_one_conversation,
    concurrent_first_messages_in_one_platform_thread_make_one_conversation,
    workers_leasing_side_by_side_never_share_a_job_nor_run_two_of_one_conversation,
    jobs_queued_while_the_job_ahead_finishes_all_go_out_in_order,
    concurrent_property_changes_to_one_ticket_all_land,
    concurrent_new_conversations_are_spread_evenly_by_round_robin,
    a_stream_reading_while_many_write_sees_every_event_once_in_order,
);

const RACERS: usize = 16;

/// Runs `RACERS` copies of `f` at once and collects what each returned.
async fn race<F, Fut, T>(f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut set = JoinSet::new();
    for i in 0..RACERS {
        set.spawn(f(i));
    }
    let mut out = Vec::new();
    while let Some(result) = set.join_next().await {
        out.push(result.expect("a racer panicked"));
    }
    out
}

async fn a_stream_reading_while_many_write_sees_every_event_once_in_order(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    const EACH: usize = 20;
    let writing = {
        let store = store.clone();
        tokio::spawn(async move {
            race(|i| {
                let store = store.clone();
                async move {
                    for n in 0..EACH {
                        let event = Msg::new(&format!("m{i}-{n}"), &format!("c{i}")).into();
                        store.ingest(&rules("chat"), vec![event]).await.unwrap();
                    }
                }
            })
            .await
        })
    };
    // A stream's loop: read after the cursor, move the cursor to the last id read.
    let all = Default::default();
    let (mut cursor, mut seen) = (0, Vec::new());
    let read = async |cursor: &mut i64, seen: &mut Vec<i64>| {
        for event in store.events_after(*cursor, &all, 50).await.unwrap() {
            assert!(event.id > *cursor, "id {} came after {cursor}", event.id);
            *cursor = event.id;
            seen.push(event.id);
        }
    };
    while !writing.is_finished() {
        read(&mut cursor, &mut seen).await;
        tokio::task::yield_now().await;
    }
    writing.await.unwrap();
    read(&mut cursor, &mut seen).await;
    let every: Vec<i64> = store
        .events_after(0, &all, 100_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert!(every.len() >= RACERS * EACH, "{} events", every.len());
    assert_eq!(seen, every, "the stream missed or repeated an event");
}

async fn concurrent_deliveries_of_one_message_store_it_once(store: Arc<dyn Store>, _: &Backend) {
    let outcomes = race(|_| {
        let store = store.clone();
        async move {
            let mut outcome = store
                .ingest(&rules("chat"), vec![Msg::new("m1", "ana").into()])
                .await
                .expect("a redelivery is not an error");
            outcome.remove(0)
        }
    })
    .await;
    let stored: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, IngestOutcome::Stored { .. }))
        .collect();
    assert_eq!(stored.len(), 1, "{outcomes:?}");
    let message = Stored::of(stored[0]).message;
    for o in &outcomes {
        match o {
            IngestOutcome::Stored { .. } => {}
            IngestOutcome::Duplicate { id, message_id } => {
                assert_eq!((id.as_str(), message_id), ("m1", &message));
            }
            other => panic!("{other:?}"),
        }
    }
    let conversation = Stored::of(stored[0]).conversation;
    assert_eq!(messages(&*store, &conversation).await.len(), 1);
    let listed = store
        .conversations(&Default::default(), &page(100))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
}

async fn concurrent_first_messages_from_one_contact_make_one_conversation(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let outcomes = race(|i| {
        let store = store.clone();
        async move {
            let event = Msg::new(&format!("m{i}"), "ana").into();
            let outcome = store.ingest(&rules("chat"), vec![event]).await;
            Stored::of(&outcome.expect("every message is stored")[0])
        }
    })
    .await;
    let conversations: HashSet<ConversationId> =
        outcomes.iter().map(|s| s.conversation.clone()).collect();
    assert_eq!(conversations.len(), 1, "{outcomes:?}");
    let new = outcomes.iter().filter(|s| s.new_conversation).count();
    assert_eq!(new, 1, "exactly one message started it");
    let conversation = conversations.into_iter().next().unwrap();
    assert_eq!(messages(&*store, &conversation).await.len(), RACERS);
    let ticket = ticket_of(&*store, &conversation).await;
    assert_eq!(ticket.conversation_ids, vec![conversation.clone()]);
    let listed = store
        .conversations(&Default::default(), &page(100))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].contact.identifiers.len(), 1, "one contact");
}

async fn concurrent_first_messages_in_one_platform_thread_make_one_conversation(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let outcomes = race(|i| {
        let store = store.clone();
        async move {
            let mut rules = rules("tg");
            rules.threading = Threading::PlatformThread;
            let event = Msg::new(&format!("m{i}"), &format!("member-{i}"))
                .thread("group-1")
                .into();
            let outcome = store.ingest(&rules, vec![event]).await;
            Stored::of(&outcome.expect("every message is stored")[0])
        }
    })
    .await;
    let conversations: HashSet<_> = outcomes.iter().map(|s| s.conversation.clone()).collect();
    assert_eq!(conversations.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|s| s.new_conversation).count(), 1);
    let conversation = conversations.into_iter().next().unwrap();
    let senders: HashSet<_> = messages(&*store, &conversation)
        .await
        .into_iter()
        .map(|m| m.sender.id)
        .collect();
    assert_eq!(
        senders.len(),
        RACERS,
        "each member is a contact of their own"
    );
}

async fn workers_leasing_side_by_side_never_share_a_job_nor_run_two_of_one_conversation(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    const CONVERSATIONS: usize = 6;
    const REPLIES: usize = 4;
    const WORKERS: usize = 3;
    let mut order: BTreeMap<ConversationId, Vec<MessageId>> = BTreeMap::new();
    let mut conversation_of: HashMap<MessageId, ConversationId> = HashMap::new();
    for c in 0..CONVERSATIONS {
        let conversation = open_conversation(&*store, &rules("chat"), &format!("user-{c}")).await;
        for r in 0..REPLIES {
            let id = reply(&*store, &conversation, &format!("{c}.{r}")).await.id;
            order
                .entry(conversation.clone())
                .or_default()
                .push(id.clone());
            conversation_of.insert(id, conversation.clone());
        }
    }
    let total = CONVERSATIONS * REPLIES;

    struct Shared {
        conversation_of: HashMap<MessageId, ConversationId>,
        in_flight: Mutex<HashSet<ConversationId>>,
        leased: Mutex<HashSet<String>>,
        sent: Mutex<BTreeMap<ConversationId, Vec<MessageId>>>,
        done: AtomicUsize,
    }
    let shared = Arc::new(Shared {
        conversation_of,
        in_flight: Mutex::default(),
        leased: Mutex::default(),
        sent: Mutex::default(),
        done: AtomicUsize::new(0),
    });

    let mut workers = JoinSet::new();
    for w in 0..WORKERS {
        let (store, shared) = (store.clone(), shared.clone());
        workers.spawn(async move {
            let owner = format!("worker-{w}");
            // Empty leases in a row while nobody finishes anything: a job was lost.
            let (mut idle_rounds, mut last_done) = (0u32, 0);
            loop {
                let done = shared.done.load(Ordering::SeqCst);
                if done == total {
                    break;
                }
                let mut request = lease_request(&owner, &["chat"], Utc::now());
                request.limit = 2;
                let jobs = store.lease_jobs(&request).await.expect("lease");
                if jobs.is_empty() {
                    idle_rounds = if done == last_done {
                        idle_rounds + 1
                    } else {
                        0
                    };
                    last_done = done;
                    assert!(
                        idle_rounds < 10_000,
                        "no progress at {done} of {total} jobs"
                    );
                    tokio::task::yield_now().await;
                    continue;
                }
                for job in &jobs {
                    let message = message_of(job);
                    let conversation = shared.conversation_of[&message].clone();
                    assert!(
                        shared.leased.lock().unwrap().insert(job.id.to_string()),
                        "job {} was leased twice",
                        job.id
                    );
                    assert!(
                        shared
                            .in_flight
                            .lock()
                            .unwrap()
                            .insert(conversation.clone()),
                        "two jobs of {conversation} in flight at once"
                    );
                }
                // Let the other workers run while these jobs are "being sent".
                tokio::task::yield_now().await;
                for job in jobs {
                    let message = message_of(&job);
                    let conversation = shared.conversation_of[&message].clone();
                    shared
                        .sent
                        .lock()
                        .unwrap()
                        .entry(conversation.clone())
                        .or_default()
                        .push(message.clone());
                    // Out of flight before the outcome commits: the next job of this
                    // conversation can only be leased after that commit.
                    shared.in_flight.lock().unwrap().remove(&conversation);
                    store
                        .finish_job(&job, &owner, sent(&format!("p-{message}")))
                        .await
                        .expect("the holder finishes its job");
                    shared.done.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
    while let Some(result) = workers.join_next().await {
        result.expect("a worker panicked");
    }
    assert_eq!(shared.leased.lock().unwrap().len(), total);
    assert_eq!(
        *shared.sent.lock().unwrap(),
        order,
        "each conversation in order"
    );
    assert_eq!(store.queue_stats().await.unwrap().pending, 0);
}

/// A job queued while the job ahead of it on its ordering key is being finished must become
/// the key's next job: whichever commits first, the other must see it (a queue whose jobs
/// all wait behind nobody is stuck for good). HubSpot publishes race here: their finish
/// writes no event, so nothing but the key's own lock orders it against the next publish.
async fn jobs_queued_while_the_job_ahead_finishes_all_go_out_in_order(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    const CONVERSATIONS: usize = 4;
    const MESSAGES: usize = 150;
    let linked = ChannelRules {
        hubspot_account: Some("2002".into()),
        ..rules("chat")
    };
    let total = CONVERSATIONS * MESSAGES;
    let mut producers = JoinSet::new();
    for c in 0..CONVERSATIONS {
        let (store, linked) = (store.clone(), linked.clone());
        producers.spawn(async move {
            let mut queued = Vec::new();
            for m in 0..MESSAGES {
                let message = Msg::new(&format!("m-{c}-{m}"), &format!("user-{c}"));
                queued.push(post(&*store, &linked, message).await.message);
            }
            queued
        });
    }
    let worker = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut order = Vec::new();
            let started = std::time::Instant::now();
            while order.len() < total {
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(60),
                    "stuck after {} of {total} jobs: a queued job waits behind nobody",
                    order.len()
                );
                let request = lease_request("worker", &[JOB_CHANNEL_HUBSPOT], Utc::now());
                let jobs = store.lease_jobs(&request).await.expect("lease");
                if jobs.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    continue;
                }
                for job in jobs {
                    let JobKind::HubspotPublish { message_id, .. } = &job.kind else {
                        panic!("not a publish: {job:?}");
                    };
                    order.push(message_id.clone());
                    store
                        .finish_job(&job, "worker", sent(&format!("hs-{message_id}")))
                        .await
                        .expect("the holder finishes its job");
                }
            }
            order
        })
    };
    let mut expected = Vec::new();
    while let Some(result) = producers.join_next().await {
        expected.push(result.expect("a producer panicked"));
    }
    let order = worker.await.expect("the worker panicked");
    for queued in &expected {
        let went: Vec<&MessageId> = order.iter().filter(|m| queued.contains(m)).collect();
        assert_eq!(
            went,
            queued.iter().collect::<Vec<_>>(),
            "every publish once, in order"
        );
    }
    assert_eq!(store.queue_stats().await.unwrap().pending, 0);
}

async fn concurrent_property_changes_to_one_ticket_all_land(store: Arc<dyn Store>, _: &Backend) {
    let conversation = open_conversation(&*store, &rules("chat"), "ana").await;
    let ticket = ticket_of(&*store, &conversation).await.id;
    race(|i| {
        let (store, ticket) = (store.clone(), ticket.clone());
        async move {
            let mut c = change();
            c.properties = Some(object(json!({ format!("key-{i}"): i })));
            store
                .update_ticket(&ticket, c, &actor())
                .await
                .expect("each change applies");
        }
    })
    .await;
    let properties = store.ticket(&ticket).await.unwrap().properties;
    assert_eq!(properties.len(), RACERS, "{properties:?}");
    for i in 0..RACERS {
        assert_eq!(properties[&format!("key-{i}")], json!(i));
    }
    let history = store.ticket_history(&ticket).await.unwrap();
    assert_eq!(history.len(), RACERS, "one entry per change");
}

async fn concurrent_new_conversations_are_spread_evenly_by_round_robin(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let reps = [("alice", 100), ("bob", 100), ("carol", 100), ("dave", 100)];
    for (rep, _) in reps {
        store.set_presence(rep, "online", Vec::new()).await.unwrap();
    }
    let owners = race(|i| {
        let store = store.clone();
        async move {
            let rules = round_robin("chat", &reps);
            let event = Msg::new(&format!("m{i}"), &format!("user-{i}")).into();
            let outcome = store.ingest(&rules, vec![event]).await.expect("stored");
            let conversation = Stored::of(&outcome[0]).conversation;
            store
                .conversation(&conversation)
                .await
                .unwrap()
                .owner_id
                .expect("assigned")
        }
    })
    .await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for owner in owners {
        *counts.entry(owner).or_default() += 1;
    }
    let share = RACERS / reps.len();
    assert_eq!(
        counts,
        reps.iter()
            .map(|(rep, _)| (rep.to_string(), share))
            .collect::<BTreeMap<_, _>>()
    );
}
