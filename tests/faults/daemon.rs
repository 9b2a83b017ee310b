//! The real `channel-bridge` binary as a child process, for fault tests: a config and
//! database in a temp dir, logs in a file, and the calls a platform or a rep would make.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use channel_bridge::adapters::signature::WebhookKey;
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_channel-bridge");
pub const ADMIN_TOKEN: &str = "faults-admin-token";
pub const REP_TOKEN: &str = "faults-rep-token";
/// How long the daemon may take to start, to exit, or to finish queued work.
pub const DEADLINE: Duration = Duration::from_secs(60);
pub const POLL: Duration = Duration::from_millis(50);

pub fn secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(b"faults-test-secret-key-01234567")
    )
}

pub fn sha256(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// A port nothing listens on right now (the daemon must listen on a port known up front).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("bound address").port()
}

/// A config for one daemon and its restarts.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub config: PathBuf,
    pub db: PathBuf,
    /// Extra environment for the daemon.
    pub env: Vec<(String, String)>,
}

impl Setup {
    /// A generic `demo` channel sending to `{receiver}/outbound`; `extra` is appended to
    /// the config and `server_extra` to its `[server]` table. The database lives in
    /// `<dir>/data/`.
    pub fn new(receiver: &str, schedule: &[u64], server_extra: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let db = dir.path().join("data").join("bridge.db");
        let config = dir.path().join("config.toml");
        let text = format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "https://bridge.example.test"
max_body_bytes = 262144
shutdown_grace_ms = 5000
{server_extra}

[storage]
url = "sqlite://{db}"

[[api.tokens]]
name = "faults-admin"
role = "admin"
sha256 = "{admin}"

[[api.tokens]]
name = "faults-rep"
role = "rep"
sha256 = "{rep}"

[delivery]
retry_schedule_ms = {schedule:?}
timeout_ms = 2000
# Longer than any test: a lease left by a killed process is taken back at start-up.
lease_ms = 600000

[channels.demo]
kind = "generic"
secret = "{secret}"
outbound_url = "{receiver}/outbound"

{extra}
"#,
            db = db.display(),
            admin = sha256(ADMIN_TOKEN),
            rep = sha256(REP_TOKEN),
            secret = secret(),
        );
        std::fs::write(&config, text).expect("write the config");
        Self {
            dir,
            port,
            config,
            db,
            env: Vec::new(),
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// `channel-bridge --config FILE serve`, ready to spawn (JSON logs to the log file).
    pub fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        command.arg("--config").arg(&self.config).arg("serve");
        self.prepare(&mut command);
        command
    }

    /// Clears the test run's own CHANNEL_BRIDGE_* env and sends the logs to the log file.
    pub fn prepare(&self, command: &mut Command) {
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CHANNEL_BRIDGE") {
                command.env_remove(name);
            }
        }
        command
            .env("RUST_LOG", "info")
            .env("CHANNEL_BRIDGE_LOG_FORMAT", "json")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the daemon log");
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log);
    }

    /// Starts the daemon and waits until /healthz answers.
    pub async fn start(&self) -> Daemon {
        self.start_with(self.command()).await
    }

    /// Starts `command` (which must run the daemon on this config) and waits for it.
    pub async fn start_with(&self, mut command: Command) -> Daemon {
        let child = command.spawn().expect("the binary starts");
        let mut daemon = Daemon {
            child,
            base: self.base(),
            log: self.log_path(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("HTTP client"),
        };
        daemon.wait_ready().await;
        daemon
    }
}

/// A running daemon. Dropping it kills the process; a failing test prints its log.
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
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!(
                "--- daemon log, last lines ({}) ---\n{}",
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

impl Daemon {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
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
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("the daemon exited before it was ready: {status:?}\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not answer /healthz within {DEADLINE:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGKILL: no chance to flush, drain or release anything.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the daemon");
        self.child.wait().expect("reap the daemon");
    }

    /// POSTs an event to /hooks/demo, signed now.
    pub async fn post_webhook(&self, event: &Value) -> reqwest::Result<reqwest::Response> {
        post_signed(&self.http, &self.url("/hooks/demo"), event).await
    }

    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: &str,
    ) -> reqwest::Result<(u16, Value)> {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self
            .api(reqwest::Method::GET, path, None, ADMIN_TOKEN)
            .await
            .expect("the daemon answers");
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
            all.extend(self.messages(conversation["id"].as_str().unwrap()).await);
        }
        all
    }

    pub async fn deliveries(&self, state: &str) -> Vec<Value> {
        self.all(&format!("/api/v1/deliveries?state={state}")).await
    }
}

/// POSTs an event to a webhook URL, signed now with the channel secret.
pub async fn post_signed(
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

/// The file `path` as the daemon with `pid` sees it (inside its mount namespace).
pub fn inside(pid: u32, path: &Path) -> PathBuf {
    Path::new(&format!("/proc/{pid}/root")).join(path.strip_prefix("/").unwrap_or(path))
}
