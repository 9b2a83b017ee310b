//! The credentials published with the default and demo configs (README,
//! config/default.toml, config/demo.toml): fine
//! on a laptop, an open door anywhere else.

use super::Config;
use crate::adapters::AdapterConfig;

/// SHA-256 of the published API tokens, with the token each one is the hash of.
const PUBLISHED_TOKENS: [(&str, &str); 4] = [
    (
        "1734d503f6aa6a047c36d113cbad769f719c93784b469b771c4c3e7c63adbefd",
        "dev-admin-token",
    ),
    (
        "9cb337e45f79a168def29e46b65f9babac859dcfe66912c4c6de4039ab63c4c8",
        "dev-rep-token",
    ),
    (
        "9c220f200955d76c0a38d308225e0ef10c5f971acaf2f8d1d8f732affa5bd1dc",
        "alice-token",
    ),
    (
        "97dd3707015dcf069cf73022ed7173b1165db6eff24b441cb57fd069a8c4e525",
        "bob-token",
    ),
];

/// The demo channels' published `whsec_` secrets.
const PUBLISHED_SECRETS: [&str; 2] = [
    "whsec_Y2hhbm5lbC1icmlkZ2UtZGV2LXNlY3JldC1vbmx5ISE=",
    "whsec_Y2hhbm5lbC1icmlkZ2UtZGVtby1zaG9wLXNlY3JldCE=",
];

/// The config keys that hold a published credential, each with what it is (never the
/// secret itself), e.g. `api.tokens "dev-admin".sha256 (the hash of dev-admin-token)`.
pub fn published_credentials(config: &Config) -> Vec<String> {
    let mut found = Vec::new();
    for token in &config.api.tokens {
        let hash = hex::encode(token.sha256);
        if let Some((_, plain)) = PUBLISHED_TOKENS.iter().find(|(h, _)| *h == hash) {
            found.push(format!(
                "api.tokens {:?}.sha256 (the hash of the published {plain})",
                token.name
            ));
        }
    }
    for (id, channel) in &config.channels {
        if let AdapterConfig::Generic(generic) = &channel.adapter
            && PUBLISHED_SECRETS.contains(&generic.secret.expose())
        {
            found.push(format!("channels.{id}.secret (the published demo secret)"));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_config_carries_every_published_credential() {
        let config = crate::config::load_str(crate::config::DEFAULT_CONFIG, [])
            .expect("the built-in config loads");
        let found = published_credentials(&config);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].contains("dev-admin-token"), "{found:?}");
        assert!(found[2].starts_with("channels.demo.secret"), "{found:?}");
    }

    #[test]
    fn the_demo_config_carries_every_published_credential() {
        let demo = include_str!("../../config/demo.toml");
        let config = crate::config::load_str(demo, []).expect("the demo config loads");
        let found = published_credentials(&config);
        assert_eq!(found.len(), 5, "{found:?}");
        for plain in ["dev-admin-token", "alice-token", "bob-token"] {
            assert!(
                found.iter().any(|f| f.contains(plain)),
                "{plain}: {found:?}"
            );
        }
        for channel in ["demo", "shop"] {
            let key = format!("channels.{channel}.secret");
            assert!(
                found.iter().any(|f| f.starts_with(&key)),
                "{key}: {found:?}"
            );
        }
    }
}
