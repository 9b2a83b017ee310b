//! HubSpot publishing across SIGKILL (issue #18): the real binary takes signed webhooks on a
//! channel linked to HubSpot (the fake, in this test process, outlives every daemon) and
//! is killed at random moments while it publishes, then restarted on the same store.
//! Afterwards:
//! - every webhook that got 200 is stored once and published exactly once, as HubSpot
//!   tells messages apart: by `integrationIdempotencyId` (our message id);
//! - each conversation's messages reached HubSpot in the order they were stored;
//! - a publish was sent again only when a crash came between HubSpot's answer and the
//!   bridge recording it (at most one per conversation per crash), and with the same
//!   idempotency id, so HubSpot kept one message;
//! - nothing was dead-lettered, and no request broke HubSpot's spec.
//!
//! `CRASH_LOOP_KILLS` sets the number of kills (3 by default) and `CRASH_LOOP_SEED`
//! replays a run's kill moments.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wiremock::MockServer;

use crate::daemon::{DEADLINE, Setup, crash_plan, message_event, post_signed, wait_until};
use crate::support::hubspot_fake::{self, HubspotFake};

/// Contacts writing in; each has one conversation.
const CONTACTS: usize = 4;
/// Webhook senders at once.
const LANES: usize = 4;

/// What the platform knows: which webhooks got 200, which it must redeliver.
#[derive(Default)]
struct Platform {
    next: AtomicUsize,
    acknowledged: Mutex<HashSet<String>>,
    redeliver: Mutex<Vec<String>>,
}

fn event(id: &str) -> serde_json::Value {
    let n: usize = id.trim_start_matches("wh-").parse().unwrap();
    message_event(
        id,
        &format!("user-{}", n % CONTACTS),
        &format!("message {n}"),
    )
}

/// Sends webhooks until the daemon dies or `stop`: redeliveries first, then new ones.
async fn webhook_lane(
    hook: String,
    http: reqwest::Client,
    platform: Arc<Platform>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let id = platform
            .redeliver
            .lock()
            .unwrap()
            .pop()
            .unwrap_or_else(|| format!("wh-{}", platform.next.fetch_add(1, Ordering::SeqCst)));
        match post_signed(&http, &hook, &event(&id)).await {
            Ok(r) if r.status() == 200 => {
                platform.acknowledged.lock().unwrap().insert(id);
            }
            Ok(_) => platform.redeliver.lock().unwrap().push(id),
            Err(_) => {
                platform.redeliver.lock().unwrap().push(id);
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..15))).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_message_is_published_once_and_in_order_across_kill_9() {
    let (kills, seed, mut rng) = crash_plan("hubspot publish crash");

    let fake = HubspotFake::start().await;
    let receiver = MockServer::start().await;
    let schedule: Vec<u64> = std::iter::once(0)
        .chain(std::iter::repeat_n(100, 300))
        .collect();
    let setup = Setup::new(
        &receiver.uri(),
        &schedule,
        "",
        &format!(
            "hubspot = {{ channel_account_id = \"{}\" }}\n\n{}",
            hubspot_fake::CHANNEL_ACCOUNT_ID,
            fake.config_section("")
        ),
    );
    let platform = Arc::new(Platform::default());
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
                daemon.url("/hooks/demo"),
                http.clone(),
                platform.clone(),
                stop.clone(),
            ));
        }
        if round < kills {
            // A random moment: start-up traffic to a busy second in.
            tokio::time::sleep(Duration::from_millis(rng.u64(200..1500))).await;
            daemon.kill();
            stop.store(true, Ordering::Relaxed);
            while lanes.join_next().await.is_some() {}
            continue;
        }
        // The last run is not killed: traffic stops, what never got its 200 is
        // redelivered, and the outbox drains.
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        while lanes.join_next().await.is_some() {}
        loop {
            let Some(id) = platform.redeliver.lock().unwrap().pop() else {
                break;
            };
            let response = daemon.post_webhook("demo", &event(&id)).await.unwrap();
            assert_eq!(response.status(), 200);
            platform.acknowledged.lock().unwrap().insert(id);
        }
        wait_until("the outbox drains", DEADLINE, || async {
            daemon.deliveries("pending").await.is_empty()
        })
        .await;

        // What we stored, per conversation in order.
        let mut stored: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut by_platform_id: HashMap<String, usize> = HashMap::new();
        for conversation in daemon.conversations().await {
            let id = conversation["id"].as_str().unwrap().to_owned();
            for message in daemon.messages(&id).await {
                if message["direction"] == "inbound" {
                    *by_platform_id
                        .entry(message["platform_message_id"].as_str().unwrap().to_owned())
                        .or_default() += 1;
                    stored
                        .entry(id.clone())
                        .or_default()
                        .push(message["id"].as_str().unwrap().to_owned());
                }
            }
        }
        let acknowledged = platform.acknowledged.lock().unwrap().clone();
        let lost: Vec<_> = acknowledged
            .iter()
            .filter(|id| !by_platform_id.contains_key(*id))
            .collect();
        assert!(lost.is_empty(), "acknowledged and not stored: {lost:?}");
        assert!(
            by_platform_id.values().all(|n| *n == 1),
            "a webhook stored twice"
        );

        // What HubSpot has, per thread in the order it got them.
        let published = fake.messages();
        let mut threads: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for m in &published {
            let key = m["integrationIdempotencyId"].as_str().unwrap().to_owned();
            *seen.entry(key.clone()).or_default() += 1;
            threads
                .entry(m["integrationThreadId"].as_str().unwrap().to_owned())
                .or_default()
                .push(key);
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "published twice: {twice:?}");
        assert_eq!(
            threads, stored,
            "every stored message published once, in its conversation's order"
        );
        let repeated = fake.repeated_publishes();
        assert!(
            repeated.len() <= kills * CONTACTS,
            "{} publishes sent again over {kills} crashes: {repeated:?}",
            repeated.len()
        );
        let dead = daemon.deliveries("dead").await;
        assert!(dead.is_empty(), "dead-lettered: {dead:?}");
        fake.assert_no_violations();
        eprintln!(
            "hubspot publish crash figures: kills={kills} seed={seed} acknowledged={} \
             stored={} published={} published_twice=0 out_of_order=0 \
             sent_again_after_a_crash={} dead=0",
            acknowledged.len(),
            by_platform_id.len(),
            published.len(),
            repeated.len(),
        );
    }
}
