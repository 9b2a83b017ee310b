//! What every test binary needs to run the daemon or speak to it: a free port, the test
//! secret and token hashes, signed webhooks, polling, and `Daemon`, the real
//! `channel-bridge` binary as a child process. Included by each binary with `mod support;`
//! (or `#[path]`), so one copy serves `tests/process.rs`, `tests/faults`, `tests/it`,
//! `tests/replicas.rs`, `tests/console` and `tests/walkthrough.rs`.

// Each test binary uses a part of this module; the rest is dead code to that binary.
#![allow(dead_code)]

pub mod fixtures;
pub mod hubspot_fake;

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use base64::Engine;
use channel_bridge::adapters::signature::WebhookKey;
use serde_json::{Value, json};

/// The admin and rep bearer tokens every test config lists (by their hashes).
pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const REP_TOKEN: &str = "test-rep-token";
/// The daemon binary Cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_channel-bridge");
/// How often a wait looks again.
pub const POLL: Duration = Duration::from_millis(50);
/// How long a daemon may take to answer `/healthz` after it is spawned (a loaded CI
/// machine builds and runs several test binaries at once).
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// The `demo` channel's Standard Webhooks secret in every test config.
pub fn secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(b"channel-bridge-test-secret-key!")
    )
}

/// The hex SHA-256 of a token, as `[[api.tokens]]` takes it.
pub fn sha256(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// A port nothing listens on right now (a daemon must listen on a port known up front).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("bound address").port()
}

/// Takes the test run's own `CHANNEL_BRIDGE*` variables out of a child's environment, so
/// a developer's shell cannot change the config a test wrote.
pub fn clear_bridge_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CHANNEL_BRIDGE") {
            command.env_remove(name);
        }
    }
}

/// One HTTP call, with `token` as the bearer when given: the status and the body (JSON, or
/// the text as a string).
pub async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut request = http.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .expect("the request reaches the daemon");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// POSTs an event to a webhook URL, signed now with [`secret`].
pub async fn post_signed(
    http: &reqwest::Client,
    url: &str,
    event: &Value,
) -> reqwest::Result<reqwest::Response> {
    let body = event.to_string().into_bytes();
    let key = WebhookKey::parse(&secret()).expect("the test secret parses");
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

/// A generic-channel text message from `user`.
pub fn message_event(id: &str, user: &str, text: &str) -> Value {
    json!({
        "type": "message", "id": id,
        "from": {"id": user},
        "parts": [{"type": "text", "text": text}]
    })
}

/// Polls `check` until it holds, failing the test after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
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

/// A running daemon. Dropping it kills the process, so a failing test leaves nothing
/// behind, and prints the end of the daemon's log to help find out why.
pub struct Daemon {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
    pub http: reqwest::Client,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(200).collect();
            eprintln!(
                "--- daemon log, last lines ({}) ---\n{}",
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

impl Daemon {
    /// Spawns `command` (which runs `serve` with its output going to `log`) and waits
    /// until `/healthz` at `base` answers; `timeout` bounds each request of the test.
    pub async fn spawn(
        mut command: Command,
        base: String,
        log: PathBuf,
        timeout: Duration,
    ) -> Self {
        let child = command.spawn().expect("the binary starts");
        let mut daemon = Self {
            child,
            base,
            log,
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("HTTP client"),
        };
        daemon.wait_ready().await;
        daemon
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(response) = self.http.get(self.url("/healthz")).send().await
                && response.status().is_success()
            {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("query the child") {
                panic!(
                    "the daemon exited before it was ready: {status:?}\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not answer /healthz within {START_DEADLINE:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGKILL: no chance to flush, drain or release anything.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the daemon");
        self.child.wait().expect("reap the daemon");
    }

    /// SIGHUP: reload the config.
    pub fn hangup(&self) {
        self.signal("-HUP");
    }

    /// SIGTERM, sent the way an orchestrator does.
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    fn signal(&self, which: &str) {
        let status = Command::new("kill")
            .args([which, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {which} failed: {status:?}");
    }

    /// Waits for the process to exit on its own.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
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
    pub async fn post_webhook(
        &self,
        channel: &str,
        event: &Value,
    ) -> reqwest::Result<reqwest::Response> {
        post_signed(&self.http, &self.url(&format!("/hooks/{channel}")), event).await
    }

    /// One API call as `token`: the status and the body (JSON, or the text as a string).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: &str,
    ) -> (u16, Value) {
        call(&self.http, method, &self.url(path), body, Some(token)).await
    }

    /// GET as the admin, which must answer 200.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self
            .api(reqwest::Method::GET, path, None, ADMIN_TOKEN)
            .await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Every item of a list endpoint, following `next_cursor` to the end.
    pub async fn all(&self, path: &str) -> Vec<Value> {
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

    pub async fn conversations(&self) -> Vec<Value> {
        self.all("/api/v1/conversations").await
    }

    pub async fn messages(&self, conversation: &str) -> Vec<Value> {
        self.all(&format!("/api/v1/conversations/{conversation}/messages"))
            .await
    }

    /// Every stored message, across all conversations.
    pub async fn all_messages(&self) -> Vec<Value> {
        let mut all = Vec::new();
        for conversation in self.conversations().await {
            let id = conversation["id"].as_str().expect("conversation id");
            all.extend(self.messages(id).await);
        }
        all
    }

    /// The outbox's deliveries in `state` (`pending`, `dead`, …).
    pub async fn deliveries(&self, state: &str) -> Vec<Value> {
        self.all(&format!("/api/v1/deliveries?state={state}")).await
    }
}
