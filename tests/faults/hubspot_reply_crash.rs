//! HubSpot replies across kill -9 (issue #18): reps' messages arrive on
//! `POST /hubspot/webhook` while the real binary is SIGKILLed at random moments and
//! restarted on the same store. HubSpot sends a thread's messages in order and resends one
//! until it gets 200 (as it retries for a day). Afterwards:
//! - every acknowledged reply reached the platform exactly once as the platform can tell
//!   (the generic adapter's `webhook-id` is our message id, the same on every attempt),
//!   in the order HubSpot sent them within the conversation;
//! - a raw repeat happened only when a crash cut a send short: at most one per
//!   conversation per crash, straight after itself;
//! - HubSpot heard SENT for every one, every request valid against its spec;
//! - nothing was dead-lettered.
//!
//! `CRASH_LOOP_KILLS` sets the number of kills (3 by default) and `CRASH_LOOP_SEED` replays
//! a run's kill moments, as in crash_loop.rs.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::daemon::{
    DEADLINE, Daemon, Setup, conversation_ids, crash_plan, message_event, post_signed, wait_until,
};
use crate::support::hubspot_fake::{self, HubspotFake};

/// Contacts writing in; each has one conversation, and a rep in HubSpot answers in each.
const CONTACTS: usize = 3;

/// What the platform took, in order: (webhook-id, conversation, text).
#[derive(Clone, Default)]
struct Taken(Arc<Mutex<Vec<(String, String, String)>>>);

/// The platform: takes most sends after a short random delay, refuses some with 503 so
/// retries are always in flight.
struct PlatformApp {
    taken: Taken,
}

impl Respond for PlatformApp {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if fastrand::u8(0..10) == 0 {
            return ResponseTemplate::new(503);
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let id = request
            .headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.taken.0.lock().unwrap().push((
            id.clone(),
            body["conversation_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            body["parts"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ));
        ResponseTemplate::new(200)
            .set_body_json(json!({"id": format!("plat-{id}")}))
            .set_delay(Duration::from_millis(fastrand::u64(0..20)))
    }
}

/// HubSpot's side of one thread: the messages acknowledged with 200, in order, and the
/// one it resends until it is.
#[derive(Default)]
struct Thread {
    acknowledged: Vec<(String, String)>,
    pending: Option<(String, String)>,
    next: usize,
}

/// A rep's message `id` with `text` in our conversation `conversation`.
fn rep_message(id: &str, conversation: &str, text: &str) -> Value {
    json!({
        "type": "OUTGOING_CHANNEL_MESSAGE_CREATED", "portalId": "1",
        "channelId": hubspot_fake::CHANNEL_ID, "eventId": format!("evt-{id}"),
        "channelIntegrationThreadIds": [conversation],
        "message": {"id": id, "type": "MESSAGE", "direction": "OUTGOING",
            "channelAccountId": hubspot_fake::CHANNEL_ACCOUNT_ID, "text": text,
            "senders": [{"actorId": "A-1"}], "attachments": []}
    })
}

/// Posts an event as HubSpot does: signed v3 with the client secret, now.
async fn post_hubspot(
    http: &reqwest::Client,
    base: &str,
    event: &Value,
) -> reqwest::Result<reqwest::Response> {
    let body = event.to_string();
    let timestamp = chrono::Utc::now().timestamp_millis().to_string();
    let signature = channel_bridge::hubspot::signature::sign(
        hubspot_fake::CLIENT_SECRET.as_bytes(),
        "POST",
        "https://bridge.example.test/hubspot/webhook",
        body.as_bytes(),
        &timestamp,
    );
    http.post(format!("{base}/hubspot/webhook"))
        .header("content-type", "application/json")
        .header("x-hubspot-signature-v3", signature)
        .header("x-hubspot-request-timestamp", timestamp)
        .body(body)
        .send()
        .await
}

/// HubSpot sending one thread's messages, each once acknowledged, until the daemon dies
/// or `stop`.
async fn hubspot_lane(
    base: String,
    http: reqwest::Client,
    conversation: String,
    thread: Arc<Mutex<Thread>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let (id, text) = {
            let mut t = thread.lock().unwrap();
            if t.pending.is_none() {
                let n = t.next;
                t.next += 1;
                t.pending = Some((
                    format!("hs-{conversation}-{n}"),
                    format!("reply {n} in {conversation}"),
                ));
            }
            t.pending.clone().unwrap()
        };
        match post_hubspot(&http, &base, &rep_message(&id, &conversation, &text)).await {
            Ok(r) if r.status() == 200 => {
                let mut t = thread.lock().unwrap();
                t.acknowledged.push((id, text));
                t.pending = None;
            }
            Ok(r) if r.status().is_server_error() => {
                // Refused (storage unavailable while stopping): resent.
            }
            Ok(r) => panic!("the webhook got {}", r.status()),
            Err(_) => return,
        }
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..30))).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hubspot_replies_survive_kill_9_each_sent_once_and_in_order() {
    let (kills, seed, mut rng) = crash_plan("hubspot reply crash loop");

    let fake = HubspotFake::start().await;
    let platform = MockServer::start().await;
    let taken = Taken::default();
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(PlatformApp {
            taken: taken.clone(),
        })
        .mount(&platform)
        .await;
    // An attempt every 100 ms for half a minute: no reply may run out of schedule.
    let schedule: Vec<u64> = std::iter::once(0)
        .chain(std::iter::repeat_n(100, 300))
        .collect();
    let extra = format!(
        "[channels.hs]\nkind = \"generic\"\nsecret = \"{}\"\noutbound_url = \"{}/outbound\"\n\
         hubspot = {{ channel_account_id = \"{}\" }}\n\n{}",
        crate::daemon::secret(),
        platform.uri(),
        hubspot_fake::CHANNEL_ACCOUNT_ID,
        fake.config_section(""),
    );
    let setup = Setup::new(&platform.uri(), &schedule, "", &extra);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut threads: BTreeMap<String, Arc<Mutex<Thread>>> = BTreeMap::new();

    for round in 0..=kills {
        let mut daemon = setup.start().await;
        if round == 0 {
            for user in 0..CONTACTS {
                let event = message_event(&format!("in-{user}"), &format!("user-{user}"), "hi");
                let hook = format!("{}/hooks/hs", daemon.base);
                let response = post_signed(&http, &hook, &event).await.unwrap();
                assert_eq!(response.status(), 200);
            }
            for conversation in conversation_ids(&daemon).await {
                threads.insert(conversation, Arc::default());
            }
            assert_eq!(threads.len(), CONTACTS);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut lanes = tokio::task::JoinSet::new();
        for (conversation, thread) in &threads {
            lanes.spawn(hubspot_lane(
                daemon.base.clone(),
                http.clone(),
                conversation.clone(),
                thread.clone(),
                stop.clone(),
            ));
        }
        if round == kills {
            // The last run is not killed: HubSpot gets its last 200s, the outbox drains.
            tokio::time::sleep(Duration::from_millis(800)).await;
            stop.store(true, Ordering::Relaxed);
            while lanes.join_next().await.is_some() {}
            for (conversation, thread) in &threads {
                let pending = thread.lock().unwrap().pending.take();
                if let Some((id, text)) = pending {
                    let event = rep_message(&id, conversation, &text);
                    let response = post_hubspot(&http, &daemon.base, &event).await.unwrap();
                    assert_eq!(response.status(), 200);
                    thread.lock().unwrap().acknowledged.push((id, text));
                }
            }
            wait_until("the outbox drains", DEADLINE, || async {
                daemon.deliveries("pending").await.is_empty()
            })
            .await;
            verify(&daemon, &fake, kills, seed, &threads, &taken).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(200..1500))).await;
        daemon.kill();
        stop.store(true, Ordering::Relaxed);
        while lanes.join_next().await.is_some() {}
    }
}

async fn verify(
    daemon: &Daemon,
    fake: &HubspotFake,
    kills: usize,
    seed: u64,
    threads: &BTreeMap<String, Arc<Mutex<Thread>>>,
    taken: &Taken,
) {
    let taken = taken.0.lock().unwrap().clone();
    let mut duplicates = 0;
    let mut acknowledged_total = 0;
    for (conversation, thread) in threads {
        let expected: Vec<String> = thread
            .lock()
            .unwrap()
            .acknowledged
            .iter()
            .map(|(_, text)| text.clone())
            .collect();
        acknowledged_total += expected.len();
        // As the platform sees it: a webhook-id it took before is a repeat it drops.
        let mut seen = HashSet::new();
        let mut once = Vec::new();
        let mut previous: Option<&str> = None;
        let mut repeats = 0;
        for (id, _, text) in taken.iter().filter(|t| &t.1 == conversation) {
            if seen.insert(id.clone()) {
                once.push(text.clone());
            } else {
                assert_eq!(
                    previous,
                    Some(id.as_str()),
                    "{text:?} sent again after a later reply: reordered"
                );
                repeats += 1;
            }
            previous = Some(id.as_str());
        }
        assert_eq!(
            once, expected,
            "replies in {conversation}: taken vs acknowledged"
        );
        assert!(
            repeats <= kills,
            "{repeats} repeats in {conversation} over {kills} crashes"
        );
        duplicates += repeats;
    }
    // HubSpot heard SENT about every acknowledged message.
    let sent: HashSet<String> = fake
        .status_updates()
        .into_iter()
        .filter(|(_, body)| body["statusType"] == "SENT")
        .map(|(id, _)| id)
        .collect();
    for thread in threads.values() {
        for (id, _) in &thread.lock().unwrap().acknowledged {
            assert!(sent.contains(id), "HubSpot never heard SENT about {id}");
        }
    }
    fake.assert_no_violations();
    let dead = daemon.deliveries("dead").await;
    assert!(dead.is_empty(), "dead-lettered: {dead:?}");
    eprintln!(
        "hubspot reply crash figures: kills={kills} seed={seed} \
         replies_acknowledged={acknowledged_total} platform_requests={} \
         repeats_dropped_by_webhook_id={duplicates} lost=0 reordered=0 dead=0",
        taken.len(),
    );
}
