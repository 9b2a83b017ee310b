//! The daemon's configuration: one TOML file plus `CHANNEL_BRIDGE__SECTION__KEY` env
//! overrides, validated as a whole before anything uses it (docs/ARCHITECTURE.md §8).
//! This module knows the shape of the config and its rules; it starts nothing.

mod dev;
pub mod hubspot;
mod inboxes;
mod load;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Map, Value};

pub use crate::adapters::email::SmtpConfig;
pub use crate::model::is_http_url;
pub use crate::secret::Secret;
pub use dev::published_credentials;
pub use hubspot::{ChannelHubspot, HubspotAuth, HubspotConfig};
pub use inboxes::is_name;
pub use load::{ConfigError, ConfigErrors, load_file, load_str, warnings};

use crate::adapters::AdapterConfig;

/// The default config, compiled in so the binary runs with no file at all.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/default.toml");

/// The whole validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub api: ApiConfig,
    pub smtp: Option<SmtpConfig>,
    pub delivery: DeliveryConfig,
    pub reps: Vec<RepConfig>,
    pub pipelines: BTreeMap<String, PipelineConfig>,
    pub channels: BTreeMap<String, ChannelConfig>,
    pub reload: ReloadConfig,
    pub media: MediaConfig,
    pub tickets: TicketsConfig,
    pub retention: RetentionConfig,
    pub presence: PresenceConfig,
    /// Inboxes by id: which channels they group and which reps work them.
    pub inboxes: BTreeMap<String, InboxConfig>,
    /// Reply snippets by id, defined in the config (read-only through the API).
    pub snippets: BTreeMap<String, SnippetConfig>,
    /// HubSpot custom-channel mode (`[hubspot]`), when configured.
    pub hubspot: Option<HubspotConfig>,
}

/// An inbox: a group of channels and the reps (directly or through a team) who see them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxConfig {
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub teams: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
}

/// A reply snippet from the config: text with `{{placeholders}}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnippetConfig {
    pub text: String,
}

/// How reps' presence is kept.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceConfig {
    /// A rep who has sent no presence for this long counts as offline.
    #[serde(default = "default_presence_timeout")]
    pub timeout_s: u64,
    /// Offline reps with `notify = true` get at most one digest email per interval.
    #[serde(default = "default_digest_interval")]
    pub digest_interval_s: u64,
}

fn default_presence_timeout() -> u64 {
    300
}
fn default_digest_interval() -> u64 {
    900
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            timeout_s: default_presence_timeout(),
            digest_interval_s: default_digest_interval(),
        }
    }
}

/// How deleted tickets are kept.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketsConfig {
    /// Deleted tickets and conversations stay in the trash (restorable by an admin) this
    /// many days, then are purged for good.
    #[serde(default = "default_retention")]
    pub trash_retention_days: u32,
}

fn default_retention() -> u32 {
    30
}

impl Default for TicketsConfig {
    fn default() -> Self {
        Self {
            trash_retention_days: default_retention(),
        }
    }
}

/// How long data kept only for inspection stays.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Inbound messages keep the platform's raw payload this many days (to look into how
    /// a webhook was parsed); then it is cleared and the message's parts stay. 0 keeps
    /// it forever.
    #[serde(default = "default_raw_payload_days")]
    pub raw_payload_days: u32,
}

fn default_raw_payload_days() -> u32 {
    30
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            raw_payload_days: default_raw_payload_days(),
        }
    }
}

/// Inbound media as reps open it through the API.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// The largest file the API streams from a platform; larger ones answer 413.
    #[serde(default = "default_media_max")]
    pub max_bytes: u64,
    /// A whole media fetch (connect, redirects, body) may take this long.
    #[serde(default = "default_media_timeout")]
    pub timeout_ms: u64,
    /// The largest file a rep may upload to attach (`POST /api/v1/uploads`); larger
    /// ones answer 413. 16 MiB: under what the platforms take by URL.
    #[serde(default = "default_upload_max")]
    pub max_upload_bytes: u64,
}

fn default_upload_max() -> u64 {
    16 * 1024 * 1024
}

fn default_media_max() -> u64 {
    25 * 1024 * 1024
}
fn default_media_timeout() -> u64 {
    30_000
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            max_bytes: default_media_max(),
            timeout_ms: default_media_timeout(),
            max_upload_bytes: default_upload_max(),
        }
    }
}

/// How config changes are picked up while running.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadConfig {
    /// Reload when the config file changes (SIGHUP always reloads).
    #[serde(default = "default_watch")]
    pub watch: bool,
    /// Changes within this window are applied as one reload (editors write in steps).
    #[serde(default = "default_debounce")]
    pub debounce_ms: u64,
    /// After a channel's verification secret changes, the old one still verifies for this
    /// long, so platform retries signed before the change are not refused.
    #[serde(default = "default_overlap")]
    pub secret_overlap_s: u64,
    /// A channel removed by a reload answers its webhooks 503 for this long, so platforms
    /// redeliver (most treat 404 as final); after it, 404.
    #[serde(default = "default_removed_grace")]
    pub removed_channel_grace_s: u64,
}

fn default_watch() -> bool {
    true
}
fn default_debounce() -> u64 {
    300
}
fn default_overlap() -> u64 {
    3600
}
fn default_removed_grace() -> u64 {
    86_400
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self {
            watch: default_watch(),
            debounce_ms: default_debounce(),
            secret_overlap_s: default_overlap(),
            removed_channel_grace_s: default_removed_grace(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Base of the webhook URLs platforms call (Twilio signs the full URL).
    pub public_url: Option<String>,
    pub max_body_bytes: usize,
    /// How long SIGTERM waits for in-flight requests and jobs before exiting anyway.
    pub shutdown_grace_ms: u64,
    /// A connection must send a whole request head within this time (also when idle
    /// between keep-alive requests), or it is closed: slowloris and idle sockets go away.
    pub header_read_timeout_ms: u64,
    /// A request body must arrive whole within this time after its head (408 otherwise).
    pub body_read_timeout_ms: u64,
    /// Open connections at most; past it the listener stops accepting until one closes.
    pub max_connections: usize,
    /// API requests (`/api/…`) handled at once; past it they are shed with 503
    /// `overloaded`. Webhooks and the console have budgets of their own, so neither can
    /// take the API's.
    pub max_concurrent_requests: usize,
    /// Webhooks (`/hooks/…`, unauthenticated) handled at once; past it 503 `overloaded`.
    pub max_concurrent_webhooks: usize,
    /// Requests to every other path (the web console at `/`) handled at once.
    pub max_concurrent_console: usize,
}

/// Where the data lives.
#[derive(Clone, Debug, PartialEq)]
pub enum StorageConfig {
    Sqlite {
        path: PathBuf,
    },
    /// Shared by every replica; the URL is a secret since it may hold a password.
    Postgres {
        url: Secret,
        /// Tables live in this schema (created if missing) instead of the user's default.
        schema: Option<String>,
        max_connections: u32,
    },
}

#[derive(Clone, Debug, Default)]
pub struct ApiConfig {
    pub tokens: Vec<ApiToken>,
}

/// A bearer token, known only by its SHA-256 hash.
#[derive(Clone, Debug)]
pub struct ApiToken {
    pub name: String,
    pub role: Role,
    pub sha256: [u8; 32],
    /// The rep (a `[[reps]]` id) this token acts as: what they see and who did it.
    pub rep: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Rep,
    Admin,
}

#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// Delay before each attempt, the first counted from when the job is queued.
    pub retry_schedule_ms: Vec<u64>,
    /// One send attempt may take this long before it counts as a (retryable) failure.
    pub timeout_ms: u64,
    /// Jobs sent at once, across all conversations.
    pub concurrency: usize,
    /// A leased job not finished within this time is taken up again.
    pub lease_ms: u64,
    /// The longest `Retry-After` honoured; longer asks are capped to this.
    pub max_retry_after_ms: u64,
    /// The longest the worker waits between looks for due jobs. Only a safety net: a new
    /// reply, email or comment wakes it at once.
    pub poll_ms: u64,
    /// A reply waits while its channel's due jobs wait longer than this to be sent
    /// (backpressure); 0 turns pacing off.
    pub pace_target_ms: u64,
    /// The longest a reply waits for its channel to catch up; it is accepted after that.
    pub pace_max_wait_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepConfig {
    pub id: String,
    /// How the rep signs to contacts (`{{rep.name}}` in snippets).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub teams: Vec<String>,
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    /// Email the rep a digest of new messages in their conversations while they are offline.
    #[serde(default)]
    pub notify: bool,
}

fn default_capacity() -> u32 {
    10
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    pub statuses: Vec<StatusConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    pub id: String,
    /// Moving a ticket here closes it (and all its conversations).
    #[serde(default)]
    pub closed: bool,
    /// Ticket properties that must be set before a ticket may take this status.
    #[serde(default)]
    pub requires: Vec<String>,
}

/// One channel: an adapter plus the help-desk rules for what arrives on it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelConfig {
    /// What people call the channel ("Support WhatsApp"), in emails to reps; the id when
    /// not set.
    pub name: String,
    pub enabled: bool,
    pub threading: Threading,
    /// After a conversation closes, a new message reopens it (true) or starts a new one.
    pub reopen: bool,
    pub routing: RoutingConfig,
    pub ticket: TicketTemplate,
    /// Media URLs from this channel's payloads may point at private addresses (an
    /// internal network); by default only public addresses are fetched.
    pub media_allow_private: bool,
    /// The HubSpot channel account this channel's messages are published to.
    pub hubspot: Option<ChannelHubspot>,
    pub adapter: AdapterConfig,
}

/// A channel's threading rule lives in `model` (adapters name their default without
/// importing config).
pub use crate::model::Threading;

#[derive(Clone, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum RoutingConfig {
    #[default]
    Nobody,
    UsersAndTeams {
        #[serde(default)]
        users: Vec<String>,
        #[serde(default)]
        teams: Vec<String>,
    },
    ContactOwner,
}

/// What every new ticket on a channel starts with, resolved against the pipelines.
#[derive(Clone, Debug, PartialEq)]
pub struct TicketTemplate {
    pub pipeline: String,
    pub status: String,
    pub priority: Option<String>,
    pub properties: Map<String, Value>,
}

impl Config {
    /// The channel with this id, if configured.
    pub fn channel(&self, id: &str) -> Option<&ChannelConfig> {
        self.channels.get(id)
    }

    /// The rep with this id, if configured.
    pub fn rep(&self, id: &str) -> Option<&RepConfig> {
        self.reps.iter().find(|r| r.id == id)
    }

    /// The status definition of `status` in `pipeline`, if both exist.
    pub fn status(&self, pipeline: &str, status: &str) -> Option<&StatusConfig> {
        self.pipelines
            .get(pipeline)?
            .statuses
            .iter()
            .find(|s| s.id == status)
    }
}
