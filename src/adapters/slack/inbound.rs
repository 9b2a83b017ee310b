//! Slack events in: a message, a file share, an edit or a deletion turned into events, and
//! the posts that are ours or a bot's left out.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::adapters::{
    InboundContact, InboundEvent, InboundMessage, MessageEdit, ParseError, invalid,
};
use crate::model::{EditOrder, Identifier, Media, MediaPart, Part, TextPart, UnsupportedPart};

use super::IDENTIFIER_TYPE;
use super::wire::Envelope;

/// A Slack `ts` (`"1700000000.000100"`) as a time.
fn ts_time(ts: &str) -> Option<DateTime<Utc>> {
    let micros = ts_micros(ts)?;
    DateTime::from_timestamp_micros(micros)
}

/// A Slack `ts` in microseconds: exact, so edits compare without float rounding.
pub(super) fn ts_micros(ts: &str) -> Option<i64> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, "0"));
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let frac: i64 = format!("{frac:0<6}").parse().ok()?;
    secs.checked_mul(1_000_000)?.checked_add(frac)
}

/// Who "we" are in this workspace: our app and the bot users it acts as. Messages from
/// them are our own replies coming back as events.
pub(super) struct Us<'a> {
    pub(super) app_id: Option<&'a str>,
    pub(super) bot_users: Vec<&'a str>,
}

impl Us<'_> {
    fn wrote(&self, message: &Value) -> bool {
        let field = |k: &str| message.get(k).and_then(Value::as_str);
        let app = field("app_id").or_else(|| {
            message
                .get("bot_profile")
                .and_then(|p| p.get("app_id"))
                .and_then(Value::as_str)
        });
        (app.is_some() && app == self.app_id)
            || field("user").is_some_and(|u| self.bot_users.contains(&u))
            // A bot post with no member behind it is never a contact's message.
            || (field("bot_id").is_some() && field("user").is_none())
            || field("subtype") == Some("bot_message")
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn required<'a>(v: &'a Value, at: &str, key: &str) -> Result<&'a str, ParseError> {
    str_field(v, key).ok_or_else(|| invalid(format!("{at}.{key}"), "missing or not a string"))
}

/// The parts of a message: its text, then each file.
fn parts_of(message: &Value) -> Vec<Part> {
    let mut parts = Vec::new();
    if let Some(text) = str_field(message, "text").filter(|t| !t.trim().is_empty()) {
        parts.push(Part::Text(TextPart {
            text: text.to_owned(),
        }));
    }
    if let Some(files) = message.get("files").and_then(Value::as_array) {
        parts.extend(files.iter().map(file_part));
    }
    parts
}

/// A Slack file as a part: by MIME type, an audio clip recorded in Slack as a voice note;
/// a file Slack no longer shows (deleted, over the plan's limit) as unsupported.
fn file_part(file: &Value) -> Part {
    let url = str_field(file, "url_private_download").or_else(|| str_field(file, "url_private"));
    let Some(url) = url else {
        let mode = str_field(file, "mode").unwrap_or("file");
        return Part::Unsupported(UnsupportedPart {
            platform_type: format!("file:{mode}"),
            raw: Some(file.clone()),
        });
    };
    let mime = str_field(file, "mimetype").map(str::to_owned);
    let media = Media {
        platform_ref: str_field(file, "id").map(str::to_owned),
        url: Some(url.to_owned()),
        mime_type: mime.clone(),
        size_bytes: file.get("size").and_then(Value::as_u64),
        filename: str_field(file, "name")
            .or_else(|| str_field(file, "title"))
            .map(str::to_owned),
        duration_s: file
            .get("duration_ms")
            .and_then(Value::as_f64)
            .map(|ms| ms / 1000.0),
    };
    let part = MediaPart {
        media,
        caption: None,
    };
    let mime = mime.unwrap_or_default();
    if str_field(file, "subtype") == Some("slack_audio") {
        Part::VoiceNote(part)
    } else if mime.starts_with("image/") {
        Part::Image(part)
    } else if mime.starts_with("video/") {
        Part::Video(part)
    } else if mime.starts_with("audio/") {
        Part::Audio(part)
    } else {
        Part::File(part)
    }
}

/// A message a member wrote, as an inbound message.
fn message_event(channel: &str, message: &Value, at: &str) -> Result<InboundEvent, ParseError> {
    let user = required(message, at, "user")?;
    let ts = required(message, at, "ts")?;
    let sent_at = ts_time(ts).ok_or_else(|| invalid(format!("{at}.ts"), "not a Slack ts"))?;
    let thread_id = match str_field(message, "thread_ts") {
        Some(thread_ts) => format!("{channel}/{thread_ts}"),
        // A DM outside threads is one conversation; a channel post starts a thread.
        None if str_field(message, "channel_type") == Some("im") => channel.to_owned(),
        None => format!("{channel}/{ts}"),
    };
    let profile = message.get("user_profile");
    let display_name = profile
        .and_then(|p| str_field(p, "display_name").or_else(|| str_field(p, "real_name")))
        .map(str::to_owned);
    let parts = parts_of(message);
    if parts.is_empty() {
        return Err(invalid(at, "the message has no text and no files"));
    }
    Ok(InboundEvent::Message(InboundMessage {
        conversation_hint: None,
        platform_message_id: format!("{channel}:{ts}"),
        thread_id: Some(thread_id),
        from: InboundContact {
            identifier: Identifier {
                kind: IDENTIFIER_TYPE.into(),
                value: user.to_owned(),
            },
            display_name,
            email: profile
                .and_then(|p| str_field(p, "email"))
                .map(str::to_owned),
        },
        reply_to: None,
        parts,
        sent_at: Some(sent_at),
        raw: message.clone(),
    }))
}

/// Turns an Events API request body into events. `url_verification` and events that are
/// not a member's message (joins, topic changes, our own posts) give none.
pub fn parse_events(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::Malformed(e.to_string()))?;
    let envelope: Envelope = crate::adapters::read(&value, "")?;
    if envelope.kind != "event_callback" {
        return Ok(Vec::new());
    }
    let event = envelope
        .event
        .as_ref()
        .ok_or_else(|| invalid("event", "missing"))?;
    let us = Us {
        app_id: envelope.api_app_id.as_deref(),
        bot_users: envelope
            .authorizations
            .iter()
            .filter_map(|a| a.user_id.as_deref())
            .collect(),
    };
    let kind = str_field(event, "type").unwrap_or_default();
    if kind != "message" && kind != "app_mention" {
        return Ok(Vec::new());
    }
    let channel = required(event, "event", "channel")?;
    let event = match str_field(event, "subtype") {
        None | Some("file_share" | "thread_broadcast" | "me_message") => {
            if us.wrote(event) {
                return Ok(Vec::new());
            }
            message_event(channel, event, "event")?
        }
        Some("message_changed") => {
            let message = event
                .get("message")
                .ok_or_else(|| invalid("event.message", "missing"))?;
            if us.wrote(message) {
                return Ok(Vec::new());
            }
            let ts = required(message, "event.message", "ts")?;
            let edited = message.get("edited").and_then(|e| str_field(e, "ts"));
            InboundEvent::Edit(MessageEdit {
                platform_message_id: format!("{channel}:{ts}"),
                parts: parts_of(message),
                edited_at: edited.and_then(ts_time),
                order: edited.and_then(ts_micros).map(|m| EditOrder(vec![m])),
            })
        }
        Some("message_deleted") => {
            let ts = required(event, "event", "deleted_ts")?;
            InboundEvent::Retract {
                platform_message_id: format!("{channel}:{ts}"),
            }
        }
        // Joins, topic changes, bot posts and the rest are not a contact's words.
        Some(_) => return Ok(Vec::new()),
    };
    Ok(vec![event])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::slack::tests::{envelope, message, parse};
    use crate::adapters::{InboundEvent, MessageEdit, ParseError, invalid};
    use crate::model::{EditOrder, Part, TextPart};
    use chrono::DateTime;
    use serde_json::json;

    #[test]
    fn a_dm_is_one_conversation_and_a_channel_post_starts_a_thread() {
        let dm = message(json!({
            "type": "message", "channel": "D024BE91L", "channel_type": "im",
            "user": "U2147483697", "text": "Hello", "ts": "1355517523.000005",
            "user_profile": {"display_name": "Ana", "real_name": "Ana Silva"}
        }));
        assert_eq!(dm.platform_message_id, "D024BE91L:1355517523.000005");
        assert_eq!(dm.thread_id.as_deref(), Some("D024BE91L"));
        assert_eq!(dm.from.identifier.kind, IDENTIFIER_TYPE);
        assert_eq!(dm.from.identifier.value, "U2147483697");
        assert_eq!(dm.from.display_name.as_deref(), Some("Ana"));
        assert_eq!(
            dm.sent_at,
            DateTime::from_timestamp_micros(1_355_517_523_000_005)
        );
        let post = message(json!({
            "type": "message", "channel": "C024BE91L", "channel_type": "channel",
            "user": "U2147483697", "text": "Help", "ts": "1355517524.000100"
        }));
        assert_eq!(
            post.thread_id.as_deref(),
            Some("C024BE91L/1355517524.000100")
        );
        let reply = message(json!({
            "type": "message", "channel": "C024BE91L", "channel_type": "channel",
            "user": "U2147483697", "text": "More", "ts": "1355517530.000200",
            "thread_ts": "1355517524.000100"
        }));
        assert_eq!(
            reply.thread_id.as_deref(),
            Some("C024BE91L/1355517524.000100")
        );
    }

    #[test]
    fn files_map_by_type_and_keep_their_private_url() {
        let m = message(json!({
            "type": "message", "subtype": "file_share", "channel": "D1", "channel_type": "im",
            "user": "U1", "text": "", "ts": "1.000001",
            "files": [
                {"id": "F1", "name": "a.png", "mimetype": "image/png", "size": 10,
                 "url_private": "https://files.slack.com/files-pri/T1-F1/a.png",
                 "url_private_download": "https://files.slack.com/files-pri/T1-F1/download/a.png"},
                {"id": "F2", "name": "b.mp4", "mimetype": "video/mp4",
                 "url_private": "https://files.slack.com/b.mp4"},
                {"id": "F3", "name": "c.mp3", "mimetype": "audio/mpeg",
                 "url_private": "https://files.slack.com/c.mp3"},
                {"id": "F4", "name": "clip.m4a", "mimetype": "audio/mp4", "subtype": "slack_audio",
                 "duration_ms": 4200, "url_private": "https://files.slack.com/clip.m4a"},
                {"id": "F5", "name": "d.pdf", "mimetype": "application/pdf",
                 "url_private": "https://files.slack.com/d.pdf"},
                {"id": "F6", "mode": "hidden_by_limit"}
            ]
        }));
        let kinds: Vec<&str> = m
            .parts
            .iter()
            .map(|p| match p {
                Part::Image(_) => "image",
                Part::Video(_) => "video",
                Part::Audio(_) => "audio",
                Part::VoiceNote(_) => "voice_note",
                Part::File(_) => "file",
                Part::Unsupported(u) => u.platform_type.as_str(),
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "image",
                "video",
                "audio",
                "voice_note",
                "file",
                "file:hidden_by_limit"
            ]
        );
        let Part::Image(image) = &m.parts[0] else {
            unreachable!()
        };
        assert_eq!(
            image.media.url.as_deref(),
            Some("https://files.slack.com/files-pri/T1-F1/download/a.png")
        );
        assert_eq!(image.media.platform_ref.as_deref(), Some("F1"));
        let Part::VoiceNote(clip) = &m.parts[3] else {
            unreachable!()
        };
        assert_eq!(clip.media.duration_s, Some(4.2));
    }

    #[test]
    fn edits_and_deletions_name_the_original_message() {
        let edit = parse(json!({
            "type": "message", "subtype": "message_changed", "channel": "C1",
            "hidden": true, "ts": "1700000100.000300",
            "message": {"type": "message", "user": "U1", "text": "Hello, fixed",
                        "ts": "1700000000.000100",
                        "edited": {"user": "U1", "ts": "1700000100.000000"}},
            "previous_message": {"type": "message", "user": "U1", "text": "Helo",
                                 "ts": "1700000000.000100"}
        }));
        assert_eq!(
            edit,
            vec![InboundEvent::Edit(MessageEdit {
                platform_message_id: "C1:1700000000.000100".into(),
                parts: vec![Part::Text(TextPart {
                    text: "Hello, fixed".into()
                })],
                edited_at: DateTime::from_timestamp(1_700_000_100, 0),
                order: Some(EditOrder(vec![1_700_000_100_000_000])),
            })]
        );
        let deleted = parse(json!({
            "type": "message", "subtype": "message_deleted", "channel": "C1",
            "hidden": true, "ts": "1700000200.000000", "deleted_ts": "1700000000.000100"
        }));
        assert_eq!(
            deleted,
            vec![InboundEvent::Retract {
                platform_message_id: "C1:1700000000.000100".into()
            }]
        );
    }

    #[test]
    fn our_own_posts_bot_posts_and_housekeeping_give_no_event() {
        for event in [
            json!({"type": "message", "channel": "C1", "user": "U0OURBOT", "text": "hi", "ts": "1.1"}),
            json!({"type": "message", "channel": "C1", "bot_id": "B1", "app_id": "A0OURAPP",
                   "user": "U9", "text": "hi", "ts": "1.1"}),
            json!({"type": "message", "subtype": "bot_message", "channel": "C1", "bot_id": "B2",
                   "text": "alert", "ts": "1.1"}),
            json!({"type": "message", "subtype": "channel_join", "channel": "C1", "user": "U1",
                   "text": "joined", "ts": "1.1"}),
            json!({"type": "message", "subtype": "message_changed", "channel": "C1",
                   "message": {"user": "U0OURBOT", "text": "x", "ts": "1.1"}}),
            json!({"type": "reaction_added", "user": "U1"}),
        ] {
            assert_eq!(parse(event.clone()), vec![], "{event}");
        }
    }

    #[test]
    fn malformed_events_name_the_field_at_fault() {
        let err = parse_events(
            envelope(json!({"type": "message", "channel": "C1", "text": "x", "ts": "1.1"}))
                .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(err, invalid("event.user", "missing or not a string"));
        let err = parse_events(envelope(json!({"type": "message", "channel": "C1", "user": "U1", "text": "x", "ts": "yesterday"})).as_bytes())
            .unwrap_err();
        assert_eq!(err, invalid("event.ts", "not a Slack ts"));
        assert!(matches!(
            parse_events(b"{not json"),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            parse_events(b"[1]"),
            Err(ParseError::Invalid { .. })
        ));
    }
}
