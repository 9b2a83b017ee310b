//! The real `channel-bridge` binary as a child process, for fault tests: a config and
//! database in a temp dir, logs in a file. `Daemon` and the helpers are the shared
//! `tests/support` ones.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::support::{
    ADMIN_TOKEN, BIN, Daemon, REP_TOKEN, free_port, message_event, post_signed, secret, sha256,
    wait_until,
};

/// How long the daemon may take to exit, or to finish queued work.
/// How many times a crash test kills the daemon (`CRASH_LOOP_KILLS`, 3 by default), its
/// seed and its random source, seeded from `CRASH_LOOP_SEED` or a new seed that is printed, so a failing
/// run can be repeated exactly.
pub fn crash_plan(test: &str) -> (usize, u64, fastrand::Rng) {
    let kills: usize = std::env::var("CRASH_LOOP_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("CRASH_LOOP_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("{test}: {kills} kills, CRASH_LOOP_SEED={seed}");
    (kills, seed, fastrand::Rng::with_seed(seed))
}

/// The ids of the daemon's conversations.
pub async fn conversation_ids(daemon: &Daemon) -> Vec<String> {
    daemon
        .conversations()
        .await
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

pub const DEADLINE: Duration = Duration::from_secs(60);

/// What the in-house app took, in order: (conversation, reply text).
#[derive(Clone, Default)]
pub struct Taken(pub Arc<Mutex<Vec<(String, String)>>>);

impl Taken {
    /// Records the generic channel's reply in `request`; returns the app's 200 with its id.
    pub fn take(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let reply: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        self.0.lock().unwrap().push((
            reply["conversation_id"].as_str().unwrap().to_owned(),
            reply["parts"][0]["text"].as_str().unwrap().to_owned(),
        ));
        wiremock::ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"id": format!("app-{}", reply["id"].as_str().unwrap())}),
        )
    }
}

/// A rep's text reply in `conversation`, as the admin: the answer's status, or the error
/// when the request died (with the daemon).
pub async fn send_reply(
    http: &reqwest::Client,
    base: &str,
    conversation: &str,
    text: &str,
) -> reqwest::Result<reqwest::StatusCode> {
    http.post(format!(
        "{base}/api/v1/conversations/{conversation}/messages"
    ))
    .bearer_auth(ADMIN_TOKEN)
    .json(&serde_json::json!({"parts": [{"type": "text", "text": text}]}))
    .send()
    .await
    .map(|r| r.status())
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
        crate::support::clear_bridge_env(command);
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
    pub async fn start_with(&self, command: Command) -> Daemon {
        Daemon::spawn(
            command,
            self.base(),
            self.log_path(),
            Duration::from_secs(20),
        )
        .await
    }
}

/// The file `path` as the daemon with `pid` sees it (inside its mount namespace).
pub fn inside(pid: u32, path: &Path) -> PathBuf {
    Path::new(&format!("/proc/{pid}/root")).join(path.strip_prefix("/").unwrap_or(path))
}
