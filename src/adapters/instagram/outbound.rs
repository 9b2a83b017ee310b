//! Replies out: a reply's parts planned as Send API messages (texts cut at Instagram's byte
//! limit), each wrapped in its envelope to the contact's IGSID. The planning is Meta's
//! Messenger Platform's, in [`meta::messaging`]; what is Instagram's own is here.

use serde_json::{Value, json};

use crate::adapters::meta::{self, messaging};
use crate::adapters::{Outbound, SendError};
use crate::model::{Media, Part};

use super::{MAX_TEXT_BYTES, PLATFORM};

/// The IGSID a reply goes to: the contact part of the thread (`"{account_id}:{igsid}"`),
/// else the contact's identifier.
pub(super) fn recipient(message: &Outbound) -> Result<String, SendError> {
    meta::recipient(message, "Instagram")
}

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
    messaging::plan(&PLATFORM, parts)
}

/// A media file as an Instagram attachment's payload: by URL only (Instagram fetches it).
pub(super) fn attachment_payload(media: &Media) -> Option<Value> {
    media.url.as_deref().map(|url| json!({"url": url}))
}

/// A planned message with its envelope: to the contact's IGSID.
pub fn envelope(igsid: &str, message: Value) -> Value {
    messaging::envelope(&PLATFORM, igsid, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::instagram::inbound::contact;
    use crate::adapters::instagram::tests::{IGSID, text};
    use crate::adapters::{Outbound, SendError};
    use crate::model::{Media, MediaPart, Part};
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
}
