//! One raw RFC 5322 message (from IMAP or a provider's raw MIME) as normalized events.
//!
//! Pure: bytes in, events out. The text a rep reads is the new part of the mail only
//! (quoted history and signatures stripped); the whole original is kept in `raw.mime` so
//! nothing is lost, and attachments are served from it by their index
//! (`mime:{message id}#{n}`, see [`attachment`]). Knows nothing of threading or storage.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::IDENTIFIER_TYPE;
use crate::adapters::{InboundContact, InboundEvent, InboundMessage, ParseError, invalid};
use crate::model::{Identifier, Media, MediaPart, Part, TextPart};

/// The prefix of the media reference of an attachment kept inside the raw message.
pub const MEDIA_REF_PREFIX: &str = "mime:";

/// The largest raw message taken: a provider's limit is 25-40 MB with encoding, and a
/// bigger one is refused whole rather than half-read.
pub const MAX_RAW_BYTES: usize = 40 * 1024 * 1024;

/// One raw RFC 5322 message (IMAP, or a provider's raw MIME) as normalized events.
pub fn parse_raw(raw: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    if raw.len() > MAX_RAW_BYTES {
        return Err(invalid(
            "mime",
            format!("the message is larger than {MAX_RAW_BYTES} bytes"),
        ));
    }
    let message = parse_message(raw)?;
    let from = sender(&message)?;
    let platform_message_id = message_id(&message, raw);
    let references = id_list(message.references());
    let in_reply_to = id_list(message.in_reply_to());
    let subject = message.subject().map(str::to_owned);
    let mut parts = Vec::new();
    let text = body_text(&message);
    let text = strip_quoted(&text);
    if !text.trim().is_empty() {
        parts.push(Part::Text(TextPart { text }));
    }
    parts.extend(attachment_parts(&message, &platform_message_id));
    if parts.is_empty() {
        // A mail with an empty body still says something: its subject, or that it was empty.
        let text = subject
            .clone()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "(empty e-mail)".into());
        parts.push(Part::Text(TextPart { text }));
    }
    let sent_at = message
        .date()
        .and_then(|d| DateTime::<Utc>::from_timestamp(d.to_timestamp(), 0));
    let raw_value = raw_json(&message, raw, &references, &in_reply_to);
    let recipients = recipients(&message);
    if let Some(bounce) = bounce(&message, raw, &from) {
        return Ok(vec![InboundEvent::Status(bounce)]);
    }
    let header = |name: &str| message.header_raw(name).map(|v| v.trim().to_owned());
    let headers = Headers {
        auto_submitted: header("Auto-Submitted"),
        precedence: header("Precedence"),
        x_autoreply: header("X-Autoreply").is_some() || header("X-Autorespond").is_some(),
        subject: subject.clone().unwrap_or_default(),
        from: from.identifier.value.clone(),
    };
    let envelope = Envelope {
        message_id: platform_message_id,
        from,
        in_reply_to,
        references,
        recipients,
    };
    Ok(envelope.into_events(parts, sent_at, raw_value, &headers))
}

/// Who sent a mail and how it threads, however it came in (raw MIME, Postmark, Mailgun).
pub struct Envelope {
    /// The Message-ID without angle brackets: the deduplication key.
    pub message_id: String,
    pub from: InboundContact,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// To and Cc, for the plus-addressed conversation hint.
    pub recipients: Vec<String>,
}

impl Envelope {
    /// The message these headers and this content make, kept or dropped as `headers` say.
    pub fn into_events(
        self,
        parts: Vec<Part>,
        sent_at: Option<DateTime<Utc>>,
        raw: Value,
        headers: &Headers,
    ) -> Vec<InboundEvent> {
        let reply_to = self.in_reply_to.first().or(self.references.last()).cloned();
        // The thread root: the first reference names the mail that started the thread.
        let thread_id = self
            .references
            .first()
            .or(self.in_reply_to.first())
            .cloned()
            .or_else(|| Some(self.message_id.clone()));
        let conversation_hint =
            conversation_hint(&self.recipients, &self.in_reply_to, &self.references);
        let message = InboundMessage {
            platform_message_id: self.message_id,
            thread_id,
            from: self.from,
            reply_to,
            conversation_hint,
            parts,
            sent_at,
            raw,
        };
        classify(message, headers)
    }
}

/// A contact known by their (lower-cased) e-mail address.
pub fn contact(address: String, display_name: Option<String>) -> InboundContact {
    InboundContact {
        identifier: Identifier {
            kind: IDENTIFIER_TYPE.into(),
            value: address.clone(),
        },
        display_name,
        email: Some(address),
    }
}

/// The headers that tell an automatic mail from a person's.
pub struct Headers {
    pub auto_submitted: Option<String>,
    pub precedence: Option<String>,
    /// `X-Autoreply` or `X-Autorespond` is present.
    pub x_autoreply: bool,
    pub subject: String,
    pub from: String,
}

/// Whether a mail was sent by a machine on a person's behalf (a vacation notice, an
/// "we got your mail" reply, a list's bulk mail): such a mail must not open or reopen a
/// ticket, or two auto-responders would write to each other forever (RFC 3834).
pub fn is_auto_reply(h: &Headers) -> bool {
    let auto_submitted = h
        .auto_submitted
        .as_deref()
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| !v.is_empty() && v != "no");
    let precedence = h
        .precedence
        .as_deref()
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| matches!(v.as_str(), "auto_reply" | "bulk" | "junk" | "list"));
    let subject = h.subject.trim().to_lowercase();
    let vacation = [
        "out of office",
        "out-of-office",
        "automatic reply",
        "auto-reply",
        "autoreply",
        "abwesenheitsnotiz",
        "réponse automatique",
    ]
    .iter()
    .any(|s| subject.starts_with(s) || subject.contains(&format!(": {s}")));
    auto_submitted || precedence || h.x_autoreply || vacation
}

/// A message, or nothing when it is an automatic reply: those are dropped (see
/// docs/platforms/email.md) and counted by the channel.
pub fn classify(message: InboundMessage, headers: &Headers) -> Vec<InboundEvent> {
    if is_auto_reply(headers) {
        tracing::info!(
            platform_message_id = %message.platform_message_id,
            "Dropped an automatic e-mail reply; it neither opens nor reopens a ticket."
        );
        metrics::counter!("channel_bridge_email_auto_replies_dropped_total").increment(1);
        return Vec::new();
    }
    vec![InboundEvent::Message(message)]
}

/// The conversation a mail answers, as a `conv_…` or `msg_…` id, from what we put in the
/// mail we sent: the plus-addressed reply-to (`support+conv_…@`), else In-Reply-To, else
/// the nearest References entry whose local part is one of our ids. The store uses it only
/// for a conversation of the same contact on the same channel.
pub fn conversation_hint(
    recipients: &[String],
    in_reply_to: &[String],
    references: &[String],
) -> Option<String> {
    let plus = recipients.iter().find_map(|r| {
        let local = r.split('@').next()?;
        let tag = local.split_once('+')?.1;
        let rest = tag
            .strip_prefix(crate::model::ConversationId::PREFIX)
            .or_else(|| tag.strip_prefix("CONV_"))?;
        // Mail systems may lower-case the address; ULIDs are upper-case.
        let id = format!(
            "{}{}",
            crate::model::ConversationId::PREFIX,
            rest.to_uppercase()
        );
        crate::model::ConversationId::parse(&id).map(|id| id.to_string())
    });
    plus.or_else(|| {
        in_reply_to
            .iter()
            .chain(references.iter().rev())
            .find_map(|id| {
                let local = id.split('@').next()?;
                let ours = crate::model::ConversationId::parse(local).is_some()
                    || crate::model::MessageId::parse(local).is_some();
                ours.then(|| local.to_owned())
            })
    })
}

/// The addresses a mail was sent to (To, Cc, Delivered-To), lower-cased.
fn recipients(message: &Message<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for list in [message.to(), message.cc()].into_iter().flatten() {
        out.extend(
            list.iter()
                .filter_map(|a| a.address())
                .map(|a| a.trim().to_lowercase()),
        );
    }
    for header in message.root_part().headers.iter() {
        if (header.name().eq_ignore_ascii_case("Delivered-To")
            || header.name().eq_ignore_ascii_case("X-Original-To"))
            && let Some(v) = header.value().as_text()
        {
            out.push(v.trim().trim_matches(['<', '>']).to_lowercase());
        }
    }
    out
}

/// A delivery failure report about a mail we sent, as a failed status of that mail: a DSN
/// (`multipart/report; report-type=delivery-status`) or a bounce from MAILER-DAEMON or
/// postmaster that quotes the original's Message-ID.
fn bounce(
    message: &Message<'_>,
    raw: &[u8],
    from: &InboundContact,
) -> Option<crate::adapters::StatusUpdate> {
    let report = message.root_part().content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct
                .attribute("report-type")
                .is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"))
    });
    let local = from.identifier.value.split('@').next().unwrap_or_default();
    let daemon = matches!(local, "mailer-daemon" | "postmaster");
    if !report && !daemon {
        return None;
    }
    // The original's Message-ID is in its returned headers: the first of ours after the
    // report's own header block.
    let own = message.message_id().unwrap_or_default();
    let text = String::from_utf8_lossy(raw);
    let original = text
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("message-id")
                .then(|| value.trim().trim_matches(['<', '>']).to_owned())
        })
        .find(|id| {
            id != own
                && id
                    .split('@')
                    .next()
                    .is_some_and(|l| crate::model::MessageId::parse(l).is_some())
        })?;
    let diagnostic = text
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("diagnostic-code")
                .then(|| value.trim().to_owned())
        })
        .or_else(|| {
            text.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                (name.trim().eq_ignore_ascii_case("status") && value.trim().starts_with('5'))
                    .then(|| format!("status {}", value.trim()))
            })
        })
        .or_else(|| message.subject().map(str::to_owned))
        .unwrap_or_else(|| "the mail bounced".into());
    Some(crate::adapters::StatusUpdate {
        platform_message_id: original,
        status: crate::model::DeliveryStatus::Failed,
        error: Some(format!("bounced: {diagnostic}")),
    })
}

/// Parses the bytes as a message with at least a header block.
pub(crate) fn parse_message(raw: &[u8]) -> Result<Message<'_>, ParseError> {
    let message = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| invalid("mime", "is not an RFC 5322 message"))?;
    if message.root_part().headers.is_empty() {
        return Err(invalid("mime", "has no header fields"));
    }
    Ok(message)
}

/// The sender: the `From` address (lower-cased, so the same person is one contact).
fn sender(message: &Message<'_>) -> Result<InboundContact, ParseError> {
    let addr = message
        .from()
        .and_then(|a| a.first())
        .ok_or_else(|| invalid("mime.from", "is missing"))?;
    let address = addr
        .address()
        .map(|a| a.trim().to_lowercase())
        .filter(|a| a.contains('@'))
        .ok_or_else(|| invalid("mime.from", "has no e-mail address"))?;
    let display_name = addr
        .name()
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.eq_ignore_ascii_case(&address))
        .map(str::to_owned);
    Ok(contact(address, display_name))
}

/// The Message-ID without angle brackets, or a stable id derived from the bytes when the
/// mail has none (so a redelivery of the same bytes is still a duplicate).
fn message_id(message: &Message<'_>, raw: &[u8]) -> String {
    match message
        .message_id()
        .map(str::trim)
        .filter(|id| !id.is_empty())
    {
        Some(id) => id.to_owned(),
        None => format!(
            "sha256-{}@channel-bridge.invalid",
            hex::encode(Sha256::digest(raw))
        ),
    }
}

/// The message ids of an `In-Reply-To` or `References` header, in order.
fn id_list(value: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    let ids: Vec<&str> = match value {
        mail_parser::HeaderValue::Text(id) => vec![id.as_ref()],
        mail_parser::HeaderValue::TextList(ids) => ids.iter().map(|i| i.as_ref()).collect(),
        _ => Vec::new(),
    };
    ids.into_iter()
        .map(|id| id.trim().trim_matches(['<', '>']).to_owned())
        .filter(|id| !id.is_empty())
        .collect()
}

/// The readable body: the first text/plain body, else the HTML body as text with its
/// quoted history cut off first (in HTML it is marked up, not prefixed with `>`).
fn body_text(message: &Message<'_>) -> String {
    let text = match message.text_part(0).map(|p| &p.body) {
        Some(PartType::Html(html)) => {
            mail_parser::decoders::html::html_to_text(&html_without_history(html))
        }
        _ => message
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
    };
    text.replace("\r\n", "\n")
}

/// HTML as text, without its quoted history.
pub fn html_to_text(html: &str) -> String {
    mail_parser::decoders::html::html_to_text(&html_without_history(html)).replace("\r\n", "\n")
}

/// The HTML up to its first quoted-history block (Gmail's `gmail_quote`, Outlook's
/// `divRplyFwdMsg`, Thunderbird's `moz-cite-prefix`, any `<blockquote>`), with block
/// elements on lines of their own so the attribution line can still be found.
fn html_without_history(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let cut = [
        "<blockquote",
        "class=\"gmail_quote",
        "id=\"divrplyfwdmsg\"",
        "id=\"appendonsend\"",
        "class=\"moz-cite-prefix\"",
    ]
    .iter()
    .filter_map(|marker| {
        let at = lower.find(marker)?;
        // An attribute marker cuts at the start of its tag.
        Some(if marker.starts_with('<') {
            at
        } else {
            lower[..at].rfind('<').unwrap_or(at)
        })
    })
    .min()
    .unwrap_or(html.len());
    // Both strings have the same byte offsets: only ASCII letters changed case.
    html[..cut]
        .replace("<div", "<br><div")
        .replace("<DIV", "<br><DIV")
}

/// The text with the quoted history of a reply taken out: everything from an attribution
/// line ("On … wrote:", Outlook's "-----Original Message-----" or "From:/Sent:" block) or a
/// signature delimiter ("-- ") on, and `>`-quoted lines. A mail that is nothing but quote
/// (a forward) keeps its text.
pub fn strip_quoted(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut kept: Vec<&str> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        if starts_history(&lines, i) || *line == "-- " || trimmed == "--" {
            break;
        }
        if trimmed.starts_with('>') {
            continue;
        }
        kept.push(line.trim_end());
    }
    let mut out = String::new();
    let mut blank = false;
    for line in kept {
        if line.trim().is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if blank {
            out.push_str("\n\n");
        } else if !out.is_empty() {
            out.push('\n');
        }
        blank = false;
        out.push_str(line);
    }
    if out.trim().is_empty() {
        text.trim().to_owned()
    } else {
        out
    }
}

/// Whether line `i` starts the quoted history of a reply.
fn starts_history(lines: &[&str], i: usize) -> bool {
    let line = lines[i].trim();
    let lower = line.to_lowercase();
    // Outlook and many others: "-----Original Message-----", or a rule of underscores
    // before a "From:" block.
    if lower.starts_with("-----") && lower.contains("original message") {
        return true;
    }
    if lower.starts_with("-----") && lower.contains("forwarded message") {
        return false;
    }
    let next = |k: usize| lines.get(i + k).map(|l| l.trim().to_lowercase());
    if line.len() >= 10 && line.chars().all(|c| c == '_') {
        return next(1).is_some_and(|n| n.starts_with("from:"));
    }
    if lower.starts_with("from:") {
        // An Outlook header block: From: then Sent:/Date: then To:/Subject: close below.
        let below: Vec<String> = (1..=4).filter_map(next).collect();
        return below
            .iter()
            .any(|l| l.starts_with("sent:") || l.starts_with("date:"))
            && below
                .iter()
                .any(|l| l.starts_with("to:") || l.starts_with("subject:"));
    }
    // Gmail, Apple Mail, Thunderbird: "On <date>, <name> wrote:", possibly wrapped onto
    // a second line; the same in a few other languages.
    let attribution = |l: &str| {
        let l = l.trim_end();
        l.ends_with(':')
            && [
                " wrote",
                " schrieb",
                " a écrit",
                " escribió",
                " ha scritto",
                " schreef",
            ]
            .iter()
            .any(|verb| l.contains(verb))
    };
    let opener = ["on ", "am ", "le ", "el ", "il ", "op "]
        .iter()
        .any(|p| lower.starts_with(p));
    if opener {
        if attribution(&lower) {
            return true;
        }
        if let Some(n) = next(1)
            && attribution(&n)
        {
            return true;
        }
    }
    false
}

/// The attachments and inline images as media parts, each referring to its index in the
/// raw message.
fn attachment_parts(message: &Message<'_>, id: &str) -> Vec<Part> {
    message
        .attachments()
        .enumerate()
        .map(|(n, part)| {
            let mime_type = content_type(part);
            let filename = part.attachment_name().map(str::to_owned).or_else(|| {
                matches!(part.body, PartType::Message(_)).then(|| "message.eml".to_owned())
            });
            let media = MediaPart {
                media: Media {
                    platform_ref: Some(format!("{MEDIA_REF_PREFIX}{id}#{n}")),
                    url: None,
                    mime_type: Some(mime_type.clone()),
                    size_bytes: Some(part.contents().len() as u64),
                    filename,
                    duration_s: None,
                },
                caption: None,
            };
            media_part(&mime_type, media)
        })
        .collect()
}

/// The attachments of a MIME body given as bytes (a multipart form), as media parts.
pub fn attachment_parts_of(mime: &[u8], id: &str) -> Vec<Part> {
    parse_message(mime)
        .map(|m| attachment_parts(&m, id))
        .unwrap_or_default()
}

/// A media part of the kind its media type says.
pub fn media_part(mime_type: &str, media: MediaPart) -> Part {
    match mime_type.split('/').next().unwrap_or_default() {
        "image" => Part::Image(media),
        "audio" => Part::Audio(media),
        "video" => Part::Video(media),
        _ => Part::File(media),
    }
}

/// A part's media type, lower-cased, without parameters.
fn content_type(part: &mail_parser::MessagePart<'_>) -> String {
    match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        },
        None if matches!(part.body, PartType::Message(_)) => "message/rfc822".into(),
        None => "application/octet-stream".into(),
    }
}

/// What is kept of the message: the whole original (base64) and the headers a rep or the
/// threading may want without decoding it.
fn raw_json(
    message: &Message<'_>,
    raw: &[u8],
    references: &[String],
    in_reply_to: &[String],
) -> Value {
    let addresses = |a: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        a.map(|a| {
            a.iter()
                .filter_map(|a| a.address())
                .map(|a| a.trim().to_lowercase())
                .collect()
        })
        .unwrap_or_default()
    };
    json!({
        "subject": message.subject(),
        "to": addresses(message.to()),
        "cc": addresses(message.cc()),
        "in_reply_to": in_reply_to,
        "references": references,
        "mime": BASE64.encode(raw),
    })
}

/// An attachment of a stored message, by the media reference [`parse_raw`] gave it.
pub struct Attachment {
    pub bytes: Vec<u8>,
    pub mime_type: String,
}

/// Finds attachment `platform_ref` (`mime:{id}#{n}`) in the message kept in `raw`.
/// `None` when the reference is not ours or the message or part is gone.
pub fn attachment(raw: &Value, platform_ref: &str) -> Option<Attachment> {
    let rest = platform_ref.strip_prefix(MEDIA_REF_PREFIX)?;
    let (_, n) = rest.rsplit_once('#')?;
    let n: usize = n.parse().ok()?;
    let bytes = BASE64.decode(raw.get("mime")?.as_str()?).ok()?;
    let message = parse_message(&bytes).ok()?;
    let part = message.attachments().nth(n)?;
    Some(Attachment {
        bytes: part.contents().to_vec(),
        mime_type: content_type(part),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/email/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn message(name: &str) -> InboundMessage {
        match parse_raw(&fixture(name)).expect("parses").remove(0) {
            InboundEvent::Message(m) => m,
            other => panic!("not a message: {other:?}"),
        }
    }

    fn text(m: &InboundMessage) -> &str {
        match &m.parts[0] {
            Part::Text(t) => &t.text,
            other => panic!("first part is not text: {other:?}"),
        }
    }

    #[test]
    fn gmail_reply_keeps_only_the_new_text_and_threads_by_its_headers() {
        let m = message("gmail_reply.eml");
        assert_eq!(
            text(&m),
            "Thanks, that fixed it!\n\nOne more question: can I change the address?"
        );
        assert_eq!(
            m.platform_message_id,
            "CAFx8u=Qk2vT5e+9yV3QhXb1pL@mail.gmail.com"
        );
        assert_eq!(m.from.identifier.kind, "email");
        assert_eq!(m.from.identifier.value, "ana.souza@gmail.com");
        assert_eq!(m.from.display_name.as_deref(), Some("Ana Souza"));
        assert_eq!(m.from.email.as_deref(), Some("ana.souza@gmail.com"));
        assert_eq!(
            m.reply_to.as_deref(),
            Some("msg_01JEXAMP7E0000000000000001@support.example.com")
        );
        assert_eq!(
            m.thread_id.as_deref(),
            Some("conv_01JEXAMP7E0000000000000000@support.example.com")
        );
        assert_eq!(
            m.sent_at,
            DateTime::parse_from_rfc3339("2026-12-05T10:15:00+01:00")
                .ok()
                .map(|d| d.with_timezone(&Utc))
        );
        assert_eq!(m.raw["subject"], "Re: Your order #1042");
        assert_eq!(
            m.raw["to"][0],
            "support+conv_01jexamp7e0000000000000000@example.com"
        );
    }

    #[test]
    fn raw_keeps_the_whole_original_with_its_history() {
        let raw = fixture("gmail_reply.eml");
        let m = message("gmail_reply.eml");
        let kept = BASE64
            .decode(m.raw["mime"].as_str().expect("mime is a string"))
            .expect("base64");
        assert_eq!(kept, raw);
        assert!(String::from_utf8_lossy(&kept).contains("wrote:"));
    }

    #[test]
    fn outlook_reply_drops_the_original_message_block_and_signature() {
        let m = message("outlook_reply.eml");
        assert_eq!(
            text(&m),
            "Hello,\n\nThe package arrived today, but the box was damaged.\n\nRegards,\nPeter"
        );
        assert_eq!(m.from.identifier.value, "peter.mueller@contoso.com");
    }

    #[test]
    fn apple_mail_reply_drops_the_quoted_lines() {
        let m = message("apple_mail_reply.eml");
        assert_eq!(text(&m), "Perfect, see you Tuesday.");
        assert_eq!(m.from.display_name.as_deref(), Some("Zoë Martin"));
    }

    #[test]
    fn html_only_mail_becomes_text_without_the_quote() {
        let m = message("html_only.eml");
        let t = text(&m);
        assert!(t.contains("Could you resend the invoice?"), "{t}");
        assert!(!t.contains('<'), "{t}");
        assert!(!t.contains("Earlier text"), "{t}");
    }

    #[test]
    fn iso_8859_1_body_and_encoded_headers_decode_to_utf8() {
        let m = message("iso_8859_1.eml");
        assert_eq!(
            text(&m),
            "Grüße aus Köln! Die Lieferung für Straße 5 fehlt."
        );
        assert_eq!(m.from.display_name.as_deref(), Some("Jürgen Weiß"));
        assert_eq!(m.raw["subject"], "Größe ändern");
    }

    #[test]
    fn attachment_becomes_a_file_part_served_from_the_raw_message() {
        let m = message("attachment.eml");
        assert_eq!(text(&m), "The contract is attached.");
        let Part::File(file) = &m.parts[1] else {
            panic!("second part is not a file: {:?}", m.parts[1]);
        };
        assert_eq!(file.media.filename.as_deref(), Some("contract.pdf"));
        assert_eq!(file.media.mime_type.as_deref(), Some("application/pdf"));
        let reference = file.media.platform_ref.as_deref().expect("a reference");
        assert_eq!(reference, "mime:attach-1@example.org#0");
        let got = attachment(&m.raw, reference).expect("the attachment");
        assert_eq!(got.bytes, b"%PDF-1.4 fake contract\n");
        assert_eq!(got.mime_type, "application/pdf");
        assert_eq!(file.media.size_bytes, Some(got.bytes.len() as u64));
    }

    #[test]
    fn inline_image_becomes_an_image_part() {
        let m = message("inline_image.eml");
        let Some(Part::Image(image)) = m.parts.get(1) else {
            panic!("no image part: {:?}", m.parts);
        };
        assert_eq!(image.media.mime_type.as_deref(), Some("image/png"));
        let got = attachment(
            &m.raw,
            image.media.platform_ref.as_deref().unwrap_or_default(),
        )
        .expect("the image");
        assert!(got.bytes.starts_with(b"\x89PNG"));
    }

    #[test]
    fn mail_without_message_id_gets_a_stable_synthesized_one() {
        let raw = b"From: a@example.com\r\nSubject: hi\r\n\r\nhello\r\n";
        let id = |raw: &[u8]| match parse_raw(raw).expect("parses").remove(0) {
            InboundEvent::Message(m) => m.platform_message_id,
            _ => String::new(),
        };
        assert_eq!(id(raw), id(raw));
        assert!(id(raw).starts_with("sha256-"));
        assert_ne!(id(raw), id(b"From: a@example.com\r\n\r\nbye\r\n"));
    }

    #[test]
    fn mail_without_sender_or_headers_is_refused() {
        assert!(matches!(
            parse_raw(b"Subject: nobody\r\n\r\nhello"),
            Err(ParseError::Invalid { field, .. }) if field == "mime.from"
        ));
        assert!(parse_raw(b"").is_err());
        assert!(parse_raw(b"\x00\x01\x02").is_err());
    }

    #[test]
    fn a_reply_carries_the_conversation_hint_of_our_plus_address_or_headers() {
        let m = message("gmail_reply.eml");
        // The plus-addressed recipient (lower-cased by the mail system) wins.
        assert_eq!(
            m.conversation_hint.as_deref(),
            Some("conv_01JEXAMP7E0000000000000000")
        );
        let m = message("outlook_reply.eml");
        assert_eq!(
            m.conversation_hint.as_deref(),
            Some("msg_01JEXAMP7E0000000000000007")
        );
        let hint = |refs: &[&str]| {
            conversation_hint(
                &[],
                &[],
                &refs.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            )
        };
        // Ids we sent under the old fixed domain still count.
        assert_eq!(
            hint(&["conv_01JEXAMP7E0000000000000000@channel-bridge", "x@y"]).as_deref(),
            Some("conv_01JEXAMP7E0000000000000000")
        );
        assert_eq!(hint(&["CAFx8u@mail.gmail.com"]), None);
    }

    #[test]
    fn a_delivery_status_report_fails_the_mail_it_returns() {
        let events = parse_raw(&fixture("dsn_bounce.eml")).expect("parses");
        let [InboundEvent::Status(status)] = events.as_slice() else {
            panic!("not one status: {events:?}");
        };
        assert_eq!(
            status.platform_message_id,
            "msg_01JEXAMP7E0000000000000005@example.com"
        );
        assert_eq!(status.status, crate::model::DeliveryStatus::Failed);
        let error = status.error.as_deref().unwrap_or_default();
        assert!(error.contains("550 5.1.1"), "{error}");
    }

    #[test]
    fn an_automatic_reply_is_dropped() {
        assert!(
            parse_raw(&fixture("vacation_reply.eml"))
                .expect("parses")
                .is_empty()
        );
        let h = |auto: Option<&str>, precedence: Option<&str>, subject: &str| Headers {
            auto_submitted: auto.map(str::to_owned),
            precedence: precedence.map(str::to_owned),
            x_autoreply: false,
            subject: subject.into(),
            from: "a@b.c".into(),
        };
        assert!(is_auto_reply(&h(Some("auto-generated"), None, "Hi")));
        assert!(!is_auto_reply(&h(Some("no"), None, "Hi")));
        assert!(is_auto_reply(&h(None, Some("bulk"), "Hi")));
        assert!(is_auto_reply(&h(None, None, "Automatic reply: Your order")));
        assert!(!is_auto_reply(&h(
            None,
            None,
            "Re: my office is out of paper"
        )));
    }

    #[test]
    fn strip_quoted_handles_wrapped_attribution_and_signatures() {
        let text = "Yes please.\n\nOn Fri, Dec 5, 2026 at 9:00 AM Support Team <\nsupport@example.com> wrote:\n> Shall we?\n";
        assert_eq!(strip_quoted(text), "Yes please.");
        assert_eq!(strip_quoted("Ok\n-- \nJane\nCEO"), "Ok");
        assert_eq!(strip_quoted("> only a quote"), "> only a quote");
        assert_eq!(strip_quoted("a\n> b\nc"), "a\nc");
        assert_eq!(
            strip_quoted("Done.\n\nAm 05.12.2026 um 10:00 schrieb Support:\n> Frage"),
            "Done."
        );
    }

    #[test]
    fn deeply_nested_or_oversized_mime_is_refused_or_read_without_panicking() {
        let mut nested = String::from("From: a@example.com\r\nMessage-ID: <deep@x>\r\n");
        for depth in 0..2000 {
            nested.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{depth}\"\r\n\r\n--b{depth}\r\n"
            ));
        }
        nested.push_str("Content-Type: text/plain\r\n\r\ndeep\r\n");
        // Read or refused with a field error, never a panic or a stack overflow.
        let _ = parse_raw(nested.as_bytes());
        let huge = vec![b'a'; MAX_RAW_BYTES + 1];
        assert!(matches!(
            parse_raw(&huge),
            Err(ParseError::Invalid { field, .. }) if field == "mime"
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn any_bytes_are_read_or_refused_without_panicking(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
        ) {
            let _ = parse_raw(&body);
        }

        #[test]
        fn any_text_after_real_headers_is_read_or_refused_without_panicking(
            ct in "(text/plain|text/html|multipart/mixed; boundary=x|multipart/report; report-type=delivery-status; boundary=x|message/rfc822)",
            body in "\\PC{0,600}",
        ) {
            let raw = format!(
                "From: A <a@example.com>\r\nMessage-ID: <p@x>\r\nContent-Type: {ct}\r\n\r\n{body}"
            );
            let _ = parse_raw(raw.as_bytes());
            let _ = strip_quoted(&body);
            let _ = html_to_text(&body);
        }
    }
}
