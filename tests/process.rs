//! Tests that run the real `channel-bridge` binary as a child process: crash safety
//! (SIGKILL), graceful shutdown (SIGTERM) and the CLI subcommands, on 127.0.0.1 with a
//! throw-away config and SQLite file, and a wiremock server playing the in-house app.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use channel_bridge::adapters::signature::WebhookKey;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

mod support;
use support::{
    ADMIN_TOKEN, BIN, Daemon, REP_TOKEN, free_port, message_event, post_signed, secret, sha256,
    wait_until,
};

/// How long the daemon may take to exit, or to finish queued work.
const DEADLINE: Duration = Duration::from_secs(20);

/// A config file and database in a temp dir, for one daemon and its restarts.
struct Setup {
    dir: tempfile::TempDir,
    port: u16,
    config: PathBuf,
    db: PathBuf,
}

impl Setup {
    /// Writes the config: the in-house app's outbound URL is `{receiver}/outbound`.
    fn new(receiver: &str, retry_schedule_ms: &[u64]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let db = dir.path().join("bridge.db");
        let config = dir.path().join("config.toml");
        let text = format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "https://bridge.example.test"
max_body_bytes = 65536
shutdown_grace_ms = 5000

[storage]
url = "sqlite://{db}"

[[api.tokens]]
name = "test-admin"
role = "admin"
sha256 = "{admin}"

[[api.tokens]]
name = "test-rep"
role = "rep"
sha256 = "{rep}"

[delivery]
retry_schedule_ms = {schedule:?}
timeout_ms = 2000
# Longer than the tests wait for anything: a lease left by a killed process must be
# taken back at start-up, not waited out.
lease_ms = 30000

[channels.demo]
kind = "generic"
secret = "{secret}"
outbound_url = "{receiver}/outbound"
threading = "per_contact"
reopen = true
"#,
            // The path is absolute, so this reads sqlite:///tmp/…/bridge.db.
            db = db.display(),
            admin = sha256(ADMIN_TOKEN),
            rep = sha256(REP_TOKEN),
            schedule = retry_schedule_ms,
            secret = secret(),
        );
        std::fs::write(&config, text).expect("write the config");
        Self {
            dir,
            port,
            config,
            db,
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts `channel-bridge serve` on this config and waits until /healthz answers.
    async fn start(&self) -> Daemon {
        self.start_with_env(&[]).await
    }

    /// As [`Setup::start`], with these extra environment variables.
    async fn start_with_env(&self, env: &[(&str, &str)]) -> Daemon {
        let log_path = self.dir.path().join("daemon.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open the daemon log");
        let mut command = cli_command(&self.config);
        command
            .envs(env.iter().copied())
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log);
        Daemon::spawn(command, self.base(), log_path, Duration::from_secs(10)).await
    }

    /// Runs a one-shot subcommand to completion.
    async fn run(&self, args: &[&str]) -> Output {
        run_cli(&self.config, args).await
    }
}

/// `channel-bridge --config FILE` with no config-changing env inherited from the test run.
fn cli_command(config: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.arg("--config").arg(config);
    support::clear_bridge_env(&mut command);
    // Plain-text logs: they go to a file that is printed when a test fails.
    command.env("RUST_LOG", "info").env("NO_COLOR", "1");
    command
}

async fn run_cli(config: &Path, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::from(cli_command(config));
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    tokio::time::timeout(DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("channel-bridge {args:?} did not finish within {DEADLINE:?}"))
        .expect("the binary runs")
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

impl Daemon {
    /// Every inbound message's platform id, across all conversations.
    async fn inbound_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for conversation in self.conversations().await {
            let id = conversation["id"].as_str().expect("conversation id");
            for message in self.messages(id).await {
                if message["direction"] == "inbound" {
                    ids.push(
                        message["platform_message_id"]
                            .as_str()
                            .expect("platform id")
                            .to_owned(),
                    );
                }
            }
        }
        ids
    }

    /// Queues a rep reply; returns the new message's id.
    async fn reply(&self, conversation: &str, text: &str) -> String {
        let (status, body) = self
            .api(
                reqwest::Method::POST,
                &format!("/api/v1/conversations/{conversation}/messages"),
                Some(json!({"parts": [{"type": "text", "text": text}]})),
                ADMIN_TOKEN,
            )
            .await;
        assert_eq!(status, 202, "reply: {body}");
        body["id"].as_str().expect("reply id").to_owned()
    }
}

/// Bodies the receiver got on /outbound, oldest first.
async fn delivered(receiver: &MockServer) -> Vec<Value> {
    receiver
        .received_requests()
        .await
        .expect("request recording is on")
        .into_iter()
        .filter(|r| r.url.path() == "/outbound")
        .map(|r| serde_json::from_slice(&r.body).expect("outbound body is JSON"))
        .collect()
}

async fn answer_outbound(receiver: &MockServer, status: u16) {
    answer_outbound_after(receiver, status, Duration::ZERO).await;
}

/// Answers /outbound with `status`, holding each answer back for `delay`.
async fn answer_outbound_after(receiver: &MockServer, status: u16, delay: Duration) {
    Mock::given(method("POST"))
        .and(path("/outbound"))
        .respond_with(ResponseTemplate::new(status).set_delay(delay))
        .mount(receiver)
        .await;
}

/// A schedule that keeps retrying a failing receiver every ~100 ms for about 30 s, so
/// replies stay pending (not dead) for as long as a test needs them to.
fn long_fast_schedule() -> Vec<u64> {
    std::iter::once(0)
        .chain(std::iter::repeat_n(100, 300))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_loses_no_acknowledged_message_and_queued_replies_resume_after_restart() {
    let receiver = MockServer::start().await;
    // Each refusal takes a second, so a send is almost always in flight (its job leased)
    // when the process dies: the restart must take those leases back, not wait them out.
    answer_outbound_after(&receiver, 503, Duration::from_secs(1)).await;
    let setup = Setup::new(&receiver.uri(), &long_fast_schedule());
    let mut daemon = setup.start().await;

    // 50 webhooks from 5 contacts, 10 in flight at a time.
    const USERS: usize = 5;
    let hook = daemon.url("/hooks/demo");
    let mut acknowledged: HashSet<String> = HashSet::new();
    for chunk in (0..50).collect::<Vec<_>>().chunks(10) {
        let mut sends = tokio::task::JoinSet::new();
        for n in chunk {
            let id = format!("app-{n}");
            let event = message_event(&id, &format!("user-{}", n % USERS), &format!("hello {n}"));
            let (http, hook) = (daemon.http.clone(), hook.clone());
            sends.spawn(async move { (id, post_signed(&http, &hook, &event).await) });
        }
        while let Some(sent) = sends.join_next().await {
            let (id, result) = sent.expect("send task");
            match result {
                Ok(r) if r.status() == 200 => {
                    acknowledged.insert(id);
                }
                Ok(r) => panic!("webhook {id} got {}", r.status()),
                Err(e) => panic!("webhook {id} failed: {e}"),
            }
        }
    }

    // Three replies in each of three conversations, interleaved across conversations.
    let conversations = daemon.conversations().await;
    assert_eq!(conversations.len(), USERS, "one conversation per contact");
    let targets: Vec<String> = conversations
        .iter()
        .take(3)
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    let mut queued: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for round in 0..3 {
        for conversation in &targets {
            let id = daemon.reply(conversation, &format!("reply {round}")).await;
            queued.entry(conversation.clone()).or_default().push(id);
        }
    }
    // The receiver is failing them: they are being tried and stay pending.
    wait_until("the receiver has refused a reply", DEADLINE, || async {
        !delivered(&receiver).await.is_empty()
    })
    .await;
    assert_eq!(
        daemon.deliveries("pending").await.len(),
        9,
        "all nine replies are pending"
    );

    // Keep webhooks streaming in while the process is killed: whatever got a 200 before
    // the kill must survive it.
    let stop = Arc::new(AtomicBool::new(false));
    let burst_acks: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut burst = tokio::task::JoinSet::new();
    for lane in 0..8 {
        let (http, hook) = (daemon.http.clone(), hook.clone());
        let (stop, acks) = (stop.clone(), burst_acks.clone());
        burst.spawn(async move {
            for n in 0..5000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let id = format!("app-burst-{lane}-{n}");
                let event = message_event(&id, &format!("user-{}", n % USERS), "burst");
                let result = post_signed(&http, &hook, &event).await;
                match result {
                    // The connection died with the process: not acknowledged, and this lane
                    // is done.
                    Err(_) => break,
                    Ok(r) if r.status() == 200 => acks.lock().await.push(id),
                    Ok(_) => {}
                }
            }
        });
    }
    wait_until("some burst webhooks are acknowledged", DEADLINE, || async {
        burst_acks.lock().await.len() >= 20
    })
    .await;
    daemon.kill();
    stop.store(true, Ordering::Relaxed);
    while let Some(lane) = burst.join_next().await {
        lane.expect("burst lane");
    }
    acknowledged.extend(burst_acks.lock().await.iter().cloned());

    // The app is back and accepts replies now. Reset also forgets the refused attempts.
    receiver.reset().await;
    answer_outbound(&receiver, 200).await;
    let daemon = setup.start().await;

    // Every queued reply goes out, once each, in order within its conversation.
    let expected: usize = queued.values().map(Vec::len).sum();
    wait_until(
        "every queued reply reaches the receiver",
        DEADLINE,
        || async { delivered(&receiver).await.len() >= expected },
    )
    .await;
    wait_until("no delivery is pending", DEADLINE, || async {
        daemon.deliveries("pending").await.is_empty()
    })
    .await;
    let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for body in delivered(&receiver).await {
        sent.entry(body["conversation_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        sent, queued,
        "replies per conversation, in the order they were queued"
    );
    assert!(
        daemon.deliveries("dead").await.is_empty(),
        "no reply was dead-lettered"
    );

    // Every acknowledged message is stored exactly once.
    let stored = daemon.inbound_ids().await;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &stored {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "stored more than once: {duplicated:?}"
    );
    let mut lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !counts.contains_key(id.as_str()))
        .collect();
    lost.sort();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages lost after SIGKILL: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero() {
    let receiver = MockServer::start().await;
    // The app takes a second to accept a reply, so one is mid-send when SIGTERM arrives.
    answer_outbound_after(&receiver, 200, Duration::from_secs(1)).await;
    let setup = Setup::new(&receiver.uri(), &[0, 50, 100]);
    let mut daemon = setup.start().await;

    let response = daemon
        .post_webhook(
            "demo",
            &message_event("app-term-1", "user-1", "before shutdown"),
        )
        .await
        .expect("webhook reaches the daemon");
    assert_eq!(response.status(), 200);
    let conversation = daemon.conversations().await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = daemon.reply(&conversation, "sent while stopping").await;
    wait_until("the reply is being sent", DEADLINE, || async {
        !delivered(&receiver).await.is_empty()
    })
    .await;

    daemon.terminate();
    let status = daemon.wait_exit(DEADLINE).await;
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0, got {status:?}");

    // The send in flight was finished and recorded before exit, so nothing is sent twice.
    let daemon = setup.start().await;
    assert_eq!(daemon.inbound_ids().await, vec!["app-term-1".to_owned()]);
    let messages = daemon.messages(&conversation).await;
    let sent = messages
        .iter()
        .find(|m| m["id"] == reply.as_str())
        .expect("the reply is stored");
    assert_eq!(sent["delivery"]["status"], "sent", "{sent}");
    assert!(
        daemon.deliveries("pending").await.is_empty(),
        "nothing left to send"
    );
    assert_eq!(
        delivered(&receiver).await.len(),
        1,
        "the reply went out once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_reports_every_error_at_once_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            r#"
[server]
listen = "not-an-address"

[storage]
url = "sqlite://{db}"

[[api.tokens]]
name = "ops"
role = "admin"
sha256 = "not-hex"

[delivery]
retry_schedule_ms = []

[channels.x]
kind = "carrier-pigeon"
"#,
            db = dir.path().join("bridge.db").display()
        ),
    )
    .unwrap();
    let output = run_cli(&bad, &["check-config"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for key in [
        "server.listen",
        "channels.x.kind",
        "api.tokens[0].sha256",
        "delivery.retry_schedule_ms",
    ] {
        assert!(
            stderr.contains(key),
            "stderr does not name {key}:\n{}",
            describe(&output)
        );
    }

    // A valid file passes.
    let receiver = MockServer::start().await;
    let setup = Setup::new(&receiver.uri(), &[0, 50]);
    let output = setup.run(&["check-config"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        !setup.db.exists(),
        "check-config does not create the database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_reports_every_error_of_a_table_one_a_line_naming_the_keys_it_expects() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            r#"
[server]
lisen = "127.0.0.1:1"
max_body_bytes = "big"

[storage]
url = "sqlite://{db}"

[[reps]]
id = "alice"
emial = "alice@example.com"
capacity = "lots"

[channels.x]
kind = "generic"
secret = "whsec_Y2hhbm5lbC1icmlkZ2UtZGV2LXNlY3JldC1vbmx5ISE="
outbound_url = "ftp://example.com/x"
enabld = true
"#,
            db = dir.path().join("bridge.db").display()
        ),
    )
    .unwrap();
    let output = run_cli(&bad, &["check-config"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut keys: Vec<&str> = stderr
        .lines()
        .map(|line| line.split_once(": ").map_or(line, |(key, _)| key))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "channels.x.enabld",
            "channels.x.outbound_url",
            "reps[0].capacity",
            "reps[0].emial",
            "server.lisen",
            "server.max_body_bytes",
        ],
        "every error, one a line:\n{stderr}"
    );
    assert!(
        stderr.ends_with("URL\n"),
        "ends with a newline:\n{stderr:?}"
    );
    let enabld = stderr
        .lines()
        .find(|l| l.starts_with("channels.x.enabld"))
        .unwrap();
    for expected in ["`outbound_url`", "`enabled`", "`threading`", "`name`"] {
        assert!(enabld.contains(expected), "{enabld}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_warns_about_owners_who_cannot_be_emailed_and_refuses_routing_outside_the_inbox()
 {
    let dir = tempfile::tempdir().unwrap();
    let config = |routing: &str| {
        format!(
            r#"
[storage]
url = "sqlite://{db}"

[smtp]
url = "smtp://127.0.0.1:9"
from = "desk@example.com"

[[reps]]
id = "alice"
email = "alice@example.com"
[[reps]]
id = "dan"

[inboxes.sales]
channels = ["shop"]
users = ["alice", "dan"]

[channels.shop]
kind = "generic"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
outbound_url = "http://127.0.0.1:9/out"
routing = {routing}
"#,
            db = dir.path().join("bridge.db").display()
        )
    };
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config(r#"{ mode = "contact_owner" }"#)).unwrap();
    let output = run_cli(&path, &["check-config"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("warning: channels.shop.routing:") && stderr.contains("dan"),
        "{}",
        describe(&output)
    );

    // Bob exists but works no inbox of shop: routing may not give him its conversations.
    let outside = config(r#"{ mode = "users_and_teams", users = ["alice", "bob"] }"#).replace(
        "[[reps]]\nid = \"dan\"",
        "[[reps]]\nid = \"dan\"\n[[reps]]\nid = \"bob\"",
    );
    std::fs::write(&path, outside).unwrap();
    let output = run_cli(&path, &["check-config"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("channels.shop.routing.users") && stderr.contains("\"bob\""),
        "{}",
        describe(&output)
    );
}

/// Parses `name: value` lines.
fn header_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("not a header line: {line:?}"));
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_command_signs_a_body_the_daemon_accepts() {
    let receiver = MockServer::start().await;
    let setup = Setup::new(&receiver.uri(), &[0, 50]);
    let daemon = setup.start().await;

    let body = message_event("app-signed-1", "user-7", "signed by the CLI").to_string();
    let output = setup
        .run(&["sign", "--channel", "demo", "--body", &body])
        .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let headers = header_lines(&String::from_utf8_lossy(&output.stdout));
    let names: HashSet<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    for required in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        assert!(
            names.contains(required),
            "sign printed no {required}: {headers:?}"
        );
    }

    let post = |body: String| {
        let mut request = daemon.http.post(daemon.url("/hooks/demo"));
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        request.body(body).send()
    };
    let response = post(body.clone())
        .await
        .expect("webhook reaches the daemon");
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["stored"], 1, "{answer}");
    assert_eq!(daemon.inbound_ids().await, vec!["app-signed-1".to_owned()]);

    // The signature covers the body: the same headers on another body are refused.
    let other = message_event("app-signed-2", "user-7", "forged").to_string();
    let response = post(other).await.expect("webhook reaches the daemon");
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_cli_lists_and_redrives_dead_letters() {
    let receiver = MockServer::start().await;
    // 400 is permanent: the reply is dead-lettered on its first attempt.
    answer_outbound(&receiver, 400).await;
    let setup = Setup::new(&receiver.uri(), &[0, 50, 100]);
    let daemon = setup.start().await;

    let response = daemon
        .post_webhook("demo", &message_event("app-dlq-1", "user-3", "help"))
        .await
        .expect("webhook reaches the daemon");
    assert_eq!(response.status(), 200);
    let conversation = daemon.conversations().await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let message_id = daemon.reply(&conversation, "this one bounces").await;
    wait_until("the reply is dead-lettered", DEADLINE, || async {
        daemon.deliveries("dead").await.len() == 1
    })
    .await;
    let dead = daemon.deliveries("dead").await;
    let job_id = dead[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(dead[0]["message_id"], message_id.as_str());

    let output = setup
        .run(&["deliveries", "--token", ADMIN_TOKEN, "list"])
        .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let listed: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("list prints JSON ({e}):\n{}", describe(&output)));
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .expect("a list of items")
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(ids, vec![job_id.as_str()], "{listed}");

    // A wrong token is refused with a non-zero exit.
    let output = setup
        .run(&["deliveries", "--token", "wrong-token", "list"])
        .await;
    assert_ne!(output.status.code(), Some(0), "{}", describe(&output));

    receiver.reset().await;
    answer_outbound(&receiver, 200).await;
    let output = setup
        .run(&["deliveries", "--token", ADMIN_TOKEN, "retry", &job_id])
        .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    wait_until(
        "the redriven reply reaches the receiver",
        DEADLINE,
        || async {
            delivered(&receiver)
                .await
                .iter()
                .any(|b| b["id"] == message_id.as_str())
        },
    )
    .await;
    wait_until("the delivery is done", DEADLINE, || async {
        daemon.deliveries("dead").await.is_empty() && daemon.deliveries("pending").await.is_empty()
    })
    .await;
    let sent = delivered(&receiver).await;
    assert_eq!(sent.len(), 1, "sent once: {sent:?}");
}

/// Runs a subcommand to completion with `input` on its standard input.
async fn run_cli_with_stdin(config: &Path, args: &[&str], input: &[u8]) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut command = tokio::process::Command::from(cli_command(config));
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("the binary runs");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input).await.expect("write stdin");
    drop(stdin);
    tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("channel-bridge {args:?} did not finish within {DEADLINE:?}"))
        .expect("the binary runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_retry_runs_a_pending_delivery_now_instead_of_after_its_backoff() {
    let receiver = MockServer::start().await;
    answer_outbound(&receiver, 503).await;
    // After the first failure the reply would wait an hour.
    let setup = Setup::new(&receiver.uri(), &[0, 3_600_000, 3_600_000]);
    let daemon = setup.start().await;

    let response = daemon
        .post_webhook("demo", &message_event("app-wait-1", "user-4", "help"))
        .await
        .expect("webhook reaches the daemon");
    assert_eq!(response.status(), 200);
    let conversation = daemon.conversations().await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let message_id = daemon.reply(&conversation, "first try fails").await;
    wait_until("the first attempt has failed", DEADLINE, || async {
        daemon
            .deliveries("pending")
            .await
            .first()
            .is_some_and(|d| d["attempts"] == 1)
    })
    .await;
    let job_id = daemon.deliveries("pending").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    receiver.reset().await;
    answer_outbound(&receiver, 200).await;
    // The API options may also follow the action.
    let output = setup
        .run(&["deliveries", "retry", &job_id, "--token", ADMIN_TOKEN])
        .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    wait_until("the reply is sent now", DEADLINE, || async {
        delivered(&receiver)
            .await
            .iter()
            .any(|b| b["id"] == message_id.as_str())
    })
    .await;
    wait_until("the delivery is done", DEADLINE, || async {
        daemon.deliveries("pending").await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_command_signs_and_posts_a_body_and_fails_when_the_daemon_refuses_it() {
    let receiver = MockServer::start().await;
    let setup = Setup::new(&receiver.uri(), &[0, 50]);
    let daemon = setup.start().await;

    let body = message_event("app-sent-1", "user-8", "sent by the CLI").to_string();
    let output = setup
        .run(&["send", "--channel", "demo", "--body", &body])
        .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("200 OK"), "{}", describe(&output));
    assert!(stdout.contains("\"stored\":1"), "{}", describe(&output));

    // From a file on standard input, trailing newline and all: the signature covers the
    // bytes that are posted, so nothing can come apart.
    let piped = format!("{}\n", message_event("app-sent-2", "user-8", "piped in"));
    let output = run_cli_with_stdin(
        &setup.config,
        &["send", "--body-file", "-", "--channel", "demo"],
        piped.as_bytes(),
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let mut ids = daemon.inbound_ids().await;
    ids.sort();
    assert_eq!(ids, vec!["app-sent-1".to_owned(), "app-sent-2".to_owned()]);

    // A body the daemon refuses: its status and error are printed, and the exit is 1.
    let output = setup.run(&["send", "--body", "not json"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("400"), "{}", describe(&output));
    assert!(stdout.contains("\"error\""), "{}", describe(&output));

    let output = setup
        .run(&["send", "--channel", "nope", "--body", "{}"])
        .await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no channel \"nope\""),
        "{}",
        describe(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen_secret_prints_a_fresh_webhook_key_each_time() {
    let setup = Setup::new("http://127.0.0.1:9", &[0]);
    let first = setup.run(&["gen-secret"]).await;
    let second = setup.run(&["gen-secret"]).await;
    let mut keys = Vec::new();
    for output in [&first, &second] {
        assert_eq!(output.status.code(), Some(0), "{}", describe(output));
        let key = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(
            WebhookKey::parse(&key).is_ok(),
            "not a webhook key: {key:?}"
        );
        keys.push(key);
    }
    assert_ne!(keys[0], keys[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_token_prints_the_config_line_of_a_token_given_as_argument_or_on_stdin() {
    let setup = Setup::new("http://127.0.0.1:9", &[0]);
    let expected = format!("sha256 = \"{}\"\n", sha256(ADMIN_TOKEN));

    let output = setup.run(&["hash-token", ADMIN_TOKEN]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), expected);

    // `echo TOKEN |` adds a newline that is not part of the token.
    let piped = format!("{ADMIN_TOKEN}\n");
    let output = run_cli_with_stdin(&setup.config, &["hash-token"], piped.as_bytes()).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_creates_the_schema_and_is_idempotent() {
    let receiver = MockServer::start().await;
    let setup = Setup::new(&receiver.uri(), &[0, 50]);
    assert!(!setup.db.exists());

    let schema = |db: &Path| {
        let conn =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .expect("open the database");
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        let mut statement = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        let tables: Vec<String> = statement
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        (version, tables)
    };

    let first = setup.run(&["migrate"]).await;
    assert_eq!(first.status.code(), Some(0), "{}", describe(&first));
    assert!(setup.db.exists(), "migrate creates the database file");
    let (version, tables) = schema(&setup.db);
    assert!(version >= 1, "schema version recorded, got {version}");
    for table in ["conversations", "messages", "jobs"] {
        assert!(
            tables.iter().any(|t| t == table),
            "no {table} table in {tables:?}"
        );
    }

    let second = setup.run(&["migrate"]).await;
    assert_eq!(second.status.code(), Some(0), "{}", describe(&second));
    assert_eq!(
        schema(&setup.db),
        (version, tables),
        "a second migrate changes nothing"
    );

    // The daemon starts on the migrated database.
    let daemon = setup.start().await;
    assert!(daemon.conversations().await.is_empty());
}

/// Posts webhooks (a fresh id each time) until one gets `expected`.
async fn wait_for_status(daemon: &Daemon, what: &str, expected: u16) {
    let n = std::sync::atomic::AtomicUsize::new(0);
    wait_until(what, DEADLINE, || async {
        let id = format!(
            "probe-{}",
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let response = daemon
            .post_webhook("demo", &message_event(&id, "user-1", "hi"))
            .await
            .expect("reaches the daemon");
        response.status().as_u16() == expected
    })
    .await;
}

#[tokio::test]
async fn a_real_daemon_applies_an_edited_config_file_without_a_signal() {
    let receiver = MockServer::start().await;
    let setup = Setup::new(&receiver.uri(), &[0, 50]);
    let daemon = setup.start().await;
    wait_for_status(&daemon, "the channel takes webhooks", 200).await;
    let text = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        text.replace("reopen = true", "reopen = true\nenabled = false"),
    )
    .unwrap();
    wait_for_status(&daemon, "the file change disables the channel", 503).await;
}

#[tokio::test]
async fn a_real_daemon_reloads_its_config_on_sighup() {
    let receiver = MockServer::start().await;
    let setup = Setup::new(&receiver.uri(), &[0, 50]);
    // With the watcher off, only the signal can apply the edit.
    let text = std::fs::read_to_string(&setup.config).unwrap() + "\n[reload]\nwatch = false\n";
    std::fs::write(&setup.config, &text).unwrap();
    let daemon = setup.start().await;
    wait_for_status(&daemon, "the channel takes webhooks", 200).await;
    std::fs::write(
        &setup.config,
        text.replace("reopen = true", "reopen = true\nenabled = false"),
    )
    .unwrap();
    daemon.hangup();
    wait_for_status(&daemon, "SIGHUP disables the channel", 503).await;
}

// ---- operations: metrics, logs, signals, health -------------------------------------------

impl Daemon {
    /// Waits until the daemon's log has a line containing `needle`.
    async fn wait_for_log(&self, needle: &str) {
        wait_until(&format!("the log says {needle:?}"), DEADLINE, || async {
            self.log_text().contains(needle)
        })
        .await;
    }

    async fn metrics(&self) -> Metrics {
        let response = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(response.status(), 200);
        Metrics(response.text().await.expect("metrics text"))
    }
}

/// A scrape of `/metrics` in the Prometheus text format.
struct Metrics(String);

impl Metrics {
    /// Whether the scrape declares this metric family (`# TYPE name …`).
    fn has_family(&self, name: &str) -> bool {
        self.0
            .lines()
            .any(|l| l.strip_prefix("# TYPE ").and_then(|t| t.split(' ').next()) == Some(name))
    }

    /// The sum of the samples of `name` whose labels include every one of `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (series_name, series_labels) = match series.split_once('{') {
                    Some((n, rest)) => (n, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                let matches = series_name == name
                    && labels.iter().all(|(k, v)| {
                        series_labels
                            .split(',')
                            .any(|p| p == format!("{k}=\"{v}\""))
                    });
                matches.then(|| value.parse::<f64>().expect("a sample value"))
            })
            .sum()
    }
}

/// A webhook sent over a raw connection in two halves, so that it is in flight (its
/// body half read) for as long as the test wants.
struct HalfSentWebhook {
    stream: tokio::net::TcpStream,
    rest: Vec<u8>,
}

impl HalfSentWebhook {
    async fn start(port: u16, event: &Value) -> Self {
        use tokio::io::AsyncWriteExt;
        let body = event.to_string().into_bytes();
        let key = WebhookKey::parse(&secret()).unwrap();
        let id = format!("evt_{}", ulid::Ulid::new());
        let ts = chrono::Utc::now().timestamp();
        let head = format!(
            "POST /hooks/demo HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nwebhook-id: {id}\r\nwebhook-timestamp: {ts}\r\n\
             webhook-signature: {}\r\nconnection: close\r\n\r\n",
            body.len(),
            key.sign(&id, ts, &body)
        );
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to the daemon");
        let half = body.len() / 2;
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body[..half]).await.unwrap();
        stream.flush().await.unwrap();
        Self {
            stream,
            rest: body[half..].to_vec(),
        }
    }

    /// Sends the rest of the body and returns the answer's status and body.
    async fn finish(mut self) -> (u16, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.stream.write_all(&self.rest).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(DEADLINE, self.stream.read_to_end(&mut answer))
            .await
            .expect("the answer within the deadline")
            .expect("read the answer");
        let answer = String::from_utf8_lossy(&answer);
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {answer:?}"));
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }
}

fn set_grace(setup: &Setup, millis: u64) {
    let text = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        text.replace(
            "shutdown_grace_ms = 5000",
            &format!("shutdown_grace_ms = {millis}"),
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_requests_in_flight_refuses_new_ones_and_loses_none() {
    let receiver = MockServer::start().await;
    answer_outbound(&receiver, 200).await;
    let setup = Setup::new(&receiver.uri(), &[0, 50, 100]);
    let mut daemon = setup.start().await;

    // A webhook whose body is half sent when the signal comes.
    let slow = HalfSentWebhook::start(
        setup.port,
        &message_event("app-slow", "user-slow", "in flight"),
    )
    .await;
    // And a stream of webhooks from several senders, running across the signal.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let senders: Vec<_> = (0..8)
        .map(|sender| {
            let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
            let url = daemon.url("/hooks/demo");
            let http = daemon.http.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let id = format!("app-{sender}-{i}");
                    let event = message_event(&id, &format!("user-{sender}"), "hello");
                    match post_signed(&http, &url, &event).await {
                        Ok(r) if r.status() == 200 => acknowledged.lock().await.push(id),
                        Ok(_) => {}
                        // Refused: the daemon stopped accepting.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    wait_until("webhooks flow", DEADLINE, || async {
        acknowledged.lock().await.len() >= 20
    })
    .await;

    daemon.terminate();
    daemon.wait_for_log("SIGTERM: draining").await;
    // New connections are refused while the half-sent webhook is still in flight.
    wait_until("new connections are refused", DEADLINE, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", setup.port))
            .await
            .is_err()
    })
    .await;
    let (status, receipt) = slow.finish().await;
    assert_eq!(status, 200, "the request in flight is answered: {receipt}");
    assert_eq!(receipt["stored"], 1);
    stop.store(true, Ordering::SeqCst);
    for sender in senders {
        sender.await.unwrap();
    }
    let status = daemon.wait_exit(DEADLINE).await;
    assert_eq!(status.code(), Some(0), "the drain exits 0: {status:?}");

    let daemon = setup.start().await;
    let stored: HashSet<String> = daemon.inbound_ids().await.into_iter().collect();
    let mut expected = acknowledged.lock().await.clone();
    expected.push("app-slow".into());
    let lost: Vec<_> = expected.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged webhooks lost: {lost:?}",
        lost.len(),
        expected.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_never_finishes_does_not_hold_the_drain_past_the_grace() {
    let receiver = MockServer::start().await;
    let setup = Setup::new(&receiver.uri(), &[0]);
    set_grace(&setup, 500);
    let mut daemon = setup.start().await;
    // Its body never arrives in full.
    let _stuck = HalfSentWebhook::start(
        setup.port,
        &message_event("app-stuck", "user-1", "never finished"),
    )
    .await;
    daemon.terminate();
    let status = daemon.wait_exit(DEADLINE).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        daemon
            .log_text()
            .contains("Requests still running at the end of the drain"),
        "the cut is logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_exits_at_once_while_the_drain_waits() {
    let receiver = MockServer::start().await;
    // The app holds every reply for ten minutes, and the drain would wait as long.
    answer_outbound_after(&receiver, 200, Duration::from_secs(600)).await;
    let setup = Setup::new(&receiver.uri(), &[0]);
    set_grace(&setup, 600_000);
    let text = std::fs::read_to_string(&setup.config)
        .unwrap()
        .replace("timeout_ms = 2000", "timeout_ms = 600000")
        .replace("lease_ms = 30000", "lease_ms = 1200000");
    std::fs::write(&setup.config, text).unwrap();
    let mut daemon = setup.start().await;
    let response = daemon
        .post_webhook("demo", &message_event("app-1", "user-1", "hi"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let conversation = daemon.conversations().await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    daemon.reply(&conversation, "held by the app").await;
    wait_until("the reply is being sent", DEADLINE, || async {
        !delivered(&receiver).await.is_empty()
    })
    .await;

    daemon.terminate();
    daemon.wait_for_log("SIGTERM: draining").await;
    daemon.terminate();
    let status = daemon.wait_exit(DEADLINE).await;
    assert_eq!(
        status.code(),
        Some(143),
        "128 + SIGTERM, as a shell reports it: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_every_listed_series_and_they_move_with_traffic() {
    use wiremock::matchers::body_string_contains;
    let receiver = MockServer::start().await;
    // "flaky" fails once then goes through; "refused" is refused for good.
    Mock::given(method("POST"))
        .and(body_string_contains("flaky"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("flaky"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("refused"))
        .respond_with(ResponseTemplate::new(400))
        .mount(&receiver)
        .await;
    let setup = Setup::new(&receiver.uri(), &[0, 50, 100]);
    let daemon = setup.start().await;

    let before = daemon.metrics().await;
    let families = [
        "channel_bridge_webhooks_received_total",
        "channel_bridge_messages_stored_total",
        "channel_bridge_messages_duplicate_total",
        "channel_bridge_ingest_seconds",
        "channel_bridge_webhook_events",
        "channel_bridge_commit_batch_size",
        "channel_bridge_deliveries_total",
        "channel_bridge_delivery_seconds",
        "channel_bridge_queue_pending_jobs",
        "channel_bridge_queue_dead_jobs",
        "channel_bridge_queue_oldest_due_seconds",
        "channel_bridge_config_reload_total",
        "channel_bridge_assignments_total",
        "channel_bridge_open_conversations",
        "channel_bridge_build_info",
    ];
    for family in families {
        assert!(before.has_family(family), "{family} before any traffic");
    }
    assert_eq!(
        before.value(
            "channel_bridge_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    // Three new conversations, a redelivery and a forgery.
    for user in ["a", "b", "c"] {
        let response = daemon
            .post_webhook("demo", &message_event(&format!("in-{user}"), user, "hi"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let again = daemon
        .post_webhook("demo", &message_event("in-a", "a", "hi"))
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let forged = daemon
        .http
        .post(daemon.url("/hooks/demo"))
        .header("content-type", "application/json")
        .header("webhook-id", "evt_forged")
        .header(
            "webhook-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )
        .header("webhook-signature", "v1,Zm9yZ2Vk")
        .body(message_event("in-x", "x", "forged").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);

    // One reply goes out after a retry, one is dead-lettered.
    let conversations = daemon.conversations().await;
    let by_user = |user: &str| {
        conversations
            .iter()
            .find(|c| c["contact"]["identifiers"][0]["value"] == user)
            .and_then(|c| c["id"].as_str())
            .unwrap_or_else(|| panic!("no conversation of {user}: {conversations:?}"))
            .to_owned()
    };
    let flaky = daemon.reply(&by_user("a"), "flaky").await;
    daemon.reply(&by_user("b"), "refused").await;
    wait_until("one reply sent and one dead", DEADLINE, || async {
        let sent = daemon
            .messages(&by_user("a"))
            .await
            .iter()
            .any(|m| m["id"] == flaky.as_str() && m["delivery"]["status"] == "sent");
        sent && daemon.deliveries("dead").await.len() == 1
    })
    .await;

    // With the channel disabled, a reply waits in the queue, due.
    let text = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        text.replace("reopen = true", "reopen = true\nenabled = false"),
    )
    .unwrap();
    daemon.hangup();
    wait_for_status(&daemon, "the reload disables the channel", 503).await;
    daemon.reply(&by_user("c"), "waiting").await;
    wait_until(
        "the waiting reply has been due a while",
        DEADLINE,
        || async {
            daemon
                .metrics()
                .await
                .value("channel_bridge_queue_oldest_due_seconds", &[])
                > 0.0
        },
    )
    .await;

    let after = daemon.metrics().await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let demo = [("channel", "demo")];
    assert!(moved("channel_bridge_webhooks_received_total", &demo) >= 4.0);
    assert_eq!(
        moved(
            "channel_bridge_webhooks_rejected_total",
            &[("channel", "demo"), ("reason", "invalid_signature")]
        ),
        1.0
    );
    assert!(
        moved(
            "channel_bridge_webhooks_rejected_total",
            &[("channel", "demo"), ("reason", "channel_disabled")]
        ) >= 1.0
    );
    assert!(moved("channel_bridge_messages_stored_total", &demo) >= 3.0);
    assert_eq!(moved("channel_bridge_messages_duplicate_total", &demo), 1.0);
    assert!(moved("channel_bridge_ingest_seconds_count", &demo) >= 4.0);
    assert!(moved("channel_bridge_ingest_seconds_sum", &demo) > 0.0);
    assert!(moved("channel_bridge_commit_batch_size_count", &[]) >= 1.0);
    let outcome = |o: &'static str| [("channel", "demo"), ("outcome", o)];
    assert!(moved("channel_bridge_deliveries_total", &outcome("sent")) >= 1.0);
    assert!(moved("channel_bridge_deliveries_total", &outcome("retry")) >= 1.0);
    assert_eq!(
        moved("channel_bridge_deliveries_total", &outcome("dead")),
        1.0
    );
    assert!(moved("channel_bridge_delivery_seconds_count", &demo) >= 3.0);
    assert!(after.value("channel_bridge_queue_pending_jobs", &[]) >= 1.0);
    assert_eq!(after.value("channel_bridge_queue_dead_jobs", &[]), 1.0);
    assert!(after.value("channel_bridge_queue_oldest_due_seconds", &[]) > 0.0);
    assert!(moved("channel_bridge_config_reload_total", &[("result", "ok")]) >= 1.0);
    // The channel assigns nobody: each new conversation is a decision left unassigned.
    assert!(
        moved(
            "channel_bridge_assignments_total",
            &[("rule", "nobody"), ("result", "unassigned")]
        ) >= 3.0
    );
    assert!(after.value("channel_bridge_open_conversations", &demo) >= 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_parse_and_carry_the_request_and_job_span_fields() {
    let receiver = MockServer::start().await;
    // Every send fails, so the job logs its attempts.
    answer_outbound(&receiver, 500).await;
    let setup = Setup::new(&receiver.uri(), &[0, 50]);
    let daemon = setup
        .start_with_env(&[
            ("CHANNEL_BRIDGE_LOG_FORMAT", "json"),
            // Warnings only, plus the per-request lines: spans are there at any level.
            ("RUST_LOG", "warn,channel_bridge::request=debug"),
        ])
        .await;

    // A caller's own request id is kept and returned.
    let forged = daemon
        .http
        .post(daemon.url("/hooks/demo"))
        .header("x-request-id", "proxy-req-42")
        .header("content-type", "application/json")
        .header("webhook-id", "evt_forged")
        .header(
            "webhook-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )
        .header("webhook-signature", "v1,Zm9yZ2Vk")
        .body(message_event("in-x", "x", "forged").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert_eq!(forged.headers()["x-request-id"], "proxy-req-42");
    // Without one, the daemon makes one.
    let stored = daemon
        .post_webhook("demo", &message_event("in-1", "user-1", "hi"))
        .await
        .unwrap();
    assert_eq!(stored.status(), 200);
    let request_id = stored.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(request_id.starts_with("req_"), "{request_id}");
    let conversation = daemon.conversations().await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    daemon.reply(&conversation, "never arrives").await;
    wait_until("the reply is dead", DEADLINE, || async {
        daemon.deliveries("dead").await.len() == 1
    })
    .await;
    daemon.wait_for_log("Delivery dead-lettered").await;

    let lines: Vec<Value> = daemon
        .log_text()
        .lines()
        .map(|line| {
            let parsed: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            for key in ["timestamp", "level", "message", "target"] {
                assert!(parsed.get(key).is_some(), "no {key} in {line}");
            }
            parsed
        })
        .collect();
    let find = |what: &str, check: &dyn Fn(&Value) -> bool| {
        lines
            .iter()
            .find(|l| check(l))
            .unwrap_or_else(|| panic!("no log line with {what} in:\n{}", daemon.log_text()))
            .clone()
    };

    let rejected = find("the rejection in the caller's request span", &|l| {
        l["message"] == "Rejected a webhook." && l["span"]["request_id"] == "proxy-req-42"
    });
    assert_eq!(rejected["span"]["name"], "request");
    assert_eq!(rejected["span"]["channel"], "demo");
    assert_eq!(rejected["span"]["path"], "/hooks/demo");

    let answered = find("the stored webhook's request span", &|l| {
        l["message"] == "Answered a request." && l["span"]["request_id"] == request_id.as_str()
    });
    assert_eq!(answered["status"], 200);
    assert_eq!(answered["span"]["channel"], "demo");
    assert_eq!(answered["span"]["conversation_id"], conversation.as_str());

    let attempt = find("a failed attempt in its job span", &|l| {
        l["message"] == "Delivery attempt failed."
    });
    assert_eq!(attempt["span"]["name"], "job");
    assert!(
        attempt["span"]["job_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("job_")),
        "{attempt}"
    );
    assert_eq!(attempt["span"]["channel"], "demo");
    assert_eq!(attempt["span"]["conversation_id"], conversation.as_str());
    assert_eq!(attempt["span"]["kind"], "deliver");
    let dead = find("the dead letter in its job span", &|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Delivery dead-lettered"))
    });
    assert_eq!(dead["level"], "ERROR");
    assert_eq!(dead["span"]["job_id"], attempt["span"]["job_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_0_when_the_daemon_answers_and_1_when_it_does_not() {
    let receiver = MockServer::start().await;
    let setup = Setup::new(&receiver.uri(), &[0]);
    let daemon = setup.start().await;
    let up = setup.run(&["healthcheck"]).await;
    assert_eq!(up.status.code(), Some(0), "{}", describe(&up));
    // The image's probe names the URL: a config edited into an invalid state (which the
    // daemon refuses, running on) does not make it fail.
    let broken = setup.dir.path().join("broken.toml");
    std::fs::write(&broken, "[server]\nlisten = \"nowhere\"\n").unwrap();
    let probe = run_cli(&broken, &["healthcheck", "--url", &daemon.base]).await;
    assert_eq!(probe.status.code(), Some(0), "{}", describe(&probe));
    drop(daemon);
    let down = setup.run(&["healthcheck"]).await;
    assert_eq!(down.status.code(), Some(1), "{}", describe(&down));
}

#[tokio::test]
async fn version_prints_the_version_and_needs_no_config() {
    let output = run_cli(Path::new("/nonexistent/config.toml"), &["version"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("channel-bridge {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// Lays out `folder` as Kubernetes mounts a ConfigMap: `config.toml` is a symlink to
/// `..data/config.toml`, and `..data` a symlink to a timestamped folder.
fn configmap_version(folder: &Path, version: &str, text: &str) {
    let data = folder.join(version);
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("config.toml"), text).unwrap();
}

#[tokio::test]
async fn a_real_daemon_reloads_when_a_configmap_swaps_its_data_folder() {
    use std::os::unix::fs::symlink;
    let receiver = MockServer::start().await;
    let mut setup = Setup::new(&receiver.uri(), &[0, 50]);
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let mount = setup.dir.path().join("configmap");
    configmap_version(&mount, "..2026_11_22_10_00_00.1", &text);
    symlink("..2026_11_22_10_00_00.1", mount.join("..data")).unwrap();
    symlink("..data/config.toml", mount.join("config.toml")).unwrap();
    setup.config = mount.join("config.toml");
    let daemon = setup.start().await;
    wait_for_status(&daemon, "the channel takes webhooks", 200).await;

    // The kubelet's update: a new folder, a new symlink renamed over ..data, the old
    // folder removed. The file the daemon was given is never written.
    configmap_version(
        &mount,
        "..2026_11_22_10_05_00.2",
        &text.replace("reopen = true", "reopen = true\nenabled = false"),
    );
    symlink("..2026_11_22_10_05_00.2", mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    std::fs::remove_dir_all(mount.join("..2026_11_22_10_00_00.1")).unwrap();
    wait_for_status(&daemon, "the swap disables the channel", 503).await;
}

/// The published dev-admin-token's hash (config/default.toml, README).
const PUBLISHED_ADMIN_HASH: &str =
    "1734d503f6aa6a047c36d113cbad769f719c93784b469b771c4c3e7c63adbefd";

/// Rewrites the setup's config: `from` becomes `to` (which must change the text).
fn edit_config(setup: &Setup, from: &str, to: &str) {
    let text = std::fs::read_to_string(&setup.config).expect("read the config");
    assert!(text.contains(from), "the config has no {from:?}");
    std::fs::write(&setup.config, text.replace(from, to)).expect("write the config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_public_address_with_a_published_dev_token_unless_allowed() {
    let setup = Setup::new("http://127.0.0.1:9", &[0]);
    edit_config(
        &setup,
        &format!("listen = \"127.0.0.1:{}\"", setup.port),
        &format!("listen = \"0.0.0.0:{}\"", setup.port),
    );
    edit_config(&setup, &sha256(ADMIN_TOKEN), PUBLISHED_ADMIN_HASH);

    let refused = setup.run(&["serve"]).await;
    let text = describe(&refused);
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(
        text.contains("refusing to listen on 0.0.0.0:")
            && text.contains(
                "api.tokens \"test-admin\".sha256 (the hash of the published dev-admin-token)"
            )
            && text.contains("--allow-dev-credentials"),
        "the refusal names the address, the key and the way out: {text}"
    );
    assert!(!setup.db.exists(), "a refused start created the database");

    // The explicit opt-in for a demo: it serves (0.0.0.0 includes 127.0.0.1).
    let daemon = setup
        .start_with_env(&[("CHANNEL_BRIDGE_ALLOW_DEV_CREDENTIALS", "true")])
        .await;
    let answer = daemon
        .http
        .get(format!("{}/api/v1/conversations", daemon.base))
        .bearer_auth("dev-admin-token")
        .send()
        .await
        .expect("the daemon answers");
    assert_eq!(answer.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_loopback_with_published_credentials_starts_as_before() {
    let setup = Setup::new("http://127.0.0.1:9", &[0]);
    edit_config(&setup, &sha256(ADMIN_TOKEN), PUBLISHED_ADMIN_HASH);
    let daemon = setup.start().await;
    let answer = daemon
        .http
        .get(format!("{}/healthz", daemon.base))
        .send()
        .await
        .expect("the daemon answers");
    assert_eq!(answer.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_whose_port_is_taken_fails_and_creates_nothing_on_disk() {
    let setup = Setup::new("http://127.0.0.1:9", &[0]);
    let data = setup.dir.path().join("data");
    edit_config(
        &setup,
        &setup.db.display().to_string(),
        &data.join("bridge.db").display().to_string(),
    );
    let _taken = std::net::TcpListener::bind(("127.0.0.1", setup.port)).expect("occupy the port");

    let output = setup.run(&["serve"]).await;
    let text = describe(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("cannot listen on 127.0.0.1:"), "{text}");
    assert!(
        !data.exists(),
        "data/ was created by a daemon that never listened: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_config_file_it_warns_where_it_looked_and_refuses_a_public_address() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CHANNEL_BRIDGE") {
            command.env_remove(name);
        }
    }
    command
        .current_dir(cwd.path())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        // As in a container: every interface, port chosen by the system.
        .env("CHANNEL_BRIDGE__SERVER__LISTEN", "0.0.0.0:0")
        .arg("serve");
    let mut command = tokio::process::Command::from(command);
    command.stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(DEADLINE, command.output())
        .await
        .expect("a refused start exits at once")
        .expect("the binary runs");
    let text = describe(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let looked = cwd.path().join("config/default.toml");
    assert!(
        text.contains("BUILT-IN DEFAULT CONFIG") && text.contains(&looked.display().to_string()),
        "a loud warning says where it looked: {text}"
    );
    for key in [
        "api.tokens \"dev-admin\".sha256",
        "api.tokens \"dev-rep\".sha256",
        "channels.demo.secret",
    ] {
        assert!(text.contains(key), "the refusal names {key}: {text}");
    }
    assert!(
        std::fs::read_dir(cwd.path())
            .expect("list the cwd")
            .next()
            .is_none(),
        "a refused start created files in its working directory: {text}"
    );
}

/// `hubspot status` of the real binary beside a running daemon on SQLite: it reads the
/// outbox read-only while the daemon's writer owns the file, and exits 1 once a publish
/// is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_status_reads_the_queue_beside_a_running_daemon_and_exits_1_on_dead_letters() {
    use support::hubspot_fake::{self, HubspotFake};
    let fake = HubspotFake::start().await;
    let setup = Setup::new("http://127.0.0.1:9", &[0, 50, 100]);
    edit_config(
        &setup,
        "reopen = true\n",
        &format!(
            "reopen = true\nhubspot = {{ channel_account_id = \"{}\" }}\n\n{}",
            hubspot_fake::CHANNEL_ACCOUNT_ID,
            fake.config_section("")
        ),
    );
    let daemon = setup.start().await;

    let output = setup.run(&["hubspot", "status"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("Token: static access token, valid"), "{text}");
    assert!(text.contains("All good."), "{text}");

    // HubSpot refuses the publish: it is dead-lettered on its first attempt.
    fake.fail_next(
        "/messages",
        400,
        &[],
        json!({"status": "error", "category": "VALIDATION_ERROR",
               "correlationId": "00000000-0000-4000-8000-000000000000", "message": "no"}),
        1,
    );
    let response = daemon
        .post_webhook("demo", &message_event("hs-1", "user-1", "hello"))
        .await
        .expect("webhook reaches the daemon");
    assert_eq!(response.status(), 200);
    wait_until("the publish is dead-lettered", DEADLINE, || async {
        daemon.deliveries("dead").await.len() == 1
    })
    .await;

    let output = setup.run(&["hubspot", "status", "--json"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let status: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("status prints JSON ({e}):\n{}", describe(&output)));
    let demo = status["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .find(|c| c["channel"] == "demo")
        .cloned()
        .expect("demo is listed");
    assert_eq!(demo["queue"], json!({"pending": 0, "dead": 1}), "{status}");
    assert_eq!(demo["account"]["authorized"], true, "{status}");
    assert_eq!(status["token"]["state"], "valid", "{status}");
    assert!(
        status["needs_attention"][0]
            .as_str()
            .is_some_and(|a| a.contains("dead letters")),
        "{status}"
    );
    // The daemon is unaffected.
    let response = daemon
        .post_webhook("demo", &message_event("hs-2", "user-2", "still here"))
        .await
        .expect("webhook reaches the daemon");
    assert_eq!(response.status(), 200);
}

/// `hubspot connect` of the real binary: the link line on stdout and exit 0, or the
/// error on stderr and a non-zero exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_connect_prints_the_link_line_or_fails_with_a_non_zero_exit() {
    use support::hubspot_fake::{self, HubspotFake};
    let fake = HubspotFake::start().await;
    let setup = Setup::new("http://127.0.0.1:9", &[0]);
    edit_config(
        &setup,
        "reopen = true\n",
        &format!("reopen = true\n\n{}", fake.config_section("")),
    );

    let output = setup
        .run(&[
            "hubspot",
            "connect",
            "--channel",
            "nope",
            "--inbox",
            "3003",
            "--name",
            "x",
        ])
        .await;
    assert_ne!(output.status.code(), Some(0), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no channel \"nope\""),
        "{}",
        describe(&output)
    );

    let args = [
        "hubspot",
        "connect",
        "--channel",
        "demo",
        "--inbox",
        "3003",
        "--name",
        "Demo",
    ];
    let output = setup.run(&args).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = format!(
        "hubspot = {{ channel_account_id = \"{}\" }}",
        fake.accounts().last().expect("an account")["id"]
            .as_str()
            .expect("its id")
    );
    assert!(stdout.contains(&line), "{}", describe(&output));
    // Run again: found, not created twice.
    let output = setup.run(&args).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(fake.accounts().len(), 2, "{:#?}", fake.accounts());
    assert_eq!(hubspot_fake::CHANNEL_ACCOUNT_ID, fake.accounts()[0]["id"]);
    fake.assert_no_violations();
}
