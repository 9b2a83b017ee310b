//! Viber callbacks in: a message, a delivery report or a webhook check turned into events.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::adapters::{
    InboundContact, InboundEvent, InboundMessage, ParseError, StatusUpdate, invalid, read,
};
use crate::model::{
    ContactPart, DeliveryStatus, Identifier, LocationPart, Media, MediaPart, Part, TextPart,
    UnsupportedPart,
};

use super::IDENTIFIER_TYPE;
use super::outbound::token;
use super::wire::{WireContent, WireSender};

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
pub(super) fn content(value: &Value) -> Result<Part, ParseError> {
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

#[cfg(test)]
mod tests {

    use crate::adapters::viber::tests::{message, parse};
    use crate::adapters::{InboundEvent, ParseError, StatusUpdate};
    use crate::fixtures::fixture;
    use crate::model::{
        ContactPart, DeliveryStatus, Identifier, LocationPart, Media, MediaPart, Part, TextPart,
    };

    use chrono::DateTime;
    use serde_json::{Value, json};

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
            let kinds: Vec<_> = parts.iter().map(Part::kind_name).collect();
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
}
