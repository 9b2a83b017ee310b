//! Telegram Bot API: webhook `Update`s in, `send*` methods out.
//!
//! Telegram authenticates a webhook with the `secret_token` given to `setWebhook`, echoed
//! in the `X-Telegram-Bot-Api-Secret-Token` header (no signature over the body). A message
//! id is unique only inside its chat, so ours is `"{chat_id}:{message_id}"`; the chat (plus
//! the forum topic, if any) is the thread replies go to. The bot token is part of every
//! Bot API URL: it must never reach an error, a log line or a delivery note.

use async_trait::async_trait;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::fetch::MediaClient;
use super::{
    ChannelAdapter, FetchError, FetchedMedia, InboundContact, InboundEvent, InboundMessage,
    MessageEdit, Outbound, ParseError, RawRequest, Receipt, RetiredSecret, SendError, VerifyError,
    classify_status, classify_transport, invalid, read,
};
use crate::model::{
    ContactPart, EditOrder, Identifier, LocationPart, Media, MediaPart, Part, TextPart,
    UnsupportedPart,
};
use crate::secret::Secret;

/// The identifier type of a Telegram contact: the user id (or, for a message sent on behalf
/// of a chat, that chat's id).
pub const IDENTIFIER_TYPE: &str = "telegram_user";

/// The real Bot API.
pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";

/// The header carrying `secret_token`, as Telegram names it (for errors).
const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// The longest `sendMessage` text, in UTF-16 code units.
pub const MAX_TEXT: usize = 4096;

/// The longest media caption, in UTF-16 code units.
pub const MAX_CAPTION: usize = 1024;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The token BotFather gave (`123456:ABC-…`); it authenticates every Bot API call.
    pub bot_token: Secret,
    /// The `secret_token` given to `setWebhook`; Telegram sends it with every update.
    pub secret_token: Secret,
    /// The Bot API base URL (tests point it at a mock).
    #[serde(default = "default_api_base")]
    pub api_base: String,
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.to_owned()
}

impl TelegramConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let token = self.bot_token.expose();
        let well_formed = token.split_once(':').is_some_and(|(bot, key)| {
            !bot.is_empty()
                && bot.bytes().all(|b| b.is_ascii_digit())
                && !key.is_empty()
                && key.bytes().all(is_token_byte)
        });
        if !well_formed {
            errors.push((
                "bot_token".into(),
                "must look like 123456789:AAH… (the token BotFather gave)".into(),
            ));
        }
        let secret = self.secret_token.expose();
        if secret.len() > 256 || !secret.bytes().all(is_token_byte) {
            errors.push((
                "secret_token".into(),
                "must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)".into(),
            ));
        }
        if !crate::model::is_http_url(&self.api_base) {
            errors.push(("api_base".into(), "must be an http(s) URL".into()));
        }
        errors
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

pub struct TelegramAdapter {
    bot_token: Secret,
    secret_token: Secret,
    /// Secrets replaced by a reload, each accepted until its time.
    retired: Vec<RetiredSecret>,
    api_base: String,
    http: reqwest::Client,
}

impl TelegramAdapter {
    pub fn new(config: &TelegramConfig, http: reqwest::Client, retired: &[RetiredSecret]) -> Self {
        Self {
            bot_token: config.bot_token.clone(),
            secret_token: config.secret_token.clone(),
            retired: retired.to_vec(),
            api_base: config.api_base.trim_end_matches('/').to_owned(),
            http,
        }
    }

    fn method_url(&self, method: &str) -> String {
        format!("{}/bot{}/{method}", self.api_base, self.bot_token.expose())
    }

    /// Takes the bot token out of anything that might be shown (a proxy's error page could
    /// echo the URL).
    fn redact(&self, text: String) -> String {
        text.replace(self.bot_token.expose(), "[bot token]")
    }

    /// Calls one Bot API method with a JSON body; `Ok` is the `result` field.
    async fn call(&self, method: &str, body: &Value) -> Result<Value, Refusal> {
        let response = self
            .http
            .post(self.method_url(method))
            .json(body)
            .send()
            .await
            .map_err(|e| Refusal::from(classify_transport(e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        // Reasons quote the body; the token must not ride along.
        let text = self.redact(response.text().await.unwrap_or_default());
        read_answer(status, &headers, &text)
    }

    /// Sends one planned call, following a group's move to a supergroup and falling back
    /// to a link when Telegram cannot fetch a media URL. Returns our id for the message.
    async fn deliver(
        &self,
        call: &Call,
        destination: &mut Destination,
        reply: Option<&Value>,
        notes: &mut Vec<String>,
    ) -> Result<Option<String>, SendError> {
        let mut result = self
            .call(call.method, &destination.body(&call.body, reply))
            .await;
        if let Err(Refusal {
            migrate_to: Some(chat),
            ..
        }) = &result
        {
            destination.chat = chat.to_string();
            notes.push(format!("The group is now supergroup {chat}; sent there."));
            result = self
                .call(call.method, &destination.body(&call.body, reply))
                .await;
        }
        if let (Err(refusal), Some(link)) = (&result, &call.link)
            && refusal.url_refused()
        {
            notes.push(format!(
                "Part {} ({}) was sent as a link: Telegram could not fetch the file ({}).",
                call.part, call.kind, refusal.description
            ));
            let mut text = Map::new();
            text.insert("text".into(), Value::String(link.clone()));
            result = self
                .call("sendMessage", &destination.body(&text, reply))
                .await;
        }
        result
            .map(|sent| message_key(&sent, &destination.chat))
            .map_err(|r| r.error)
    }
}

/// A failed Bot API call, with what Telegram said beyond the classification.
#[derive(Debug)]
struct Refusal {
    error: SendError,
    description: String,
    /// `parameters.migrate_to_chat_id`: the group is now this supergroup.
    migrate_to: Option<i64>,
}

impl From<SendError> for Refusal {
    fn from(error: SendError) -> Self {
        Self {
            error,
            description: String::new(),
            migrate_to: None,
        }
    }
}

impl Refusal {
    /// Telegram could not use a media URL (unreachable, too large, not the right type).
    fn url_refused(&self) -> bool {
        let d = self.description.to_ascii_lowercase();
        matches!(self.error, SendError::Permanent { .. })
            && (d.contains("http url")
                || d.contains("web page content")
                || d.contains("wrong file identifier"))
    }
}

#[derive(Deserialize, Default)]
struct Envelope {
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize, Default)]
struct ResponseParameters {
    #[serde(default)]
    retry_after: Option<u64>,
    #[serde(default)]
    migrate_to_chat_id: Option<i64>,
}

/// Reads a Bot API answer: `{"ok": true, "result": …}` or `{"ok": false, "error_code",
/// "description", "parameters"}`. Classified by `error_code` (Telegram's own status) and
/// the HTTP status: 429 waits `parameters.retry_after`, 5xx retries, other 4xx are final.
fn read_answer(status: StatusCode, headers: &HeaderMap, text: &str) -> Result<Value, Refusal> {
    let envelope = serde_json::from_str::<Envelope>(text).ok();
    match envelope {
        Some(e) if status.is_success() && e.ok => Ok(e.result.unwrap_or(Value::Null)),
        // A 2xx that is not JSON: the call went through; there is just no id to keep.
        None if status.is_success() => Ok(Value::Null),
        None => Err(classify_status(status, headers, text).into()),
        Some(e) => {
            let code = e
                .error_code
                .and_then(|c| StatusCode::from_u16(c).ok())
                .filter(|c| c.is_client_error() || c.is_server_error())
                .unwrap_or(if status.is_success() {
                    StatusCode::BAD_REQUEST
                } else {
                    status
                });
            let description = e.description.unwrap_or_default();
            let parameters = e.parameters.unwrap_or_default();
            let mut error = classify_status(code, headers, &description);
            if let (
                SendError::RateLimited { retry_after, .. }
                | SendError::Retryable { retry_after, .. },
                Some(seconds),
            ) = (&mut error, parameters.retry_after)
            {
                *retry_after = Some(std::time::Duration::from_secs(seconds));
            }
            Err(Refusal {
                error,
                description,
                migrate_to: parameters.migrate_to_chat_id,
            })
        }
    }
}

/// Our id for a message Telegram reports as sent: `"{chat_id}:{message_id}"`.
fn message_key(sent: &Value, chat: &str) -> Option<String> {
    let message_id = sent.get("message_id")?.as_i64()?;
    let chat = sent
        .get("chat")
        .and_then(|c| c.get("id"))
        .and_then(Value::as_i64)
        .map(|id| id.to_string())
        .unwrap_or_else(|| chat.to_owned());
    Some(format!("{chat}:{message_id}"))
}

/// Where a reply goes: a chat, and a forum topic inside it.
#[derive(Debug, PartialEq)]
struct Destination {
    chat: String,
    topic: Option<i64>,
}

impl Destination {
    /// The conversation's chat (`"{chat_id}"` or `"{chat_id}:{message_thread_id}"`), else
    /// the contact's own id (a private chat has the user's id).
    fn of(message: &Outbound) -> Result<Self, SendError> {
        let key = message
            .platform_thread_id
            .as_deref()
            .unwrap_or(&message.to.value);
        let (chat, topic) = match key.split_once(':') {
            Some((chat, topic)) => {
                let topic = topic.parse::<i64>().map_err(|_| SendError::Permanent {
                    reason: format!("thread {key:?} is not a Telegram chat:topic id"),
                })?;
                (chat, Some(topic))
            }
            None => (key, None),
        };
        if chat.is_empty() {
            return Err(SendError::Permanent {
                reason: "the conversation has no Telegram chat id".into(),
            });
        }
        Ok(Self {
            chat: chat.to_owned(),
            topic,
        })
    }

    /// A chat id as Telegram takes it: a number, or an `@username`.
    fn chat_id(&self) -> Value {
        self.chat
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(self.chat.clone()))
    }

    fn body(&self, fields: &Map<String, Value>, reply: Option<&Value>) -> Value {
        let mut body = fields.clone();
        body.insert("chat_id".into(), self.chat_id());
        if let Some(topic) = self.topic {
            body.insert("message_thread_id".into(), topic.into());
        }
        if let Some(reply) = reply {
            body.insert("reply_parameters".into(), reply.clone());
        }
        Value::Object(body)
    }
}

/// `reply_parameters` for a quoted message (`"{chat_id}:{message_id}"`). A quote that is
/// gone no longer blocks the reply (`allow_sending_without_reply`), which Telegram allows
/// only within the same chat.
fn reply_parameters(reply_to: Option<&str>, destination: &Destination) -> Option<Value> {
    let reply_to = reply_to?;
    let (chat, message) = match reply_to.rsplit_once(':') {
        Some((chat, message)) => (Some(chat), message),
        None => (None, reply_to),
    };
    let message_id = message.parse::<i64>().ok()?;
    match chat {
        Some(chat) if chat != destination.chat => {
            let chat_id = chat
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(chat.to_owned()));
            Some(json!({"message_id": message_id, "chat_id": chat_id}))
        }
        _ => Some(json!({"message_id": message_id, "allow_sending_without_reply": true})),
    }
}

/// One Bot API call a reply part becomes (before chat, topic and quote are added).
#[derive(Clone, Debug, PartialEq)]
struct Call {
    method: &'static str,
    body: Map<String, Value>,
    /// The part it carries, counted from 1, and its kind (for notes).
    part: usize,
    kind: String,
    /// What to send instead when Telegram cannot fetch the media URL.
    link: Option<String>,
}

/// A reply as Bot API calls, in part order, plus notes on what could not go as written.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    calls: Vec<Call>,
    notes: Vec<String>,
}

impl Plan {
    /// Adds a call; `link` is what to send instead if Telegram cannot fetch its media.
    fn push_with_link(
        &mut self,
        part: usize,
        kind: &str,
        method: &'static str,
        body: Value,
        link: Option<String>,
    ) {
        let Value::Object(body) = body else {
            unreachable!("bodies are built as objects")
        };
        self.calls.push(Call {
            method,
            body,
            part,
            kind: kind.to_owned(),
            link,
        });
    }

    fn push(&mut self, part: usize, kind: &str, method: &'static str, body: Value) {
        self.push_with_link(part, kind, method, body, None);
    }

    fn text(&mut self, part: usize, kind: &str, text: &str) {
        for chunk in split_text(text, MAX_TEXT) {
            self.push(part, kind, "sendMessage", json!({"text": chunk}));
        }
    }
}

/// The wire name of a part's type (`voice_note`, `image`…), for notes.
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

/// Turns reply parts into Bot API calls. Media goes by URL (or by a Telegram file id, so a
/// rep can send back a file a contact sent); a caption too long for Telegram follows as
/// text; what Telegram cannot carry becomes a note (and a link, where there is one).
fn plan(parts: &[Part]) -> Plan {
    let mut plan = Plan::default();
    for (i, part) in parts.iter().enumerate() {
        let n = i + 1;
        let kind = kind_of(part);
        match part {
            Part::Text(t) => plan.text(n, &kind, &t.text),
            Part::Image(m)
            | Part::Video(m)
            | Part::Audio(m)
            | Part::VoiceNote(m)
            | Part::File(m)
            | Part::Sticker(m) => {
                let (method, field) = match part {
                    Part::Image(_) => ("sendPhoto", "photo"),
                    Part::Video(_) => ("sendVideo", "video"),
                    Part::Audio(_) => ("sendAudio", "audio"),
                    Part::VoiceNote(_) => ("sendVoice", "voice"),
                    Part::Sticker(_) => ("sendSticker", "sticker"),
                    _ => ("sendDocument", "document"),
                };
                let url = m
                    .media
                    .url
                    .as_deref()
                    .filter(|u| crate::model::is_http_url(u));
                let Some(source) = url.or(m.media.platform_ref.as_deref()) else {
                    plan.notes.push(format!(
                        "Part {n} ({kind}) was not sent: it has no http(s) URL or Telegram file id."
                    ));
                    if let Some(caption) = m.caption.as_deref().filter(|c| !c.trim().is_empty()) {
                        plan.text(n, &kind, caption);
                    }
                    continue;
                };
                let caption = m.caption.as_deref().filter(|c| !c.trim().is_empty());
                // Stickers take no caption; a long caption does not fit: both follow as text.
                let inline = caption
                    .filter(|c| !matches!(part, Part::Sticker(_)) && utf16_len(c) <= MAX_CAPTION);
                let mut body = json!({ field: source });
                if let Some(caption) = inline {
                    body["caption"] = caption.into();
                }
                let link = url.map(|url| match inline {
                    Some(c) => format!("{c}\n{url}"),
                    None => url.to_owned(),
                });
                plan.push_with_link(n, &kind, method, body, link);
                if let (Some(caption), None) = (caption, inline) {
                    plan.text(n, &kind, caption);
                }
            }
            Part::Location(l) => {
                let name = l.name.as_deref().filter(|s| !s.trim().is_empty());
                let address = l.address.as_deref().filter(|s| !s.trim().is_empty());
                match (name, address) {
                    (Some(title), Some(address)) => plan.push(
                        n,
                        &kind,
                        "sendVenue",
                        json!({"latitude": l.latitude, "longitude": l.longitude,
                               "title": title, "address": address}),
                    ),
                    _ => {
                        plan.push(
                            n,
                            &kind,
                            "sendLocation",
                            json!({"latitude": l.latitude, "longitude": l.longitude}),
                        );
                        if let Some(label) = name.or(address) {
                            plan.text(n, &kind, label);
                        }
                    }
                }
            }
            Part::Contact(c) => {
                let name = c.name.as_deref().filter(|s| !s.trim().is_empty());
                match c.phones.first() {
                    Some(phone) => {
                        let mut body = json!({
                            "phone_number": phone,
                            "first_name": name.unwrap_or(phone),
                        });
                        if c.phones.len() > 1 || !c.emails.is_empty() {
                            body["vcard"] = vcard(name.unwrap_or(phone), c).into();
                        }
                        plan.push(n, &kind, "sendContact", body);
                    }
                    None => {
                        plan.notes.push(format!(
                            "Part {n} (contact) was sent as text: Telegram shares only contacts with a phone number."
                        ));
                        let lines: Vec<&str> = name
                            .into_iter()
                            .chain(c.emails.iter().map(String::as_str))
                            .collect();
                        if lines.is_empty() {
                            continue;
                        }
                        plan.text(n, &kind, &lines.join("\n"));
                    }
                }
            }
            Part::Unsupported(u) => {
                let link = u
                    .raw
                    .as_ref()
                    .and_then(|raw| raw.get("url"))
                    .and_then(Value::as_str)
                    .filter(|url| crate::model::is_http_url(url));
                match link {
                    Some(url) => {
                        plan.notes.push(format!(
                            "Part {n} ({kind}) was sent as a link: Telegram has no such message type."
                        ));
                        plan.text(n, &kind, url);
                    }
                    None => plan.notes.push(format!(
                        "Part {n} ({kind}) was not sent: Telegram has no such message type."
                    )),
                }
            }
        }
    }
    plan
}

/// A vCard 3.0 carrying every phone and email of a contact (Telegram's `vcard`, ≤ 2048
/// bytes: extra entries are dropped rather than the card refused).
fn vcard(name: &str, contact: &ContactPart) -> String {
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    let mut card = format!("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{}\r\n", clean(name));
    let entries = contact
        .phones
        .iter()
        .map(|p| format!("TEL:{}\r\n", clean(p)))
        .chain(
            contact
                .emails
                .iter()
                .map(|e| format!("EMAIL:{}\r\n", clean(e))),
        );
    for entry in entries {
        if card.len() + entry.len() + "END:VCARD".len() > 2048 {
            break;
        }
        card.push_str(&entry);
    }
    card.push_str("END:VCARD");
    card
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Splits text into pieces of at most `max` UTF-16 code units (Telegram's measure),
/// preferring to break after a newline, then after a space.
fn split_text(text: &str, max: usize) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut rest = text;
    while utf16_len(rest) > max {
        // The byte index where `max` code units end.
        let mut units = 0;
        let mut end = 0;
        for (i, c) in rest.char_indices() {
            if units + c.len_utf16() > max {
                break;
            }
            units += c.len_utf16();
            end = i + c.len_utf8();
        }
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

/// The `Message` fields we read; everything else stays in the raw payload.
#[derive(Deserialize)]
struct WireMessage {
    message_id: i64,
    #[serde(default)]
    message_thread_id: Option<i64>,
    #[serde(default)]
    is_topic_message: Option<bool>,
    #[serde(default)]
    from: Option<WireUser>,
    #[serde(default)]
    sender_chat: Option<WireChat>,
    chat: WireChat,
    date: i64,
    #[serde(default)]
    edit_date: Option<i64>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    photo: Option<Vec<WireFile>>,
    #[serde(default)]
    animation: Option<WireFile>,
    #[serde(default)]
    video: Option<WireFile>,
    #[serde(default)]
    video_note: Option<WireFile>,
    #[serde(default)]
    voice: Option<WireFile>,
    #[serde(default)]
    audio: Option<WireFile>,
    #[serde(default)]
    document: Option<WireFile>,
    #[serde(default)]
    sticker: Option<WireFile>,
    #[serde(default)]
    venue: Option<WireVenue>,
    #[serde(default)]
    location: Option<WireLocation>,
    #[serde(default)]
    contact: Option<WireContact>,
    #[serde(default)]
    reply_to_message: Option<WireReplied>,
}

#[derive(Deserialize)]
struct WireUser {
    id: i64,
    #[serde(default)]
    is_bot: bool,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Deserialize)]
struct WireChat {
    id: i64,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

/// A file of any kind: photo size, voice, audio, video, document, sticker…
#[derive(Deserialize)]
struct WireFile {
    file_id: String,
    #[serde(default)]
    file_name: Option<String>,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    file_size: Option<u64>,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    width: Option<u64>,
    #[serde(default)]
    height: Option<u64>,
    #[serde(default)]
    is_animated: Option<bool>,
    #[serde(default)]
    is_video: Option<bool>,
}

#[derive(Deserialize)]
struct WireLocation {
    latitude: f64,
    longitude: f64,
}

#[derive(Deserialize)]
struct WireVenue {
    location: WireLocation,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    address: Option<String>,
}

#[derive(Deserialize)]
struct WireContact {
    phone_number: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    vcard: Option<String>,
}

#[derive(Deserialize)]
struct WireReplied {
    message_id: i64,
}

/// `Message` fields that describe a message rather than carry its content: a message
/// with no known content is `unsupported`, named after its first other field.
const MESSAGE_METADATA: &[&str] = &[
    "message_id",
    "message_thread_id",
    "direct_messages_topic",
    "from",
    "sender_chat",
    "sender_boost_count",
    "sender_business_bot",
    "sender_tag",
    "date",
    "business_connection_id",
    "chat",
    "forward_origin",
    "is_topic_message",
    "is_automatic_forward",
    "reply_to_message",
    "external_reply",
    "quote",
    "reply_to_story",
    "reply_to_checklist_task_id",
    "via_bot",
    "edit_date",
    "has_protected_content",
    "is_from_offline",
    "is_paid_post",
    "media_group_id",
    "author_signature",
    "paid_star_count",
    "text",
    "entities",
    "link_preview_options",
    "suggested_post_info",
    "effect_id",
    "caption",
    "caption_entities",
    "show_caption_above_media",
    "has_media_spoiler",
    "reply_markup",
];

fn unix(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0)
}

fn joined(parts: &[Option<&String>]) -> Option<String> {
    let name = parts
        .iter()
        .flatten()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!name.is_empty()).then_some(name)
}

/// Who wrote the message, or `None` for a bot (ours or another): bots are not contacts.
/// A message sent on behalf of a chat (a channel post, an anonymous group admin) comes
/// from that chat; Telegram then fills `from` with a placeholder bot.
fn sender(m: &WireMessage, at: &str) -> Result<Option<InboundContact>, ParseError> {
    let (id, display_name) = match (&m.sender_chat, &m.from) {
        (Some(chat), _) => (
            chat.id,
            joined(&[chat.title.as_ref()]).or_else(|| chat.username.clone()),
        ),
        (None, Some(user)) if user.is_bot => return Ok(None),
        (None, Some(user)) => (
            user.id,
            joined(&[user.first_name.as_ref(), user.last_name.as_ref()])
                .or_else(|| user.username.clone()),
        ),
        (None, None) => {
            return Err(invalid(
                format!("{at}.from"),
                "is required when there is no sender_chat",
            ));
        }
    };
    Ok(Some(InboundContact {
        identifier: Identifier {
            kind: IDENTIFIER_TYPE.into(),
            value: id.to_string(),
        },
        display_name,
        email: None,
    }))
}

fn media(file: &WireFile, at: &str) -> Result<Media, ParseError> {
    if file.file_id.trim().is_empty() {
        return Err(invalid(format!("{at}.file_id"), "must not be empty"));
    }
    Ok(Media {
        platform_ref: Some(file.file_id.clone()),
        url: None,
        mime_type: file.mime_type.clone(),
        size_bytes: file.file_size,
        filename: file.file_name.clone(),
        duration_s: file.duration,
    })
}

fn location(
    l: &WireLocation,
    at: &str,
    name: Option<String>,
    address: Option<String>,
) -> Result<Part, ParseError> {
    if !(-90.0..=90.0).contains(&l.latitude) {
        return Err(invalid(
            format!("{at}.latitude"),
            "must be between -90 and 90",
        ));
    }
    if !(-180.0..=180.0).contains(&l.longitude) {
        return Err(invalid(
            format!("{at}.longitude"),
            "must be between -180 and 180",
        ));
    }
    Ok(Part::Location(LocationPart {
        latitude: l.latitude,
        longitude: l.longitude,
        name,
        address,
    }))
}

/// The emails of a vCard (`EMAIL;TYPE=work:ana@example.com`).
fn vcard_emails(vcard: &str) -> Vec<String> {
    vcard
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            let name = key.split(';').next()?.trim();
            // Grouped properties look like `item1.EMAIL`.
            let name = name.rsplit('.').next()?;
            (name.eq_ignore_ascii_case("EMAIL") && !value.trim().is_empty())
                .then(|| value.trim().to_owned())
        })
        .collect()
}

/// The one part a Telegram message carries. `value` is the message JSON, `at` its path.
fn content(m: &WireMessage, value: &Value, at: &str) -> Result<Part, ParseError> {
    let caption = m.caption.clone().filter(|c| !c.is_empty());
    let with_caption = |media: Media| MediaPart {
        media,
        caption: caption.clone(),
    };
    if let Some(text) = &m.text {
        if text.is_empty() {
            return Err(invalid(format!("{at}.text"), "must not be empty"));
        }
        return Ok(Part::Text(TextPart { text: text.clone() }));
    }
    if let Some(sizes) = &m.photo {
        // Every size of one photo; the largest has the most bytes (or pixels).
        let largest = sizes
            .iter()
            .enumerate()
            .max_by_key(|(i, s)| {
                (
                    s.file_size.unwrap_or(0),
                    s.width.unwrap_or(0) * s.height.unwrap_or(0),
                    *i,
                )
            })
            .ok_or_else(|| invalid(format!("{at}.photo"), "must list at least one size"))?;
        let mut found = media(largest.1, &format!("{at}.photo[{}]", largest.0))?;
        // Telegram stores photos as JPEG.
        found.mime_type.get_or_insert_with(|| "image/jpeg".into());
        return Ok(Part::Image(with_caption(found)));
    }
    // An animation also sets `document` (for old clients): look at it first.
    if let Some(file) = &m.animation {
        return Ok(Part::Video(with_caption(media(
            file,
            &format!("{at}.animation"),
        )?)));
    }
    if let Some(file) = &m.video {
        return Ok(Part::Video(with_caption(media(
            file,
            &format!("{at}.video"),
        )?)));
    }
    if let Some(file) = &m.video_note {
        return Ok(Part::Video(with_caption(media(
            file,
            &format!("{at}.video_note"),
        )?)));
    }
    if let Some(file) = &m.voice {
        return Ok(Part::VoiceNote(with_caption(media(
            file,
            &format!("{at}.voice"),
        )?)));
    }
    if let Some(file) = &m.audio {
        return Ok(Part::Audio(with_caption(media(
            file,
            &format!("{at}.audio"),
        )?)));
    }
    if let Some(file) = &m.document {
        return Ok(Part::File(with_caption(media(
            file,
            &format!("{at}.document"),
        )?)));
    }
    if let Some(file) = &m.sticker {
        let mut found = media(file, &format!("{at}.sticker"))?;
        found.mime_type = Some(
            if file.is_video == Some(true) {
                "video/webm"
            } else if file.is_animated == Some(true) {
                "application/x-tgsticker"
            } else {
                "image/webp"
            }
            .into(),
        );
        return Ok(Part::Sticker(MediaPart {
            media: found,
            caption: None,
        }));
    }
    // A venue also sets `location`: look at it first.
    if let Some(venue) = &m.venue {
        return location(
            &venue.location,
            &format!("{at}.venue.location"),
            venue.title.clone().filter(|s| !s.is_empty()),
            venue.address.clone().filter(|s| !s.is_empty()),
        );
    }
    if let Some(l) = &m.location {
        return location(l, &format!("{at}.location"), None, None);
    }
    if let Some(c) = &m.contact {
        return Ok(Part::Contact(ContactPart {
            name: joined(&[c.first_name.as_ref(), c.last_name.as_ref()]),
            phones: vec![c.phone_number.clone()],
            emails: c.vcard.as_deref().map(vcard_emails).unwrap_or_default(),
        }));
    }
    // Polls, dice, games, stories, service messages (members joining, pins…).
    let object = value.as_object();
    let found = object.and_then(|o| {
        o.iter()
            .find(|(key, _)| !MESSAGE_METADATA.contains(&key.as_str()))
    });
    Ok(Part::Unsupported(match found {
        Some((key, content)) => UnsupportedPart {
            platform_type: key.clone(),
            raw: Some(json!({ key.as_str(): content })),
        },
        None => UnsupportedPart {
            platform_type: "empty".into(),
            raw: Some(value.clone()),
        },
    }))
}

/// Reads one `Message` of an update (`message`, `channel_post` or their edits).
fn message_event(
    update: &Value,
    field: &str,
    edit: bool,
) -> Result<Option<InboundEvent>, ParseError> {
    let value = &update[field];
    let m: WireMessage = read(value, field)?;
    let Some(from) = sender(&m, field)? else {
        return Ok(None);
    };
    let chat = m.chat.id;
    let platform_message_id = format!("{chat}:{}", m.message_id);
    let parts = vec![content(&m, value, field)?];
    if edit {
        // Edits of one message are ordered by their time, and within a second by the
        // update's id, which Telegram increases from one update to the next.
        let update_id = update["update_id"].as_i64().unwrap_or_default();
        return Ok(Some(InboundEvent::Edit(MessageEdit {
            platform_message_id,
            parts,
            edited_at: m.edit_date.and_then(unix),
            order: Some(EditOrder(vec![m.edit_date.unwrap_or_default(), update_id])),
        })));
    }
    let topic = match (m.is_topic_message, m.message_thread_id) {
        (Some(true), Some(topic)) => Some(topic),
        _ => None,
    };
    let thread_id = match topic {
        Some(topic) => format!("{chat}:{topic}"),
        None => chat.to_string(),
    };
    // Inside a forum topic, a message that quotes nothing "replies" to the topic's first
    // message: that is not a quote.
    let reply_to = m
        .reply_to_message
        .as_ref()
        .map(|r| r.message_id)
        .filter(|&id| Some(id) != topic)
        .map(|id| format!("{chat}:{id}"));
    Ok(Some(InboundEvent::Message(InboundMessage {
        conversation_hint: None,
        platform_message_id,
        thread_id: Some(thread_id),
        from,
        reply_to,
        parts,
        sent_at: unix(m.date),
        raw: update.clone(),
    })))
}

/// Reads a webhook body: one `Update`. Updates we do not handle (callback queries,
/// reactions, membership changes…) give no event.
pub fn parse_update(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let update: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::Malformed(e.to_string()))?;
    let Some(fields) = update.as_object() else {
        return Err(invalid("body", "must be a Telegram Update object"));
    };
    match fields.get("update_id") {
        None => return Err(invalid("update_id", "is required")),
        Some(id) if id.as_i64().is_none() => {
            return Err(invalid("update_id", "must be an integer"));
        }
        Some(_) => {}
    }
    for (field, edit) in [
        ("message", false),
        ("channel_post", false),
        ("edited_message", true),
        ("edited_channel_post", true),
    ] {
        if fields.contains_key(field) {
            return Ok(message_event(&update, field, edit)?.into_iter().collect());
        }
    }
    Ok(Vec::new())
}

/// Whether `presented` equals `secret`, in time independent of where they differ and of
/// their lengths (both are hashed first).
fn same_secret(presented: &str, secret: &Secret) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(secret.expose().as_bytes());
    a.ct_eq(&b).into()
}

#[async_trait]
impl ChannelAdapter for TelegramAdapter {
    fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError> {
        let presented = request
            .header(SECRET_HEADER)
            .ok_or(VerifyError::MissingHeader(SECRET_HEADER))?;
        // Every candidate is compared, so the time taken says nothing about which matched.
        let mut matched = same_secret(presented, &self.secret_token);
        for retired in self.retired.iter().filter(|r| r.until > now) {
            matched |= same_secret(presented, &retired.secret);
        }
        if matched {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    fn parse(&self, request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError> {
        match request.content_type().as_deref() {
            Some("application/json") => parse_update(&request.body),
            other => Err(ParseError::UnsupportedMediaType(
                other.unwrap_or("none").to_owned(),
            )),
        }
    }

    /// One call per part, in order; the first quotes `reply_to`. Once something has gone
    /// out, a later failure is reported in the note instead of failing the send: a retry
    /// would send the earlier parts to the contact a second time.
    async fn send(&self, message: &Outbound) -> Result<Receipt, SendError> {
        let mut destination = Destination::of(message)?;
        let reply = reply_parameters(message.reply_to.as_deref(), &destination);
        let Plan { calls, mut notes } = plan(&message.parts);
        if calls.is_empty() {
            return Err(SendError::Permanent {
                reason: format!("nothing to send on Telegram. {}", notes.join(" ")),
            });
        }
        let mut first_id = None;
        for (i, call) in calls.iter().enumerate() {
            let quote = if i == 0 { reply.as_ref() } else { None };
            match self
                .deliver(call, &mut destination, quote, &mut notes)
                .await
            {
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

    /// `getFile` for the file's path, then the file itself from `/file/bot<token>/<path>`.
    async fn fetch_media(
        &self,
        media: &Media,
        web: &MediaClient,
    ) -> Result<FetchedMedia, FetchError> {
        let Some(file_id) = media.platform_ref.as_deref() else {
            // A reply's media given by URL: no credentials needed.
            let url = media.url.as_deref().ok_or(FetchError::NoMedia)?;
            return web.fetch(url, &[&self.api_base]).await;
        };
        let file = self
            .call("getFile", &json!({"file_id": file_id}))
            .await
            .map_err(|refusal| match refusal.error {
                SendError::Permanent { reason } => FetchError::Gone(reason),
                other => FetchError::Upstream(other.to_string()),
            })?;
        let path = file
            .get("file_path")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| FetchError::Gone("Telegram gave no file path".into()))?;
        let url = format!(
            "{}/file/bot{}/{}",
            self.api_base,
            self.bot_token.expose(),
            path.trim_start_matches('/')
        );
        // The token is in the path: the file is fetched from api_base's origin only, and
        // a redirect elsewhere does not carry it.
        web.fetch(&url, &[&self.api_base]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    const SECRET: &str = "tg-webhook-secret_1";

    fn config() -> TelegramConfig {
        TelegramConfig {
            bot_token: Secret::new("123456:TEST-token_abc"),
            secret_token: Secret::new(SECRET),
            api_base: DEFAULT_API_BASE.into(),
        }
    }

    fn adapter(retired: &[RetiredSecret]) -> TelegramAdapter {
        TelegramAdapter::new(&config(), reqwest::Client::new(), retired)
    }

    fn request(body: &str, secret: Option<&str>, content_type: &str) -> RawRequest {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_str(content_type).unwrap());
        if let Some(secret) = secret {
            headers.insert(
                "x-telegram-bot-api-secret-token",
                HeaderValue::from_str(secret).unwrap(),
            );
        }
        RawRequest::post(
            "https://bridge.example.test/hooks/tg",
            headers,
            body.to_owned(),
        )
    }

    fn parse(body: &str) -> Result<Vec<InboundEvent>, ParseError> {
        adapter(&[]).parse(&request(body, Some(SECRET), "application/json"))
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

    fn media_of(part: &Part) -> &MediaPart {
        match part {
            Part::Image(m)
            | Part::Video(m)
            | Part::Audio(m)
            | Part::VoiceNote(m)
            | Part::Sticker(m)
            | Part::File(m) => m,
            other => panic!("not media: {other:?}"),
        }
    }

    fn field_of(body: &str) -> String {
        match parse(body) {
            Err(ParseError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/telegram/", $name, ".json"))
        };
    }

    #[test]
    fn a_text_message_names_sender_chat_and_time() {
        let m = message(fixture!("text"));
        assert_eq!(m.platform_message_id, "5511223344:1201");
        assert_eq!(m.thread_id.as_deref(), Some("5511223344"));
        assert_eq!(
            m.from.identifier,
            Identifier {
                kind: "telegram_user".into(),
                value: "5511223344".into()
            }
        );
        assert_eq!(m.from.display_name.as_deref(), Some("Amara Okafor"));
        assert_eq!(m.reply_to, None);
        assert_eq!(
            m.parts,
            vec![Part::Text(TextPart {
                text: "Where is my order?".into()
            })]
        );
        assert_eq!(m.sent_at, unix(1783000500));
        assert_eq!(m.raw["update_id"], 804117200, "the whole update is kept");
    }

    #[test]
    fn a_photo_is_its_largest_size_with_the_caption() {
        let part = only_part(fixture!("photo"));
        let Part::Image(image) = &part else {
            panic!("{part:?}")
        };
        assert_eq!(image.caption.as_deref(), Some("The box arrived like this"));
        assert_eq!(
            image.media.platform_ref.as_deref(),
            Some("AgACAgQAAxkBAAIBLARGE")
        );
        assert_eq!(image.media.size_bytes, Some(182034));
        assert_eq!(image.media.mime_type.as_deref(), Some("image/jpeg"));
    }

    #[test]
    fn every_media_kind_maps_to_its_part_with_the_file_id() {
        let cases: [(&str, &str, &str); 7] = [
            (fixture!("voice"), "voice_note", "AwACAgQAAxkBAAIBVOICE"),
            (fixture!("audio"), "audio", "CQACAgQAAxkBAAIBAUDIO"),
            (fixture!("video"), "video", "BAACAgQAAxkBAAIBVIDEO"),
            (fixture!("video_note"), "video", "DQACAgQAAxkBAAIBNOTE"),
            (fixture!("animation"), "video", "CgACAgQAAxkBAAIBANIM"),
            (fixture!("document"), "file", "BQACAgQAAxkBAAIBDOC"),
            (fixture!("sticker"), "sticker", "CAACAgIAAxkBAAIBSTICK"),
        ];
        for (body, kind, file_id) in cases {
            let part = only_part(body);
            assert_eq!(kind_of(&part), kind, "{body}");
            assert_eq!(
                media_of(&part).media.platform_ref.as_deref(),
                Some(file_id),
                "{body}"
            );
        }
    }

    #[test]
    fn media_keeps_name_type_size_duration_and_caption() {
        let voice = only_part(fixture!("voice"));
        let m = &media_of(&voice).media;
        assert_eq!(m.duration_s, Some(4.0));
        assert_eq!(m.mime_type.as_deref(), Some("audio/ogg"));
        assert_eq!(m.size_bytes, Some(10240));

        let document = only_part(fixture!("document"));
        let d = media_of(&document);
        assert_eq!(d.media.filename.as_deref(), Some("invoice-2291.pdf"));
        assert_eq!(d.media.mime_type.as_deref(), Some("application/pdf"));
        assert_eq!(d.caption.as_deref(), Some("Invoice attached"));

        let audio = only_part(fixture!("audio"));
        assert_eq!(
            media_of(&audio).media.filename.as_deref(),
            Some("message.mp3")
        );

        let animation = only_part(fixture!("animation"));
        assert_eq!(
            media_of(&animation).media.mime_type.as_deref(),
            Some("video/mp4"),
            "the animation, not the document it also sets"
        );

        let sticker = only_part(fixture!("sticker"));
        assert_eq!(
            media_of(&sticker).media.mime_type.as_deref(),
            Some("image/webp")
        );
    }

    #[test]
    fn locations_venues_and_contacts_map_to_their_parts() {
        assert_eq!(
            only_part(fixture!("location")),
            Part::Location(LocationPart {
                latitude: 52.520008,
                longitude: 13.404954,
                name: None,
                address: None
            })
        );
        assert_eq!(
            only_part(fixture!("venue")),
            Part::Location(LocationPart {
                latitude: 48.858844,
                longitude: 2.294351,
                name: Some("Eiffel Tower".into()),
                address: Some("Champ de Mars, Paris".into())
            })
        );
        assert_eq!(
            only_part(fixture!("contact")),
            Part::Contact(ContactPart {
                name: Some("Bo Lindqvist".into()),
                phones: vec!["+46701234567".into()],
                emails: vec!["bo@example.com".into()]
            })
        );
    }

    #[test]
    fn unknown_content_is_kept_as_unsupported_with_its_raw_json() {
        let part = only_part(fixture!("poll"));
        let Part::Unsupported(u) = part else {
            panic!("{part:?}")
        };
        assert_eq!(u.platform_type, "poll");
        assert_eq!(
            u.raw.unwrap()["poll"]["question"],
            "Which delivery slot suits you?"
        );
    }

    #[test]
    fn a_quoted_reply_names_the_quoted_message_in_the_same_chat() {
        let m = message(fixture!("reply"));
        assert_eq!(m.platform_message_id, "5511223344:1210");
        assert_eq!(m.reply_to.as_deref(), Some("5511223344:1190"));
    }

    #[test]
    fn a_forum_topic_message_threads_by_chat_and_topic_and_quotes_nothing_by_default() {
        let m = message(fixture!("forum_topic"));
        assert_eq!(m.thread_id.as_deref(), Some("-1001987654321:77"));
        assert_eq!(m.platform_message_id, "-1001987654321:301");
        assert_eq!(m.reply_to, None, "the topic's first message is not a quote");
        assert_eq!(m.from.identifier.value, "5511223344");
    }

    #[test]
    fn a_channel_post_comes_from_the_channel() {
        let m = message(fixture!("channel_post"));
        assert_eq!(m.from.identifier.value, "-1001234567890");
        assert_eq!(m.from.display_name.as_deref(), Some("Acme Announcements"));
        assert_eq!(m.thread_id.as_deref(), Some("-1001234567890"));
    }

    #[test]
    fn an_album_arrives_as_one_update_per_item_each_its_own_message() {
        let first = message(fixture!("album_1"));
        let second = message(fixture!("album_2"));
        assert_ne!(first.platform_message_id, second.platform_message_id);
        assert_eq!(first.thread_id, second.thread_id);
        assert!(matches!(first.parts[0], Part::Image(_)));
        assert!(matches!(second.parts[0], Part::Image(_)));
    }

    #[test]
    fn the_same_message_redelivered_has_the_same_id_and_ids_differ_across_chats() {
        let a = message(fixture!("text"));
        let again = message(fixture!("text"));
        assert_eq!(a.platform_message_id, again.platform_message_id);
        // Same message_id in another chat: another message.
        let other = fixture!("text").replace("5511223344", "6622334455");
        assert_ne!(message(&other).platform_message_id, a.platform_message_id);
    }

    #[test]
    fn an_edited_message_is_an_edit_of_the_same_id() {
        let events = parse(fixture!("edited_message")).unwrap();
        assert_eq!(
            events,
            vec![InboundEvent::Edit(MessageEdit {
                platform_message_id: "5511223344:1201".into(),
                parts: vec![Part::Text(TextPart {
                    text: "Where is my order #2291?".into()
                })],
                edited_at: unix(1783000560),
                order: Some(EditOrder(vec![1783000560, 804117216])),
            })]
        );
    }

    #[test]
    fn bots_and_updates_we_do_not_handle_give_no_event() {
        assert_eq!(parse(fixture!("bot_message")).unwrap(), vec![]);
        assert_eq!(parse(fixture!("callback_query")).unwrap(), vec![]);
        assert_eq!(parse(r#"{"update_id": 5}"#).unwrap(), vec![]);
    }

    #[test]
    fn the_secret_token_header_must_match() {
        let a = adapter(&[]);
        let now = Utc::now();
        let body = fixture!("text");
        a.verify(&request(body, Some(SECRET), "application/json"), now)
            .unwrap();
        assert_eq!(
            a.verify(
                &request(body, Some("tg-webhook-secret_2"), "application/json"),
                now
            ),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            a.verify(&request(body, Some(""), "application/json"), now),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            a.verify(&request(body, None, "application/json"), now),
            Err(VerifyError::MissingHeader(
                "X-Telegram-Bot-Api-Secret-Token"
            ))
        );
    }

    #[test]
    fn a_retired_secret_verifies_until_its_time_only() {
        let until = Utc::now();
        let a = adapter(&[RetiredSecret {
            secret: Secret::new("old-secret"),
            until,
        }]);
        let old = request(fixture!("text"), Some("old-secret"), "application/json");
        a.verify(&old, until - chrono::Duration::seconds(1))
            .unwrap();
        assert_eq!(a.verify(&old, until), Err(VerifyError::BadSignature));
        let current = request(fixture!("text"), Some(SECRET), "application/json");
        a.verify(&current, until + chrono::Duration::days(1))
            .unwrap();
    }

    #[test]
    fn telegram_has_no_get_handshake() {
        let mut get = request("", None, "application/json");
        get.method = axum::http::Method::GET;
        assert_eq!(
            adapter(&[]).handshake(&get),
            Err(super::super::HandshakeError::NotSupported)
        );
    }

    #[test]
    fn only_json_is_accepted() {
        let a = adapter(&[]);
        let form = request(
            "update_id=1",
            Some(SECRET),
            "application/x-www-form-urlencoded",
        );
        assert_eq!(
            a.parse(&form),
            Err(ParseError::UnsupportedMediaType(
                "application/x-www-form-urlencoded".into()
            ))
        );
    }

    #[test]
    fn malformed_updates_name_the_field_at_fault() {
        let text = fixture!("text");
        let with = |pointer: &str, value: Value| {
            let mut v: Value = serde_json::from_str(text).unwrap();
            *v.pointer_mut(pointer).unwrap() = value;
            v.to_string()
        };
        let without = |field: &str| {
            let mut v: Value = serde_json::from_str(text).unwrap();
            v["message"].as_object_mut().unwrap().remove(field);
            v.to_string()
        };
        assert!(matches!(
            parse("{\"update_id\":"),
            Err(ParseError::Malformed(_))
        ));
        assert_eq!(field_of("[1, 2]"), "body");
        assert_eq!(field_of(r#"{"message": {}}"#), "update_id");
        assert_eq!(field_of(r#"{"update_id": "1"}"#), "update_id");
        assert_eq!(field_of(&with("/message", json!("hi"))), "message");
        assert_eq!(field_of(&without("chat")), "message.chat");
        assert_eq!(
            field_of(&with("/message/chat/id", json!("x"))),
            "message.chat.id"
        );
        assert_eq!(field_of(&without("message_id")), "message.message_id");
        assert_eq!(
            field_of(&with("/message/message_id", json!(1.5))),
            "message.message_id"
        );
        assert_eq!(field_of(&without("date")), "message.date");
        assert_eq!(field_of(&without("from")), "message.from");
        assert_eq!(
            field_of(&with("/message/from/id", json!(null))),
            "message.from.id"
        );
        assert_eq!(field_of(&with("/message/text", json!(""))), "message.text");
        assert_eq!(field_of(&with("/message/text", json!(7))), "message.text");

        let photo = fixture!("photo");
        let photo_with = |pointer: &str, value: Value| {
            let mut v: Value = serde_json::from_str(photo).unwrap();
            *v.pointer_mut(pointer).unwrap() = value;
            v.to_string()
        };
        assert_eq!(
            field_of(&photo_with("/message/photo", json!([]))),
            "message.photo"
        );
        assert_eq!(
            field_of(&photo_with("/message/photo/1/file_id", json!(3))),
            "message.photo[1].file_id"
        );
        assert_eq!(
            field_of(&photo_with("/message/photo/2/file_id", json!(" "))),
            "message.photo[2].file_id"
        );
        let location = fixture!("location").replace("52.520008", "152.5");
        assert_eq!(field_of(&location), "message.location.latitude");
        let edit = fixture!("edited_message").replace("\"chat\"", "\"chats\"");
        assert_eq!(field_of(&edit), "edited_message.chat");
    }

    #[test]
    fn config_keys_are_checked() {
        assert!(config().validate().is_empty());
        let bad = TelegramConfig {
            bot_token: Secret::new("not a token/../"),
            secret_token: Secret::new("has spaces"),
            api_base: "ftp://x".into(),
        };
        let fields: Vec<String> = bad.validate().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["bot_token", "secret_token", "api_base"]);
    }

    // --- Outbound ---------------------------------------------------------------------

    fn outbound(parts: Vec<Part>, thread: Option<&str>, reply_to: Option<&str>) -> Outbound {
        Outbound {
            message_id: crate::model::MessageId::new(),
            conversation_id: crate::model::ConversationId::new(),
            platform_thread_id: thread.map(str::to_owned),
            to: Identifier {
                kind: IDENTIFIER_TYPE.into(),
                value: "5511223344".into(),
            },
            reply_to: reply_to.map(str::to_owned),
            parts,
        }
    }

    fn text(s: &str) -> Part {
        Part::Text(TextPart { text: s.into() })
    }

    fn image(url: Option<&str>, file_id: Option<&str>, caption: Option<&str>) -> Part {
        Part::Image(MediaPart {
            media: Media {
                url: url.map(str::to_owned),
                platform_ref: file_id.map(str::to_owned),
                ..Media::default()
            },
            caption: caption.map(str::to_owned),
        })
    }

    #[test]
    fn replies_go_to_the_chat_and_topic_and_quote_the_message_after_the_colon() {
        let out = outbound(
            vec![],
            Some("-1001987654321:77"),
            Some("-1001987654321:301"),
        );
        let d = Destination::of(&out).unwrap();
        assert_eq!(
            d,
            Destination {
                chat: "-1001987654321".into(),
                topic: Some(77)
            }
        );
        let reply = reply_parameters(out.reply_to.as_deref(), &d).unwrap();
        assert_eq!(
            reply,
            json!({"message_id": 301, "allow_sending_without_reply": true})
        );
        let body = d.body(&Map::new(), Some(&reply));
        assert_eq!(body["chat_id"], json!(-1001987654321i64));
        assert_eq!(body["message_thread_id"], 77);

        // No thread: the contact's own chat.
        let private = Destination::of(&outbound(vec![], None, None)).unwrap();
        assert_eq!(private.chat, "5511223344");
        assert_eq!(private.topic, None);
        // A quote from another chat names that chat.
        assert_eq!(
            reply_parameters(Some("42:9"), &private),
            Some(json!({"message_id": 9, "chat_id": 42}))
        );
        assert_eq!(reply_parameters(Some("not-an-id"), &private), None);
    }

    #[test]
    fn every_part_kind_becomes_its_send_method() {
        let parts = vec![
            text("Hello"),
            image(Some("https://cdn.example/a.jpg"), None, Some("Your label")),
            Part::Video(MediaPart {
                media: Media {
                    platform_ref: Some("BAACvideo".into()),
                    ..Media::default()
                },
                caption: None,
            }),
            Part::Audio(MediaPart {
                media: Media {
                    url: Some("https://cdn.example/a.mp3".into()),
                    ..Media::default()
                },
                caption: None,
            }),
            Part::VoiceNote(MediaPart {
                media: Media {
                    url: Some("https://cdn.example/v.ogg".into()),
                    ..Media::default()
                },
                caption: None,
            }),
            Part::File(MediaPart {
                media: Media {
                    url: Some("https://cdn.example/i.pdf".into()),
                    ..Media::default()
                },
                caption: Some("Invoice".into()),
            }),
            Part::Sticker(MediaPart {
                media: Media {
                    platform_ref: Some("CAACsticker".into()),
                    ..Media::default()
                },
                caption: None,
            }),
            Part::Location(LocationPart {
                latitude: 1.5,
                longitude: 2.5,
                name: None,
                address: None,
            }),
            Part::Location(LocationPart {
                latitude: 1.5,
                longitude: 2.5,
                name: Some("Depot".into()),
                address: Some("1 Dock St".into()),
            }),
            Part::Contact(ContactPart {
                name: Some("Support".into()),
                phones: vec!["+15551234567".into()],
                emails: vec![],
            }),
        ];
        let plan = plan(&parts);
        assert!(plan.notes.is_empty(), "{:?}", plan.notes);
        let methods: Vec<&str> = plan.calls.iter().map(|c| c.method).collect();
        assert_eq!(
            methods,
            [
                "sendMessage",
                "sendPhoto",
                "sendVideo",
                "sendAudio",
                "sendVoice",
                "sendDocument",
                "sendSticker",
                "sendLocation",
                "sendVenue",
                "sendContact"
            ]
        );
        let body = |i: usize| Value::Object(plan.calls[i].body.clone());
        assert_eq!(body(0), json!({"text": "Hello"}));
        assert_eq!(
            body(1),
            json!({"photo": "https://cdn.example/a.jpg", "caption": "Your label"})
        );
        assert_eq!(
            plan.calls[1].link.as_deref(),
            Some("Your label\nhttps://cdn.example/a.jpg")
        );
        assert_eq!(body(2), json!({"video": "BAACvideo"}), "a Telegram file id");
        assert_eq!(plan.calls[2].link, None, "no link to fall back to");
        assert_eq!(
            body(5),
            json!({"document": "https://cdn.example/i.pdf", "caption": "Invoice"})
        );
        assert_eq!(
            body(8),
            json!({"latitude": 1.5, "longitude": 2.5, "title": "Depot", "address": "1 Dock St"})
        );
        assert_eq!(
            body(9),
            json!({"phone_number": "+15551234567", "first_name": "Support"})
        );
    }

    #[test]
    fn parts_telegram_cannot_carry_become_notes_or_links() {
        let poll = Part::Unsupported(UnsupportedPart {
            platform_type: "poll".into(),
            raw: None,
        });
        let card = Part::Unsupported(UnsupportedPart {
            platform_type: "card".into(),
            raw: Some(json!({"url": "https://shop.example/p/1"})),
        });
        let no_phone = Part::Contact(ContactPart {
            name: Some("Ana".into()),
            phones: vec![],
            emails: vec!["ana@example.com".into()],
        });
        let plan = plan(&[poll, card, no_phone]);
        let texts: Vec<Value> = plan
            .calls
            .iter()
            .map(|c| Value::Object(c.body.clone()))
            .collect();
        assert_eq!(
            texts,
            [
                json!({"text": "https://shop.example/p/1"}),
                json!({"text": "Ana\nana@example.com"})
            ]
        );
        assert_eq!(plan.notes.len(), 3, "{:?}", plan.notes);
        assert!(plan.notes[0].contains("Part 1 (poll) was not sent"));
        assert!(plan.notes[1].contains("Part 2 (card) was sent as a link"));
        assert!(plan.notes[2].contains("Part 3 (contact) was sent as text"));
    }

    #[test]
    fn long_texts_are_split_and_long_captions_follow_as_text() {
        let long = "word ".repeat(1000); // 5000 units
        let plan_ = plan(&[text(&long)]);
        assert_eq!(plan_.calls.len(), 2);
        let joined: String = plan_
            .calls
            .iter()
            .map(|c| c.body["text"].as_str().unwrap())
            .collect();
        assert_eq!(joined, long, "nothing lost or added");
        assert!(
            plan_
                .calls
                .iter()
                .all(|c| utf16_len(c.body["text"].as_str().unwrap()) <= MAX_TEXT)
        );

        let caption = "c".repeat(MAX_CAPTION + 1);
        let plan_ = plan(&[image(Some("https://x.example/a.png"), None, Some(&caption))]);
        assert_eq!(plan_.calls.len(), 2);
        assert_eq!(
            Value::Object(plan_.calls[0].body.clone()),
            json!({"photo": "https://x.example/a.png"})
        );
        assert_eq!(plan_.calls[1].body["text"], caption.as_str());
    }

    #[test]
    fn text_splits_count_utf16_units_and_never_cut_a_character() {
        let emoji = "😀".repeat(3000); // 2 units each
        let chunks = split_text(&emoji, MAX_TEXT);
        assert_eq!(chunks.len(), 2);
        assert_eq!(utf16_len(&chunks[0]), 4096);
        assert_eq!(chunks.concat(), emoji);
        assert_eq!(split_text("short", MAX_TEXT), ["short"]);
    }

    fn answer(status: u16, body: Value) -> Result<Value, Refusal> {
        read_answer(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            &body.to_string(),
        )
    }

    #[test]
    fn answers_are_classified_from_status_and_body() {
        let ok = answer(
            200,
            json!({"ok": true, "result": {"message_id": 88, "chat": {"id": 5}}}),
        )
        .unwrap();
        assert_eq!(message_key(&ok, "ignored").as_deref(), Some("5:88"));

        let limited = answer(
            429,
            json!({"ok": false, "error_code": 429,
                   "description": "Too Many Requests: retry after 15",
                   "parameters": {"retry_after": 15}}),
        )
        .unwrap_err();
        assert!(matches!(
            limited.error,
            SendError::RateLimited { retry_after: Some(d), .. } if d.as_secs() == 15
        ));

        let blocked = answer(
            403,
            json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
        )
        .unwrap_err();
        assert!(
            matches!(&blocked.error, SendError::Permanent { reason } if reason.contains("bot was blocked")),
            "{:?}",
            blocked.error
        );

        let down = answer(
            502,
            json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
        )
        .unwrap_err();
        assert!(matches!(down.error, SendError::Retryable { .. }));

        // ok:false inside a 200 is a failure too, classified by its error_code.
        let hidden = answer(
            200,
            json!({"ok": false, "error_code": 429, "parameters": {"retry_after": 3}}),
        )
        .unwrap_err();
        assert!(matches!(hidden.error, SendError::RateLimited { .. }));
        let hidden = answer(
            200,
            json!({"ok": false, "description": "Bad Request: chat not found"}),
        )
        .unwrap_err();
        assert!(matches!(hidden.error, SendError::Permanent { .. }));

        let html = read_answer(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            "<html>oops</html>",
        )
        .unwrap_err();
        assert!(matches!(html.error, SendError::Retryable { .. }));

        let migrated = answer(
            400,
            json!({"ok": false, "error_code": 400,
                   "description": "Bad Request: group chat was upgraded to a supergroup chat",
                   "parameters": {"migrate_to_chat_id": -1001234}}),
        )
        .unwrap_err();
        assert_eq!(migrated.migrate_to, Some(-1001234));

        let url = answer(
            400,
            json!({"ok": false, "error_code": 400, "description": "Bad Request: wrong file identifier/HTTP URL specified"}),
        )
        .unwrap_err();
        assert!(url.url_refused());
        assert!(!blocked.url_refused());
    }

    #[test]
    fn the_bot_token_is_redacted_from_reasons() {
        let a = adapter(&[]);
        assert_eq!(
            a.redact("GET /bot123456:TEST-token_abc/sendMessage failed".into()),
            "GET /bot[bot token]/sendMessage failed"
        );
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null)),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("message".to_owned()),
                        Just("update_id".to_owned()),
                        Just("chat".to_owned()),
                        Just("id".to_owned()),
                        Just("photo".to_owned()),
                        Just("from".to_owned()),
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
            let _ = parse_update(&body);
        }

        #[test]
        fn arbitrary_json_never_panics_the_parser(value in json_value()) {
            let _ = parse_update(value.to_string().as_bytes());
            let update = json!({"update_id": 1, "message": value.clone()});
            let _ = parse_update(update.to_string().as_bytes());
        }

        #[test]
        fn a_real_message_with_any_field_replaced_never_panics(
            fixture in prop::sample::select(vec![
                fixture!("text"), fixture!("photo"), fixture!("venue"), fixture!("contact"),
                fixture!("sticker"), fixture!("forum_topic"), fixture!("reply"),
            ]),
            index in any::<prop::sample::Index>(),
            value in json_value(),
        ) {
            let mut update: Value = serde_json::from_str(fixture).unwrap();
            let message = update["message"].as_object_mut().unwrap();
            let key = message.keys().nth(index.index(message.len())).unwrap().clone();
            message.insert(key, value);
            if let Ok(events) = parse_update(update.to_string().as_bytes()) {
                for event in events {
                    if let InboundEvent::Message(m) = event {
                        prop_assert_eq!(m.parts.len(), 1);
                    }
                }
            }
        }
    }
}
