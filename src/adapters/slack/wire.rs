//! Slack's Events API envelope as a request carries it.

use serde::Deserialize;
use serde_json::Value;

/// The envelope of an Events API request.
#[derive(Deserialize)]
pub(super) struct Envelope {
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) api_app_id: Option<String>,
    #[serde(default)]
    pub(super) event: Option<Value>,
    #[serde(default)]
    pub(super) authorizations: Vec<Authorization>,
    #[serde(default)]
    pub(super) challenge: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Authorization {
    #[serde(default)]
    pub(super) user_id: Option<String>,
}
