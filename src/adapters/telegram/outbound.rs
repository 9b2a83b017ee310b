//! A reply out: which Bot API call carries each part (`plan`), where it goes
//! (`Destination`), and how Telegram's answer is classified (`read_answer`).

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use super::wire::Envelope;
use super::{MAX_CAPTION, MAX_TEXT};
use crate::adapters::{Outbound, SendError, classify_status};
use crate::model::{ContactPart, Part};

/// A failed Bot API call, with what Telegram said beyond the classification.
#[derive(Debug)]
pub(super) struct Refusal {
    pub(super) error: SendError,
    pub(super) description: String,
    /// `parameters.migrate_to_chat_id`: the group is now this supergroup.
    pub(super) migrate_to: Option<i64>,
}

impl From<SendError> for Refusal {
    fn from(error: SendError) -> Self {
        Self {
            error,
            description: String::new(),
            migrate_to: None,
        }
    }
}

impl Refusal {
    /// Telegram could not use a media URL (unreachable, too large, not the right type).
    pub(super) fn url_refused(&self) -> bool {
        let d = self.description.to_ascii_lowercase();
        matches!(self.error, SendError::Permanent { .. })
            && (d.contains("http url")
                || d.contains("web page content")
                || d.contains("wrong file identifier"))
    }
}

/// Reads a Bot API answer: `{"ok": true, "result": …}` or `{"ok": false, "error_code",
/// "description", "parameters"}`. Classified by `error_code` (Telegram's own status) and
/// the HTTP status: 429 waits `parameters.retry_after`, 5xx retries, other 4xx are final.
pub(super) fn read_answer(
    status: StatusCode,
    headers: &HeaderMap,
    text: &str,
) -> Result<Value, Refusal> {
    let envelope = serde_json::from_str::<Envelope>(text).ok();
    match envelope {
        Some(e) if status.is_success() && e.ok => Ok(e.result.unwrap_or(Value::Null)),
        // A 2xx that is not JSON: the call went through; there is just no id to keep.
        None if status.is_success() => Ok(Value::Null),
        None => Err(classify_status(status, headers, text).into()),
        Some(e) => {
            let code = e
                .error_code
                .and_then(|c| StatusCode::from_u16(c).ok())
                .filter(|c| c.is_client_error() || c.is_server_error())
                .unwrap_or(if status.is_success() {
                    StatusCode::BAD_REQUEST
                } else {
                    status
                });
            let description = e.description.unwrap_or_default();
            let parameters = e.parameters.unwrap_or_default();
            let mut error = classify_status(code, headers, &description);
            if let (
                SendError::RateLimited { retry_after, .. }
                | SendError::Retryable { retry_after, .. },
                Some(seconds),
            ) = (&mut error, parameters.retry_after)
            {
                *retry_after = Some(std::time::Duration::from_secs(seconds));
            }
            Err(Refusal {
                error,
                description,
                migrate_to: parameters.migrate_to_chat_id,
            })
        }
    }
}

/// Our id for a message Telegram reports as sent: `"{chat_id}:{message_id}"`.
pub(super) fn message_key(sent: &Value, chat: &str) -> Option<String> {
    let message_id = sent.get("message_id")?.as_i64()?;
    let chat = sent
        .get("chat")
        .and_then(|c| c.get("id"))
        .and_then(Value::as_i64)
        .map(|id| id.to_string())
        .unwrap_or_else(|| chat.to_owned());
    Some(format!("{chat}:{message_id}"))
}

/// Where a reply goes: a chat, and a forum topic inside it.
#[derive(Debug, PartialEq)]
pub(super) struct Destination {
    pub(super) chat: String,
    pub(super) topic: Option<i64>,
}

impl Destination {
    /// The conversation's chat (`"{chat_id}"` or `"{chat_id}:{message_thread_id}"`), else
    /// the contact's own id (a private chat has the user's id).
    pub(super) fn of(message: &Outbound) -> Result<Self, SendError> {
        let key = message
            .platform_thread_id
            .as_deref()
            .unwrap_or(&message.to.value);
        let (chat, topic) = match key.split_once(':') {
            Some((chat, topic)) => {
                let topic = topic.parse::<i64>().map_err(|_| SendError::Permanent {
                    reason: format!("thread {key:?} is not a Telegram chat:topic id"),
                })?;
                (chat, Some(topic))
            }
            None => (key, None),
        };
        if chat.is_empty() {
            return Err(SendError::Permanent {
                reason: "the conversation has no Telegram chat id".into(),
            });
        }
        Ok(Self {
            chat: chat.to_owned(),
            topic,
        })
    }

    /// A chat id as Telegram takes it: a number, or an `@username`.
    pub(super) fn chat_id(&self) -> Value {
        self.chat
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(self.chat.clone()))
    }

    pub(super) fn body(&self, fields: &Map<String, Value>, reply: Option<&Value>) -> Value {
        let mut body = fields.clone();
        body.insert("chat_id".into(), self.chat_id());
        if let Some(topic) = self.topic {
            body.insert("message_thread_id".into(), topic.into());
        }
        if let Some(reply) = reply {
            body.insert("reply_parameters".into(), reply.clone());
        }
        Value::Object(body)
    }
}

/// `reply_parameters` for a quoted message (`"{chat_id}:{message_id}"`). A quote that is
/// gone no longer blocks the reply (`allow_sending_without_reply`), which Telegram allows
/// only within the same chat.
pub(super) fn reply_parameters(reply_to: Option<&str>, destination: &Destination) -> Option<Value> {
    let reply_to = reply_to?;
    let (chat, message) = match reply_to.rsplit_once(':') {
        Some((chat, message)) => (Some(chat), message),
        None => (None, reply_to),
    };
    let message_id = message.parse::<i64>().ok()?;
    match chat {
        Some(chat) if chat != destination.chat => {
            let chat_id = chat
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(chat.to_owned()));
            Some(json!({"message_id": message_id, "chat_id": chat_id}))
        }
        _ => Some(json!({"message_id": message_id, "allow_sending_without_reply": true})),
    }
}

/// One Bot API call a reply part becomes (before chat, topic and quote are added).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Call {
    pub(super) method: &'static str,
    pub(super) body: Map<String, Value>,
    /// The part it carries, counted from 1, and its kind (for notes).
    pub(super) part: usize,
    pub(super) kind: String,
    /// What to send instead when Telegram cannot fetch the media URL.
    pub(super) link: Option<String>,
}

/// A reply as Bot API calls, in part order, plus notes on what could not go as written.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Plan {
    pub(super) calls: Vec<Call>,
    pub(super) notes: Vec<String>,
}

impl Plan {
    /// Adds a call; `link` is what to send instead if Telegram cannot fetch its media.
    pub(super) fn push_with_link(
        &mut self,
        part: usize,
        kind: &str,
        method: &'static str,
        body: Value,
        link: Option<String>,
    ) {
        let Value::Object(body) = body else {
            unreachable!("bodies are built as objects")
        };
        self.calls.push(Call {
            method,
            body,
            part,
            kind: kind.to_owned(),
            link,
        });
    }

    pub(super) fn push(&mut self, part: usize, kind: &str, method: &'static str, body: Value) {
        self.push_with_link(part, kind, method, body, None);
    }

    pub(super) fn text(&mut self, part: usize, kind: &str, text: &str) {
        for chunk in split_text(text, MAX_TEXT) {
            self.push(part, kind, "sendMessage", json!({"text": chunk}));
        }
    }
}

/// Turns reply parts into Bot API calls. Media goes by URL (or by a Telegram file id, so a
/// rep can send back a file a contact sent); a caption too long for Telegram follows as
/// text; what Telegram cannot carry becomes a note (and a link, where there is one).
pub(super) fn plan(parts: &[Part]) -> Plan {
    let mut plan = Plan::default();
    for (i, part) in parts.iter().enumerate() {
        let n = i + 1;
        let kind = part.kind_name();
        match part {
            Part::Text(t) => plan.text(n, kind, &t.text),
            Part::Image(m)
            | Part::Video(m)
            | Part::Audio(m)
            | Part::VoiceNote(m)
            | Part::File(m)
            | Part::Sticker(m) => {
                let (method, field) = match part {
                    Part::Image(_) => ("sendPhoto", "photo"),
                    Part::Video(_) => ("sendVideo", "video"),
                    Part::Audio(_) => ("sendAudio", "audio"),
                    Part::VoiceNote(_) => ("sendVoice", "voice"),
                    Part::Sticker(_) => ("sendSticker", "sticker"),
                    _ => ("sendDocument", "document"),
                };
                let url = m
                    .media
                    .url
                    .as_deref()
                    .filter(|u| crate::model::is_http_url(u));
                let Some(source) = url.or(m.media.platform_ref.as_deref()) else {
                    plan.notes.push(format!(
                        "Part {n} ({kind}) was not sent: it has no http(s) URL or Telegram file id."
                    ));
                    if let Some(caption) = m.caption.as_deref().filter(|c| !c.trim().is_empty()) {
                        plan.text(n, kind, caption);
                    }
                    continue;
                };
                let caption = m.caption.as_deref().filter(|c| !c.trim().is_empty());
                // Stickers take no caption; a long caption does not fit: both follow as text.
                let inline = caption
                    .filter(|c| !matches!(part, Part::Sticker(_)) && utf16_len(c) <= MAX_CAPTION);
                let mut body = json!({ field: source });
                if let Some(caption) = inline {
                    body["caption"] = caption.into();
                }
                let link = url.map(|url| match inline {
                    Some(c) => format!("{c}\n{url}"),
                    None => url.to_owned(),
                });
                plan.push_with_link(n, kind, method, body, link);
                if let (Some(caption), None) = (caption, inline) {
                    plan.text(n, kind, caption);
                }
            }
            Part::Location(l) => {
                let name = l.name.as_deref().filter(|s| !s.trim().is_empty());
                let address = l.address.as_deref().filter(|s| !s.trim().is_empty());
                match (name, address) {
                    (Some(title), Some(address)) => plan.push(
                        n,
                        kind,
                        "sendVenue",
                        json!({"latitude": l.latitude, "longitude": l.longitude,
                               "title": title, "address": address}),
                    ),
                    _ => {
                        plan.push(
                            n,
                            kind,
                            "sendLocation",
                            json!({"latitude": l.latitude, "longitude": l.longitude}),
                        );
                        if let Some(label) = name.or(address) {
                            plan.text(n, kind, label);
                        }
                    }
                }
            }
            Part::Contact(c) => {
                let name = c.name.as_deref().filter(|s| !s.trim().is_empty());
                match c.phones.first() {
                    Some(phone) => {
                        let mut body = json!({
                            "phone_number": phone,
                            "first_name": name.unwrap_or(phone),
                        });
                        if c.phones.len() > 1 || !c.emails.is_empty() {
                            body["vcard"] = vcard(name.unwrap_or(phone), c).into();
                        }
                        plan.push(n, kind, "sendContact", body);
                    }
                    None => {
                        plan.notes.push(format!(
                            "Part {n} (contact) was sent as text: Telegram shares only contacts with a phone number."
                        ));
                        let lines: Vec<&str> = name
                            .into_iter()
                            .chain(c.emails.iter().map(String::as_str))
                            .collect();
                        if lines.is_empty() {
                            continue;
                        }
                        plan.text(n, kind, &lines.join("\n"));
                    }
                }
            }
            Part::Unsupported(u) => {
                let link = u
                    .raw
                    .as_ref()
                    .and_then(|raw| raw.get("url"))
                    .and_then(Value::as_str)
                    .filter(|url| crate::model::is_http_url(url));
                match link {
                    Some(url) => {
                        plan.notes.push(format!(
                            "Part {n} ({kind}) was sent as a link: Telegram has no such message type."
                        ));
                        plan.text(n, kind, url);
                    }
                    None => plan.notes.push(format!(
                        "Part {n} ({kind}) was not sent: Telegram has no such message type."
                    )),
                }
            }
        }
    }
    plan
}

/// A vCard 3.0 carrying every phone and email of a contact (Telegram's `vcard`, ≤ 2048
/// bytes: extra entries are dropped rather than the card refused).
pub(super) fn vcard(name: &str, contact: &ContactPart) -> String {
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    let mut card = format!("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{}\r\n", clean(name));
    let entries = contact
        .phones
        .iter()
        .map(|p| format!("TEL:{}\r\n", clean(p)))
        .chain(
            contact
                .emails
                .iter()
                .map(|e| format!("EMAIL:{}\r\n", clean(e))),
        );
    for entry in entries {
        if card.len() + entry.len() + "END:VCARD".len() > 2048 {
            break;
        }
        card.push_str(&entry);
    }
    card.push_str("END:VCARD");
    card
}

pub(super) fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Splits text into pieces of at most `max` UTF-16 code units (Telegram's measure),
/// preferring to break after a newline, then after a space.
pub(super) fn split_text(text: &str, max: usize) -> Vec<String> {
    crate::adapters::text::split_text(text, max, char::len_utf16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::telegram::IDENTIFIER_TYPE;
    use crate::model::{Identifier, LocationPart, Media, MediaPart, TextPart, UnsupportedPart};

    fn outbound(parts: Vec<Part>, thread: Option<&str>, reply_to: Option<&str>) -> Outbound {
        Outbound {
            message_id: crate::model::MessageId::new(),
            conversation_id: crate::model::ConversationId::new(),
            platform_thread_id: thread.map(str::to_owned),
            to: Identifier {
                kind: IDENTIFIER_TYPE.into(),
                value: "5511223344".into(),
            },
            reply_to: reply_to.map(str::to_owned),
            parts,
        }
    }

    fn text(s: &str) -> Part {
        Part::Text(TextPart { text: s.into() })
    }

    fn image(url: Option<&str>, file_id: Option<&str>, caption: Option<&str>) -> Part {
        Part::Image(MediaPart {
            media: Media {
                url: url.map(str::to_owned),
                platform_ref: file_id.map(str::to_owned),
                ..Media::default()
            },
            caption: caption.map(str::to_owned),
        })
    }

    #[test]
    fn replies_go_to_the_chat_and_topic_and_quote_the_message_after_the_colon() {
        let out = outbound(
            vec![],
            Some("-1001987654321:77"),
            Some("-1001987654321:301"),
        );
        let d = Destination::of(&out).unwrap();
        assert_eq!(
            d,
            Destination {
                chat: "-1001987654321".into(),
                topic: Some(77)
            }
        );
        let reply = reply_parameters(out.reply_to.as_deref(), &d).unwrap();
        assert_eq!(
            reply,
            json!({"message_id": 301, "allow_sending_without_reply": true})
        );
        let body = d.body(&Map::new(), Some(&reply));
        assert_eq!(body["chat_id"], json!(-1001987654321i64));
        assert_eq!(body["message_thread_id"], 77);

        // No thread: the contact's own chat.
        let private = Destination::of(&outbound(vec![], None, None)).unwrap();
        assert_eq!(private.chat, "5511223344");
        assert_eq!(private.topic, None);
        // A quote from another chat names that chat.
        assert_eq!(
            reply_parameters(Some("42:9"), &private),
            Some(json!({"message_id": 9, "chat_id": 42}))
        );
        assert_eq!(reply_parameters(Some("not-an-id"), &private), None);
    }

    #[test]
    fn every_part_kind_becomes_its_send_method() {
        let parts = vec![
            text("Hello"),
            image(Some("https://cdn.example/a.jpg"), None, Some("Your label")),
            Part::Video(MediaPart {
                media: Media {
                    platform_ref: Some("BAACvideo".into()),
                    ..Media::default()
                },
                caption: None,
            }),
            Part::Audio(MediaPart {
                media: Media {
                    url: Some("https://cdn.example/a.mp3".into()),
                    ..Media::default()
                },
                caption: None,
            }),
            Part::VoiceNote(MediaPart {
                media: Media {
                    url: Some("https://cdn.example/v.ogg".into()),
                    ..Media::default()
                },
                caption: None,
            }),
            Part::File(MediaPart {
                media: Media {
                    url: Some("https://cdn.example/i.pdf".into()),
                    ..Media::default()
                },
                caption: Some("Invoice".into()),
            }),
            Part::Sticker(MediaPart {
                media: Media {
                    platform_ref: Some("CAACsticker".into()),
                    ..Media::default()
                },
                caption: None,
            }),
            Part::Location(LocationPart {
                latitude: 1.5,
                longitude: 2.5,
                name: None,
                address: None,
            }),
            Part::Location(LocationPart {
                latitude: 1.5,
                longitude: 2.5,
                name: Some("Depot".into()),
                address: Some("1 Dock St".into()),
            }),
            Part::Contact(ContactPart {
                name: Some("Support".into()),
                phones: vec!["+15551234567".into()],
                emails: vec![],
            }),
        ];
        let plan = plan(&parts);
        assert!(plan.notes.is_empty(), "{:?}", plan.notes);
        let methods: Vec<&str> = plan.calls.iter().map(|c| c.method).collect();
        assert_eq!(
            methods,
            [
                "sendMessage",
                "sendPhoto",
                "sendVideo",
                "sendAudio",
                "sendVoice",
                "sendDocument",
                "sendSticker",
                "sendLocation",
                "sendVenue",
                "sendContact"
            ]
        );
        let body = |i: usize| Value::Object(plan.calls[i].body.clone());
        assert_eq!(body(0), json!({"text": "Hello"}));
        assert_eq!(
            body(1),
            json!({"photo": "https://cdn.example/a.jpg", "caption": "Your label"})
        );
        assert_eq!(
            plan.calls[1].link.as_deref(),
            Some("Your label\nhttps://cdn.example/a.jpg")
        );
        assert_eq!(body(2), json!({"video": "BAACvideo"}), "a Telegram file id");
        assert_eq!(plan.calls[2].link, None, "no link to fall back to");
        assert_eq!(
            body(5),
            json!({"document": "https://cdn.example/i.pdf", "caption": "Invoice"})
        );
        assert_eq!(
            body(8),
            json!({"latitude": 1.5, "longitude": 2.5, "title": "Depot", "address": "1 Dock St"})
        );
        assert_eq!(
            body(9),
            json!({"phone_number": "+15551234567", "first_name": "Support"})
        );
    }

    #[test]
    fn parts_telegram_cannot_carry_become_notes_or_links() {
        let poll = Part::Unsupported(UnsupportedPart {
            platform_type: "poll".into(),
            raw: None,
        });
        let card = Part::Unsupported(UnsupportedPart {
            platform_type: "card".into(),
            raw: Some(json!({"url": "https://shop.example/p/1"})),
        });
        let no_phone = Part::Contact(ContactPart {
            name: Some("Ana".into()),
            phones: vec![],
            emails: vec!["ana@example.com".into()],
        });
        let plan = plan(&[poll, card, no_phone]);
        let texts: Vec<Value> = plan
            .calls
            .iter()
            .map(|c| Value::Object(c.body.clone()))
            .collect();
        assert_eq!(
            texts,
            [
                json!({"text": "https://shop.example/p/1"}),
                json!({"text": "Ana\nana@example.com"})
            ]
        );
        assert_eq!(plan.notes.len(), 3, "{:?}", plan.notes);
        assert!(plan.notes[0].contains("Part 1 (poll) was not sent"));
        assert!(plan.notes[1].contains("Part 2 (card) was sent as a link"));
        assert!(plan.notes[2].contains("Part 3 (contact) was sent as text"));
    }

    #[test]
    fn long_texts_are_split_and_long_captions_follow_as_text() {
        let long = "word ".repeat(1000); // 5000 units
        let plan_ = plan(&[text(&long)]);
        assert_eq!(plan_.calls.len(), 2);
        let joined: String = plan_
            .calls
            .iter()
            .map(|c| c.body["text"].as_str().unwrap())
            .collect();
        assert_eq!(joined, long, "nothing lost or added");
        assert!(
            plan_
                .calls
                .iter()
                .all(|c| utf16_len(c.body["text"].as_str().unwrap()) <= MAX_TEXT)
        );

        let caption = "c".repeat(MAX_CAPTION + 1);
        let plan_ = plan(&[image(Some("https://x.example/a.png"), None, Some(&caption))]);
        assert_eq!(plan_.calls.len(), 2);
        assert_eq!(
            Value::Object(plan_.calls[0].body.clone()),
            json!({"photo": "https://x.example/a.png"})
        );
        assert_eq!(plan_.calls[1].body["text"], caption.as_str());
    }

    #[test]
    fn text_splits_count_utf16_units_and_never_cut_a_character() {
        let emoji = "😀".repeat(3000); // 2 units each
        let chunks = split_text(&emoji, MAX_TEXT);
        assert_eq!(chunks.len(), 2);
        assert_eq!(utf16_len(&chunks[0]), 4096);
        assert_eq!(chunks.concat(), emoji);
        assert_eq!(split_text("short", MAX_TEXT), ["short"]);
    }

    fn answer(status: u16, body: Value) -> Result<Value, Refusal> {
        read_answer(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            &body.to_string(),
        )
    }

    #[test]
    fn answers_are_classified_from_status_and_body() {
        let ok = answer(
            200,
            json!({"ok": true, "result": {"message_id": 88, "chat": {"id": 5}}}),
        )
        .unwrap();
        assert_eq!(message_key(&ok, "ignored").as_deref(), Some("5:88"));

        let limited = answer(
            429,
            json!({"ok": false, "error_code": 429,
                   "description": "Too Many Requests: retry after 15",
                   "parameters": {"retry_after": 15}}),
        )
        .unwrap_err();
        assert!(matches!(
            limited.error,
            SendError::RateLimited { retry_after: Some(d), .. } if d.as_secs() == 15
        ));

        let blocked = answer(
            403,
            json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
        )
        .unwrap_err();
        assert!(
            matches!(&blocked.error, SendError::Permanent { reason } if reason.contains("bot was blocked")),
            "{:?}",
            blocked.error
        );

        let down = answer(
            502,
            json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
        )
        .unwrap_err();
        assert!(matches!(down.error, SendError::Retryable { .. }));

        // ok:false inside a 200 is a failure too, classified by its error_code.
        let hidden = answer(
            200,
            json!({"ok": false, "error_code": 429, "parameters": {"retry_after": 3}}),
        )
        .unwrap_err();
        assert!(matches!(hidden.error, SendError::RateLimited { .. }));
        let hidden = answer(
            200,
            json!({"ok": false, "description": "Bad Request: chat not found"}),
        )
        .unwrap_err();
        assert!(matches!(hidden.error, SendError::Permanent { .. }));

        let html = read_answer(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            "<html>oops</html>",
        )
        .unwrap_err();
        assert!(matches!(html.error, SendError::Retryable { .. }));

        let migrated = answer(
            400,
            json!({"ok": false, "error_code": 400,
                   "description": "Bad Request: group chat was upgraded to a supergroup chat",
                   "parameters": {"migrate_to_chat_id": -1001234}}),
        )
        .unwrap_err();
        assert_eq!(migrated.migrate_to, Some(-1001234));

        let url = answer(
            400,
            json!({"ok": false, "error_code": 400, "description": "Bad Request: wrong file identifier/HTTP URL specified"}),
        )
        .unwrap_err();
        assert!(url.url_refused());
        assert!(!blocked.url_refused());
    }
}
