//! WhatsApp Cloud API (Meta). Webhooks arrive as `entry[].changes[].value` holding a
//! business number's `messages[]` (with the senders' `contacts[]`) or the `statuses[]` of
//! what we sent; replies go out through `POST {api_base}/{phone_number_id}/messages`.
//!
//! Signature, handshake and Graph error handling are Meta's and live in [`super::meta`].
//! A conversation's platform thread is `"{phone_number_id}:{wa_id}"`: the business number
//! the contact wrote to and the contact.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::fetch::MediaClient;
use super::meta::{self, AppSecrets, Graph, Node, non_empty};
use super::{
    ChannelAdapter, FetchError, FetchedMedia, HandshakeError, HandshakeReply, InboundContact,
    InboundEvent, InboundMessage, Outbound, ParseError, RawRequest, Receipt, RetiredSecret,
    SendError, StatusUpdate, VerifyError,
};
use crate::model::{
    ContactPart, DeliveryStatus, Identifier, LocationPart, Media, MediaPart, Part, TextPart,
    UnsupportedPart,
};
use crate::secret::Secret;

/// The identifier type of a WhatsApp contact: the `wa_id` (their phone number), or the
/// business-scoped user id (`GB.150…`) of a user who hides their number behind a username.
pub const IDENTIFIER_TYPE: &str = "whatsapp_user";

/// The longest text body WhatsApp takes; longer replies go out in several messages.
pub const MAX_TEXT_CHARS: usize = 4096;

/// The longest media caption WhatsApp takes.
pub const MAX_CAPTION_CHARS: usize = 1024;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppConfig {
    /// System-user or business token, sent as `Authorization: Bearer`.
    pub access_token: Secret,
    /// The Meta app's secret: verifies `X-Hub-Signature-256`.
    pub app_secret: Secret,
    /// The token typed into the app dashboard for the GET subscription check.
    pub verify_token: Secret,
    /// The business phone number replies are sent from when a conversation has none.
    #[serde(deserialize_with = "meta::id_string")]
    pub phone_number_id: String,
    #[serde(default = "meta::default_api_base")]
    pub api_base: String,
}

impl WhatsAppConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if self.phone_number_id.is_empty()
            || !self.phone_number_id.bytes().all(|b| b.is_ascii_digit())
        {
            errors.push((
                "phone_number_id".into(),
                "must be the numeric phone number id from the WhatsApp manager".into(),
            ));
        }
        meta::validate_api_base(&self.api_base, &mut errors);
        errors
    }
}

pub struct WhatsAppAdapter {
    secrets: AppSecrets,
    verify_token: Secret,
    phone_number_id: String,
    graph: Graph,
}

impl WhatsAppAdapter {
    pub fn new(config: &WhatsAppConfig, http: reqwest::Client, retired: &[RetiredSecret]) -> Self {
        Self {
            secrets: AppSecrets::new(&config.app_secret, retired),
            verify_token: config.verify_token.clone(),
            phone_number_id: config.phone_number_id.clone(),
            graph: Graph::new(http, &config.api_base, &config.access_token),
        }
    }

    /// The business number to send from and the contact to send to: from the
    /// conversation's thread (`"{phone_number_id}:{user}"`) when it has one.
    fn route(&self, message: &Outbound) -> Result<(String, String), SendError> {
        let (number, user) = match message.platform_thread_id.as_deref() {
            Some(thread) => match thread.split_once(':') {
                Some((number, user)) => (number.to_owned(), user.to_owned()),
                None => (self.phone_number_id.clone(), thread.to_owned()),
            },
            None => (self.phone_number_id.clone(), message.to.value.clone()),
        };
        if !meta::is_path_safe_id(&number) {
            return Err(SendError::Permanent {
                reason: format!("{number:?} is not a WhatsApp phone number id"),
            });
        }
        if user.trim().is_empty() {
            return Err(SendError::Permanent {
                reason: "the conversation has no WhatsApp user to send to".into(),
            });
        }
        Ok((number, user))
    }
}

// ---------------------------------------------------------------------------------------
// Inbound

/// Reads a webhook body: every message and status of every change of every entry.
pub fn parse_value(value: &Value) -> Result<Vec<InboundEvent>, ParseError> {
    let root = Node::root(value);
    let object = root.req_str("object")?;
    if object != "whatsapp_business_account" {
        return Err(root.invalid_field(
            "object",
            format!("expected \"whatsapp_business_account\", got {object:?}"),
        ));
    }
    let mut events = Vec::new();
    for entry in root.req_list("entry")? {
        for change in entry.list("changes")? {
            // Other fields (account_update, message_template_status_update, …) carry
            // nothing a conversation needs.
            if change.opt_str("field")?.is_some_and(|f| f != "messages") {
                continue;
            }
            if let Some(value) = change.get_object("value")? {
                parse_change(&value, &mut events)?;
            }
        }
    }
    Ok(events)
}

fn parse_change(value: &Node, events: &mut Vec<InboundEvent>) -> Result<(), ParseError> {
    let messages = value.list("messages")?;
    if !messages.is_empty() {
        let metadata = value.req_object("metadata")?;
        let number = metadata
            .opt_id("phone_number_id")?
            .ok_or_else(|| metadata.invalid_field("phone_number_id", "is required"))?;
        let contacts = value.list("contacts")?;
        for message in &messages {
            events.push(parse_message(message, &number, &contacts)?);
        }
    }
    for status in value.list("statuses")? {
        if let Some(event) = parse_status(&status)? {
            events.push(event);
        }
    }
    // `errors[]` alone reports a problem on Meta's side with no message to store.
    Ok(())
}

fn parse_message(
    message: &Node,
    number: &str,
    contacts: &[Node],
) -> Result<InboundEvent, ParseError> {
    let id = message.req_str("id")?;
    let phone = message.opt_str("from")?.filter(|s| !s.trim().is_empty());
    let user_id = message
        .opt_str("from_user_id")?
        .filter(|s| !s.trim().is_empty());
    let sender = phone.or(user_id).ok_or_else(|| {
        message.invalid_field(
            "from",
            "is required (or from_user_id for a username account)",
        )
    })?;
    let kind = message.req_str("type")?;
    let sent_at = message.opt_unix_seconds("timestamp")?;
    let reply_to = match message.get_object("context")? {
        Some(context) => context
            .opt_str("id")?
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned),
        None => None,
    };
    let parts = parse_parts(message, kind)?;
    Ok(InboundEvent::Message(InboundMessage {
        platform_message_id: id.to_owned(),
        thread_id: Some(format!("{number}:{sender}")),
        from: InboundContact {
            identifier: Identifier {
                kind: IDENTIFIER_TYPE.into(),
                value: sender.to_owned(),
            },
            display_name: display_name(contacts, phone, user_id),
            email: None,
        },
        reply_to,
        parts,
        sent_at,
        raw: message.value.clone(),
    }))
}

/// The sender's profile name (or username) from `contacts[]`, matched by `wa_id` or
/// `user_id`; a lone contact is the sender. Cosmetic, so read leniently.
fn display_name(contacts: &[Node], phone: Option<&str>, user_id: Option<&str>) -> Option<String> {
    let field = |c: &Node, key: &str| c.value.get(key).and_then(Value::as_str).map(str::to_owned);
    let matches = |c: &&Node| {
        (phone.is_some() && field(c, "wa_id").as_deref() == phone)
            || (user_id.is_some() && field(c, "user_id").as_deref() == user_id)
    };
    let contact = contacts
        .iter()
        .find(matches)
        .or_else(|| (contacts.len() == 1).then(|| &contacts[0]))?;
    let profile = contact.value.get("profile")?;
    ["name", "username"]
        .iter()
        .filter_map(|k| profile.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_owned)
}

fn parse_parts(message: &Node, kind: &str) -> Result<Vec<Part>, ParseError> {
    let part = match kind {
        "text" => {
            let text = message.req_object("text")?;
            Part::Text(TextPart {
                text: text.req_str("body")?.to_owned(),
            })
        }
        "image" | "video" | "audio" | "document" | "sticker" => media_part(message, kind)?,
        "location" => {
            let location = message.req_object("location")?;
            let coordinate = |key: &str, limit: f64| -> Result<f64, ParseError> {
                let value = location
                    .opt_f64(key)?
                    .ok_or_else(|| location.invalid_field(key, "is required"))?;
                if value.abs() > limit {
                    return Err(location.invalid_field(key, "is out of range"));
                }
                Ok(value)
            };
            Part::Location(LocationPart {
                latitude: coordinate("latitude", 90.0)?,
                longitude: coordinate("longitude", 180.0)?,
                name: non_empty(location.opt_str("name")?),
                address: non_empty(location.opt_str("address")?),
            })
        }
        "contacts" => {
            let cards = message.req_list("contacts")?;
            if cards.is_empty() {
                return Err(message.invalid_field("contacts", "must not be empty"));
            }
            return cards.iter().map(contact_part).collect();
        }
        "interactive" => {
            let interactive = message.req_object("interactive")?;
            let reply = match interactive.opt_str("type")? {
                Some(t @ ("button_reply" | "list_reply")) => Some(interactive.req_object(t)?),
                _ => None,
            };
            match reply {
                // The title is what the contact saw and tapped; the id stays in `raw`.
                Some(reply) => Part::Text(TextPart {
                    text: reply.req_str("title")?.to_owned(),
                }),
                None => unsupported(message, "interactive"),
            }
        }
        "button" => {
            let button = message.req_object("button")?;
            let text = non_empty(button.opt_str("text")?)
                .or(non_empty(button.opt_str("payload")?))
                .ok_or_else(|| button.invalid_field("text", "is required"))?;
            Part::Text(TextPart { text })
        }
        // reaction, order, system, unsupported, unknown and anything newer.
        other => unsupported(message, other),
    };
    Ok(vec![part])
}

fn unsupported(message: &Node, kind: &str) -> Part {
    Part::Unsupported(UnsupportedPart {
        platform_type: kind.to_owned(),
        raw: Some(message.value.clone()),
    })
}

fn media_part(message: &Node, kind: &str) -> Result<Part, ParseError> {
    let object = message.req_object(kind)?;
    let id = object.opt_id("id")?;
    let url = non_empty(object.opt_str("url")?);
    if id.is_none() && url.is_none() {
        return Err(object.invalid_field("id", "is required"));
    }
    let media = MediaPart {
        media: Media {
            platform_ref: id,
            url,
            mime_type: non_empty(object.opt_str("mime_type")?),
            size_bytes: object
                .opt_f64("file_size")?
                .filter(|n| *n >= 0.0)
                .map(|n| n as u64),
            filename: non_empty(object.opt_str("filename")?),
            duration_s: None,
        },
        caption: non_empty(object.opt_str("caption")?),
    };
    Ok(match kind {
        "image" => Part::Image(media),
        "video" => Part::Video(media),
        "document" => Part::File(media),
        "sticker" => Part::Sticker(media),
        // `voice: true` marks a clip recorded in the app (a voice note).
        _ if object.flag("voice") => Part::VoiceNote(media),
        _ => Part::Audio(media),
    })
}

fn contact_part(card: &Node) -> Result<Part, ParseError> {
    let name = match card.get_object("name")? {
        Some(name) => non_empty(name.opt_str("formatted_name")?).or_else(|| {
            let given: Vec<&str> = ["first_name", "middle_name", "last_name"]
                .iter()
                .filter_map(|k| name.value.get(*k).and_then(Value::as_str))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            (!given.is_empty()).then(|| given.join(" "))
        }),
        None => None,
    };
    let mut phones = Vec::new();
    for phone in card.list("phones")? {
        if let Some(p) = non_empty(phone.opt_str("phone")?).or(non_empty(phone.opt_str("wa_id")?)) {
            phones.push(p);
        }
    }
    let mut emails = Vec::new();
    for email in card.list("emails")? {
        if let Some(e) = non_empty(email.opt_str("email")?) {
            emails.push(e);
        }
    }
    Ok(Part::Contact(ContactPart {
        name,
        phones,
        emails,
    }))
}

fn parse_status(status: &Node) -> Result<Option<InboundEvent>, ParseError> {
    let id = status.req_str("id")?;
    let reported = match status.req_str("status")? {
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "read" => DeliveryStatus::Read,
        "failed" => DeliveryStatus::Failed,
        // deleted, warning, played…: nothing the delivery status tracks.
        _ => return Ok(None),
    };
    let errors: Vec<String> = status
        .list("errors")?
        .iter()
        .map(|e| describe_error(e.value))
        .collect();
    Ok(Some(InboundEvent::Status(StatusUpdate {
        platform_message_id: id.to_owned(),
        status: reported,
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    })))
}

/// `131047: Re-engagement message (Message failed to send because …)`.
fn describe_error(error: &Value) -> String {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let code = match error.get("code") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "error".into(),
    };
    let title = text(error.get("title")).or(text(error.get("message")));
    let details = text(error.pointer("/error_data/details"));
    let mut out = code;
    if let Some(title) = title {
        out.push_str(": ");
        out.push_str(&title);
    }
    if let Some(details) = details {
        out.push_str(&format!(" ({details})"));
    }
    out
}

// ---------------------------------------------------------------------------------------
// Outbound

/// The messages a reply becomes, in order (one WhatsApp message per part, a text followed
/// by media becoming that media's caption), without the envelope; plus notes on parts
/// that went out differently from how the rep wrote them.
pub fn plan(parts: &[Part]) -> (Vec<Value>, Vec<String>) {
    let mut messages = Vec::new();
    let mut notes = Vec::new();
    let mut i = 0;
    while i < parts.len() {
        let n = i + 1;
        match &parts[i] {
            Part::Text(t) => {
                if let Some(next @ (Part::Image(m) | Part::Video(m) | Part::File(m))) =
                    parts.get(i + 1)
                    && m.caption.is_none()
                    && t.text.chars().count() <= MAX_CAPTION_CHARS
                {
                    media_messages(next, Some(&t.text), n + 1, &mut messages, &mut notes);
                    i += 2;
                    continue;
                }
                for chunk in meta::chunks(&t.text, MAX_TEXT_CHARS) {
                    messages.push(text_message(&chunk));
                }
            }
            media @ (Part::Image(_)
            | Part::Video(_)
            | Part::Audio(_)
            | Part::VoiceNote(_)
            | Part::Sticker(_)
            | Part::File(_)) => media_messages(media, None, n, &mut messages, &mut notes),
            Part::Location(l) => {
                let mut location = Map::new();
                location.insert("latitude".into(), json!(l.latitude));
                location.insert("longitude".into(), json!(l.longitude));
                if let Some(name) = &l.name {
                    location.insert("name".into(), json!(name));
                }
                if let Some(address) = &l.address {
                    location.insert("address".into(), json!(address));
                }
                messages.push(json!({"type": "location", "location": location}));
            }
            Part::Contact(c) => {
                let name = c
                    .name
                    .clone()
                    .or_else(|| c.phones.first().cloned())
                    .unwrap_or_else(|| "Contact".into());
                messages.push(json!({"type": "contacts", "contacts": [{
                    "name": {"formatted_name": name, "first_name": name},
                    "phones": c.phones.iter().map(|p| json!({"phone": p})).collect::<Vec<_>>(),
                    "emails": c.emails.iter().map(|e| json!({"email": e})).collect::<Vec<_>>(),
                }]}));
            }
            Part::Unsupported(u) => {
                let text = match u.raw.as_ref().and_then(meta::first_url) {
                    Some(url) => format!("[{}] {url}", u.platform_type),
                    None => format!("[{}]", u.platform_type),
                };
                messages.push(text_message(&text));
                notes.push(format!(
                    "part {n} ({}) has no WhatsApp equivalent and was sent as text",
                    u.platform_type
                ));
            }
        }
        i += 1;
    }
    (messages, notes)
}

fn text_message(text: &str) -> Value {
    let has_link = text.contains("https://") || text.contains("http://");
    json!({"type": "text", "text": {"body": text, "preview_url": has_link}})
}

/// One media part as WhatsApp messages: the media by `link` (or by media `id` for a
/// WhatsApp media reference), with its caption where WhatsApp takes one and as a
/// following text where it does not.
fn media_messages(
    part: &Part,
    caption_from_text: Option<&str>,
    n: usize,
    messages: &mut Vec<Value>,
    notes: &mut Vec<String>,
) {
    let (kind, media) = match part {
        Part::Image(m) => ("image", m),
        Part::Video(m) => ("video", m),
        Part::Audio(m) | Part::VoiceNote(m) => ("audio", m),
        // WhatsApp stickers must be WebP; any other picture still goes, as an image.
        Part::Sticker(m) if !is_webp(&m.media) => {
            notes.push(format!(
                "part {n} (sticker) is not a WebP image, which WhatsApp stickers must be, and was sent as an image"
            ));
            ("image", m)
        }
        Part::Sticker(m) => ("sticker", m),
        Part::File(m) => ("document", m),
        _ => return,
    };
    let mut object = Map::new();
    match (&media.media.url, &media.media.platform_ref) {
        (Some(url), _) => {
            object.insert("link".into(), json!(url));
        }
        (None, Some(id)) => {
            object.insert("id".into(), json!(id));
        }
        (None, None) => {
            notes.push(format!(
                "part {n} ({kind}) has no file to send and was left out"
            ));
            if let Some(caption) = caption_from_text.or(media.caption.as_deref()) {
                messages.push(text_message(caption));
            }
            return;
        }
    }
    if kind == "document"
        && let Some(filename) = &media.media.filename
    {
        object.insert("filename".into(), json!(filename));
    }
    let caption = caption_from_text.or(media.caption.as_deref());
    let mut trailing = None;
    if let Some(caption) = caption {
        let takes_caption = matches!(kind, "image" | "video" | "document");
        if takes_caption && caption.chars().count() <= MAX_CAPTION_CHARS {
            object.insert("caption".into(), json!(caption));
        } else {
            trailing = Some(caption);
        }
    }
    messages.push(json!({"type": kind, kind: object}));
    if let Some(caption) = trailing {
        for chunk in meta::chunks(caption, MAX_TEXT_CHARS) {
            messages.push(text_message(&chunk));
        }
    }
}

/// Whether a sticker's file is WebP, judged by its MIME type, else by the extension of its
/// URL; a file that says neither is given the benefit of the doubt.
fn is_webp(media: &Media) -> bool {
    if let Some(mime) = &media.mime_type {
        return mime.eq_ignore_ascii_case("image/webp");
    }
    let extension = media
        .url
        .as_deref()
        .and_then(|u| reqwest::Url::parse(u).ok())
        .and_then(|u| {
            let last = u.path_segments()?.next_back()?.to_owned();
            last.rsplit_once('.')
                .map(|(_, ext)| ext.to_ascii_lowercase())
        });
    extension.is_none_or(|ext| ext == "webp")
}

/// A planned message with its envelope: the recipient (`to` for a phone number,
/// `recipient` for a business-scoped user id) and, if given, the quoted message.
pub fn envelope(user: &str, message: Value, reply_to: Option<&str>) -> Value {
    let mut body = Map::new();
    body.insert("messaging_product".into(), json!("whatsapp"));
    body.insert("recipient_type".into(), json!("individual"));
    let digits = user.strip_prefix('+').unwrap_or(user);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        body.insert("to".into(), json!(user));
    } else {
        body.insert("recipient".into(), json!(user));
    }
    if let Value::Object(fields) = message {
        body.extend(fields);
    }
    if let Some(quoted) = reply_to.filter(|r| !r.is_empty()) {
        body.insert("context".into(), json!({"message_id": quoted}));
    }
    Value::Object(body)
}

#[async_trait]
impl ChannelAdapter for WhatsAppAdapter {
    fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError> {
        self.secrets.verify(request, now)
    }

    fn parse(&self, request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError> {
        parse_value(&meta::json_body(request)?)
    }

    fn handshake(&self, request: &RawRequest) -> Result<HandshakeReply, HandshakeError> {
        meta::handshake(request, &self.verify_token)
    }

    async fn send(&self, message: &Outbound) -> Result<Receipt, SendError> {
        let (number, user) = self.route(message)?;
        let (messages, notes) = plan(&message.parts);
        if messages.is_empty() {
            return Err(SendError::Permanent {
                reason: "nothing in this reply can be sent on WhatsApp".into(),
            });
        }
        let total = messages.len();
        let path = format!("{number}/messages");
        let mut first_id = None;
        for (sent, planned) in messages.into_iter().enumerate() {
            // Only the first message quotes; the rest follow it.
            let quoted = if sent == 0 {
                message.reply_to.as_deref()
            } else {
                None
            };
            let answer = self
                .graph
                .post(&path, &envelope(&user, planned, quoted))
                .await
                .map_err(|e| meta::after_partial(e, sent, total))?;
            if first_id.is_none() {
                first_id = answer
                    .pointer("/messages/0/id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
        }
        Ok(Receipt {
            platform_message_id: first_id,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        })
    }

    /// `GET {api_base}/{media id}` gives a short-lived `url`, fetched with the same token.
    async fn fetch_media(
        &self,
        media: &Media,
        web: &MediaClient,
    ) -> Result<FetchedMedia, FetchError> {
        if let Some(id) = media.platform_ref.as_deref() {
            if !meta::is_path_safe_id(id) {
                return Err(FetchError::NoMedia);
            }
            let info = self.graph.get_json(id).await?;
            let url = info
                .get("url")
                .and_then(Value::as_str)
                .ok_or_else(|| FetchError::Upstream("the media lookup gave no url".into()))?;
            return self.graph.fetch(url, web).await;
        }
        match media.url.as_deref() {
            Some(url) => self.graph.fetch(url, web).await,
            None => Err(FetchError::NoMedia),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::fixture;
    use axum::http::{HeaderMap, HeaderValue};
    use proptest::prelude::*;

    const APP_SECRET: &str = "wa-app-secret";
    const NUMBER: &str = "227118690421377";
    const PRIYA: &str = "447700900123";

    fn config() -> WhatsAppConfig {
        WhatsAppConfig {
            access_token: Secret::new("EAAG-test-token"),
            app_secret: Secret::new(APP_SECRET),
            verify_token: Secret::new("verify-me"),
            phone_number_id: NUMBER.into(),
            api_base: "http://127.0.0.1:9/v26.0".into(),
        }
    }

    fn adapter(retired: &[RetiredSecret]) -> WhatsAppAdapter {
        WhatsAppAdapter::new(&config(), reqwest::Client::new(), retired)
    }

    fn request(body: &str, signature: Option<String>, content_type: &str) -> RawRequest {
        meta::testing::request("wa", body, signature, content_type)
    }

    fn signed(body: &str) -> RawRequest {
        meta::testing::signed("wa", APP_SECRET, body)
    }

    fn parse(body: &str) -> Vec<InboundEvent> {
        let adapter = adapter(&[]);
        let request = signed(body);
        adapter.verify(&request, Utc::now()).unwrap();
        adapter.parse(&request).unwrap()
    }

    fn only_message(body: &str) -> InboundMessage {
        let mut events = parse(body);
        assert_eq!(events.len(), 1, "{events:?}");
        match events.remove(0) {
            InboundEvent::Message(m) => m,
            other => panic!("not a message: {other:?}"),
        }
    }

    fn only_part(body: &str) -> Part {
        let mut m = only_message(body);
        assert_eq!(m.parts.len(), 1, "{:?}", m.parts);
        m.parts.remove(0)
    }

    fn media(part: Part) -> MediaPart {
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

    #[test]
    fn text_with_a_quote_names_sender_thread_and_quoted_message() {
        let m = only_message(fixture!("whatsapp/text_reply.json"));
        assert_eq!(
            m.platform_message_id,
            "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgUM0VCMDRBN0YxQ0Q2RTk2QjhFMjYA"
        );
        assert_eq!(m.thread_id.as_deref(), Some("227118690421377:447700900123"));
        assert_eq!(
            m.from.identifier,
            Identifier {
                kind: "whatsapp_user".into(),
                value: PRIYA.into()
            }
        );
        assert_eq!(m.from.display_name.as_deref(), Some("Priya"));
        assert_eq!(
            m.reply_to.as_deref(),
            Some("wamid.HBgMNDQ3NzAwOTAwMTIzFQIAERgSQkl6MDAwMDAwMDAwMDAwMQA=")
        );
        assert_eq!(
            m.parts,
            vec![Part::Text(TextPart {
                text: "Yes please, size M \u{2014} thanks! \u{1f600}".into()
            })]
        );
        assert_eq!(m.sent_at.unwrap().timestamp(), 1783001480);
        assert_eq!(m.raw["type"], "text");
    }

    #[test]
    fn image_keeps_its_media_id_mime_type_and_caption() {
        let part = only_part(fixture!("whatsapp/image.json"));
        assert!(matches!(part, Part::Image(_)));
        let m = media(part);
        assert_eq!(m.media.platform_ref.as_deref(), Some("1470623974238919"));
        assert_eq!(m.media.mime_type.as_deref(), Some("image/jpeg"));
        assert_eq!(m.caption.as_deref(), Some("The dent on the lid"));
    }

    #[test]
    fn video_audio_voice_document_and_sticker_map_to_their_kinds() {
        let video = only_part(fixture!("whatsapp/video.json"));
        assert!(
            matches!(&video, Part::Video(m) if m.media.platform_ref.as_deref() == Some("1070486281544591"))
        );
        let audio = only_part(fixture!("whatsapp/audio.json"));
        assert!(
            matches!(&audio, Part::Audio(m) if m.media.mime_type.as_deref() == Some("audio/mpeg"))
        );
        let voice = only_part(fixture!("whatsapp/voice.json"));
        assert!(
            matches!(&voice, Part::VoiceNote(m) if m.media.platform_ref.as_deref() == Some("2153937768413427"))
        );
        let document = only_part(fixture!("whatsapp/document.json"));
        let Part::File(file) = document else {
            panic!("not a file: {document:?}")
        };
        assert_eq!(file.media.filename.as_deref(), Some("invoice-2026-03.pdf"));
        assert_eq!(file.media.mime_type.as_deref(), Some("application/pdf"));
        assert_eq!(file.caption.as_deref(), Some("Invoice for March"));
        let sticker = only_part(fixture!("whatsapp/sticker.json"));
        assert!(
            matches!(&sticker, Part::Sticker(m) if m.media.mime_type.as_deref() == Some("image/webp"))
        );
    }

    #[test]
    fn location_and_contact_cards_become_their_parts() {
        assert_eq!(
            only_part(fixture!("whatsapp/location.json")),
            Part::Location(LocationPart {
                latitude: 51.5072,
                longitude: -0.1276,
                name: Some("Trafalgar Square".into()),
                address: Some("London WC2N 5DN".into()),
            })
        );
        let m = only_message(fixture!("whatsapp/contacts.json"));
        assert_eq!(
            m.parts,
            vec![
                Part::Contact(ContactPart {
                    name: Some("Bo Lindqvist".into()),
                    phones: vec!["+46 70 123 45 67".into()],
                    emails: vec!["bo@example.com".into()],
                }),
                Part::Contact(ContactPart {
                    name: Some("Ana Silva".into()),
                    phones: vec!["+351 912 345 678".into()],
                    emails: vec![],
                }),
            ]
        );
    }

    #[test]
    fn button_and_list_replies_are_the_text_the_contact_tapped() {
        let events = parse(fixture!("whatsapp/interactive.json"));
        let messages: Vec<&InboundMessage> = events
            .iter()
            .map(|e| match e {
                InboundEvent::Message(m) => m,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(messages.len(), 4);
        let text = |m: &InboundMessage| m.parts[0].text().map(str::to_owned);
        assert_eq!(text(messages[0]).as_deref(), Some("Change size"));
        assert_eq!(messages[0].reply_to.as_deref(), Some("wamid.OUT-MENU"));
        assert_eq!(text(messages[1]).as_deref(), Some("Tuesday 10:00"));
        assert!(matches!(&messages[2].parts[0],
            Part::Unsupported(u) if u.platform_type == "interactive"
                && u.raw.as_ref().unwrap()["interactive"]["type"] == "nfm_reply"));
        assert_eq!(text(messages[3]).as_deref(), Some("Stop promotions"));
    }

    #[test]
    fn reactions_system_and_unknown_types_are_kept_as_unsupported_with_their_json() {
        for (body, kind, id) in [
            (
                fixture!("whatsapp/reaction.json"),
                "reaction",
                "wamid.REACT1",
            ),
            (
                fixture!("whatsapp/unsupported.json"),
                "unsupported",
                "wamid.UNS1",
            ),
            (fixture!("whatsapp/system.json"), "system", "wamid.SYS1"),
        ] {
            let m = only_message(body);
            assert_eq!(m.platform_message_id, id);
            let [Part::Unsupported(u)] = m.parts.as_slice() else {
                panic!("{:?}", m.parts)
            };
            assert_eq!(u.platform_type, kind);
            assert_eq!(u.raw.as_ref().unwrap()["id"], id);
        }
    }

    #[test]
    fn a_username_account_is_known_by_its_business_scoped_id() {
        let m = only_message(fixture!("whatsapp/username.json"));
        assert_eq!(m.from.identifier.value, "GB.1502576394655843");
        assert_eq!(
            m.thread_id.as_deref(),
            Some("227118690421377:GB.1502576394655843")
        );
        assert_eq!(m.from.display_name.as_deref(), Some("Kai"));
    }

    #[test]
    fn a_batch_yields_every_message_and_status_in_order() {
        let events = parse(fixture!("whatsapp/batch.json"));
        let ids: Vec<String> = events
            .iter()
            .map(|e| match e {
                InboundEvent::Message(m) => m.platform_message_id.clone(),
                InboundEvent::Status(s) => format!("status:{}", s.platform_message_id),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            ids,
            [
                "wamid.BATCH-A1",
                "wamid.BATCH-B1",
                "wamid.BATCH-A2",
                "status:wamid.OUT1",
                "wamid.BATCH-C1"
            ]
        );
        let InboundEvent::Message(tomas) = &events[1] else {
            unreachable!()
        };
        assert_eq!(tomas.from.display_name.as_deref(), Some("Tom\u{e1}s"));
        assert_eq!(
            tomas.thread_id.as_deref(),
            Some("227118690421377:34600111222")
        );
        let InboundEvent::Message(other_number) = &events[4] else {
            unreachable!()
        };
        assert_eq!(
            other_number.thread_id.as_deref(),
            Some("227118690429999:447700900123"),
            "the thread names the business number the contact wrote to"
        );
    }

    #[test]
    fn statuses_report_on_our_wamids_with_failure_reasons() {
        let events = parse(fixture!("whatsapp/statuses.json"));
        let status = |id: &str, status, error: Option<&str>| {
            InboundEvent::Status(StatusUpdate {
                platform_message_id: id.into(),
                status,
                error: error.map(str::to_owned),
            })
        };
        assert_eq!(
            events,
            vec![
                status("wamid.OUT1", DeliveryStatus::Sent, None),
                status("wamid.OUT1", DeliveryStatus::Delivered, None),
                status("wamid.OUT1", DeliveryStatus::Read, None),
                status(
                    "wamid.OUT2",
                    DeliveryStatus::Failed,
                    Some(
                        "131047: Re-engagement message (Message failed to send because more than 24 hours have passed since the customer last replied to this number.)"
                    )
                ),
            ],
            "the `deleted` status is not a delivery status"
        );
    }

    #[test]
    fn other_fields_and_error_only_changes_carry_no_event() {
        assert!(parse(fixture!("whatsapp/not_messages.json")).is_empty());
        assert!(parse(r#"{"object":"whatsapp_business_account","entry":[]}"#).is_empty());
    }

    #[test]
    fn signatures_are_checked_on_the_raw_bytes() {
        let adapter = adapter(&[]);
        let body = fixture!("whatsapp/text_reply.json");
        let now = Utc::now();
        adapter.verify(&signed(body), now).unwrap();
        let missing = request(body, None, "application/json");
        assert_eq!(
            adapter.verify(&missing, now).unwrap_err(),
            VerifyError::MissingHeader("x-hub-signature-256")
        );
        let wrong = request(
            body,
            Some(meta::sign(b"some other app", body.as_bytes())),
            "application/json",
        );
        assert_eq!(
            adapter.verify(&wrong, now).unwrap_err(),
            VerifyError::BadSignature
        );
        // Re-serializing changes the bytes (escapes, spacing): the signature no longer holds.
        let reserialized =
            serde_json::to_string(&serde_json::from_str::<Value>(body).unwrap()).unwrap();
        let stale = request(
            &reserialized,
            Some(meta::sign(APP_SECRET.as_bytes(), body.as_bytes())),
            "application/json",
        );
        assert_eq!(
            adapter.verify(&stale, now).unwrap_err(),
            VerifyError::BadSignature
        );
    }

    #[test]
    fn a_retired_app_secret_is_accepted_until_its_time() {
        let now = Utc::now();
        let adapter = adapter(&[RetiredSecret {
            secret: Secret::new("previous-app-secret"),
            until: now + chrono::Duration::seconds(60),
        }]);
        let body = fixture!("whatsapp/image.json");
        let old = request(
            body,
            Some(meta::sign(b"previous-app-secret", body.as_bytes())),
            "application/json",
        );
        adapter.verify(&old, now).unwrap();
        assert_eq!(
            adapter
                .verify(&old, now + chrono::Duration::seconds(61))
                .unwrap_err(),
            VerifyError::BadSignature
        );
    }

    #[test]
    fn the_handshake_answers_with_the_challenge() {
        meta::testing::assert_handshake_answers_the_challenge(&adapter(&[]), "4821");
    }

    fn field_of(body: &str) -> String {
        match adapter(&[]).parse(&signed(body)) {
            Err(ParseError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid for {body}, got {other:?}"),
        }
    }

    fn one_message(message: Value) -> String {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages", "value": {"metadata": {"phone_number_id": NUMBER},
            "messages": [message]}}]}]})
        .to_string()
    }

    #[test]
    fn malformed_payloads_name_the_field_at_fault() {
        let text = |extra: Value| {
            let mut m = json!({"from": PRIYA, "id": "wamid.X", "timestamp": "1783001480",
                               "type": "text", "text": {"body": "hi"}});
            for (k, v) in extra.as_object().unwrap() {
                if v.is_null() {
                    m.as_object_mut().unwrap().remove(k);
                } else {
                    m[k] = v.clone();
                }
            }
            one_message(m)
        };
        let prefix = "entry[0].changes[0].value.messages[0]";
        let cases = [
            (r#"{"entry":[]}"#.to_owned(), "object".to_owned()),
            (r#"{"object":"page","entry":[]}"#.to_owned(), "object".to_owned()),
            (r#"{"object":"whatsapp_business_account"}"#.to_owned(), "entry".to_owned()),
            (
                r#"{"object":"whatsapp_business_account","entry":{}}"#.to_owned(),
                "entry".to_owned(),
            ),
            (
                r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[{}]}}]}]}"#.to_owned(),
                "entry[0].changes[0].value.metadata".to_owned(),
            ),
            (text(json!({"id": null})), format!("{prefix}.id")),
            (text(json!({"id": ""})), format!("{prefix}.id")),
            (text(json!({"from": null})), format!("{prefix}.from")),
            (text(json!({"from": 447700900123u64})), format!("{prefix}.from")),
            (text(json!({"type": null})), format!("{prefix}.type")),
            (text(json!({"timestamp": "yesterday"})), format!("{prefix}.timestamp")),
            (text(json!({"text": null})), format!("{prefix}.text")),
            (text(json!({"text": {"body": 5}})), format!("{prefix}.text.body")),
            (text(json!({"context": "wamid.Q"})), format!("{prefix}.context")),
            (
                text(json!({"type": "image", "image": {"mime_type": "image/png"}})),
                format!("{prefix}.image.id"),
            ),
            (
                text(json!({"type": "location", "location": {"latitude": 91, "longitude": 0}})),
                format!("{prefix}.location.latitude"),
            ),
            (
                text(json!({"type": "location", "location": {"latitude": 1}})),
                format!("{prefix}.location.longitude"),
            ),
            (text(json!({"type": "contacts", "contacts": []})), format!("{prefix}.contacts")),
            (
                text(json!({"type": "interactive", "interactive": {"type": "button_reply"}})),
                format!("{prefix}.interactive.button_reply"),
            ),
            (
                json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
                    "statuses": [{"id": "wamid.OUT1"}]}}]}]})
                .to_string(),
                "entry[0].changes[0].value.statuses[0].status".to_owned(),
            ),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(&body), field, "{body}");
        }
    }

    #[test]
    fn wrong_content_type_and_broken_json_are_refused() {
        let adapter = adapter(&[]);
        let body = fixture!("whatsapp/text_reply.json");
        let form = request(body, None, "application/x-www-form-urlencoded");
        assert!(matches!(
            adapter.parse(&form),
            Err(ParseError::UnsupportedMediaType(t)) if t == "application/x-www-form-urlencoded"
        ));
        assert!(matches!(
            adapter.parse(&signed("{\"object\":")),
            Err(ParseError::Malformed(_))
        ));
    }

    fn outbound(parts: Vec<Part>, thread: Option<&str>, reply_to: Option<&str>) -> Outbound {
        Outbound {
            message_id: crate::model::MessageId::new(),
            conversation_id: crate::model::ConversationId::new(),
            platform_thread_id: thread.map(str::to_owned),
            to: Identifier {
                kind: IDENTIFIER_TYPE.into(),
                value: PRIYA.into(),
            },
            reply_to: reply_to.map(str::to_owned),
            parts,
        }
    }

    fn text(t: &str) -> Part {
        Part::Text(TextPart { text: t.into() })
    }

    fn linked(url: &str) -> MediaPart {
        MediaPart {
            media: Media {
                url: Some(url.into()),
                ..Media::default()
            },
            caption: None,
        }
    }

    #[test]
    fn text_then_media_becomes_a_captioned_media_message() {
        let (messages, notes) = plan(&[
            text("Here is the label"),
            Part::Image(linked("https://cdn.example/label.png")),
            text("Anything else?"),
        ]);
        assert!(notes.is_empty());
        assert_eq!(
            messages,
            vec![
                json!({"type": "image", "image": {"link": "https://cdn.example/label.png",
                                                   "caption": "Here is the label"}}),
                json!({"type": "text", "text": {"body": "Anything else?", "preview_url": false}}),
            ]
        );
    }

    #[test]
    fn every_kind_is_planned_as_its_whatsapp_message() {
        let mut document = linked("https://cdn.example/a.pdf");
        document.media.filename = Some("a.pdf".into());
        document.caption = Some("Your invoice".into());
        let mut voice = linked("https://cdn.example/v.ogg");
        voice.caption = Some("listen".into());
        let by_id = MediaPart {
            media: Media {
                platform_ref: Some("1470623974238919".into()),
                ..Media::default()
            },
            caption: None,
        };
        let (messages, notes) = plan(&[
            Part::Video(linked("https://cdn.example/v.mp4")),
            Part::Audio(linked("https://cdn.example/a.mp3")),
            Part::VoiceNote(voice),
            Part::Sticker(linked("https://cdn.example/s.webp")),
            Part::File(document),
            Part::Image(by_id),
            Part::Location(LocationPart {
                latitude: 51.5,
                longitude: -0.12,
                name: Some("Shop".into()),
                address: None,
            }),
            Part::Contact(ContactPart {
                name: Some("Bo".into()),
                phones: vec!["+46701234567".into()],
                emails: vec!["bo@example.com".into()],
            }),
            text("see https://example.com"),
        ]);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            messages,
            vec![
                json!({"type": "video", "video": {"link": "https://cdn.example/v.mp4"}}),
                json!({"type": "audio", "audio": {"link": "https://cdn.example/a.mp3"}}),
                json!({"type": "audio", "audio": {"link": "https://cdn.example/v.ogg"}}),
                json!({"type": "text", "text": {"body": "listen", "preview_url": false}}),
                json!({"type": "sticker", "sticker": {"link": "https://cdn.example/s.webp"}}),
                json!({"type": "document", "document": {"link": "https://cdn.example/a.pdf",
                        "filename": "a.pdf", "caption": "Your invoice"}}),
                json!({"type": "image", "image": {"id": "1470623974238919"}}),
                json!({"type": "location", "location": {"latitude": 51.5, "longitude": -0.12,
                        "name": "Shop"}}),
                json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "Bo", "first_name": "Bo"},
                        "phones": [{"phone": "+46701234567"}], "emails": [{"email": "bo@example.com"}]}]}),
                json!({"type": "text", "text": {"body": "see https://example.com", "preview_url": true}}),
            ]
        );
    }

    #[test]
    fn a_part_whatsapp_cannot_carry_goes_as_text_with_a_note() {
        let poll = Part::Unsupported(UnsupportedPart {
            platform_type: "poll".into(),
            raw: Some(json!({"type": "poll", "results": "https://polls.example/7"})),
        });
        let (messages, notes) = plan(&[text("Vote please"), poll]);
        assert_eq!(
            messages[1],
            json!({"type": "text", "text": {"body": "[poll] https://polls.example/7", "preview_url": true}})
        );
        assert_eq!(
            notes,
            ["part 2 (poll) has no WhatsApp equivalent and was sent as text"]
        );
    }

    #[test]
    fn a_sticker_that_is_not_webp_goes_as_an_image_with_a_note() {
        let mut png = linked("https://cdn.example/smile.png");
        png.media.mime_type = Some("image/png".into());
        let (messages, notes) = plan(&[
            Part::Sticker(png),
            Part::Sticker(linked("https://cdn.example/wave.PNG")),
            Part::Sticker(linked("https://cdn.example/ok.webp")),
            Part::Sticker(linked("https://cdn.example/stickers/42")),
        ]);
        let kinds: Vec<&str> = messages
            .iter()
            .map(|m| m["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["image", "image", "sticker", "sticker"]);
        assert_eq!(
            messages[0]["image"]["link"],
            "https://cdn.example/smile.png"
        );
        assert_eq!(
            notes,
            [
                "part 1 (sticker) is not a WebP image, which WhatsApp stickers must be, and was sent as an image",
                "part 2 (sticker) is not a WebP image, which WhatsApp stickers must be, and was sent as an image",
            ]
        );
    }

    #[test]
    fn long_text_goes_out_in_pieces_whatsapp_accepts() {
        let long = "word ".repeat(2000);
        let (messages, _) = plan(&[text(&long)]);
        assert_eq!(messages.len(), 3);
        assert!(
            messages
                .iter()
                .all(|m| m["text"]["body"].as_str().unwrap().chars().count() <= MAX_TEXT_CHARS)
        );
    }

    #[test]
    fn the_envelope_addresses_phone_numbers_and_business_scoped_ids_and_quotes() {
        let message = json!({"type": "text", "text": {"body": "hi"}});
        assert_eq!(
            envelope(PRIYA, message.clone(), Some("wamid.Q")),
            json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                   "to": PRIYA, "type": "text", "text": {"body": "hi"},
                   "context": {"message_id": "wamid.Q"}})
        );
        let to_username = envelope("GB.1502576394655843", message, None);
        assert_eq!(to_username["recipient"], "GB.1502576394655843");
        assert!(to_username.get("to").is_none());
        assert!(to_username.get("context").is_none());
    }

    #[test]
    fn replies_go_from_the_number_the_contact_wrote_to() {
        let adapter = adapter(&[]);
        let thread = outbound(vec![text("x")], Some("227118690429999:447700900123"), None);
        assert_eq!(
            adapter.route(&thread).unwrap(),
            ("227118690429999".into(), PRIYA.into())
        );
        let no_thread = outbound(vec![text("x")], None, None);
        assert_eq!(
            adapter.route(&no_thread).unwrap(),
            (NUMBER.into(), PRIYA.into())
        );
        let forged = outbound(vec![text("x")], Some("../../me:447700900123"), None);
        assert!(matches!(
            adapter.route(&forged),
            Err(SendError::Permanent { .. })
        ));
    }

    #[test]
    fn config_takes_the_number_id_as_text_or_number_and_checks_it() {
        let from_toml = |text: &str| -> Result<WhatsAppConfig, String> {
            toml::from_str(text).map_err(|e| e.to_string())
        };
        let base = "access_token = \"t\"\napp_secret = \"s\"\nverify_token = \"v\"\n";
        let numeric = from_toml(&format!("{base}phone_number_id = 227118690421377\n")).unwrap();
        assert_eq!(numeric.phone_number_id, NUMBER);
        assert_eq!(numeric.api_base, meta::DEFAULT_API_BASE);
        assert!(numeric.validate().is_empty());
        let quoted = from_toml(&format!(
            "{base}phone_number_id = \"abc\"\napi_base = \"ftp://x\"\n"
        ))
        .unwrap();
        let keys: Vec<String> = quoted.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["phone_number_id", "api_base"]);
        assert!(
            from_toml(&format!(
                "{base}phone_number_id = \"1\"\nbot_token = \"x\"\n"
            ))
            .is_err()
        );
    }

    /// JSON shaped like a webhook: the real field names at any depth, with values of
    /// every type, so the parser's every branch sees wrong shapes.
    fn webhook_like() -> impl Strategy<Value = Value> {
        let keys = prop::sample::select(vec![
            "object",
            "entry",
            "changes",
            "field",
            "value",
            "metadata",
            "phone_number_id",
            "contacts",
            "messages",
            "statuses",
            "from",
            "from_user_id",
            "id",
            "type",
            "timestamp",
            "text",
            "body",
            "image",
            "audio",
            "voice",
            "document",
            "sticker",
            "location",
            "latitude",
            "longitude",
            "interactive",
            "button_reply",
            "title",
            "button",
            "context",
            "status",
            "errors",
            "profile",
            "name",
            "wa_id",
            "phones",
            "emails",
            "caption",
            "file_size",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            prop::sample::select(vec![
                "whatsapp_business_account",
                "messages",
                "text",
                "image",
                "audio",
                "location",
                "contacts",
                "interactive",
                "button_reply",
                "list_reply",
                "delivered",
                "failed",
                "1783001480",
                "",
                "wamid.X",
                "227118690421377",
            ])
            .prop_map(Value::from),
            ".*".prop_map(Value::from),
        ];
        leaf.prop_recursive(6, 96, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(keys.clone(), inner, 0..6).prop_map(|m| {
                    Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }

    /// One adapter for every generated case (building a client per case is slow).
    static SHARED: std::sync::LazyLock<WhatsAppAdapter> = std::sync::LazyLock::new(|| adapter(&[]));

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_parser(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let mut headers = HeaderMap::new();
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            let request = RawRequest::post("https://bridge.example/hooks/wa", headers, body);
            let _ = SHARED.parse(&request);
        }

        #[test]
        fn arbitrary_json_shapes_never_panic_the_parser(value in webhook_like()) {
            let _ = parse_value(&value);
            let wrapped = json!({"object": "whatsapp_business_account", "entry": [{"changes": [
                {"field": "messages", "value": {"metadata": {"phone_number_id": "1"},
                 "messages": [value.clone()], "statuses": [value.clone()], "contacts": [value]}}]}]});
            let _ = parse_value(&wrapped);
        }
    }
}
