//! The crash loop: the real binary takes signed webhooks and rep replies while it is
//! SIGKILLed at random moments, restarted on the same store each time. Afterwards:
//! - every webhook that got 200 is stored exactly once (platforms redeliver what got no
//!   200, and those redeliveries are deduplicated);
//! - every reply that got 202 reached the app at least once, in the order queued within
//!   its conversation;
//! - a reply reached the app twice only when a crash interrupted its send: at most one
//!   duplicate per conversation per crash;
//! - nothing was dead-lettered.
//!
//! `CRASH_LOOP_KILLS` sets the number of kills (3 in the normal `cargo test`; 20 in
//! `scripts/crash-loop.sh`, whose figures are in RELIABILITY.md) and `CRASH_LOOP_SEED`
//! replays a run's kill moments.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::daemon::{
    DEADLINE, Daemon, Setup, Taken, conversation_ids, crash_plan, message_event, post_signed,
    send_reply, wait_until,
};

/// Contacts writing in; each has one conversation, and one rep replies in each.
const CONTACTS: usize = 4;
/// Webhook senders at once.
const LANES: usize = 6;

/// The in-house app: takes most replies after a short random delay, refuses some with
/// 503 so retries are always in flight.
struct InHouseApp {
    taken: Taken,
}

impl Respond for InHouseApp {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if fastrand::u8(0..10) == 0 {
            return ResponseTemplate::new(503);
        }
        self.taken
            .take(request)
            .set_delay(Duration::from_millis(fastrand::u64(0..20)))
    }
}

/// What the platform side knows: which webhooks got 200, which it must redeliver.
#[derive(Default)]
struct Platform {
    next: AtomicUsize,
    sent: Mutex<HashSet<String>>,
    acknowledged: Mutex<HashSet<String>>,
    /// Sent without a 200 (the daemon died or refused): redelivered after restart.
    redeliver: Mutex<Vec<String>>,
    redelivered: AtomicUsize,
}

/// What the reps know: replies acknowledged with 202 (in order per conversation) and
/// replies whose request died with the daemon (stored or not, nobody knows).
#[derive(Default)]
struct Reps {
    queued: Mutex<BTreeMap<String, Vec<String>>>,
    uncertain: Mutex<HashSet<String>>,
}

/// Sends webhooks until the daemon dies or `stop`: redeliveries first, then new ones.
async fn webhook_lane(
    daemon_url: String,
    http: reqwest::Client,
    platform: Arc<Platform>,
    stop: Arc<AtomicBool>,
) {
    let hook = format!("{daemon_url}/hooks/demo");
    while !stop.load(Ordering::Relaxed) {
        let (id, again) = match platform.redeliver.lock().unwrap().pop() {
            Some(id) => (id, true),
            None => (
                format!("wh-{}", platform.next.fetch_add(1, Ordering::SeqCst)),
                false,
            ),
        };
        let n: usize = id.trim_start_matches("wh-").parse().unwrap();
        let event = message_event(
            &id,
            &format!("user-{}", n % CONTACTS),
            &format!("message {n}"),
        );
        platform.sent.lock().unwrap().insert(id.clone());
        if again {
            platform.redelivered.fetch_add(1, Ordering::SeqCst);
        }
        match post_signed(&http, &hook, &event).await {
            Ok(r) if r.status() == 200 => {
                platform.acknowledged.lock().unwrap().insert(id);
            }
            Ok(_) => platform.redeliver.lock().unwrap().push(id),
            Err(_) => {
                platform.redeliver.lock().unwrap().push(id);
                return;
            }
        }
    }
}

/// Replies in one conversation, one at a time, until the daemon dies or `stop`.
async fn reply_lane(
    daemon_url: String,
    http: reqwest::Client,
    conversation: String,
    round: usize,
    reps: Arc<Reps>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let text = format!("reply {round}.{n} in {conversation}");
        n += 1;
        match send_reply(&http, &daemon_url, &conversation, &text).await {
            Ok(status) if status == 202 => reps
                .queued
                .lock()
                .unwrap()
                .entry(conversation.clone())
                .or_default()
                .push(text),
            Ok(status) if status.is_server_error() => {
                // Refused (storage unavailable while stopping): not stored.
            }
            Ok(status) => panic!("reply got {status}"),
            Err(_) => {
                reps.uncertain.lock().unwrap().insert(text);
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..30))).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_loop_keeps_every_acknowledged_message_once_and_every_reply_in_order() {
    let (kills, seed, mut rng) = crash_plan("crash loop");

    let receiver = MockServer::start().await;
    let taken = Taken::default();
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(InHouseApp {
            taken: taken.clone(),
        })
        .mount(&receiver)
        .await;
    // An attempt every 100 ms for half a minute: no reply may run out of schedule.
    let schedule: Vec<u64> = std::iter::once(0)
        .chain(std::iter::repeat_n(100, 300))
        .collect();
    let setup = Setup::new(&receiver.uri(), &schedule, "", "");
    let platform = Arc::new(Platform::default());
    let reps = Arc::new(Reps::default());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();

    for round in 0..=kills {
        let mut daemon = setup.start().await;
        let stop = Arc::new(AtomicBool::new(false));
        let mut lanes = tokio::task::JoinSet::new();
        for _ in 0..LANES {
            lanes.spawn(webhook_lane(
                daemon.base.clone(),
                http.clone(),
                platform.clone(),
                stop.clone(),
            ));
        }
        if round == 0 {
            wait_until("every contact has a conversation", DEADLINE, || async {
                conversation_ids(&daemon).await.len() == CONTACTS
            })
            .await;
        }
        for conversation in conversation_ids(&daemon).await {
            lanes.spawn(reply_lane(
                daemon.base.clone(),
                http.clone(),
                conversation,
                round,
                reps.clone(),
                stop.clone(),
            ));
        }
        if round == kills {
            // The last run is not killed: traffic stops and the outbox drains.
            tokio::time::sleep(Duration::from_millis(500)).await;
            stop.store(true, Ordering::Relaxed);
            while lanes.join_next().await.is_some() {}
            // Redeliver what never got its 200.
            loop {
                let Some(id) = platform.redeliver.lock().unwrap().pop() else {
                    break;
                };
                let n: usize = id.trim_start_matches("wh-").parse().unwrap();
                let event = message_event(
                    &id,
                    &format!("user-{}", n % CONTACTS),
                    &format!("message {n}"),
                );
                platform.redelivered.fetch_add(1, Ordering::SeqCst);
                let response = daemon.post_webhook("demo", &event).await.unwrap();
                assert_eq!(response.status(), 200);
                platform.acknowledged.lock().unwrap().insert(id);
            }
            wait_until("the outbox drains", DEADLINE, || async {
                daemon.deliveries("pending").await.is_empty()
            })
            .await;
            verify(&daemon, kills, seed, &platform, &reps, &taken).await;
            return;
        }
        // A random moment: anywhere from mid-start-up traffic to a busy second in.
        tokio::time::sleep(Duration::from_millis(rng.u64(200..1500))).await;
        daemon.kill();
        stop.store(true, Ordering::Relaxed);
        while lanes.join_next().await.is_some() {}
    }
}

async fn verify(
    daemon: &Daemon,
    kills: usize,
    seed: u64,
    platform: &Platform,
    reps: &Reps,
    taken: &Taken,
) {
    // Inbound: every acknowledged webhook exactly once, nothing never sent.
    let mut stored: HashMap<String, usize> = HashMap::new();
    for message in daemon.all_messages().await {
        if message["direction"] == "inbound" {
            *stored
                .entry(message["platform_message_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    let acknowledged = platform.acknowledged.lock().unwrap().clone();
    let sent = platform.sent.lock().unwrap().clone();
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
    assert!(
        stored.keys().all(|id| sent.contains(id)),
        "stored something never sent"
    );

    // Replies: each acknowledged one taken, in order per conversation, repeats only
    // straight after themselves (a resend of the reply in flight), at most one per
    // conversation per crash.
    let queued = reps.queued.lock().unwrap().clone();
    let uncertain = reps.uncertain.lock().unwrap().clone();
    let taken = taken.0.lock().unwrap().clone();
    let mut per_conversation: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (conversation, text) in &taken {
        per_conversation
            .entry(conversation.clone())
            .or_default()
            .push(text.clone());
    }
    let mut duplicates = 0;
    let mut worst = 0;
    for (conversation, texts) in &per_conversation {
        let mut folded: Vec<&String> = Vec::new();
        let mut repeats = 0;
        for text in texts {
            if folded.last() == Some(&text) {
                repeats += 1;
            } else {
                assert!(
                    !folded.contains(&text),
                    "{text:?} taken again after a later reply: reordered"
                );
                folded.push(text);
            }
        }
        duplicates += repeats;
        worst = worst.max(repeats);
        assert!(
            repeats <= kills,
            "{repeats} duplicates in {conversation} over {kills} crashes"
        );
        let known: Vec<&String> = folded
            .into_iter()
            .filter(|t| !uncertain.contains(*t))
            .collect();
        let expected: Vec<&String> = queued
            .get(conversation)
            .map(|q| q.iter().collect())
            .unwrap_or_default();
        assert_eq!(
            known, expected,
            "replies in {conversation}: taken vs queued"
        );
    }
    for (conversation, texts) in &queued {
        assert!(
            texts.is_empty() || per_conversation.contains_key(conversation),
            "nothing taken in {conversation}"
        );
    }
    let dead = daemon.deliveries("dead").await;
    assert!(dead.is_empty(), "dead-lettered: {dead:?}");

    let queued_total: usize = queued.values().map(Vec::len).sum();
    eprintln!(
        "crash loop figures: kills={kills} seed={seed} webhooks_sent={} acknowledged={} \
         redelivered={} stored={} stored_twice=0 lost=0 | replies_acknowledged={queued_total} \
         replies_uncertain={} taken={} duplicate_deliveries={duplicates} \
         worst_conversation_duplicates={worst} dead=0",
        sent.len(),
        acknowledged.len(),
        platform.redelivered.load(Ordering::SeqCst),
        stored.len(),
        uncertain.len(),
        taken.len(),
    );
}
