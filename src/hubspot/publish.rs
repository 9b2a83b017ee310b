//! How one of our inbound messages reads as a HubSpot publish request: the delivery
//! identifiers, the text, and one attachment per part. Pure: the files are uploaded and
//! the request is sent by `publisher`.

use std::collections::BTreeMap;

use chrono::SecondsFormat;

use super::wire::{
    Attachment, ContactEmail, ContactName, ContactPhone, ContactProfile, DeliveryIdentifier,
    DeliveryIdentifierType, FileUsageType, MessageDirection, MessageEgg, Participant,
};
use crate::model::{Identifier, Part};
use crate::store::PublishNote;
use crate::store::hubspot::PublishSource;

/// What became of a media part's file before publishing.
#[derive(Clone, Debug, PartialEq)]
pub enum FileSlot {
    /// Uploaded to the File Manager under this id.
    Uploaded(String),
    /// Not to be had (the platform no longer has it, it is larger than `media.max_bytes`,
    /// its URL is refused): published as unsupported content, with the reason in the text.
    Unavailable(String),
    /// The platform names the part without a file to fetch (a LINE sticker is a package
    /// and a sticker id): published as unsupported content, nothing to apologise for.
    NoFile,
}

/// HubSpot's `fileUsageType` for a media part (video has none of its own: OTHER).
pub fn file_usage_type(part: &Part) -> Option<FileUsageType> {
    Some(match part {
        Part::Image(_) => FileUsageType::Image,
        Part::Audio(_) => FileUsageType::Audio,
        Part::VoiceNote(_) => FileUsageType::VoiceRecording,
        Part::Sticker(_) => FileUsageType::Sticker,
        Part::Video(_) | Part::File(_) => FileUsageType::Other,
        _ => return None,
    })
}

/// The name a part's file gets in the File Manager.
pub fn file_name(part: &Part, index: usize, mime: &str) -> String {
    if let Some(name) = part.media().and_then(|m| m.media.filename.clone())
        && !name.trim().is_empty()
    {
        return name;
    }
    let stem = match part {
        Part::Image(_) => "image",
        Part::Video(_) => "video",
        Part::Audio(_) => "audio",
        Part::VoiceNote(_) => "voice",
        Part::Sticker(_) => "sticker",
        _ => "file",
    };
    let extension = match mime.split(';').next().unwrap_or_default().trim() {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "video/mp4" => "mp4",
        "audio/ogg" | "audio/opus" => "ogg",
        "audio/mpeg" => "mp3",
        "audio/mp4" | "audio/aac" => "m4a",
        "application/pdf" => "pdf",
        _ => "bin",
    };
    format!("{stem}-{}.{extension}", index + 1)
}

/// How HubSpot addresses a contact: phone numbers as `HS_PHONE_NUMBER`, e-mail addresses
/// as `HS_EMAIL_ADDRESS`, anything else (a Telegram user id, a PSID) as
/// `CHANNEL_SPECIFIC_OPAQUE_ID` with the platform's value.
pub fn delivery_identifier(contact: &Identifier) -> DeliveryIdentifier {
    let value = contact.value.trim();
    // Twilio addresses carry their transport: `whatsapp:+1…`, `messenger:…`.
    let bare = value.strip_prefix("whatsapp:").unwrap_or(value);
    let (kind, value) = if contact.kind == "email" || is_email(value) {
        (DeliveryIdentifierType::EmailAddress, value.to_owned())
    } else if let Some(phone) = as_e164(bare) {
        (DeliveryIdentifierType::PhoneNumber, phone)
    } else if contact.kind == "whatsapp_user" && is_digits(value, 7, 15) {
        // A WhatsApp id is the number without its `+`.
        (DeliveryIdentifierType::PhoneNumber, format!("+{value}"))
    } else {
        (
            DeliveryIdentifierType::ChannelSpecificOpaqueId,
            value.to_owned(),
        )
    };
    DeliveryIdentifier { kind, value }
}

fn is_digits(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

fn as_e164(s: &str) -> Option<String> {
    let digits = s.strip_prefix('+')?;
    is_digits(digits, 7, 15).then(|| s.to_owned())
}

fn is_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    }
}

/// A short word for a part without text, so `text` is never empty in HubSpot.
fn label(part: &Part) -> String {
    match part {
        Part::Text(_) => String::new(),
        Part::Image(_) => "[image]".into(),
        Part::Video(_) => "[video]".into(),
        Part::Audio(_) => "[audio]".into(),
        Part::VoiceNote(_) => "[voice message]".into(),
        Part::Sticker(_) => "[sticker]".into(),
        Part::File(m) => match &m.media.filename {
            Some(name) => format!("[file: {name}]"),
            None => "[file]".into(),
        },
        Part::Location(l) => match (&l.name, &l.address) {
            (Some(name), _) => format!("[location: {name}]"),
            (None, Some(address)) => format!("[location: {address}]"),
            (None, None) => format!("[location: {}, {}]", l.latitude, l.longitude),
        },
        Part::Contact(c) => match &c.name {
            Some(name) => format!("[contact: {name}]"),
            None => "[contact]".into(),
        },
        Part::Unsupported(u) => format!("[{} not supported]", u.platform_type),
    }
}

/// The message's text: its text parts and captions in order; a part without either is
/// named (`[image]`), and a file that could not be had says why.
pub fn text(parts: &[Part], files: &BTreeMap<usize, FileSlot>) -> String {
    let mut lines = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        match part {
            Part::Text(t) => lines.push(t.text.clone()),
            _ => {
                let caption = part.media().and_then(|m| m.caption.clone());
                match caption {
                    Some(c) if !c.trim().is_empty() => lines.push(c),
                    _ if part.media().is_some()
                        && matches!(files.get(&i), Some(FileSlot::Uploaded(_))) =>
                    {
                        // The file itself shows in HubSpot; a word keeps `text` non-empty.
                        if parts.len() == 1 {
                            lines.push(label(part));
                        }
                    }
                    _ => lines.push(label(part)),
                }
                if let Some(FileSlot::Unavailable(why)) = files.get(&i) {
                    lines.push(format!("({} could not be attached: {why})", label(part)));
                }
            }
        }
    }
    let text = lines.join("\n");
    if text.trim().is_empty() {
        "[empty message]".into()
    } else {
        text
    }
}

/// The text as HTML: escaped, one paragraph per line.
pub fn rich_text(text: &str) -> String {
    text.lines()
        .map(|line| format!("<p>{}</p>", escape_html(line)))
        .collect()
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The attachment a part becomes, if any (text parts have none).
pub fn attachment(part: &Part, file: Option<&FileSlot>) -> Option<Attachment> {
    match part {
        Part::Text(_) => None,
        Part::Location(l) => Some(Attachment::Location {
            latitude: l.latitude,
            longitude: l.longitude,
            name: l.name.clone(),
            address: l.address.clone(),
        }),
        Part::Contact(c) => {
            let name = c.name.as_ref().map(|full| {
                let (first, last) = match full.trim().rsplit_once(' ') {
                    Some((first, last)) => (first.to_owned(), Some(last.to_owned())),
                    None => (full.trim().to_owned(), None),
                };
                ContactName {
                    first_name: Some(first),
                    last_name: last,
                }
            });
            Some(Attachment::Contact {
                contact_profile: ContactProfile {
                    addresses: vec![],
                    emails: c
                        .emails
                        .iter()
                        .map(|e| ContactEmail { email: e.clone() })
                        .collect(),
                    phones: c
                        .phones
                        .iter()
                        .map(|p| ContactPhone {
                            phone: p.clone(),
                            kind: None,
                        })
                        .collect(),
                    urls: vec![],
                    name,
                },
            })
        }
        Part::Unsupported(_) => Some(Attachment::UnsupportedContent),
        _ => match file {
            Some(FileSlot::Uploaded(id)) => Some(Attachment::File {
                file_id: id.clone(),
                file_usage_type: file_usage_type(part),
            }),
            _ => Some(Attachment::UnsupportedContent),
        },
    }
}

/// Where the message goes in HubSpot: the channel account, shown as the channel.
pub struct Destination<'a> {
    pub channel_account_id: &'a str,
    /// Our channel id: the recipient's opaque delivery identifier.
    pub channel_id: &'a str,
    /// The channel's display name (`channels.ID.name`).
    pub channel_name: &'a str,
}

/// The publish request for `source`, with its media parts' files as `files` (by part
/// index).
pub fn message_egg(
    source: &PublishSource,
    to: &Destination<'_>,
    files: &BTreeMap<usize, FileSlot>,
) -> MessageEgg {
    let text = text(&source.parts, files);
    let attachments = source
        .parts
        .iter()
        .enumerate()
        .filter_map(|(i, part)| attachment(part, files.get(&i)))
        .collect();
    let at = source.sent_at.unwrap_or(source.received_at);
    MessageEgg {
        rich_text: Some(rich_text(&text)),
        text,
        message_direction: MessageDirection::Incoming,
        channel_account_id: to.channel_account_id.to_owned(),
        senders: vec![Participant {
            delivery_identifier: delivery_identifier(&source.contact),
            name: source.contact_name.clone(),
        }],
        recipients: vec![Participant {
            delivery_identifier: DeliveryIdentifier {
                kind: DeliveryIdentifierType::ChannelSpecificOpaqueId,
                value: to.channel_id.to_owned(),
            },
            name: Some(to.channel_name.to_owned()),
        }],
        timestamp: at.to_rfc3339_opts(SecondsFormat::Millis, true),
        attachments,
        integration_thread_id: Some(source.conversation_id.as_str().to_owned()),
        integration_idempotency_id: Some(source.message_id.as_str().to_owned()),
        in_reply_to_id: source.in_reply_to.clone(),
    }
}

/// The text of a note about an earlier message: what it says now after an edit, or that
/// the contact deleted it.
pub fn note_text(note: &PublishNote, parts: &[Part]) -> String {
    match note {
        PublishNote::Edited { .. } => {
            format!("edited: {}", text(parts, &BTreeMap::new()))
        }
        PublishNote::Retracted => "message deleted by the contact".into(),
    }
}

/// The publish request of a note about `source` (HubSpot can neither edit nor delete a
/// published message): from the same contact in the same thread, in reply to the message
/// (`original`, its HubSpot id) when HubSpot has it, without attachments.
pub fn note_egg(
    source: &PublishSource,
    to: &Destination<'_>,
    note: &PublishNote,
    original: Option<String>,
    at: chrono::DateTime<chrono::Utc>,
) -> MessageEgg {
    let mut egg = message_egg(source, to, &BTreeMap::new());
    let text = note_text(note, &source.parts);
    egg.rich_text = Some(rich_text(&text));
    egg.text = text;
    egg.attachments = Vec::new();
    egg.timestamp = at.to_rfc3339_opts(SecondsFormat::Millis, true);
    egg.integration_idempotency_id = Some(format!("{}:{}", source.message_id, note.key()));
    egg.in_reply_to_id = original;
    egg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MediaPart;

    fn id(kind: &str, value: &str) -> Identifier {
        Identifier {
            kind: kind.into(),
            value: value.into(),
        }
    }

    #[test]
    fn delivery_identifiers_are_phones_emails_or_opaque_ids() {
        let cases = [
            (
                "whatsapp_user",
                "15551234567",
                DeliveryIdentifierType::PhoneNumber,
                "+15551234567",
            ),
            (
                "twilio_address",
                "whatsapp:+14155550100",
                DeliveryIdentifierType::PhoneNumber,
                "+14155550100",
            ),
            (
                "twilio_address",
                "+14155550100",
                DeliveryIdentifierType::PhoneNumber,
                "+14155550100",
            ),
            (
                "app_user",
                "ana@example.com",
                DeliveryIdentifierType::EmailAddress,
                "ana@example.com",
            ),
            (
                "telegram_user",
                "424242",
                DeliveryIdentifierType::ChannelSpecificOpaqueId,
                "424242",
            ),
            (
                "messenger_psid",
                "6021234567",
                DeliveryIdentifierType::ChannelSpecificOpaqueId,
                "6021234567",
            ),
            (
                "line_user",
                "U4af4980629",
                DeliveryIdentifierType::ChannelSpecificOpaqueId,
                "U4af4980629",
            ),
            (
                "viber_user",
                "01234567890A=",
                DeliveryIdentifierType::ChannelSpecificOpaqueId,
                "01234567890A=",
            ),
        ];
        for (kind, value, want_kind, want_value) in cases {
            let got = delivery_identifier(&id(kind, value));
            assert_eq!(
                (got.kind, got.value.as_str()),
                (want_kind, want_value),
                "{kind} {value}"
            );
        }
    }

    #[test]
    fn each_media_kind_has_its_file_usage_type() {
        let m = || MediaPart {
            media: Default::default(),
            caption: None,
        };
        assert_eq!(
            file_usage_type(&Part::Image(m())),
            Some(FileUsageType::Image)
        );
        assert_eq!(
            file_usage_type(&Part::Audio(m())),
            Some(FileUsageType::Audio)
        );
        assert_eq!(
            file_usage_type(&Part::VoiceNote(m())),
            Some(FileUsageType::VoiceRecording)
        );
        assert_eq!(
            file_usage_type(&Part::Sticker(m())),
            Some(FileUsageType::Sticker)
        );
        assert_eq!(
            file_usage_type(&Part::Video(m())),
            Some(FileUsageType::Other)
        );
        assert_eq!(
            file_usage_type(&Part::File(m())),
            Some(FileUsageType::Other)
        );
    }

    #[test]
    fn text_is_never_empty_and_says_why_a_file_is_missing() {
        let image = Part::Image(MediaPart {
            media: Default::default(),
            caption: None,
        });
        let mut files = BTreeMap::new();
        files.insert(0, FileSlot::Uploaded("1".into()));
        assert_eq!(text(std::slice::from_ref(&image), &files), "[image]");
        files.insert(0, FileSlot::Unavailable("gone".into()));
        assert_eq!(
            text(std::slice::from_ref(&image), &files),
            "[image]\n([image] could not be attached: gone)"
        );
        files.insert(0, FileSlot::NoFile);
        assert_eq!(text(std::slice::from_ref(&image), &files), "[image]");
        assert_eq!(text(&[], &BTreeMap::new()), "[empty message]");
    }

    #[test]
    fn notes_say_what_became_of_the_message() {
        let parts = [Part::Text(crate::model::TextPart {
            text: "Order #992, not #991".into(),
        })];
        assert_eq!(
            note_text(&PublishNote::Edited { revision: 1 }, &parts),
            "edited: Order #992, not #991"
        );
        assert_eq!(
            note_text(&PublishNote::Retracted, &parts),
            "message deleted by the contact"
        );
        assert_eq!(PublishNote::Edited { revision: 2 }.key(), "edited-2");
    }

    #[test]
    fn rich_text_is_escaped_html() {
        assert_eq!(rich_text("a<b>\nc&d"), "<p>a&lt;b&gt;</p><p>c&amp;d</p>");
    }
}
