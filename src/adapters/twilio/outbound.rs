//! Replies out: a reply's parts planned as Twilio messages, where each goes, and how
//! Twilio's answer is classified.

use chrono::Utc;
use serde_json::Value;

use crate::adapters::{SendError, classify_status, retry_after};
use crate::model::Part;

use super::{MAX_BODY_CHARS, RATE_LIMITED_CODE, is_messaging_service};

/// One message to create: its text, its file, or both.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TwilioMessage {
    pub body: Option<String>,
    pub media_url: Option<String>,
}

/// What a reply becomes on Twilio, and notes on what could not go out as written.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub messages: Vec<TwilioMessage>,
    pub notes: Vec<String>,
}

fn split_body(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(MAX_BODY_CHARS)
        .map(|piece| piece.iter().collect())
        .collect()
}

impl Plan {
    fn push_text(&mut self, text: &str) {
        for body in split_body(text) {
            self.messages.push(TwilioMessage {
                body: Some(body),
                media_url: None,
            });
        }
    }

    fn push_media(&mut self, url: &str, body: Option<String>) {
        let mut pieces = body
            .as_deref()
            .map(split_body)
            .unwrap_or_default()
            .into_iter();
        self.messages.push(TwilioMessage {
            body: pieces.next(),
            media_url: Some(url.to_owned()),
        });
        for rest in pieces {
            self.push_text(&rest);
        }
    }
}

/// Turns a reply's parts into Twilio messages, in order: one per text and one per file;
/// a text right before a file without a caption becomes that file's caption.
pub fn plan(parts: &[Part]) -> Plan {
    let mut plan = Plan::default();
    let mut pending: Option<String> = None;
    let flush = |plan: &mut Plan, pending: &mut Option<String>| {
        if let Some(text) = pending.take() {
            plan.push_text(&text);
        }
    };
    for part in parts {
        match part {
            Part::Text(t) if t.text.trim().is_empty() => {}
            Part::Text(t) => {
                flush(&mut plan, &mut pending);
                pending = Some(t.text.clone());
            }
            Part::Image(m)
            | Part::Video(m)
            | Part::Audio(m)
            | Part::VoiceNote(m)
            | Part::Sticker(m)
            | Part::File(m) => {
                let caption = m.caption.clone().filter(|c| !c.trim().is_empty());
                match m.media.url.as_deref() {
                    Some(url) => {
                        let body = match caption {
                            Some(caption) => {
                                flush(&mut plan, &mut pending);
                                Some(caption)
                            }
                            None => pending.take(),
                        };
                        plan.push_media(url, body);
                    }
                    None => {
                        flush(&mut plan, &mut pending);
                        pending = caption;
                        plan.notes.push(
                            "a file without a URL was not sent: Twilio sends files by URL only"
                                .into(),
                        );
                    }
                }
            }
            Part::Location(l) => {
                flush(&mut plan, &mut pending);
                let mut lines: Vec<String> =
                    l.name.iter().chain(l.address.iter()).cloned().collect();
                lines.push(format!(
                    "https://maps.google.com/?q={},{}",
                    l.latitude, l.longitude
                ));
                pending = Some(lines.join("\n"));
                plan.notes
                    .push("location sent as a map link: Twilio sends text and files".into());
            }
            Part::Contact(c) => {
                flush(&mut plan, &mut pending);
                let lines: Vec<&str> = c
                    .name
                    .as_deref()
                    .into_iter()
                    .chain(c.phones.iter().map(String::as_str))
                    .chain(c.emails.iter().map(String::as_str))
                    .collect();
                pending = Some(lines.join("\n"));
                plan.notes
                    .push("contact sent as text: Twilio sends text and files".into());
            }
            Part::Unsupported(u) => plan.notes.push(format!(
                "{} part not sent: Twilio has no such message",
                u.platform_type
            )),
        }
    }
    flush(&mut plan, &mut pending);
    plan
}

/// Where a reply goes: (sender param name, sender, recipient). The recipient is the
/// contact; the sender is the Messaging Service when `from` names one, else the number
/// the contact wrote to (the thread's `To`), else `from`.
pub(super) fn addresses<'a>(
    config_from: &'a str,
    thread: Option<&'a str>,
    contact: &'a str,
) -> (&'static str, &'a str, &'a str) {
    let (ours, to) = match thread.and_then(|t| split_thread(t, contact)) {
        Some((ours, theirs)) => (Some(ours), theirs),
        None => (None, contact),
    };
    if is_messaging_service(config_from) {
        ("MessagingServiceSid", config_from, to)
    } else {
        ("From", ours.unwrap_or(config_from), to)
    }
}

/// Splits a thread id `"{To}:{From}"` into (our address, the contact's address). Both
/// halves may hold a colon (`whatsapp:+1…`), so the contact's known address decides.
pub fn split_thread<'a>(thread: &'a str, contact: &str) -> Option<(&'a str, &'a str)> {
    if let Some(ours) = thread
        .strip_suffix(contact)
        .and_then(|rest| rest.strip_suffix(':'))
        .filter(|ours| !ours.is_empty())
    {
        return Some((ours, &thread[thread.len() - contact.len()..]));
    }
    // Unknown contact: both halves have the same shape, so split in the middle colon.
    let colons: Vec<usize> = thread.match_indices(':').map(|(i, _)| i).collect();
    if colons.len().is_multiple_of(2) {
        return None;
    }
    let middle = colons[colons.len() / 2];
    let (ours, theirs) = (&thread[..middle], &thread[middle + 1..]);
    (!ours.is_empty() && !theirs.is_empty()).then_some((ours, theirs))
}

/// Classifies a refused create: Twilio's `code` 20429 (or HTTP 429) is a rate limit; the
/// reason names Twilio's code and message.
pub fn classify(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> SendError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let code = parsed.as_ref().and_then(|v| v.get("code")?.as_u64());
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message")?.as_str().map(str::to_owned));
    let named = code.map(|code| match &message {
        Some(message) => format!("Twilio error {code}: {message} (HTTP {status})"),
        None => format!("Twilio error {code} (HTTP {status})"),
    });
    if code == Some(RATE_LIMITED_CODE) || status.as_u16() == 429 {
        return SendError::RateLimited {
            reason: named.unwrap_or_else(|| format!("HTTP {status}")),
            retry_after: retry_after(headers, Utc::now()),
        };
    }
    match (classify_status(status, headers, body), named) {
        (SendError::Permanent { .. }, Some(reason)) => SendError::Permanent { reason },
        (SendError::Retryable { retry_after, .. }, Some(reason)) => SendError::Retryable {
            reason,
            retry_after,
        },
        (other, _) => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::twilio::tests::{media_part_with, text};
    use crate::model::ContactPart;
    use crate::model::{LocationPart, Part, UnsupportedPart};

    fn msg(body: Option<&str>, media_url: Option<&str>) -> TwilioMessage {
        TwilioMessage {
            body: body.map(str::to_owned),
            media_url: media_url.map(str::to_owned),
        }
    }

    #[test]
    fn replies_become_messages_in_order_with_text_as_the_next_file_s_caption() {
        let plan = plan(&[
            text("Here is the label"),
            Part::File(media_part_with(Some("https://x.example/label.pdf"), None)),
            text("And the photo:"),
            Part::Image(media_part_with(
                Some("https://x.example/a.jpg"),
                Some("front"),
            )),
            Part::Sticker(media_part_with(Some("https://x.example/s.webp"), None)),
            text("Bye"),
        ]);
        assert_eq!(
            plan.messages,
            vec![
                msg(
                    Some("Here is the label"),
                    Some("https://x.example/label.pdf")
                ),
                msg(Some("And the photo:"), None),
                msg(Some("front"), Some("https://x.example/a.jpg")),
                msg(None, Some("https://x.example/s.webp")),
                msg(Some("Bye"), None),
            ]
        );
        assert!(plan.notes.is_empty());
    }

    #[test]
    fn parts_twilio_cannot_carry_go_as_text_with_a_note() {
        let plan = plan(&[
            Part::Location(LocationPart {
                latitude: 51.5,
                longitude: -0.12,
                name: Some("Office".into()),
                address: None,
            }),
            Part::Contact(ContactPart {
                name: Some("Bo".into()),
                phones: vec!["+4912345".into()],
                emails: vec!["bo@example.com".into()],
            }),
            Part::Image(media_part_with(None, Some("lost photo"))),
            Part::Unsupported(UnsupportedPart {
                platform_type: "poll".into(),
                raw: None,
            }),
        ]);
        assert_eq!(
            plan.messages,
            vec![
                msg(Some("Office\nhttps://maps.google.com/?q=51.5,-0.12"), None),
                msg(Some("Bo\n+4912345\nbo@example.com"), None),
                msg(Some("lost photo"), None),
            ]
        );
        assert_eq!(plan.notes.len(), 4, "{:?}", plan.notes);
        assert!(plan.notes[0].starts_with("location sent as a map link"));
        assert!(plan.notes[3].starts_with("poll part not sent"));
    }

    #[test]
    fn long_texts_are_split_at_twilio_s_limit() {
        let plan = plan(&[text(&"x".repeat(MAX_BODY_CHARS * 2 + 1))]);
        assert_eq!(plan.messages.len(), 3);
        assert_eq!(plan.messages[2].body.as_deref(), Some("x"));
    }

    #[test]
    fn threads_split_into_our_address_and_the_contact_s() {
        assert_eq!(
            split_thread("+14155550100:+14155550123", "+14155550123"),
            Some(("+14155550100", "+14155550123"))
        );
        assert_eq!(
            split_thread(
                "whatsapp:+14155550100:whatsapp:+447700900123",
                "whatsapp:+447700900123"
            ),
            Some(("whatsapp:+14155550100", "whatsapp:+447700900123"))
        );
        // The contact hint does not match: fall back to the middle colon.
        assert_eq!(
            split_thread("whatsapp:+1:whatsapp:+44", "+99"),
            Some(("whatsapp:+1", "whatsapp:+44"))
        );
        assert_eq!(split_thread("nocolon", "+99"), None);
        assert_eq!(
            addresses(
                "+14155550199",
                Some("+14155550100:+14155550123"),
                "+14155550123"
            ),
            ("From", "+14155550100", "+14155550123")
        );
        assert_eq!(
            addresses("+14155550199", None, "+14155550123"),
            ("From", "+14155550199", "+14155550123")
        );
        let service = "MG0123456789abcdef0123456789abcdef";
        assert_eq!(
            addresses(service, Some("+14155550100:+14155550123"), "+14155550123"),
            ("MessagingServiceSid", service, "+14155550123")
        );
    }
}
