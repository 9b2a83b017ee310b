//! Twilio's form parameters as a webhook carries them.

use serde_json::{Map, Value};

use crate::adapters::{ParseError, invalid};

/// A webhook's form parameters by name (the last of a repeated name wins).
pub(super) struct Params(Map<String, Value>);

impl Params {
    pub(super) fn read(body: &[u8]) -> Result<Self, ParseError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| invalid("body", format!("is not a form-encoded body: {e}")))?;
        Ok(Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ))
    }

    /// A parameter, if sent and not empty.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    pub(super) fn required(&self, name: &str) -> Result<&str, ParseError> {
        self.get(name).ok_or_else(|| invalid(name, "is required"))
    }

    pub(super) fn number<T: std::str::FromStr>(
        &self,
        name: &str,
        what: &str,
    ) -> Result<Option<T>, ParseError> {
        self.get(name)
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|_| invalid(name, format!("must be {what}")))
            })
            .transpose()
    }

    pub(super) fn raw(&self) -> Value {
        Value::Object(self.0.clone())
    }
}
