//! The credentials published with the default config (README, config/default.toml): fine
//! on a laptop, an open door anywhere else.

use super::Config;
use crate::adapters::AdapterConfig;

/// SHA-256 of the published API tokens, with the token each one is the hash of.
const PUBLISHED_TOKENS: [(&str, &str); 2] = [
    (
        "1734d503f6aa6a047c36d113cbad769f719c93784b469b771c4c3e7c63adbefd",
        "dev-admin-token",
    ),
    (
        "9cb337e45f79a168def29e46b65f9babac859dcfe66912c4c6de4039ab63c4c8",
        "dev-rep-token",
    ),
];

/// The demo channel's published `whsec_` secret.
const PUBLISHED_SECRET: &str = "whsec_Y2hhbm5lbC1icmlkZ2UtZGV2LXNlY3JldC1vbmx5ISE=";

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
            && generic.secret.expose() == PUBLISHED_SECRET
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
}
