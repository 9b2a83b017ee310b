//! Secrets in config: a literal, `{ env = "NAME" }` or `{ file = "/run/secrets/x" }`,
//! resolved while the config loads and never printed afterwards.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A resolved secret value. `Debug` and `Display` print a placeholder, so a secret that
/// ends up in a log line or an error by mistake shows nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used (signing, verifying, sending).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Replaces every appearance of `secrets` in `text` (as written, percent-encoded, and a
/// `whsec_` key's base64 part) with `[redacted]`: for error text that comes from outside,
/// such as a platform's error body echoing the URL that carried a bot token.
pub fn redact(text: &str, secrets: &[&Secret]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        let value = secret.expose();
        let mut forms = vec![value.to_owned()];
        forms.push(url::form_urlencoded::byte_serialize(value.as_bytes()).collect());
        if let Some(key) = value.strip_prefix("whsec_") {
            forms.push(key.to_owned());
        }
        // Longest first, so a form containing another is replaced whole.
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        for form in forms.iter().filter(|f| f.len() >= 4) {
            if out.contains(form.as_str()) {
                out = out.replace(form.as_str(), "[redacted]");
            }
        }
    }
    out
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SecretSource {
    Literal(String),
    Env { env: String },
    File { file: String },
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let source = SecretSource::deserialize(deserializer).map_err(|_| {
            D::Error::custom(r#"expected a string, { env = "NAME" } or { file = "PATH" }"#)
        })?;
        let value = match source {
            SecretSource::Literal(value) => value,
            SecretSource::Env { env } => std::env::var(&env)
                .map_err(|_| D::Error::custom(format!("environment variable {env} is not set")))?,
            SecretSource::File { file } => std::fs::read_to_string(&file)
                .map_err(|e| D::Error::custom(format!("cannot read secret file {file}: {e}")))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        };
        if value.is_empty() {
            return Err(D::Error::custom("secret is empty"));
        }
        Ok(Secret(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        s: Secret,
    }

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
    }

    #[test]
    fn redact_removes_a_secret_in_every_form_it_travels_in() {
        let bot = Secret::new("123456:AAH-bot/token+x");
        let hook = Secret::new("whsec_c2VjcmV0LWtleS1ieXRlcw==");
        let text = "HTTP 404: no route /bot123456:AAH-bot/token+x/sendMessage \
                    (123456%3AAAH-bot%2Ftoken%2Bx) key c2VjcmV0LWtleS1ieXRlcw==";
        let clean = redact(text, &[&bot, &hook]);
        assert!(!clean.contains("AAH-bot"), "{clean}");
        assert!(!clean.contains("c2VjcmV0"), "{clean}");
        assert!(
            clean.starts_with("HTTP 404: no route /bot[redacted]/sendMessage"),
            "{clean}"
        );
    }

    #[test]
    fn reads_literal_env_and_file_forms() {
        let h: Holder = toml::from_str(r#"s = "lit""#).unwrap();
        assert_eq!(h.s.expose(), "lit");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "from-file\n").unwrap();
        let h: Holder = toml::from_str(&format!("s = {{ file = {:?} }}", path)).unwrap();
        assert_eq!(h.s.expose(), "from-file");

        let err = toml::from_str::<Holder>(r#"s = { env = "CB_TEST_SURELY_UNSET_VAR" }"#)
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("CB_TEST_SURELY_UNSET_VAR is not set")
        );
    }
}
