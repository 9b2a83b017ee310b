//! Slack Events API: signed JSON events in, `chat.postMessage` and the external file
//! upload flow out.
//!
//! Slack signs every request with `v0=hex(HMAC-SHA256(signing secret, "v0:{ts}:{body}"))`
//! in `X-Slack-Signature`, over `X-Slack-Request-Timestamp`. A message is known by its
//! channel and `ts` (unique within a channel only), so our platform message id is
//! `{channel}:{ts}`. A conversation is a Slack thread: `{channel}/{thread_ts}` for a
//! message in a thread or one that starts a thread in a channel, and the whole DM
//! (`{channel}`) for a direct message outside threads. Slack posts no delivery or read
//! receipts, and new apps may read thread history only at 1 request a minute, so
//! everything is captured live from the events (docs/platforms/slack.md).

use async_trait::async_trait;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::fetch::{Credentials, MediaClient, same_origin_as_any};
use super::signature::{TOLERANCE_SECS, hmac_sha256_matches_any};
use super::{
    ChannelAdapter, FetchError, FetchedMedia, HandshakeReply, InboundContact, InboundEvent,
    InboundMessage, MessageEdit, Outbound, ParseError, RawRequest, Receipt, RetiredSecret,
    SendError, VerifyError, classify_status, classify_transport, invalid, secrets_in_force,
};
use crate::model::{EditOrder, Identifier, Media, MediaPart, Part, TextPart, UnsupportedPart};
use crate::secret::Secret;

/// The identifier type of a Slack contact: the member id (`U…`/`W…`) Slack gives them.
pub const IDENTIFIER_TYPE: &str = "slack_user";

/// Slack's Web API base URL.
pub const DEFAULT_API_BASE: &str = "https://slack.com/api";

/// Where Slack serves `url_private` files (the bot token goes there and nowhere else).
pub const DEFAULT_FILES_BASE: &str = "https://files.slack.com";

/// The largest reply attachment we fetch and upload to Slack.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 50 * 1024 * 1024;

const SIGNATURE_HEADER: &str = "x-slack-signature";
const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";

/// Slack cuts `chat.postMessage` text at 40,000 characters; longer text is split.
pub const MAX_TEXT: usize = 40_000;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The bot token (`xoxb-…`): sends, uploads and fetches `url_private` files.
    pub bot_token: Secret,
    /// The app's signing secret: verifies every event Slack posts.
    pub signing_secret: Secret,
    /// The Web API base URL (tests point it at a mock).
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// The origin of `url_private` file links, the only place the bot token is sent to
    /// fetch a file.
    #[serde(default = "default_files_base")]
    pub files_base: String,
    /// The largest reply attachment fetched and uploaded to Slack.
    #[serde(default = "default_max_upload_bytes")]
    pub max_upload_bytes: u64,
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.to_owned()
}

fn default_files_base() -> String {
    DEFAULT_FILES_BASE.to_owned()
}

fn default_max_upload_bytes() -> u64 {
    DEFAULT_MAX_UPLOAD_BYTES
}

impl SlackConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        for (key, url) in [
            ("api_base", &self.api_base),
            ("files_base", &self.files_base),
        ] {
            if !crate::model::is_http_url(url) {
                errors.push((key.into(), "must be an http(s) URL".into()));
            }
        }
        if self.max_upload_bytes == 0 {
            errors.push(("max_upload_bytes".into(), "must be at least 1".into()));
        }
        errors
    }
}

pub struct SlackAdapter {
    bot_token: Secret,
    signing_secret: Secret,
    /// Signing secrets replaced by a reload, still accepted until their time.
    retired: Vec<RetiredSecret>,
    api_base: String,
    files_base: String,
    max_upload_bytes: u64,
    http: reqwest::Client,
    /// Fetches reply attachments to upload them, under the channel's address policy.
    media: MediaClient,
}

impl SlackAdapter {
    pub fn new(
        config: &SlackConfig,
        http: reqwest::Client,
        retired: &[RetiredSecret],
        media: MediaClient,
    ) -> Self {
        Self {
            bot_token: config.bot_token.clone(),
            signing_secret: config.signing_secret.clone(),
            retired: retired.to_vec(),
            api_base: config.api_base.trim_end_matches('/').to_owned(),
            files_base: config.files_base.trim_end_matches('/').to_owned(),
            max_upload_bytes: config.max_upload_bytes,
            http,
            media,
        }
    }

    /// Calls a Web API method with a JSON body; Slack answers HTTP 200 with `ok: false`
    /// when it refuses, so both layers are read.
    async fn call(&self, method: &str, body: &Value) -> Result<Value, SendError> {
        let response = self
            .http
            .post(format!("{}/{method}", self.api_base))
            .bearer_auth(self.bot_token.expose())
            .json(body)
            .send()
            .await
            .map_err(classify_transport)?;
        self.answer(method, response).await
    }

    /// Calls a Web API method that takes form fields (`files.getUploadURLExternal`).
    async fn call_form(&self, method: &str, form: &[(&str, String)]) -> Result<Value, SendError> {
        let response = self
            .http
            .post(format!("{}/{method}", self.api_base))
            .bearer_auth(self.bot_token.expose())
            .form(form)
            .send()
            .await
            .map_err(classify_transport)?;
        self.answer(method, response).await
    }

    async fn answer(&self, method: &str, response: reqwest::Response) -> Result<Value, SendError> {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        read_answer(method, status, &headers, &text)
    }

    /// Posts text into the target; returns the message's `{channel}:{ts}`.
    async fn post_text(&self, target: &Target, text: &str) -> Result<Option<String>, SendError> {
        let mut body = json!({"channel": target.channel, "text": text});
        if let Some(ts) = &target.thread_ts {
            body["thread_ts"] = ts.clone().into();
        }
        let answer = self.call("chat.postMessage", &body).await?;
        let channel = answer
            .get("channel")
            .and_then(Value::as_str)
            .unwrap_or(&target.channel);
        Ok(answer
            .get("ts")
            .and_then(Value::as_str)
            .map(|ts| format!("{channel}:{ts}")))
    }

    /// Sends a file the rep linked through Slack's upload flow: fetch it (public
    /// addresses only unless the channel allows private ones, size-capped), ask for an
    /// upload URL, send the bytes there, then share it into the target.
    async fn upload(&self, target: &Target, part: &MediaPart) -> Result<(), SendError> {
        let url = part
            .media
            .url
            .as_deref()
            .ok_or_else(|| SendError::Permanent {
                reason: "an attachment has no URL to fetch it from".into(),
            })?;
        let bytes = self.fetch_attachment(url).await?;
        let filename = file_name(&part.media, url);
        let grant = self
            .call_form(
                "files.getUploadURLExternal",
                &[
                    ("filename", filename.clone()),
                    ("length", bytes.len().to_string()),
                ],
            )
            .await?;
        let (Some(upload_url), Some(file_id)) = (
            grant.get("upload_url").and_then(Value::as_str),
            grant.get("file_id").and_then(Value::as_str),
        ) else {
            return Err(SendError::Retryable {
                reason: "Slack gave no upload_url or file_id".into(),
                retry_after: None,
            });
        };
        let response = self
            .http
            .post(upload_url)
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .map_err(classify_transport)?;
        if !response.status().is_success() {
            let status = response.status();
            let headers = response.headers().clone();
            let text = response.text().await.unwrap_or_default();
            return Err(classify_status(status, &headers, &text));
        }
        let mut body = json!({
            "files": [{"id": file_id, "title": filename}],
            "channel_id": target.channel,
        });
        if let Some(ts) = &target.thread_ts {
            body["thread_ts"] = ts.clone().into();
        }
        if let Some(caption) = part.caption.as_deref().filter(|c| !c.trim().is_empty()) {
            body["initial_comment"] = caption.into();
        }
        self.call("files.completeUploadExternal", &body).await?;
        Ok(())
    }

    async fn fetch_attachment(&self, url: &str) -> Result<Vec<u8>, SendError> {
        let fetched = self.media.fetch(url, &[]).await.map_err(|e| match e {
            FetchError::Upstream(reason) => SendError::Retryable {
                reason: format!("could not fetch the attachment: {reason}"),
                retry_after: None,
            },
            other => SendError::Permanent {
                reason: format!("could not fetch the attachment: {other}"),
            },
        })?;
        let mut response = fetched.response;
        let too_big = || SendError::Permanent {
            reason: format!(
                "the attachment is larger than this channel's max_upload_bytes ({})",
                self.max_upload_bytes
            ),
        };
        if response
            .content_length()
            .is_some_and(|n| n > self.max_upload_bytes)
        {
            return Err(too_big());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify_transport)? {
            if (bytes.len() + chunk.len()) as u64 > self.max_upload_bytes {
                return Err(too_big());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

/// Reads a Web API answer: HTTP errors as usual, then Slack's `ok: false` error codes,
/// of which only the transient ones are worth another try.
fn read_answer(
    method: &str,
    status: StatusCode,
    headers: &HeaderMap,
    text: &str,
) -> Result<Value, SendError> {
    if !status.is_success() {
        return Err(classify_status(status, headers, text));
    }
    let answer: Value = serde_json::from_str(text).map_err(|_| SendError::Retryable {
        reason: format!("{method}: Slack's answer is not JSON"),
        retry_after: None,
    })?;
    if answer.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(answer);
    }
    let error = answer
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("unknown_error");
    let reason = format!("{method}: Slack refused it: {error}");
    Err(match error {
        "ratelimited" | "rate_limited" => SendError::RateLimited {
            reason,
            retry_after: super::retry_after(headers, Utc::now()),
        },
        "internal_error"
        | "fatal_error"
        | "service_unavailable"
        | "request_timeout"
        | "team_added_to_org" => SendError::Retryable {
            reason,
            retry_after: None,
        },
        _ => SendError::Permanent { reason },
    })
}

/// Where a reply goes: a Slack channel (or a user id, which opens the DM) and the thread.
#[derive(Clone, Debug, PartialEq)]
struct Target {
    channel: String,
    thread_ts: Option<String>,
}

impl Target {
    /// The conversation's thread id (`{channel}` or `{channel}/{thread_ts}`), else the
    /// contact's member id (a direct message).
    fn of(message: &Outbound) -> Result<Self, SendError> {
        let (channel, thread_ts) = match message.platform_thread_id.as_deref() {
            Some(thread) => match thread.split_once('/') {
                Some((channel, ts)) => (channel, Some(ts.to_owned())),
                None => (thread, None),
            },
            None => (message.to.value.as_str(), None),
        };
        if channel.trim().is_empty() {
            return Err(SendError::Permanent {
                reason: "the conversation has no Slack channel or member id".into(),
            });
        }
        Ok(Self {
            channel: channel.to_owned(),
            thread_ts,
        })
    }
}

/// One step of a reply: text to post, or a file to upload.
#[derive(Clone, Debug, PartialEq)]
enum Step<'a> {
    Text(String),
    Upload(&'a MediaPart),
}

/// Turns a reply's parts into steps, in order: text, locations and contacts in a row
/// become one message; each file is one upload.
fn plan(parts: &[Part]) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    let mut text: Vec<String> = Vec::new();
    let flush = |text: &mut Vec<String>, steps: &mut Vec<Step>| {
        if !text.is_empty() {
            let joined = text.join("\n");
            steps.extend(split_text(&joined, MAX_TEXT).into_iter().map(Step::Text));
            text.clear();
        }
    };
    for part in parts {
        match part {
            Part::Text(t) if !t.text.trim().is_empty() => text.push(t.text.clone()),
            Part::Text(_) => {}
            Part::Location(l) => {
                let label = l
                    .name
                    .iter()
                    .chain(l.address.iter())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ");
                let link = format!(
                    "https://www.openstreetmap.org/?mlat={}&mlon={}",
                    l.latitude, l.longitude
                );
                text.push(if label.is_empty() {
                    format!(":round_pushpin: <{link}|{}, {}>", l.latitude, l.longitude)
                } else {
                    format!(":round_pushpin: <{link}|{label}>")
                });
            }
            Part::Contact(c) => {
                let mut lines = vec![format!(
                    ":bust_in_silhouette: {}",
                    c.name.as_deref().unwrap_or("Contact")
                )];
                lines.extend(c.phones.iter().cloned());
                lines.extend(c.emails.iter().cloned());
                text.push(lines.join("\n"));
            }
            Part::Image(m)
            | Part::Video(m)
            | Part::Audio(m)
            | Part::VoiceNote(m)
            | Part::Sticker(m)
            | Part::File(m) => {
                flush(&mut text, &mut steps);
                steps.push(Step::Upload(m));
            }
            Part::Unsupported(u) => text.push(format!("[{}]", u.platform_type)),
        }
    }
    flush(&mut text, &mut steps);
    steps
}

/// Splits text into pieces of at most `max` characters, at line breaks where it can.
fn split_text(text: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.chars().count() > max {
        let cut = rest
            .char_indices()
            .nth(max)
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let at = rest[..cut].rfind('\n').filter(|&i| i > 0).unwrap_or(cut);
        pieces.push(rest[..at].to_owned());
        rest = rest[at..].trim_start_matches('\n');
    }
    if !rest.is_empty() {
        pieces.push(rest.to_owned());
    }
    pieces
}

/// The file name to give Slack: the part's own, else the URL's last segment.
fn file_name(media: &Media, url: &str) -> String {
    media
        .filename
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| {
            reqwest::Url::parse(url).ok().and_then(|u| {
                u.path_segments()
                    .and_then(|mut s| s.next_back().map(str::to_owned))
                    .filter(|s| !s.is_empty())
            })
        })
        .unwrap_or_else(|| "file".to_owned())
}

/// A Slack `ts` (`"1700000000.000100"`) as a time.
fn ts_time(ts: &str) -> Option<DateTime<Utc>> {
    let micros = ts_micros(ts)?;
    DateTime::from_timestamp_micros(micros)
}

/// A Slack `ts` in microseconds: exact, so edits compare without float rounding.
fn ts_micros(ts: &str) -> Option<i64> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, "0"));
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let frac: i64 = format!("{frac:0<6}").parse().ok()?;
    secs.checked_mul(1_000_000)?.checked_add(frac)
}

/// The envelope of an Events API request.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    api_app_id: Option<String>,
    #[serde(default)]
    event: Option<Value>,
    #[serde(default)]
    authorizations: Vec<Authorization>,
    #[serde(default)]
    challenge: Option<String>,
}

#[derive(Deserialize)]
struct Authorization {
    #[serde(default)]
    user_id: Option<String>,
}

/// Who "we" are in this workspace: our app and the bot users it acts as. Messages from
/// them are our own replies coming back as events.
struct Us<'a> {
    app_id: Option<&'a str>,
    bot_users: Vec<&'a str>,
}

impl Us<'_> {
    fn wrote(&self, message: &Value) -> bool {
        let field = |k: &str| message.get(k).and_then(Value::as_str);
        let app = field("app_id").or_else(|| {
            message
                .get("bot_profile")
                .and_then(|p| p.get("app_id"))
                .and_then(Value::as_str)
        });
        (app.is_some() && app == self.app_id)
            || field("user").is_some_and(|u| self.bot_users.contains(&u))
            // A bot post with no member behind it is never a contact's message.
            || (field("bot_id").is_some() && field("user").is_none())
            || field("subtype") == Some("bot_message")
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn required<'a>(v: &'a Value, at: &str, key: &str) -> Result<&'a str, ParseError> {
    str_field(v, key).ok_or_else(|| invalid(format!("{at}.{key}"), "missing or not a string"))
}

/// The parts of a message: its text, then each file.
fn parts_of(message: &Value) -> Vec<Part> {
    let mut parts = Vec::new();
    if let Some(text) = str_field(message, "text").filter(|t| !t.trim().is_empty()) {
        parts.push(Part::Text(TextPart {
            text: text.to_owned(),
        }));
    }
    if let Some(files) = message.get("files").and_then(Value::as_array) {
        parts.extend(files.iter().map(file_part));
    }
    parts
}

/// A Slack file as a part: by MIME type, an audio clip recorded in Slack as a voice note;
/// a file Slack no longer shows (deleted, over the plan's limit) as unsupported.
fn file_part(file: &Value) -> Part {
    let url = str_field(file, "url_private_download").or_else(|| str_field(file, "url_private"));
    let Some(url) = url else {
        let mode = str_field(file, "mode").unwrap_or("file");
        return Part::Unsupported(UnsupportedPart {
            platform_type: format!("file:{mode}"),
            raw: Some(file.clone()),
        });
    };
    let mime = str_field(file, "mimetype").map(str::to_owned);
    let media = Media {
        platform_ref: str_field(file, "id").map(str::to_owned),
        url: Some(url.to_owned()),
        mime_type: mime.clone(),
        size_bytes: file.get("size").and_then(Value::as_u64),
        filename: str_field(file, "name")
            .or_else(|| str_field(file, "title"))
            .map(str::to_owned),
        duration_s: file
            .get("duration_ms")
            .and_then(Value::as_f64)
            .map(|ms| ms / 1000.0),
    };
    let part = MediaPart {
        media,
        caption: None,
    };
    let mime = mime.unwrap_or_default();
    if str_field(file, "subtype") == Some("slack_audio") {
        Part::VoiceNote(part)
    } else if mime.starts_with("image/") {
        Part::Image(part)
    } else if mime.starts_with("video/") {
        Part::Video(part)
    } else if mime.starts_with("audio/") {
        Part::Audio(part)
    } else {
        Part::File(part)
    }
}

/// A message a member wrote, as an inbound message.
fn message_event(channel: &str, message: &Value, at: &str) -> Result<InboundEvent, ParseError> {
    let user = required(message, at, "user")?;
    let ts = required(message, at, "ts")?;
    let sent_at = ts_time(ts).ok_or_else(|| invalid(format!("{at}.ts"), "not a Slack ts"))?;
    let thread_id = match str_field(message, "thread_ts") {
        Some(thread_ts) => format!("{channel}/{thread_ts}"),
        // A DM outside threads is one conversation; a channel post starts a thread.
        None if str_field(message, "channel_type") == Some("im") => channel.to_owned(),
        None => format!("{channel}/{ts}"),
    };
    let profile = message.get("user_profile");
    let display_name = profile
        .and_then(|p| str_field(p, "display_name").or_else(|| str_field(p, "real_name")))
        .map(str::to_owned);
    let parts = parts_of(message);
    if parts.is_empty() {
        return Err(invalid(at, "the message has no text and no files"));
    }
    Ok(InboundEvent::Message(InboundMessage {
        conversation_hint: None,
        platform_message_id: format!("{channel}:{ts}"),
        thread_id: Some(thread_id),
        from: InboundContact {
            identifier: Identifier {
                kind: IDENTIFIER_TYPE.into(),
                value: user.to_owned(),
            },
            display_name,
            email: profile
                .and_then(|p| str_field(p, "email"))
                .map(str::to_owned),
        },
        reply_to: None,
        parts,
        sent_at: Some(sent_at),
        raw: message.clone(),
    }))
}

/// Turns an Events API request body into events. `url_verification` and events that are
/// not a member's message (joins, topic changes, our own posts) give none.
pub fn parse_events(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::Malformed(e.to_string()))?;
    let envelope: Envelope = super::read(&value, "")?;
    if envelope.kind != "event_callback" {
        return Ok(Vec::new());
    }
    let event = envelope
        .event
        .as_ref()
        .ok_or_else(|| invalid("event", "missing"))?;
    let us = Us {
        app_id: envelope.api_app_id.as_deref(),
        bot_users: envelope
            .authorizations
            .iter()
            .filter_map(|a| a.user_id.as_deref())
            .collect(),
    };
    let kind = str_field(event, "type").unwrap_or_default();
    if kind != "message" && kind != "app_mention" {
        return Ok(Vec::new());
    }
    let channel = required(event, "event", "channel")?;
    let event = match str_field(event, "subtype") {
        None | Some("file_share" | "thread_broadcast" | "me_message") => {
            if us.wrote(event) {
                return Ok(Vec::new());
            }
            message_event(channel, event, "event")?
        }
        Some("message_changed") => {
            let message = event
                .get("message")
                .ok_or_else(|| invalid("event.message", "missing"))?;
            if us.wrote(message) {
                return Ok(Vec::new());
            }
            let ts = required(message, "event.message", "ts")?;
            let edited = message.get("edited").and_then(|e| str_field(e, "ts"));
            InboundEvent::Edit(MessageEdit {
                platform_message_id: format!("{channel}:{ts}"),
                parts: parts_of(message),
                edited_at: edited.and_then(ts_time),
                order: edited.and_then(ts_micros).map(|m| EditOrder(vec![m])),
            })
        }
        Some("message_deleted") => {
            let ts = required(event, "event", "deleted_ts")?;
            InboundEvent::Retract {
                platform_message_id: format!("{channel}:{ts}"),
            }
        }
        // Joins, topic changes, bot posts and the rest are not a contact's words.
        Some(_) => return Ok(Vec::new()),
    };
    Ok(vec![event])
}

#[async_trait]
impl ChannelAdapter for SlackAdapter {
    fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError> {
        let timestamp = request
            .header(TIMESTAMP_HEADER)
            .ok_or(VerifyError::MissingHeader("X-Slack-Request-Timestamp"))?;
        let presented = request
            .header(SIGNATURE_HEADER)
            .ok_or(VerifyError::MissingHeader("X-Slack-Signature"))?;
        let seconds: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| VerifyError::BadTimestamp)?;
        // abs_diff: a timestamp near i64::MIN or MAX must be refused, not overflow.
        if now.timestamp().abs_diff(seconds) > TOLERANCE_SECS.unsigned_abs() {
            return Err(VerifyError::TimestampOutOfTolerance);
        }
        let signature = presented
            .trim()
            .strip_prefix("v0=")
            .and_then(|hex_sig| hex::decode(hex_sig).ok())
            .ok_or(VerifyError::BadSignature)?;
        let mut base = format!("v0:{}:", timestamp.trim()).into_bytes();
        base.extend_from_slice(&request.body);
        let keys = secrets_in_force(&self.signing_secret, &self.retired, now);
        if hmac_sha256_matches_any(keys, &base, &signature) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    fn parse(&self, request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError> {
        match request.content_type().as_deref() {
            Some("application/json") => parse_events(&request.body),
            other => Err(ParseError::UnsupportedMediaType(
                other.unwrap_or("none").to_owned(),
            )),
        }
    }

    /// Slack checks a new Request URL with a signed `url_verification` POST whose
    /// `challenge` must come back.
    fn challenge(&self, request: &RawRequest) -> Option<HandshakeReply> {
        let envelope: Envelope = serde_json::from_slice(&request.body).ok()?;
        if envelope.kind != "url_verification" {
            return None;
        }
        Some(HandshakeReply {
            content_type: "application/json",
            body: json!({"challenge": envelope.challenge.unwrap_or_default()}).to_string(),
        })
    }

    /// Steps in order into the conversation's thread. Once something has gone out, a
    /// later failure is reported in the note instead of failing the send: a retry would
    /// post the earlier steps a second time.
    async fn send(&self, message: &Outbound) -> Result<Receipt, SendError> {
        let target = Target::of(message)?;
        let steps = plan(&message.parts);
        if steps.is_empty() {
            return Err(SendError::Permanent {
                reason: "nothing to send on Slack".into(),
            });
        }
        let mut first_id = None;
        let mut notes = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let result = match step {
                Step::Text(text) => self.post_text(&target, text).await,
                Step::Upload(part) => self.upload(&target, part).await.map(|()| None),
            };
            match result {
                Ok(id) => {
                    if first_id.is_none() {
                        first_id = id;
                    }
                }
                Err(e) if i == 0 => return Err(e),
                Err(e) => {
                    notes.push(format!(
                        "Step {} of {} and any after it were not sent: {e}",
                        i + 1,
                        steps.len()
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

    /// `url_private` files need the bot token; it is sent to the files origin only.
    async fn fetch_media(
        &self,
        media: &Media,
        web: &MediaClient,
    ) -> Result<FetchedMedia, FetchError> {
        let url = media.url.as_deref().ok_or(FetchError::NoMedia)?;
        let ours = reqwest::Url::parse(url)
            .ok()
            .is_some_and(|u| same_origin_as_any(&u, &[&self.files_base]));
        if ours {
            web.fetch_with(
                url,
                &[&self.files_base],
                Credentials::Bearer(self.bot_token.expose()),
            )
            .await
        } else {
            web.fetch(url, &[]).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use hmac::{Hmac, Mac};
    use proptest::prelude::*;
    use sha2::Sha256;
    use std::time::Duration;

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

    fn config() -> SlackConfig {
        SlackConfig {
            bot_token: Secret::new("xoxb-test-token"),
            signing_secret: Secret::new(SECRET),
            api_base: DEFAULT_API_BASE.into(),
            files_base: DEFAULT_FILES_BASE.into(),
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
        }
    }

    fn adapter(retired: &[RetiredSecret]) -> SlackAdapter {
        SlackAdapter::new(
            &config(),
            reqwest::Client::new(),
            retired,
            MediaClient::new(Duration::from_secs(5), true),
        )
    }

    fn sign(key: &str, ts: i64, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(format!("v0:{ts}:{body}").as_bytes());
        format!("v0={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn request(body: &str, ts: Option<i64>, signature: Option<&str>) -> RawRequest {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        if let Some(ts) = ts {
            headers.insert(
                TIMESTAMP_HEADER,
                HeaderValue::from_str(&ts.to_string()).unwrap(),
            );
        }
        if let Some(s) = signature {
            headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(s).unwrap());
        }
        RawRequest::post(
            "https://bridge.example.com/hooks/sl",
            headers,
            body.to_owned(),
        )
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn envelope(event: Value) -> String {
        json!({
            "token": "legacy", "team_id": "T1", "api_app_id": "A0OURAPP",
            "type": "event_callback", "event_id": "Ev1", "event_time": 1_700_000_000,
            "authorizations": [{"team_id": "T1", "user_id": "U0OURBOT", "is_bot": true}],
            "event": event,
        })
        .to_string()
    }

    fn parse(event: Value) -> Vec<InboundEvent> {
        parse_events(envelope(event).as_bytes()).unwrap()
    }

    fn message(event: Value) -> InboundMessage {
        match parse(event).as_slice() {
            [InboundEvent::Message(m)] => m.clone(),
            other => panic!("expected one message, got {other:?}"),
        }
    }

    #[test]
    fn a_signed_request_within_five_minutes_is_believed() {
        let body = envelope(json!({"type": "message"}));
        let ts = now().timestamp() - 200;
        let a = adapter(&[]);
        assert_eq!(
            a.verify(
                &request(&body, Some(ts), Some(&sign(SECRET, ts, &body))),
                now()
            ),
            Ok(())
        );
    }

    #[test]
    fn forged_stale_and_unsigned_requests_are_refused() {
        let body = envelope(json!({"type": "message"}));
        let a = adapter(&[]);
        let ts = now().timestamp();
        assert_eq!(
            a.verify(
                &request(&body, Some(ts), Some(&sign("other", ts, &body))),
                now()
            ),
            Err(VerifyError::BadSignature)
        );
        let stale = ts - 301;
        assert_eq!(
            a.verify(
                &request(&body, Some(stale), Some(&sign(SECRET, stale, &body))),
                now()
            ),
            Err(VerifyError::TimestampOutOfTolerance)
        );
        assert_eq!(
            a.verify(&request(&body, None, Some(&sign(SECRET, ts, &body))), now()),
            Err(VerifyError::MissingHeader("X-Slack-Request-Timestamp"))
        );
        assert_eq!(
            a.verify(&request(&body, Some(ts), None), now()),
            Err(VerifyError::MissingHeader("X-Slack-Signature"))
        );
        let unprefixed = sign(SECRET, ts, &body).replace("v0=", "");
        assert_eq!(
            a.verify(&request(&body, Some(ts), Some(&unprefixed)), now()),
            Err(VerifyError::BadSignature)
        );
        for extreme in [i64::MIN, i64::MAX] {
            let signed = request(&body, Some(extreme), Some(&sign(SECRET, extreme, &body)));
            assert_eq!(
                a.verify(&signed, now()),
                Err(VerifyError::TimestampOutOfTolerance)
            );
        }
        // The signature covers the timestamp: replaying the body under a new one fails.
        let replayed = request(&body, Some(ts + 10), Some(&sign(SECRET, ts, &body)));
        assert_eq!(a.verify(&replayed, now()), Err(VerifyError::BadSignature));
    }

    #[test]
    fn a_rotated_signing_secret_is_accepted_until_its_time() {
        let body = envelope(json!({"type": "message"}));
        let ts = now().timestamp();
        let retired = [RetiredSecret {
            secret: Secret::new("old-secret"),
            until: now() + chrono::Duration::seconds(60),
        }];
        let signed_old = request(&body, Some(ts), Some(&sign("old-secret", ts, &body)));
        assert_eq!(adapter(&retired).verify(&signed_old, now()), Ok(()));
        let later = now() + chrono::Duration::seconds(61);
        let ts = later.timestamp();
        let signed_old = request(&body, Some(ts), Some(&sign("old-secret", ts, &body)));
        assert_eq!(
            adapter(&retired).verify(&signed_old, later),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn url_verification_answers_the_challenge_and_stores_nothing() {
        let body =
            json!({"token": "t", "challenge": "3eZbrw1aB", "type": "url_verification"}).to_string();
        let a = adapter(&[]);
        let reply = a.challenge(&request(&body, None, None)).unwrap();
        assert_eq!(reply.body, r#"{"challenge":"3eZbrw1aB"}"#);
        assert_eq!(parse_events(body.as_bytes()).unwrap(), vec![]);
        assert_eq!(
            a.challenge(&request(&envelope(json!({})), None, None)),
            None
        );
    }

    #[test]
    fn a_dm_is_one_conversation_and_a_channel_post_starts_a_thread() {
        let dm = message(json!({
            "type": "message", "channel": "D024BE91L", "channel_type": "im",
            "user": "U2147483697", "text": "Hello", "ts": "1355517523.000005",
            "user_profile": {"display_name": "Ana", "real_name": "Ana Silva"}
        }));
        assert_eq!(dm.platform_message_id, "D024BE91L:1355517523.000005");
        assert_eq!(dm.thread_id.as_deref(), Some("D024BE91L"));
        assert_eq!(dm.from.identifier.kind, IDENTIFIER_TYPE);
        assert_eq!(dm.from.identifier.value, "U2147483697");
        assert_eq!(dm.from.display_name.as_deref(), Some("Ana"));
        assert_eq!(
            dm.sent_at,
            DateTime::from_timestamp_micros(1_355_517_523_000_005)
        );
        let post = message(json!({
            "type": "message", "channel": "C024BE91L", "channel_type": "channel",
            "user": "U2147483697", "text": "Help", "ts": "1355517524.000100"
        }));
        assert_eq!(
            post.thread_id.as_deref(),
            Some("C024BE91L/1355517524.000100")
        );
        let reply = message(json!({
            "type": "message", "channel": "C024BE91L", "channel_type": "channel",
            "user": "U2147483697", "text": "More", "ts": "1355517530.000200",
            "thread_ts": "1355517524.000100"
        }));
        assert_eq!(
            reply.thread_id.as_deref(),
            Some("C024BE91L/1355517524.000100")
        );
    }

    #[test]
    fn files_map_by_type_and_keep_their_private_url() {
        let m = message(json!({
            "type": "message", "subtype": "file_share", "channel": "D1", "channel_type": "im",
            "user": "U1", "text": "", "ts": "1.000001",
            "files": [
                {"id": "F1", "name": "a.png", "mimetype": "image/png", "size": 10,
                 "url_private": "https://files.slack.com/files-pri/T1-F1/a.png",
                 "url_private_download": "https://files.slack.com/files-pri/T1-F1/download/a.png"},
                {"id": "F2", "name": "b.mp4", "mimetype": "video/mp4",
                 "url_private": "https://files.slack.com/b.mp4"},
                {"id": "F3", "name": "c.mp3", "mimetype": "audio/mpeg",
                 "url_private": "https://files.slack.com/c.mp3"},
                {"id": "F4", "name": "clip.m4a", "mimetype": "audio/mp4", "subtype": "slack_audio",
                 "duration_ms": 4200, "url_private": "https://files.slack.com/clip.m4a"},
                {"id": "F5", "name": "d.pdf", "mimetype": "application/pdf",
                 "url_private": "https://files.slack.com/d.pdf"},
                {"id": "F6", "mode": "hidden_by_limit"}
            ]
        }));
        let kinds: Vec<&str> = m
            .parts
            .iter()
            .map(|p| match p {
                Part::Image(_) => "image",
                Part::Video(_) => "video",
                Part::Audio(_) => "audio",
                Part::VoiceNote(_) => "voice_note",
                Part::File(_) => "file",
                Part::Unsupported(u) => u.platform_type.as_str(),
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "image",
                "video",
                "audio",
                "voice_note",
                "file",
                "file:hidden_by_limit"
            ]
        );
        let Part::Image(image) = &m.parts[0] else {
            unreachable!()
        };
        assert_eq!(
            image.media.url.as_deref(),
            Some("https://files.slack.com/files-pri/T1-F1/download/a.png")
        );
        assert_eq!(image.media.platform_ref.as_deref(), Some("F1"));
        let Part::VoiceNote(clip) = &m.parts[3] else {
            unreachable!()
        };
        assert_eq!(clip.media.duration_s, Some(4.2));
    }

    #[test]
    fn edits_and_deletions_name_the_original_message() {
        let edit = parse(json!({
            "type": "message", "subtype": "message_changed", "channel": "C1",
            "hidden": true, "ts": "1700000100.000300",
            "message": {"type": "message", "user": "U1", "text": "Hello, fixed",
                        "ts": "1700000000.000100",
                        "edited": {"user": "U1", "ts": "1700000100.000000"}},
            "previous_message": {"type": "message", "user": "U1", "text": "Helo",
                                 "ts": "1700000000.000100"}
        }));
        assert_eq!(
            edit,
            vec![InboundEvent::Edit(MessageEdit {
                platform_message_id: "C1:1700000000.000100".into(),
                parts: vec![Part::Text(TextPart {
                    text: "Hello, fixed".into()
                })],
                edited_at: DateTime::from_timestamp(1_700_000_100, 0),
                order: Some(EditOrder(vec![1_700_000_100_000_000])),
            })]
        );
        let deleted = parse(json!({
            "type": "message", "subtype": "message_deleted", "channel": "C1",
            "hidden": true, "ts": "1700000200.000000", "deleted_ts": "1700000000.000100"
        }));
        assert_eq!(
            deleted,
            vec![InboundEvent::Retract {
                platform_message_id: "C1:1700000000.000100".into()
            }]
        );
    }

    #[test]
    fn our_own_posts_bot_posts_and_housekeeping_give_no_event() {
        for event in [
            json!({"type": "message", "channel": "C1", "user": "U0OURBOT", "text": "hi", "ts": "1.1"}),
            json!({"type": "message", "channel": "C1", "bot_id": "B1", "app_id": "A0OURAPP",
                   "user": "U9", "text": "hi", "ts": "1.1"}),
            json!({"type": "message", "subtype": "bot_message", "channel": "C1", "bot_id": "B2",
                   "text": "alert", "ts": "1.1"}),
            json!({"type": "message", "subtype": "channel_join", "channel": "C1", "user": "U1",
                   "text": "joined", "ts": "1.1"}),
            json!({"type": "message", "subtype": "message_changed", "channel": "C1",
                   "message": {"user": "U0OURBOT", "text": "x", "ts": "1.1"}}),
            json!({"type": "reaction_added", "user": "U1"}),
        ] {
            assert_eq!(parse(event.clone()), vec![], "{event}");
        }
    }

    #[test]
    fn malformed_events_name_the_field_at_fault() {
        let err = parse_events(
            envelope(json!({"type": "message", "channel": "C1", "text": "x", "ts": "1.1"}))
                .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(err, invalid("event.user", "missing or not a string"));
        let err = parse_events(envelope(json!({"type": "message", "channel": "C1", "user": "U1", "text": "x", "ts": "yesterday"})).as_bytes())
            .unwrap_err();
        assert_eq!(err, invalid("event.ts", "not a Slack ts"));
        assert!(matches!(
            parse_events(b"{not json"),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            parse_events(b"[1]"),
            Err(ParseError::Invalid { .. })
        ));
    }

    #[test]
    fn a_reply_goes_into_the_thread_it_answers() {
        let mut out = Outbound {
            message_id: crate::model::MessageId::new(),
            conversation_id: crate::model::ConversationId::new(),
            platform_thread_id: Some("C1/1700000000.000100".into()),
            to: Identifier {
                kind: IDENTIFIER_TYPE.into(),
                value: "U1".into(),
            },
            reply_to: None,
            parts: vec![],
        };
        assert_eq!(
            Target::of(&out).unwrap(),
            Target {
                channel: "C1".into(),
                thread_ts: Some("1700000000.000100".into())
            }
        );
        out.platform_thread_id = Some("D1".into());
        assert_eq!(
            Target::of(&out).unwrap(),
            Target {
                channel: "D1".into(),
                thread_ts: None
            }
        );
        out.platform_thread_id = None;
        assert_eq!(
            Target::of(&out).unwrap(),
            Target {
                channel: "U1".into(),
                thread_ts: None
            }
        );
    }

    #[test]
    fn text_locations_and_contacts_in_a_row_are_one_post_and_files_upload_in_order() {
        let image = MediaPart {
            media: Media {
                url: Some("https://x.test/a.png".into()),
                ..Media::default()
            },
            caption: Some("look".into()),
        };
        let parts = vec![
            Part::Text(TextPart {
                text: "Here:".into(),
            }),
            Part::Location(crate::model::LocationPart {
                latitude: 38.7,
                longitude: -9.1,
                name: Some("Shop".into()),
                address: None,
            }),
            Part::Image(image.clone()),
            Part::Contact(crate::model::ContactPart {
                name: Some("Bo".into()),
                phones: vec!["+351 1".into()],
                emails: vec![],
            }),
        ];
        assert_eq!(
            plan(&parts),
            vec![
                Step::Text("Here:\n:round_pushpin: <https://www.openstreetmap.org/?mlat=38.7&mlon=-9.1|Shop>".into()),
                Step::Upload(&image),
                Step::Text(":bust_in_silhouette: Bo\n+351 1".into()),
            ]
        );
    }

    #[test]
    fn only_transient_slack_errors_are_retried() {
        let none = HeaderMap::new();
        let refused = |e: &str| {
            read_answer(
                "chat.postMessage",
                StatusCode::OK,
                &none,
                &json!({"ok": false, "error": e}).to_string(),
            )
            .unwrap_err()
        };
        assert!(matches!(
            refused("channel_not_found"),
            SendError::Permanent { .. }
        ));
        assert!(matches!(
            refused("not_in_channel"),
            SendError::Permanent { .. }
        ));
        assert!(matches!(
            refused("invalid_auth"),
            SendError::Permanent { .. }
        ));
        assert!(matches!(
            refused("ratelimited"),
            SendError::RateLimited { .. }
        ));
        assert!(matches!(
            refused("internal_error"),
            SendError::Retryable { .. }
        ));
        assert_eq!(
            refused("channel_not_found").to_string(),
            "chat.postMessage: Slack refused it: channel_not_found"
        );
        assert!(matches!(
            read_answer("x", StatusCode::OK, &none, "<html>"),
            Err(SendError::Retryable { .. })
        ));
        assert!(matches!(
            read_answer("x", StatusCode::SERVICE_UNAVAILABLE, &none, ""),
            Err(SendError::Retryable { .. })
        ));
    }

    #[test]
    fn long_text_splits_at_line_breaks() {
        let text = format!("{}\n{}", "a".repeat(30), "b".repeat(30));
        assert_eq!(split_text(&text, 40), vec!["a".repeat(30), "b".repeat(30)]);
        assert_eq!(split_text(&"c".repeat(90), 40).len(), 3);
    }

    proptest! {
        #[test]
        fn any_body_parses_or_fails_cleanly(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_events(&body);
        }

        #[test]
        fn any_event_object_parses_or_fails_cleanly(
            kind in "(message|app_mention|reaction_added)",
            subtype in proptest::option::of("(file_share|message_changed|message_deleted|bot_message|x)"),
            ts in "[0-9.]{0,20}",
            text in ".{0,40}",
        ) {
            let mut event = json!({"type": kind, "channel": "C1", "user": "U1", "ts": ts, "text": text,
                                   "deleted_ts": ts, "message": {"user": "U1", "ts": ts, "text": text}});
            if let Some(s) = subtype { event["subtype"] = s.into(); }
            let _ = parse_events(envelope(event).as_bytes());
        }

        #[test]
        fn ts_micros_is_exact_for_slack_timestamps(secs in 0i64..4_000_000_000, micros in 0i64..1_000_000) {
            let ts = format!("{secs}.{micros:06}");
            prop_assert_eq!(ts_micros(&ts), Some(secs * 1_000_000 + micros));
        }
    }
}
