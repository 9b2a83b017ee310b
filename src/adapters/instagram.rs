//! Instagram Direct through the Meta Graph API (Instagram messaging). Webhooks arrive as
//! `entry[].messaging[]` events of one professional account (`object: "instagram"`):
//! messages (text, media, shares, story mentions and replies, reels), edits, deletions and
//! read receipts; replies go out through `POST {api_base}/{account_id}/messages`.
//!
//! Signature, handshake and Graph error handling are Meta's and live in [`super::meta`].
//! A conversation's platform thread is `"{account_id}:{igsid}"`.

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
use crate::model::{DeliveryStatus, EditOrder, Identifier, Media, MediaPart, Part, TextPart};
use crate::secret::Secret;

/// The identifier type of an Instagram contact: their Instagram-scoped id (IGSID).
pub const IDENTIFIER_TYPE: &str = "instagram_igsid";

/// The most UTF-8 bytes one Instagram text message takes; longer replies go out in
/// several messages.
pub const MAX_TEXT_BYTES: usize = 1000;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstagramConfig {
    /// The access token of the Instagram professional account (or its Page), sent as
    /// `Authorization: Bearer`.
    pub access_token: Secret,
    /// The Meta app's secret: verifies `X-Hub-Signature-256`.
    pub app_secret: Secret,
    /// The token typed into the app dashboard for the GET subscription check.
    pub verify_token: Secret,
    /// The Instagram professional account id replies are sent from.
    #[serde(deserialize_with = "meta::id_string")]
    pub account_id: String,
    #[serde(default = "meta::default_api_base")]
    pub api_base: String,
}

impl InstagramConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        meta::validate_api_base(&self.api_base, &mut errors);
        if !meta::is_path_safe_id(&self.account_id) {
            errors.push((
                "account_id".into(),
                "must be the Instagram account id (digits)".into(),
            ));
        }
        errors
    }
}

pub struct InstagramAdapter {
    secrets: AppSecrets,
    verify_token: Secret,
    graph: Graph,
    send_path: String,
}

impl InstagramAdapter {
    pub fn new(config: &InstagramConfig, http: reqwest::Client, retired: &[RetiredSecret]) -> Self {
        Self {
            secrets: AppSecrets::new(&config.app_secret, retired),
            verify_token: config.verify_token.clone(),
            graph: Graph::new(http, &config.api_base, &config.access_token),
            send_path: format!("{}/messages", config.account_id),
        }
    }
}

/// The IGSID a reply goes to: the contact part of the thread (`"{account_id}:{igsid}"`),
/// else the contact's identifier.
fn recipient(message: &Outbound) -> Result<String, SendError> {
    meta::recipient(message, "Instagram")
}

// ---------------------------------------------------------------------------------------
// Inbound

/// Reads a webhook body: every event of every entry, `messaging[]` and `standby[]` (the
/// latter while another app holds the thread). `changes[]` (comments, mentions in posts)
/// are not direct messages and are left alone.
pub fn parse_value(value: &Value) -> Result<Vec<InboundEvent>, ParseError> {
    let root = Node::root(value);
    let object = root.req_str("object")?;
    if object != "instagram" {
        return Err(root.invalid_field("object", format!("expected \"instagram\", got {object:?}")));
    }
    let mut events = Vec::new();
    for entry in root.req_list("entry")? {
        let account = entry.opt_id("id")?;
        for key in ["messaging", "standby"] {
            for event in entry.list(key)? {
                parse_event(&event, account.as_deref(), &mut events)?;
            }
        }
    }
    Ok(events)
}

/// The contact (sender IGSID) and the thread of an event from a contact to the account.
fn parties(event: &Node, account: Option<&str>) -> Result<(String, Option<String>), ParseError> {
    let igsid = event.req_object("sender")?.req_id("id")?;
    let account = match event.get_object("recipient")? {
        Some(recipient) => recipient.opt_id("id")?,
        None => None,
    }
    .or_else(|| account.map(str::to_owned));
    let thread = account.map(|account| format!("{account}:{igsid}"));
    Ok((igsid, thread))
}

fn contact(igsid: &str) -> Identifier {
    Identifier {
        kind: IDENTIFIER_TYPE.into(),
        value: igsid.to_owned(),
    }
}

fn from(igsid: &str) -> InboundContact {
    InboundContact {
        identifier: contact(igsid),
        display_name: None,
        email: None,
    }
}

fn parse_event(
    event: &Node,
    account: Option<&str>,
    events: &mut Vec<InboundEvent>,
) -> Result<(), ParseError> {
    if let Some(message) = event.get_object("message")? {
        // A copy of what the account sent (by us, the Instagram app or another tool).
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
        let (igsid, thread) = parties(event, account)?;
        let mut reply_to = None;
        let mut story = None;
        if let Some(quoted) = message.get_object("reply_to")? {
            reply_to = quoted
                .opt_str("mid")?
                .filter(|m| !m.trim().is_empty())
                .map(str::to_owned);
            story = quoted.get_object("story")?;
        }
        let mut parts = message_parts(&message)?;
        // A reply to the account's story: the story (its CDN link expires) goes with the
        // text so a rep sees what the contact answered.
        if let Some(story) = story {
            if story.opt_str("url")?.is_none() && story.opt_id("id")?.is_none() {
                return Err(story.invalid_field("url", "is required"));
            }
            parts.retain(|p| !matches!(p, Part::Unsupported(u) if u.platform_type == "message"));
            parts.push(unsupported("story_reply", story.value));
        }
        events.push(InboundEvent::Message(InboundMessage {
            conversation_hint: None,
            platform_message_id: mid.to_owned(),
            thread_id: thread,
            from: from(&igsid),
            reply_to,
            parts,
            sent_at: event.opt_unix_millis("timestamp")?,
            raw: event.value.clone(),
        }));
    } else if let Some(edit) = event.get_object("message_edit")? {
        let edited_at = event.opt_unix_millis("timestamp")?;
        // `num_edit` counts a message's edits; the event's time breaks ties where it is
        // missing. Only an ordering hint: a malformed one leaves the time to order it.
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
    } else if let Some(read) = event.get_object("read")? {
        // Instagram names the message that was seen; a watermark (Messenger's form) is
        // taken as well, should one come.
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
            let (igsid, _) = parties(event, account)?;
            events.push(InboundEvent::Watermark(StatusWatermark {
                contact: contact(&igsid),
                status: DeliveryStatus::Read,
                up_to,
            }));
        }
    } else if let Some(postback) = event.get_object("postback")? {
        // A tapped icebreaker or button: what the contact chose, as the text they saw.
        // Without a mid there is no key to store it under, so it is not kept.
        let Some(mid) = non_empty(postback.opt_str("mid")?) else {
            return Ok(());
        };
        let text = non_empty(postback.opt_str("title")?)
            .or(non_empty(postback.opt_str("payload")?))
            .ok_or_else(|| postback.invalid_field("title", "is required"))?;
        let (igsid, thread) = parties(event, account)?;
        events.push(InboundEvent::Message(InboundMessage {
            conversation_hint: None,
            platform_message_id: mid,
            thread_id: thread,
            from: from(&igsid),
            reply_to: None,
            parts: vec![Part::Text(TextPart { text })],
            sent_at: event.opt_unix_millis("timestamp")?,
            raw: event.value.clone(),
        }));
    }
    // Reactions (the model has no reactions: they stay in Instagram), referrals, opt-ins,
    // handovers: nothing to store.
    Ok(())
}

fn message_parts(message: &Node) -> Result<Vec<Part>, ParseError> {
    let mut parts = Vec::new();
    if let Some(text) = message.opt_str("text")?.filter(|t| !t.trim().is_empty()) {
        parts.push(Part::Text(TextPart {
            text: text.to_owned(),
        }));
    }
    for attachment in &message.list("attachments")? {
        let kind = attachment.req_str("type")?;
        let payload = attachment.get_object("payload")?;
        let part = match kind {
            "image" | "video" | "audio" | "file" => {
                let payload =
                    payload.ok_or_else(|| attachment.invalid_field("payload", "is required"))?;
                let url = non_empty(payload.opt_str("url")?)
                    .ok_or_else(|| payload.invalid_field("url", "is required"))?;
                let filename = match kind {
                    "file" => file_name(&url),
                    _ => None,
                };
                let media = MediaPart {
                    media: Media {
                        url: Some(url),
                        filename,
                        ..Media::default()
                    },
                    caption: None,
                };
                match kind {
                    "image" => Part::Image(media),
                    "video" => Part::Video(media),
                    // Voice clips recorded in Instagram arrive as plain audio.
                    "audio" => Part::Audio(media),
                    _ => Part::File(media),
                }
            }
            // A shared post or link: the link is what the contact sent.
            "share" => match &payload {
                Some(p) => match non_empty(p.opt_str("url")?) {
                    Some(url) => Part::Text(TextPart { text: url }),
                    None => unsupported(kind, attachment.value),
                },
                None => unsupported(kind, attachment.value),
            },
            // story_mention, reel, ig_reel, ig_post, like_heart and anything newer: kept
            // whole (with its CDN link) for the rep, not fetched.
            other => unsupported(other, attachment.value),
        };
        parts.push(part);
    }
    // `is_unsupported` messages (and anything else empty) are kept as what they were.
    if parts.is_empty() {
        parts.push(unsupported("message", message.value));
    }
    Ok(parts)
}

// ---------------------------------------------------------------------------------------
// Outbound

/// Splits text into pieces of at most [`MAX_TEXT_BYTES`] UTF-8 bytes: by characters at
/// whitespace first (as Messenger does), then any piece still too long at char bounds.
pub fn text_chunks(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    for piece in meta::chunks(text, MAX_TEXT_BYTES) {
        let mut current = String::new();
        for c in piece.chars() {
            if current.len() + c.len_utf8() > MAX_TEXT_BYTES {
                pieces.push(std::mem::take(&mut current));
            }
            current.push(c);
        }
        if !current.trim().is_empty() {
            pieces.push(current);
        }
    }
    pieces
}

/// The `message` objects a reply becomes, in order, plus notes on parts that went out
/// differently from how the rep wrote them.
pub fn plan(parts: &[Part]) -> (Vec<Value>, Vec<String>) {
    let mut messages = Vec::new();
    let mut notes = Vec::new();
    let text = |messages: &mut Vec<Value>, t: &str| {
        for chunk in text_chunks(t) {
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
                notes.push(format!(
                    "part {n} (sticker) cannot be sent on Instagram and was sent as an image"
                ));
                attachment(&mut messages, &mut notes, n, "image", m);
            }
            Part::Location(l) => {
                text(&mut messages, &meta::location_text(l));
                notes.push(format!(
                    "part {n} (location) cannot be sent on Instagram and was sent as a map link"
                ));
            }
            Part::Contact(c) => {
                text(&mut messages, &meta::contact_text(c));
                notes.push(format!(
                    "part {n} (contact) cannot be sent on Instagram and was sent as text"
                ));
            }
            Part::Unsupported(u) => {
                text(&mut messages, &meta::unsupported_text(u));
                notes.push(format!(
                    "part {n} ({}) has no Instagram equivalent and was sent as text",
                    u.platform_type
                ));
            }
        }
    }
    (messages, notes)
}

/// A media part as an Instagram attachment, by URL (Instagram fetches it); its caption
/// follows as text, since attachments take none.
fn attachment(
    messages: &mut Vec<Value>,
    notes: &mut Vec<String>,
    n: usize,
    kind: &str,
    media: &MediaPart,
) {
    match media.media.url.as_deref() {
        Some(url) => {
            messages.push(json!({"attachment": {"type": kind, "payload": {"url": url}}}));
        }
        None => notes.push(format!(
            "part {n} ({kind}) has no URL Instagram could fetch and was left out"
        )),
    }
    if let Some(caption) = media.caption.as_deref().filter(|c| !c.trim().is_empty()) {
        for chunk in text_chunks(caption) {
            messages.push(json!({"text": chunk}));
        }
    }
}

/// A planned message with its envelope: to the contact's IGSID.
pub fn envelope(igsid: &str, message: Value) -> Value {
    json!({
        "recipient": {"id": igsid},
        "message": message,
    })
}

#[async_trait]
impl ChannelAdapter for InstagramAdapter {
    fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError> {
        self.secrets.verify(request, now)
    }

    fn parse(&self, request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError> {
        parse_value(&meta::json_body(request)?)
    }

    fn handshake(&self, request: &RawRequest) -> Result<HandshakeReply, HandshakeError> {
        meta::handshake(request, &self.verify_token)
    }

    /// Sent message by message; a failure (the 24-hour window's among them, which Graph
    /// answers as a permanent error with its own message) says how many went out first.
    async fn send(&self, message: &Outbound) -> Result<Receipt, SendError> {
        let igsid = recipient(message)?;
        let (messages, notes) = plan(&message.parts);
        if messages.is_empty() {
            return Err(SendError::Permanent {
                reason: "nothing in this reply can be sent on Instagram".into(),
            });
        }
        let total = messages.len();
        let mut first_id = None;
        for (sent, planned) in messages.into_iter().enumerate() {
            let answer = self
                .graph
                .post(&self.send_path, &envelope(&igsid, planned))
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

    /// Attachment URLs are Meta CDN links; the token goes along only to Meta hosts.
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
    use proptest::prelude::*;

    const APP_SECRET: &str = "ig-app-secret";
    const ACCOUNT: &str = "17841405822304914";
    const IGSID: &str = "1254459154682919";
    const FIRST_MID: &str = "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1";

    fn config() -> InstagramConfig {
        InstagramConfig {
            access_token: Secret::new("IGQV-token"),
            app_secret: Secret::new(APP_SECRET),
            verify_token: Secret::new("verify-me"),
            account_id: ACCOUNT.into(),
            api_base: "http://127.0.0.1:9/v26.0".into(),
        }
    }

    fn adapter(retired: &[RetiredSecret]) -> InstagramAdapter {
        InstagramAdapter::new(&config(), reqwest::Client::new(), retired)
    }

    fn signed(body: &str) -> RawRequest {
        meta::testing::signed("ig", APP_SECRET, body)
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
            Part::Image(m) | Part::Video(m) | Part::Audio(m) | Part::File(m) => {
                m.media.url.as_deref()
            }
            _ => None,
        }
    }

    #[test]
    fn text_with_a_quote_names_sender_thread_and_quoted_message() {
        let [m] = messages(fixture!("instagram/text_reply.json"))
            .try_into()
            .unwrap();
        assert_eq!(m.platform_message_id, FIRST_MID);
        assert_eq!(
            m.thread_id.as_deref(),
            Some("17841405822304914:1254459154682919")
        );
        assert_eq!(
            m.from.identifier,
            Identifier {
                kind: "instagram_igsid".into(),
                value: IGSID.into()
            }
        );
        assert_eq!(m.reply_to.as_deref(), Some("aWdfOUT1"));
        assert_eq!(
            m.parts,
            vec![Part::Text(TextPart {
                text: "Is the linen shirt back in stock? \u{2014} \u{1f600}".into()
            })]
        );
        assert_eq!(m.sent_at.unwrap().timestamp_millis(), 1783002420000);
    }

    #[test]
    fn a_quick_reply_is_the_text_on_its_button() {
        let [m] = messages(fixture!("instagram/quick_reply.json"))
            .try_into()
            .unwrap();
        assert_eq!(m.parts[0].text(), Some("Track my order"));
        assert_eq!(m.raw["message"]["quick_reply"]["payload"], "TRACK_ORDER");
    }

    #[test]
    fn attachments_become_media_parts_with_their_urls() {
        let ms = messages(fixture!("instagram/attachments.json"));
        assert_eq!(ms.len(), 4);
        assert_eq!(ms[0].parts.len(), 2, "several images are several parts");
        assert!(ms[0].parts.iter().all(|p| matches!(p, Part::Image(_))));
        assert_eq!(
            url_of(&ms[0].parts[1]),
            Some("https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1802&signature=def")
        );
        assert!(matches!(ms[1].parts[0], Part::Video(_)));
        assert!(matches!(ms[2].parts[0], Part::Audio(_)));
        let Part::File(file) = &ms[3].parts[0] else {
            panic!("{:?}", ms[3].parts)
        };
        assert_eq!(file.media.filename.as_deref(), Some("receipt-2026-11.pdf"));
    }

    #[test]
    fn shares_are_links_and_stories_and_reels_are_kept_whole() {
        let ms = messages(fixture!("instagram/shares_and_stories.json"));
        assert_eq!(ms.len(), 6);
        assert_eq!(
            ms[0].parts,
            vec![Part::Text(TextPart {
                text: "https://www.instagram.com/p/C0aBcDeFgHi/".into()
            })]
        );
        let kind = |p: &Part| match p {
            Part::Unsupported(u) => u.platform_type.clone(),
            other => format!("{other:?}"),
        };
        assert_eq!(kind(&ms[1].parts[0]), "story_mention");
        assert_eq!(ms[2].parts[0].text(), Some("Love this colour!"));
        assert_eq!(kind(&ms[2].parts[1]), "story_reply");
        assert_eq!(ms[2].reply_to, None, "a story is not one of our messages");
        let Part::Unsupported(story) = &ms[2].parts[1] else {
            unreachable!()
        };
        assert_eq!(story.raw.as_ref().unwrap()["id"], "18023456789012345");
        assert_eq!(kind(&ms[3].parts[0]), "ig_reel");
        assert_eq!(kind(&ms[4].parts[0]), "reel");
        let Part::Unsupported(reel) = &ms[3].parts[0] else {
            unreachable!()
        };
        assert_eq!(
            reel.raw.as_ref().unwrap()["payload"]["reel_video_id"],
            "18345678901234567"
        );
        assert_eq!(kind(&ms[5].parts[0]), "message", "is_unsupported is kept");
    }

    #[test]
    fn a_story_reply_without_text_is_the_story_alone() {
        let body = fixture!("instagram/shares_and_stories.json")
            .replace(r#""text": "Love this colour!","#, "");
        let ms = messages(&body);
        assert!(
            matches!(&ms[2].parts[..], [Part::Unsupported(u)] if u.platform_type == "story_reply"),
            "{:?}",
            ms[2].parts
        );
    }

    #[test]
    fn echoes_reactions_referrals_and_postbacks_without_mid_carry_no_event() {
        assert!(parse(fixture!("instagram/echo_and_reaction.json")).is_empty());
    }

    #[test]
    fn an_edit_replaces_the_text_and_a_deletion_retracts() {
        assert_eq!(
            parse(fixture!("instagram/edit.json")),
            vec![InboundEvent::Edit(MessageEdit {
                platform_message_id: FIRST_MID.into(),
                parts: vec![Part::Text(TextPart {
                    text: "Is the linen shirt back in stock in size L?".into()
                })],
                edited_at: DateTime::from_timestamp_millis(1783002436000),
                order: Some(EditOrder(vec![1, 1783002436000])),
            })]
        );
        assert_eq!(
            parse(fixture!("instagram/deleted.json")),
            vec![InboundEvent::Retract {
                platform_message_id: FIRST_MID.into()
            }]
        );
    }

    #[test]
    fn a_read_receipt_marks_the_named_message_read() {
        assert_eq!(
            parse(fixture!("instagram/read.json")),
            vec![InboundEvent::Status(StatusUpdate {
                platform_message_id: "aWdfOUT1".into(),
                status: DeliveryStatus::Read,
                error: None,
            })]
        );
    }

    #[test]
    fn a_postback_with_a_mid_is_the_title_the_contact_tapped() {
        let [m] = messages(fixture!("instagram/postback.json"))
            .try_into()
            .unwrap();
        assert_eq!(m.platform_message_id, "aWdfPB1");
        assert_eq!(m.parts[0].text(), Some("Talk to a person"));
    }

    #[test]
    fn signatures_are_checked_on_the_raw_bytes_with_retired_secrets_for_a_while() {
        meta::testing::assert_signatures_checked_with_retired_secrets(
            adapter,
            "ig",
            APP_SECRET,
            fixture!("instagram/text_reply.json"),
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
        let base = |extra: Value| {
            let mut e = json!({"sender": {"id": IGSID}, "recipient": {"id": ACCOUNT},
                               "timestamp": 1783002420000u64});
            for (k, v) in extra.as_object().unwrap() {
                e[k] = v.clone();
            }
            json!({"object": "instagram", "entry": [{"id": ACCOUNT, "messaging": [e]}]}).to_string()
        };
        let at = "entry[0].messaging[0]";
        let cases = [
            (r#"{"entry":[]}"#.to_owned(), "object".to_owned()),
            (
                r#"{"object":"page","entry":[]}"#.to_owned(),
                "object".to_owned(),
            ),
            (r#"{"object":"instagram"}"#.to_owned(), "entry".to_owned()),
            (
                base(json!({"message": {"text": "no mid"}})),
                format!("{at}.message.mid"),
            ),
            (
                base(json!({"sender": {}, "message": {"mid": "m_1", "text": "x"}})),
                format!("{at}.sender.id"),
            ),
            (
                base(
                    json!({"message": {"mid": "m_1", "attachments": [{"type": "image", "payload": {}}]}}),
                ),
                format!("{at}.message.attachments[0].payload.url"),
            ),
            (
                base(json!({"message": {"mid": "m_1", "attachments": [{"type": "video"}]}})),
                format!("{at}.message.attachments[0].payload"),
            ),
            (
                base(json!({"message": {"mid": "m_1", "reply_to": {"story": {}}}})),
                format!("{at}.message.reply_to.story.url"),
            ),
            (
                base(json!({"message_edit": {"mid": "m_1"}})),
                format!("{at}.message_edit.text"),
            ),
            (base(json!({"read": {}})), format!("{at}.read.mid")),
            (base(json!({"read": {"mid": 5}})), format!("{at}.read.mid")),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(&body), field, "{body}");
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
    fn media_go_as_url_attachments_with_captions_after_them() {
        let mut image = linked("https://cdn.example/label.png");
        image.caption = Some("Your label".into());
        let by_id_only = MediaPart {
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
            Part::File(linked("https://cdn.example/r.pdf")),
            Part::File(by_id_only),
        ]);
        assert_eq!(
            messages,
            vec![
                json!({"text": "Here you go"}),
                json!({"attachment": {"type": "image", "payload": {"url": "https://cdn.example/label.png"}}}),
                json!({"text": "Your label"}),
                json!({"attachment": {"type": "video", "payload": {"url": "https://cdn.example/v.mp4"}}}),
                json!({"attachment": {"type": "audio", "payload": {"url": "https://cdn.example/v.m4a"}}}),
                json!({"attachment": {"type": "file", "payload": {"url": "https://cdn.example/r.pdf"}}}),
            ]
        );
        assert_eq!(
            notes,
            ["part 6 (file) has no URL Instagram could fetch and was left out"]
        );
    }

    #[test]
    fn long_text_goes_out_in_pieces_of_at_most_1000_bytes() {
        let (messages, _) = plan(&[text(&"word ".repeat(500))]);
        assert_eq!(messages.len(), 3);
        // Four bytes a character: 1000 characters would be 4000 bytes.
        let (wide, _) = plan(&[text(&"\u{1f600}".repeat(600))]);
        assert_eq!(wide.len(), 3);
        for m in messages.iter().chain(&wide) {
            assert!(m["text"].as_str().unwrap().len() <= MAX_TEXT_BYTES);
        }
        let joined: String = wide.iter().map(|m| m["text"].as_str().unwrap()).collect();
        assert_eq!(
            joined,
            "\u{1f600}".repeat(600),
            "nothing is lost at the cuts"
        );
    }

    #[test]
    fn replies_go_to_the_igsid_of_the_thread() {
        let out = |thread: Option<&str>| Outbound {
            message_id: crate::model::MessageId::new(),
            conversation_id: crate::model::ConversationId::new(),
            platform_thread_id: thread.map(str::to_owned),
            to: contact("999"),
            reply_to: None,
            parts: vec![text("hi")],
        };
        assert_eq!(
            recipient(&out(Some("17841405822304914:1254459154682919"))).unwrap(),
            IGSID
        );
        assert_eq!(recipient(&out(None)).unwrap(), "999");
        assert!(matches!(
            recipient(&out(Some("17841405822304914:"))),
            Err(SendError::Permanent { .. })
        ));
        assert_eq!(
            envelope(IGSID, json!({"text": "hi"})),
            json!({"recipient": {"id": IGSID}, "message": {"text": "hi"}})
        );
    }

    #[test]
    fn config_needs_a_path_safe_account_id_and_refuses_unknown_keys() {
        let from_toml = |text: &str| -> Result<InstagramConfig, String> {
            toml::from_str(text).map_err(|e| e.to_string())
        };
        let keys = "access_token = \"t\"\napp_secret = \"s\"\nverify_token = \"v\"\n";
        let config = from_toml(&format!("{keys}account_id = 17841405822304914\n")).unwrap();
        assert_eq!(config.account_id, ACCOUNT);
        assert_eq!(config.api_base, meta::DEFAULT_API_BASE);
        assert!(config.validate().is_empty());
        let bad = from_toml(&format!("{keys}account_id = \"1/../me\"\n")).unwrap();
        assert_eq!(bad.validate()[0].0, "account_id");
        assert!(from_toml(keys).is_err(), "account_id is required");
        assert!(from_toml(&format!("{keys}account_id = \"1\"\npage_id = \"x\"\n")).is_err());
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
            "is_unsupported",
            "reply_to",
            "story",
            "attachments",
            "type",
            "payload",
            "url",
            "message_edit",
            "num_edit",
            "read",
            "watermark",
            "reaction",
            "postback",
            "title",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            prop::sample::select(vec![
                "instagram",
                "image",
                "video",
                "audio",
                "file",
                "share",
                "story_mention",
                "ig_reel",
                "",
                "m_1",
                "https://x.example/a.png",
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

    proptest! {
        #[test]
        fn arbitrary_json_shapes_never_panic_the_parser(value in webhook_like()) {
            let _ = parse_value(&value);
            let wrapped = json!({"object": "instagram", "entry": [{"id": ACCOUNT,
                "messaging": [value.clone(), {"sender": {"id": IGSID}, "recipient": {"id": ACCOUNT},
                    "message": value.clone(), "read": value}]}]});
            let _ = parse_value(&wrapped);
        }
    }
}
