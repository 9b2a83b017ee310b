//! Facebook Messenger Platform (Meta). Webhooks arrive as `entry[].messaging[]` events
//! of one Page: messages (text, attachments), edits, delivery and read watermarks;
//! replies go out through the Send API, `POST {api_base}/me/messages` with the Page token.
//!
//! Signature, handshake and Graph error handling are Meta's and live in [`super::meta`].
//! A conversation's platform thread is `"{page_id}:{psid}"`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::fetch::MediaClient;
use super::meta::{self, AppSecrets, Graph, Node, file_name, non_empty, unsupported};
use super::{
    ChannelAdapter, FetchError, FetchedMedia, HandshakeError, HandshakeReply, InboundContact,
    InboundEvent, InboundMessage, MessageEdit, Outbound, ParseError, RawRequest, Receipt,
    RetiredSecret, SendError, StatusUpdate, StatusWatermark, VerifyError,
};
use crate::model::{
    DeliveryStatus, EditOrder, Identifier, LocationPart, Media, MediaPart, Part, TextPart,
};
use crate::secret::Secret;

/// The identifier type of a Messenger contact: their page-scoped id (PSID).
pub const IDENTIFIER_TYPE: &str = "messenger_psid";

/// The longest text the Send API takes; longer replies go out in several messages.
pub const MAX_TEXT_CHARS: usize = 2000;

/// Where the Send API lives under `api_base`: `me` is the Page the token belongs to.
const SEND_PATH: &str = "me/messages";

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessengerConfig {
    /// The Page access token, sent as `Authorization: Bearer`.
    pub page_access_token: Secret,
    /// The Meta app's secret: verifies `X-Hub-Signature-256`.
    pub app_secret: Secret,
    /// The token typed into the app dashboard for the GET subscription check.
    pub verify_token: Secret,
    #[serde(default = "meta::default_api_base")]
    pub api_base: String,
}

impl MessengerConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        meta::validate_api_base(&self.api_base, &mut errors);
        errors
    }
}

pub struct MessengerAdapter {
    secrets: AppSecrets,
    verify_token: Secret,
    graph: Graph,
}

impl MessengerAdapter {
    pub fn new(config: &MessengerConfig, http: reqwest::Client, retired: &[RetiredSecret]) -> Self {
        Self {
            secrets: AppSecrets::new(&config.app_secret, retired),
            verify_token: config.verify_token.clone(),
            graph: Graph::new(http, &config.api_base, &config.page_access_token),
        }
    }
}

/// The PSID a reply goes to: the contact part of the thread (`"{page_id}:{psid}"`), else
/// the contact's identifier.
fn recipient(message: &Outbound) -> Result<String, SendError> {
    meta::recipient(message, "Messenger")
}

// ---------------------------------------------------------------------------------------
// Inbound

/// Reads a webhook body: every event of every entry, `messaging[]` and `standby[]` (the
/// latter while another app, such as the Page inbox, holds the thread).
pub fn parse_value(value: &Value) -> Result<Vec<InboundEvent>, ParseError> {
    let root = Node::root(value);
    let object = root.req_str("object")?;
    if object != "page" {
        return Err(root.invalid_field("object", format!("expected \"page\", got {object:?}")));
    }
    let mut events = Vec::new();
    for entry in root.req_list("entry")? {
        let page = entry.opt_id("id")?;
        for key in ["messaging", "standby"] {
            for event in entry.list(key)? {
                parse_event(&event, page.as_deref(), &mut events)?;
            }
        }
    }
    Ok(events)
}

/// The contact (sender PSID) and the thread of an event from a contact to the Page.
fn parties(event: &Node, page: Option<&str>) -> Result<(String, Option<String>), ParseError> {
    let psid = event.req_object("sender")?.req_id("id")?;
    let page = match event.get_object("recipient")? {
        Some(recipient) => recipient.opt_id("id")?,
        None => None,
    }
    .or_else(|| page.map(str::to_owned));
    let thread = page.map(|page| format!("{page}:{psid}"));
    Ok((psid, thread))
}

fn contact(psid: &str) -> Identifier {
    Identifier {
        kind: IDENTIFIER_TYPE.into(),
        value: psid.to_owned(),
    }
}

fn parse_event(
    event: &Node,
    page: Option<&str>,
    events: &mut Vec<InboundEvent>,
) -> Result<(), ParseError> {
    if let Some(message) = event.get_object("message")? {
        // A copy of what the Page sent (by us, the inbox or another app): not inbound.
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
        let (psid, thread) = parties(event, page)?;
        let reply_to = match message.get_object("reply_to")? {
            Some(quoted) => quoted
                .opt_str("mid")?
                .filter(|m| !m.trim().is_empty())
                .map(str::to_owned),
            None => None,
        };
        events.push(InboundEvent::Message(InboundMessage {
            conversation_hint: None,
            platform_message_id: mid.to_owned(),
            thread_id: thread,
            from: InboundContact {
                identifier: contact(&psid),
                display_name: None,
                email: None,
            },
            reply_to,
            parts: message_parts(&message)?,
            sent_at: event.opt_unix_millis("timestamp")?,
            raw: event.value.clone(),
        }));
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
    } else if let Some(delivery) = event.get_object("delivery")? {
        let (psid, _) = parties(event, page)?;
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
                contact: contact(&psid),
                status: DeliveryStatus::Delivered,
                up_to,
            }));
        }
    } else if let Some(read) = event.get_object("read")? {
        let (psid, _) = parties(event, page)?;
        let up_to = read
            .opt_unix_millis("watermark")?
            .ok_or_else(|| read.invalid_field("watermark", "is required"))?;
        events.push(InboundEvent::Watermark(StatusWatermark {
            contact: contact(&psid),
            status: DeliveryStatus::Read,
            up_to,
        }));
    } else if let Some(postback) = event.get_object("postback")? {
        // A tapped button: what the contact chose, as the text they saw. Without a mid
        // (older postbacks) there is no key to store it under, so it is not kept.
        let Some(mid) = non_empty(postback.opt_str("mid")?) else {
            return Ok(());
        };
        let text = non_empty(postback.opt_str("title")?)
            .or(non_empty(postback.opt_str("payload")?))
            .ok_or_else(|| postback.invalid_field("title", "is required"))?;
        let (psid, thread) = parties(event, page)?;
        events.push(InboundEvent::Message(InboundMessage {
            conversation_hint: None,
            platform_message_id: mid,
            thread_id: thread,
            from: InboundContact {
                identifier: contact(&psid),
                display_name: None,
                email: None,
            },
            reply_to: None,
            parts: vec![Part::Text(TextPart { text })],
            sent_at: event.opt_unix_millis("timestamp")?,
            raw: event.value.clone(),
        }));
    }
    // Reactions, opt-ins, referrals, handovers, policy notices…: nothing to store.
    Ok(())
}

fn message_parts(message: &Node) -> Result<Vec<Part>, ParseError> {
    let mut parts = Vec::new();
    if let Some(text) = message.opt_str("text")?.filter(|t| !t.trim().is_empty()) {
        parts.push(Part::Text(TextPart {
            text: text.to_owned(),
        }));
    }
    let attachments = message.list("attachments")?;
    // Until 2026-08-30 Meta sends a sticker twice: as `image` with a sticker_id and as
    // `sticker`. Keep the `sticker` one.
    let has_sticker = attachments
        .iter()
        .any(|a| a.value.get("type").and_then(Value::as_str) == Some("sticker"));
    for attachment in &attachments {
        let kind = attachment.req_str("type")?;
        let payload = attachment.get_object("payload")?;
        let sticker_id = match &payload {
            Some(p) => p.opt_id("sticker_id")?,
            None => None,
        };
        let part = match kind {
            "image" if sticker_id.is_some() && has_sticker => continue,
            "image" | "video" | "audio" | "file" | "sticker" => {
                let payload =
                    payload.ok_or_else(|| attachment.invalid_field("payload", "is required"))?;
                let url = non_empty(payload.opt_str("url")?);
                let platform_ref = sticker_id.clone().or(payload.opt_id("attachment_id")?);
                if url.is_none() && platform_ref.is_none() {
                    return Err(payload.invalid_field("url", "is required"));
                }
                let filename = match kind {
                    "file" => url.as_deref().and_then(file_name),
                    _ => None,
                };
                let media = MediaPart {
                    media: Media {
                        platform_ref,
                        url,
                        filename,
                        ..Media::default()
                    },
                    caption: None,
                };
                match kind {
                    _ if sticker_id.is_some() => Part::Sticker(media),
                    "image" => Part::Image(media),
                    "video" => Part::Video(media),
                    // Voice clips recorded in Messenger arrive as plain audio.
                    "audio" => Part::Audio(media),
                    "file" => Part::File(media),
                    _ => Part::Sticker(media),
                }
            }
            // Not in current docs, but sent by Messenger for shared pins for years.
            "location" => {
                let coordinates = payload
                    .ok_or_else(|| attachment.invalid_field("payload", "is required"))?
                    .req_object("coordinates")?;
                let coordinate = |key: &str, limit: f64| -> Result<f64, ParseError> {
                    let value = coordinates
                        .opt_f64(key)?
                        .ok_or_else(|| coordinates.invalid_field(key, "is required"))?;
                    if value.abs() > limit {
                        return Err(coordinates.invalid_field(key, "is out of range"));
                    }
                    Ok(value)
                };
                Part::Location(LocationPart {
                    latitude: coordinate("lat", 90.0)?,
                    longitude: coordinate("long", 180.0)?,
                    name: non_empty(attachment.opt_str("title")?),
                    address: None,
                })
            }
            // A shared link: the link is what the contact sent.
            "fallback" => {
                let url = match &payload {
                    Some(p) => non_empty(p.opt_str("url")?),
                    None => None,
                }
                .or(non_empty(attachment.opt_str("url")?));
                let title = match &payload {
                    Some(p) => non_empty(p.opt_str("title")?),
                    None => None,
                }
                .or(non_empty(attachment.opt_str("title")?));
                match url {
                    Some(url) => Part::Text(TextPart {
                        text: match title {
                            Some(title) => format!("{title}\n{url}"),
                            None => url,
                        },
                    }),
                    None => unsupported(kind, attachment.value),
                }
            }
            // reel, ig_reel, post, ig_post, appointment_booking and anything newer.
            other => unsupported(other, attachment.value),
        };
        parts.push(part);
    }
    if parts.is_empty() {
        parts.push(unsupported("message", message.value));
    }
    Ok(parts)
}

// ---------------------------------------------------------------------------------------
// Outbound

/// The `message` objects a reply becomes, in order, plus notes on parts that went out
/// differently from how the rep wrote them.
pub fn plan(parts: &[Part]) -> (Vec<Value>, Vec<String>) {
    let mut messages = Vec::new();
    let mut notes = Vec::new();
    let text = |messages: &mut Vec<Value>, t: &str| {
        for chunk in meta::chunks(t, MAX_TEXT_CHARS) {
            messages.push(json!({"text": chunk}));
        }
    };
    for (i, part) in parts.iter().enumerate() {
        let n = i + 1;
        match part {
            Part::Text(t) => text(&mut messages, &t.text),
            Part::Image(m) => attachment(&mut messages, &mut notes, n, "image", m),
            Part::Video(m) => attachment(&mut messages, &mut notes, n, "video", m),
            Part::Audio(m) | Part::VoiceNote(m) => {
                attachment(&mut messages, &mut notes, n, "audio", m)
            }
            Part::File(m) => attachment(&mut messages, &mut notes, n, "file", m),
            Part::Sticker(m) => {
                match m
                    .media
                    .platform_ref
                    .as_deref()
                    .and_then(|r| r.parse::<u64>().ok())
                {
                    Some(sticker_id) => messages.push(json!({"sticker_id": sticker_id})),
                    None => {
                        notes.push(format!(
                            "part {n} (sticker) is not a Messenger sticker and was sent as an image"
                        ));
                        attachment(&mut messages, &mut notes, n, "image", m);
                    }
                }
            }
            Part::Location(l) => {
                text(&mut messages, &meta::location_text(l));
                notes.push(format!(
                    "part {n} (location) cannot be sent on Messenger and was sent as a map link"
                ));
            }
            Part::Contact(c) => {
                text(&mut messages, &meta::contact_text(c));
                notes.push(format!(
                    "part {n} (contact) cannot be sent on Messenger and was sent as text"
                ));
            }
            Part::Unsupported(u) => {
                text(&mut messages, &meta::unsupported_text(u));
                notes.push(format!(
                    "part {n} ({}) has no Messenger equivalent and was sent as text",
                    u.platform_type
                ));
            }
        }
    }
    (messages, notes)
}

/// A media part as a Messenger attachment: by URL (reusable, so Meta caches it) or by an
/// attachment id; its caption follows as text, since attachments take none.
fn attachment(
    messages: &mut Vec<Value>,
    notes: &mut Vec<String>,
    n: usize,
    kind: &str,
    media: &MediaPart,
) {
    let payload = match (&media.media.url, &media.media.platform_ref) {
        (Some(url), _) => json!({"url": url, "is_reusable": true}),
        (None, Some(id)) => json!({"attachment_id": id}),
        (None, None) => {
            notes.push(format!(
                "part {n} ({kind}) has no file to send and was left out"
            ));
            json!(null)
        }
    };
    if !payload.is_null() {
        messages.push(json!({"attachment": {"type": kind, "payload": payload}}));
    }
    if let Some(caption) = media.caption.as_deref().filter(|c| !c.trim().is_empty()) {
        for chunk in meta::chunks(caption, MAX_TEXT_CHARS) {
            messages.push(json!({"text": chunk}));
        }
    }
}

/// A planned message with its envelope: a `RESPONSE` to the contact's PSID.
pub fn envelope(psid: &str, message: Value) -> Value {
    json!({
        "recipient": {"id": psid},
        "messaging_type": "RESPONSE",
        "message": message,
    })
}

#[async_trait]
impl ChannelAdapter for MessengerAdapter {
    fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError> {
        self.secrets.verify(request, now)
    }

    fn parse(&self, request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError> {
        parse_value(&meta::json_body(request)?)
    }

    fn handshake(&self, request: &RawRequest) -> Result<HandshakeReply, HandshakeError> {
        meta::handshake(request, &self.verify_token)
    }

    /// Messenger documents no quoted replies for Pages: `reply_to` is not sent.
    async fn send(&self, message: &Outbound) -> Result<Receipt, SendError> {
        let psid = recipient(message)?;
        let (messages, notes) = plan(&message.parts);
        if messages.is_empty() {
            return Err(SendError::Permanent {
                reason: "nothing in this reply can be sent on Messenger".into(),
            });
        }
        let total = messages.len();
        let mut first_id = None;
        for (sent, planned) in messages.into_iter().enumerate() {
            let answer = self
                .graph
                .post(SEND_PATH, &envelope(&psid, planned))
                .await
                .map_err(|e| meta::after_partial(e, sent, total))?;
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

    /// Attachment URLs are Meta CDN links; the Page token goes along only to Meta hosts.
    async fn fetch_media(
        &self,
        media: &Media,
        web: &MediaClient,
    ) -> Result<FetchedMedia, FetchError> {
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

    const APP_SECRET: &str = "fb-app-secret";
    const PAGE: &str = "104893211234567";
    const PSID: &str = "7210934512867345";

    fn config() -> MessengerConfig {
        MessengerConfig {
            page_access_token: Secret::new("EAAB-page-token"),
            app_secret: Secret::new(APP_SECRET),
            verify_token: Secret::new("verify-me"),
            api_base: "http://127.0.0.1:9/v26.0".into(),
        }
    }

    fn adapter(retired: &[RetiredSecret]) -> MessengerAdapter {
        MessengerAdapter::new(&config(), reqwest::Client::new(), retired)
    }

    fn request(body: &str, signature: Option<String>, content_type: &str) -> RawRequest {
        meta::testing::request("fb", body, signature, content_type)
    }

    fn signed(body: &str) -> RawRequest {
        meta::testing::signed("fb", APP_SECRET, body)
    }

    fn parse(body: &str) -> Vec<InboundEvent> {
        let adapter = adapter(&[]);
        let request = signed(body);
        adapter.verify(&request, Utc::now()).unwrap();
        adapter.parse(&request).unwrap()
    }

    fn messages(body: &str) -> Vec<InboundMessage> {
        parse(body)
            .into_iter()
            .map(|e| match e {
                InboundEvent::Message(m) => m,
                other => panic!("not a message: {other:?}"),
            })
            .collect()
    }

    fn url_of(part: &Part) -> Option<&str> {
        match part {
            Part::Image(m)
            | Part::Video(m)
            | Part::Audio(m)
            | Part::VoiceNote(m)
            | Part::Sticker(m)
            | Part::File(m) => m.media.url.as_deref(),
            _ => None,
        }
    }

    #[test]
    fn text_with_a_quote_names_sender_thread_and_quoted_message() {
        let [m] = messages(fixture!("messenger/text_reply.json"))
            .try_into()
            .unwrap();
        assert_eq!(m.platform_message_id, "m_vubkW1zWbFkR8xGxQ2");
        assert_eq!(
            m.thread_id.as_deref(),
            Some("104893211234567:7210934512867345")
        );
        assert_eq!(
            m.from.identifier,
            Identifier {
                kind: "messenger_psid".into(),
                value: PSID.into()
            }
        );
        assert_eq!(
            m.from.display_name, None,
            "Messenger webhooks carry no names"
        );
        assert_eq!(m.reply_to.as_deref(), Some("m_l-HzOUT1"));
        assert_eq!(
            m.parts,
            vec![Part::Text(TextPart {
                text: "Size M please \u{2014} \u{1f600}".into()
            })]
        );
        assert_eq!(m.sent_at.unwrap().timestamp_millis(), 1783002420000);
        assert_eq!(m.raw["sender"]["id"], PSID);
    }

    #[test]
    fn a_quick_reply_is_the_text_on_its_button() {
        let [m] = messages(fixture!("messenger/quick_reply.json"))
            .try_into()
            .unwrap();
        assert_eq!(m.parts[0].text(), Some("Track my order"));
        assert_eq!(m.raw["message"]["quick_reply"]["payload"], "TRACK_ORDER");
    }

    #[test]
    fn attachments_become_media_parts_with_their_urls() {
        let ms = messages(fixture!("messenger/attachments.json"));
        assert_eq!(ms.len(), 4);
        assert_eq!(ms[0].parts.len(), 2, "an album is several image parts");
        assert!(ms[0].parts.iter().all(|p| matches!(p, Part::Image(_))));
        assert_eq!(
            url_of(&ms[0].parts[1]),
            Some("https://scontent.xx.fbcdn.net/v/t1.15752-9/photo2.jpg?_nc_cat=1&oh=def")
        );
        assert!(matches!(ms[1].parts[0], Part::Video(_)));
        assert!(matches!(ms[2].parts[0], Part::Audio(_)));
        let Part::File(file) = &ms[3].parts[0] else {
            panic!("{:?}", ms[3].parts)
        };
        assert_eq!(file.media.filename.as_deref(), Some("invoice-2026-03.pdf"));
    }

    #[test]
    fn a_sticker_sent_twice_in_the_transition_is_one_sticker_part() {
        let ms = messages(fixture!("messenger/sticker.json"));
        for m in &ms {
            let [Part::Sticker(sticker)] = m.parts.as_slice() else {
                panic!("{}: {:?}", m.platform_message_id, m.parts)
            };
            assert_eq!(
                sticker.media.platform_ref.as_deref(),
                Some("369239263222822")
            );
            assert!(
                sticker
                    .media
                    .url
                    .as_deref()
                    .unwrap()
                    .ends_with("thumbs.png")
            );
        }
        assert_eq!(ms.len(), 2);
    }

    #[test]
    fn locations_links_and_unknown_attachments() {
        let ms = messages(fixture!("messenger/location_and_links.json"));
        assert_eq!(
            ms[0].parts,
            vec![Part::Location(LocationPart {
                latitude: 52.520008,
                longitude: 13.404954,
                name: Some("Pin's Location".into()),
                address: None,
            })]
        );
        assert_eq!(
            ms[1].parts,
            vec![
                Part::Text(TextPart {
                    text: "look at this".into()
                }),
                Part::Text(TextPart {
                    text: "Linen shirt\nhttps://shop.example/p/42".into()
                }),
            ]
        );
        assert!(
            matches!(&ms[2].parts[..], [Part::Unsupported(u)] if u.platform_type == "fallback")
        );
        let [Part::Unsupported(reel)] = &ms[3].parts[..] else {
            panic!("{:?}", ms[3].parts)
        };
        assert_eq!(reel.platform_type, "reel");
        assert_eq!(
            reel.raw.as_ref().unwrap()["payload"]["reel_video_id"],
            "1090"
        );
    }

    #[test]
    fn echoes_reactions_optins_and_referrals_carry_no_event() {
        assert!(parse(fixture!("messenger/echo_and_others.json")).is_empty());
    }

    #[test]
    fn an_edit_replaces_the_text_of_the_message() {
        assert_eq!(
            parse(fixture!("messenger/edit.json")),
            vec![InboundEvent::Edit(MessageEdit {
                platform_message_id: "m_vubkW1zWbFkR8xGxQ2".into(),
                parts: vec![Part::Text(TextPart {
                    text: "Size L please".into()
                })],
                edited_at: DateTime::from_timestamp_millis(1783002436000),
                order: Some(EditOrder(vec![1, 1783002436000])),
            })]
        );
    }

    #[test]
    fn an_edit_is_ordered_by_its_count_then_its_time_and_a_malformed_count_is_ignored() {
        let order = |body: &str| match parse(body).as_slice() {
            [InboundEvent::Edit(edit)] => edit.order.clone(),
            other => panic!("expected one edit, got {other:?}"),
        };
        let edit = fixture!("messenger/edit.json");
        assert_eq!(
            order(&edit.replace(r#""num_edit": 1"#, r#""num_edit": 3"#)),
            Some(EditOrder(vec![3, 1783002436000]))
        );
        assert_eq!(
            order(&edit.replace(r#""num_edit": 1"#, r#""num_edit": "x""#)),
            Some(EditOrder(vec![0, 1783002436000]))
        );
    }

    #[test]
    fn deliveries_report_each_mid_and_a_watermark_and_reads_a_watermark() {
        let mark = |status, ms| {
            InboundEvent::Watermark(StatusWatermark {
                contact: contact(PSID),
                status,
                up_to: DateTime::from_timestamp_millis(ms).unwrap(),
            })
        };
        let delivered = |mid: &str| {
            InboundEvent::Status(StatusUpdate {
                platform_message_id: mid.into(),
                status: DeliveryStatus::Delivered,
                error: None,
            })
        };
        assert_eq!(
            parse(fixture!("messenger/delivery_read.json")),
            vec![
                delivered("m_OUT1"),
                delivered("m_OUT2"),
                mark(DeliveryStatus::Delivered, 1783002436500),
                mark(DeliveryStatus::Delivered, 1783002437500),
                mark(DeliveryStatus::Read, 1783002438500),
            ]
        );
    }

    #[test]
    fn a_postback_with_a_mid_is_the_title_the_contact_tapped() {
        let ms = messages(fixture!("messenger/postback.json"));
        assert_eq!(
            ms.len(),
            1,
            "a postback without a mid has no key and is not kept"
        );
        assert_eq!(ms[0].platform_message_id, "m_PB1");
        assert_eq!(ms[0].parts[0].text(), Some("Talk to a person"));
    }

    #[test]
    fn a_batch_yields_every_event_of_every_entry_including_standby() {
        let events = parse(fixture!("messenger/batch.json"));
        let summary: Vec<String> = events
            .iter()
            .map(|e| match e {
                InboundEvent::Message(m) => {
                    format!("{}@{}", m.platform_message_id, m.from.identifier.value)
                }
                InboundEvent::Watermark(w) => format!("{:?}@{}", w.status, w.contact.value),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            summary,
            [
                "m_BATCH_A1@7210934512867345",
                "m_BATCH_B1@6100000000000001",
                "Read@7210934512867345",
                "m_STANDBY1@7210934512867345",
            ]
        );
    }

    #[test]
    fn signatures_are_checked_on_the_raw_bytes_with_retired_secrets_for_a_while() {
        meta::testing::assert_signatures_checked_with_retired_secrets(
            adapter,
            "fb",
            APP_SECRET,
            fixture!("messenger/text_reply.json"),
        );
    }

    #[test]
    fn the_handshake_answers_with_the_challenge() {
        meta::testing::assert_handshake_answers_the_challenge(&adapter(&[]), "77");
    }

    fn field_of(body: &str) -> String {
        match adapter(&[]).parse(&signed(body)) {
            Err(ParseError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid for {body}, got {other:?}"),
        }
    }

    #[test]
    fn malformed_payloads_name_the_field_at_fault() {
        let one = |event: Value| {
            json!({"object": "page", "entry": [{"id": PAGE, "messaging": [event]}]}).to_string()
        };
        let base = |extra: Value| {
            let mut e = json!({"sender": {"id": PSID}, "recipient": {"id": PAGE},
                               "timestamp": 1783002420000u64});
            for (k, v) in extra.as_object().unwrap() {
                e[k] = v.clone();
            }
            one(e)
        };
        let at = "entry[0].messaging[0]";
        let cases = [
            (r#"{"entry":[]}"#.to_owned(), "object".to_owned()),
            (
                r#"{"object":"instagram","entry":[]}"#.to_owned(),
                "object".to_owned(),
            ),
            (r#"{"object":"page"}"#.to_owned(), "entry".to_owned()),
            (
                r#"{"object":"page","entry":[{"messaging":{}}]}"#.to_owned(),
                "entry[0].messaging".to_owned(),
            ),
            (
                base(json!({"message": {"text": "no mid"}})),
                format!("{at}.message.mid"),
            ),
            (
                one(json!({"recipient": {"id": PAGE}, "message": {"mid": "m_1", "text": "x"}})),
                format!("{at}.sender"),
            ),
            (
                one(json!({"sender": {}, "message": {"mid": "m_1", "text": "x"}})),
                format!("{at}.sender.id"),
            ),
            (
                base(json!({"message": {"mid": "m_1", "text": "x"}, "timestamp": "soon"})),
                format!("{at}.timestamp"),
            ),
            (
                base(json!({"message": {"mid": "m_1", "attachments": {}}})),
                format!("{at}.message.attachments"),
            ),
            (
                base(json!({"message": {"mid": "m_1", "attachments": [{"payload": {}}]}})),
                format!("{at}.message.attachments[0].type"),
            ),
            (
                base(
                    json!({"message": {"mid": "m_1", "attachments": [{"type": "image", "payload": {}}]}}),
                ),
                format!("{at}.message.attachments[0].payload.url"),
            ),
            (
                base(json!({"message": {"mid": "m_1", "attachments": [{"type": "image"}]}})),
                format!("{at}.message.attachments[0].payload"),
            ),
            (
                base(
                    json!({"message": {"mid": "m_1", "attachments": [{"type": "location",
                    "payload": {"coordinates": {"lat": 95, "long": 0}}}]}}),
                ),
                format!("{at}.message.attachments[0].payload.coordinates.lat"),
            ),
            (
                base(json!({"message": {"mid": "m_1", "reply_to": {"mid": 5}}})),
                format!("{at}.message.reply_to.mid"),
            ),
            (
                base(json!({"message_edit": {"mid": "m_1"}})),
                format!("{at}.message_edit.text"),
            ),
            (
                base(json!({"delivery": {"mids": [5]}})),
                format!("{at}.delivery.mids[0]"),
            ),
            (base(json!({"read": {}})), format!("{at}.read.watermark")),
            (
                base(json!({"read": {"watermark": "later"}})),
                format!("{at}.read.watermark"),
            ),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(&body), field, "{body}");
        }
    }

    #[test]
    fn wrong_content_type_and_broken_json_are_refused() {
        let adapter = adapter(&[]);
        let form = request(fixture!("messenger/text_reply.json"), None, "text/plain");
        assert!(matches!(
            adapter.parse(&form),
            Err(ParseError::UnsupportedMediaType(t)) if t == "text/plain"
        ));
        assert!(matches!(
            adapter.parse(&signed("[1,")),
            Err(ParseError::Malformed(_))
        ));
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
    fn media_go_as_reusable_url_attachments_with_captions_after_them() {
        let mut image = linked("https://cdn.example/label.png");
        image.caption = Some("Your label".into());
        let by_id = MediaPart {
            media: Media {
                platform_ref: Some("1857777774821032".into()),
                ..Media::default()
            },
            caption: None,
        };
        let (messages, notes) = plan(&[
            text("Here you go"),
            Part::Image(image),
            Part::Video(linked("https://cdn.example/v.mp4")),
            Part::VoiceNote(linked("https://cdn.example/v.m4a")),
            Part::File(by_id),
        ]);
        assert!(notes.is_empty());
        assert_eq!(
            messages,
            vec![
                json!({"text": "Here you go"}),
                json!({"attachment": {"type": "image", "payload": {"url": "https://cdn.example/label.png", "is_reusable": true}}}),
                json!({"text": "Your label"}),
                json!({"attachment": {"type": "video", "payload": {"url": "https://cdn.example/v.mp4", "is_reusable": true}}}),
                json!({"attachment": {"type": "audio", "payload": {"url": "https://cdn.example/v.m4a", "is_reusable": true}}}),
                json!({"attachment": {"type": "file", "payload": {"attachment_id": "1857777774821032"}}}),
            ]
        );
    }

    #[test]
    fn parts_messenger_cannot_carry_go_as_text_or_images_with_notes() {
        let messenger_sticker = MediaPart {
            media: Media {
                platform_ref: Some("369239263222822".into()),
                url: Some("https://scontent.xx.fbcdn.net/thumbs.png".into()),
                ..Media::default()
            },
            caption: None,
        };
        let (messages, notes) = plan(&[
            Part::Sticker(messenger_sticker),
            Part::Sticker(linked("https://cdn.example/smile.webp")),
            Part::Location(LocationPart {
                latitude: 52.52,
                longitude: 13.405,
                name: Some("Shop".into()),
                address: Some("Alexanderplatz 1".into()),
            }),
            Part::Contact(crate::model::ContactPart {
                name: Some("Bo".into()),
                phones: vec!["+46701234567".into()],
                emails: vec![],
            }),
        ]);
        assert_eq!(
            messages,
            vec![
                json!({"sticker_id": 369239263222822u64}),
                json!({"attachment": {"type": "image", "payload": {"url": "https://cdn.example/smile.webp", "is_reusable": true}}}),
                json!({"text": "Shop\nAlexanderplatz 1\nhttps://www.google.com/maps/search/?api=1&query=52.52,13.405"}),
                json!({"text": "Bo\n+46701234567"}),
            ]
        );
        assert_eq!(
            notes,
            [
                "part 2 (sticker) is not a Messenger sticker and was sent as an image",
                "part 3 (location) cannot be sent on Messenger and was sent as a map link",
                "part 4 (contact) cannot be sent on Messenger and was sent as text",
            ]
        );
    }

    #[test]
    fn long_text_goes_out_in_pieces_messenger_accepts() {
        let (messages, _) = plan(&[text(&"word ".repeat(1000))]);
        assert_eq!(messages.len(), 3);
        assert!(
            messages
                .iter()
                .all(|m| m["text"].as_str().unwrap().chars().count() <= MAX_TEXT_CHARS)
        );
    }

    #[test]
    fn replies_go_to_the_psid_of_the_thread_as_a_response() {
        let out = |thread: Option<&str>| Outbound {
            message_id: crate::model::MessageId::new(),
            conversation_id: crate::model::ConversationId::new(),
            platform_thread_id: thread.map(str::to_owned),
            to: contact("999"),
            reply_to: Some("m_quoted".into()),
            parts: vec![text("hi")],
        };
        assert_eq!(
            recipient(&out(Some("104893211234567:7210934512867345"))).unwrap(),
            PSID
        );
        assert_eq!(recipient(&out(None)).unwrap(), "999");
        assert!(matches!(
            recipient(&out(Some("104893211234567:"))),
            Err(SendError::Permanent { .. })
        ));
        assert_eq!(
            envelope(PSID, json!({"text": "hi"})),
            json!({"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": "hi"}})
        );
    }

    #[test]
    fn config_has_a_graph_default_and_refuses_unknown_keys() {
        let from_toml = |text: &str| -> Result<MessengerConfig, String> {
            toml::from_str(text).map_err(|e| e.to_string())
        };
        let base = "page_access_token = \"t\"\napp_secret = \"s\"\nverify_token = \"v\"\n";
        let config = from_toml(base).unwrap();
        assert_eq!(config.api_base, meta::DEFAULT_API_BASE);
        assert!(config.validate().is_empty());
        let bad = from_toml(&format!("{base}api_base = \"graph\"\n")).unwrap();
        assert_eq!(bad.validate()[0].0, "api_base");
        assert!(from_toml(&format!("{base}access_token = \"x\"\n")).is_err());
    }

    fn webhook_like() -> impl Strategy<Value = Value> {
        let keys = prop::sample::select(vec![
            "object",
            "entry",
            "id",
            "messaging",
            "standby",
            "sender",
            "recipient",
            "timestamp",
            "message",
            "mid",
            "text",
            "is_echo",
            "is_deleted",
            "reply_to",
            "attachments",
            "type",
            "payload",
            "url",
            "sticker_id",
            "coordinates",
            "lat",
            "long",
            "title",
            "message_edit",
            "delivery",
            "mids",
            "watermark",
            "read",
            "postback",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            prop::sample::select(vec![
                "page",
                "image",
                "video",
                "audio",
                "file",
                "sticker",
                "location",
                "fallback",
                "reel",
                "",
                "m_1",
                "https://x.example/a.png",
                "1783002420000",
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
    static SHARED: std::sync::LazyLock<MessengerAdapter> =
        std::sync::LazyLock::new(|| adapter(&[]));

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_parser(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let mut headers = HeaderMap::new();
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            let request = RawRequest::post("https://bridge.example/hooks/fb", headers, body);
            let _ = SHARED.parse(&request);
        }

        #[test]
        fn arbitrary_json_shapes_never_panic_the_parser(value in webhook_like()) {
            let _ = parse_value(&value);
            let wrapped = json!({"object": "page", "entry": [{"id": PAGE,
                "messaging": [value.clone(), {"sender": {"id": PSID}, "recipient": {"id": PAGE},
                    "message": value.clone(), "delivery": value.clone(), "read": value}]}]});
            let _ = parse_value(&wrapped);
        }
    }
}
