//! What reps are told by email: the text of a new message, its attachments, and a link.

use crate::model::Part;

/// The most characters of the opening message an owner email's subject quotes.
const SUBJECT_CHARS: usize = 60;

/// Where a message stands in its conversation, for the owner email's subject.
pub struct Opening<'a> {
    /// The conversation's first inbound message.
    pub parts: &'a [Part],
    /// Whether the message being emailed is that first one.
    pub is_this_message: bool,
}

/// Subject and text of the email an offline contact owner gets for a new message. Every
/// email of a conversation carries the subject of its first, which says what the contact
/// opened with; the later ones answer it (`Re: …`), so a mail client shows one thread
/// with a subject worth reading rather than the same "new message" line each time.
pub fn owner_email(
    contact: &str,
    channel: &str,
    opening: Opening<'_>,
    parts: &[Part],
    link: Option<&str>,
) -> (String, String) {
    let about = preview_within(opening.parts, SUBJECT_CHARS);
    let subject = if opening.is_this_message {
        format!("{contact} on {channel}: {about}")
    } else {
        format!("Re: {contact} on {channel}: {about}")
    };
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
                let kind = kind(part);
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

/// Characters of a message a live client gets as its preview.
const PREVIEW_CHARS: usize = 120;

/// A one-line preview of a message for live clients (the `message.created` event): its
/// text and captions on one line, cut at a word near [`PREVIEW_CHARS`] with `…`; for a
/// message without text, what it holds (`[image]`).
pub fn preview(parts: &[Part]) -> String {
    preview_within(parts, PREVIEW_CHARS)
}

/// [`preview`], cut near `chars` characters.
fn preview_within(parts: &[Part], chars: usize) -> String {
    let text: Vec<&str> = parts
        .iter()
        .filter_map(Part::text)
        .flat_map(str::split_whitespace)
        .collect();
    let text = text.join(" ");
    if text.is_empty() {
        return parts
            .first()
            .map(|p| format!("[{}]", kind(p)))
            .unwrap_or_default();
    }
    match text.char_indices().nth(chars) {
        None => text,
        Some((cut, _)) => {
            let head = &text[..cut];
            let head = head.rsplit_once(' ').map_or(head, |(words, _)| words);
            format!("{head}…")
        }
    }
}

/// What a part is, in words.
fn kind(part: &Part) -> &str {
    match part {
        Part::Text(_) => "text",
        Part::Image(_) => "image",
        Part::Video(_) => "video",
        Part::Audio(_) => "audio",
        Part::VoiceNote(_) => "voice note",
        Part::Sticker(_) => "sticker",
        Part::File(_) => "file",
        Part::Location(_) => "location",
        Part::Contact(_) => "contact card",
        Part::Unsupported(u) => &u.platform_type,
    }
}

/// Subject and text of the email a rep gets when a colleague mentions them in an internal
/// comment while they are offline.
pub fn mention_email(
    author: &str,
    contact: &str,
    channel: &str,
    comment: &str,
    link: Option<&str>,
) -> (String, String) {
    let subject = format!("{author} mentioned you in the conversation with {contact}");
    let mut text = format!(
        "{author} mentioned you in an internal comment on the conversation with {contact} on {channel}:\n\n{comment}\n"
    );
    if let Some(link) = link {
        text.push_str(&format!("\nOpen the conversation: {link}\n"));
    }
    (subject, text)
}

/// One new message for a digest: who wrote, where, what.
#[derive(Clone, Debug, PartialEq)]
pub struct DigestItem {
    pub contact: String,
    pub channel: String,
    pub conversation: String,
    pub text: String,
}

/// Subject and text of a digest of new messages in a rep's conversations.
pub fn digest_email(items: &[DigestItem], link_base: Option<&str>) -> (String, String) {
    let subject = match items.len() {
        1 => "1 new message in your conversations".to_owned(),
        n => format!("{n} new messages in your conversations"),
    };
    let mut text = String::from("While you were away:\n\n");
    for item in items {
        text.push_str(&format!(
            "{} on {}: {}\n",
            item.contact, item.channel, item.text
        ));
        if let Some(base) = link_base {
            text.push_str(&format!(
                "  {base}/api/v1/conversations/{}\n",
                item.conversation
            ));
        }
    }
    (subject, text)
}

/// Where a rep's next digest starts: their last digest, or one interval back for a first;
/// `None` while their last digest is less than an interval old (at most one per interval).
pub fn digest_since(last: Option<i64>, now: i64, interval_ms: i64) -> Option<i64> {
    match last {
        Some(at) if at > now - interval_ms => None,
        Some(at) => Some(at),
        None => Some(now - interval_ms),
    }
}

/// A message as a digest lists it, from its parts as stored (JSON): its text, or that it
/// is an attachment.
pub fn digest_item(
    contact: String,
    channel: String,
    conversation: String,
    parts: &str,
) -> DigestItem {
    // Stored by us as a JSON list of parts; a row that is not reads as an attachment.
    let parts: Vec<Part> = serde_json::from_str(parts).unwrap_or_default();
    let text: Vec<&str> = parts.iter().filter_map(Part::text).collect();
    DigestItem {
        contact,
        channel,
        conversation,
        text: if text.is_empty() {
            "(an attachment)".into()
        } else {
            text.join(" ")
        },
    }
}

/// The digest e-mail for rep `rep` at `to`: one per run, all of a rep's digests in one
/// mail thread (`digest-{rep}`, also the outbox key).
pub fn digest_job(
    rep: &str,
    to: &str,
    items: &[DigestItem],
    link_base: Option<&str>,
    now: i64,
) -> crate::model::outbound::Email {
    let (subject, text) = digest_email(items, link_base);
    crate::model::outbound::Email {
        to: to.to_owned(),
        subject,
        text,
        id: format!("digest-{rep}-{now}"),
        thread: format!("digest-{rep}"),
        reply_to: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Media, MediaPart, TextPart};

    #[test]
    fn a_preview_is_the_text_on_one_line_cut_at_a_word_or_what_the_message_holds() {
        let text = |t: &str| Part::Text(TextPart { text: t.to_owned() });
        let image = Part::Image(MediaPart {
            media: Media::default(),
            caption: None,
        });
        let long = "word ".repeat(40);
        let cases: Vec<(Vec<Part>, String)> = vec![
            (vec![text("hello\n  there")], "hello there".into()),
            (vec![image.clone(), text("see")], "see".into()),
            (vec![image], "[image]".into()),
            (vec![], String::new()),
            (
                vec![text(&long)],
                format!("{}…", "word ".repeat(24).trim_end()),
            ),
        ];
        for (parts, expected) in cases {
            assert_eq!(preview(&parts), expected, "{parts:?}");
        }
    }

    #[test]
    fn a_digest_lists_each_new_message_with_a_link() {
        let item = |contact: &str, text: &str| DigestItem {
            contact: contact.into(),
            channel: "wa".into(),
            conversation: format!("conv_{contact}"),
            text: text.into(),
        };
        let (subject, text) = digest_email(
            &[item("Ana", "hi"), item("Bo", "refund?")],
            Some("https://b"),
        );
        assert_eq!(subject, "2 new messages in your conversations");
        assert!(text.contains("Ana on wa: hi\n  https://b/api/v1/conversations/conv_Ana\n"));
        assert!(text.contains("Bo on wa: refund?"));
    }

    #[test]
    fn a_mention_email_says_who_mentioned_whom_where_with_the_comment_and_a_link() {
        let (subject, text) = mention_email(
            "alice",
            "Ana",
            "wa",
            "@bob can we refund?",
            Some("https://b/api/v1/conversations/conv_1"),
        );
        assert_eq!(subject, "alice mentioned you in the conversation with Ana");
        assert!(text.contains("on wa:\n\n@bob can we refund?\n"), "{text}");
        assert!(text.ends_with("Open the conversation: https://b/api/v1/conversations/conv_1\n"));
    }

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
        let opening = [Part::Text(TextPart {
            text: "Hello, my order 4412 never arrived and the tracking page says nothing at all"
                .into(),
        })];
        let (subject, text) = owner_email(
            "Ana",
            "WhatsApp support",
            Opening {
                parts: &parts,
                is_this_message: true,
            },
            &parts,
            Some("https://bridge/api/v1/conversations/conv_1"),
        );
        assert_eq!(
            subject,
            "Ana on WhatsApp support: are you there? my receipt"
        );
        let (later, _) = owner_email(
            "Ana",
            "WhatsApp support",
            Opening {
                parts: &opening,
                is_this_message: false,
            },
            &parts,
            None,
        );
        assert_eq!(
            later,
            "Re: Ana on WhatsApp support: Hello, my order 4412 never arrived and the tracking \
             page…"
        );
        assert!(text.contains("are you there?\nmy receipt\n"));
        assert!(text.contains("Attachments:\n- image: receipt.png"));
        assert!(
            text.ends_with("Open the conversation: https://bridge/api/v1/conversations/conv_1\n")
        );
    }

    #[test]
    fn a_digest_is_due_once_per_interval_and_a_first_one_looks_one_interval_back() {
        assert_eq!(digest_since(None, 10_000, 1_000), Some(9_000));
        assert_eq!(digest_since(Some(8_000), 10_000, 1_000), Some(8_000));
        assert_eq!(digest_since(Some(9_000), 10_000, 1_000), Some(9_000));
        assert_eq!(digest_since(Some(9_001), 10_000, 1_000), None);
    }

    #[test]
    fn a_digest_lists_a_message_by_its_text_or_as_an_attachment() {
        let item =
            |parts: &str| digest_item("Ann".into(), "Support".into(), "conv_1".into(), parts).text;
        assert_eq!(
            item(r#"[{"type":"text","text":"a"},{"type":"text","text":"b"}]"#),
            "a b"
        );
        assert_eq!(item("[]"), "(an attachment)");
        assert_eq!(item("not json"), "(an attachment)");
    }

    #[test]
    fn every_digest_of_a_rep_shares_one_mail_thread_and_has_its_own_id() {
        let items = [digest_item(
            "Ann".into(),
            "Support".into(),
            "conv_1".into(),
            r#"[{"type":"text","text":"hi"}]"#,
        )];
        let email = digest_job("bob", "bob@example.com", &items, None, 42);
        assert_eq!(email.to, "bob@example.com");
        assert_eq!(email.id, "digest-bob-42");
        assert_eq!(email.thread, "digest-bob");
        assert_eq!(email.subject, "1 new message in your conversations");
        assert!(email.text.contains("Ann on Support: hi"), "{}", email.text);
    }
}
