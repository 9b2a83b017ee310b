//! Replies out: a reply's parts planned as `send_message` calls, and Viber's answers read
//! (HTTP 200 with a refusing `status` included).

use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use serde_json::{Map, Value, json};

use crate::adapters::{SendError, classify_status};
use crate::model::{Media, MediaPart, Part};

use super::wire::Answer;
use super::{MAX_CAPTION, MAX_TEXT, STATUS_LAST_DOCUMENTED, STATUS_TOO_MANY_REQUESTS};

/// Reads a send answer: HTTP errors by status; in a 200, `status` 0 is success, 12 is
/// Viber's rate limit, the other documented codes are refusals, and an unknown code is
/// retried.
pub(super) fn read_answer(
    status: StatusCode,
    headers: &HeaderMap,
    text: &str,
) -> Result<Option<String>, SendError> {
    if !status.is_success() {
        return Err(classify_status(status, headers, text));
    }
    let answer: Answer = serde_json::from_str(text).map_err(|_| SendError::Retryable {
        reason: format!(
            "Viber answered with no status: {}",
            text.chars().take(200).collect::<String>()
        ),
        retry_after: None,
    })?;
    let reason = || {
        format!(
            "Viber status {}: {}",
            answer.status,
            answer.status_message.as_deref().unwrap_or("no message")
        )
    };
    match answer.status {
        0 => Ok(answer.message_token.as_ref().and_then(token)),
        STATUS_TOO_MANY_REQUESTS => Err(SendError::RateLimited {
            reason: reason(),
            retry_after: crate::adapters::retry_after(headers, Utc::now()),
        }),
        1..=STATUS_LAST_DOCUMENTED => Err(SendError::Permanent { reason: reason() }),
        _ => Err(SendError::Retryable {
            reason: reason(),
            retry_after: None,
        }),
    }
}

/// A `message_token`: a 64-bit integer (kept exact, never through f64), or it as a string.
pub(super) fn token(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        Value::String(s) if s.parse::<i64>().is_ok() || s.parse::<u64>().is_ok() => Some(s.clone()),
        _ => None,
    }
}

/// One `/pa/send_message` call a reply part becomes (before receiver and sender).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Call {
    pub(super) body: Map<String, Value>,
    /// The part it carries, counted from 1, and its kind (for notes).
    pub(super) part: usize,
    pub(super) kind: String,
    /// The file URL whose size must be found before sending (videos and files).
    pub(super) needs_size: Option<String>,
}

impl Call {
    fn new(part: usize, kind: &str, body: Value) -> Self {
        let Value::Object(body) = body else {
            unreachable!("bodies are built as objects")
        };
        Self {
            body,
            part,
            kind: kind.to_owned(),
            needs_size: None,
        }
    }

    pub(super) fn text(part: usize, kind: &str, text: &str) -> Self {
        Self::new(part, kind, json!({"type": "text", "text": text}))
    }
}

/// A reply as send calls, in part order, plus notes on what could not go as written.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Plan {
    pub(super) calls: Vec<Call>,
    pub(super) notes: Vec<String>,
}

impl Plan {
    fn text(&mut self, part: usize, kind: &str, text: &str) {
        for chunk in split_text(text, MAX_TEXT) {
            self.calls.push(Call::text(part, kind, &chunk));
        }
    }

    /// A part Viber cannot carry as such: its link as text (if it has one), and a note.
    fn as_link(&mut self, part: usize, kind: &str, url: Option<&str>, why: &str) {
        match url {
            Some(url) => {
                self.notes
                    .push(format!("Part {part} ({kind}) was sent as a link: {why}."));
                self.text(part, kind, url);
            }
            None => self
                .notes
                .push(format!("Part {part} ({kind}) was not sent: {why}.")),
        }
    }
}

/// The name a file goes by: its own, else the last segment of its URL.
pub(super) fn file_name(media: &Media, url: &str) -> String {
    media
        .filename
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| {
            reqwest::Url::parse(url).ok().and_then(|u| {
                u.path_segments()?
                    .next_back()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            })
        })
        .unwrap_or_else(|| "file".into())
        .chars()
        .take(256)
        .collect()
}

/// Turns reply parts into send calls. Media goes by URL (Viber has no file ids to reuse);
/// audio and voice notes go as files (bots cannot send audio); captions Viber cannot
/// attach follow as text.
pub(super) fn plan(parts: &[Part]) -> Plan {
    let mut plan = Plan::default();
    for (i, part) in parts.iter().enumerate() {
        let n = i + 1;
        let kind = part.kind_name();
        match part {
            Part::Text(t) => plan.text(n, kind, &t.text),
            Part::Sticker(m) => {
                let sticker_id = m
                    .media
                    .platform_ref
                    .as_deref()
                    .and_then(|r| r.parse::<u64>().ok());
                match sticker_id {
                    Some(id) => plan.calls.push(Call::new(
                        n,
                        kind,
                        json!({"type": "sticker", "sticker_id": id}),
                    )),
                    None => {
                        let url = m
                            .media
                            .url
                            .as_deref()
                            .filter(|u| crate::model::is_http_url(u));
                        plan.as_link(n, kind, url, "Viber sends only its own stickers");
                    }
                }
            }
            Part::Image(m)
            | Part::Video(m)
            | Part::Audio(m)
            | Part::VoiceNote(m)
            | Part::File(m) => plan_media(&mut plan, n, kind, part, m),
            Part::Location(l) => {
                plan.calls.push(Call::new(
                    n,
                    kind,
                    json!({"type": "location", "location": {"lat": l.latitude, "lon": l.longitude}}),
                ));
                let label: Vec<&str> = [l.name.as_deref(), l.address.as_deref()]
                    .into_iter()
                    .flatten()
                    .filter(|s| !s.trim().is_empty())
                    .collect();
                if !label.is_empty() {
                    plan.text(n, kind, &label.join("\n"));
                }
            }
            Part::Contact(c) => {
                let name = c.name.as_deref().filter(|s| !s.trim().is_empty());
                match c.phones.first() {
                    Some(phone) => plan.calls.push(Call::new(
                        n,
                        kind,
                        json!({"type": "contact",
                               "contact": {"name": name.unwrap_or(phone), "phone_number": phone}}),
                    )),
                    None => {
                        plan.notes.push(format!(
                            "Part {n} (contact) was sent as text: Viber shares only contacts with a phone number."
                        ));
                        let lines: Vec<&str> = name
                            .into_iter()
                            .chain(c.emails.iter().map(String::as_str))
                            .collect();
                        if !lines.is_empty() {
                            plan.text(n, kind, &lines.join("\n"));
                        }
                    }
                }
            }
            Part::Unsupported(u) => {
                let url = u
                    .raw
                    .as_ref()
                    .and_then(|raw| raw.get("url"))
                    .and_then(Value::as_str)
                    .filter(|url| crate::model::is_http_url(url));
                plan.as_link(n, kind, url, "Viber has no such message type");
            }
        }
    }
    plan
}

/// A media part as calls. Viber takes media only by URL; only pictures carry a
/// description, so other captions (and picture captions too long for Viber) follow as
/// text.
fn plan_media(plan: &mut Plan, n: usize, kind: &str, part: &Part, m: &MediaPart) {
    let caption = m.caption.as_deref().filter(|c| !c.trim().is_empty());
    let Some(url) = m
        .media
        .url
        .as_deref()
        .filter(|u| crate::model::is_http_url(u))
    else {
        plan.as_link(n, kind, None, "Viber takes media only by http(s) URL");
        if let Some(caption) = caption {
            plan.text(n, kind, caption);
        }
        return;
    };
    if let Part::Image(_) = part {
        let fits = |c: &&str| c.chars().count() <= MAX_CAPTION;
        let description = caption.filter(fits).unwrap_or_default();
        plan.calls.push(Call::new(
            n,
            kind,
            json!({"type": "picture", "media": url, "text": description}),
        ));
        if let Some(caption) = caption.filter(|c| !fits(c)) {
            plan.text(n, kind, caption);
        }
        return;
    }
    let mut call = if let Part::Video(_) = part {
        let mut body = json!({"type": "video", "media": url});
        if let Some(d) = m.media.duration_s.filter(|d| d.is_finite() && *d >= 0.0) {
            body["duration"] = (d.round() as u64).into();
        }
        Call::new(n, kind, body)
    } else {
        if matches!(part, Part::Audio(_) | Part::VoiceNote(_)) {
            plan.notes.push(format!(
                "Part {n} ({kind}) was sent as a file: Viber bots cannot send audio."
            ));
        }
        let name = file_name(&m.media, url);
        Call::new(
            n,
            kind,
            json!({"type": "file", "media": url, "file_name": name}),
        )
    };
    match m.media.size_bytes {
        Some(size) => {
            call.body.insert("size".into(), size.into());
        }
        None => call.needs_size = Some(url.to_owned()),
    }
    plan.calls.push(call);
    if let Some(caption) = caption {
        plan.text(n, kind, caption);
    }
}

/// Splits text into pieces of at most `max` characters, preferring to break after a
/// newline, then after a space.
fn split_text(text: &str, max: usize) -> Vec<String> {
    crate::adapters::text::split_text(text, max, |_| 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::SendError;
    use crate::model::{ContactPart, LocationPart, Media, MediaPart, Part, TextPart};
    use axum::http::{HeaderMap, StatusCode};
    use serde_json::{Value, json};

    fn url_media(url: &str) -> Media {
        Media {
            url: Some(url.into()),
            ..Media::default()
        }
    }

    fn bodies(plan: &Plan) -> Vec<Value> {
        plan.calls
            .iter()
            .map(|c| Value::Object(c.body.clone()))
            .collect()
    }

    #[test]
    fn every_part_kind_becomes_its_message_type() {
        let parts = vec![
            Part::Text(TextPart {
                text: "Hello".into(),
            }),
            Part::Image(MediaPart {
                media: url_media("https://cdn.example/label.png"),
                caption: Some("Your label".into()),
            }),
            Part::Video(MediaPart {
                media: Media {
                    size_bytes: Some(1000),
                    duration_s: Some(12.4),
                    ..url_media("https://cdn.example/how-to.mp4")
                },
                caption: None,
            }),
            Part::File(MediaPart {
                media: Media {
                    size_bytes: Some(2000),
                    ..url_media("https://cdn.example/docs/invoice.pdf?sig=1")
                },
                caption: None,
            }),
            Part::Sticker(MediaPart {
                media: Media {
                    platform_ref: Some("40138".into()),
                    ..Media::default()
                },
                caption: None,
            }),
            Part::Location(LocationPart {
                latitude: 50.45,
                longitude: 30.52,
                name: None,
                address: None,
            }),
            Part::Contact(ContactPart {
                name: Some("Support".into()),
                phones: vec!["+380441234567".into()],
                emails: vec![],
            }),
        ];
        let plan = plan(&parts);
        assert!(plan.notes.is_empty(), "{:?}", plan.notes);
        assert!(plan.calls.iter().all(|c| c.needs_size.is_none()));
        assert_eq!(
            bodies(&plan),
            [
                json!({"type": "text", "text": "Hello"}),
                json!({"type": "picture", "media": "https://cdn.example/label.png", "text": "Your label"}),
                json!({"type": "video", "media": "https://cdn.example/how-to.mp4", "size": 1000, "duration": 12}),
                json!({"type": "file", "media": "https://cdn.example/docs/invoice.pdf?sig=1", "size": 2000, "file_name": "invoice.pdf"}),
                json!({"type": "sticker", "sticker_id": 40138}),
                json!({"type": "location", "location": {"lat": 50.45, "lon": 30.52}}),
                json!({"type": "contact", "contact": {"name": "Support", "phone_number": "+380441234567"}}),
            ]
        );
    }

    #[test]
    fn what_viber_cannot_carry_becomes_a_file_a_link_or_a_note() {
        let parts = vec![
            Part::VoiceNote(MediaPart {
                media: Media {
                    size_bytes: Some(5),
                    ..url_media("https://cdn.example/v.ogg")
                },
                caption: None,
            }),
            Part::Sticker(MediaPart {
                media: url_media("https://cdn.example/s.webp"),
                caption: None,
            }),
            Part::Image(MediaPart {
                media: Media {
                    platform_ref: Some("AgAC-telegram-file".into()),
                    ..Media::default()
                },
                caption: Some("caption".into()),
            }),
            Part::Video(MediaPart {
                media: url_media("https://cdn.example/v.mp4"),
                caption: Some("Watch this".into()),
            }),
        ];
        let plan = plan(&parts);
        assert_eq!(
            bodies(&plan),
            [
                json!({"type": "file", "media": "https://cdn.example/v.ogg", "size": 5, "file_name": "v.ogg"}),
                json!({"type": "text", "text": "https://cdn.example/s.webp"}),
                json!({"type": "text", "text": "caption"}),
                json!({"type": "video", "media": "https://cdn.example/v.mp4"}),
                json!({"type": "text", "text": "Watch this"}),
            ]
        );
        assert_eq!(
            plan.calls[3].needs_size.as_deref(),
            Some("https://cdn.example/v.mp4"),
            "the size is looked up before sending"
        );
        assert_eq!(plan.notes.len(), 3, "{:?}", plan.notes);
        assert!(plan.notes[0].contains("Part 1 (voice_note) was sent as a file"));
        assert!(plan.notes[1].contains("Part 2 (sticker) was sent as a link"));
        assert!(plan.notes[2].contains("Part 3 (image) was not sent"));
    }

    #[test]
    fn long_texts_are_split_and_long_descriptions_follow_as_text() {
        let long = "слово ".repeat(1500); // 9000 characters
        let plan_ = plan(&[Part::Text(TextPart { text: long.clone() })]);
        assert_eq!(plan_.calls.len(), 2);
        let joined: String = plan_
            .calls
            .iter()
            .map(|c| c.body["text"].as_str().unwrap())
            .collect();
        assert_eq!(joined, long);
        assert!(
            plan_
                .calls
                .iter()
                .all(|c| c.body["text"].as_str().unwrap().chars().count() <= MAX_TEXT)
        );

        let caption = "c".repeat(MAX_CAPTION + 1);
        let plan_ = plan(&[Part::Image(MediaPart {
            media: url_media("https://x.example/a.png"),
            caption: Some(caption.clone()),
        })]);
        assert_eq!(
            bodies(&plan_),
            [
                json!({"type": "picture", "media": "https://x.example/a.png", "text": ""}),
                json!({"type": "text", "text": caption}),
            ]
        );
    }

    fn answer(status: u16, body: Value) -> Result<Option<String>, SendError> {
        read_answer(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            &body.to_string(),
        )
    }

    #[test]
    fn answers_are_classified_by_http_status_and_the_status_field() {
        assert_eq!(
            answer(
                200,
                json!({"status": 0, "status_message": "ok", "message_token": 5741311803571721087u64})
            ),
            Ok(Some("5741311803571721087".into()))
        );
        assert!(matches!(
            answer(200, json!({"status": 12, "status_message": "tooManyRequests"})),
            Err(SendError::RateLimited { reason, .. }) if reason == "Viber status 12: tooManyRequests"
        ));
        for status in [1, 2, 3, 4, 5, 6, 7, 10, 13, 24] {
            assert!(
                matches!(
                    answer(200, json!({"status": status, "status_message": "x"})),
                    Err(SendError::Permanent { .. })
                ),
                "{status}"
            );
        }
        assert!(matches!(
            answer(200, json!({"status": 99, "status_message": "generalError"})),
            Err(SendError::Retryable { .. })
        ));
        assert!(matches!(
            read_answer(StatusCode::OK, &HeaderMap::new(), "<html/>"),
            Err(SendError::Retryable { .. })
        ));
        assert!(matches!(
            answer(503, json!({})),
            Err(SendError::Retryable { .. })
        ));
        assert!(matches!(
            answer(429, json!({})),
            Err(SendError::RateLimited { .. })
        ));
        assert!(matches!(
            answer(401, json!({})),
            Err(SendError::Permanent { .. })
        ));
    }

    #[test]
    fn file_names_come_from_the_media_or_the_url() {
        let named = Media {
            filename: Some("Invoice 2291.pdf".into()),
            ..Media::default()
        };
        assert_eq!(file_name(&named, "https://x/y.bin"), "Invoice 2291.pdf");
        assert_eq!(
            file_name(&Media::default(), "https://x/a/report.pdf?sig=2"),
            "report.pdf"
        );
        assert_eq!(file_name(&Media::default(), "https://x/"), "file");
    }
}
