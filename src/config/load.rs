//! Reading and validating a config: file, then env overrides, then every rule, collecting
//! all errors (each naming its key) so an operator fixes them in one pass.
//!
//! The `config` crate lays the env overrides over the file. Its 0.15 line keeps the file's
//! key case, which matters: channel ids (table names) are case-sensitive URL path
//! segments (`a_channel_id_keeps_its_case`). Env names are lowercased, as they always
//! were. The merged tree is then read by our own pass below rather than by the crate's
//! deserializer, because that pass reports every error at once, each with its key path.
//! Defaults live in one place, the code (`#[serde(default = …)]` here and in `mod.rs`):
//! a partial file, a test's config and the built-in copy all need them, and per-item
//! defaults (a rep's capacity, a channel's threading) cannot be a file layer.
//! `config/default.toml` shows each one as a `# key = value  # default` line, and
//! `every_default_shown_in_default_toml_is_the_codes` keeps the two from drifting.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{
    ApiConfig, ApiToken, ChannelConfig, Config, DeliveryConfig, InboxConfig, MediaConfig,
    PipelineConfig, PresenceConfig, ReloadConfig, RepConfig, RetentionConfig, Role, RoutingConfig,
    Secret, ServerConfig, SmtpConfig, SnippetConfig, StatusConfig, StorageConfig, Threading,
    TicketTemplate, TicketsConfig,
};
use crate::adapters::AdapterConfig;

/// Env variables starting with this and `__` override config keys, sections and keys
/// also split by `__`: `CHANNEL_BRIDGE__SERVER__LISTEN`.
const ENV_PREFIX: &str = "CHANNEL_BRIDGE";
const ENV_SEPARATOR: &str = "__";
/// Where the `config` crate says a value came from the environment.
const ENV_ORIGIN: &str = "the environment";

const SECTIONS: &[&str] = &[
    "server",
    "storage",
    "api",
    "smtp",
    "delivery",
    "reps",
    "pipelines",
    "channels",
    "reload",
    "media",
    "tickets",
    "retention",
    "presence",
    "inboxes",
    "snippets",
    "hubspot",
];

/// Channel keys that belong to the help-desk rules; every other key is the adapter's.
const CHANNEL_RULE_KEYS: &[&str] = &[
    "name",
    "enabled",
    "threading",
    "reopen",
    "routing",
    "ticket",
    "media_allow_private",
    "hubspot",
];

/// One problem in a config, with the key it is about (`channels.demo.outbound_url`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Every problem found in one config.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// Loads a config file with overrides from the process environment.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError::new(
            "",
            format!("cannot read config file {}: {e}", path.display()),
        )])
    })?;
    load_str(&text, std::env::vars())
}

/// Loads a config from TOML text with the given env overrides.
pub fn load_str(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigErrors> {
    let table = layered(text, env)?;
    let mut errors = Vec::new();
    let config = build(table, &mut errors);
    if errors.is_empty() {
        Ok(config.expect("a config with no errors is complete"))
    } else {
        Err(ConfigErrors(errors))
    }
}

/// A TOML syntax error by line and column, without quoting the line: the line may hold a
/// secret, and this message is printed, logged and shown by `/readyz`.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("invalid TOML at line {line}, column {column}: {message}")
        }
        None => format!("invalid TOML: {message}"),
    }
}

/// The file with the env overrides laid over it, as one TOML tree for [`build`].
fn layered(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<toml::Table, ConfigErrors> {
    let one = |message: String| ConfigErrors(vec![ConfigError::new("", message)]);
    // Parsed here first for the syntax error's place: the `config` crate's message
    // quotes the offending line, which may hold a secret.
    text.parse::<toml::Table>()
        .map_err(|e: toml::de::Error| one(toml_error(text, &e)))?;
    let env: config::Map<String, String> = env.into_iter().collect();
    let merged = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_SEPARATOR)
                .separator(ENV_SEPARATOR)
                .source(Some(env)),
        )
        .build()
        .and_then(|c| config::Source::collect(&c))
        .map_err(|e| match e {
            config::ConfigError::FileParse { .. } => one("invalid TOML".to_owned()),
            other => one(format!("cannot read the config: {other}")),
        })?;
    Ok(merged
        .into_iter()
        .filter_map(|(key, value)| Some((key, toml_value(value)?)))
        .collect())
}

/// One `config` value as TOML. A value from the environment that reads as TOML (a
/// number, a bool, a list, an inline table) keeps its type; anything else is a string, so
/// `…__LISTEN=0.0.0.0:8080` needs no quotes. Nil has no TOML form and is left out.
fn toml_value(value: config::Value) -> Option<toml::Value> {
    let from_env = value.origin() == Some(ENV_ORIGIN);
    Some(match value.kind {
        config::ValueKind::Nil => return None,
        config::ValueKind::Boolean(b) => toml::Value::Boolean(b),
        config::ValueKind::I64(n) => toml::Value::Integer(n),
        config::ValueKind::I128(n) => int_or_text(n.try_into(), n),
        config::ValueKind::U64(n) => int_or_text(n.try_into(), n),
        config::ValueKind::U128(n) => int_or_text(n.try_into(), n),
        config::ValueKind::Float(f) => toml::Value::Float(f),
        config::ValueKind::String(raw) if from_env => {
            toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(toml::Value::String(raw))
        }
        config::ValueKind::String(s) => toml::Value::String(s),
        config::ValueKind::Table(t) => toml::Value::Table(
            t.into_iter()
                .filter_map(|(k, v)| Some((k, toml_value(v)?)))
                .collect(),
        ),
        config::ValueKind::Array(a) => {
            toml::Value::Array(a.into_iter().filter_map(toml_value).collect())
        }
    })
}

/// An integer TOML can hold, else its digits (which the key's check then refuses).
fn int_or_text<E>(fits: Result<i64, E>, n: impl ToString) -> toml::Value {
    fits.map_or_else(|_| toml::Value::String(n.to_string()), toml::Value::Integer)
}

/// Deserializes one value, recording an error at `key.<path>` instead of failing.
pub(super) fn parse<T: DeserializeOwned>(
    value: toml::Value,
    key: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    parse_table(value, key, &[], errors)
}

/// [`parse`] that reports every error of the value at once: an unknown key or a value of
/// the wrong type is recorded and taken out, and the rest is read again, so one typo does
/// not hide the next. `shared` names keys of the same TOML table that are read elsewhere
/// (a channel's rule keys beside its adapter's), which an unknown key's message lists too.
/// The value comes back only when nothing but unknown keys was wrong: with a value taken
/// out its default would stand in, and checks on it would report what was never written.
fn parse_table<T: DeserializeOwned>(
    mut value: toml::Value,
    key: &str,
    shared: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    let mut only_unknown_keys = true;
    // Keys taken out for being wrong: their "missing field" is no news.
    let mut taken_out: Vec<String> = Vec::new();
    loop {
        let e = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) => return only_unknown_keys.then_some(v),
            Err(e) => e,
        };
        let mut path: Vec<serde_path_to_error::Segment> = e.path().iter().cloned().collect();
        let inner = e.path().to_string();
        let message = e.into_inner().to_string();
        // The deserializer appends where it was (`in `capacity``); the key says it.
        let message = message.lines().next().unwrap_or_default().trim().to_owned();
        let unknown = unknown_field(&message);
        let at = crate::model::field_path(key, &inner, &message).replace(".[", "[");
        if taken_out.contains(&at) {
            return None;
        }
        match unknown {
            Some((field, expected)) => {
                // An internally tagged enum (a channel's `kind`) loses the path inside it.
                let at = if at.ends_with(&format!(".{field}")) {
                    at
                } else {
                    path.push(serde_path_to_error::Segment::Map { key: field.clone() });
                    format!("{at}.{field}")
                };
                let mut expected = expected;
                for k in shared {
                    if !expected.iter().any(|e| e == k) {
                        expected.push((*k).to_owned());
                    }
                }
                let expected: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
                let message = if expected.is_empty() {
                    "unknown key; this table takes none".to_owned()
                } else {
                    format!("unknown key; expected one of {}", expected.join(", "))
                };
                errors.push(ConfigError::new(at.clone(), message));
                taken_out.push(at);
            }
            None => {
                only_unknown_keys = false;
                errors.push(ConfigError::new(at.clone(), message));
                taken_out.push(at);
            }
        }
        if !take_out(&mut value, &path) {
            return None;
        }
    }
}

/// `unknown field `x`, expected `a` or `b``: the field and the expected keys.
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((field.to_owned(), expected))
}

/// Removes the key at `path` (a table key, possibly inside arrays); false when there is
/// none to remove (the error is about the whole value, or an array element).
fn take_out(value: &mut toml::Value, path: &[serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    let Some((Segment::Map { key }, parents)) = path.split_last() else {
        return false;
    };
    let mut node = value;
    for segment in parents {
        let next = match (segment, node) {
            (Segment::Map { key }, toml::Value::Table(t)) => t.get_mut(key),
            (Segment::Seq { index }, toml::Value::Array(a)) => a.get_mut(*index),
            _ => None,
        };
        let Some(next) = next else {
            return false;
        };
        node = next;
    }
    match node {
        toml::Value::Table(t) => t.remove(key).is_some(),
        _ => false,
    }
}

fn section(table: &mut toml::Table, key: &str) -> toml::Value {
    table
        .remove(key)
        .unwrap_or_else(|| toml::Value::Table(toml::Table::new()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default)]
    public_url: Option<String>,
    #[serde(default = "default_max_body")]
    max_body_bytes: usize,
    #[serde(default = "default_grace")]
    shutdown_grace_ms: u64,
    #[serde(default = "default_header_timeout")]
    header_read_timeout_ms: u64,
    #[serde(default = "default_body_timeout")]
    body_read_timeout_ms: u64,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    #[serde(default = "default_max_requests")]
    max_concurrent_requests: usize,
    #[serde(default = "default_max_requests")]
    max_concurrent_webhooks: usize,
    #[serde(default = "default_max_console")]
    max_concurrent_console: usize,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_max_body() -> usize {
    1024 * 1024
}
fn default_grace() -> u64 {
    10_000
}
fn default_header_timeout() -> u64 {
    10_000
}
fn default_body_timeout() -> u64 {
    30_000
}
fn default_max_connections() -> usize {
    10_000
}
fn default_max_requests() -> usize {
    256
}
fn default_max_console() -> usize {
    64
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    #[serde(default = "default_storage_url")]
    url: Secret,
    schema: Option<String>,
    #[serde(default = "default_storage_connections")]
    max_connections: u32,
}

fn default_storage_connections() -> u32 {
    16
}

fn default_storage_url() -> Secret {
    Secret::new("sqlite://data/channel-bridge.db")
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApi {
    #[serde(default)]
    tokens: Vec<RawToken>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    role: Role,
    sha256: String,
    #[serde(default)]
    rep: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    #[serde(default = "default_schedule")]
    retry_schedule_ms: Vec<u64>,
    #[serde(default = "default_timeout")]
    timeout_ms: u64,
    #[serde(default = "default_concurrency")]
    concurrency: usize,
    #[serde(default = "default_lease")]
    lease_ms: u64,
    #[serde(default = "default_max_retry_after")]
    max_retry_after_ms: u64,
    #[serde(default = "default_poll")]
    poll_ms: u64,
    #[serde(default = "default_pace_target")]
    pace_target_ms: u64,
    #[serde(default = "default_pace_max_wait")]
    pace_max_wait_ms: u64,
}

/// Svix's schedule: now, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h (about 17.5 h in all).
fn default_schedule() -> Vec<u64> {
    vec![
        0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000,
    ]
}
fn default_timeout() -> u64 {
    10_000
}
fn default_concurrency() -> usize {
    256
}
fn default_lease() -> u64 {
    60_000
}
fn default_poll() -> u64 {
    5_000
}
fn default_pace_target() -> u64 {
    20
}
fn default_pace_max_wait() -> u64 {
    2_000
}
fn default_max_retry_after() -> u64 {
    3_600_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannelRules {
    #[serde(default)]
    name: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    /// Unset: the platform's usual (`AdapterConfig::default_threading`).
    #[serde(default)]
    threading: Option<Threading>,
    #[serde(default = "yes")]
    reopen: bool,
    #[serde(default)]
    routing: RoutingConfig,
    #[serde(default)]
    ticket: RawTicket,
    #[serde(default)]
    media_allow_private: bool,
    #[serde(default)]
    hubspot: Option<super::hubspot::ChannelHubspot>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTicket {
    pipeline: Option<String>,
    status: Option<String>,
    priority: Option<String>,
    #[serde(default)]
    properties: Map<String, Value>,
}

fn build(mut table: toml::Table, errors: &mut Vec<ConfigError>) -> Option<Config> {
    for key in table.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            errors.push(ConfigError::new(key.clone(), "unknown section"));
        }
    }
    let server = parse::<RawServer>(section(&mut table, "server"), "server", errors)
        .and_then(|raw| server(raw, errors));
    let storage = parse::<RawStorage>(section(&mut table, "storage"), "storage", errors)
        .and_then(|raw| storage(raw, errors));
    let api =
        parse::<RawApi>(section(&mut table, "api"), "api", errors).and_then(|raw| api(raw, errors));
    let smtp = match table.remove("smtp") {
        Some(value) => parse::<SmtpConfig>(value, "smtp", errors).map(|smtp| {
            let url = smtp.url.expose();
            if !(url.starts_with("smtp://") || url.starts_with("smtps://"))
                || reqwest::Url::parse(url).is_err()
            {
                errors.push(ConfigError::new(
                    "smtp.url",
                    "must be smtp://host:port or smtps://host:port",
                ));
            }
            if smtp.from.parse::<lettre::message::Mailbox>().is_err() {
                errors.push(ConfigError::new(
                    "smtp.from",
                    format!("{:?} is not an email address", smtp.from),
                ));
            }
            Some(smtp)
        }),
        None => Some(None),
    };
    let delivery = parse::<RawDelivery>(section(&mut table, "delivery"), "delivery", errors)
        .and_then(|raw| delivery(raw, errors));
    let reps = match table.remove("reps") {
        Some(value) => parse::<Vec<RepConfig>>(value, "reps", errors),
        None => Some(Vec::new()),
    };
    let pipelines = match table.remove("pipelines") {
        Some(value) => parse::<BTreeMap<String, PipelineConfig>>(value, "pipelines", errors),
        None => Some(BTreeMap::new()),
    }
    .map(|p| pipelines(p, errors));
    let channels = channels(section(&mut table, "channels"), errors);
    let reload = parse::<ReloadConfig>(section(&mut table, "reload"), "reload", errors);
    let media = parse::<MediaConfig>(section(&mut table, "media"), "media", errors);
    let tickets = parse::<TicketsConfig>(section(&mut table, "tickets"), "tickets", errors);
    let retention = parse::<RetentionConfig>(section(&mut table, "retention"), "retention", errors);
    let presence = parse::<PresenceConfig>(section(&mut table, "presence"), "presence", errors);
    let inboxes = match table.remove("inboxes") {
        Some(value) => parse::<BTreeMap<String, InboxConfig>>(value, "inboxes", errors),
        None => Some(BTreeMap::new()),
    };
    let snippets = match table.remove("snippets") {
        Some(value) => parse::<BTreeMap<String, SnippetConfig>>(value, "snippets", errors),
        None => Some(BTreeMap::new()),
    };
    let hubspot = match table.remove("hubspot") {
        Some(value) => parse::<super::hubspot::RawHubspot>(value, "hubspot", errors)
            .map(|raw| super::hubspot::build(raw, errors)),
        None => Some(None),
    };
    if let (Some(channels), Some(hubspot)) = (&channels, &hubspot) {
        for (id, channel) in channels {
            if let Some(link) = &channel.rules.hubspot {
                super::hubspot::check_channel_link(
                    id,
                    link,
                    channel.adapter.kind(),
                    hubspot.as_ref(),
                    errors,
                );
            }
        }
    }
    if let Some(snippets) = &snippets {
        super::inboxes::check_snippets(snippets, errors);
    }
    if let (Some(api), Some(reps)) = (&api, &reps) {
        super::inboxes::check_token_reps(&api.tokens, reps, errors);
    }
    if let (Some(inboxes), Some(channels), Some(reps)) = (&inboxes, &channels, &reps) {
        let ids: HashSet<&str> = channels.keys().map(String::as_str).collect();
        super::inboxes::check_inboxes(inboxes, &ids, reps, errors);
    }

    if let Some(reps) = &reps {
        check_reps(reps, errors);
    }
    if let (Some(channels), Some(None)) = (&channels, &smtp) {
        for (id, channel) in channels {
            if matches!(channel.adapter, AdapterConfig::Email(_)) {
                errors.push(ConfigError::new(
                    format!("channels.{id}.kind"),
                    "email channels send through [smtp], which is not configured",
                ));
            }
        }
    }
    if let (Some(channels), Some(reps), Some(pipelines)) = (&channels, &reps, &pipelines) {
        check_channel_references(channels, reps, pipelines, errors);
    }
    let (Some(channels), Some(pipelines)) = (channels, pipelines) else {
        return None;
    };
    let channels = channels
        .into_iter()
        .filter_map(|(id, raw)| {
            let ticket = ticket_template(&id, raw.rules.ticket, &pipelines, errors)?;
            let name = raw.rules.name.unwrap_or_else(|| id.clone());
            Some((
                id,
                ChannelConfig {
                    name,
                    enabled: raw.rules.enabled,
                    threading: raw
                        .rules
                        .threading
                        .unwrap_or_else(|| raw.adapter.default_threading()),
                    reopen: raw.rules.reopen,
                    routing: raw.rules.routing,
                    ticket,
                    media_allow_private: raw.rules.media_allow_private,
                    hubspot: raw.rules.hubspot,
                    adapter: raw.adapter,
                },
            ))
        })
        .collect();
    let config = Config {
        server: server?,
        storage: storage?,
        api: api?,
        smtp: smtp?,
        delivery: delivery?,
        reps: reps?,
        pipelines,
        channels,
        reload: reload?,
        media: media?,
        tickets: tickets?,
        retention: retention?,
        presence: presence?,
        inboxes: inboxes?,
        snippets: snippets?,
        hubspot: hubspot?,
    };
    check_routing_reach(&config, errors);
    Some(config)
}

/// What a valid config may still get wrong, for `check-config` and the log: a
/// `contact_owner` channel whose offline owners cannot be emailed (no `[smtp]`, or reps
/// of its inbox without an `email`), so their messages wait unseen until they come online.
pub fn warnings(config: &Config) -> Vec<ConfigError> {
    let mut warnings = Vec::new();
    for (id, channel) in &config.channels {
        if channel.routing != RoutingConfig::ContactOwner {
            continue;
        }
        let key = format!("channels.{id}.routing");
        if config.smtp.is_none() {
            warnings.push(ConfigError::new(
                key,
                "contact_owner routing emails offline owners, but no [smtp] is configured: \
                 they are not emailed",
            ));
            continue;
        }
        let without: Vec<&str> = config
            .reps
            .iter()
            .filter(|r| r.email.is_none())
            .filter(|r| crate::desk::inboxes::rep_works_channel(config, &r.id, id))
            .map(|r| r.id.as_str())
            .collect();
        if !without.is_empty() {
            warnings.push(ConfigError::new(
                key,
                format!(
                    "contact_owner routing emails offline owners, but these reps of its inbox \
                     have no email in [[reps]] and are not emailed: {}",
                    without.join(", ")
                ),
            ));
        }
    }
    warnings
}

/// Routing gives a channel's conversations only to reps who work one of its inboxes:
/// anyone else could not see them (404) while they count against their capacity.
fn check_routing_reach(config: &Config, errors: &mut Vec<ConfigError>) {
    for (id, channel) in &config.channels {
        let RoutingConfig::UsersAndTeams { users, teams } = &channel.routing else {
            continue;
        };
        for rep in crate::desk::routing::pool(users, teams, &config.reps) {
            if crate::desk::inboxes::rep_works_channel(config, &rep.id, id) {
                continue;
            }
            let (key, through) = if users.contains(&rep.id) {
                ("users", String::new())
            } else {
                let team = rep.teams.iter().find(|t| teams.contains(t));
                (
                    "teams",
                    format!(" (team {:?})", team.cloned().unwrap_or_default()),
                )
            };
            errors.push(ConfigError::new(
                format!("channels.{id}.routing.{key}"),
                format!(
                    "rep {:?}{through} does not work an inbox of this channel, so could not \
                     see what routing gives them: add them to its inbox or remove them here",
                    rep.id
                ),
            ));
        }
    }
}

fn server(raw: RawServer, errors: &mut Vec<ConfigError>) -> Option<ServerConfig> {
    let listen = match raw.listen.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            errors.push(ConfigError::new(
                "server.listen",
                format!("{:?} is not an address like 127.0.0.1:8080", raw.listen),
            ));
            None
        }
    };
    if let Some(url) = &raw.public_url
        && !crate::model::is_http_url(url)
    {
        errors.push(ConfigError::new(
            "server.public_url",
            "must be an http(s) URL",
        ));
    }
    for (key, value) in [
        ("max_body_bytes", raw.max_body_bytes as u64),
        ("header_read_timeout_ms", raw.header_read_timeout_ms),
        ("body_read_timeout_ms", raw.body_read_timeout_ms),
        ("max_connections", raw.max_connections as u64),
        (
            "max_concurrent_requests",
            raw.max_concurrent_requests as u64,
        ),
        (
            "max_concurrent_webhooks",
            raw.max_concurrent_webhooks as u64,
        ),
        ("max_concurrent_console", raw.max_concurrent_console as u64),
    ] {
        if value == 0 {
            errors.push(ConfigError::new(
                format!("server.{key}"),
                "must be above zero",
            ));
        }
    }
    Some(ServerConfig {
        listen: listen?,
        public_url: raw.public_url.map(|u| u.trim_end_matches('/').to_owned()),
        max_body_bytes: raw.max_body_bytes,
        shutdown_grace_ms: raw.shutdown_grace_ms,
        header_read_timeout_ms: raw.header_read_timeout_ms,
        body_read_timeout_ms: raw.body_read_timeout_ms,
        max_connections: raw.max_connections,
        max_concurrent_requests: raw.max_concurrent_requests,
        max_concurrent_webhooks: raw.max_concurrent_webhooks,
        max_concurrent_console: raw.max_concurrent_console,
    })
}

/// Reads `sqlite://relative/path.db`, `sqlite:///absolute/path.db` or `postgres://…`.
fn storage(raw: RawStorage, errors: &mut Vec<ConfigError>) -> Option<StorageConfig> {
    let url = raw.url.expose();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        if raw.max_connections < 2 {
            errors.push(ConfigError::new(
                "storage.max_connections",
                "must be at least 2 (one connection listens for notifications)",
            ));
            return None;
        }
        if raw.schema.as_deref().is_some_and(|s| s.is_empty()) {
            errors.push(ConfigError::new("storage.schema", "must not be empty"));
            return None;
        }
        return Some(StorageConfig::Postgres {
            url: raw.url.clone(),
            schema: raw.schema,
            max_connections: raw.max_connections,
        });
    }
    if raw.schema.is_some() {
        errors.push(ConfigError::new(
            "storage.schema",
            "applies to postgres:// URLs only",
        ));
        return None;
    }
    if let Some(rest) = url.strip_prefix("sqlite://") {
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            errors.push(ConfigError::new(
                "storage.url",
                "needs a file path (sqlite://data/channel-bridge.db); an in-memory database would lose acknowledged messages",
            ));
            return None;
        }
        return Some(StorageConfig::Sqlite {
            path: PathBuf::from(path),
        });
    }
    errors.push(ConfigError::new(
        "storage.url",
        "must start with sqlite:// or postgres://",
    ));
    None
}

fn api(raw: RawApi, errors: &mut Vec<ConfigError>) -> Option<ApiConfig> {
    let mut names = HashSet::new();
    let mut tokens = Vec::new();
    let mut ok = true;
    for (i, token) in raw.tokens.into_iter().enumerate() {
        let key = format!("api.tokens[{i}]");
        if !names.insert(token.name.clone()) {
            errors.push(ConfigError::new(
                format!("{key}.name"),
                format!("duplicate token name {:?}", token.name),
            ));
            ok = false;
        }
        let hash = hex::decode(token.sha256.trim())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
        match hash {
            Some(sha256) => tokens.push(ApiToken {
                name: token.name,
                role: token.role,
                sha256,
                rep: token.rep,
            }),
            None => {
                errors.push(ConfigError::new(
                    format!("{key}.sha256"),
                    "must be the 64 hex digits of the token's SHA-256 (sha256sum)",
                ));
                ok = false;
            }
        }
    }
    ok.then_some(ApiConfig { tokens })
}

fn delivery(raw: RawDelivery, errors: &mut Vec<ConfigError>) -> Option<DeliveryConfig> {
    let before = errors.len();
    if raw.retry_schedule_ms.is_empty() {
        errors.push(ConfigError::new(
            "delivery.retry_schedule_ms",
            "needs at least one delay (0 sends at once)",
        ));
    }
    if raw.timeout_ms == 0 {
        errors.push(ConfigError::new(
            "delivery.timeout_ms",
            "must be above zero",
        ));
    }
    if raw.concurrency == 0 {
        errors.push(ConfigError::new(
            "delivery.concurrency",
            "must be above zero",
        ));
    }
    if raw.poll_ms == 0 {
        errors.push(ConfigError::new("delivery.poll_ms", "must be above zero"));
    }
    if raw.lease_ms <= raw.timeout_ms {
        errors.push(ConfigError::new(
            "delivery.lease_ms",
            "must be longer than delivery.timeout_ms, or a slow send would be taken up twice",
        ));
    }
    (errors.len() == before).then_some(DeliveryConfig {
        retry_schedule_ms: raw.retry_schedule_ms,
        timeout_ms: raw.timeout_ms,
        concurrency: raw.concurrency,
        lease_ms: raw.lease_ms,
        max_retry_after_ms: raw.max_retry_after_ms,
        poll_ms: raw.poll_ms,
        pace_target_ms: raw.pace_target_ms,
        pace_max_wait_ms: raw.pace_max_wait_ms,
    })
}

/// The built-in pipeline used when the config defines none.
fn default_pipeline() -> PipelineConfig {
    let open = |id: &str| StatusConfig {
        id: id.into(),
        closed: false,
        requires: Vec::new(),
    };
    PipelineConfig {
        statuses: vec![
            open("new"),
            open("waiting_on_contact"),
            open("waiting_on_us"),
            StatusConfig {
                id: "closed".into(),
                closed: true,
                requires: Vec::new(),
            },
        ],
    }
}

fn pipelines(
    mut pipelines: BTreeMap<String, PipelineConfig>,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<String, PipelineConfig> {
    if pipelines.is_empty() {
        pipelines.insert("support".into(), default_pipeline());
    }
    for (id, pipeline) in &pipelines {
        let key = format!("pipelines.{id}.statuses");
        let mut seen = HashSet::new();
        for status in &pipeline.statuses {
            if !seen.insert(status.id.as_str()) {
                errors.push(ConfigError::new(
                    key.clone(),
                    format!("status {:?} is listed twice", status.id),
                ));
            }
        }
        if !pipeline.statuses.iter().any(|s| !s.closed) {
            errors.push(ConfigError::new(
                key.clone(),
                "needs at least one open status",
            ));
        }
    }
    pipelines
}

struct RawChannel {
    rules: RawChannelRules,
    adapter: AdapterConfig,
}

fn channels(
    value: toml::Value,
    errors: &mut Vec<ConfigError>,
) -> Option<BTreeMap<String, RawChannel>> {
    let toml::Value::Table(table) = value else {
        errors.push(ConfigError::new("channels", "must be a table of channels"));
        return None;
    };
    let mut channels = BTreeMap::new();
    for (id, value) in table {
        let key = format!("channels.{id}");
        if !is_channel_id(&id) {
            errors.push(ConfigError::new(
                key.clone(),
                "channel ids may use only letters, digits, '-' and '_' (they are URL path segments)",
            ));
        }
        let toml::Value::Table(body) = value else {
            errors.push(ConfigError::new(key, "must be a table"));
            continue;
        };
        let (rules, adapter): (toml::Table, toml::Table) = body
            .into_iter()
            .partition(|(k, _)| CHANNEL_RULE_KEYS.contains(&k.as_str()));
        if !adapter.contains_key("kind") {
            errors.push(ConfigError::new(format!("{key}.kind"), "is required"));
            continue;
        }
        let rules = parse::<RawChannelRules>(toml::Value::Table(rules), &key, errors);
        if let Some(name) = rules.as_ref().and_then(|r| r.name.as_deref())
            && name.trim().is_empty()
        {
            errors.push(ConfigError::new(format!("{key}.name"), "must not be empty"));
        }
        // An unknown key's message lists the rule keys too: they share the table.
        let shared: Vec<&str> = std::iter::once("kind")
            .chain(CHANNEL_RULE_KEYS.iter().copied())
            .collect();
        let adapter =
            parse_table::<AdapterConfig>(toml::Value::Table(adapter), &key, &shared, errors);
        if let Some(adapter) = &adapter {
            for (field, message) in adapter.validate() {
                errors.push(ConfigError::new(format!("{key}.{field}"), message));
            }
        }
        if let (Some(rules), Some(adapter)) = (rules, adapter) {
            channels.insert(id, RawChannel { rules, adapter });
        }
    }
    // The valid channels go on to the cross-checks; the errors already stop the load.
    Some(channels)
}

fn check_reps(reps: &[RepConfig], errors: &mut Vec<ConfigError>) {
    let mut seen = HashSet::new();
    for (i, rep) in reps.iter().enumerate() {
        if !seen.insert(rep.id.as_str()) {
            errors.push(ConfigError::new(
                format!("reps[{i}].id"),
                format!("rep {:?} is listed twice", rep.id),
            ));
        }
    }
}

fn check_channel_references(
    channels: &BTreeMap<String, RawChannel>,
    reps: &[RepConfig],
    pipelines: &BTreeMap<String, PipelineConfig>,
    errors: &mut Vec<ConfigError>,
) {
    let rep_ids: HashSet<&str> = reps.iter().map(|r| r.id.as_str()).collect();
    let teams: HashSet<&str> = reps
        .iter()
        .flat_map(|r| r.teams.iter().map(String::as_str))
        .collect();
    for (id, channel) in channels {
        if let RoutingConfig::UsersAndTeams { users, teams: t } = &channel.rules.routing {
            for user in users.iter().filter(|u| !rep_ids.contains(u.as_str())) {
                errors.push(ConfigError::new(
                    format!("channels.{id}.routing.users"),
                    format!("no rep {user:?} in [[reps]]"),
                ));
            }
            for team in t.iter().filter(|t| !teams.contains(t.as_str())) {
                errors.push(ConfigError::new(
                    format!("channels.{id}.routing.teams"),
                    format!("no rep belongs to team {team:?}"),
                ));
            }
        }
        if let Some(pipeline) = &channel.rules.ticket.pipeline
            && !pipelines.contains_key(pipeline)
        {
            errors.push(ConfigError::new(
                format!("channels.{id}.ticket.pipeline"),
                format!("no pipeline {pipeline:?} in [pipelines]"),
            ));
        }
    }
}

/// Fills in a channel's ticket defaults: the `support` pipeline (or the only one) and its
/// first open status.
fn ticket_template(
    channel: &str,
    raw: RawTicket,
    pipelines: &BTreeMap<String, PipelineConfig>,
    errors: &mut Vec<ConfigError>,
) -> Option<TicketTemplate> {
    let key = format!("channels.{channel}.ticket");
    let pipeline_id = match raw.pipeline {
        Some(p) => p,
        None if pipelines.contains_key("support") => "support".to_owned(),
        None if pipelines.len() == 1 => pipelines.keys().next().cloned().unwrap_or_default(),
        None => {
            errors.push(ConfigError::new(
                format!("{key}.pipeline"),
                "several pipelines are defined and none is named support: choose one",
            ));
            return None;
        }
    };
    if let Some(p) = raw
        .priority
        .as_deref()
        .filter(|p| crate::desk::tickets::Priority::parse(p).is_none())
    {
        errors.push(ConfigError::new(
            format!("{key}.priority"),
            format!("{p:?} is not a priority: use low, medium, high or urgent"),
        ));
        return None;
    }
    // A missing pipeline was reported by check_channel_references already.
    let pipeline = pipelines.get(&pipeline_id)?;
    let status = match raw.status {
        Some(status) => match pipeline.statuses.iter().find(|s| s.id == status) {
            Some(s) if s.closed => {
                errors.push(ConfigError::new(
                    format!("{key}.status"),
                    format!("{status:?} is a closed status; new tickets must start open"),
                ));
                return None;
            }
            Some(_) => status,
            None => {
                errors.push(ConfigError::new(
                    format!("{key}.status"),
                    format!("pipeline {pipeline_id:?} has no status {status:?}"),
                ));
                return None;
            }
        },
        None => pipeline.statuses.iter().find(|s| !s.closed)?.id.clone(),
    };
    Some(TicketTemplate {
        pipeline: pipeline_id,
        status,
        priority: raw.priority.or_else(|| Some("medium".into())),
        properties: raw.properties,
    })
}

fn is_channel_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn minimal() -> String {
        format!(
            r#"
[channels.demo]
kind = "generic"
secret = "{SECRET}"
outbound_url = "http://127.0.0.1:9000/out"
"#
        )
    }

    fn keys(result: Result<Config, ConfigErrors>) -> Vec<String> {
        result.unwrap_err().0.into_iter().map(|e| e.key).collect()
    }

    /// Two channels, `shop` in inbox `sales` (Alice, team billing) and `demo` in
    /// `default` (everyone), with `routing` for `shop`.
    fn shop_config(routing: &str, extra: &str) -> String {
        format!(
            r#"
[[reps]]
id = "alice"
email = "alice@example.com"
[[reps]]
id = "bob"
teams = ["billing"]
[[reps]]
id = "dave"
teams = ["billing", "vip"]
[inboxes.sales]
channels = ["shop"]
users = ["alice"]
teams = ["vip"]
[channels.shop]
kind = "generic"
secret = "{SECRET}"
outbound_url = "http://127.0.0.1:9000/out"
routing = {routing}
{extra}
"#
        )
    }

    #[test]
    fn routing_may_name_only_reps_who_work_an_inbox_of_the_channel() {
        let cases = [
            (r#"{ mode = "users_and_teams", users = ["alice"] }"#, vec![]),
            // dave is in sales through team vip.
            (r#"{ mode = "users_and_teams", users = ["dave"] }"#, vec![]),
            (
                r#"{ mode = "users_and_teams", users = ["alice", "bob"] }"#,
                vec!["channels.shop.routing.users"],
            ),
            // Team billing brings bob, who is not in sales.
            (
                r#"{ mode = "users_and_teams", teams = ["billing"] }"#,
                vec!["channels.shop.routing.teams"],
            ),
        ];
        for (routing, expected) in cases {
            let result = load_str(&shop_config(routing, ""), []);
            let found = match result {
                Ok(_) => vec![],
                Err(e) => {
                    assert!(e.to_string().contains("\"bob\""), "names the rep: {e}");
                    e.0.into_iter().map(|e| e.key).collect()
                }
            };
            assert_eq!(found, expected, "{routing}");
        }
    }

    #[test]
    fn contact_owner_channels_warn_about_reps_who_cannot_be_emailed() {
        let routing = r#"{ mode = "contact_owner" }"#;
        let smtp = "[smtp]\nurl = \"smtp://127.0.0.1:2525\"\nfrom = \"desk@example.com\"\n";
        let with_smtp = load_str(&shop_config(routing, smtp), []).unwrap();
        let warnings: Vec<String> = warnings(&with_smtp).iter().map(|w| w.to_string()).collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("channels.shop.routing:"));
        // dave works sales without an address; bob is not in sales, alice has one.
        assert!(warnings[0].ends_with(": dave"), "{warnings:?}");

        let without_smtp = load_str(&shop_config(routing, ""), []).unwrap();
        let warnings = crate::config::warnings(&without_smtp);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].message.contains("no [smtp]"));

        let round_robin = load_str(
            &shop_config(r#"{ mode = "users_and_teams", users = ["dave"] }"#, ""),
            [],
        )
        .unwrap();
        assert!(crate::config::warnings(&round_robin).is_empty());
    }

    #[test]
    fn a_slack_channel_threads_by_slack_thread_unless_it_says_otherwise() {
        let slack = |extra: &str| {
            format!(
                "{}\n[channels.sl]\nkind = \"slack\"\nbot_token = \"xoxb-1\"\n\
                 signing_secret = \"s\"\n{extra}",
                minimal()
            )
        };
        let config = load_str(&slack(""), []).unwrap();
        assert_eq!(config.channels["sl"].threading, Threading::PlatformThread);
        assert_eq!(config.channels["demo"].threading, Threading::PerContact);
        let config = load_str(&slack("threading = \"per_contact\""), []).unwrap();
        assert_eq!(config.channels["sl"].threading, Threading::PerContact);
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let config = load_str(&minimal(), []).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            config.storage,
            StorageConfig::Sqlite {
                path: "data/channel-bridge.db".into()
            }
        );
        let demo = &config.channels["demo"];
        assert!(demo.enabled && demo.reopen);
        assert_eq!(demo.threading, Threading::PerContact);
        assert_eq!(demo.routing, RoutingConfig::Nobody);
        assert_eq!(demo.ticket.pipeline, "support");
        assert_eq!(demo.ticket.status, "new");
        assert_eq!(config.delivery.retry_schedule_ms.len(), 7);
    }

    #[test]
    fn the_compiled_in_default_config_is_valid() {
        let config = load_str(crate::config::DEFAULT_CONFIG, []).unwrap();
        assert!(config.channels["demo"].enabled);
        assert!(!config.api.tokens.is_empty());
    }

    #[test]
    fn every_error_is_reported_at_once_naming_its_key() {
        let text = format!(
            r#"
[server]
listen = "not-an-address"
[storage]
url = "mysql://x"
[delivery]
retry_schedule_ms = []
[[api.tokens]]
name = "ops"
role = "admin"
sha256 = "abc"
[channels.demo]
kind = "generic"
secret = "{SECRET}"
outbound_url = "ftp://nowhere"
routing = {{ mode = "users_and_teams", users = ["ghost"] }}
[channels.other]
kind = "carrier-pigeon"
[channels.third]
kind = "generic"
secret = "{SECRET}"
outbound_url = "http://x/"
threading = "sideways"
"#
        );
        let mut found = keys(load_str(&text, []));
        found.sort();
        assert_eq!(
            found,
            vec![
                "api.tokens[0].sha256",
                "channels.demo.outbound_url",
                "channels.demo.routing.users",
                "channels.other.kind",
                "channels.third.threading",
                "delivery.retry_schedule_ms",
                "server.listen",
                "storage.url",
            ]
        );
    }

    #[test]
    fn a_toml_syntax_error_names_its_place_without_quoting_the_line() {
        let text = minimal() + "bot_token = \"123:SECRET-TOKEN\" oops\n";
        let errors = load_str(&text, []).unwrap_err().to_string();
        assert!(errors.contains("invalid TOML at line 6"), "{errors}");
        assert!(!errors.contains("SECRET-TOKEN"), "{errors}");
    }

    #[test]
    fn unknown_keys_are_errors_not_silently_ignored() {
        let text = minimal() + "outbond_url = \"http://typo/\"\n[sever]\nlisten = \"x\"\n";
        let mut found = keys(load_str(&text, []));
        found.sort();
        assert_eq!(found, vec!["channels.demo.outbond_url", "sever"]);
    }

    #[test]
    fn an_email_channel_needs_smtp() {
        let text = minimal() + "[channels.mail]\nkind = \"email\"\n";
        assert_eq!(keys(load_str(&text, [])), vec!["channels.mail.kind"]);
        let with_smtp = text + "[smtp]\nurl = \"smtp://127.0.0.1:25\"\nfrom = \"a@b.example\"\n";
        assert!(load_str(&with_smtp, []).is_ok());
    }

    #[test]
    fn an_email_channel_s_imap_block_is_checked_key_by_key() {
        let smtp = "[smtp]\nurl = \"smtp://127.0.0.1:25\"\nfrom = \"a@b.example\"\n";
        let text = minimal()
            + smtp
            + "[channels.mail]\nkind = \"email\"\n[channels.mail.imap]\n\
               host = \"imap.example.com\"\ntls = \"none\"\nusername = \"support\"\n\
               password = \"hunter2-imap\"\npoll_interval_secs = 0\n";
        let errors = load_str(&text, []).unwrap_err();
        assert_eq!(
            keys(Err(errors.clone())),
            vec![
                "channels.mail.imap.tls",
                "channels.mail.imap.poll_interval_secs"
            ]
        );
        assert!(!errors.to_string().contains("hunter2-imap"));
        let good = text
            .replace("tls = \"none\"", "tls = \"starttls\"")
            .replace("poll_interval_secs = 0", "poll_interval_secs = 30");
        let config = load_str(&good, []).unwrap();
        let crate::adapters::AdapterConfig::Email(email) = &config.channels["mail"].adapter else {
            panic!("an email channel");
        };
        let imap = email.imap.as_ref().expect("the imap block");
        assert_eq!((imap.port(), imap.folder.as_str()), (143, "INBOX"));
        assert_eq!(config.channels["mail"].adapter.secrets(), [&imap.password]);
    }

    #[test]
    fn env_overrides_keys_and_keeps_types() {
        let env = [
            ("CHANNEL_BRIDGE__SERVER__LISTEN", "0.0.0.0:9999"),
            ("CHANNEL_BRIDGE__SERVER__MAX_BODY_BYTES", "2048"),
            ("CHANNEL_BRIDGE__CHANNELS__DEMO__ENABLED", "false"),
            ("CHANNEL_BRIDGE_LOG_FORMAT", "json"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let config = load_str(&minimal(), env).unwrap();
        assert_eq!(config.server.listen.to_string(), "0.0.0.0:9999");
        assert_eq!(config.server.max_body_bytes, 2048);
        assert!(!config.channels["demo"].enabled);
    }

    #[test]
    fn env_values_that_read_as_toml_keep_their_type_and_others_are_strings() {
        let dir = tempfile::tempdir().unwrap();
        let url_file = dir.path().join("smtp_url");
        std::fs::write(&url_file, "smtp://127.0.0.1:25\n").unwrap();
        let env = [
            (
                "CHANNEL_BRIDGE__DELIVERY__RETRY_SCHEDULE_MS",
                "[0, 1000]".to_owned(),
            ),
            // A secret's `{ file = … }` form is an inline table.
            (
                "CHANNEL_BRIDGE__SMTP__URL",
                format!("{{ file = {:?} }}", url_file.display().to_string()),
            ),
            (
                "CHANNEL_BRIDGE__SMTP__FROM",
                "bridge@example.com".to_owned(),
            ),
            (
                "CHANNEL_BRIDGE__CHANNELS__DEMO__NAME",
                "Demo app".to_owned(),
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v));
        let config = load_str(&minimal(), env).unwrap();
        assert_eq!(config.delivery.retry_schedule_ms, [0, 1000]);
        assert_eq!(config.channels["demo"].name, "Demo app");
        let smtp = config.smtp.expect("smtp comes from the environment");
        assert_eq!(smtp.from, "bridge@example.com");
        assert_eq!(smtp.url.expose(), "smtp://127.0.0.1:25");
    }

    #[test]
    fn a_channel_id_keeps_its_case() {
        // Channel ids are URL path segments: /hooks/Shop is not /hooks/shop.
        let text = minimal().replace("[channels.demo]", "[channels.Shop]");
        let config = load_str(&text, []).unwrap();
        assert_eq!(config.channels.keys().collect::<Vec<_>>(), ["Shop"]);
        // Env names are lowercased, so an override reaches a lowercase id only.
        let env = [("CHANNEL_BRIDGE__CHANNELS__SHOP__ENABLED", "false")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let errors = keys(load_str(&text, env));
        assert!(
            errors.iter().any(|k| k.starts_with("channels.shop")),
            "{errors:?}"
        );
    }

    #[test]
    fn an_env_override_error_names_its_key() {
        let env = [("CHANNEL_BRIDGE__SERVER__MAX_BODY_BYTES", "lots")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(keys(load_str(&minimal(), env)), ["server.max_body_bytes"]);
    }

    #[test]
    fn every_default_shown_in_default_toml_is_the_codes() {
        let text = crate::config::DEFAULT_CONFIG;
        let mut shown = 0;
        let uncommented: Vec<&str> = text
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(setting) if setting.contains("  # default") => {
                    shown += 1;
                    setting
                }
                _ => line,
            })
            .collect();
        assert!(
            shown >= 25,
            "only {shown} defaults shown in config/default.toml"
        );
        let as_shipped = load_str(text, []).unwrap();
        let with_shown = load_str(&uncommented.join("\n"), []).unwrap();
        assert_eq!(format!("{with_shown:?}"), format!("{as_shipped:?}"));
    }

    #[test]
    fn inboxes_token_reps_and_snippets_must_name_what_exists() {
        let hash = "0".repeat(64);
        let text = minimal()
            + &format!(
                r#"
[[reps]]
id = "alice"
teams = ["billing"]
[[api.tokens]]
name = "a"
role = "rep"
rep = "ghost"
sha256 = "{hash}"
[inboxes.sales]
channels = ["demo", "nope"]
users = ["alice", "ghost"]
teams = ["billing", "nobody"]
[inboxes.support]
channels = ["demo"]
[inboxes."bad id"]
[snippets.hi]
text = "Hi {{{{contact.frist_name}}}}"
"#
            );
        let mut found = keys(load_str(&text, []));
        found.sort();
        assert_eq!(
            found,
            vec![
                "api.tokens[0].rep",
                "inboxes.bad id",
                "inboxes.sales.channels",
                "inboxes.sales.teams",
                "inboxes.sales.users",
                "inboxes.support.channels",
                "snippets.hi.text",
            ]
        );
        let errors = load_str(&text, []).unwrap_err().to_string();
        assert!(
            errors.contains(
                "inboxes.support.channels: channel \"demo\" is already in inbox \"sales\""
            ),
            "{errors}"
        );
    }

    #[test]
    fn a_token_may_act_as_a_rep_and_inboxes_and_snippets_load() {
        let text = minimal()
            + &format!(
                r#"
[[reps]]
id = "alice"
name = "Alice Doe"
[[api.tokens]]
name = "alice-laptop"
role = "rep"
rep = "alice"
sha256 = "{}"
[inboxes.sales]
channels = ["demo"]
users = ["alice"]
[snippets.hello]
text = "Hi {{{{contact.first_name|there}}}}, {{{{rep.name}}}} here."
"#,
                "0".repeat(64)
            );
        let config = load_str(&text, []).unwrap();
        assert_eq!(config.api.tokens[0].rep.as_deref(), Some("alice"));
        assert_eq!(
            config.rep("alice").unwrap().name.as_deref(),
            Some("Alice Doe")
        );
        assert_eq!(config.inboxes["sales"].channels, ["demo"]);
        assert!(config.snippets["hello"].text.starts_with("Hi {{"));
    }

    #[test]
    fn ticket_defaults_must_name_an_open_status_of_an_existing_pipeline() {
        let with = |ticket: &str| {
            format!(
                "{}ticket = {ticket}\n[pipelines.sales]\nstatuses = [{{ id = \"lead\" }}, {{ id = \"won\", closed = true }}]\n",
                minimal()
            )
        };
        assert_eq!(
            keys(load_str(&with(r#"{ pipeline = "nope" }"#), [])),
            vec!["channels.demo.ticket.pipeline"]
        );
        assert_eq!(
            keys(load_str(
                &with(r#"{ pipeline = "sales", status = "won" }"#),
                []
            )),
            vec!["channels.demo.ticket.status"]
        );
        let config = load_str(&with(r#"{ pipeline = "sales" }"#), []).unwrap();
        assert_eq!(config.channels["demo"].ticket.status, "lead");
    }

    #[test]
    fn a_ticket_default_priority_must_be_one_of_the_four_levels() {
        let with = |ticket: &str| format!("{}ticket = {ticket}\n", minimal());
        assert_eq!(
            keys(load_str(&with(r#"{ priority = "critical" }"#), [])),
            vec!["channels.demo.ticket.priority"]
        );
        let config = load_str(&with(r#"{ priority = "urgent" }"#), []).unwrap();
        assert_eq!(
            config.channels["demo"].ticket.priority.as_deref(),
            Some("urgent")
        );
    }
}
