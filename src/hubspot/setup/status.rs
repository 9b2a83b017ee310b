//! `channel-bridge hubspot status`: what is linked (each channel and its channel account,
//! in the state HubSpot reports), whether the token works (the static one, or an OAuth
//! refresh), and HubSpot's share of the outbox per channel (waiting and dead letters).
//! [`Status::needs_attention`] lists what an operator must act on; the CLI exits 1 when
//! it is not empty.
//!
//! The outbox is read straight from the database, read-only
//! ([`crate::store::hubspot::read_queues`]), so the command works beside a running daemon
//! (SQLite: WAL lets a read-only connection read while the daemon's writer owns the file)
//! and with the daemon stopped, and needs no API token.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Credential, SetupError, client, hint, section};
use crate::adapters::AdapterConfig;
use crate::config::{Config, HubspotAuth};
use crate::hubspot::HubspotError;
use crate::hubspot::wire::ChannelAccount;
use crate::store::hubspot::{ChannelQueue, read_queues};

/// Whether the bearer token works, as one call with it showed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TokenState {
    /// HubSpot answered a call made with it (after an OAuth refresh, for OAuth).
    Valid,
    /// HubSpot refused it (or the OAuth refresh), or it lacks a scope.
    Invalid { reason: String },
    /// HubSpot could not be reached or failed: nothing is known.
    Unreachable { reason: String },
    /// No call was made (there is no custom channel to ask about).
    NotChecked { reason: String },
}

/// A channel account as HubSpot reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccountState {
    /// False when the custom channel has no (unarchived) account with the linked id.
    pub found: bool,
    pub name: Option<String>,
    pub inbox_id: Option<String>,
    /// HubSpot takes no messages for an account that is not authorized.
    pub authorized: Option<bool>,
    pub active: Option<bool>,
}

/// HubSpot jobs waiting and dead in the outbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    pub pending: u64,
    pub dead: u64,
}

/// One of our channels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChannelStatus {
    pub channel: String,
    /// The adapter kind; `None` for a channel that has jobs but is no longer configured.
    pub kind: Option<&'static str>,
    /// The channel account the channel's link names; `None` when not linked.
    pub channel_account_id: Option<String>,
    /// The account as HubSpot reports it; `None` when not linked or not asked.
    pub account: Option<AccountState>,
    /// `None` when the outbox could not be read.
    pub queue: Option<QueueCounts>,
}

/// The outcome of `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    pub app_id: String,
    /// `[hubspot].channel_id`.
    pub channel_id: Option<String>,
    /// `static` (access_token) or `oauth` (refresh_token).
    pub auth: &'static str,
    pub token: TokenState,
    pub channels: Vec<ChannelStatus>,
    /// Jobs whose message is gone (purged), so their channel is unknown.
    pub unattributed: QueueCounts,
    /// Why the outbox could not be read, if it could not.
    pub queue_error: Option<String>,
    /// What an operator must act on, one sentence each; empty when all is well.
    pub needs_attention: Vec<String>,
}

impl Status {
    /// True when nothing needs attention.
    pub fn ok(&self) -> bool {
        self.needs_attention.is_empty()
    }

    /// What the CLI prints.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "HubSpot app {}, custom channel {}",
            self.app_id,
            self.channel_id.as_deref().unwrap_or("(not registered)")
        );
        let auth = match self.auth {
            "oauth" => "OAuth (refresh token)",
            _ => "static access token",
        };
        let token = match &self.token {
            TokenState::Valid => "valid".to_owned(),
            TokenState::Invalid { reason } => format!("INVALID: {reason}"),
            TokenState::Unreachable { reason } => format!("not checked: {reason}"),
            TokenState::NotChecked { reason } => format!("not checked: {reason}"),
        };
        let _ = writeln!(out, "Token: {auth}, {token}");
        let _ = writeln!(out, "Channels:");
        for c in &self.channels {
            let kind = c.kind.unwrap_or("no longer configured");
            let link = match (&c.channel_account_id, &c.account) {
                (None, _) => "not linked".to_owned(),
                (Some(id), None) => format!("account {id}"),
                (Some(id), Some(a)) if !a.found => format!("account {id}: NOT FOUND in HubSpot"),
                (Some(id), Some(a)) => {
                    let state = match (a.authorized, a.active) {
                        (Some(false), _) => "NOT AUTHORIZED",
                        (_, Some(false)) => "INACTIVE",
                        _ => "authorized",
                    };
                    format!(
                        "account {id} {:?}, inbox {}, {state}",
                        a.name.as_deref().unwrap_or_default(),
                        a.inbox_id.as_deref().unwrap_or("?"),
                    )
                }
            };
            let queue = match c.queue {
                Some(q) => format!("{} waiting, {} dead", q.pending, q.dead),
                None => "queue unknown".to_owned(),
            };
            let _ = writeln!(out, "  {} ({kind}): {link}; {queue}", c.channel);
        }
        if self.unattributed != QueueCounts::default() {
            let _ = writeln!(
                out,
                "  (messages gone): {} waiting, {} dead",
                self.unattributed.pending, self.unattributed.dead
            );
        }
        if self.ok() {
            let _ = writeln!(out, "All good.");
        } else {
            let _ = writeln!(out, "Needs attention:");
            for item in &self.needs_attention {
                let _ = writeln!(out, "  - {item}");
            }
        }
        out
    }
}

/// Asks HubSpot and the outbox how HubSpot mode stands. Fails only when the config has
/// no `[hubspot]` section; everything else found wrong is in `needs_attention`.
pub async fn status(config: &Config) -> Result<Status, SetupError> {
    let hubspot = section(config)?;
    let client = client(hubspot)?;
    let accounts = async {
        match &hubspot.channel_id {
            Some(_) => Some(client.list_channel_accounts().await),
            None => None,
        }
    };
    let (accounts, queues) = tokio::join!(accounts, read_queues(&config.storage));
    let mut attention = Vec::new();

    let (token, accounts) = match accounts {
        None => {
            attention.push(
                "hubspot.channel_id is not set: run `channel-bridge hubspot register` and put \
                 the channel_id line it prints in [hubspot]"
                    .to_owned(),
            );
            (
                TokenState::NotChecked {
                    reason: "no custom channel to ask about".into(),
                },
                None,
            )
        }
        Some(Ok(accounts)) => (TokenState::Valid, Some(accounts)),
        // HubSpot authenticates before it looks the channel up: the token works, the
        // channel is what is missing.
        Some(Err(HubspotError::Refused {
            status: 404,
            message,
        })) => {
            attention.push(format!(
                "hubspot.channel_id {}: HubSpot has no such custom channel ({message});                  remove channel_id and run `channel-bridge hubspot register`",
                hubspot.channel_id.as_deref().unwrap_or_default()
            ));
            (TokenState::Valid, None)
        }
        Some(Err(e)) => {
            let state = token_state(e);
            if let TokenState::Invalid { reason } | TokenState::Unreachable { reason } = &state {
                attention.push(format!("the HubSpot token: {reason}"));
            }
            (state, None)
        }
    };

    let (queues, queue_error) = match queues {
        Ok(queues) => (Some(queues), None),
        Err(e) => {
            let reason = format!("cannot read the outbox: {e}");
            attention.push(reason.clone());
            (None, Some(reason))
        }
    };
    let queue_of = |channel: &str| -> Option<QueueCounts> {
        let queues = queues.as_ref()?;
        Some(
            queues
                .iter()
                .find(|q| q.channel_id.as_deref() == Some(channel))
                .map(counts)
                .unwrap_or_default(),
        )
    };

    let mut channels = Vec::new();
    for (id, channel) in &config.channels {
        if matches!(channel.adapter, AdapterConfig::Email(_)) {
            continue;
        }
        let linked = channel
            .hubspot
            .as_ref()
            .map(|l| l.channel_account_id.clone());
        let account = match (&linked, &accounts) {
            (Some(linked), Some(accounts)) => Some(account_state(accounts, linked)),
            _ => None,
        };
        if let (Some(linked), Some(a)) = (&linked, &account) {
            let custom = hubspot.channel_id.as_deref().unwrap_or_default();
            if !a.found {
                attention.push(format!(
                    "channel {id}: channel account {linked} is not on custom channel {custom} \
                     (archived, or another channel's): run `channel-bridge hubspot connect` \
                     after removing the channel's hubspot line"
                ));
            } else if a.authorized == Some(false) {
                attention.push(format!(
                    "channel {id}: channel account {linked} is not authorized in HubSpot, so \
                     nothing is published; authorize it again in HubSpot's inbox settings"
                ));
            } else if a.active == Some(false) {
                attention.push(format!(
                    "channel {id}: channel account {linked} is inactive in HubSpot"
                ));
            }
        }
        channels.push(ChannelStatus {
            channel: id.clone(),
            kind: Some(channel.adapter.kind()),
            channel_account_id: linked,
            account,
            queue: queue_of(id),
        });
    }
    let mut unattributed = QueueCounts::default();
    for q in queues.iter().flatten() {
        match &q.channel_id {
            None => {
                unattributed.pending += q.pending;
                unattributed.dead += q.dead;
            }
            Some(id) if !config.channels.contains_key(id) => channels.push(ChannelStatus {
                channel: id.clone(),
                kind: None,
                channel_account_id: None,
                account: None,
                queue: Some(counts(q)),
            }),
            Some(_) => {}
        }
    }
    if hubspot.channel_id.is_some() && !channels.iter().any(|c| c.channel_account_id.is_some()) {
        attention.push(
            "no channel is linked: run `channel-bridge hubspot connect --channel ID --inbox ID \
             --name NAME` and put the line it prints in the channel's section"
                .to_owned(),
        );
    }
    for c in &channels {
        let dead = c.queue.map_or(0, |q| q.dead);
        if dead > 0 {
            attention.push(format!(
                "channel {}: {dead} message(s) could not be published (dead letters): see \
                 why with `channel-bridge deliveries list`, send again with \
                 `channel-bridge deliveries retry ID`",
                c.channel
            ));
        }
    }
    if unattributed.dead > 0 {
        attention.push(format!(
            "{} dead HubSpot job(s) whose message is gone: see `channel-bridge deliveries list`",
            unattributed.dead
        ));
    }

    Ok(Status {
        app_id: hubspot.app_id.clone(),
        channel_id: hubspot.channel_id.clone(),
        auth: match hubspot.auth {
            HubspotAuth::Static(_) => "static",
            HubspotAuth::OAuth { .. } => "oauth",
        },
        token,
        channels,
        unattributed,
        queue_error,
        needs_attention: attention,
    })
}

fn counts(q: &ChannelQueue) -> QueueCounts {
    QueueCounts {
        pending: q.pending,
        dead: q.dead,
    }
}

fn account_state(accounts: &[ChannelAccount], id: &str) -> AccountState {
    match accounts.iter().find(|a| a.id == id) {
        Some(a) => AccountState {
            found: true,
            name: a.name.clone(),
            inbox_id: a.inbox_id.clone(),
            authorized: a.authorized,
            active: a.active,
        },
        None => AccountState {
            found: false,
            name: None,
            inbox_id: None,
            authorized: None,
            active: None,
        },
    }
}

/// What a failed call with the bearer token says about the token.
fn token_state(error: HubspotError) -> TokenState {
    let reason = format!("{error}{}", hint(&error, Credential::Bearer));
    match error {
        HubspotError::Retry { .. } | HubspotError::Transport(_) => {
            TokenState::Unreachable { reason }
        }
        HubspotError::Refused { .. } | HubspotError::NotConfigured(_) => {
            TokenState::Invalid { reason }
        }
    }
}
