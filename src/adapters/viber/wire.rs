//! Viber's JSON as the bot API sends it: a callback's sender and message, and the answer
//! every send gets.

use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
pub(super) struct Answer {
    pub(super) status: i64,
    #[serde(default)]
    pub(super) status_message: Option<String>,
    #[serde(default)]
    pub(super) message_token: Option<Value>,
}

#[derive(Deserialize)]
pub(super) struct WireSender {
    pub(super) id: String,
    #[serde(default)]
    pub(super) name: Option<String>,
}

/// The fields of a `message` object we read (which apply depends on its `type`).
#[derive(Deserialize)]
pub(super) struct WireContent {
    #[serde(default)]
    pub(super) text: Option<String>,
    #[serde(default)]
    pub(super) media: Option<String>,
    #[serde(default)]
    pub(super) file_name: Option<String>,
    #[serde(default)]
    pub(super) size: Option<u64>,
    #[serde(default)]
    pub(super) duration: Option<f64>,
    #[serde(default)]
    pub(super) sticker_id: Option<Value>,
    #[serde(default)]
    pub(super) location: Option<WireLocation>,
    #[serde(default)]
    pub(super) contact: Option<WireContact>,
}

#[derive(Deserialize)]
pub(super) struct WireLocation {
    pub(super) lat: f64,
    pub(super) lon: f64,
}

#[derive(Deserialize)]
pub(super) struct WireContact {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) phone_number: Option<String>,
}
