//! A reply out: the LINE messages its parts become, five to a call, and each call's retry key.

use serde_json::{Value, json};
use sha1::Digest;

use super::inbound::parse_sticker_ref;
use super::{MAX_LOCATION_CHARS, MAX_TEXT_CHARS};
use crate::model::{MediaPart, Part};

/// What a reply becomes on LINE: message objects in order, and notes on what could not
/// go out as written.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub messages: Vec<Value>,
    pub notes: Vec<String>,
}

impl Plan {
    fn text(&mut self, text: &str) {
        if text.trim().is_empty() {
            return;
        }
        let chars: Vec<char> = text.chars().collect();
        for piece in chars.chunks(MAX_TEXT_CHARS) {
            self.messages
                .push(json!({"type": "text", "text": piece.iter().collect::<String>()}));
        }
    }

    /// Sends a part LINE cannot carry as a text with its link.
    fn link(&mut self, kind: &str, media: &MediaPart, why: &str) {
        let Some(url) = media.media.url.as_deref() else {
            if let Some(caption) = &media.caption {
                self.text(caption);
            }
            self.notes
                .push(format!("{kind} not sent: it has no URL and {why}"));
            return;
        };
        let mut lines: Vec<&str> = Vec::new();
        if let Some(caption) = media.caption.as_deref().filter(|c| !c.trim().is_empty()) {
            lines.push(caption);
        }
        if let Some(name) = media.media.filename.as_deref() {
            lines.push(name);
        }
        lines.push(url);
        self.text(&lines.join("\n"));
        self.notes.push(format!("{kind} sent as a link: {why}"));
    }

    fn caption(&mut self, media: &MediaPart) {
        if let Some(caption) = &media.caption {
            self.text(caption);
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Turns a reply's parts into LINE message objects, in order. Captions follow their media
/// as text (LINE media have no captions).
pub fn plan(parts: &[Part]) -> Plan {
    let mut plan = Plan::default();
    for part in parts {
        match part {
            Part::Text(t) => plan.text(&t.text),
            Part::Image(m) => {
                let png_or_jpeg = m
                    .media
                    .mime_type
                    .as_deref()
                    .is_none_or(|t| matches!(t, "image/jpeg" | "image/jpg" | "image/png"));
                match m.media.url.as_deref() {
                    Some(url) if png_or_jpeg => {
                        plan.messages.push(json!({
                            "type": "image", "originalContentUrl": url, "previewImageUrl": url
                        }));
                        plan.caption(m);
                    }
                    _ if !png_or_jpeg => plan.link("image", m, "LINE shows only JPEG and PNG"),
                    _ => plan.link("image", m, "LINE sends images by URL only"),
                }
            }
            Part::Video(m) => plan.link(
                "video",
                m,
                "LINE needs a separate preview image for a video",
            ),
            Part::Audio(m) | Part::VoiceNote(m) => {
                let kind = if matches!(part, Part::Audio(_)) {
                    "audio"
                } else {
                    "voice note"
                };
                match (m.media.url.as_deref(), m.media.duration_s) {
                    (Some(url), Some(seconds)) if seconds > 0.0 => {
                        plan.messages.push(json!({
                            "type": "audio", "originalContentUrl": url,
                            "duration": (seconds * 1000.0).round() as u64
                        }));
                        plan.caption(m);
                    }
                    _ => plan.link(kind, m, "LINE needs an audio file's URL and duration"),
                }
            }
            Part::Sticker(m) => match m.media.platform_ref.as_deref().and_then(parse_sticker_ref) {
                Some((package, sticker)) => {
                    plan.messages.push(json!({
                        "type": "sticker", "packageId": package, "stickerId": sticker
                    }));
                    plan.caption(m);
                }
                None => plan.link("sticker", m, "LINE sends only its own stickers"),
            },
            Part::File(m) => plan.link("file", m, "LINE bots cannot send files"),
            Part::Location(l) => {
                let coordinates = format!("{}, {}", l.latitude, l.longitude);
                let title = l.name.as_deref().unwrap_or("Location");
                let address = l.address.as_deref().or(l.name.as_deref());
                plan.messages.push(json!({
                    "type": "location",
                    "title": truncate(title, MAX_LOCATION_CHARS),
                    "address": truncate(address.unwrap_or(&coordinates), MAX_LOCATION_CHARS),
                    "latitude": l.latitude,
                    "longitude": l.longitude,
                }));
            }
            Part::Contact(c) => {
                let lines: Vec<&str> = c
                    .name
                    .as_deref()
                    .into_iter()
                    .chain(c.phones.iter().map(String::as_str))
                    .chain(c.emails.iter().map(String::as_str))
                    .collect();
                plan.text(&lines.join("\n"));
                plan.notes
                    .push("contact sent as text: LINE has no contact cards".into());
            }
            Part::Unsupported(u) => plan.notes.push(format!(
                "{} part not sent: LINE has no such message",
                u.platform_type
            )),
        }
    }
    plan
}

/// The `X-Line-Retry-Key` of the `chunk`-th push call of our message `message_id`: a
/// name-based UUID (version 5), the same on every attempt, so LINE runs each call once.
pub fn retry_key(message_id: &str, chunk: usize) -> String {
    // A namespace of our own for these keys.
    const NAMESPACE: [u8; 16] = [
        0x6c, 0x69, 0x6e, 0x65, 0x2d, 0x72, 0x65, 0x74, 0x72, 0x79, 0x2d, 0x6b, 0x65, 0x79, 0x21,
        0x21,
    ];
    let mut hasher = sha1::Sha1::new();
    hasher.update(NAMESPACE);
    hasher.update(format!("{message_id}#{chunk}").as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The id of the first message in a push answer (`sentMessages[0].id`).
pub(super) fn first_sent_id(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    match value.get("sentMessages")?.get(0)?.get("id")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::line::*;
    use crate::model::ContactPart;
    use crate::model::{LocationPart, TextPart, UnsupportedPart};
    use serde_json::json;

    fn media_part(url: Option<&str>) -> MediaPart {
        MediaPart {
            media: Media {
                url: url.map(str::to_owned),
                ..Media::default()
            },
            caption: None,
        }
    }

    #[test]
    fn replies_become_line_messages_in_order() {
        let mut image = media_part(Some("https://x.example/a.png"));
        image.caption = Some("the receipt".into());
        let mut audio = media_part(Some("https://x.example/a.m4a"));
        audio.media.duration_s = Some(3.25);
        let mut sticker = media_part(None);
        sticker.media.platform_ref = Some("446:1988".into());
        let plan = plan(&[
            Part::Text(TextPart {
                text: "Here".into(),
            }),
            Part::Image(image),
            Part::Audio(audio),
            Part::Sticker(sticker),
            Part::Location(LocationPart {
                latitude: 35.5,
                longitude: 139.7,
                name: Some("Shop".into()),
                address: None,
            }),
        ]);
        assert_eq!(
            plan.messages,
            vec![
                json!({"type": "text", "text": "Here"}),
                json!({"type": "image", "originalContentUrl": "https://x.example/a.png",
                       "previewImageUrl": "https://x.example/a.png"}),
                json!({"type": "text", "text": "the receipt"}),
                json!({"type": "audio", "originalContentUrl": "https://x.example/a.m4a", "duration": 3250}),
                json!({"type": "sticker", "packageId": "446", "stickerId": "1988"}),
                json!({"type": "location", "title": "Shop", "address": "Shop",
                       "latitude": 35.5, "longitude": 139.7}),
            ]
        );
        assert!(plan.notes.is_empty());
    }

    #[test]
    fn parts_line_cannot_carry_go_as_links_with_a_note() {
        let mut file = media_part(Some("https://x.example/a.pdf"));
        file.media.filename = Some("a.pdf".into());
        let plan = plan(&[
            Part::File(file),
            Part::Video(media_part(Some("https://x.example/v.mp4"))),
            Part::Image(MediaPart {
                media: Media {
                    url: Some("https://x.example/a.gif".into()),
                    mime_type: Some("image/gif".into()),
                    ..Media::default()
                },
                caption: None,
            }),
            Part::Contact(ContactPart {
                name: Some("Bo".into()),
                phones: vec!["+4912345".into()],
                emails: vec![],
            }),
            Part::Image(media_part(None)),
            Part::Unsupported(UnsupportedPart {
                platform_type: "poll".into(),
                raw: None,
            }),
        ]);
        assert_eq!(
            plan.messages,
            vec![
                json!({"type": "text", "text": "a.pdf\nhttps://x.example/a.pdf"}),
                json!({"type": "text", "text": "https://x.example/v.mp4"}),
                json!({"type": "text", "text": "https://x.example/a.gif"}),
                json!({"type": "text", "text": "Bo\n+4912345"}),
            ]
        );
        assert_eq!(plan.notes.len(), 6, "{:?}", plan.notes);
        assert!(plan.notes[0].starts_with("file sent as a link"));
        assert!(plan.notes[4].starts_with("image not sent"));
        assert!(plan.notes[5].starts_with("poll part not sent"));
    }

    #[test]
    fn long_texts_are_split_at_the_line_limit() {
        let long = "é".repeat(MAX_TEXT_CHARS + 10);
        let plan = plan(&[Part::Text(TextPart { text: long })]);
        assert_eq!(plan.messages.len(), 2);
        assert_eq!(
            plan.messages[0]["text"].as_str().unwrap().chars().count(),
            MAX_TEXT_CHARS
        );
        assert_eq!(
            plan.messages[1]["text"].as_str().unwrap().chars().count(),
            10
        );
    }

    #[test]
    fn retry_keys_are_uuids_stable_per_message_and_call() {
        let key = retry_key("msg_01J00000000000000000000000", 0);
        assert_eq!(key, retry_key("msg_01J00000000000000000000000", 0));
        assert_ne!(key, retry_key("msg_01J00000000000000000000000", 1));
        assert_ne!(key, retry_key("msg_01J00000000000000000000001", 0));
        let groups: Vec<&str> = key.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(key.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()));
        assert_eq!(&groups[2][..1], "5", "version 5");
        assert!(
            matches!(&groups[3][..1], "8" | "9" | "a" | "b"),
            "RFC 4122 variant"
        );
    }
}
