//! Meta's Messenger Platform, which Messenger and Instagram Direct both are: the same
//! webhook `messaging[]` events and the same Send API. What is read and planned here is
//! written once; a [`Platform`] says where the two differ (names, which events and
//! attachments each has, how long a text may be, how a media part is sent).

use serde_json::{Map, Value, json};

use super::{Graph, Node, non_empty, unsupported};
use crate::adapters::{
    InboundContact, InboundEvent, InboundMessage, MessageEdit, ParseError, Receipt, SendError,
    StatusUpdate, StatusWatermark,
};
use crate::model::{DeliveryStatus, EditOrder, Identifier, Media, MediaPart, Part, TextPart};

/// How a `read` event names what the contact has seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// A watermark, required: everything sent before it was read (Messenger).
    Watermark,
    /// The message seen (`mid`), or a watermark should one come (Instagram).
    MidOrWatermark,
}

/// Where one Messenger Platform channel differs from the other.
pub struct Platform {
    /// The platform's name in notes and refusals ("Messenger").
    pub name: &'static str,
    /// The webhook body's `object` ("page", "instagram").
    pub object: &'static str,
    /// The identifier type of a contact's platform-scoped id.
    pub identifier_type: &'static str,
    /// A message's text and attachments as parts (attachment kinds differ).
    pub message_parts: fn(&Node) -> Result<Vec<Part>, ParseError>,
    /// Whether a reply to the account's story is kept with the message (Instagram).
    pub story_replies: bool,
    /// Whether `delivery` receipts are read (Messenger sends them).
    pub deliveries: bool,
    /// How `read` events are read.
    pub reads: Reads,
    /// Cuts a text into pieces the Send API takes.
    pub text_chunks: fn(&str) -> Vec<String>,
    /// Whether a sticker with a numeric id goes out as a sticker (Messenger).
    pub stickers: bool,
    /// The attachment `payload` a media part goes out with, or `None` when it cannot.
    pub attachment_payload: fn(&Media) -> Option<Value>,
    /// Why a media part without a payload was left out ("has no file to send").
    pub no_file: &'static str,
    /// The `messaging_type` of every reply, when the platform takes one.
    pub messaging_type: Option<&'static str>,
}

// ---------------------------------------------------------------------------------------
// Inbound

/// Reads a webhook body: every event of every entry, `messaging[]` and `standby[]` (the
/// latter while another app holds the thread). `changes[]` (comments, mentions in posts)
/// are not direct messages and are left alone.
pub fn parse_value(platform: &Platform, value: &Value) -> Result<Vec<InboundEvent>, ParseError> {
    let root = Node::root(value);
    let object = root.req_str("object")?;
    if object != platform.object {
        return Err(root.invalid_field(
            "object",
            format!("expected {:?}, got {object:?}", platform.object),
        ));
    }
    let mut events = Vec::new();
    for entry in root.req_list("entry")? {
        let owner = entry.opt_id("id")?;
        for key in ["messaging", "standby"] {
            for event in entry.list(key)? {
                parse_event(platform, &event, owner.as_deref(), &mut events)?;
            }
        }
    }
    Ok(events)
}

/// The contact's identifier: their platform-scoped id.
pub fn contact(platform: &Platform, user: &str) -> Identifier {
    Identifier {
        kind: platform.identifier_type.into(),
        value: user.to_owned(),
    }
}

/// The contact (sender's scoped id) and the thread (`"{page or account}:{user}"`) of an
/// event from a contact to the Page or account.
fn parties(event: &Node, owner: Option<&str>) -> Result<(String, Option<String>), ParseError> {
    let user = event.req_object("sender")?.req_id("id")?;
    let owner = match event.get_object("recipient")? {
        Some(recipient) => recipient.opt_id("id")?,
        None => None,
    }
    .or_else(|| owner.map(str::to_owned));
    let thread = owner.map(|owner| format!("{owner}:{user}"));
    Ok((user, thread))
}

fn message(
    platform: &Platform,
    event: &Node,
    mid: String,
    thread: Option<String>,
    user: &str,
    reply_to: Option<String>,
    parts: Vec<Part>,
) -> Result<InboundEvent, ParseError> {
    Ok(InboundEvent::Message(InboundMessage {
        conversation_hint: None,
        platform_message_id: mid,
        thread_id: thread,
        from: InboundContact {
            identifier: contact(platform, user),
            display_name: None,
            email: None,
        },
        reply_to,
        parts,
        sent_at: event.opt_unix_millis("timestamp")?,
        raw: event.value.clone(),
    }))
}

fn parse_event(
    platform: &Platform,
    event: &Node,
    owner: Option<&str>,
    events: &mut Vec<InboundEvent>,
) -> Result<(), ParseError> {
    if let Some(message) = event.get_object("message")? {
        // A copy of what the Page or account sent (by us, the inbox or another app).
        if message.flag("is_echo") {
            return Ok(());
        }
        let mid = message.req_str("mid")?;
        if message.flag("is_deleted") {
            events.push(InboundEvent::Retract {
                platform_message_id: mid.to_owned(),
            });
            return Ok(());
        }
        let (user, thread) = parties(event, owner)?;
        let mut reply_to = None;
        let mut story = None;
        if let Some(quoted) = message.get_object("reply_to")? {
            reply_to = quoted
                .opt_str("mid")?
                .filter(|m| !m.trim().is_empty())
                .map(str::to_owned);
            if platform.story_replies {
                story = quoted.get_object("story")?;
            }
        }
        let mut parts = (platform.message_parts)(&message)?;
        // A reply to the account's story: the story (its CDN link expires) goes with the
        // text so a rep sees what the contact answered.
        if let Some(story) = story {
            if story.opt_str("url")?.is_none() && story.opt_id("id")?.is_none() {
                return Err(story.invalid_field("url", "is required"));
            }
            parts.retain(|p| !matches!(p, Part::Unsupported(u) if u.platform_type == "message"));
            parts.push(unsupported("story_reply", story.value));
        }
        let event = self::message(
            platform,
            event,
            mid.to_owned(),
            thread,
            &user,
            reply_to,
            parts,
        )?;
        events.push(event);
    } else if let Some(edit) = event.get_object("message_edit")? {
        let edited_at = event.opt_unix_millis("timestamp")?;
        // `num_edit` counts a message's edits (1 to 5); the event's time breaks ties
        // where it is missing. Only an ordering hint: a malformed one does not cost the
        // edit, it leaves the time to order it.
        let count = edit.value.get("num_edit").and_then(Value::as_i64);
        let order = (count.is_some() || edited_at.is_some()).then(|| {
            EditOrder(vec![
                count.unwrap_or_default(),
                edited_at.map_or(0, |t| t.timestamp_millis()),
            ])
        });
        events.push(InboundEvent::Edit(MessageEdit {
            platform_message_id: edit.req_str("mid")?.to_owned(),
            parts: vec![Part::Text(TextPart {
                text: edit.req_str("text")?.to_owned(),
            })],
            edited_at,
            order,
        }));
    } else if let Some(delivery) = match platform.deliveries {
        // Where the platform sends none, a `delivery` key is not read at all.
        true => event.get_object("delivery")?,
        false => None,
    } {
        let (user, _) = parties(event, owner)?;
        for mid in delivery.list("mids")? {
            let mid = mid
                .value
                .as_str()
                .filter(|m| !m.trim().is_empty())
                .ok_or_else(|| mid.invalid("must be a message id"))?;
            events.push(InboundEvent::Status(StatusUpdate {
                platform_message_id: mid.to_owned(),
                status: DeliveryStatus::Delivered,
                error: None,
            }));
        }
        // Everything sent before the watermark is delivered (`mids` may be absent).
        if let Some(up_to) = delivery.opt_unix_millis("watermark")? {
            events.push(InboundEvent::Watermark(StatusWatermark {
                contact: contact(platform, &user),
                status: DeliveryStatus::Delivered,
                up_to,
            }));
        }
    } else if let Some(read) = event.get_object("read")? {
        read_event(platform, event, &read, owner, events)?;
    } else if let Some(postback) = event.get_object("postback")? {
        // A tapped icebreaker or button: what the contact chose, as the text they saw.
        // Without a mid (older postbacks) there is no key to store it under, so it is
        // not kept.
        let Some(mid) = non_empty(postback.opt_str("mid")?) else {
            return Ok(());
        };
        let text = non_empty(postback.opt_str("title")?)
            .or(non_empty(postback.opt_str("payload")?))
            .ok_or_else(|| postback.invalid_field("title", "is required"))?;
        let (user, thread) = parties(event, owner)?;
        let parts = vec![Part::Text(TextPart { text })];
        events.push(message(platform, event, mid, thread, &user, None, parts)?);
    }
    // Reactions (the model has no reactions: they stay on the platform), opt-ins,
    // referrals, handovers, policy notices…: nothing to store.
    Ok(())
}

/// A message's text, then each attachment as `attachment` reads it (`None` leaves it
/// out); a message left with nothing (`is_unsupported` ones among them) is kept whole.
pub fn message_parts(
    message: &Node,
    mut attachment: impl FnMut(&Node) -> Result<Option<Part>, ParseError>,
) -> Result<Vec<Part>, ParseError> {
    let mut parts = Vec::new();
    if let Some(text) = message.opt_str("text")?.filter(|t| !t.trim().is_empty()) {
        parts.push(Part::Text(TextPart {
            text: text.to_owned(),
        }));
    }
    for each in &message.list("attachments")? {
        parts.extend(attachment(each)?);
    }
    if parts.is_empty() {
        parts.push(unsupported("message", message.value));
    }
    Ok(parts)
}

fn read_event(
    platform: &Platform,
    event: &Node,
    read: &Node,
    owner: Option<&str>,
    events: &mut Vec<InboundEvent>,
) -> Result<(), ParseError> {
    match platform.reads {
        Reads::Watermark => {
            let (user, _) = parties(event, owner)?;
            let up_to = read
                .opt_unix_millis("watermark")?
                .ok_or_else(|| read.invalid_field("watermark", "is required"))?;
            events.push(InboundEvent::Watermark(StatusWatermark {
                contact: contact(platform, &user),
                status: DeliveryStatus::Read,
                up_to,
            }));
        }
        Reads::MidOrWatermark => {
            let mid = non_empty(read.opt_str("mid")?);
            let watermark = read.opt_unix_millis("watermark")?;
            if mid.is_none() && watermark.is_none() {
                return Err(read.invalid_field("mid", "is required"));
            }
            if let Some(mid) = mid {
                events.push(InboundEvent::Status(StatusUpdate {
                    platform_message_id: mid,
                    status: DeliveryStatus::Read,
                    error: None,
                }));
            }
            if let Some(up_to) = watermark {
                let (user, _) = parties(event, owner)?;
                events.push(InboundEvent::Watermark(StatusWatermark {
                    contact: contact(platform, &user),
                    status: DeliveryStatus::Read,
                    up_to,
                }));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Outbound

/// The `message` objects a reply becomes, in order, plus notes on parts that went out
/// differently from how the rep wrote them.
pub fn plan(platform: &Platform, parts: &[Part]) -> (Vec<Value>, Vec<String>) {
    let name = platform.name;
    let mut messages = Vec::new();
    let mut notes = Vec::new();
    let text = |messages: &mut Vec<Value>, t: &str| {
        for chunk in (platform.text_chunks)(t) {
            messages.push(json!({"text": chunk}));
        }
    };
    for (i, part) in parts.iter().enumerate() {
        let n = i + 1;
        let mut attach = |messages: &mut Vec<Value>, kind: &str, media: &MediaPart| {
            attachment(platform, messages, &mut notes, n, kind, media)
        };
        match part {
            Part::Text(t) => text(&mut messages, &t.text),
            Part::Image(m) => attach(&mut messages, "image", m),
            Part::Video(m) => attach(&mut messages, "video", m),
            Part::Audio(m) | Part::VoiceNote(m) => attach(&mut messages, "audio", m),
            Part::File(m) => attach(&mut messages, "file", m),
            Part::Sticker(m) => {
                let sticker_id = m
                    .media
                    .platform_ref
                    .as_deref()
                    .and_then(|r| r.parse::<u64>().ok())
                    .filter(|_| platform.stickers);
                match sticker_id {
                    Some(sticker_id) => messages.push(json!({"sticker_id": sticker_id})),
                    None => {
                        let why = if platform.stickers {
                            format!("is not a {name} sticker")
                        } else {
                            format!("cannot be sent on {name}")
                        };
                        notes.push(format!("part {n} (sticker) {why} and was sent as an image"));
                        attachment(platform, &mut messages, &mut notes, n, "image", m);
                    }
                }
            }
            Part::Location(l) => {
                text(&mut messages, &super::location_text(l));
                notes.push(format!(
                    "part {n} (location) cannot be sent on {name} and was sent as a map link"
                ));
            }
            Part::Contact(c) => {
                text(&mut messages, &super::contact_text(c));
                notes.push(format!(
                    "part {n} (contact) cannot be sent on {name} and was sent as text"
                ));
            }
            Part::Unsupported(u) => {
                text(&mut messages, &super::unsupported_text(u));
                notes.push(format!(
                    "part {n} ({}) has no {name} equivalent and was sent as text",
                    u.platform_type
                ));
            }
        }
    }
    (messages, notes)
}

/// A media part as an attachment with the platform's payload; its caption follows as
/// text, since attachments take none.
fn attachment(
    platform: &Platform,
    messages: &mut Vec<Value>,
    notes: &mut Vec<String>,
    n: usize,
    kind: &str,
    media: &MediaPart,
) {
    match (platform.attachment_payload)(&media.media) {
        Some(payload) => {
            messages.push(json!({"attachment": {"type": kind, "payload": payload}}));
        }
        None => notes.push(format!(
            "part {n} ({kind}) {} and was left out",
            platform.no_file
        )),
    }
    if let Some(caption) = media.caption.as_deref().filter(|c| !c.trim().is_empty()) {
        for chunk in (platform.text_chunks)(caption) {
            messages.push(json!({"text": chunk}));
        }
    }
}

/// A planned message with its envelope: to the contact's scoped id, with the platform's
/// `messaging_type` when it takes one.
pub fn envelope(platform: &Platform, user: &str, message: Value) -> Value {
    // Built key by key so the body reads as Meta documents it, whatever the map's order.
    let mut envelope = Map::new();
    envelope.insert("recipient".into(), json!({"id": user}));
    if let Some(kind) = platform.messaging_type {
        envelope.insert("messaging_type".into(), json!(kind));
    }
    envelope.insert("message".into(), message);
    Value::Object(envelope)
}

/// Sends a reply's parts to `user` through the Send API at `path`, message by message; a
/// failure (the 24-hour window's among them, which Graph answers as a permanent error with
/// its own message) says how many went out first. The receipt names the first message's id.
pub async fn send(
    platform: &Platform,
    graph: &Graph,
    path: &str,
    user: &str,
    parts: &[Part],
) -> Result<Receipt, SendError> {
    let (messages, notes) = plan(platform, parts);
    if messages.is_empty() {
        return Err(SendError::Permanent {
            reason: format!("nothing in this reply can be sent on {}", platform.name),
        });
    }
    let total = messages.len();
    let mut first_id = None;
    for (sent, planned) in messages.into_iter().enumerate() {
        let answer = graph
            .post(path, &envelope(platform, user, planned))
            .await
            .map_err(|e| super::after_partial(e, sent, total))?;
        if first_id.is_none() {
            first_id = answer
                .get("message_id")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
    }
    Ok(Receipt {
        platform_message_id: first_id,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    })
}
