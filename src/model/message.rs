//! The normalized message: what every adapter turns a platform's payload into, what the
//! store keeps and what the API shows. Wire names here are part of the public contract.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::ids::{ConversationId, MessageId};

/// Which way a message travelled: `internal` ones (comments) never leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
    Internal,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::Internal => "internal",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "inbound" => Some(Direction::Inbound),
            "outbound" => Some(Direction::Outbound),
            "internal" => Some(Direction::Internal),
            _ => None,
        }
    }
}

/// Who wrote a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Sender {
    #[serde(rename = "type")]
    pub kind: SenderKind,
    pub id: String,
}

/// Who writes messages and makes changes: the contact, a rep, an API token bound to no
/// rep (its `id` is the token's name), or the bridge itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SenderKind {
    Contact,
    Rep,
    Token,
    System,
}

impl SenderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SenderKind::Contact => "contact",
            SenderKind::Rep => "rep",
            SenderKind::Token => "token",
            SenderKind::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "contact" => Some(SenderKind::Contact),
            "rep" => Some(SenderKind::Rep),
            "token" => Some(SenderKind::Token),
            "system" => Some(SenderKind::System),
            _ => None,
        }
    }
}

/// Where a message stands on its way to the other side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// An inbound message we stored.
    Received,
    /// An outbound message waiting for (or retrying) its send.
    Queued,
    Sent,
    Delivered,
    Read,
    Failed,
    /// An internal comment: never sent anywhere.
    Internal,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Received => "received",
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Internal => "internal",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "received" => Some(DeliveryStatus::Received),
            "queued" => Some(DeliveryStatus::Queued),
            "sent" => Some(DeliveryStatus::Sent),
            "delivered" => Some(DeliveryStatus::Delivered),
            "read" => Some(DeliveryStatus::Read),
            "failed" => Some(DeliveryStatus::Failed),
            "internal" => Some(DeliveryStatus::Internal),
            _ => None,
        }
    }
}

/// The delivery state shown on every message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
// `Delivery` in the document is the outbox job (`store::Delivery`).
#[schema(as = MessageDelivery)]
pub struct Delivery {
    pub status: DeliveryStatus,
    pub error: Option<String>,
    pub attempts: u32,
    /// How a reply went out when it differs from what the rep wrote (a part the platform
    /// cannot carry, sent as a link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What a message said before an edit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Revision {
    pub parts: Vec<Part>,
    pub replaced_at: DateTime<Utc>,
}

/// Where an edit stands in the platform's own order of edits to one message, compared
/// element by element: Telegram `[edit_date, update_id]`, Messenger
/// `[num_edit, timestamp]`, generic `[timestamp in ms]`. Only edits of the same message
/// are compared, so each platform picks its own fields.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EditOrder(pub Vec<i64>);

/// What a thread entry is: a message exchanged with the contact, or a rep's internal
/// comment (direction `internal`), which is never sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    #[default]
    Message,
    Comment,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Message => "message",
            MessageKind::Comment => "comment",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "message" => Some(MessageKind::Message),
            "comment" => Some(MessageKind::Comment),
            _ => None,
        }
    }
}

/// A stored message as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    pub id: MessageId,
    /// `message`, or `comment` for a rep's internal comment.
    #[serde(rename = "type", default)]
    pub kind: MessageKind,
    pub conversation_id: ConversationId,
    pub channel_id: String,
    pub direction: Direction,
    pub platform_message_id: Option<String>,
    pub sender: Sender,
    pub reply_to: Option<MessageId>,
    pub parts: Vec<Part>,
    /// The reps a comment mentions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    pub delivery: Delivery,
    pub created_at: DateTime<Utc>,
    /// When the contact last edited it; earlier versions are in `history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Revision>,
    /// When the contact took it back (it stays, marked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retracted_at: Option<DateTime<Utc>>,
}

/// One piece of a message. A platform message with a photo and a caption is one `image`
/// part; an album is several.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    Text(TextPart),
    Image(MediaPart),
    Video(MediaPart),
    Audio(MediaPart),
    VoiceNote(MediaPart),
    Sticker(MediaPart),
    File(MediaPart),
    Location(LocationPart),
    Contact(ContactPart),
    /// Something the platform sent that has no mapping; kept whole rather than dropped.
    Unsupported(UnsupportedPart),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextPart {
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationPart {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPart {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub phones: Vec<String>,
    #[serde(default)]
    pub emails: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsupportedPart {
    pub platform_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<Value>,
}

/// A media attachment with its optional caption.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaPart {
    pub media: Media,
    #[serde(default)]
    pub caption: Option<String>,
}

/// Where a media file is and what it is. `platform_ref` is the platform's own handle
/// (a Telegram file_id, a WhatsApp media id); `url` is a fetchable address.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Media {
    #[serde(default)]
    pub platform_ref: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub size_bytes: Option<u64>,
    #[serde(default)]
    pub filename: Option<String>,
    #[serde(default)]
    pub duration_s: Option<f64>,
}

/// Why a part list was refused, naming the offending field (`parts[1].media.url`).
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{path}: {message}")]
pub struct PartError {
    pub path: String,
    pub message: String,
}

impl PartError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl Part {
    /// The part's wire type (`voice_note`, `image`…), or the platform's own type for a part
    /// with no mapping: what a note about a part that was not sent calls it.
    pub fn kind_name(&self) -> &str {
        match self {
            Part::Text(_) => "text",
            Part::Image(_) => "image",
            Part::Video(_) => "video",
            Part::Audio(_) => "audio",
            Part::VoiceNote(_) => "voice_note",
            Part::Sticker(_) => "sticker",
            Part::File(_) => "file",
            Part::Location(_) => "location",
            Part::Contact(_) => "contact",
            Part::Unsupported(u) => &u.platform_type,
        }
    }

    /// Reads parts from JSON as sent by an in-house app or a rep. Unknown part types are
    /// kept as `unsupported` with their raw JSON; known ones must be well formed.
    pub fn parse_list(value: &Value, path: &str) -> Result<Vec<Part>, PartError> {
        let items = value
            .as_array()
            .ok_or_else(|| PartError::new(path, "must be a list of parts"))?;
        let parts = items
            .iter()
            .enumerate()
            .map(|(i, item)| Part::parse_one(item, &format!("{path}[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        validate_parts(&parts, path)?;
        Ok(parts)
    }

    fn parse_one(value: &Value, path: &str) -> Result<Part, PartError> {
        let kind = value
            .get("type")
            .ok_or_else(|| PartError::new(format!("{path}.type"), "is required"))?
            .as_str()
            .ok_or_else(|| PartError::new(format!("{path}.type"), "must be a string"))?;
        // Each kind's fields are read as their own struct (not through the tagged enum,
        // which would buffer them and lose the path of a bad field).
        let mut fields = value.clone();
        if let Some(object) = fields.as_object_mut() {
            object.remove("type");
        }
        fn read<T: serde::de::DeserializeOwned>(
            fields: &Value,
            path: &str,
        ) -> Result<T, PartError> {
            serde_path_to_error::deserialize(fields).map_err(|e| {
                let inner = e.path().to_string();
                let message = e.into_inner().to_string();
                PartError::new(super::field_path(path, &inner, &message), message)
            })
        }
        Ok(match kind {
            "text" => Part::Text(read(&fields, path)?),
            "image" => Part::Image(read(&fields, path)?),
            "video" => Part::Video(read(&fields, path)?),
            "audio" => Part::Audio(read(&fields, path)?),
            "voice_note" => Part::VoiceNote(read(&fields, path)?),
            "sticker" => Part::Sticker(read(&fields, path)?),
            "file" => Part::File(read(&fields, path)?),
            "location" => Part::Location(read(&fields, path)?),
            "contact" => Part::Contact(read(&fields, path)?),
            "unsupported" => Part::Unsupported(read(&fields, path)?),
            other => Part::Unsupported(UnsupportedPart {
                platform_type: other.to_owned(),
                raw: Some(value.clone()),
            }),
        })
    }

    /// The text a human would read first: the text itself, or a media caption.
    pub fn text(&self) -> Option<&str> {
        match self {
            Part::Text(t) => Some(&t.text),
            _ => self.media()?.caption.as_deref(),
        }
    }

    /// The file and caption of a media part (image, video, audio, voice note, sticker,
    /// file); `None` for text, locations, contacts and unsupported parts.
    pub fn media(&self) -> Option<&MediaPart> {
        match self {
            Part::Image(m)
            | Part::Video(m)
            | Part::Audio(m)
            | Part::VoiceNote(m)
            | Part::Sticker(m)
            | Part::File(m) => Some(m),
            _ => None,
        }
    }

    /// [`Part::media`], to change.
    pub fn media_mut(&mut self) -> Option<&mut MediaPart> {
        match self {
            Part::Image(m)
            | Part::Video(m)
            | Part::Audio(m)
            | Part::VoiceNote(m)
            | Part::Sticker(m)
            | Part::File(m) => Some(m),
            _ => None,
        }
    }
}

/// Rules serde cannot express: no empty message, no empty text, media must say where it
/// is, coordinates must be on Earth.
pub fn validate_parts(parts: &[Part], path: &str) -> Result<(), PartError> {
    if parts.is_empty() {
        return Err(PartError::new(path, "must not be empty"));
    }
    for (i, part) in parts.iter().enumerate() {
        let at = format!("{path}[{i}]");
        match part {
            Part::Text(t) if t.text.trim().is_empty() => {
                return Err(PartError::new(format!("{at}.text"), "must not be empty"));
            }
            Part::Image(m)
            | Part::Video(m)
            | Part::Audio(m)
            | Part::VoiceNote(m)
            | Part::Sticker(m)
            | Part::File(m)
                if m.media.url.is_none() && m.media.platform_ref.is_none() =>
            {
                return Err(PartError::new(
                    format!("{at}.media"),
                    "needs a url or a platform_ref",
                ));
            }
            Part::Location(l)
                if !(-90.0..=90.0).contains(&l.latitude)
                    || !(-180.0..=180.0).contains(&l.longitude) =>
            {
                return Err(PartError::new(
                    format!("{at}.latitude"),
                    "coordinates out of range",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn media_parts_give_their_file_and_caption_and_other_parts_none() {
        let parts = Part::parse_list(
            &json!([
                {"type": "text", "text": "hi"},
                {"type": "voice_note", "media": {"platform_ref": "f1"}, "caption": "listen"},
                {"type": "location", "latitude": 52.5, "longitude": 13.4},
                {"type": "story_mention", "id": "s1"}
            ]),
            "parts",
        )
        .unwrap();
        let refs: Vec<_> = parts
            .iter()
            .map(|p| p.media().and_then(|m| m.media.platform_ref.as_deref()))
            .collect();
        assert_eq!(refs, [None, Some("f1"), None, None]);
        let names: Vec<_> = parts.iter().map(Part::kind_name).collect();
        assert_eq!(names, ["text", "voice_note", "location", "story_mention"]);
        assert_eq!(parts[1].text(), Some("listen"));
    }

    #[test]
    fn every_part_kind_round_trips_through_json() {
        let parts = json!([
            {"type": "text", "text": "hi"},
            {"type": "image", "media": {"url": "https://x/a.png", "mime_type": "image/png"}, "caption": "look"},
            {"type": "voice_note", "media": {"platform_ref": "f1", "duration_s": 3.5}},
            {"type": "sticker", "media": {"platform_ref": "s1"}},
            {"type": "file", "media": {"url": "https://x/a.pdf", "filename": "a.pdf", "size_bytes": 10}},
            {"type": "location", "latitude": 52.5, "longitude": 13.4, "name": "Office"},
            {"type": "contact", "name": "Bo", "phones": ["+4912345"], "emails": []}
        ]);
        let parsed = Part::parse_list(&parts, "parts").unwrap();
        assert_eq!(parsed.len(), 7);
        let back = serde_json::to_value(&parsed).unwrap();
        assert_eq!(Part::parse_list(&back, "parts").unwrap(), parsed);
    }

    #[test]
    fn unknown_part_type_is_kept_as_unsupported_with_its_raw_json() {
        let raw = json!({"type": "poll", "question": "?"});
        let parsed = Part::parse_list(&json!([raw.clone()]), "parts").unwrap();
        assert_eq!(
            parsed,
            vec![Part::Unsupported(UnsupportedPart {
                platform_type: "poll".into(),
                raw: Some(raw)
            })]
        );
    }

    #[test]
    fn malformed_parts_name_the_offending_field() {
        let cases = [
            (json!([]), "parts"),
            (json!([{"text": "no type"}]), "parts[0].type"),
            (json!([{"type": "text"}]), "parts[0].text"),
            (json!([{"type": "text", "text": " "}]), "parts[0].text"),
            (
                json!([{"type": "text", "text": "a"}, {"type": "image", "media": {}}]),
                "parts[1].media",
            ),
            (
                json!([{"type": "image", "media": {"url": 5}}]),
                "parts[0].media.url",
            ),
            (
                json!([{"type": "location", "latitude": 91, "longitude": 0}]),
                "parts[0].latitude",
            ),
            (json!({"type": "text"}), "parts"),
        ];
        for (input, path) in cases {
            let err = Part::parse_list(&input, "parts").unwrap_err();
            assert_eq!(err.path, path, "{input}: {err}");
        }
    }
}
