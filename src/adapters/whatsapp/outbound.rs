//! A reply out: the WhatsApp messages its parts become (`plan`) and the envelope that
//! addresses each one (`envelope`).

use serde_json::{Map, Value, json};

use super::{MAX_CAPTION_CHARS, MAX_TEXT_CHARS};
use crate::adapters::meta;
use crate::model::{Media, Part};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::whatsapp::tests::*;
    use crate::adapters::whatsapp::*;
    use crate::model::{
        ContactPart, Identifier, LocationPart, MediaPart, TextPart, UnsupportedPart,
    };
    use serde_json::json;

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
}
