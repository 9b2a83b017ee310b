//! What reps are told by email: the text of a new message, its attachments, and a link.

use crate::model::Part;

/// Subject and text of the email an offline contact owner gets for a new message.
pub fn owner_email(
    contact: &str,
    channel: &str,
    parts: &[Part],
    link: Option<&str>,
) -> (String, String) {
    let subject = format!("New message from {contact} on {channel}");
    let mut text = format!("{contact} wrote on {channel}:\n\n");
    let mut attachments = Vec::new();
    for part in parts {
        match part {
            Part::Text(t) => {
                text.push_str(&t.text);
                text.push('\n');
            }
            Part::Image(m)
            | Part::Video(m)
            | Part::Audio(m)
            | Part::VoiceNote(m)
            | Part::Sticker(m)
            | Part::File(m) => {
                if let Some(caption) = &m.caption {
                    text.push_str(caption);
                    text.push('\n');
                }
                let kind = match part {
                    Part::Image(_) => "image",
                    Part::Video(_) => "video",
                    Part::Audio(_) => "audio",
                    Part::VoiceNote(_) => "voice note",
                    Part::Sticker(_) => "sticker",
                    _ => "file",
                };
                let name = m
                    .media
                    .filename
                    .as_deref()
                    .or(m.media.url.as_deref())
                    .unwrap_or("(on the platform)");
                attachments.push(format!("- {kind}: {name}"));
            }
            Part::Location(l) => {
                let name = l.name.as_deref().unwrap_or("a location");
                text.push_str(&format!("[{name} at {}, {}]\n", l.latitude, l.longitude));
            }
            Part::Contact(c) => {
                let name = c.name.as_deref().unwrap_or("a contact");
                attachments.push(format!("- contact card: {name}"));
            }
            Part::Unsupported(u) => {
                attachments.push(format!("- {} (not shown here)", u.platform_type))
            }
        }
    }
    if !attachments.is_empty() {
        text.push_str("\nAttachments:\n");
        text.push_str(&attachments.join("\n"));
        text.push('\n');
    }
    if let Some(link) = link {
        text.push_str(&format!("\nOpen the conversation: {link}\n"));
    }
    (subject, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Media, MediaPart, TextPart};

    #[test]
    fn the_email_has_the_text_a_list_of_attachments_and_a_link() {
        let parts = vec![
            Part::Text(TextPart {
                text: "are you there?".into(),
            }),
            Part::Image(MediaPart {
                media: Media {
                    filename: Some("receipt.png".into()),
                    ..Default::default()
                },
                caption: Some("my receipt".into()),
            }),
        ];
        let (subject, text) = owner_email(
            "Ana",
            "whatsapp",
            &parts,
            Some("https://bridge/api/v1/conversations/conv_1"),
        );
        assert_eq!(subject, "New message from Ana on whatsapp");
        assert!(text.contains("are you there?\nmy receipt\n"));
        assert!(text.contains("Attachments:\n- image: receipt.png"));
        assert!(
            text.ends_with("Open the conversation: https://bridge/api/v1/conversations/conv_1\n")
        );
    }
}
