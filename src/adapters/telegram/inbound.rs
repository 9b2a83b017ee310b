//! An `Update` in, normalized events out: a pure function, tested on the recorded
//! fixtures in `tests/fixtures/telegram/`.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::IDENTIFIER_TYPE;
use super::wire::{WireFile, WireLocation, WireMessage};
use crate::adapters::{
    InboundContact, InboundEvent, InboundMessage, MessageEdit, ParseError, invalid, read,
};
use crate::model::{
    ContactPart, EditOrder, Identifier, LocationPart, Media, MediaPart, Part, TextPart,
    UnsupportedPart,
};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::fixture;
    use proptest::prelude::*;

    fn parse(body: &str) -> Result<Vec<InboundEvent>, ParseError> {
        parse_update(body.as_bytes())
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
        part.media()
            .unwrap_or_else(|| panic!("not media: {other:?}", other = part))
    }

    fn field_of(body: &str) -> String {
        match parse(body) {
            Err(ParseError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_text_message_names_sender_chat_and_time() {
        let m = message(fixture!("telegram/text.json"));
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
        let part = only_part(fixture!("telegram/photo.json"));
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
            (
                fixture!("telegram/voice.json"),
                "voice_note",
                "AwACAgQAAxkBAAIBVOICE",
            ),
            (
                fixture!("telegram/audio.json"),
                "audio",
                "CQACAgQAAxkBAAIBAUDIO",
            ),
            (
                fixture!("telegram/video.json"),
                "video",
                "BAACAgQAAxkBAAIBVIDEO",
            ),
            (
                fixture!("telegram/video_note.json"),
                "video",
                "DQACAgQAAxkBAAIBNOTE",
            ),
            (
                fixture!("telegram/animation.json"),
                "video",
                "CgACAgQAAxkBAAIBANIM",
            ),
            (
                fixture!("telegram/document.json"),
                "file",
                "BQACAgQAAxkBAAIBDOC",
            ),
            (
                fixture!("telegram/sticker.json"),
                "sticker",
                "CAACAgIAAxkBAAIBSTICK",
            ),
        ];
        for (body, kind, file_id) in cases {
            let part = only_part(body);
            assert_eq!(part.kind_name(), kind, "{body}");
            assert_eq!(
                media_of(&part).media.platform_ref.as_deref(),
                Some(file_id),
                "{body}"
            );
        }
    }

    #[test]
    fn media_keeps_name_type_size_duration_and_caption() {
        let voice = only_part(fixture!("telegram/voice.json"));
        let m = &media_of(&voice).media;
        assert_eq!(m.duration_s, Some(4.0));
        assert_eq!(m.mime_type.as_deref(), Some("audio/ogg"));
        assert_eq!(m.size_bytes, Some(10240));

        let document = only_part(fixture!("telegram/document.json"));
        let d = media_of(&document);
        assert_eq!(d.media.filename.as_deref(), Some("invoice-2291.pdf"));
        assert_eq!(d.media.mime_type.as_deref(), Some("application/pdf"));
        assert_eq!(d.caption.as_deref(), Some("Invoice attached"));

        let audio = only_part(fixture!("telegram/audio.json"));
        assert_eq!(
            media_of(&audio).media.filename.as_deref(),
            Some("message.mp3")
        );

        let animation = only_part(fixture!("telegram/animation.json"));
        assert_eq!(
            media_of(&animation).media.mime_type.as_deref(),
            Some("video/mp4"),
            "the animation, not the document it also sets"
        );

        let sticker = only_part(fixture!("telegram/sticker.json"));
        assert_eq!(
            media_of(&sticker).media.mime_type.as_deref(),
            Some("image/webp")
        );
    }

    #[test]
    fn locations_venues_and_contacts_map_to_their_parts() {
        assert_eq!(
            only_part(fixture!("telegram/location.json")),
            Part::Location(LocationPart {
                latitude: 52.520008,
                longitude: 13.404954,
                name: None,
                address: None
            })
        );
        assert_eq!(
            only_part(fixture!("telegram/venue.json")),
            Part::Location(LocationPart {
                latitude: 48.858844,
                longitude: 2.294351,
                name: Some("Eiffel Tower".into()),
                address: Some("Champ de Mars, Paris".into())
            })
        );
        assert_eq!(
            only_part(fixture!("telegram/contact.json")),
            Part::Contact(ContactPart {
                name: Some("Bo Lindqvist".into()),
                phones: vec!["+46701234567".into()],
                emails: vec!["bo@example.com".into()]
            })
        );
    }

    #[test]
    fn unknown_content_is_kept_as_unsupported_with_its_raw_json() {
        let part = only_part(fixture!("telegram/poll.json"));
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
        let m = message(fixture!("telegram/reply.json"));
        assert_eq!(m.platform_message_id, "5511223344:1210");
        assert_eq!(m.reply_to.as_deref(), Some("5511223344:1190"));
    }

    #[test]
    fn a_forum_topic_message_threads_by_chat_and_topic_and_quotes_nothing_by_default() {
        let m = message(fixture!("telegram/forum_topic.json"));
        assert_eq!(m.thread_id.as_deref(), Some("-1001987654321:77"));
        assert_eq!(m.platform_message_id, "-1001987654321:301");
        assert_eq!(m.reply_to, None, "the topic's first message is not a quote");
        assert_eq!(m.from.identifier.value, "5511223344");
    }

    #[test]
    fn a_channel_post_comes_from_the_channel() {
        let m = message(fixture!("telegram/channel_post.json"));
        assert_eq!(m.from.identifier.value, "-1001234567890");
        assert_eq!(m.from.display_name.as_deref(), Some("Acme Announcements"));
        assert_eq!(m.thread_id.as_deref(), Some("-1001234567890"));
    }

    #[test]
    fn an_album_arrives_as_one_update_per_item_each_its_own_message() {
        let first = message(fixture!("telegram/album_1.json"));
        let second = message(fixture!("telegram/album_2.json"));
        assert_ne!(first.platform_message_id, second.platform_message_id);
        assert_eq!(first.thread_id, second.thread_id);
        assert!(matches!(first.parts[0], Part::Image(_)));
        assert!(matches!(second.parts[0], Part::Image(_)));
    }

    #[test]
    fn the_same_message_redelivered_has_the_same_id_and_ids_differ_across_chats() {
        let a = message(fixture!("telegram/text.json"));
        let again = message(fixture!("telegram/text.json"));
        assert_eq!(a.platform_message_id, again.platform_message_id);
        // Same message_id in another chat: another message.
        let other = fixture!("telegram/text.json").replace("5511223344", "6622334455");
        assert_ne!(message(&other).platform_message_id, a.platform_message_id);
    }

    #[test]
    fn an_edited_message_is_an_edit_of_the_same_id() {
        let events = parse(fixture!("telegram/edited_message.json")).unwrap();
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
        assert_eq!(
            parse(fixture!("telegram/bot_message.json")).unwrap(),
            vec![]
        );
        assert_eq!(
            parse(fixture!("telegram/callback_query.json")).unwrap(),
            vec![]
        );
        assert_eq!(parse(r#"{"update_id": 5}"#).unwrap(), vec![]);
    }

    #[test]
    fn malformed_updates_name_the_field_at_fault() {
        let text = fixture!("telegram/text.json");
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

        let photo = fixture!("telegram/photo.json");
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
        let location = fixture!("telegram/location.json").replace("52.520008", "152.5");
        assert_eq!(field_of(&location), "message.location.latitude");
        let edit = fixture!("telegram/edited_message.json").replace("\"chat\"", "\"chats\"");
        assert_eq!(field_of(&edit), "edited_message.chat");
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
                fixture!("telegram/text.json"), fixture!("telegram/photo.json"), fixture!("telegram/venue.json"), fixture!("telegram/contact.json"),
                fixture!("telegram/sticker.json"), fixture!("telegram/forum_topic.json"), fixture!("telegram/reply.json"),
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
