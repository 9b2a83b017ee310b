//! `channel-bridge hubspot connect --channel tg --inbox ID --name "Support Telegram"`:
//! creates the HubSpot channel account one of our channels publishes into, and prints the
//! `hubspot = { channel_account_id = "…" }` line that links the channel to it.
//!
//! Never creates a second account for a channel: the account the channel's link names is
//! used when HubSpot has it, else one on the same inbox with the same name (a run whose
//! line was never pasted into the config), and only then a new one.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Credential, SetupError, channel_id, client, hubspot_error, section};
use crate::adapters::AdapterConfig;
use crate::config::Config;
use crate::hubspot::wire::{
    ChannelAccount, ChannelAccountEgg, DeliveryIdentifier, DeliveryIdentifierType,
};

/// What `connect` is asked for.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Our channel (`[channels.<id>]`).
    pub channel: String,
    /// The HubSpot inbox (or help desk) the account's conversations land in.
    pub inbox_id: String,
    /// The account's name in HubSpot (shown on each conversation as its channel).
    pub name: String,
}

/// What `connect` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectAction {
    /// A new channel account.
    Created,
    /// An account with this name on this inbox existed: it is the one to link.
    Found,
    /// The channel's link already names an account HubSpot has; nothing was changed.
    AlreadyLinked,
}

/// The outcome of `connect`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Connected {
    pub action: ConnectAction,
    /// Our channel.
    pub channel: String,
    pub channel_account_id: String,
    /// The account as HubSpot has it.
    pub name: Option<String>,
    pub inbox_id: Option<String>,
    pub authorized: Option<bool>,
    /// The line that links the channel, for its `[channels.<id>]` section.
    pub config_line: String,
    /// Whether the channel's link already names this account.
    pub config_has_it: bool,
}

impl Connected {
    /// What the CLI prints.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let account = format!(
            "HubSpot channel account {} ({:?}, inbox {})",
            self.channel_account_id,
            self.name.as_deref().unwrap_or_default(),
            self.inbox_id.as_deref().unwrap_or("?"),
        );
        let _ = match self.action {
            ConnectAction::Created => writeln!(out, "Created {account}."),
            ConnectAction::Found => writeln!(out, "Found {account}; no new account was made."),
            ConnectAction::AlreadyLinked => {
                writeln!(
                    out,
                    "Channel {} is already linked to {account}.",
                    self.channel
                )
            }
        };
        if self.authorized == Some(false) {
            let _ = writeln!(
                out,
                "Warning: the account is not authorized in HubSpot, so nothing is published \
                 to it; authorize it again in HubSpot's inbox settings."
            );
        }
        if !self.config_has_it {
            let _ = writeln!(
                out,
                "\nPut this line in the [channels.{}] section of your config, then reload \
                 the config or restart the daemon:",
                self.channel
            );
            let _ = writeln!(out, "{}", self.config_line);
        }
        out
    }
}

/// Creates the channel account `options.channel` publishes into, unless it exists: see
/// the module docs for how an existing one is found.
pub async fn connect(config: &Config, options: &ConnectOptions) -> Result<Connected, SetupError> {
    let hubspot = section(config)?;
    let channel = config.channel(&options.channel).ok_or_else(|| {
        SetupError::Config(format!(
            "no channel {:?} in the config (channels: {})",
            options.channel,
            config
                .channels
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    if matches!(channel.adapter, AdapterConfig::Email(_)) {
        return Err(SetupError::Config(format!(
            "channel {:?} is an email channel: it only sends, so there is nothing to publish \
             to HubSpot",
            options.channel
        )));
    }
    for (what, value) in [("--inbox", &options.inbox_id), ("--name", &options.name)] {
        if value.trim().is_empty() {
            return Err(SetupError::Config(format!("{what} must not be empty")));
        }
    }
    if !options.inbox_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SetupError::Config(format!(
            "--inbox {:?} is not a HubSpot inbox id (a number: Settings > Inboxes, or \
             GET /conversations/v3/conversations/inboxes)",
            options.inbox_id
        )));
    }
    let custom_channel = channel_id(hubspot)?;
    let client = client(hubspot)?;
    let accounts = client.list_channel_accounts().await.map_err(|e| {
        hubspot_error(
            format!("cannot list the channel accounts of custom channel {custom_channel}"),
            Credential::Bearer,
            e,
        )
    })?;
    let linked = channel
        .hubspot
        .as_ref()
        .map(|l| l.channel_account_id.as_str());
    let done = |action, account: &ChannelAccount| Connected {
        action,
        channel: options.channel.clone(),
        config_line: config_line(&account.id),
        config_has_it: linked == Some(account.id.as_str()),
        channel_account_id: account.id.clone(),
        name: account.name.clone(),
        inbox_id: account.inbox_id.clone(),
        authorized: account.authorized,
    };

    if let Some(id) = linked {
        let account = accounts.iter().find(|a| a.id == id).ok_or_else(|| {
            SetupError::Conflict(format!(
                "channels.{}.hubspot links channel account {id}, which custom channel \
                 {custom_channel} does not have (it was archived, or belongs to another \
                 channel). Remove the hubspot line from [channels.{}] and run connect again \
                 to make a new one",
                options.channel, options.channel
            ))
        })?;
        return Ok(done(ConnectAction::AlreadyLinked, account));
    }
    let same: Vec<&ChannelAccount> = accounts
        .iter()
        .filter(|a| {
            a.name.as_deref() == Some(options.name.as_str())
                && a.inbox_id.as_deref() == Some(options.inbox_id.as_str())
        })
        .collect();
    match same.as_slice() {
        [account] => return Ok(done(ConnectAction::Found, account)),
        [] => {}
        several => {
            return Err(SetupError::Conflict(format!(
                "inbox {} has {} channel accounts named {:?} ({}): put the one to keep in \
                 [channels.{}] as hubspot = {{ channel_account_id = \"…\" }}, and archive \
                 the others in HubSpot",
                options.inbox_id,
                several.len(),
                options.name,
                several
                    .iter()
                    .map(|a| a.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                options.channel
            )));
        }
    }
    let egg = ChannelAccountEgg {
        inbox_id: options.inbox_id.clone(),
        name: options.name.clone(),
        authorized: true,
        // What publishing names as each message's recipient.
        delivery_identifier: Some(DeliveryIdentifier {
            kind: DeliveryIdentifierType::ChannelSpecificOpaqueId,
            value: options.channel.clone(),
        }),
    };
    let account = client.create_channel_account(&egg).await.map_err(|e| {
        hubspot_error(
            format!(
                "cannot create a channel account in inbox {}",
                options.inbox_id
            ),
            Credential::Bearer,
            e,
        )
    })?;
    Ok(done(ConnectAction::Created, &account))
}

/// `hubspot = { channel_account_id = "…" }`.
fn config_line(account: &str) -> String {
    format!("hubspot = {{ channel_account_id = \"{account}\" }}")
}
