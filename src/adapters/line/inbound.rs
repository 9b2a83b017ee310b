//! A webhook body in, normalized events out, as pure functions over the JSON.

use chrono::DateTime;
use serde_json::{Map, Value};

use super::{GROUP_IDENTIFIER_TYPE, IDENTIFIER_TYPE, ROOM_IDENTIFIER_TYPE};
use crate::adapters::{InboundContact, InboundEvent, InboundMessage, ParseError, invalid};
use crate::model::{Identifier, LocationPart, Media, MediaPart, Part, TextPart, UnsupportedPart};

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

pub(super) fn parse_sticker_ref(platform_ref: &str) -> Option<(&str, &str)> {
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
                conversation_hint: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::line::tests::*;
    use crate::adapters::line::*;
    use proptest::prelude::*;
    use serde_json::json;

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
}
