//! LINE Messaging API: webhooks signed with the channel secret (`X-Line-Signature`), replies
//! sent as push messages with the channel access token, inbound files fetched from the
//! content API on `api-data.line.me`.
//!
//! Inbound: one POST carries `{destination, events: [...]}`; an empty list is the console's
//! "Verify" ping. Each `message` event becomes a message keyed by LINE's message id;
//! `unsend` retracts one. Follow, join, postback and the other account events carry no
//! message and are not stored. The whole event (reply token, quote token, webhook event
//! id, redelivery flag) is kept as the message's raw payload.
//!
//! Outbound: every reply is pushed (reply tokens expire within about a minute, far too soon
//! for a rep) in calls of at most five messages, each call with an `X-Line-Retry-Key`
//! derived from our message id, so a retried send is never shown twice.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha1::Digest;
use sha2::Sha256;

use super::fetch::{Credentials, MediaClient};
use super::{
    ChannelAdapter, FetchError, FetchedMedia, InboundContact, InboundEvent, InboundMessage,
    Outbound, ParseError, RawRequest, Receipt, RetiredSecret, SendError, VerifyError,
    classify_status, classify_transport, invalid, secrets_in_force,
};
use crate::model::{Identifier, LocationPart, Media, MediaPart, Part, TextPart, UnsupportedPart};
use crate::secret::Secret;

/// The identifier type of a LINE user (`source.userId`).
pub const IDENTIFIER_TYPE: &str = "line_user";
/// The sender of a group message whose member LINE did not name (no `userId`).
pub const GROUP_IDENTIFIER_TYPE: &str = "line_group";
/// The sender of a multi-person chat message whose member LINE did not name.
pub const ROOM_IDENTIFIER_TYPE: &str = "line_room";

pub const DEFAULT_API_BASE: &str = "https://api.line.me";
pub const DEFAULT_API_DATA_BASE: &str = "https://api-data.line.me";

/// The header LINE signs webhooks with.
pub const SIGNATURE_HEADER: &str = "x-line-signature";

/// The most messages one push call may carry.
pub const MESSAGES_PER_PUSH: usize = 5;
/// The longest text one LINE text message may hold; longer texts are split.
pub const MAX_TEXT_CHARS: usize = 5000;
/// The longest location title or address LINE accepts.
const MAX_LOCATION_CHARS: usize = 100;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// Bearer token for the Messaging API (push, content).
    pub channel_access_token: Secret,
    /// Signs webhooks (`X-Line-Signature`).
    pub channel_secret: Secret,
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// Base of the content API (inbound files).
    #[serde(default = "default_api_data_base")]
    pub api_data_base: String,
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.into()
}

fn default_api_data_base() -> String {
    DEFAULT_API_DATA_BASE.into()
}

impl LineConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        for (key, url) in [
            ("api_base", &self.api_base),
            ("api_data_base", &self.api_data_base),
        ] {
            if !crate::model::is_http_url(url) {
                errors.push((key.into(), "must be an http(s) URL".into()));
            }
        }
        errors
    }
}

pub struct LineAdapter {
    channel_secret: Secret,
    /// Channel secrets replaced by a reload, each accepted until its time.
    retired: Vec<RetiredSecret>,
    access_token: Secret,
    api_base: String,
    api_data_base: String,
    http: reqwest::Client,
}

impl LineAdapter {
    pub fn new(config: &LineConfig, http: reqwest::Client, retired: &[RetiredSecret]) -> Self {
        Self {
            channel_secret: config.channel_secret.clone(),
            retired: retired.to_vec(),
            access_token: config.channel_access_token.clone(),
            api_base: config.api_base.trim_end_matches('/').to_owned(),
            api_data_base: config.api_data_base.trim_end_matches('/').to_owned(),
            http,
        }
    }
}

/// `base64(HMAC-SHA256(channel secret, body))`, the value of `X-Line-Signature`.
pub fn sign(channel_secret: &str, body: &[u8]) -> String {
    BASE64.encode(mac(channel_secret, body).finalize().into_bytes())
}

fn mac(channel_secret: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(channel_secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    mac
}

/// Checks `X-Line-Signature` against the body with any of `secrets` (constant time).
pub fn verify_signature<'a>(
    secrets: impl IntoIterator<Item = &'a str>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<(), VerifyError> {
    let signature = signature.ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;
    let signature = BASE64
        .decode(signature.trim())
        .map_err(|_| VerifyError::BadSignature)?;
    for secret in secrets {
        if mac(secret, body).verify_slice(&signature).is_ok() {
            return Ok(());
        }
    }
    Err(VerifyError::BadSignature)
}

// ---------------------------------------------------------------------------------------
// Inbound

fn object<'a>(value: &'a Value, at: &str) -> Result<&'a Map<String, Value>, ParseError> {
    value
        .as_object()
        .ok_or_else(|| invalid(at, "must be an object"))
}

fn child<'a>(
    object: &'a Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<&'a Map<String, Value>, ParseError> {
    let at = format!("{at}.{key}");
    match object.get(key) {
        Some(value) => self::object(value, &at),
        None => Err(invalid(at, "is required")),
    }
}

/// A string field that must be present and not empty.
fn required_str<'a>(
    object: &'a Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<&'a str, ParseError> {
    match object.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(invalid(format!("{at}.{key}"), "must not be empty")),
        Some(_) => Err(invalid(format!("{at}.{key}"), "must be a string")),
        None => Err(invalid(format!("{at}.{key}"), "is required")),
    }
}

/// A string field that may be absent or null (empty counts as absent).
fn optional_str<'a>(
    object: &'a Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<Option<&'a str>, ParseError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{at}.{key}"), "must be a string")),
    }
}

/// A non-negative integer field that may be absent or null.
fn optional_u64(
    object: &Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<Option<u64>, ParseError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or_else(|| invalid(format!("{at}.{key}"), "must be a non-negative integer")),
    }
}

fn required_coordinate(
    object: &Map<String, Value>,
    at: &str,
    key: &str,
    limit: f64,
) -> Result<f64, ParseError> {
    let field = format!("{at}.{key}");
    let value = object
        .get(key)
        .ok_or_else(|| invalid(&field, "is required"))?
        .as_f64()
        .ok_or_else(|| invalid(&field, "must be a number"))?;
    if !(-limit..=limit).contains(&value) {
        return Err(invalid(
            field,
            format!("must be between -{limit} and {limit}"),
        ));
    }
    Ok(value)
}

/// Where a message came from: (the chat replies go to, the sender).
fn source(event: &Map<String, Value>, at: &str) -> Result<(String, Identifier), ParseError> {
    let at = format!("{at}.source");
    let source = match event.get("source") {
        Some(value) => object(value, &at)?,
        None => return Err(invalid(at, "is required")),
    };
    let user = optional_str(source, &at, "userId")?;
    let identifier = |chat: &str, chat_kind: &str| match user {
        Some(user) => Identifier {
            kind: IDENTIFIER_TYPE.into(),
            value: user.to_owned(),
        },
        None => Identifier {
            kind: chat_kind.into(),
            value: chat.to_owned(),
        },
    };
    match required_str(source, &at, "type")? {
        "user" => {
            let user = required_str(source, &at, "userId")?;
            Ok((user.to_owned(), identifier(user, IDENTIFIER_TYPE)))
        }
        "group" => {
            let group = required_str(source, &at, "groupId")?;
            Ok((group.to_owned(), identifier(group, GROUP_IDENTIFIER_TYPE)))
        }
        "room" => {
            let room = required_str(source, &at, "roomId")?;
            Ok((room.to_owned(), identifier(room, ROOM_IDENTIFIER_TYPE)))
        }
        other => Err(invalid(
            format!("{at}.type"),
            format!("unknown source type {other:?}; expected user, group or room"),
        )),
    }
}

/// The media of an image, video or audio message: LINE's own content (fetched by message
/// id) or an external URL.
fn content_media(message: &Map<String, Value>, at: &str, id: &str) -> Result<Media, ParseError> {
    let mut media = Media {
        platform_ref: Some(id.to_owned()),
        ..Media::default()
    };
    if let Some(provider) = message.get("contentProvider") {
        let at = format!("{at}.contentProvider");
        let provider = object(provider, &at)?;
        if required_str(provider, &at, "type")? == "external" {
            media.url = optional_str(provider, &at, "originalContentUrl")?.map(str::to_owned);
        }
    }
    if let Some(ms) = optional_u64(message, at, "duration")? {
        media.duration_s = Some(ms as f64 / 1000.0);
    }
    Ok(media)
}

/// The part a LINE message content object becomes.
fn message_part(message: &Map<String, Value>, raw: &Value, at: &str) -> Result<Part, ParseError> {
    let id = required_str(message, at, "id")?;
    let kind = required_str(message, at, "type")?;
    let media_part = |media: Media| MediaPart {
        media,
        caption: None,
    };
    Ok(match kind {
        "text" => Part::Text(TextPart {
            text: required_str(message, at, "text")?.to_owned(),
        }),
        "image" => Part::Image(media_part(content_media(message, at, id)?)),
        "video" => Part::Video(media_part(content_media(message, at, id)?)),
        // Voice messages arrive as audio too; LINE does not tell them apart.
        "audio" => Part::Audio(media_part(content_media(message, at, id)?)),
        "file" => Part::File(media_part(Media {
            platform_ref: Some(id.to_owned()),
            filename: optional_str(message, at, "fileName")?.map(str::to_owned),
            size_bytes: optional_u64(message, at, "fileSize")?,
            ..Media::default()
        })),
        "location" => Part::Location(LocationPart {
            latitude: required_coordinate(message, at, "latitude", 90.0)?,
            longitude: required_coordinate(message, at, "longitude", 180.0)?,
            name: optional_str(message, at, "title")?.map(str::to_owned),
            address: optional_str(message, at, "address")?.map(str::to_owned),
        }),
        "sticker" => {
            let package = required_str(message, at, "packageId")?;
            let sticker = required_str(message, at, "stickerId")?;
            Part::Sticker(MediaPart {
                media: Media {
                    platform_ref: Some(sticker_ref(package, sticker)),
                    ..Media::default()
                },
                // Message stickers carry text the user typed onto them.
                caption: optional_str(message, at, "text")?.map(str::to_owned),
            })
        }
        other => Part::Unsupported(UnsupportedPart {
            platform_type: other.to_owned(),
            raw: Some(raw.clone()),
        }),
    })
}

/// How a sticker is named in `media.platform_ref`: `"{packageId}:{stickerId}"`, which a
/// rep's reply can send back as a LINE sticker.
pub fn sticker_ref(package: &str, sticker: &str) -> String {
    format!("{package}:{sticker}")
}

fn parse_sticker_ref(platform_ref: &str) -> Option<(&str, &str)> {
    let (package, sticker) = platform_ref.split_once(':')?;
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (numeric(package) && numeric(sticker)).then_some((package, sticker))
}

/// Reads one webhook event; `None` for events that carry nothing to store.
fn parse_event(value: &Value, at: &str) -> Result<Option<InboundEvent>, ParseError> {
    let event = object(value, at)?;
    match required_str(event, at, "type")? {
        "message" => {
            let (thread, identifier) = source(event, at)?;
            let message_at = format!("{at}.message");
            let message = child(event, at, "message")?;
            let part = message_part(message, &event["message"], &message_at)?;
            let sent_at = optional_u64(event, at, "timestamp")?
                .and_then(|ms| i64::try_from(ms).ok())
                .and_then(DateTime::from_timestamp_millis);
            Ok(Some(InboundEvent::Message(InboundMessage {
                platform_message_id: required_str(message, &message_at, "id")?.to_owned(),
                thread_id: Some(thread),
                from: InboundContact {
                    identifier,
                    // Webhooks carry no profile; names need a profile API call.
                    display_name: None,
                    email: None,
                },
                reply_to: optional_str(message, &message_at, "quotedMessageId")?.map(str::to_owned),
                parts: vec![part],
                sent_at,
                raw: value.clone(),
            })))
        }
        "unsend" => {
            let unsend = child(event, at, "unsend")?;
            let id = required_str(unsend, &format!("{at}.unsend"), "messageId")?;
            Ok(Some(InboundEvent::Retract {
                platform_message_id: id.to_owned(),
            }))
        }
        // follow, unfollow, join, leave, memberJoined, memberLeft, postback, beacon,
        // accountLink, videoPlayComplete, membership, module and PNP delivery events carry
        // no message from a contact; events LINE adds later are skipped the same way
        // rather than refused (a refusal would make LINE redeliver forever).
        _ => Ok(None),
    }
}

/// Reads a LINE webhook body.
pub fn parse_body(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::Malformed(e.to_string()))?;
    let root = object(&value, "body")?;
    let events = match root.get("events") {
        Some(Value::Array(events)) => events,
        Some(_) => return Err(invalid("events", "must be a list of events")),
        None => return Err(invalid("events", "is required")),
    };
    let mut parsed = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        if let Some(event) = parse_event(event, &format!("events[{i}]"))? {
            parsed.push(event);
        }
    }
    Ok(parsed)
}

// ---------------------------------------------------------------------------------------
// Outbound

/// What a reply becomes on LINE: message objects in order, and notes on what could not
/// go out as written.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub messages: Vec<Value>,
    pub notes: Vec<String>,
}

impl Plan {
    fn text(&mut self, text: &str) {
        if text.trim().is_empty() {
            return;
        }
        let chars: Vec<char> = text.chars().collect();
        for piece in chars.chunks(MAX_TEXT_CHARS) {
            self.messages
                .push(json!({"type": "text", "text": piece.iter().collect::<String>()}));
        }
    }

    /// Sends a part LINE cannot carry as a text with its link.
    fn link(&mut self, kind: &str, media: &MediaPart, why: &str) {
        let Some(url) = media.media.url.as_deref() else {
            if let Some(caption) = &media.caption {
                self.text(caption);
            }
            self.notes
                .push(format!("{kind} not sent: it has no URL and {why}"));
            return;
        };
        let mut lines: Vec<&str> = Vec::new();
        if let Some(caption) = media.caption.as_deref().filter(|c| !c.trim().is_empty()) {
            lines.push(caption);
        }
        if let Some(name) = media.media.filename.as_deref() {
            lines.push(name);
        }
        lines.push(url);
        self.text(&lines.join("\n"));
        self.notes.push(format!("{kind} sent as a link: {why}"));
    }

    fn caption(&mut self, media: &MediaPart) {
        if let Some(caption) = &media.caption {
            self.text(caption);
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Turns a reply's parts into LINE message objects, in order. Captions follow their media
/// as text (LINE media have no captions).
pub fn plan(parts: &[Part]) -> Plan {
    let mut plan = Plan::default();
    for part in parts {
        match part {
            Part::Text(t) => plan.text(&t.text),
            Part::Image(m) => {
                let png_or_jpeg = m
                    .media
                    .mime_type
                    .as_deref()
                    .is_none_or(|t| matches!(t, "image/jpeg" | "image/jpg" | "image/png"));
                match m.media.url.as_deref() {
                    Some(url) if png_or_jpeg => {
                        plan.messages.push(json!({
                            "type": "image", "originalContentUrl": url, "previewImageUrl": url
                        }));
                        plan.caption(m);
                    }
                    _ if !png_or_jpeg => plan.link("image", m, "LINE shows only JPEG and PNG"),
                    _ => plan.link("image", m, "LINE sends images by URL only"),
                }
            }
            Part::Video(m) => plan.link(
                "video",
                m,
                "LINE needs a separate preview image for a video",
            ),
            Part::Audio(m) | Part::VoiceNote(m) => {
                let kind = if matches!(part, Part::Audio(_)) {
                    "audio"
                } else {
                    "voice note"
                };
                match (m.media.url.as_deref(), m.media.duration_s) {
                    (Some(url), Some(seconds)) if seconds > 0.0 => {
                        plan.messages.push(json!({
                            "type": "audio", "originalContentUrl": url,
                            "duration": (seconds * 1000.0).round() as u64
                        }));
                        plan.caption(m);
                    }
                    _ => plan.link(kind, m, "LINE needs an audio file's URL and duration"),
                }
            }
            Part::Sticker(m) => match m.media.platform_ref.as_deref().and_then(parse_sticker_ref) {
                Some((package, sticker)) => {
                    plan.messages.push(json!({
                        "type": "sticker", "packageId": package, "stickerId": sticker
                    }));
                    plan.caption(m);
                }
                None => plan.link("sticker", m, "LINE sends only its own stickers"),
            },
            Part::File(m) => plan.link("file", m, "LINE bots cannot send files"),
            Part::Location(l) => {
                let coordinates = format!("{}, {}", l.latitude, l.longitude);
                let title = l.name.as_deref().unwrap_or("Location");
                let address = l.address.as_deref().or(l.name.as_deref());
                plan.messages.push(json!({
                    "type": "location",
                    "title": truncate(title, MAX_LOCATION_CHARS),
                    "address": truncate(address.unwrap_or(&coordinates), MAX_LOCATION_CHARS),
                    "latitude": l.latitude,
                    "longitude": l.longitude,
                }));
            }
            Part::Contact(c) => {
                let lines: Vec<&str> = c
                    .name
                    .as_deref()
                    .into_iter()
                    .chain(c.phones.iter().map(String::as_str))
                    .chain(c.emails.iter().map(String::as_str))
                    .collect();
                plan.text(&lines.join("\n"));
                plan.notes
                    .push("contact sent as text: LINE has no contact cards".into());
            }
            Part::Unsupported(u) => plan.notes.push(format!(
                "{} part not sent: LINE has no such message",
                u.platform_type
            )),
        }
    }
    plan
}

/// The `X-Line-Retry-Key` of the `chunk`-th push call of our message `message_id`: a
/// name-based UUID (version 5), the same on every attempt, so LINE runs each call once.
pub fn retry_key(message_id: &str, chunk: usize) -> String {
    // A namespace of our own for these keys.
    const NAMESPACE: [u8; 16] = [
        0x6c, 0x69, 0x6e, 0x65, 0x2d, 0x72, 0x65, 0x74, 0x72, 0x79, 0x2d, 0x6b, 0x65, 0x79, 0x21,
        0x21,
    ];
    let mut hasher = sha1::Sha1::new();
    hasher.update(NAMESPACE);
    hasher.update(format!("{message_id}#{chunk}").as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The id of the first message in a push answer (`sentMessages[0].id`).
fn first_sent_id(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    match value.get("sentMessages")?.get(0)?.get("id")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[async_trait]
impl ChannelAdapter for LineAdapter {
    fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError> {
        let secrets =
            secrets_in_force(&self.channel_secret, &self.retired, now).map(Secret::expose);
        verify_signature(secrets, request.header(SIGNATURE_HEADER), &request.body)
    }

    fn parse(&self, request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError> {
        match request.content_type().as_deref() {
            Some("application/json") => parse_body(&request.body),
            other => Err(ParseError::UnsupportedMediaType(
                other.unwrap_or("none").to_owned(),
            )),
        }
    }

    async fn send(&self, message: &Outbound) -> Result<Receipt, SendError> {
        let to = message
            .platform_thread_id
            .as_deref()
            .unwrap_or(&message.to.value);
        let Plan { messages, notes } = plan(&message.parts);
        if messages.is_empty() {
            return Err(SendError::Permanent {
                reason: format!(
                    "nothing in this reply can be sent to LINE: {}",
                    notes.join("; ")
                ),
            });
        }
        let url = format!("{}/v2/bot/message/push", self.api_base);
        let mut first_id = None;
        for (i, chunk) in messages.chunks(MESSAGES_PER_PUSH).enumerate() {
            let response = self
                .http
                .post(&url)
                .bearer_auth(self.access_token.expose())
                .header(
                    "x-line-retry-key",
                    retry_key(message.message_id.as_str(), i),
                )
                .json(&json!({"to": to, "messages": chunk}))
                .send()
                .await
                .map_err(classify_transport)?;
            let status = response.status();
            let headers = response.headers().clone();
            let text = response.text().await.unwrap_or_default();
            // 409: a call with this retry key was already accepted (an earlier attempt
            // got through before failing on our side); it is not sent again.
            if !status.is_success() && status.as_u16() != 409 {
                return Err(classify_status(status, &headers, &text));
            }
            if i == 0 {
                first_id = first_sent_id(&text);
            }
        }
        Ok(Receipt {
            platform_message_id: first_id,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        })
    }

    /// LINE's own files come from the content API by message id with the access token;
    /// files a contact shared from an external provider (and our own outbound media) are
    /// plain URLs, fetched without the token.
    async fn fetch_media(
        &self,
        media: &Media,
        web: &MediaClient,
    ) -> Result<FetchedMedia, FetchError> {
        if let Some(url) = media.url.as_deref() {
            return web.fetch(url, &[&self.api_base, &self.api_data_base]).await;
        }
        let id = media
            .platform_ref
            .as_deref()
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(FetchError::NoMedia)?;
        let url = format!("{}/v2/bot/message/{id}/content", self.api_data_base);
        let token = Credentials::Bearer(self.access_token.expose());
        web.fetch_with(&url, &[&self.api_base, &self.api_data_base], token)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::fixture;
    use crate::model::{ContactPart, ConversationId, MessageId};
    use axum::http::{HeaderMap, HeaderValue};
    use proptest::prelude::*;

    const SECRET: &str = "line-channel-secret";

    const VERIFICATION: &str = fixture!("line/verification.json");
    const TEXT: &str = fixture!("line/text.json");
    const GROUP_TEXT: &str = fixture!("line/group_text.json");
    const MEDIA: &str = fixture!("line/media.json");
    const BATCH: &str = fixture!("line/batch.json");

    fn adapter_with(retired: &[RetiredSecret]) -> LineAdapter {
        LineAdapter::new(
            &LineConfig {
                channel_access_token: Secret::new("line-access-token"),
                channel_secret: Secret::new(SECRET),
                api_base: DEFAULT_API_BASE.into(),
                api_data_base: DEFAULT_API_DATA_BASE.into(),
            },
            reqwest::Client::new(),
            retired,
        )
    }

    fn request(body: &str, signature: Option<&str>, content_type: &str) -> RawRequest {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_str(content_type).unwrap());
        if let Some(signature) = signature {
            headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(signature).unwrap());
        }
        RawRequest::post(
            "https://bridge.example.com/hooks/line",
            headers,
            body.to_owned(),
        )
    }

    fn signed(body: &str) -> RawRequest {
        request(
            body,
            Some(&sign(SECRET, body.as_bytes())),
            "application/json",
        )
    }

    fn parse(body: &str) -> Vec<InboundEvent> {
        let adapter = adapter_with(&[]);
        let request = signed(body);
        adapter.verify(&request, Utc::now()).unwrap();
        adapter.parse(&request).unwrap()
    }

    fn messages(body: &str) -> Vec<InboundMessage> {
        parse(body)
            .into_iter()
            .map(|e| match e {
                InboundEvent::Message(m) => m,
                other => panic!("expected a message, got {other:?}"),
            })
            .collect()
    }

    fn field_of(body: Value) -> String {
        match parse_body(body.to_string().as_bytes()).unwrap_err() {
            ParseError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn media(part: &Part) -> &MediaPart {
        match part {
            Part::Image(m)
            | Part::Video(m)
            | Part::Audio(m)
            | Part::VoiceNote(m)
            | Part::Sticker(m)
            | Part::File(m) => m,
            other => panic!("expected media, got {other:?}"),
        }
    }

    #[test]
    fn signs_like_line_does() {
        // Computed independently: openssl dgst -sha256 -hmac "$secret" -binary < verification.json | base64
        assert_eq!(
            sign(SECRET, VERIFICATION.as_bytes()),
            "1Iyv7lPX2CYUIiLP1AjAB6LZ/IABhYEZKNG77N4yjbU="
        );
    }

    #[test]
    fn a_wrong_or_missing_signature_is_refused() {
        let adapter = adapter_with(&[]);
        let now = Utc::now();
        let forged = request(
            TEXT,
            Some(&sign("other-secret", TEXT.as_bytes())),
            "application/json",
        );
        assert_eq!(adapter.verify(&forged, now), Err(VerifyError::BadSignature));
        let tampered = request(
            &TEXT.replace("Sundays", "Mondays"),
            Some(&sign(SECRET, TEXT.as_bytes())),
            "application/json",
        );
        assert_eq!(
            adapter.verify(&tampered, now),
            Err(VerifyError::BadSignature)
        );
        let garbage = request(TEXT, Some("not base64!"), "application/json");
        assert_eq!(
            adapter.verify(&garbage, now),
            Err(VerifyError::BadSignature)
        );
        let missing = request(TEXT, None, "application/json");
        assert_eq!(
            adapter.verify(&missing, now),
            Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
        );
    }

    #[test]
    fn a_retired_secret_is_accepted_until_its_time() {
        let now = Utc::now();
        let retired = [RetiredSecret {
            secret: Secret::new("old-secret"),
            until: now + chrono::Duration::minutes(5),
        }];
        let adapter = adapter_with(&retired);
        let old = request(
            TEXT,
            Some(&sign("old-secret", TEXT.as_bytes())),
            "application/json",
        );
        adapter.verify(&old, now).unwrap();
        adapter.verify(&signed(TEXT), now).unwrap();
        assert_eq!(
            adapter.verify(&old, now + chrono::Duration::minutes(6)),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn the_verify_ping_with_no_events_yields_nothing() {
        assert!(parse(VERIFICATION).is_empty());
    }

    #[test]
    fn a_text_message_with_a_quote() {
        let m = &messages(TEXT)[0];
        assert_eq!(m.platform_message_id, "584170972439652211");
        assert_eq!(
            m.thread_id.as_deref(),
            Some("U3311aa00bb11cc22dd33ee44ff556677")
        );
        assert_eq!(
            m.from.identifier,
            Identifier {
                kind: "line_user".into(),
                value: "U3311aa00bb11cc22dd33ee44ff556677".into()
            }
        );
        assert_eq!(m.reply_to.as_deref(), Some("584273328755328467"));
        assert_eq!(
            m.parts,
            vec![Part::Text(TextPart {
                text: "Sundays too?".into()
            })]
        );
        assert_eq!(
            m.sent_at,
            DateTime::from_timestamp_millis(1_783_003_420_000)
        );
        // Kept for later: the quote token, the webhook event id, the redelivery flag.
        assert_eq!(m.raw["message"]["quoteToken"], "q3Plxr4AgKd_CgKq");
        assert_eq!(m.raw["webhookEventId"], "01J1Z8K3QW7R5S4T3V2X1Y0Z9A");
        assert_eq!(m.raw["deliveryContext"]["isRedelivery"], false);
    }

    #[test]
    fn group_and_room_messages_thread_by_the_chat() {
        let m = messages(GROUP_TEXT);
        assert_eq!(
            m[0].thread_id.as_deref(),
            Some("Ca56f94637cc4347f90a25382909b24b9")
        );
        assert_eq!(m[0].from.identifier.kind, "line_user");
        assert_eq!(
            m[0].from.identifier.value,
            "U3311aa00bb11cc22dd33ee44ff556677"
        );
        assert_eq!(m[0].raw["deliveryContext"]["isRedelivery"], true);
        // A room member LINE does not name is known by the room.
        assert_eq!(
            m[1].thread_id.as_deref(),
            Some("Ra8dbf4673c4c812cd491258042226c99")
        );
        assert_eq!(
            m[1].from.identifier,
            Identifier {
                kind: "line_room".into(),
                value: "Ra8dbf4673c4c812cd491258042226c99".into()
            }
        );
    }

    #[test]
    fn every_media_kind_location_and_sticker() {
        let m = messages(MEDIA);
        assert_eq!(m.len(), 7);

        let image = media(&m[0].parts[0]);
        assert!(matches!(m[0].parts[0], Part::Image(_)));
        assert_eq!(
            image.media.platform_ref.as_deref(),
            Some("354718705033693859")
        );
        assert_eq!(image.media.url, None);

        let external = media(&m[1].parts[0]);
        assert_eq!(
            external.media.url.as_deref(),
            Some("https://cdn.example.com/full.jpg")
        );

        assert!(matches!(m[2].parts[0], Part::Video(_)));
        assert_eq!(media(&m[2].parts[0]).media.duration_s, Some(60.0));
        assert_eq!(
            media(&m[2].parts[0]).media.platform_ref.as_deref(),
            Some("325708")
        );

        assert!(matches!(m[3].parts[0], Part::Audio(_)));
        assert_eq!(media(&m[3].parts[0]).media.duration_s, Some(4.5));

        assert!(matches!(m[4].parts[0], Part::File(_)));
        let file = media(&m[4].parts[0]);
        assert_eq!(file.media.filename.as_deref(), Some("invoice.pdf"));
        assert_eq!(file.media.size_bytes, Some(2138));
        assert_eq!(file.media.platform_ref.as_deref(), Some("325710"));

        assert_eq!(
            m[5].parts[0],
            Part::Location(LocationPart {
                latitude: 35.67966,
                longitude: 139.73669,
                name: Some("Our shop".into()),
                address: Some("1-3 Kioicho, Chiyoda-ku, Tokyo".into()),
            })
        );

        assert!(matches!(m[6].parts[0], Part::Sticker(_)));
        let sticker = media(&m[6].parts[0]);
        assert_eq!(sticker.media.platform_ref.as_deref(), Some("446:1988"));
        assert_eq!(sticker.caption.as_deref(), Some("Thanks!"));
        assert_eq!(m[6].reply_to.as_deref(), Some("584170972439652211"));
    }

    #[test]
    fn a_batch_yields_messages_and_retractions_and_skips_account_events() {
        let events = parse(BATCH);
        assert_eq!(events.len(), 4, "{events:?}");
        let InboundEvent::Message(first) = &events[0] else {
            panic!("{:?}", events[0])
        };
        assert_eq!(first.platform_message_id, "600000000000000001");
        let InboundEvent::Message(second) = &events[1] else {
            panic!("{:?}", events[1])
        };
        assert_eq!(
            second.from.identifier.value,
            "U99887766554433221100ffeeddccbbaa"
        );
        assert_eq!(
            events[2],
            InboundEvent::Retract {
                platform_message_id: "600000000000000001".into()
            }
        );
        let InboundEvent::Message(unknown) = &events[3] else {
            panic!("{:?}", events[3])
        };
        assert_eq!(
            unknown.parts,
            vec![Part::Unsupported(UnsupportedPart {
                platform_type: "hologram".into(),
                raw: Some(json!({"type": "hologram", "id": "600000000000000003", "shape": "cube"})),
            })]
        );
    }

    #[test]
    fn malformed_events_name_the_field_at_fault() {
        let event = |message: Value| {
            json!({"destination": "U1", "events": [
                {"type": "message", "timestamp": 1, "source": {"type": "user", "userId": "U1"},
                 "message": message}
            ]})
        };
        let cases = [
            (json!({"destination": "U1"}), "events"),
            (json!({"events": {}}), "events"),
            (json!([1, 2]), "body"),
            (json!({"events": [5]}), "events[0]"),
            (json!({"events": [{"mode": "active"}]}), "events[0].type"),
            (
                json!({"events": [{"type": "message", "message": {"type": "text", "id": "1", "text": "x"}}]}),
                "events[0].source",
            ),
            (
                json!({"events": [{"type": "message", "source": {"type": "user"},
                                   "message": {"type": "text", "id": "1", "text": "x"}}]}),
                "events[0].source.userId",
            ),
            (
                json!({"events": [{"type": "message", "source": {"type": "group", "userId": "U1"},
                                   "message": {"type": "text", "id": "1", "text": "x"}}]}),
                "events[0].source.groupId",
            ),
            (
                json!({"events": [{"type": "message", "source": {"type": "planet", "userId": "U1"},
                                   "message": {"type": "text", "id": "1", "text": "x"}}]}),
                "events[0].source.type",
            ),
            (
                json!({"events": [{"type": "message", "source": {"type": "user", "userId": "U1"}}]}),
                "events[0].message",
            ),
            (
                event(json!({"type": "text", "text": "x"})),
                "events[0].message.id",
            ),
            (
                event(json!({"type": "text", "id": 7, "text": "x"})),
                "events[0].message.id",
            ),
            (
                event(json!({"id": "1", "text": "x"})),
                "events[0].message.type",
            ),
            (
                event(json!({"type": "text", "id": "1"})),
                "events[0].message.text",
            ),
            (
                event(json!({"type": "text", "id": "1", "text": "x", "quotedMessageId": 5})),
                "events[0].message.quotedMessageId",
            ),
            (
                event(json!({"type": "location", "id": "1", "latitude": "north", "longitude": 1})),
                "events[0].message.latitude",
            ),
            (
                event(json!({"type": "location", "id": "1", "latitude": 1, "longitude": 200})),
                "events[0].message.longitude",
            ),
            (
                event(json!({"type": "video", "id": "1", "duration": -3})),
                "events[0].message.duration",
            ),
            (
                event(json!({"type": "image", "id": "1", "contentProvider": "line"})),
                "events[0].message.contentProvider",
            ),
            (
                event(json!({"type": "sticker", "id": "1", "packageId": "446"})),
                "events[0].message.stickerId",
            ),
            (
                event(json!({"type": "file", "id": "1", "fileName": "a", "fileSize": "big"})),
                "events[0].message.fileSize",
            ),
            (
                json!({"events": [{"type": "unsend", "source": {"type": "user", "userId": "U1"}, "unsend": {}}]}),
                "events[0].unsend.messageId",
            ),
            (
                json!({"events": [{"type": "message", "timestamp": "now",
                                   "source": {"type": "user", "userId": "U1"},
                                   "message": {"type": "text", "id": "1", "text": "x"}}]}),
                "events[0].timestamp",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(body.clone()), field, "{body}");
        }
        assert!(matches!(
            parse_body(b"{\"events\": ["),
            Err(ParseError::Malformed(_))
        ));
    }

    #[test]
    fn only_json_is_accepted() {
        let adapter = adapter_with(&[]);
        let form = request(TEXT, None, "application/x-www-form-urlencoded");
        assert_eq!(
            adapter.parse(&form),
            Err(ParseError::UnsupportedMediaType(
                "application/x-www-form-urlencoded".into()
            ))
        );
        let charset = request(TEXT, None, "application/json; charset=UTF-8");
        assert_eq!(adapter.parse(&charset).unwrap().len(), 1);
    }

    #[test]
    fn redelivered_events_keep_the_message_id_so_the_store_can_drop_them() {
        let again = TEXT.replace("\"isRedelivery\": false", "\"isRedelivery\": true");
        assert_ne!(again, TEXT);
        assert_eq!(
            messages(&again)[0].platform_message_id,
            messages(TEXT)[0].platform_message_id
        );
    }

    fn media_part(url: Option<&str>) -> MediaPart {
        MediaPart {
            media: Media {
                url: url.map(str::to_owned),
                ..Media::default()
            },
            caption: None,
        }
    }

    #[test]
    fn replies_become_line_messages_in_order() {
        let mut image = media_part(Some("https://x.example/a.png"));
        image.caption = Some("the receipt".into());
        let mut audio = media_part(Some("https://x.example/a.m4a"));
        audio.media.duration_s = Some(3.25);
        let mut sticker = media_part(None);
        sticker.media.platform_ref = Some("446:1988".into());
        let plan = plan(&[
            Part::Text(TextPart {
                text: "Here".into(),
            }),
            Part::Image(image),
            Part::Audio(audio),
            Part::Sticker(sticker),
            Part::Location(LocationPart {
                latitude: 35.5,
                longitude: 139.7,
                name: Some("Shop".into()),
                address: None,
            }),
        ]);
        assert_eq!(
            plan.messages,
            vec![
                json!({"type": "text", "text": "Here"}),
                json!({"type": "image", "originalContentUrl": "https://x.example/a.png",
                       "previewImageUrl": "https://x.example/a.png"}),
                json!({"type": "text", "text": "the receipt"}),
                json!({"type": "audio", "originalContentUrl": "https://x.example/a.m4a", "duration": 3250}),
                json!({"type": "sticker", "packageId": "446", "stickerId": "1988"}),
                json!({"type": "location", "title": "Shop", "address": "Shop",
                       "latitude": 35.5, "longitude": 139.7}),
            ]
        );
        assert!(plan.notes.is_empty());
    }

    #[test]
    fn parts_line_cannot_carry_go_as_links_with_a_note() {
        let mut file = media_part(Some("https://x.example/a.pdf"));
        file.media.filename = Some("a.pdf".into());
        let plan = plan(&[
            Part::File(file),
            Part::Video(media_part(Some("https://x.example/v.mp4"))),
            Part::Image(MediaPart {
                media: Media {
                    url: Some("https://x.example/a.gif".into()),
                    mime_type: Some("image/gif".into()),
                    ..Media::default()
                },
                caption: None,
            }),
            Part::Contact(ContactPart {
                name: Some("Bo".into()),
                phones: vec!["+4912345".into()],
                emails: vec![],
            }),
            Part::Image(media_part(None)),
            Part::Unsupported(UnsupportedPart {
                platform_type: "poll".into(),
                raw: None,
            }),
        ]);
        assert_eq!(
            plan.messages,
            vec![
                json!({"type": "text", "text": "a.pdf\nhttps://x.example/a.pdf"}),
                json!({"type": "text", "text": "https://x.example/v.mp4"}),
                json!({"type": "text", "text": "https://x.example/a.gif"}),
                json!({"type": "text", "text": "Bo\n+4912345"}),
            ]
        );
        assert_eq!(plan.notes.len(), 6, "{:?}", plan.notes);
        assert!(plan.notes[0].starts_with("file sent as a link"));
        assert!(plan.notes[4].starts_with("image not sent"));
        assert!(plan.notes[5].starts_with("poll part not sent"));
    }

    #[test]
    fn long_texts_are_split_at_the_line_limit() {
        let long = "é".repeat(MAX_TEXT_CHARS + 10);
        let plan = plan(&[Part::Text(TextPart { text: long })]);
        assert_eq!(plan.messages.len(), 2);
        assert_eq!(
            plan.messages[0]["text"].as_str().unwrap().chars().count(),
            MAX_TEXT_CHARS
        );
        assert_eq!(
            plan.messages[1]["text"].as_str().unwrap().chars().count(),
            10
        );
    }

    #[test]
    fn retry_keys_are_uuids_stable_per_message_and_call() {
        let key = retry_key("msg_01J00000000000000000000000", 0);
        assert_eq!(key, retry_key("msg_01J00000000000000000000000", 0));
        assert_ne!(key, retry_key("msg_01J00000000000000000000000", 1));
        assert_ne!(key, retry_key("msg_01J00000000000000000000001", 0));
        let groups: Vec<&str> = key.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(key.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()));
        assert_eq!(&groups[2][..1], "5", "version 5");
        assert!(
            matches!(&groups[3][..1], "8" | "9" | "a" | "b"),
            "RFC 4122 variant"
        );
    }

    fn outbound(parts: Vec<Part>) -> Outbound {
        Outbound {
            message_id: MessageId::new(),
            conversation_id: ConversationId::new(),
            platform_thread_id: Some("Ca56f94637cc4347f90a25382909b24b9".into()),
            to: Identifier {
                kind: IDENTIFIER_TYPE.into(),
                value: "U1".into(),
            },
            reply_to: None,
            parts,
        }
    }

    #[tokio::test]
    async fn a_reply_with_nothing_line_can_carry_is_refused_without_a_call() {
        // api_base points nowhere: a call would fail as retryable, not permanent.
        let adapter = LineAdapter::new(
            &LineConfig {
                channel_access_token: Secret::new("t"),
                channel_secret: Secret::new("s"),
                api_base: "http://127.0.0.1:9".into(),
                api_data_base: "http://127.0.0.1:9".into(),
            },
            reqwest::Client::new(),
            &[],
        );
        let error = adapter
            .send(&outbound(vec![Part::Unsupported(UnsupportedPart {
                platform_type: "poll".into(),
                raw: None,
            })]))
            .await
            .unwrap_err();
        assert!(matches!(error, SendError::Permanent { .. }), "{error:?}");
    }

    fn adapter_at(base: &str) -> LineAdapter {
        LineAdapter::new(
            &LineConfig {
                channel_access_token: Secret::new("line-access-token"),
                channel_secret: Secret::new(SECRET),
                api_base: base.into(),
                api_data_base: base.into(),
            },
            reqwest::Client::new(),
            &[],
        )
    }

    fn text(t: &str) -> Part {
        Part::Text(TextPart { text: t.into() })
    }

    #[tokio::test]
    async fn send_failures_are_classified_and_a_409_means_already_sent() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let cases = [
            (
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "3")
                    .set_body_json(json!({"message": "Too Many Requests"})),
                "rate limited",
            ),
            (ResponseTemplate::new(500), "retryable"),
            (ResponseTemplate::new(503), "retryable"),
            (
                ResponseTemplate::new(400).set_body_json(json!({
                    "message": "The request body has 1 error(s)",
                    "details": [{"message": "May not be empty", "property": "messages[0].text"}]
                })),
                "permanent",
            ),
            (
                ResponseTemplate::new(403)
                    .set_body_json(json!({"message": "Access to this API is not available"})),
                "permanent",
            ),
            (
                ResponseTemplate::new(409).set_body_json(json!({
                    "message": "The retry key is already accepted",
                    "sentMessages": [{"id": "461230966842064897"}]
                })),
                "sent",
            ),
        ];
        for (response, expected) in cases {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path("/v2/bot/message/push"))
                .respond_with(response)
                .expect(1)
                .mount(&server)
                .await;
            let result = adapter_at(&server.uri())
                .send(&outbound(vec![text("hi")]))
                .await;
            let got = match &result {
                Ok(_) => "sent",
                Err(SendError::RateLimited { .. }) => "rate limited",
                Err(SendError::Retryable { .. }) => "retryable",
                Err(SendError::Permanent { .. }) => "permanent",
            };
            assert_eq!(got, expected, "{result:?}");
            match result {
                Ok(receipt) => assert_eq!(
                    receipt.platform_message_id.as_deref(),
                    Some("461230966842064897")
                ),
                Err(SendError::RateLimited { retry_after, .. }) => {
                    assert_eq!(retry_after, Some(std::time::Duration::from_secs(3)))
                }
                Err(SendError::Permanent { reason }) => {
                    assert!(!reason.contains("line-access-token"))
                }
                Err(_) => {}
            }
        }
    }

    #[tokio::test]
    async fn more_than_five_messages_go_in_several_calls_each_with_its_own_retry_key() {
        use wiremock::matchers::{header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v2/bot/message/push"))
            .and(header("authorization", "Bearer line-access-token"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"sentMessages": [{"id": "100", "quoteToken": "q"}]})),
            )
            .expect(2)
            .mount(&server)
            .await;
        let message = outbound((1..=7).map(|i| text(&i.to_string())).collect());
        let receipt = adapter_at(&server.uri()).send(&message).await.unwrap();
        assert_eq!(receipt.platform_message_id.as_deref(), Some("100"));
        assert_eq!(receipt.note, None);
        let requests = server.received_requests().await.unwrap();
        let bodies: Vec<Value> = requests
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        assert_eq!(bodies[0]["to"], "Ca56f94637cc4347f90a25382909b24b9");
        assert_eq!(bodies[0]["messages"].as_array().unwrap().len(), 5);
        assert_eq!(
            bodies[1]["messages"],
            json!([{"type": "text", "text": "6"}, {"type": "text", "text": "7"}])
        );
        let key = |i: usize| {
            requests[i].headers["x-line-retry-key"]
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(key(0), retry_key(message.message_id.as_str(), 0));
        assert_eq!(key(1), retry_key(message.message_id.as_str(), 1));
    }

    #[tokio::test]
    async fn line_files_are_fetched_with_the_token_and_external_ones_without() {
        use wiremock::matchers::{header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/message/325710/content"))
            .and(header("authorization", "Bearer line-access-token"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(b"%PDF".to_vec()))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/cdn/full.jpg"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(b"jpg".to_vec()))
            .expect(1)
            .mount(&server)
            .await;
        let adapter = adapter_at(&server.uri());
        let own = Media {
            platform_ref: Some("325710".into()),
            ..Media::default()
        };
        let fetched = adapter
            .fetch_media(&own, &test_media_client())
            .await
            .ok()
            .unwrap();
        assert_eq!(fetched.response.bytes().await.unwrap().as_ref(), b"%PDF");
        let external = Media {
            platform_ref: Some("1".into()),
            url: Some(format!("{}/cdn/full.jpg", server.uri())),
            ..Media::default()
        };
        adapter
            .fetch_media(&external, &test_media_client())
            .await
            .ok()
            .unwrap();
        let requests = server.received_requests().await.unwrap();
        assert!(
            requests[1].headers.get("authorization").is_none(),
            "no token to third parties"
        );
        for not_an_id in ["446:1988", "../../v2/bot/info", ""] {
            let media = Media {
                platform_ref: Some(not_an_id.into()),
                ..Media::default()
            };
            assert_eq!(
                adapter
                    .fetch_media(&media, &test_media_client())
                    .await
                    .err(),
                Some(FetchError::NoMedia)
            );
        }
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-zA-Z0-9:]{0,8}".prop_map(Value::from),
            prop_oneof![
                Just("message"),
                Just("unsend"),
                Just("text"),
                Just("image"),
                Just("location"),
                Just("sticker"),
                Just("user"),
                Just("group"),
                Just("room"),
                Just("external"),
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            let keys = prop_oneof![
                Just("events".to_owned()),
                Just("type".to_owned()),
                Just("message".to_owned()),
                Just("source".to_owned()),
                Just("userId".to_owned()),
                Just("groupId".to_owned()),
                Just("roomId".to_owned()),
                Just("id".to_owned()),
                Just("text".to_owned()),
                Just("latitude".to_owned()),
                Just("longitude".to_owned()),
                Just("contentProvider".to_owned()),
                Just("duration".to_owned()),
                Just("timestamp".to_owned()),
                Just("unsend".to_owned()),
                Just("messageId".to_owned()),
                Just("packageId".to_owned()),
                Just("stickerId".to_owned()),
                "[a-z]{1,6}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(keys, inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_parser(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_body(&body);
        }

        #[test]
        fn arbitrary_json_never_panics_the_parser(value in arbitrary_json()) {
            let _ = parse_body(value.to_string().as_bytes());
            let wrapped = json!({"destination": "U1", "events": [value]});
            let _ = parse_body(wrapped.to_string().as_bytes());
        }
    }

    /// Media fetches in these tests go to wiremock on loopback, which a channel allows
    /// only with media_allow_private.
    fn test_media_client() -> crate::adapters::fetch::MediaClient {
        crate::adapters::fetch::MediaClient::new(std::time::Duration::from_secs(5), true)
    }
}
