//! Replies out: a reply's parts planned as Send API messages, each wrapped in its envelope
//! to the contact's PSID. The planning is Meta's Messenger Platform's, in
//! [`meta::messaging`]; what is Messenger's own is here.

use serde_json::{Value, json};

use crate::adapters::meta::{self, messaging};
use crate::adapters::{Outbound, SendError};
use crate::model::{Media, Part};

use super::{MAX_TEXT_CHARS, PLATFORM};

/// The PSID a reply goes to: the contact part of the thread (`"{page_id}:{psid}"`), else
/// the contact's identifier.
pub(super) fn recipient(message: &Outbound) -> Result<String, SendError> {
    meta::recipient(message, "Messenger")
}

/// The `message` objects a reply becomes, in order, plus notes on parts that went out
/// differently from how the rep wrote them.
pub fn plan(parts: &[Part]) -> (Vec<Value>, Vec<String>) {
    messaging::plan(&PLATFORM, parts)
}

/// Splits text into pieces the Send API takes: at most [`MAX_TEXT_CHARS`] characters.
pub(super) fn text_chunks(text: &str) -> Vec<String> {
    meta::chunks(text, MAX_TEXT_CHARS)
}

/// A media file as a Messenger attachment's payload: by URL (reusable, so Meta caches it)
/// or by an attachment id.
pub(super) fn attachment_payload(media: &Media) -> Option<Value> {
    match (&media.url, &media.platform_ref) {
        (Some(url), _) => Some(json!({"url": url, "is_reusable": true})),
        (None, Some(id)) => Some(json!({"attachment_id": id})),
        (None, None) => None,
    }
}

/// A planned message with its envelope: a `RESPONSE` to the contact's PSID.
pub fn envelope(psid: &str, message: Value) -> Value {
    messaging::envelope(&PLATFORM, psid, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::messenger::inbound::contact;
    use crate::adapters::messenger::tests::{PSID, text};
    use crate::adapters::{Outbound, SendError};
    use crate::model::{LocationPart, Media, MediaPart, Part};
    use serde_json::json;

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
}
