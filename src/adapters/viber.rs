//! Viber REST bot API: signed JSON callbacks in, `/pa/send_message` out.
//!
//! Viber signs every callback with a hex HMAC-SHA256 of the raw body keyed by the bot's
//! auth token (`X-Viber-Content-Signature`); the same token authenticates sends
//! (`X-Viber-Auth-Token`). Bots talk 1:1, so the thread is the user's id. Viber answers
//! sends with HTTP 200 even when it refuses them: the `status` field says so.

use async_trait::async_trait;
use axum::http::{HeaderMap, StatusCode, header};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::fetch::MediaClient;
use super::signature::hmac_sha256_matches_any;
use super::{
    ChannelAdapter, FetchError, FetchedMedia, InboundContact, InboundEvent, InboundMessage,
    Outbound, ParseError, RawRequest, Receipt, RetiredSecret, SendError, StatusUpdate, VerifyError,
    classify_status, classify_transport, invalid, read, secrets_in_force,
};
use crate::model::{
    ContactPart, DeliveryStatus, Identifier, LocationPart, Media, MediaPart, Part, TextPart,
    UnsupportedPart,
};
use crate::secret::Secret;

/// The identifier type of a Viber contact: the user id Viber gives this bot.
pub const IDENTIFIER_TYPE: &str = "viber_user";

/// The real REST bot API.
pub const DEFAULT_API_BASE: &str = "https://chatapi.viber.com";

/// The bot name shown on sends when none is configured.
pub const DEFAULT_SENDER_NAME: &str = "channel-bridge";

/// The signature header, as Viber names it (for errors).
const SIGNATURE_HEADER: &str = "X-Viber-Content-Signature";

/// The longest text message, in characters.
pub const MAX_TEXT: usize = 7000;

/// The longest picture description, in characters.
pub const MAX_CAPTION: usize = 512;

/// The longest sender name Viber takes.
const MAX_SENDER_NAME: usize = 28;

/// Viber's `status` for "too many messages to this user without a reply".
const STATUS_TOO_MANY_REQUESTS: i64 = 12;

/// The highest `status` Viber documents; all but 12 describe a refusal that a retry
/// cannot fix (bad token, user not subscribed, bot blocked…).
const STATUS_LAST_DOCUMENTED: i64 = 24;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViberConfig {
    /// The bot's token: signs callbacks and authenticates sends.
    pub auth_token: Secret,
    /// The REST API base URL (tests point it at a mock).
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// The bot name Viber shows on every message we send (required by Viber, ≤ 28).
    #[serde(default = "default_sender_name")]
    pub sender_name: String,
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.to_owned()
}

fn default_sender_name() -> String {
    DEFAULT_SENDER_NAME.to_owned()
}

impl ViberConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if !crate::model::is_http_url(&self.api_base) {
            errors.push(("api_base".into(), "must be an http(s) URL".into()));
        }
        let name = self.sender_name.trim();
        if name.is_empty() || name.chars().count() > MAX_SENDER_NAME {
            errors.push((
                "sender_name".into(),
                format!("must be 1-{MAX_SENDER_NAME} characters (Viber's limit)"),
            ));
        }
        errors
    }
}

pub struct ViberAdapter {
    auth_token: Secret,
    /// Tokens replaced by a reload, still accepted on callbacks until their time.
    retired: Vec<RetiredSecret>,
    api_base: String,
    sender_name: String,
    http: reqwest::Client,
}

impl ViberAdapter {
    pub fn new(config: &ViberConfig, http: reqwest::Client, retired: &[RetiredSecret]) -> Self {
        Self {
            auth_token: config.auth_token.clone(),
            retired: retired.to_vec(),
            api_base: config.api_base.trim_end_matches('/').to_owned(),
            sender_name: config.sender_name.trim().to_owned(),
            http,
        }
    }

    /// Sends one message body (without receiver and sender) and returns Viber's
    /// `message_token` for it, if it gave one.
    async fn send_one(
        &self,
        receiver: &str,
        fields: &Map<String, Value>,
    ) -> Result<Option<String>, SendError> {
        let mut body = fields.clone();
        body.insert("receiver".into(), receiver.into());
        body.insert("sender".into(), json!({"name": self.sender_name}));
        let response = self
            .http
            .post(format!("{}/pa/send_message", self.api_base))
            .header("X-Viber-Auth-Token", self.auth_token.expose())
            .json(&body)
            .send()
            .await
            .map_err(classify_transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        read_answer(status, &headers, &text)
    }

    /// The size of a file at `url`, from a HEAD request (Viber requires it for videos and
    /// files). `None` when the server does not say.
    async fn size_of(&self, url: &str) -> Option<u64> {
        let response = self.http.head(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response
            .headers()
            .get(header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }

    /// Fills in what a planned call still needs from the network (file sizes); a call that
    /// cannot be completed becomes its link, with a note.
    async fn complete(&self, mut call: Call, notes: &mut Vec<String>) -> Call {
        let Some(url) = call.needs_size.clone() else {
            return call;
        };
        match self.size_of(&url).await {
            Some(size) => {
                call.body.insert("size".into(), size.into());
                call.needs_size = None;
                call
            }
            None => {
                notes.push(format!(
                    "Part {} ({}) was sent as a link: Viber needs the file size and {url} did not give one.",
                    call.part, call.kind
                ));
                Call::text(call.part, &call.kind, &url)
            }
        }
    }
}

#[derive(Deserialize)]
struct Answer {
    status: i64,
    #[serde(default)]
    status_message: Option<String>,
    #[serde(default)]
    message_token: Option<Value>,
}

/// Reads a send answer: HTTP errors by status; in a 200, `status` 0 is success, 12 is
/// Viber's rate limit, the other documented codes are refusals, and an unknown code is
/// retried.
fn read_answer(
    status: StatusCode,
    headers: &HeaderMap,
    text: &str,
) -> Result<Option<String>, SendError> {
    if !status.is_success() {
        return Err(classify_status(status, headers, text));
    }
    let answer: Answer = serde_json::from_str(text).map_err(|_| SendError::Retryable {
        reason: format!(
            "Viber answered with no status: {}",
            text.chars().take(200).collect::<String>()
        ),
        retry_after: None,
    })?;
    let reason = || {
        format!(
            "Viber status {}: {}",
            answer.status,
            answer.status_message.as_deref().unwrap_or("no message")
        )
    };
    match answer.status {
        0 => Ok(answer.message_token.as_ref().and_then(token)),
        STATUS_TOO_MANY_REQUESTS => Err(SendError::RateLimited {
            reason: reason(),
            retry_after: super::retry_after(headers, Utc::now()),
        }),
        1..=STATUS_LAST_DOCUMENTED => Err(SendError::Permanent { reason: reason() }),
        _ => Err(SendError::Retryable {
            reason: reason(),
            retry_after: None,
        }),
    }
}

/// A `message_token`: a 64-bit integer (kept exact, never through f64), or it as a string.
fn token(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        Value::String(s) if s.parse::<i64>().is_ok() || s.parse::<u64>().is_ok() => Some(s.clone()),
        _ => None,
    }
}

/// One `/pa/send_message` call a reply part becomes (before receiver and sender).
#[derive(Clone, Debug, PartialEq)]
struct Call {
    body: Map<String, Value>,
    /// The part it carries, counted from 1, and its kind (for notes).
    part: usize,
    kind: String,
    /// The file URL whose size must be found before sending (videos and files).
    needs_size: Option<String>,
}

impl Call {
    fn new(part: usize, kind: &str, body: Value) -> Self {
        let Value::Object(body) = body else {
            unreachable!("bodies are built as objects")
        };
        Self {
            body,
            part,
            kind: kind.to_owned(),
            needs_size: None,
        }
    }

    fn text(part: usize, kind: &str, text: &str) -> Self {
        Self::new(part, kind, json!({"type": "text", "text": text}))
    }
}

/// A reply as send calls, in part order, plus notes on what could not go as written.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    calls: Vec<Call>,
    notes: Vec<String>,
}

impl Plan {
    fn text(&mut self, part: usize, kind: &str, text: &str) {
        for chunk in split_text(text, MAX_TEXT) {
            self.calls.push(Call::text(part, kind, &chunk));
        }
    }

    /// A part Viber cannot carry as such: its link as text (if it has one), and a note.
    fn as_link(&mut self, part: usize, kind: &str, url: Option<&str>, why: &str) {
        match url {
            Some(url) => {
                self.notes
                    .push(format!("Part {part} ({kind}) was sent as a link: {why}."));
                self.text(part, kind, url);
            }
            None => self
                .notes
                .push(format!("Part {part} ({kind}) was not sent: {why}.")),
        }
    }
}

/// The wire name of a part's type, for notes.
fn kind_of(part: &Part) -> String {
    match part {
        Part::Text(_) => "text",
        Part::Image(_) => "image",
        Part::Video(_) => "video",
        Part::Audio(_) => "audio",
        Part::VoiceNote(_) => "voice_note",
        Part::Sticker(_) => "sticker",
        Part::File(_) => "file",
        Part::Location(_) => "location",
        Part::Contact(_) => "contact",
        Part::Unsupported(u) => return u.platform_type.clone(),
    }
    .to_owned()
}

/// The name a file goes by: its own, else the last segment of its URL.
fn file_name(media: &Media, url: &str) -> String {
    media
        .filename
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| {
            reqwest::Url::parse(url).ok().and_then(|u| {
                u.path_segments()?
                    .next_back()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            })
        })
        .unwrap_or_else(|| "file".into())
        .chars()
        .take(256)
        .collect()
}

/// Turns reply parts into send calls. Media goes by URL (Viber has no file ids to reuse);
/// audio and voice notes go as files (bots cannot send audio); captions Viber cannot
/// attach follow as text.
fn plan(parts: &[Part]) -> Plan {
    let mut plan = Plan::default();
    for (i, part) in parts.iter().enumerate() {
        let n = i + 1;
        let kind = kind_of(part);
        match part {
            Part::Text(t) => plan.text(n, &kind, &t.text),
            Part::Sticker(m) => {
                let sticker_id = m
                    .media
                    .platform_ref
                    .as_deref()
                    .and_then(|r| r.parse::<u64>().ok());
                match sticker_id {
                    Some(id) => plan.calls.push(Call::new(
                        n,
                        &kind,
                        json!({"type": "sticker", "sticker_id": id}),
                    )),
                    None => {
                        let url = m
                            .media
                            .url
                            .as_deref()
                            .filter(|u| crate::model::is_http_url(u));
                        plan.as_link(n, &kind, url, "Viber sends only its own stickers");
                    }
                }
            }
            Part::Image(m)
            | Part::Video(m)
            | Part::Audio(m)
            | Part::VoiceNote(m)
            | Part::File(m) => plan_media(&mut plan, n, &kind, part, m),
            Part::Location(l) => {
                plan.calls.push(Call::new(
                    n,
                    &kind,
                    json!({"type": "location", "location": {"lat": l.latitude, "lon": l.longitude}}),
                ));
                let label: Vec<&str> = [l.name.as_deref(), l.address.as_deref()]
                    .into_iter()
                    .flatten()
                    .filter(|s| !s.trim().is_empty())
                    .collect();
                if !label.is_empty() {
                    plan.text(n, &kind, &label.join("\n"));
                }
            }
            Part::Contact(c) => {
                let name = c.name.as_deref().filter(|s| !s.trim().is_empty());
                match c.phones.first() {
                    Some(phone) => plan.calls.push(Call::new(
                        n,
                        &kind,
                        json!({"type": "contact",
                               "contact": {"name": name.unwrap_or(phone), "phone_number": phone}}),
                    )),
                    None => {
                        plan.notes.push(format!(
                            "Part {n} (contact) was sent as text: Viber shares only contacts with a phone number."
                        ));
                        let lines: Vec<&str> = name
                            .into_iter()
                            .chain(c.emails.iter().map(String::as_str))
                            .collect();
                        if !lines.is_empty() {
                            plan.text(n, &kind, &lines.join("\n"));
                        }
                    }
                }
            }
            Part::Unsupported(u) => {
                let url = u
                    .raw
                    .as_ref()
                    .and_then(|raw| raw.get("url"))
                    .and_then(Value::as_str)
                    .filter(|url| crate::model::is_http_url(url));
                plan.as_link(n, &kind, url, "Viber has no such message type");
            }
        }
    }
    plan
}

/// A media part as calls. Viber takes media only by URL; only pictures carry a
/// description, so other captions (and picture captions too long for Viber) follow as
/// text.
fn plan_media(plan: &mut Plan, n: usize, kind: &str, part: &Part, m: &MediaPart) {
    let caption = m.caption.as_deref().filter(|c| !c.trim().is_empty());
    let Some(url) = m
        .media
        .url
        .as_deref()
        .filter(|u| crate::model::is_http_url(u))
    else {
        plan.as_link(n, kind, None, "Viber takes media only by http(s) URL");
        if let Some(caption) = caption {
            plan.text(n, kind, caption);
        }
        return;
    };
    if let Part::Image(_) = part {
        let fits = |c: &&str| c.chars().count() <= MAX_CAPTION;
        let description = caption.filter(fits).unwrap_or_default();
        plan.calls.push(Call::new(
            n,
            kind,
            json!({"type": "picture", "media": url, "text": description}),
        ));
        if let Some(caption) = caption.filter(|c| !fits(c)) {
            plan.text(n, kind, caption);
        }
        return;
    }
    let mut call = if let Part::Video(_) = part {
        let mut body = json!({"type": "video", "media": url});
        if let Some(d) = m.media.duration_s.filter(|d| d.is_finite() && *d >= 0.0) {
            body["duration"] = (d.round() as u64).into();
        }
        Call::new(n, kind, body)
    } else {
        if matches!(part, Part::Audio(_) | Part::VoiceNote(_)) {
            plan.notes.push(format!(
                "Part {n} ({kind}) was sent as a file: Viber bots cannot send audio."
            ));
        }
        let name = file_name(&m.media, url);
        Call::new(
            n,
            kind,
            json!({"type": "file", "media": url, "file_name": name}),
        )
    };
    match m.media.size_bytes {
        Some(size) => {
            call.body.insert("size".into(), size.into());
        }
        None => call.needs_size = Some(url.to_owned()),
    }
    plan.calls.push(call);
    if let Some(caption) = caption {
        plan.text(n, kind, caption);
    }
}

/// Splits text into pieces of at most `max` characters, preferring to break after a
/// newline, then after a space.
fn split_text(text: &str, max: usize) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut rest = text;
    while rest.chars().count() > max {
        let end = rest
            .char_indices()
            .nth(max)
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let head = &rest[..end];
        let cut = head
            .rfind('\n')
            .or_else(|| head.rfind(' '))
            .map(|i| i + 1)
            .filter(|&i| i > 0)
            .unwrap_or(end);
        chunks.push(rest[..cut].to_owned());
        rest = &rest[cut..];
    }
    if !rest.is_empty() || chunks.is_empty() {
        chunks.push(rest.to_owned());
    }
    chunks
}

// ---------------------------------------------------------------------------------------
// Inbound

#[derive(Deserialize)]
struct WireSender {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

/// The fields of a `message` object we read (which apply depends on its `type`).
#[derive(Deserialize)]
struct WireContent {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    media: Option<String>,
    #[serde(default)]
    file_name: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    sticker_id: Option<Value>,
    #[serde(default)]
    location: Option<WireLocation>,
    #[serde(default)]
    contact: Option<WireContact>,
}

#[derive(Deserialize)]
struct WireLocation {
    lat: f64,
    lon: f64,
}

#[derive(Deserialize)]
struct WireContact {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    phone_number: Option<String>,
}

fn required_token(callback: &Value) -> Result<String, ParseError> {
    let value = callback
        .get("message_token")
        .ok_or_else(|| invalid("message_token", "is required"))?;
    token(value).ok_or_else(|| invalid("message_token", "must be a 64-bit integer"))
}

fn millis(callback: &Value) -> Result<Option<DateTime<Utc>>, ParseError> {
    match callback.get("timestamp") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(DateTime::from_timestamp_millis)
            .map(Some)
            .ok_or_else(|| invalid("timestamp", "must be unix milliseconds")),
        Some(_) => Err(invalid("timestamp", "must be unix milliseconds")),
    }
}

fn media_url(content: &WireContent) -> Result<String, ParseError> {
    content
        .media
        .clone()
        .filter(|m| crate::model::is_http_url(m))
        .ok_or_else(|| invalid("message.media", "must be an http(s) URL"))
}

/// The parts a Viber message carries: its content, then its `text` when the content has
/// nowhere to hold it (a location, sticker, contact or link sent with a comment), since
/// nothing a platform sends is dropped.
fn contents(value: &Value) -> Result<Vec<Part>, ParseError> {
    let part = content(value)?;
    let text = value
        .get("text")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty());
    let mut parts = Vec::with_capacity(2);
    let kept = matches!(part, Part::Unsupported(_)) || part.text() == text;
    parts.push(part);
    if let Some(text) = text.filter(|_| !kept) {
        parts.push(Part::Text(TextPart {
            text: text.to_owned(),
        }));
    }
    Ok(parts)
}

/// The part a Viber message's content is. `value` is the `message` object.
fn content(value: &Value) -> Result<Part, ParseError> {
    let kind = match value.get("type") {
        None => return Err(invalid("message.type", "is required")),
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => return Err(invalid("message.type", "must be a string")),
    };
    let known = [
        "text", "picture", "video", "file", "sticker", "contact", "url", "location",
    ];
    if !known.contains(&kind) {
        // rich_media, keyboards and whatever Viber adds next: kept whole.
        return Ok(Part::Unsupported(UnsupportedPart {
            platform_type: kind.to_owned(),
            raw: Some(value.clone()),
        }));
    }
    let c: WireContent = read(value, "message")?;
    let caption = c.text.clone().filter(|t| !t.trim().is_empty());
    let media = |url: String| Media {
        platform_ref: None,
        url: Some(url),
        mime_type: None,
        size_bytes: c.size,
        filename: c.file_name.clone().filter(|n| !n.is_empty()),
        duration_s: c.duration,
    };
    Ok(match kind {
        "text" => Part::Text(TextPart {
            text: caption.ok_or_else(|| invalid("message.text", "must not be empty"))?,
        }),
        // A shared link.
        "url" => Part::Text(TextPart {
            text: media_url(&c)?,
        }),
        "picture" => Part::Image(MediaPart {
            media: media(media_url(&c)?),
            caption,
        }),
        "video" => Part::Video(MediaPart {
            media: media(media_url(&c)?),
            caption,
        }),
        "file" => Part::File(MediaPart {
            media: media(media_url(&c)?),
            caption,
        }),
        "sticker" => {
            let sticker_id = match &c.sticker_id {
                Some(Value::Number(n)) if n.is_u64() => n.to_string(),
                Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
                _ => return Err(invalid("message.sticker_id", "must be a sticker id")),
            };
            Part::Sticker(MediaPart {
                media: Media {
                    platform_ref: Some(sticker_id),
                    url: c.media.clone().filter(|m| crate::model::is_http_url(m)),
                    ..Media::default()
                },
                caption: None,
            })
        }
        "location" => {
            let l = c
                .location
                .ok_or_else(|| invalid("message.location", "is required"))?;
            if !(-90.0..=90.0).contains(&l.lat) {
                return Err(invalid(
                    "message.location.lat",
                    "must be between -90 and 90",
                ));
            }
            if !(-180.0..=180.0).contains(&l.lon) {
                return Err(invalid(
                    "message.location.lon",
                    "must be between -180 and 180",
                ));
            }
            Part::Location(LocationPart {
                latitude: l.lat,
                longitude: l.lon,
                name: None,
                address: None,
            })
        }
        _ => {
            let contact = c
                .contact
                .ok_or_else(|| invalid("message.contact", "is required"))?;
            Part::Contact(ContactPart {
                name: contact.name.filter(|n| !n.trim().is_empty()),
                phones: contact
                    .phone_number
                    .filter(|p| !p.trim().is_empty())
                    .into_iter()
                    .collect(),
                emails: Vec::new(),
            })
        }
    })
}

fn message_event(callback: &Value) -> Result<InboundEvent, ParseError> {
    let platform_message_id = required_token(callback)?;
    let sender: WireSender = read(
        callback
            .get("sender")
            .ok_or_else(|| invalid("sender", "is required"))?,
        "sender",
    )?;
    if sender.id.trim().is_empty() {
        return Err(invalid("sender.id", "must not be empty"));
    }
    let message = callback
        .get("message")
        .ok_or_else(|| invalid("message", "is required"))?;
    if !message.is_object() {
        return Err(invalid("message", "must be an object"));
    }
    Ok(InboundEvent::Message(InboundMessage {
        conversation_hint: None,
        platform_message_id,
        thread_id: Some(sender.id.clone()),
        from: InboundContact {
            identifier: Identifier {
                kind: IDENTIFIER_TYPE.into(),
                value: sender.id,
            },
            display_name: sender.name.filter(|n| !n.trim().is_empty()),
            email: None,
        },
        // Viber has no quoted replies.
        reply_to: None,
        parts: contents(message)?,
        sent_at: millis(callback)?,
        raw: callback.clone(),
    }))
}

fn status_event(callback: &Value, status: DeliveryStatus) -> Result<InboundEvent, ParseError> {
    let error = match status {
        DeliveryStatus::Failed => Some(
            callback
                .get("desc")
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
                .unwrap_or("Viber could not deliver the message")
                .to_owned(),
        ),
        _ => None,
    };
    Ok(InboundEvent::Status(StatusUpdate {
        platform_message_id: required_token(callback)?,
        status,
        error,
    }))
}

/// Reads a callback body: one event. `webhook` (the check Viber makes when the webhook is
/// set), subscriptions and conversation starts carry no message and give no event.
pub fn parse_callback(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let callback: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::Malformed(e.to_string()))?;
    if !callback.is_object() {
        return Err(invalid("body", "must be a Viber callback object"));
    }
    let event = match callback.get("event") {
        None => return Err(invalid("event", "is required")),
        Some(Value::String(event)) => event.as_str(),
        Some(_) => return Err(invalid("event", "must be a string")),
    };
    Ok(match event {
        "message" => vec![message_event(&callback)?],
        "delivered" => vec![status_event(&callback, DeliveryStatus::Delivered)?],
        "seen" => vec![status_event(&callback, DeliveryStatus::Read)?],
        "failed" => vec![status_event(&callback, DeliveryStatus::Failed)?],
        // webhook, subscribed, unsubscribed, conversation_started, and events Viber may add.
        _ => Vec::new(),
    })
}

#[async_trait]
impl ChannelAdapter for ViberAdapter {
    fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError> {
        let presented = request
            .header(SIGNATURE_HEADER)
            .ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;
        let signature = hex::decode(presented.trim()).map_err(|_| VerifyError::BadSignature)?;
        let keys = secrets_in_force(&self.auth_token, &self.retired, now);
        if hmac_sha256_matches_any(keys, &request.body, &signature) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    fn parse(&self, request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError> {
        match request.content_type().as_deref() {
            Some("application/json") => parse_callback(&request.body),
            other => Err(ParseError::UnsupportedMediaType(
                other.unwrap_or("none").to_owned(),
            )),
        }
    }

    /// One send per part, in order, to the user (Viber has no quoted replies: `reply_to`
    /// is not sent). Once something has gone out, a later failure is reported in the note
    /// instead of failing the send: a retry would send the earlier parts a second time.
    async fn send(&self, message: &Outbound) -> Result<Receipt, SendError> {
        let receiver = message
            .platform_thread_id
            .as_deref()
            .unwrap_or(&message.to.value);
        if receiver.trim().is_empty() {
            return Err(SendError::Permanent {
                reason: "the conversation has no Viber user id".into(),
            });
        }
        let Plan { calls, mut notes } = plan(&message.parts);
        if calls.is_empty() {
            return Err(SendError::Permanent {
                reason: format!("nothing to send on Viber. {}", notes.join(" ")),
            });
        }
        let mut first_id = None;
        for (i, call) in calls.into_iter().enumerate() {
            let call = self.complete(call, &mut notes).await;
            match self.send_one(receiver, &call.body).await {
                Ok(id) if i == 0 => first_id = id,
                Ok(_) => {}
                Err(e) if i == 0 => return Err(e),
                Err(e) => {
                    notes.push(format!(
                        "Part {} ({}) and any after it were not sent: {e}",
                        call.part, call.kind
                    ));
                    break;
                }
            }
        }
        Ok(Receipt {
            platform_message_id: first_id,
            note: (!notes.is_empty()).then(|| notes.join(" ")),
        })
    }

    /// Viber gives media as signed CDN URLs that need no credentials (and the auth token
    /// is never sent to a URL taken from a payload).
    async fn fetch_media(
        &self,
        media: &Media,
        web: &MediaClient,
    ) -> Result<FetchedMedia, FetchError> {
        let url = media.url.as_deref().ok_or(FetchError::NoMedia)?;
        web.fetch(url, &[&self.api_base]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::fixture;
    use axum::http::HeaderValue;
    use hmac::{Hmac, Mac};
    use proptest::prelude::*;
    use sha2::Sha256;

    const TOKEN: &str = "4453b6ac12345678-e02c5f12174805f9-daec9cbb5448c51r";

    fn config() -> ViberConfig {
        ViberConfig {
            auth_token: Secret::new(TOKEN),
            api_base: DEFAULT_API_BASE.into(),
            sender_name: DEFAULT_SENDER_NAME.into(),
        }
    }

    fn adapter(retired: &[RetiredSecret]) -> ViberAdapter {
        ViberAdapter::new(&config(), reqwest::Client::new(), retired)
    }

    fn sign(key: &str, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(body.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn request(body: &str, signature: Option<&str>, content_type: &str) -> RawRequest {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_str(content_type).unwrap());
        if let Some(signature) = signature {
            headers.insert(
                "x-viber-content-signature",
                HeaderValue::from_str(signature).unwrap(),
            );
        }
        RawRequest::post(
            "https://bridge.example.test/hooks/viber",
            headers,
            body.to_owned(),
        )
    }

    fn parse(body: &str) -> Result<Vec<InboundEvent>, ParseError> {
        adapter(&[]).parse(&request(body, Some(&sign(TOKEN, body)), "application/json"))
    }

    fn message(body: &str) -> InboundMessage {
        match parse(body).unwrap().as_slice() {
            [InboundEvent::Message(m)] => m.clone(),
            other => panic!("expected one message, got {other:?}"),
        }
    }

    fn only_part(body: &str) -> Part {
        let m = message(body);
        assert_eq!(m.parts.len(), 1);
        m.parts[0].clone()
    }

    fn field_of(body: &str) -> String {
        match parse(body) {
            Err(ParseError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_text_message_names_sender_thread_token_and_time() {
        let m = message(fixture!("viber/text.json"));
        assert_eq!(m.platform_message_id, "5960076432594491601");
        assert_eq!(m.thread_id.as_deref(), Some("h7Qx2mK9vP4rT1wZ8cN3bA=="));
        assert_eq!(
            m.from.identifier,
            Identifier {
                kind: "viber_user".into(),
                value: "h7Qx2mK9vP4rT1wZ8cN3bA==".into()
            }
        );
        assert_eq!(m.from.display_name.as_deref(), Some("Olena"));
        assert_eq!(m.reply_to, None);
        assert_eq!(
            m.parts,
            vec![Part::Text(TextPart {
                text: "Is my parcel on its way?".into()
            })]
        );
        assert_eq!(m.sent_at, DateTime::from_timestamp_millis(1783004000123));
        assert_eq!(m.raw["chat_hostname"], "SN-CHAT-07_");
    }

    #[test]
    fn message_tokens_keep_all_64_bits() {
        // 2^63 + 1 does not survive a trip through f64.
        let body =
            fixture!("viber/text.json").replace("5960076432594491601", "9223372036854775809");
        assert_eq!(message(&body).platform_message_id, "9223372036854775809");
        let quoted =
            fixture!("viber/text.json").replace("5960076432594491601", "\"5960076432594491601\"");
        assert_eq!(message(&quoted).platform_message_id, "5960076432594491601");
    }

    #[test]
    fn a_picture_is_an_image_with_its_url_name_size_and_caption() {
        assert_eq!(
            only_part(fixture!("viber/picture.json")),
            Part::Image(MediaPart {
                media: Media {
                    url: Some("https://dl-media.viber.com/5/media/2/short/any/sig/image/0x0/IMG_0042.jpg?Expires=1783007600&Signature=abc".into()),
                    filename: Some("IMG_0042.jpg".into()),
                    size_bytes: Some(402113),
                    ..Media::default()
                },
                caption: Some("The box arrived like this".into())
            })
        );
    }

    #[test]
    fn every_message_type_maps_to_its_part() {
        let Part::Video(video) = only_part(fixture!("viber/video.json")) else {
            panic!("not a video")
        };
        assert_eq!(video.media.size_bytes, Some(3145728));
        assert_eq!(video.media.duration_s, Some(12.0));

        let Part::File(file) = only_part(fixture!("viber/file.json")) else {
            panic!("not a file")
        };
        assert_eq!(file.media.filename.as_deref(), Some("invoice-2291.pdf"));
        assert_eq!(file.media.size_bytes, Some(48213));

        let Part::Sticker(sticker) = only_part(fixture!("viber/sticker.json")) else {
            panic!("not a sticker")
        };
        assert_eq!(sticker.media.platform_ref.as_deref(), Some("40138"));
        assert!(sticker.media.url.unwrap().ends_with("00040138.png"));

        assert_eq!(
            only_part(fixture!("viber/contact.json")),
            Part::Contact(ContactPart {
                name: Some("Bo Lindqvist".into()),
                phones: vec!["+46701234567".into()],
                emails: vec![]
            })
        );
        assert_eq!(
            only_part(fixture!("viber/location.json")),
            Part::Location(LocationPart {
                latitude: 50.4501,
                longitude: 30.5234,
                name: None,
                address: None
            })
        );
        assert_eq!(
            only_part(fixture!("viber/url.json")),
            Part::Text(TextPart {
                text: "https://shop.example.com/orders/2291".into()
            })
        );
    }

    #[test]
    fn a_comment_sent_with_a_location_sticker_contact_or_link_is_kept_as_text() {
        for (kind, fixture, first) in [
            ("location", fixture!("viber/location.json"), "location"),
            ("sticker", fixture!("viber/sticker.json"), "sticker"),
            ("contact", fixture!("viber/contact.json"), "contact"),
            ("url", fixture!("viber/url.json"), "text"),
        ] {
            let body = fixture.replacen(
                &format!(r#""type":"{kind}","#),
                &format!(r#""type":"{kind}","text":"see this","#),
                1,
            );
            let parts = message(&body).parts;
            let kinds: Vec<_> = parts.iter().map(kind_of).collect();
            assert_eq!(kinds, [first, "text"], "{kind}");
            assert_eq!(parts[1].text(), Some("see this"), "{kind}");
        }
        // A caption already holds it; a text message is its text.
        for fixture in [fixture!("viber/picture.json"), fixture!("viber/text.json")] {
            assert_eq!(message(fixture).parts.len(), 1, "{fixture}");
        }
    }

    #[test]
    fn an_unknown_message_type_is_kept_as_unsupported_with_its_raw_json() {
        let Part::Unsupported(u) = only_part(fixture!("viber/rich_media.json")) else {
            panic!("not unsupported")
        };
        assert_eq!(u.platform_type, "rich_media");
        assert_eq!(u.raw.unwrap()["rich_media"]["Type"], "rich_media");
    }

    #[test]
    fn delivery_callbacks_are_statuses_of_the_token_we_got_when_sending() {
        let status = |body: &str| match parse(body).unwrap().as_slice() {
            [InboundEvent::Status(s)] => s.clone(),
            other => panic!("expected one status, got {other:?}"),
        };
        assert_eq!(
            status(fixture!("viber/delivered.json")),
            StatusUpdate {
                platform_message_id: "5741311803571721087".into(),
                status: DeliveryStatus::Delivered,
                error: None
            }
        );
        assert_eq!(
            status(fixture!("viber/seen.json")).status,
            DeliveryStatus::Read
        );
        assert_eq!(
            status(fixture!("viber/failed.json")),
            StatusUpdate {
                platform_message_id: "5741311803571721087".into(),
                status: DeliveryStatus::Failed,
                error: Some("receiver is not subscribed".into())
            }
        );
    }

    #[test]
    fn the_webhook_check_and_events_without_a_message_give_no_event() {
        for body in [
            fixture!("viber/webhook.json"),
            fixture!("viber/subscribed.json"),
            fixture!("viber/unsubscribed.json"),
            fixture!("viber/conversation_started.json"),
            r#"{"event": "client_status", "timestamp": 1}"#,
        ] {
            assert_eq!(parse(body).unwrap(), vec![], "{body}");
        }
    }

    #[test]
    fn the_signature_is_a_hex_hmac_of_the_raw_body_keyed_by_the_auth_token() {
        let a = adapter(&[]);
        let now = Utc::now();
        let body = fixture!("viber/text.json");
        let good = sign(TOKEN, body);
        a.verify(&request(body, Some(&good), "application/json"), now)
            .unwrap();
        a.verify(
            &request(body, Some(&good.to_uppercase()), "application/json"),
            now,
        )
        .unwrap();
        let tampered = body.replace("parcel", "parcels");
        assert_eq!(
            a.verify(&request(&tampered, Some(&good), "application/json"), now),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            a.verify(
                &request(body, Some(&sign("another-token", body)), "application/json"),
                now
            ),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            a.verify(&request(body, Some("not hex"), "application/json"), now),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            a.verify(&request(body, None, "application/json"), now),
            Err(VerifyError::MissingHeader("X-Viber-Content-Signature"))
        );
    }

    #[test]
    fn a_retired_token_verifies_until_its_time_only() {
        let until = Utc::now();
        let a = adapter(&[RetiredSecret {
            secret: Secret::new("old-token"),
            until,
        }]);
        let body = fixture!("viber/text.json");
        let old = request(body, Some(&sign("old-token", body)), "application/json");
        a.verify(&old, until - chrono::Duration::seconds(1))
            .unwrap();
        assert_eq!(a.verify(&old, until), Err(VerifyError::BadSignature));
    }

    #[test]
    fn viber_has_no_get_handshake_and_takes_only_json() {
        let a = adapter(&[]);
        let mut get = request("", None, "application/json");
        get.method = axum::http::Method::GET;
        assert_eq!(
            a.handshake(&get),
            Err(super::super::HandshakeError::NotSupported)
        );
        assert_eq!(
            a.parse(&request("event=message", None, "text/plain")),
            Err(ParseError::UnsupportedMediaType("text/plain".into()))
        );
    }

    #[test]
    fn malformed_callbacks_name_the_field_at_fault() {
        let text = fixture!("viber/text.json");
        let with = |pointer: &str, value: Value| {
            let mut v: Value = serde_json::from_str(text).unwrap();
            *v.pointer_mut(pointer).unwrap() = value;
            v.to_string()
        };
        let without = |field: &str| {
            let mut v: Value = serde_json::from_str(text).unwrap();
            v.as_object_mut().unwrap().remove(field);
            v.to_string()
        };
        assert!(matches!(
            parse("{\"event\":"),
            Err(ParseError::Malformed(_))
        ));
        assert_eq!(field_of("[]"), "body");
        assert_eq!(field_of(r#"{"timestamp": 1}"#), "event");
        assert_eq!(field_of(r#"{"event": 7}"#), "event");
        assert_eq!(field_of(&without("message_token")), "message_token");
        assert_eq!(
            field_of(&with("/message_token", json!(1.5))),
            "message_token"
        );
        assert_eq!(
            field_of(&with("/message_token", json!("12a"))),
            "message_token"
        );
        assert_eq!(field_of(&without("sender")), "sender");
        assert_eq!(field_of(&with("/sender/id", json!(5))), "sender.id");
        assert_eq!(field_of(&with("/sender/id", json!(""))), "sender.id");
        assert_eq!(field_of(&without("message")), "message");
        assert_eq!(field_of(&with("/message", json!("hi"))), "message");
        assert_eq!(
            field_of(&with("/message/type", json!(null))),
            "message.type"
        );
        assert_eq!(field_of(&with("/message/text", json!(""))), "message.text");
        assert_eq!(field_of(&with("/message/text", json!(3))), "message.text");
        assert_eq!(field_of(&with("/timestamp", json!("noon"))), "timestamp");
        let picture = fixture!("viber/picture.json").replace("https://dl-media", "ftp://dl-media");
        assert_eq!(field_of(&picture), "message.media");
        let size = fixture!("viber/picture.json").replace("402113", "-1");
        assert_eq!(field_of(&size), "message.size");
        let location = fixture!("viber/location.json").replace("50.4501", "95.0");
        assert_eq!(field_of(&location), "message.location.lat");
        let sticker = fixture!("viber/sticker.json").replace("40138", "null");
        assert_eq!(field_of(&sticker), "message.sticker_id");
        let status = fixture!("viber/delivered.json").replace("5741311803571721087", "\"x\"");
        assert_eq!(field_of(&status), "message_token");
    }

    #[test]
    fn config_keys_are_checked() {
        assert!(config().validate().is_empty());
        let bad = ViberConfig {
            auth_token: Secret::new(TOKEN),
            api_base: "chatapi.viber.com".into(),
            sender_name: "A name much longer than twenty-eight".into(),
        };
        let fields: Vec<String> = bad.validate().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["api_base", "sender_name"]);
    }

    // --- Outbound ---------------------------------------------------------------------

    fn url_media(url: &str) -> Media {
        Media {
            url: Some(url.into()),
            ..Media::default()
        }
    }

    fn bodies(plan: &Plan) -> Vec<Value> {
        plan.calls
            .iter()
            .map(|c| Value::Object(c.body.clone()))
            .collect()
    }

    #[test]
    fn every_part_kind_becomes_its_message_type() {
        let parts = vec![
            Part::Text(TextPart {
                text: "Hello".into(),
            }),
            Part::Image(MediaPart {
                media: url_media("https://cdn.example/label.png"),
                caption: Some("Your label".into()),
            }),
            Part::Video(MediaPart {
                media: Media {
                    size_bytes: Some(1000),
                    duration_s: Some(12.4),
                    ..url_media("https://cdn.example/how-to.mp4")
                },
                caption: None,
            }),
            Part::File(MediaPart {
                media: Media {
                    size_bytes: Some(2000),
                    ..url_media("https://cdn.example/docs/invoice.pdf?sig=1")
                },
                caption: None,
            }),
            Part::Sticker(MediaPart {
                media: Media {
                    platform_ref: Some("40138".into()),
                    ..Media::default()
                },
                caption: None,
            }),
            Part::Location(LocationPart {
                latitude: 50.45,
                longitude: 30.52,
                name: None,
                address: None,
            }),
            Part::Contact(ContactPart {
                name: Some("Support".into()),
                phones: vec!["+380441234567".into()],
                emails: vec![],
            }),
        ];
        let plan = plan(&parts);
        assert!(plan.notes.is_empty(), "{:?}", plan.notes);
        assert!(plan.calls.iter().all(|c| c.needs_size.is_none()));
        assert_eq!(
            bodies(&plan),
            [
                json!({"type": "text", "text": "Hello"}),
                json!({"type": "picture", "media": "https://cdn.example/label.png", "text": "Your label"}),
                json!({"type": "video", "media": "https://cdn.example/how-to.mp4", "size": 1000, "duration": 12}),
                json!({"type": "file", "media": "https://cdn.example/docs/invoice.pdf?sig=1", "size": 2000, "file_name": "invoice.pdf"}),
                json!({"type": "sticker", "sticker_id": 40138}),
                json!({"type": "location", "location": {"lat": 50.45, "lon": 30.52}}),
                json!({"type": "contact", "contact": {"name": "Support", "phone_number": "+380441234567"}}),
            ]
        );
    }

    #[test]
    fn what_viber_cannot_carry_becomes_a_file_a_link_or_a_note() {
        let parts = vec![
            Part::VoiceNote(MediaPart {
                media: Media {
                    size_bytes: Some(5),
                    ..url_media("https://cdn.example/v.ogg")
                },
                caption: None,
            }),
            Part::Sticker(MediaPart {
                media: url_media("https://cdn.example/s.webp"),
                caption: None,
            }),
            Part::Image(MediaPart {
                media: Media {
                    platform_ref: Some("AgAC-telegram-file".into()),
                    ..Media::default()
                },
                caption: Some("caption".into()),
            }),
            Part::Video(MediaPart {
                media: url_media("https://cdn.example/v.mp4"),
                caption: Some("Watch this".into()),
            }),
        ];
        let plan = plan(&parts);
        assert_eq!(
            bodies(&plan),
            [
                json!({"type": "file", "media": "https://cdn.example/v.ogg", "size": 5, "file_name": "v.ogg"}),
                json!({"type": "text", "text": "https://cdn.example/s.webp"}),
                json!({"type": "text", "text": "caption"}),
                json!({"type": "video", "media": "https://cdn.example/v.mp4"}),
                json!({"type": "text", "text": "Watch this"}),
            ]
        );
        assert_eq!(
            plan.calls[3].needs_size.as_deref(),
            Some("https://cdn.example/v.mp4"),
            "the size is looked up before sending"
        );
        assert_eq!(plan.notes.len(), 3, "{:?}", plan.notes);
        assert!(plan.notes[0].contains("Part 1 (voice_note) was sent as a file"));
        assert!(plan.notes[1].contains("Part 2 (sticker) was sent as a link"));
        assert!(plan.notes[2].contains("Part 3 (image) was not sent"));
    }

    #[test]
    fn long_texts_are_split_and_long_descriptions_follow_as_text() {
        let long = "слово ".repeat(1500); // 9000 characters
        let plan_ = plan(&[Part::Text(TextPart { text: long.clone() })]);
        assert_eq!(plan_.calls.len(), 2);
        let joined: String = plan_
            .calls
            .iter()
            .map(|c| c.body["text"].as_str().unwrap())
            .collect();
        assert_eq!(joined, long);
        assert!(
            plan_
                .calls
                .iter()
                .all(|c| c.body["text"].as_str().unwrap().chars().count() <= MAX_TEXT)
        );

        let caption = "c".repeat(MAX_CAPTION + 1);
        let plan_ = plan(&[Part::Image(MediaPart {
            media: url_media("https://x.example/a.png"),
            caption: Some(caption.clone()),
        })]);
        assert_eq!(
            bodies(&plan_),
            [
                json!({"type": "picture", "media": "https://x.example/a.png", "text": ""}),
                json!({"type": "text", "text": caption}),
            ]
        );
    }

    fn answer(status: u16, body: Value) -> Result<Option<String>, SendError> {
        read_answer(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            &body.to_string(),
        )
    }

    #[test]
    fn answers_are_classified_by_http_status_and_the_status_field() {
        assert_eq!(
            answer(
                200,
                json!({"status": 0, "status_message": "ok", "message_token": 5741311803571721087u64})
            ),
            Ok(Some("5741311803571721087".into()))
        );
        assert!(matches!(
            answer(200, json!({"status": 12, "status_message": "tooManyRequests"})),
            Err(SendError::RateLimited { reason, .. }) if reason == "Viber status 12: tooManyRequests"
        ));
        for status in [1, 2, 3, 4, 5, 6, 7, 10, 13, 24] {
            assert!(
                matches!(
                    answer(200, json!({"status": status, "status_message": "x"})),
                    Err(SendError::Permanent { .. })
                ),
                "{status}"
            );
        }
        assert!(matches!(
            answer(200, json!({"status": 99, "status_message": "generalError"})),
            Err(SendError::Retryable { .. })
        ));
        assert!(matches!(
            read_answer(StatusCode::OK, &HeaderMap::new(), "<html/>"),
            Err(SendError::Retryable { .. })
        ));
        assert!(matches!(
            answer(503, json!({})),
            Err(SendError::Retryable { .. })
        ));
        assert!(matches!(
            answer(429, json!({})),
            Err(SendError::RateLimited { .. })
        ));
        assert!(matches!(
            answer(401, json!({})),
            Err(SendError::Permanent { .. })
        ));
    }

    #[test]
    fn file_names_come_from_the_media_or_the_url() {
        let named = Media {
            filename: Some("Invoice 2291.pdf".into()),
            ..Media::default()
        };
        assert_eq!(file_name(&named, "https://x/y.bin"), "Invoice 2291.pdf");
        assert_eq!(
            file_name(&Media::default(), "https://x/a/report.pdf?sig=2"),
            "report.pdf"
        );
        assert_eq!(file_name(&Media::default(), "https://x/"), "file");
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null)),
            ".{0,12}".prop_map(Value::from),
            prop_oneof![
                Just("message"),
                Just("delivered"),
                Just("seen"),
                Just("failed"),
                Just("text"),
                Just("picture"),
                Just("sticker"),
                Just("location"),
                Just("contact"),
                Just("https://x.example/a"),
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("event".to_owned()),
                        Just("message".to_owned()),
                        Just("message_token".to_owned()),
                        Just("sender".to_owned()),
                        Just("type".to_owned()),
                        Just("media".to_owned()),
                        Just("location".to_owned()),
                        "[a-z_]{1,10}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_parser(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_callback(&body);
        }

        #[test]
        fn arbitrary_json_never_panics_the_parser(value in json_value()) {
            let _ = parse_callback(value.to_string().as_bytes());
            let callback = json!({"event": "message", "message_token": 1,
                                  "sender": {"id": "u"}, "message": value.clone()});
            let _ = parse_callback(callback.to_string().as_bytes());
        }

        #[test]
        fn a_real_callback_with_any_field_replaced_never_panics(
            fixture in prop::sample::select(vec![
                fixture!("viber/text.json"), fixture!("viber/picture.json"), fixture!("viber/sticker.json"), fixture!("viber/location.json"),
                fixture!("viber/contact.json"), fixture!("viber/video.json"), fixture!("viber/failed.json"),
            ]),
            inner in any::<bool>(),
            index in any::<prop::sample::Index>(),
            value in json_value(),
        ) {
            let mut callback: Value = serde_json::from_str(fixture).unwrap();
            let target = match callback.get_mut("message") {
                Some(message) if inner => message.as_object_mut().unwrap(),
                _ => callback.as_object_mut().unwrap(),
            };
            let key = target.keys().nth(index.index(target.len())).unwrap().clone();
            target.insert(key, value);
            if let Ok(events) = parse_callback(callback.to_string().as_bytes()) {
                for event in events {
                    if let InboundEvent::Message(m) = event {
                        prop_assert_eq!(m.parts.len(), 1);
                    }
                }
            }
        }
    }
}
