//! Several replicas of the real binary on one PostgreSQL database, as operators run them
//! behind a load balancer. Needs `CHANNEL_BRIDGE_TEST_PG` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`); without it at build time the tests are
//! reported ignored.
//! Every test works in a schema of its own, dropped at the end.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[path = "it/dovecot.rs"]
mod dovecot;
mod support;
use support::{ADMIN_TOKEN, BIN, Daemon, clear_bridge_env, free_port, post_signed, sha256};

/// The test database. The tests are ignored unless `CHANNEL_BRIDGE_TEST_PG` was set at
/// build time (`cfg(pg_tests)`, build.rs), so one run without it anyway fails, not passes.
fn pg_url(test: &str) -> String {
    std::env::var("CHANNEL_BRIDGE_TEST_PG")
        .unwrap_or_else(|_| panic!("{test} needs CHANNEL_BRIDGE_TEST_PG=postgres://… (not set)"))
}

/// A schema for one test, dropped (with everything in it) when the test ends.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn new(url: &str, prefix: &str) -> Self {
        let name = format!("{prefix}_{}", ulid::Ulid::new().to_string().to_lowercase());
        Self {
            url: url.to_owned(),
            name,
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([self.url.as_str(), "-q", "-c"])
            .arg(format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            .output();
    }
}

/// Starts one `channel-bridge serve` replica on `schema` of the database at `db_url`,
/// delivering to `receiver`; answers once it is healthy.
async fn replica(dir: &Path, name: &str, db_url: &str, schema: &str, receiver: &str) -> Daemon {
    replica_with(dir, name, db_url, schema, receiver, "").await
}

/// [`replica`] with `extra` TOML appended to its config.
async fn replica_with(
    dir: &Path,
    name: &str,
    db_url: &str,
    schema: &str,
    receiver: &str,
    extra: &str,
) -> Daemon {
    let port = free_port();
    let config = dir.join(format!("{name}.toml"));
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
shutdown_grace_ms = 3000

[storage]
url = "{db_url}"
schema = "{schema}"
max_connections = 8

[[api.tokens]]
name = "admin"
role = "admin"
sha256 = "{admin}"

[delivery]
retry_schedule_ms = [0, 200, 400, 800, 1600, 3200, 6400]
timeout_ms = 2000
concurrency = 8
# Short, so the jobs a killed replica held are taken over within the test (and longer than
# timeout_ms, as the config requires).
lease_ms = 3000

[channels.demo]
kind = "generic"
secret = "{secret}"
outbound_url = "{receiver}/outbound"

{extra}
"#,
        admin = sha256(ADMIN_TOKEN),
        secret = support::secret(),
    );
    std::fs::write(&config, text).expect("write the config");
    let log = dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&log).expect("create the log");
    let mut command = Command::new(BIN);
    command
        .args(["--config"])
        .arg(&config)
        .arg("serve")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("clone the log handle"))
        .stderr(file);
    clear_bridge_env(&mut command);
    Daemon::spawn(
        command,
        format!("http://127.0.0.1:{port}"),
        log,
        Duration::from_secs(20),
    )
    .await
}

async fn post_webhook(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    user: &str,
) -> reqwest::Result<reqwest::StatusCode> {
    let event = json!({
        "type": "message", "id": id, "from": {"id": user},
        "parts": [{"type": "text", "text": format!("message {id}")}]
    });
    let url = format!("{base}/hooks/demo");
    Ok(post_signed(http, &url, &event).await?.status())
}

/// (webhook-id, conversation id, text) of each delivery the receiver got, in arrival order.
async fn deliveries(receiver: &MockServer) -> Vec<(String, String, String)> {
    receiver
        .received_requests()
        .await
        .expect("recording is on")
        .into_iter()
        .filter(|r| r.url.path() == "/outbound")
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).expect("JSON body");
            let id = r
                .headers
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (
                id,
                body["conversation_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                body["parts"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// Sends message ids `m{range}` from `contacts` senders, each twice, to two different
/// replicas (skipping replica 2 once it is killed); returns the ids some replica acked.
async fn send_webhooks(
    range: std::ops::Range<usize>,
    contacts: usize,
    http: &reqwest::Client,
    bases: &[String],
    killed: &AtomicBool,
) -> HashSet<String> {
    futures_util::stream::iter(range.flat_map(|i| [(i, 0), (i, 1)]))
        .map(|(i, copy)| async move {
            let target = (i + copy) % 3;
            if target == 2 && killed.load(Ordering::SeqCst) {
                return None;
            }
            let id = format!("m{i}");
            let status =
                post_webhook(http, &bases[target], &id, &format!("user{}", i % contacts)).await;
            matches!(status, Ok(s) if s == 200).then_some(id)
        })
        .buffer_unordered(24)
        .filter_map(|id| async move { id })
        .collect()
        .await
}

/// A reply sent to a conversation: its number, and its message id if the answer arrived.
type SentReply = (usize, Option<String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(pg_tests),
    ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
)]
async fn three_replicas_share_the_work_and_a_killed_one_loses_nothing() {
    let url = pg_url("three_replicas_share_the_work_and_a_killed_one_loses_nothing");
    const CONTACTS: usize = 120;
    const MESSAGES: usize = 3000;
    const REPLIES_PER_CONVERSATION: usize = 4;
    let schema = Schema::new(&url, "replicas");
    let dir = tempfile::tempdir().expect("temp dir");
    let receiver = MockServer::start().await;
    // A little slow, so sends are in flight (leased) when a replica dies.
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(20)))
        .mount(&receiver)
        .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("HTTP client");
    // Started together: they migrate the empty schema at the same moment.
    let mut replicas: Vec<Daemon> = futures_util::future::join_all((0..3).map(|i| {
        let name = format!("replica-{i}");
        let (dir, url, schema, receiver) = (dir.path(), &url, &schema.name, receiver.uri());
        async move { replica(dir, &name, url, schema, &receiver).await }
    }))
    .await;
    let bases: Vec<String> = replicas.iter().map(|r| r.url("")).collect();
    let killed = Arc::new(AtomicBool::new(false));

    // Webhooks spread over the replicas; each message id sent twice, to two replicas, as a
    // platform redelivering would.
    let mut acked = send_webhooks(0..MESSAGES, CONTACTS, &http, &bases, &killed).await;
    assert_eq!(
        acked.len(),
        MESSAGES,
        "every message id was acknowledged by a replica"
    );

    let conversations = replicas[0].conversations().await;
    assert_eq!(
        conversations.len(),
        CONTACTS,
        "one conversation per contact"
    );
    let contacts: HashSet<&str> = conversations
        .iter()
        .map(|c| c["contact"]["id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(contacts.len(), CONTACTS, "one contact per sender");

    // Replies: each conversation's in order (one POST after another), the conversations in
    // parallel, through all three replicas; replica 2 dies while they are being delivered.
    let conversation_ids: Vec<String> = conversations
        .iter()
        .map(|c| c["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let kill_after = Instant::now() + Duration::from_millis(700);
    let mut killer_replica = replicas.pop().expect("three replicas");
    let killer = {
        let killed = killed.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(kill_after.into()).await;
            killed.store(true, Ordering::SeqCst);
            killer_replica.kill();
            killer_replica
        })
    };
    // More webhooks meanwhile; those that reach replica 2 as it dies go unacknowledged.
    let more = {
        let (http, bases, killed) = (http.clone(), bases.clone(), killed.clone());
        tokio::spawn(async move {
            send_webhooks(MESSAGES..MESSAGES + 1000, CONTACTS, &http, &bases, &killed).await
        })
    };
    let replies: Vec<(String, Vec<SentReply>)> =
        futures_util::stream::iter(conversation_ids.iter().cloned().enumerate())
            .map(|(n, conversation)| {
                let (http, bases, killed) = (http.clone(), bases.clone(), killed.clone());
                async move {
                    let mut sent = Vec::new();
                    for r in 0..REPLIES_PER_CONVERSATION {
                        let mut target = (n + r) % 3;
                        if target == 2 && killed.load(Ordering::SeqCst) {
                            target = r % 2;
                        }
                        let response = http
                            .post(format!(
                                "{}/api/v1/conversations/{conversation}/messages",
                                bases[target]
                            ))
                            .bearer_auth(ADMIN_TOKEN)
                            .json(
                                &json!({"parts": [{"type": "text", "text": format!("reply {r}")}]}),
                            )
                            .send()
                            .await;
                        // An answer lost with the killed replica: the reply may or may not
                        // exist, so it is neither expected nor retried.
                        let id = match response {
                            Ok(resp) if resp.status().is_success() => resp
                                .json::<Value>()
                                .await
                                .ok()
                                .and_then(|v| v["id"].as_str().map(str::to_owned)),
                            _ => None,
                        };
                        sent.push((r, id));
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    }
                    (conversation, sent)
                }
            })
            .buffer_unordered(40)
            .collect()
            .await;
    let _dead = killer.await.expect("the killer task");
    acked.extend(more.await.expect("the webhook task"));
    let expected: HashSet<String> = replies
        .iter()
        .flat_map(|(_, sent)| sent.iter().filter_map(|(_, id)| id.clone()))
        .collect();
    assert!(
        expected.len() > CONTACTS * REPLIES_PER_CONVERSATION / 2,
        "most replies were accepted ({} of {})",
        expected.len(),
        CONTACTS * REPLIES_PER_CONVERSATION
    );

    // The survivors deliver everything, including what the dead replica had leased.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: HashSet<String> = deliveries(&receiver)
            .await
            .into_iter()
            .map(|(id, _, _)| id)
            .collect();
        if expected.is_subset(&got) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} accepted replies never delivered",
            expected.difference(&got).count()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Stored once: every acknowledged message, no duplicates, still one conversation each.
    let conversations = replicas[1].conversations().await;
    assert_eq!(
        conversations.len(),
        CONTACTS,
        "no conversation was duplicated"
    );
    let mut stored: HashMap<String, usize> = HashMap::new();
    for c in &conversations {
        let id = c["id"].as_str().unwrap_or_default();
        for m in replicas[0].messages(id).await {
            if m["direction"] == "inbound" {
                let pid = m["platform_message_id"].as_str().unwrap_or_default();
                *stored.entry(pid.to_owned()).or_default() += 1;
            }
        }
    }
    let duplicated: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "messages stored twice: {duplicated:?}"
    );
    let lost: Vec<_> = acked
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    assert!(lost.is_empty(), "acknowledged messages lost: {lost:?}");

    // Delivered in order per conversation (by first arrival), and repeated only where the
    // killed replica may have sent a reply without living to record it.
    let received = deliveries(&receiver).await;
    let mut first_seen: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (id, conversation, text) in &received {
        let count = seen.entry(id.clone()).or_default();
        *count += 1;
        if *count == 1 {
            let n: usize = text
                .strip_prefix("reply ")
                .and_then(|n| n.parse().ok())
                .expect("a reply text");
            first_seen.entry(conversation.clone()).or_default().push(n);
        }
    }
    for (conversation, order) in &first_seen {
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "replies of {conversation} arrived out of order: {order:?}"
        );
    }
    let repeats: usize = seen.values().map(|n| n - 1).sum();
    assert!(
        repeats <= 8,
        "{repeats} repeated deliveries; at most the killed replica's 8 in-flight sends may repeat"
    );
    let pending = replicas[0].deliveries("pending").await;
    assert!(pending.is_empty(), "jobs left pending: {}", pending.len());
    let dead = replicas[0].deliveries("dead").await;
    assert!(dead.is_empty(), "jobs dead-lettered: {}", dead.len());
    eprintln!(
        "replicas: {} messages acked and stored once, {} replies delivered in order, {repeats} repeated",
        acked.len(),
        expected.len()
    );
}

/// A TCP proxy in front of PostgreSQL that the test can cut and restore, to play a
/// database that goes away and comes back.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let (flag, cuts) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut stop = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = stop.changed() => {}
                    }
                });
            }
        });
        Self { port, up, cut }
    }

    /// Drops every connection and refuses new ones (they are closed at once).
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(pg_tests),
    ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
)]
async fn while_the_database_is_unreachable_webhooks_get_503_and_the_daemon_recovers_by_itself() {
    let url = pg_url(
        "while_the_database_is_unreachable_webhooks_get_503_and_the_daemon_recovers_by_itself",
    );
    let target = reqwest::Url::parse(&url).expect("CHANNEL_BRIDGE_TEST_PG is a URL");
    let proxy = Proxy::start(target.port().unwrap_or(5432)).await;
    let mut via_proxy = target.clone();
    via_proxy.set_host(Some("127.0.0.1")).expect("host");
    via_proxy.set_port(Some(proxy.port)).expect("port");
    let schema = Schema::new(&url, "outage");
    let dir = tempfile::tempdir().expect("temp dir");
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("HTTP client");
    let replica = replica(
        dir.path(),
        "outage",
        via_proxy.as_str(),
        &schema.name,
        &receiver.uri(),
    )
    .await;
    let status = post_webhook(&http, &replica.url(""), "before", "ana").await;
    assert_eq!(status.ok(), Some(reqwest::StatusCode::OK));

    proxy.cut();
    let during = post_webhook(&http, &replica.url(""), "during", "ana")
        .await
        .expect("the daemon answers");
    assert_eq!(during, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let ready = http
        .get(replica.url("/readyz"))
        .send()
        .await
        .expect("readyz answers");
    assert_eq!(ready.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);

    proxy.restore();
    // The platform redelivers what got 503; the daemon takes it once it can reach the
    // database again, without a restart.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = post_webhook(&http, &replica.url(""), "during", "ana").await;
        if matches!(status, Ok(s) if s == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the daemon did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let conversations = replica.conversations().await;
    assert_eq!(conversations.len(), 1);
    let id = conversations[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let messages = replica.messages(&id).await;
    let ids: Vec<&str> = messages
        .iter()
        .map(|m| m["platform_message_id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(ids, ["before", "during"], "each message stored once");

    // Delivery works again too (the worker's notification connection came back).
    let reply = http
        .post(replica.url(&format!("/api/v1/conversations/{id}/messages")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"parts": [{"type": "text", "text": "reply 0"}]}))
        .send()
        .await
        .expect("reply");
    assert!(reply.status().is_success(), "{}", reply.status());
    let deadline = Instant::now() + Duration::from_secs(15);
    while deliveries(&receiver).await.is_empty() {
        assert!(Instant::now() < deadline, "the reply was not delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every inbound message's text on the `mail` channel, sorted, read through `daemon`.
async fn mail_texts(daemon: &Daemon) -> Vec<String> {
    let mut texts: Vec<String> = daemon
        .all_messages()
        .await
        .into_iter()
        .filter(|m| m["channel_id"] == "mail" && m["direction"] == "inbound")
        .map(|m| m["parts"][0]["text"].as_str().unwrap_or("").to_owned())
        .collect();
    texts.sort();
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(pg_tests, imap_tests)),
    ignore = "needs PostgreSQL (CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test) and dovecot-imapd, then rebuild"
)]
async fn one_replica_reads_a_mailbox_and_another_takes_over_when_it_stops() {
    let url = pg_url("one_replica_reads_a_mailbox_and_another_takes_over_when_it_stops");
    let schema = Schema::new(&url, "replicas_imap");
    let dir = tempfile::tempdir().expect("temp dir");
    let receiver = MockServer::start().await;
    let imap = dovecot::Dovecot::start().await;
    let extra = format!(
        "[smtp]\nurl = \"smtp://127.0.0.1:1\"\nfrom = \"support@example.com\"\n\n\
         [channels.mail]\nkind = \"email\"\n{}",
        imap.imap_block("mail", "poll_interval_secs = 1")
    );
    let mut replicas = Vec::new();
    for name in ["a", "b"] {
        replicas.push(
            replica_with(
                dir.path(),
                name,
                &url,
                &schema.name,
                &receiver.uri(),
                &extra,
            )
            .await,
        );
    }
    for n in 1..=5 {
        imap.append(
            "INBOX",
            &dovecot::mail(
                "ana@example.com",
                &format!("rep{n}@example.com"),
                None,
                &format!("mail {n}"),
            ),
        )
        .await;
    }
    let expected: Vec<String> = (1..=5).map(|n| format!("mail {n}")).collect();
    support::wait_until(
        "both replicas see the five mails",
        Duration::from_secs(30),
        || async {
            mail_texts(&replicas[0]).await == expected && mail_texts(&replicas[1]).await == expected
        },
    )
    .await;
    // Only one of them logged in to read it: the other waited for the lease.
    let readers: Vec<usize> = (0..2)
        .filter(|&i| replicas[i].log_text().contains("Reading the IMAP mailbox."))
        .collect();
    assert_eq!(readers.len(), 1, "readers: {readers:?}");
    let (reader, other) = (readers[0], 1 - readers[0]);

    // The reader stops (SIGTERM gives the lease back): the other takes over, from where
    // the cursor stands.
    replicas[reader].terminate();
    replicas[reader].wait_exit(Duration::from_secs(20)).await;
    imap.append(
        "INBOX",
        &dovecot::mail("bo@example.com", "rep6@example.com", None, "mail 6"),
    )
    .await;
    let mut expected = expected;
    expected.push("mail 6".into());
    support::wait_until(
        "the other replica takes the sixth",
        Duration::from_secs(30),
        || async { mail_texts(&replicas[other]).await == expected },
    )
    .await;
    assert!(
        replicas[other]
            .log_text()
            .contains("Reading the IMAP mailbox.")
    );
    assert_eq!(
        imap.messages("INBOX").await,
        (1..=6).map(|uid| (uid, true)).collect::<Vec<_>>()
    );
}
