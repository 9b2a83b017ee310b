//! The setup commands of HubSpot mode (issue #18, docs/hubspot-guide.md), one module each:
//! `channel-bridge hubspot register` ([`register()`]), `connect` ([`connect()`]) and
//! `status` ([`status()`]). Each reads the daemon's own config, calls HubSpot through
//! [`HubspotClient`], and returns what happened as data the CLI prints (text or JSON), so
//! tests check outcomes rather than terminal output.
//!
//! `register` and `connect` are idempotent: they look for what exists before creating
//! anything, because re-registering on every install duplicated channels in the field
//! (botpress/growth #221: duplicate "Originating Channel" values broke workflows).
//!
//! Never prints or returns a secret. Knows nothing of the daemon's runtime.

mod connect;
mod register;
mod status;

use std::time::Duration;

pub use connect::{ConnectAction, ConnectOptions, Connected, connect};
pub use register::{
    DEFAULT_CHANNEL_NAME, DEFAULT_DESCRIPTION, OutgoingFiles, RegisterAction, RegisterOptions,
    Registered, capabilities, capability_channels, identifier_types, outgoing_files, register,
};
pub use status::{AccountState, ChannelStatus, QueueCounts, Status, TokenState, status};

use super::client::{HubspotClient, HubspotError};
use crate::config::{Config, HubspotConfig};
use crate::store::StoreError;

/// Every setup request gives up after this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a setup command failed; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The config lacks what the command needs.
    #[error("{0}")]
    Config(String),
    /// HubSpot refused or could not be reached.
    #[error("{what}: {source}{hint}")]
    Hubspot {
        what: String,
        source: HubspotError,
        hint: &'static str,
    },
    /// What HubSpot holds does not let the command decide safely.
    #[error("{0}")]
    Conflict(String),
    #[error("cannot read the outbox: {0}")]
    Store(#[from] StoreError),
}

/// Which credential a failed call used, for the hint on a 401 / 403.
#[derive(Clone, Copy)]
enum Credential {
    /// `hubspot.developer_api_key` (channel definitions).
    DeveloperKey,
    /// The portal's bearer token: `access_token`, or OAuth's refresh token.
    Bearer,
}

fn hubspot_error(
    what: impl Into<String>,
    credential: Credential,
    source: HubspotError,
) -> SetupError {
    SetupError::Hubspot {
        what: what.into(),
        hint: hint(&source, credential),
        source,
    }
}

/// What to check when HubSpot refused a credential or could not be reached.
fn hint(source: &HubspotError, credential: Credential) -> &'static str {
    match (source, credential) {
        (HubspotError::Refused { status: 401, .. }, Credential::DeveloperKey) => {
            " (check hubspot.developer_api_key and hubspot.app_id: the key must belong to the developer account that owns the app)"
        }
        (HubspotError::Refused { status: 401, .. }, Credential::Bearer) => {
            " (check hubspot.access_token, or client_id and refresh_token: the token must come from the portal the app is installed in)"
        }
        (
            HubspotError::Refused {
                status: 400,
                message,
            },
            Credential::Bearer,
        ) if message.contains("refresh token") => {
            " (check hubspot.client_id, client_secret and refresh_token: install the app again to get a new refresh token)"
        }
        (HubspotError::Refused { status: 403, .. }, _) => {
            " (the app lacks a scope: see \"Scopes\" in docs/hubspot-guide.md)"
        }
        (HubspotError::Transport(_), _) => " (check hubspot.api_base and the network)",
        _ => "",
    }
}

fn section(config: &Config) -> Result<&HubspotConfig, SetupError> {
    config.hubspot.as_ref().ok_or_else(|| {
        SetupError::Config(
            "the config has no [hubspot] section: add app_id, client_secret and access_token \
             (see docs/hubspot-guide.md)"
                .into(),
        )
    })
}

/// The custom channel `[hubspot].channel_id` names; `connect` and `status` need it.
fn channel_id(hubspot: &HubspotConfig) -> Result<&str, SetupError> {
    hubspot.channel_id.as_deref().ok_or_else(|| {
        SetupError::Config(
            "hubspot.channel_id is not set: run `channel-bridge hubspot register` and put the \
             channel_id line it prints in the [hubspot] section"
                .into(),
        )
    })
}

fn client(hubspot: &HubspotConfig) -> Result<HubspotClient, SetupError> {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| SetupError::Config(format!("cannot build an HTTP client: {e}")))?;
    Ok(HubspotClient::new(hubspot, http))
}

/// The webhook URL HubSpot is given: `{server.public_url}/hubspot/webhook`.
pub fn webhook_url(config: &Config) -> Result<String, SetupError> {
    match &config.server.public_url {
        Some(base) => Ok(format!("{base}/hubspot/webhook")),
        None => Err(SetupError::Config(
            "server.public_url is required: HubSpot posts reps' replies to \
             {server.public_url}/hubspot/webhook"
                .into(),
        )),
    }
}
