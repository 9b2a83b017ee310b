//! Replies out: a reply's parts planned as posts and uploads into the right thread, and
//! Slack's answers read.

use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use serde_json::Value;

use crate::adapters::{Outbound, SendError, classify_status};
use crate::model::{Media, MediaPart, Part};

use super::MAX_TEXT;

/// Reads a Web API answer: HTTP errors as usual, then Slack's `ok: false` error codes,
/// of which only the transient ones are worth another try.
pub(super) fn read_answer(
    method: &str,
    status: StatusCode,
    headers: &HeaderMap,
    text: &str,
) -> Result<Value, SendError> {
    if !status.is_success() {
        return Err(classify_status(status, headers, text));
    }
    let answer: Value = serde_json::from_str(text).map_err(|_| SendError::Retryable {
        reason: format!("{method}: Slack's answer is not JSON"),
        retry_after: None,
    })?;
    if answer.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(answer);
    }
    let error = answer
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("unknown_error");
    let reason = format!("{method}: Slack refused it: {error}");
    Err(match error {
        "ratelimited" | "rate_limited" => SendError::RateLimited {
            reason,
            retry_after: crate::adapters::retry_after(headers, Utc::now()),
        },
        "internal_error"
        | "fatal_error"
        | "service_unavailable"
        | "request_timeout"
        | "team_added_to_org" => SendError::Retryable {
            reason,
            retry_after: None,
        },
        _ => SendError::Permanent { reason },
    })
}

/// Where a reply goes: a Slack channel (or a user id, which opens the DM) and the thread.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Target {
    pub(super) channel: String,
    pub(super) thread_ts: Option<String>,
}

impl Target {
    /// The conversation's thread id (`{channel}` or `{channel}/{thread_ts}`), else the
    /// contact's member id (a direct message).
    pub(super) fn of(message: &Outbound) -> Result<Self, SendError> {
        let (channel, thread_ts) = match message.platform_thread_id.as_deref() {
            Some(thread) => match thread.split_once('/') {
                Some((channel, ts)) => (channel, Some(ts.to_owned())),
                None => (thread, None),
            },
            None => (message.to.value.as_str(), None),
        };
        if channel.trim().is_empty() {
            return Err(SendError::Permanent {
                reason: "the conversation has no Slack channel or member id".into(),
            });
        }
        Ok(Self {
            channel: channel.to_owned(),
            thread_ts,
        })
    }
}

/// One step of a reply: text to post, or a file to upload.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Step<'a> {
    Text(String),
    Upload(&'a MediaPart),
}

/// Turns a reply's parts into steps, in order: text, locations and contacts in a row
/// become one message; each file is one upload.
pub(super) fn plan(parts: &[Part]) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    let mut text: Vec<String> = Vec::new();
    let flush = |text: &mut Vec<String>, steps: &mut Vec<Step>| {
        if !text.is_empty() {
            let joined = text.join("\n");
            steps.extend(split_text(&joined, MAX_TEXT).into_iter().map(Step::Text));
            text.clear();
        }
    };
    for part in parts {
        match part {
            Part::Text(t) if !t.text.trim().is_empty() => text.push(t.text.clone()),
            Part::Text(_) => {}
            Part::Location(l) => {
                let label = l
                    .name
                    .iter()
                    .chain(l.address.iter())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ");
                let link = format!(
                    "https://www.openstreetmap.org/?mlat={}&mlon={}",
                    l.latitude, l.longitude
                );
                text.push(if label.is_empty() {
                    format!(":round_pushpin: <{link}|{}, {}>", l.latitude, l.longitude)
                } else {
                    format!(":round_pushpin: <{link}|{label}>")
                });
            }
            Part::Contact(c) => {
                let mut lines = vec![format!(
                    ":bust_in_silhouette: {}",
                    c.name.as_deref().unwrap_or("Contact")
                )];
                lines.extend(c.phones.iter().cloned());
                lines.extend(c.emails.iter().cloned());
                text.push(lines.join("\n"));
            }
            Part::Image(m)
            | Part::Video(m)
            | Part::Audio(m)
            | Part::VoiceNote(m)
            | Part::Sticker(m)
            | Part::File(m) => {
                flush(&mut text, &mut steps);
                steps.push(Step::Upload(m));
            }
            Part::Unsupported(u) => text.push(format!("[{}]", u.platform_type)),
        }
    }
    flush(&mut text, &mut steps);
    steps
}

/// Splits text into pieces of at most `max` characters, at line breaks where it can.
fn split_text(text: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.chars().count() > max {
        let cut = rest
            .char_indices()
            .nth(max)
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let at = rest[..cut].rfind('\n').filter(|&i| i > 0).unwrap_or(cut);
        pieces.push(rest[..at].to_owned());
        rest = rest[at..].trim_start_matches('\n');
    }
    if !rest.is_empty() {
        pieces.push(rest.to_owned());
    }
    pieces
}

/// The file name to give Slack: the part's own, else the URL's last segment.
pub(super) fn file_name(media: &Media, url: &str) -> String {
    media
        .filename
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| {
            reqwest::Url::parse(url).ok().and_then(|u| {
                u.path_segments()
                    .and_then(|mut s| s.next_back().map(str::to_owned))
                    .filter(|s| !s.is_empty())
            })
        })
        .unwrap_or_else(|| "file".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::slack::inbound::{parse_events, ts_micros};
    use crate::adapters::slack::tests::envelope;
    use crate::adapters::slack::*;
    use crate::adapters::{Outbound, SendError};
    use crate::model::{Identifier, Media, MediaPart, Part, TextPart};
    use axum::http::{HeaderMap, StatusCode};
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn a_reply_goes_into_the_thread_it_answers() {
        let mut out = Outbound {
            message_id: crate::model::MessageId::new(),
            conversation_id: crate::model::ConversationId::new(),
            platform_thread_id: Some("C1/1700000000.000100".into()),
            to: Identifier {
                kind: IDENTIFIER_TYPE.into(),
                value: "U1".into(),
            },
            reply_to: None,
            parts: vec![],
        };
        assert_eq!(
            Target::of(&out).unwrap(),
            Target {
                channel: "C1".into(),
                thread_ts: Some("1700000000.000100".into())
            }
        );
        out.platform_thread_id = Some("D1".into());
        assert_eq!(
            Target::of(&out).unwrap(),
            Target {
                channel: "D1".into(),
                thread_ts: None
            }
        );
        out.platform_thread_id = None;
        assert_eq!(
            Target::of(&out).unwrap(),
            Target {
                channel: "U1".into(),
                thread_ts: None
            }
        );
    }

    #[test]
    fn text_locations_and_contacts_in_a_row_are_one_post_and_files_upload_in_order() {
        let image = MediaPart {
            media: Media {
                url: Some("https://x.test/a.png".into()),
                ..Media::default()
            },
            caption: Some("look".into()),
        };
        let parts = vec![
            Part::Text(TextPart {
                text: "Here:".into(),
            }),
            Part::Location(crate::model::LocationPart {
                latitude: 38.7,
                longitude: -9.1,
                name: Some("Shop".into()),
                address: None,
            }),
            Part::Image(image.clone()),
            Part::Contact(crate::model::ContactPart {
                name: Some("Bo".into()),
                phones: vec!["+351 1".into()],
                emails: vec![],
            }),
        ];
        assert_eq!(
            plan(&parts),
            vec![
                Step::Text("Here:\n:round_pushpin: <https://www.openstreetmap.org/?mlat=38.7&mlon=-9.1|Shop>".into()),
                Step::Upload(&image),
                Step::Text(":bust_in_silhouette: Bo\n+351 1".into()),
            ]
        );
    }

    #[test]
    fn only_transient_slack_errors_are_retried() {
        let none = HeaderMap::new();
        let refused = |e: &str| {
            read_answer(
                "chat.postMessage",
                StatusCode::OK,
                &none,
                &json!({"ok": false, "error": e}).to_string(),
            )
            .unwrap_err()
        };
        assert!(matches!(
            refused("channel_not_found"),
            SendError::Permanent { .. }
        ));
        assert!(matches!(
            refused("not_in_channel"),
            SendError::Permanent { .. }
        ));
        assert!(matches!(
            refused("invalid_auth"),
            SendError::Permanent { .. }
        ));
        assert!(matches!(
            refused("ratelimited"),
            SendError::RateLimited { .. }
        ));
        assert!(matches!(
            refused("internal_error"),
            SendError::Retryable { .. }
        ));
        assert_eq!(
            refused("channel_not_found").to_string(),
            "chat.postMessage: Slack refused it: channel_not_found"
        );
        assert!(matches!(
            read_answer("x", StatusCode::OK, &none, "<html>"),
            Err(SendError::Retryable { .. })
        ));
        assert!(matches!(
            read_answer("x", StatusCode::SERVICE_UNAVAILABLE, &none, ""),
            Err(SendError::Retryable { .. })
        ));
    }

    #[test]
    fn long_text_splits_at_line_breaks() {
        let text = format!("{}\n{}", "a".repeat(30), "b".repeat(30));
        assert_eq!(split_text(&text, 40), vec!["a".repeat(30), "b".repeat(30)]);
        assert_eq!(split_text(&"c".repeat(90), 40).len(), 3);
    }

    proptest! {
        #[test]
        fn any_body_parses_or_fails_cleanly(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_events(&body);
        }

        #[test]
        fn any_event_object_parses_or_fails_cleanly(
            kind in "(message|app_mention|reaction_added)",
            subtype in proptest::option::of("(file_share|message_changed|message_deleted|bot_message|x)"),
            ts in "[0-9.]{0,20}",
            text in ".{0,40}",
        ) {
            let mut event = json!({"type": kind, "channel": "C1", "user": "U1", "ts": ts, "text": text,
                                   "deleted_ts": ts, "message": {"user": "U1", "ts": ts, "text": text}});
            if let Some(s) = subtype { event["subtype"] = s.into(); }
            let _ = parse_events(envelope(event).as_bytes());
        }

        #[test]
        fn ts_micros_is_exact_for_slack_timestamps(secs in 0i64..4_000_000_000, micros in 0i64..1_000_000) {
            let ts = format!("{secs}.{micros:06}");
            prop_assert_eq!(ts_micros(&ts), Some(secs * 1_000_000 + micros));
        }
    }
}
