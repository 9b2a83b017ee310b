//! Telegram's JSON as the Bot API sends it: the `Message` fields we read, and the
//! envelope every method answers in. Everything else stays in the raw payload.

use serde::Deserialize;
use serde_json::Value;

/// The `Message` fields we read; everything else stays in the raw payload.
#[derive(Deserialize)]
pub(super) struct WireMessage {
    pub(super) message_id: i64,
    #[serde(default)]
    pub(super) message_thread_id: Option<i64>,
    #[serde(default)]
    pub(super) is_topic_message: Option<bool>,
    #[serde(default)]
    pub(super) from: Option<WireUser>,
    #[serde(default)]
    pub(super) sender_chat: Option<WireChat>,
    pub(super) chat: WireChat,
    pub(super) date: i64,
    #[serde(default)]
    pub(super) edit_date: Option<i64>,
    #[serde(default)]
    pub(super) text: Option<String>,
    #[serde(default)]
    pub(super) caption: Option<String>,
    #[serde(default)]
    pub(super) photo: Option<Vec<WireFile>>,
    #[serde(default)]
    pub(super) animation: Option<WireFile>,
    #[serde(default)]
    pub(super) video: Option<WireFile>,
    #[serde(default)]
    pub(super) video_note: Option<WireFile>,
    #[serde(default)]
    pub(super) voice: Option<WireFile>,
    #[serde(default)]
    pub(super) audio: Option<WireFile>,
    #[serde(default)]
    pub(super) document: Option<WireFile>,
    #[serde(default)]
    pub(super) sticker: Option<WireFile>,
    #[serde(default)]
    pub(super) venue: Option<WireVenue>,
    #[serde(default)]
    pub(super) location: Option<WireLocation>,
    #[serde(default)]
    pub(super) contact: Option<WireContact>,
    #[serde(default)]
    pub(super) reply_to_message: Option<WireReplied>,
}

#[derive(Deserialize)]
pub(super) struct WireUser {
    pub(super) id: i64,
    #[serde(default)]
    pub(super) is_bot: bool,
    #[serde(default)]
    pub(super) first_name: Option<String>,
    #[serde(default)]
    pub(super) last_name: Option<String>,
    #[serde(default)]
    pub(super) username: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireChat {
    pub(super) id: i64,
    #[serde(default)]
    pub(super) title: Option<String>,
    #[serde(default)]
    pub(super) username: Option<String>,
}

/// A file of any kind: photo size, voice, audio, video, document, sticker…
#[derive(Deserialize)]
pub(super) struct WireFile {
    pub(super) file_id: String,
    #[serde(default)]
    pub(super) file_name: Option<String>,
    #[serde(default)]
    pub(super) mime_type: Option<String>,
    #[serde(default)]
    pub(super) file_size: Option<u64>,
    #[serde(default)]
    pub(super) duration: Option<f64>,
    #[serde(default)]
    pub(super) width: Option<u64>,
    #[serde(default)]
    pub(super) height: Option<u64>,
    #[serde(default)]
    pub(super) is_animated: Option<bool>,
    #[serde(default)]
    pub(super) is_video: Option<bool>,
}

#[derive(Deserialize)]
pub(super) struct WireLocation {
    pub(super) latitude: f64,
    pub(super) longitude: f64,
}

#[derive(Deserialize)]
pub(super) struct WireVenue {
    pub(super) location: WireLocation,
    #[serde(default)]
    pub(super) title: Option<String>,
    #[serde(default)]
    pub(super) address: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireContact {
    pub(super) phone_number: String,
    #[serde(default)]
    pub(super) first_name: Option<String>,
    #[serde(default)]
    pub(super) last_name: Option<String>,
    #[serde(default)]
    pub(super) vcard: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireReplied {
    pub(super) message_id: i64,
}

#[derive(Deserialize, Default)]
pub(super) struct Envelope {
    #[serde(default)]
    pub(super) ok: bool,
    #[serde(default)]
    pub(super) result: Option<Value>,
    #[serde(default)]
    pub(super) error_code: Option<u16>,
    #[serde(default)]
    pub(super) description: Option<String>,
    #[serde(default)]
    pub(super) parameters: Option<ResponseParameters>,
}

#[derive(Deserialize, Default)]
pub(super) struct ResponseParameters {
    #[serde(default)]
    pub(super) retry_after: Option<u64>,
    #[serde(default)]
    pub(super) migrate_to_chat_id: Option<i64>,
}
