//! `TestApp`: spawns the app on a random port with a throw-away SQLite file and a wiremock
//! server playing the in-house app, and speaks the domain: post a webhook, reply, wait.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use channel_bridge::App;
use channel_bridge::adapters::signature::WebhookKey;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wiremock::MockServer;

pub use crate::support::{ADMIN_TOKEN, REP_TOKEN, secret, sha256, wait_until};

/// Knobs a test may turn; everything else is the test default.
#[derive(Clone)]
pub struct Options {
    pub retry_schedule_ms: Vec<u64>,
    pub timeout_ms: u64,
    pub max_body_bytes: usize,
    pub threading: &'static str,
    pub reopen: bool,
    /// Replaces the outbound URL (default: the wiremock server's /outbound).
    pub outbound_url: Option<String>,
    /// Extra TOML appended to the config.
    pub extra: String,
    pub demo_enabled: bool,
    /// The demo channel's secret (default: [`secret`]).
    pub demo_secret: Option<String>,
    pub listen: String,
    /// Extra keys for the `[server]` table.
    pub server_extra: String,
    /// `delivery.poll_ms`: the longest the worker waits between looks for due jobs.
    pub poll_ms: u64,
    /// Extra keys for the `[delivery]` table.
    pub delivery_extra: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            retry_schedule_ms: vec![0, 50, 100, 200],
            timeout_ms: 2000,
            max_body_bytes: 64 * 1024,
            threading: "per_contact",
            reopen: true,
            outbound_url: None,
            extra: String::new(),
            demo_enabled: true,
            demo_secret: None,
            listen: "127.0.0.1:0".into(),
            server_extra: String::new(),
            poll_ms: 5000,
            delivery_extra: String::new(),
        }
    }
}

/// The `[storage]` keys: SQLite in the test's folder, or, with
/// `CHANNEL_BRIDGE_TEST_STORE=postgres`, a schema of its own on `CHANNEL_BRIDGE_TEST_PG`
/// named after that folder (so a restart finds the same data).
fn storage_section(db: &std::path::Path) -> String {
    match postgres_url() {
        Some(url) => {
            // Connections carry the schema as their name, so the cleanup can end them.
            let schema = pg_schema(db);
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("url = \"{url}{sep}application_name={schema}\"\nschema = \"{schema}\"")
        }
        None => format!("url = \"sqlite://{}\"", db.display()),
    }
}

/// Whether this run's apps store in PostgreSQL (`CHANNEL_BRIDGE_TEST_STORE=postgres`).
pub fn on_postgres() -> bool {
    postgres_url().is_some()
}

fn postgres_url() -> Option<String> {
    if std::env::var("CHANNEL_BRIDGE_TEST_STORE").as_deref() != Ok("postgres") {
        return None;
    }
    Some(
        std::env::var("CHANNEL_BRIDGE_TEST_PG").expect(
            "CHANNEL_BRIDGE_TEST_STORE=postgres needs CHANNEL_BRIDGE_TEST_PG (postgres://…)",
        ),
    )
}

fn pg_schema(db: &std::path::Path) -> String {
    let folder = db
        .parent()
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let folder: String = folder.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("it_{folder}")
}

/// A test's folder; on PostgreSQL its schema is dropped with it.
pub struct TestDir(tempfile::TempDir);

impl TestDir {
    pub fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if let Some(url) = postgres_url() {
            let schema = pg_schema(&self.0.path().join("bridge.db"));
            // An app dropped without stopping may leave a transaction open on a
            // connection that holds the schema's locks: end those connections first.
            let _ = std::process::Command::new("psql")
                .args([url.as_str(), "-q", "-c"])
                .arg(format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name = '{schema}' AND pid <> pg_backend_pid()"
                ))
                .arg("-c")
                .arg(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .output();
        }
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub runtime: channel_bridge::runtime::SharedRuntime,
    pub config_path: std::path::PathBuf,
    reload: tokio::sync::mpsc::Sender<()>,
    pub http: reqwest::Client,
    pub receiver: MockServer,
    pub options: Options,
    // Kept so the folder outlives the app.
    pub dir: Arc<TestDir>,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> Self {
        let dir = Arc::new(TestDir(tempfile::tempdir().expect("temp dir")));
        let receiver = MockServer::start().await;
        Self::start(options, dir, receiver).await
    }

    /// The config text this app runs on.
    pub fn config_text(options: &Options, db: &std::path::Path, receiver: &str) -> String {
        let outbound = options
            .outbound_url
            .clone()
            .unwrap_or_else(|| format!("{receiver}/outbound"));
        format!(
            r#"
[server]
listen = "{listen}"
public_url = "https://bridge.example.test"
max_body_bytes = {max_body}
shutdown_grace_ms = 5000
{server_extra}

[storage]
{storage}

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
timeout_ms = {timeout}
lease_ms = 30000
poll_ms = {poll_ms}
{delivery_extra}

[channels.demo]
kind = "generic"
enabled = {demo_enabled}
secret = "{demo_secret}"
outbound_url = "{outbound}"
threading = "{threading}"
reopen = {reopen}

[channels.off]
kind = "generic"
enabled = false
secret = "{secret}"
outbound_url = "{receiver}/off"

{extra}
"#,
            max_body = options.max_body_bytes,
            storage = storage_section(db),
            admin = sha256(ADMIN_TOKEN),
            rep = sha256(REP_TOKEN),
            schedule = options.retry_schedule_ms,
            timeout = options.timeout_ms,
            secret = secret(),
            threading = options.threading,
            reopen = options.reopen,
            // `{receiver}` in the extra TOML stands for the wiremock server.
            extra = options.extra.replace("{receiver}", receiver),
            listen = options.listen,
            server_extra = options.server_extra,
            poll_ms = options.poll_ms,
            delivery_extra = options.delivery_extra,
            demo_enabled = options.demo_enabled,
            demo_secret = options.demo_secret.clone().unwrap_or_else(secret),
        )
    }

    async fn start(options: Options, dir: Arc<TestDir>, receiver: MockServer) -> Self {
        let db = dir.path().join("bridge.db");
        let text = Self::config_text(&options, &db, &receiver.uri());
        let config = channel_bridge::config::load_str(&text, []).expect("test config is valid");
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, &text).expect("config file written");
        let app = App::build(config)
            .await
            .expect("app builds")
            .reload_from(config_path.clone());
        let reload = app.reload_trigger().expect("reload is set up");
        let runtime = app.runtime();
        let addr = app.local_addr();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(app.run(shutdown.clone()));
        Self {
            addr,
            runtime,
            config_path,
            reload,
            // Idle pooled connections are dropped before the shortest header timeout a
            // test sets (1 s) closes them on the daemon's side: a POST sent on a connection
            // the daemon is closing that moment is reset, and reqwest does not retry a POST.
            http: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_millis(500))
                .build()
                .expect("the test client builds"),
            receiver,
            options,
            dir,
            shutdown,
            handle: Some(handle),
        }
    }

    /// Stops the app gracefully and starts a new one on the same database and receiver.
    pub async fn restart(mut self) -> Self {
        self.stop_in_place().await;
        let TestApp {
            options,
            dir,
            receiver,
            ..
        } = self;
        Self::start(options, dir, receiver).await
    }

    async fn stop_in_place(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await.expect("app task").expect("app stops cleanly");
        }
    }

    /// Rewrites the config file with `options` (the database and receiver stay).
    pub fn write_config(&self, options: &Options) {
        let db = self.dir.path().join("bridge.db");
        let text = Self::config_text(options, &db, &self.receiver.uri());
        std::fs::write(&self.config_path, text).expect("config file written");
    }

    /// Asks for a reload as SIGHUP does, and waits until it has been applied or refused.
    pub async fn reload(&self) {
        let before = self.get("/readyz").await["config"]["last_at"].clone();
        self.reload.send(()).await.expect("the reloader runs");
        wait_until("the reload is done", Duration::from_secs(10), || async {
            self.get("/readyz").await["config"]["last_at"] != before
        })
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a body to /hooks/{channel}, signed now with the test secret.
    pub async fn post_webhook(&self, channel: &str, body: &Value) -> reqwest::Response {
        self.post_signed(
            channel,
            body.to_string().into_bytes(),
            "application/json",
            0,
        )
        .await
    }

    /// POSTs raw bytes, signed with a timestamp `skew_secs` from now.
    pub async fn post_signed(
        &self,
        channel: &str,
        body: Vec<u8>,
        content_type: &str,
        skew_secs: i64,
    ) -> reqwest::Response {
        self.post_signed_with(&secret(), channel, body, content_type, skew_secs)
            .await
    }

    /// POSTs raw bytes signed with `secret`.
    pub async fn post_signed_with(
        &self,
        secret: &str,
        channel: &str,
        body: Vec<u8>,
        content_type: &str,
        skew_secs: i64,
    ) -> reqwest::Response {
        let key = WebhookKey::parse(secret).unwrap();
        let id = format!("evt_{}", ulid::Ulid::new());
        let ts = chrono::Utc::now().timestamp() + skew_secs;
        let signature = key.sign(&id, ts, &body);
        self.http
            .post(self.url(&format!("/hooks/{channel}")))
            .header("content-type", content_type)
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .expect("request reaches the app")
    }

    /// Signs `body` for `channel` with a timestamp `skew_secs` from now, once: the
    /// request can then be sent again byte for byte, as a replay would.
    pub fn signed(&self, channel: &str, body: &Value, skew_secs: i64) -> SignedRequest {
        let key = WebhookKey::parse(&secret()).unwrap();
        let id = format!("evt_{}", ulid::Ulid::new());
        let timestamp = chrono::Utc::now().timestamp() + skew_secs;
        let body = body.to_string().into_bytes();
        SignedRequest {
            channel: channel.to_owned(),
            signature: key.sign(&id, timestamp, &body),
            id,
            timestamp,
            body,
        }
    }

    /// Sends a signed request exactly as it was signed; answers (status, JSON body).
    pub async fn send_signed(&self, request: &SignedRequest) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(&format!("/hooks/{}", request.channel)))
            .header("content-type", "application/json")
            .header("webhook-id", &request.id)
            .header("webhook-timestamp", request.timestamp.to_string())
            .header("webhook-signature", &request.signature)
            .body(request.body.clone())
            .send()
            .await
            .expect("request reaches the app");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        crate::support::call(&self.http, method, &self.url(path), body, token).await
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self
            .api(reqwest::Method::GET, path, None, Some(ADMIN_TOKEN))
            .await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// GETs `path` with `token`, expecting 200.
    pub async fn get_as(&self, path: &str, token: &str) -> Value {
        let (status, body) = self
            .api(reqwest::Method::GET, path, None, Some(token))
            .await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn conversations(&self) -> Vec<Value> {
        items(self.get("/api/v1/conversations?limit=200").await)
    }

    pub async fn messages(&self, conversation: &str) -> Vec<Value> {
        items(
            self.get(&format!(
                "/api/v1/conversations/{conversation}/messages?limit=200"
            ))
            .await,
        )
    }

    /// Replies with text; returns (status, body).
    pub async fn reply(&self, conversation: &str, text: &str) -> (u16, Value) {
        self.api(
            reqwest::Method::POST,
            &format!("/api/v1/conversations/{conversation}/messages"),
            Some(json!({"parts": [{"type": "text", "text": text}]})),
            Some(REP_TOKEN),
        )
        .await
    }

    /// The one conversation the app has after a single contact wrote in.
    pub async fn only_conversation(&self) -> Value {
        let conversations = self.conversations().await;
        assert_eq!(conversations.len(), 1, "{conversations:?}");
        conversations.into_iter().next().unwrap()
    }

    /// Requests the receiver got on /outbound, oldest first, as JSON bodies.
    pub async fn delivered(&self) -> Vec<Value> {
        self.receiver
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == "/outbound")
            .map(|r| serde_json::from_slice(&r.body).expect("outbound body is JSON"))
            .collect()
    }

    /// Waits until no delivery is pending (all sent or dead).
    pub async fn drain_outbox(&self) {
        wait_until("the outbox drains", Duration::from_secs(20), || async {
            let pending = self.get("/api/v1/deliveries?state=pending").await;
            items(pending).is_empty()
        })
        .await;
    }
}

/// A generic webhook signed once, to be sent (and replayed) as is.
pub struct SignedRequest {
    pub channel: String,
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: Vec<u8>,
}

pub fn items(page: Value) -> Vec<Value> {
    page["items"].as_array().cloned().unwrap_or_default()
}

pub fn text_event(id: &str, user: &str, text: &str) -> Value {
    json!({
        "type": "message", "id": id, "timestamp": "2026-11-21T10:00:00Z",
        "from": {"id": user, "name": "Ana", "email": "ana@example.com"},
        "parts": [{"type": "text", "text": text}]
    })
}
