//! `channel-bridge hubspot register`: creates the app's custom channel, or updates the one
//! that exists (matched by `[hubspot].channel_id`, else by name), with capabilities derived
//! from what the linked channels' adapters can carry and the webhook URL HubSpot posts
//! reps' replies to.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use super::{Credential, SetupError, client, hubspot_error, section, webhook_url};
use crate::adapters::AdapterConfig;
use crate::config::Config;
use crate::hubspot::wire::{Capabilities, ChannelDefinition, DeliveryIdentifierType};

/// The channel name `register` uses when not told otherwise.
pub const DEFAULT_CHANNEL_NAME: &str = "channel-bridge";
/// Shown under the channel in HubSpot's "connect a channel" flow.
pub const DEFAULT_DESCRIPTION: &str = "Messaging apps bridged into HubSpot by channel-bridge";

/// What a platform takes as a file sent by URL, for the attachments reps may add in HubSpot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutgoingFiles {
    pub max_files: u32,
    pub max_file_bytes: u64,
    pub max_total_bytes: u64,
    /// `None`: any type.
    pub mime_types: Option<&'static [&'static str]>,
}

const MB: u64 = 1_000_000;

/// The platform's documented limits for files a bot sends by URL. Where a platform has
/// several (Telegram: 5 MB photos, 20 MB other files), the one for most kinds is used.
pub fn outgoing_files(adapter: &AdapterConfig, media_max_bytes: u64) -> OutgoingFiles {
    let files = |max_files, max_file_bytes, max_total_bytes, mime_types| OutgoingFiles {
        max_files,
        max_file_bytes,
        max_total_bytes,
        mime_types,
    };
    match adapter {
        // Our own app takes what the bridge can fetch.
        AdapterConfig::Generic(_) => files(10, media_max_bytes, 10 * media_max_bytes, None),
        AdapterConfig::Telegram(_) => files(10, 20 * MB, 200 * MB, None),
        // Cloud API: audio and video 16 MB (documents up to 100 MB, images 5 MB).
        AdapterConfig::Whatsapp(_) => files(10, 16 * MB, 160 * MB, None),
        AdapterConfig::Messenger(_) => files(10, 25 * MB, 250 * MB, None),
        // Instagram fetches by URL: images 8 MB, audio and video 25 MB.
        AdapterConfig::Instagram(_) => files(10, 25 * MB, 250 * MB, None),
        // No file messages; five messages per push, one kept for the text.
        AdapterConfig::Line(_) => files(
            4,
            10 * MB,
            40 * MB,
            Some(&[
                "image/jpeg",
                "image/png",
                "video/mp4",
                "audio/mp4",
                "audio/x-m4a",
            ]),
        ),
        AdapterConfig::Viber(_) => files(10, 50 * MB, 500 * MB, None),
        // MMS: 5 MB for all media of one message.
        AdapterConfig::Twilio(_) => files(10, 5 * MB, 5 * MB, None),
        // Uploaded by us, so our own cap applies (Slack takes up to 1 GB).
        AdapterConfig::Slack(c) => files(10, c.max_upload_bytes, 10 * c.max_upload_bytes, None),
        AdapterConfig::Email(_) => files(0, 0, 0, Some(&[])),
    }
}

/// The identifier types `publish::delivery_identifier` gives this kind's contacts.
pub fn identifier_types(adapter: &AdapterConfig) -> &'static [DeliveryIdentifierType] {
    use DeliveryIdentifierType::*;
    match adapter {
        // An in-house app's user id may be an e-mail address or a phone number.
        AdapterConfig::Generic(_) => &[ChannelSpecificOpaqueId, PhoneNumber, EmailAddress],
        AdapterConfig::Whatsapp(_) | AdapterConfig::Twilio(_) => {
            &[PhoneNumber, ChannelSpecificOpaqueId]
        }
        AdapterConfig::Email(_) => &[EmailAddress],
        AdapterConfig::Telegram(_)
        | AdapterConfig::Viber(_)
        | AdapterConfig::Messenger(_)
        | AdapterConfig::Line(_)
        | AdapterConfig::Slack(_)
        | AdapterConfig::Instagram(_) => &[ChannelSpecificOpaqueId],
    }
}

/// Any type, when every channel takes any type.
const ANY_TYPE: &[&str] = &["image/*", "video/*", "audio/*", "application/*", "text/*"];

/// The channels capabilities are derived from: the linked ones, or, before any is linked
/// (the first `register`), every channel that could be.
pub fn capability_channels(config: &Config) -> Vec<&str> {
    let linkable = |(_, c): &(&String, &crate::config::ChannelConfig)| {
        !matches!(c.adapter, AdapterConfig::Email(_))
    };
    let linked: Vec<&str> = config
        .channels
        .iter()
        .filter(linkable)
        .filter(|(_, c)| c.hubspot.is_some())
        .map(|(id, _)| id.as_str())
        .collect();
    if !linked.is_empty() {
        return linked;
    }
    config
        .channels
        .iter()
        .filter(linkable)
        .map(|(id, _)| id.as_str())
        .collect()
}

/// What HubSpot offers reps on this channel: what every one of `channels` can carry.
/// One custom channel serves every linked channel, so limits are the strictest of them.
pub fn capabilities(config: &Config, channels: &[&str]) -> Capabilities {
    let adapters: Vec<&AdapterConfig> = channels
        .iter()
        .filter_map(|id| config.channel(id))
        .map(|c| &c.adapter)
        .collect();
    // The recipient (our channel) is always an opaque id.
    let mut types: BTreeSet<&str> =
        BTreeSet::from([DeliveryIdentifierType::ChannelSpecificOpaqueId.as_str()]);
    let mut kinds = vec![DeliveryIdentifierType::ChannelSpecificOpaqueId];
    for adapter in &adapters {
        for kind in identifier_types(adapter) {
            if types.insert(kind.as_str()) {
                kinds.push(*kind);
            }
        }
    }
    let limits: Vec<OutgoingFiles> = adapters
        .iter()
        .map(|a| outgoing_files(a, config.media.max_bytes))
        .collect();
    let min = |f: fn(&OutgoingFiles) -> u64| limits.iter().map(f).min().unwrap_or(0);
    let mut mime: Option<Vec<&str>> = None;
    for limit in &limits {
        if let Some(allowed) = limit.mime_types {
            mime = Some(match mime {
                None => allowed.to_vec(),
                Some(so_far) => so_far.into_iter().filter(|m| allowed.contains(m)).collect(),
            });
        }
    }
    let mime = mime.unwrap_or_else(|| ANY_TYPE.to_vec());
    let max_files = min(|l| u64::from(l.max_files)) as u32;
    let files_go_out = max_files > 0 && !mime.is_empty();
    Capabilities {
        delivery_identifier_types: kinds,
        threading_model: "INTEGRATION_THREAD_ID".into(),
        // Platforms carry plain text: the composer offers no formatting to lose.
        rich_text: vec![],
        allow_inline_images: false,
        allow_outgoing_messages: !adapters.is_empty(),
        // A conversation starts with the contact: there is no thread to send into before.
        allow_conversation_start: false,
        allow_multiple_recipients: false,
        outgoing_attachment_types: if files_go_out {
            vec!["FILE".into()]
        } else {
            vec![]
        },
        allowed_file_attachment_mime_types: mime.into_iter().map(str::to_owned).collect(),
        max_file_attachment_count: max_files,
        max_file_attachment_size_bytes: min(|l| l.max_file_bytes),
        max_total_file_attachment_size_bytes: min(|l| l.max_total_bytes),
    }
}

/// What `register` is asked for beyond the config.
#[derive(Clone, Debug)]
pub struct RegisterOptions {
    /// The channel's name in HubSpot; an existing channel of the app with this name is
    /// updated instead of a second one created.
    pub name: String,
    pub description: String,
    pub logo_url: Option<String>,
}

impl Default for RegisterOptions {
    fn default() -> Self {
        Self {
            name: DEFAULT_CHANNEL_NAME.into(),
            description: DEFAULT_DESCRIPTION.into(),
            logo_url: None,
        }
    }
}

/// What `register` did to the channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterAction {
    Created,
    Updated,
    Unchanged,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Registered {
    pub action: RegisterAction,
    pub channel_id: String,
    pub name: String,
    pub webhook_url: String,
    /// The channels the capabilities were derived from.
    pub derived_from: Vec<String>,
    pub capabilities: Capabilities,
    /// Whether `[hubspot].channel_id` already names this channel.
    pub config_has_it: bool,
}

impl Registered {
    pub fn text(&self) -> String {
        let verb = match self.action {
            RegisterAction::Created => "Created",
            RegisterAction::Updated => "Updated",
            RegisterAction::Unchanged => "Up to date:",
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{verb} HubSpot custom channel {} ({:?}).",
            self.channel_id, self.name
        );
        let _ = writeln!(out, "Webhook URL: {}", self.webhook_url);
        let c = &self.capabilities;
        let _ = writeln!(
            out,
            "Capabilities from channels {}: identifiers {}; files {} (up to {}, {} bytes each).",
            self.derived_from.join(", "),
            c.delivery_identifier_types
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            c.allowed_file_attachment_mime_types.join(", "),
            c.max_file_attachment_count,
            c.max_file_attachment_size_bytes,
        );
        if self.config_has_it {
            let _ = writeln!(
                out,
                "The config's [hubspot] channel_id is already {}.",
                self.channel_id
            );
        } else {
            let _ = writeln!(
                out,
                "\nPut this line in the [hubspot] section of your config:"
            );
            let _ = writeln!(out, "channel_id = \"{}\"", self.channel_id);
        }
        out
    }
}

/// Creates the app's custom channel, or updates the one that exists: the one
/// `[hubspot].channel_id` names, else the one named `options.name`. Never creates a second.
pub async fn register(
    config: &Config,
    options: &RegisterOptions,
) -> Result<Registered, SetupError> {
    let hubspot = section(config)?;
    if hubspot.developer_api_key.is_none() {
        return Err(SetupError::Config(
            "hubspot.developer_api_key is required to register the channel: HubSpot takes \
             channel definitions only with the developer account's API key"
                .into(),
        ));
    }
    let webhook_url = webhook_url(config)?;
    let derived_from = capability_channels(config);
    if derived_from.is_empty() {
        return Err(SetupError::Config(
            "no channel can be linked to HubSpot: add a [channels.<id>] that is not an email \
             channel first"
                .into(),
        ));
    }
    let capabilities = capabilities(config, &derived_from);
    let client = client(hubspot)?;
    let channels = client.list_channels().await.map_err(|e| {
        hubspot_error(
            "cannot list the app's custom channels",
            Credential::DeveloperKey,
            e,
        )
    })?;
    let existing = match &hubspot.channel_id {
        Some(id) => Some(channels.iter().find(|c| &c.id == id).ok_or_else(|| {
            SetupError::Conflict(format!(
                "hubspot.channel_id {id} is not a custom channel of app {}: it was archived or \
                 belongs to another app. Remove channel_id from the config to register a new \
                 channel (HubSpot keeps no link between the two)",
                hubspot.app_id
            ))
        })?),
        None => {
            let named: Vec<_> = channels
                .iter()
                .filter(|c| c.name.as_deref() == Some(options.name.as_str()))
                .collect();
            if named.len() > 1 {
                return Err(SetupError::Conflict(format!(
                    "app {} has {} custom channels named {:?} ({}): set hubspot.channel_id to \
                     the one to keep, and archive the others in HubSpot",
                    hubspot.app_id,
                    named.len(),
                    options.name,
                    named
                        .iter()
                        .map(|c| c.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            named.into_iter().next()
        }
    };
    let mut definition = ChannelDefinition {
        name: options.name.clone(),
        capabilities: capabilities.clone(),
        webhook_url: Some(webhook_url.clone()),
        channel_description: Some(options.description.clone()),
        channel_logo_url: options.logo_url.clone(),
    };
    let (action, channel_id) = match existing {
        None => {
            let created = client.create_channel(&definition).await.map_err(|e| {
                hubspot_error(
                    "cannot create the custom channel",
                    Credential::DeveloperKey,
                    e,
                )
            })?;
            (RegisterAction::Created, created.id)
        }
        Some(channel) => {
            // The PATCH schema requires the logo: keep the channel's when none is given.
            if definition.channel_logo_url.is_none() {
                definition.channel_logo_url =
                    Some(channel.channel_logo_url.clone().unwrap_or_default());
            }
            let wanted = serde_json::to_value(&capabilities).ok();
            let same = channel.name.as_deref() == Some(definition.name.as_str())
                && channel.webhook_url == definition.webhook_url
                && channel.channel_description == definition.channel_description
                && (options.logo_url.is_none() || channel.channel_logo_url == options.logo_url)
                && channel.capabilities == wanted;
            if same {
                (RegisterAction::Unchanged, channel.id.clone())
            } else {
                client
                    .update_channel(&channel.id, &definition)
                    .await
                    .map_err(|e| {
                        hubspot_error(
                            format!("cannot update custom channel {}", channel.id),
                            Credential::DeveloperKey,
                            e,
                        )
                    })?;
                (RegisterAction::Updated, channel.id.clone())
            }
        }
    };
    Ok(Registered {
        action,
        config_has_it: hubspot.channel_id.as_deref() == Some(channel_id.as_str()),
        channel_id,
        name: options.name.clone(),
        webhook_url,
        derived_from: derived_from.into_iter().map(str::to_owned).collect(),
        capabilities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Identifier;

    fn adapter(kind: &str) -> AdapterConfig {
        let text = match kind {
            "generic" => {
                "kind = \"generic\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\noutbound_url = \"http://127.0.0.1:9/o\""
            }
            "telegram" => "kind = \"telegram\"\nbot_token = \"1:a\"\nsecret_token = \"st\"",
            "whatsapp" => {
                "kind = \"whatsapp\"\naccess_token = \"t\"\napp_secret = \"s\"\nverify_token = \"v\"\nphone_number_id = \"1\""
            }
            "twilio" => {
                "kind = \"twilio\"\naccount_sid = \"AC1\"\nauth_token = \"t\"\nfrom = \"+15550100\""
            }
            _ => unreachable!(),
        };
        toml::from_str(text).expect(kind)
    }

    /// The identifier types a kind declares cover what publishing gives its contacts.
    #[test]
    fn declared_identifier_types_cover_what_publishing_sends() {
        let cases = [
            ("generic", "app_user", "u-7"),
            ("generic", "app_user", "ana@example.com"),
            ("generic", "app_user", "+15551234567"),
            ("telegram", "telegram_user", "123456789"),
            ("whatsapp", "whatsapp_user", "15551234567"),
            ("twilio", "twilio_address", "whatsapp:+15551234567"),
            ("twilio", "twilio_address", "messenger:1234"),
        ];
        for (kind, id_kind, value) in cases {
            let sent = crate::hubspot::publish::delivery_identifier(&Identifier {
                kind: id_kind.into(),
                value: value.into(),
            });
            assert!(
                identifier_types(&adapter(kind)).contains(&sent.kind),
                "{kind} {value}: {:?}",
                sent.kind
            );
        }
    }
}
