//! The `[hubspot]` section (HubSpot custom-channel mode, issue #18) and a channel's
//! `hubspot = { channel_account_id = "…" }` link: their shape, defaults and rules. Knows
//! nothing of how HubSpot is called (that is `crate::hubspot`).

use serde::Deserialize;

use super::load::ConfigError;
use crate::model::is_http_url;
use crate::secret::Secret;

/// The documented per-account limit: 110 requests in any 10 s.
pub const DEFAULT_RATE_LIMIT_REQUESTS: u32 = 110;
pub const DEFAULT_RATE_LIMIT_WINDOW_MS: u64 = 10_000;
pub const DEFAULT_API_BASE: &str = "https://api.hubapi.com";

/// How the bridge talks to HubSpot: the app, its credentials and the custom channel.
#[derive(Clone, Debug, PartialEq)]
pub struct HubspotConfig {
    /// The HubSpot app's id (`appId` on channel registration calls).
    pub app_id: String,
    /// Verifies HubSpot's webhooks (signature v3) and signs OAuth refreshes.
    pub client_secret: Secret,
    pub auth: HubspotAuth,
    /// Only `hubspot register` uses it (channel definitions take the developer key).
    pub developer_api_key: Option<Secret>,
    /// The custom channel; `None` until `hubspot register` printed it and the operator
    /// wrote it here.
    pub channel_id: Option<String>,
    /// `https://api.hubapi.com`; tests point it at a local fake.
    pub api_base: String,
    /// At most this many requests are sent in any `rate_limit_window_ms`; 0 turns the
    /// client-side limiter off (the bench).
    pub rate_limit_requests: u32,
    pub rate_limit_window_ms: u64,
}

/// The bearer token the bridge calls HubSpot with.
#[derive(Clone, Debug, PartialEq)]
pub enum HubspotAuth {
    /// A token that does not expire (a private or test app's access token).
    Static(Secret),
    /// OAuth: the refresh token is exchanged at `POST {api_base}/oauth/v1/token`.
    OAuth {
        client_id: String,
        refresh_token: Secret,
    },
}

/// A channel's link to a HubSpot channel account: its messages are published there.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelHubspot {
    pub channel_account_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHubspot {
    app_id: String,
    client_secret: Secret,
    #[serde(default)]
    access_token: Option<Secret>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    refresh_token: Option<Secret>,
    #[serde(default)]
    developer_api_key: Option<Secret>,
    #[serde(default)]
    channel_id: Option<String>,
    #[serde(default = "default_api_base")]
    api_base: String,
    #[serde(default = "default_rate_limit_requests")]
    rate_limit_requests: u32,
    #[serde(default = "default_rate_limit_window_ms")]
    rate_limit_window_ms: u64,
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.to_owned()
}
fn default_rate_limit_requests() -> u32 {
    DEFAULT_RATE_LIMIT_REQUESTS
}
fn default_rate_limit_window_ms() -> u64 {
    DEFAULT_RATE_LIMIT_WINDOW_MS
}

/// HubSpot ids travel as decimal strings.
fn is_hubspot_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Checks the section's rules (every error at once) and builds the config.
pub(super) fn build(raw: RawHubspot, errors: &mut Vec<ConfigError>) -> Option<HubspotConfig> {
    let before = errors.len();
    if !is_hubspot_id(&raw.app_id) {
        errors.push(ConfigError::new(
            "hubspot.app_id",
            "must be the HubSpot app's numeric id",
        ));
    }
    if let Some(id) = &raw.channel_id
        && !is_hubspot_id(id)
    {
        errors.push(ConfigError::new(
            "hubspot.channel_id",
            "must be the numeric channel id `hubspot register` printed",
        ));
    }
    if !is_http_url(&raw.api_base) {
        errors.push(ConfigError::new(
            "hubspot.api_base",
            "must be an http(s) URL",
        ));
    }
    if raw.rate_limit_requests > 0 && raw.rate_limit_window_ms == 0 {
        errors.push(ConfigError::new(
            "hubspot.rate_limit_window_ms",
            "must be more than 0 while rate_limit_requests is set (0 requests turns the limiter off)",
        ));
    }
    let auth = match (raw.access_token, raw.client_id, raw.refresh_token) {
        (Some(token), None, None) => Some(HubspotAuth::Static(token)),
        (None, Some(client_id), Some(refresh_token)) if !client_id.trim().is_empty() => {
            Some(HubspotAuth::OAuth {
                client_id,
                refresh_token,
            })
        }
        (None, None, None) => {
            errors.push(ConfigError::new(
                "hubspot.access_token",
                "is required, or client_id and refresh_token for OAuth",
            ));
            None
        }
        (Some(_), _, _) => {
            errors.push(ConfigError::new(
                "hubspot.access_token",
                "set either access_token or client_id + refresh_token, not both",
            ));
            None
        }
        (None, client_id, refresh) => {
            let missing = if client_id.as_deref().is_none_or(|c| c.trim().is_empty()) {
                "hubspot.client_id"
            } else {
                debug_assert!(refresh.is_none());
                "hubspot.refresh_token"
            };
            errors.push(ConfigError::new(
                missing,
                "OAuth needs both client_id and refresh_token",
            ));
            None
        }
    };
    if errors.len() > before {
        return None;
    }
    Some(HubspotConfig {
        app_id: raw.app_id,
        client_secret: raw.client_secret,
        auth: auth?,
        developer_api_key: raw.developer_api_key,
        channel_id: raw.channel_id,
        api_base: raw.api_base.trim_end_matches('/').to_owned(),
        rate_limit_requests: raw.rate_limit_requests,
        rate_limit_window_ms: raw.rate_limit_window_ms,
    })
}

/// A channel's `hubspot` link: a numeric account id, and only where publishing can work.
pub(super) fn check_channel_link(
    channel: &str,
    link: &ChannelHubspot,
    kind: &str,
    hubspot: Option<&HubspotConfig>,
    errors: &mut Vec<ConfigError>,
) {
    let key = format!("channels.{channel}.hubspot");
    if !is_hubspot_id(&link.channel_account_id) {
        errors.push(ConfigError::new(
            format!("{key}.channel_account_id"),
            "must be the numeric channel account id `hubspot connect` printed",
        ));
    }
    if kind == "email" {
        errors.push(ConfigError::new(
            key.clone(),
            "email channels only send; there is nothing to publish to HubSpot",
        ));
    }
    match hubspot {
        None => errors.push(ConfigError::new(
            key,
            "links the channel to HubSpot, but there is no [hubspot] section",
        )),
        Some(h) if h.channel_id.is_none() => errors.push(ConfigError::new(
            "hubspot.channel_id",
            format!(
                "is required once a channel links to HubSpot ({key}); `channel-bridge hubspot register` prints it"
            ),
        )),
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;

    fn base(hubspot: &str, link: &str) -> String {
        format!(
            r#"
[hubspot]
{hubspot}

[channels.tg]
kind = "telegram"
bot_token = "123:abc"
secret_token = "secret-token-1"
{link}
"#
        )
    }

    fn errors(text: &str) -> Vec<String> {
        match load_str(text, []) {
            Ok(_) => vec![],
            Err(e) => {
                e.0.iter()
                    .map(|e| format!("{}: {}", e.key, e.message))
                    .collect()
            }
        }
    }

    #[test]
    fn a_static_token_config_loads_with_the_documented_defaults() {
        let text = base(
            "app_id = \"4242\"\nclient_secret = \"cs\"\naccess_token = \"tok\"\nchannel_id = \"1001\"",
            "hubspot = { channel_account_id = \"2002\" }",
        );
        let config = load_str(&text, []).unwrap();
        let hubspot = config.hubspot.unwrap();
        assert_eq!(hubspot.api_base, "https://api.hubapi.com");
        assert_eq!(hubspot.rate_limit_requests, 110);
        assert_eq!(hubspot.rate_limit_window_ms, 10_000);
        assert!(matches!(hubspot.auth, super::HubspotAuth::Static(_)));
        let link = config.channels["tg"].hubspot.clone().unwrap();
        assert_eq!(link.channel_account_id, "2002");
    }

    #[test]
    fn oauth_needs_both_keys_and_excludes_a_static_token() {
        let missing = errors(&base(
            "app_id = \"4242\"\nclient_secret = \"cs\"\nclient_id = \"abc\"",
            "",
        ));
        assert!(
            missing
                .iter()
                .any(|e| e.starts_with("hubspot.refresh_token")),
            "{missing:?}"
        );
        let both = errors(&base(
            "app_id = \"4242\"\nclient_secret = \"cs\"\naccess_token = \"t\"\nclient_id = \"abc\"\nrefresh_token = \"r\"",
            "",
        ));
        assert!(
            both.iter().any(|e| e.starts_with("hubspot.access_token")),
            "{both:?}"
        );
        let none = errors(&base("app_id = \"4242\"\nclient_secret = \"cs\"", ""));
        assert!(
            none.iter().any(|e| e.starts_with("hubspot.access_token")),
            "{none:?}"
        );
        let oauth = base(
            "app_id = \"4242\"\nclient_secret = \"cs\"\nclient_id = \"abc\"\nrefresh_token = \"r\"",
            "",
        );
        assert!(load_str(&oauth, []).is_ok());
    }

    #[test]
    fn every_hubspot_error_is_reported_at_once_naming_its_key() {
        let errors = errors(&base(
            "app_id = \"my-app\"\nclient_secret = \"cs\"\naccess_token = \"t\"\nchannel_id = \"x1\"\napi_base = \"ftp://x\"\nrate_limit_window_ms = 0",
            "hubspot = { channel_account_id = \"abc\" }",
        ));
        for key in [
            "hubspot.app_id",
            "hubspot.channel_id",
            "hubspot.api_base",
            "hubspot.rate_limit_window_ms",
            "channels.tg.hubspot.channel_account_id",
        ] {
            assert!(
                errors.iter().any(|e| e.starts_with(key)),
                "{key} missing in {errors:?}"
            );
        }
    }

    #[test]
    fn a_linked_channel_needs_the_section_and_a_channel_id() {
        let no_section = errors(
            "[channels.tg]\nkind = \"telegram\"\nbot_token = \"1:a\"\nsecret_token = \"st\"\nhubspot = { channel_account_id = \"2002\" }\n",
        );
        assert!(
            no_section
                .iter()
                .any(|e| e.starts_with("channels.tg.hubspot") && e.contains("no [hubspot]")),
            "{no_section:?}"
        );
        let no_channel = errors(&base(
            "app_id = \"4242\"\nclient_secret = \"cs\"\naccess_token = \"t\"",
            "hubspot = { channel_account_id = \"2002\" }",
        ));
        assert!(
            no_channel
                .iter()
                .any(|e| e.starts_with("hubspot.channel_id")),
            "{no_channel:?}"
        );
    }

    #[test]
    fn a_linked_channel_routes_to_nobody_unless_told_otherwise() {
        let text = base(
            "app_id = \"4242\"\nclient_secret = \"cs\"\naccess_token = \"tok\"\nchannel_id = \"1001\"",
            "hubspot = { channel_account_id = \"2002\" }",
        );
        let config = load_str(&text, []).unwrap();
        assert_eq!(
            config.channels["tg"].routing,
            crate::config::RoutingConfig::Nobody
        );
    }

    /// The commented `[hubspot]` block of config/default.toml shows the code's defaults.
    #[test]
    fn the_hubspot_defaults_shown_in_default_toml_are_the_codes() {
        let text = crate::config::DEFAULT_CONFIG;
        let block: Vec<&str> = text
            .lines()
            .skip_while(|l| l.trim() != "# [hubspot]")
            .skip(1)
            .take_while(|l| l.starts_with('#'))
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.contains("  # (default)"))
            .collect();
        assert_eq!(block.len(), 3, "{block:?}");
        let shown = base(
            &format!(
                "app_id = \"4242\"\nclient_secret = \"cs\"\naccess_token = \"t\"\n{}",
                block.join("\n")
            ),
            "",
        );
        let plain = base(
            "app_id = \"4242\"\nclient_secret = \"cs\"\naccess_token = \"t\"",
            "",
        );
        assert_eq!(
            format!("{:?}", load_str(&shown, []).unwrap().hubspot),
            format!("{:?}", load_str(&plain, []).unwrap().hubspot)
        );
    }
}
