//! A power cut between a commit and its flush. The SQLite writer commits with
//! `synchronous = NORMAL` and a syncer thread flushes the log before anyone is answered
//! (docs/ARCHITECTURE.md §3). Here the debug build's fault point
//! (`CHANNEL_BRIDGE_FAULT=power-cut-before-flush:N`, src/store/sqlite/writer/fault.rs)
//! makes the syncer, at its N-th flush, cut the log back to what had been flushed (what a
//! disk holds after the power goes) and SIGKILL the process, while webhooks and rep
//! replies pour in. After a restart:
//! - every webhook that got 200 is stored exactly once, and what the cut took had never
//!   been answered (its redelivery is stored once);
//! - every reply that got 202 is stored, and every reply the app took before the cut is
//!   still stored: nothing left the process for a row the cut took;
//! - the outbox then delivers every stored reply, in order within its conversation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::daemon::{
    DEADLINE, Daemon, Setup, Taken, conversation_ids, crash_plan, message_event, post_signed,
    send_reply, wait_until,
};

const CONTACTS: usize = 4;
const LANES: usize = 6;

impl Respond for Taken {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.take(request)
    }
}

#[derive(Default)]
struct Traffic {
    next: AtomicUsize,
    sent: Mutex<HashSet<String>>,
    acknowledged: Mutex<HashSet<String>>,
    /// Replies answered 202, in order per conversation.
    queued: Mutex<BTreeMap<String, Vec<String>>>,
}

fn event_for(id: &str) -> Value {
    let n: usize = id.trim_start_matches("wh-").parse().unwrap();
    message_event(
        id,
        &format!("user-{}", n % CONTACTS),
        &format!("message {n}"),
    )
}

async fn webhook_lane(base: String, http: reqwest::Client, traffic: Arc<Traffic>) {
    let hook = format!("{base}/hooks/demo");
    loop {
        let id = format!("wh-{}", traffic.next.fetch_add(1, Ordering::SeqCst));
        traffic.sent.lock().unwrap().insert(id.clone());
        match post_signed(&http, &hook, &event_for(&id)).await {
            Ok(r) if r.status() == 200 => {
                traffic.acknowledged.lock().unwrap().insert(id);
            }
            // Refused in the moment before the power went (its reads may find the log
            // already cut): not acknowledged, so the platform sends it again.
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

async fn reply_lane(
    base: String,
    http: reqwest::Client,
    conversation: String,
    traffic: Arc<Traffic>,
    stop: Arc<AtomicBool>,
) {
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let text = format!("reply {n} in {conversation}");
        match send_reply(&http, &base, &conversation, &text).await {
            Ok(status) if status == 202 => traffic
                .queued
                .lock()
                .unwrap()
                .entry(conversation.clone())
                .or_default()
                .push(text),
            // Refused (as above): the rep was told it failed.
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// The text of a stored message.
fn text(message: &Value) -> String {
    message["parts"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_power_cut_before_the_flush_loses_nothing_that_was_answered_or_sent() {
    let (_, seed, mut rng) = crash_plan("power cut");
    let receiver = MockServer::start().await;
    let taken = Taken::default();
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(taken.clone())
        .mount(&receiver)
        .await;
    let schedule: Vec<u64> = std::iter::once(0)
        .chain(std::iter::repeat_n(100, 300))
        .collect();
    let mut setup = Setup::new(&receiver.uri(), &schedule, "", "");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let traffic = Arc::new(Traffic::default());

    // Conversations to reply in, made before the fault is armed.
    let daemon = setup.start().await;
    for n in 0..CONTACTS {
        let id = format!("wh-{}", traffic.next.fetch_add(1, Ordering::SeqCst));
        assert_eq!(n, id[3..].parse::<usize>().unwrap());
        traffic.sent.lock().unwrap().insert(id.clone());
        let response = daemon.post_webhook("demo", &event_for(&id)).await.unwrap();
        assert_eq!(response.status(), 200);
        traffic.acknowledged.lock().unwrap().insert(id);
    }
    let conversations = conversation_ids(&daemon).await;
    assert_eq!(conversations.len(), CONTACTS);
    stop_gracefully(daemon).await;

    // Traffic until the power goes, at a flush far enough in for both kinds to be flowing.
    let at = rng.u64(40..160);
    eprintln!("power cut at flush {at} (CRASH_LOOP_SEED={seed})");
    setup.env = vec![(
        "CHANNEL_BRIDGE_FAULT".into(),
        format!("power-cut-before-flush:{at}"),
    )];
    let mut daemon = setup.start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut lanes = tokio::task::JoinSet::new();
    for _ in 0..LANES {
        lanes.spawn(webhook_lane(
            daemon.base.clone(),
            http.clone(),
            traffic.clone(),
        ));
    }
    for conversation in &conversations {
        lanes.spawn(reply_lane(
            daemon.base.clone(),
            http.clone(),
            conversation.clone(),
            traffic.clone(),
            stop.clone(),
        ));
    }
    let status = daemon.wait_exit(DEADLINE).await;
    let taken_before_cut = taken.0.lock().unwrap().clone();
    stop.store(true, Ordering::Relaxed);
    while lanes.join_next().await.is_some() {}
    assert_eq!(
        status.signal(),
        Some(9),
        "killed by its fault point: {status:?}"
    );
    assert!(
        daemon.log_text().contains("Fault: power cut"),
        "the fault point fired"
    );

    setup.env.clear();
    let daemon = setup.start().await;
    let messages = daemon.all_messages().await;
    let mut inbound: HashMap<String, usize> = HashMap::new();
    let mut replies: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for message in &messages {
        if message["direction"] == "inbound" {
            *inbound
                .entry(message["platform_message_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        } else {
            replies
                .entry(message["conversation_id"].as_str().unwrap().to_owned())
                .or_default()
                .push(text(message));
        }
    }
    let acknowledged = traffic.acknowledged.lock().unwrap().clone();
    let sent = traffic.sent.lock().unwrap().clone();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !inbound.contains_key(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged, then lost in the cut: {lost:?}"
    );
    assert!(inbound.values().all(|n| *n == 1), "stored twice");
    let unanswered: Vec<String> = sent
        .iter()
        .filter(|id| !acknowledged.contains(*id))
        .cloned()
        .collect();
    let cut = unanswered
        .iter()
        .filter(|id| !inbound.contains_key(*id))
        .count();
    eprintln!(
        "{} webhooks answered, {} unanswered when the power went ({cut} of them not stored)",
        acknowledged.len(),
        unanswered.len()
    );

    let stored_replies: HashSet<&String> = replies.values().flatten().collect();
    let queued = traffic.queued.lock().unwrap().clone();
    for texts in queued.values() {
        for text in texts {
            assert!(stored_replies.contains(text), "202 then lost: {text}");
        }
    }
    for (_, text) in &taken_before_cut {
        assert!(
            stored_replies.contains(text),
            "delivered before the cut, but the cut took its row: {text}"
        );
    }
    assert!(
        !taken_before_cut.is_empty() && queued.values().map(Vec::len).sum::<usize>() > 0,
        "replies were flowing when the power went"
    );

    // The platform redelivers what got no 200; the outbox sends what is stored.
    for id in &unanswered {
        let response = daemon.post_webhook("demo", &event_for(id)).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    wait_until("the outbox drains", DEADLINE, || async {
        daemon.deliveries("pending").await.is_empty()
    })
    .await;
    let mut once: HashMap<String, usize> = HashMap::new();
    for message in daemon.all_messages().await {
        if message["direction"] == "inbound" {
            *once
                .entry(message["platform_message_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    assert!(
        sent.iter().all(|id| once.get(id) == Some(&1)),
        "every webhook sent is stored exactly once after redelivery"
    );
    let taken = taken.0.lock().unwrap().clone();
    for (conversation, stored) in &replies {
        let mut firsts: Vec<&String> = Vec::new();
        for (c, text) in &taken {
            if c == conversation && !firsts.contains(&text) {
                firsts.push(text);
            }
        }
        let stored: Vec<&String> = stored.iter().collect();
        assert_eq!(firsts, stored, "replies in {conversation}: taken vs stored");
    }
    assert!(daemon.deliveries("dead").await.is_empty());
}

async fn stop_gracefully(mut daemon: Daemon) {
    daemon.terminate();
    let status = daemon.wait_exit(DEADLINE).await;
    assert!(status.success(), "clean exit: {status:?}");
}
