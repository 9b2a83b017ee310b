//! Tests that run the real `channel-bridge` binary as a child process: crash safety
//! (SIGKILL), graceful shutdown (SIGTERM) and the CLI subcommands, on 127.0.0.1 with a
//! throw-away config and SQLite file, and a wiremock server playing the in-house app.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use channel_bridge::adapters::signature::WebhookKey;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BIN: &str = env!("CARGO_BIN_EXE_channel-bridge");
const ADMIN_TOKEN: &str = "process-admin-token";
const REP_TOKEN: &str = "process-rep-token";
/// How long the daemon may take to answer /healthz, to exit, or to finish queued work.
const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

fn secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(b"process-test-secret-key-0123456")
    )
}

fn sha256(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// A port nothing listens on right now (the daemon must listen on a port known up front).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("bound address").port()
}

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
        let log_path = self.dir.path().join("daemon.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open the daemon log");
        let child = cli_command(&self.config)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("the binary starts");
        let mut daemon = Daemon {
            child,
            base: self.base(),
            log: log_path,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
        };
        daemon.wait_ready().await;
        daemon
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
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CHANNEL_BRIDGE") {
            command.env_remove(name);
        }
    }
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

/// A running daemon. Dropping it kills the process, so a failing test leaves nothing behind
/// (and prints the daemon's log to help find out why).
struct Daemon {
    child: Child,
    base: String,
    log: PathBuf,
    http: reqwest::Client,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- daemon log ({}) ---\n{log}", self.log.display());
        }
    }
}

impl Daemon {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(response) = self.http.get(self.url("/healthz")).send().await
                && response.status().is_success()
            {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("query the child") {
                panic!("the daemon exited before it was ready: {status:?}");
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not answer /healthz within {DEADLINE:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGKILL: no chance to flush, drain or release anything.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the daemon");
        self.child.wait().expect("reap the daemon");
    }

    /// SIGHUP: reload the config.
    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -HUP failed: {status:?}");
    }

    /// SIGTERM, sent the way an orchestrator does.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status:?}");
    }

    /// Waits for the process to exit on its own.
    async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("query the child") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit within {within:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// POSTs an event to /hooks/{channel}, signed now with the channel secret.
    async fn post_webhook(
        &self,
        channel: &str,
        event: &Value,
    ) -> reqwest::Result<reqwest::Response> {
        post_signed(&self.http, &self.url(&format!("/hooks/{channel}")), event).await
    }

    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: &str,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request reaches the daemon");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self
            .api(reqwest::Method::GET, path, None, ADMIN_TOKEN)
            .await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Every item of a list endpoint, following `next_cursor` to the end.
    async fn all(&self, path: &str) -> Vec<Value> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{path}{separator}limit=200");
            if let Some(cursor) = &cursor {
                url += &format!("&cursor={cursor}");
            }
            let page = self.get(&url).await;
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return items,
            }
        }
    }

    async fn conversations(&self) -> Vec<Value> {
        self.all("/api/v1/conversations").await
    }

    async fn messages(&self, conversation: &str) -> Vec<Value> {
        self.all(&format!("/api/v1/conversations/{conversation}/messages"))
            .await
    }

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

    async fn deliveries(&self, state: &str) -> Vec<Value> {
        self.all(&format!("/api/v1/deliveries?state={state}")).await
    }
}

/// POSTs an event to a webhook URL, signed as harness.rs `post_signed` does.
async fn post_signed(
    http: &reqwest::Client,
    url: &str,
    event: &Value,
) -> reqwest::Result<reqwest::Response> {
    let body = event.to_string().into_bytes();
    let key = WebhookKey::parse(&secret()).unwrap();
    let id = format!("evt_{}", ulid::Ulid::new());
    let ts = chrono::Utc::now().timestamp();
    let signature = key.sign(&id, ts, &body);
    http.post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
}

fn message_event(id: &str, user: &str, text: &str) -> Value {
    json!({
        "type": "message", "id": id,
        "from": {"id": user},
        "parts": [{"type": "text", "text": text}]
    })
}

/// Polls `check` until it holds, failing the test after `timeout`.
async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(POLL).await;
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
