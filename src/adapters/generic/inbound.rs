//! A webhook body of the generic contract read into events: one event or a list, each
//! field checked and named with its path when it is wrong.

use serde_json::Value;

use super::wire::*;
use super::{IDENTIFIER_TYPE, MAX_EVENTS};
use crate::adapters::{
    InboundContact, InboundEvent, InboundMessage, MessageEdit, ParseError, StatusUpdate, invalid,
    read,
};
use crate::model::{DeliveryStatus, EditOrder, Identifier, Part};

/// Reads one event of the generic contract; `at` prefixes field names (`[2]`).
/// `signed_at` (the verified `webhook-timestamp`) orders edits that carry no `timestamp`.
fn parse_event(
    value: &Value,
    at: &str,
    signed_at: Option<i64>,
) -> Result<InboundEvent, ParseError> {
    let prefix = |f: &str| {
        if at.is_empty() {
            f.to_owned()
        } else {
            format!("{at}.{f}")
        }
    };
    let kind = value.get("type").and_then(Value::as_str).ok_or_else(|| {
        invalid(
            prefix("type"),
            "is required: message, edit, retract or status",
        )
    })?;
    match kind {
        "message" => {
            let wire: WireMessage = read(value, at)?;
            let parts = Part::parse_list(&wire.parts, &prefix("parts"))
                .map_err(|e| invalid(e.path, e.message))?;
            Ok(InboundEvent::Message(InboundMessage {
                conversation_hint: None,
                platform_message_id: wire.id.0,
                thread_id: wire.thread_id.filter(|t| !t.is_empty()),
                from: InboundContact {
                    identifier: Identifier {
                        kind: IDENTIFIER_TYPE.into(),
                        value: wire.from.id.0,
                    },
                    display_name: wire.from.name.filter(|n| !n.trim().is_empty()),
                    email: wire.from.email.filter(|e| !e.trim().is_empty()),
                },
                reply_to: wire.reply_to.filter(|r| !r.is_empty()),
                parts,
                sent_at: wire.timestamp,
                raw: value.clone(),
            }))
        }
        "edit" => {
            let wire: WireEdit = read(value, at)?;
            let parts = Part::parse_list(&wire.parts, &prefix("parts"))
                .map_err(|e| invalid(e.path, e.message))?;
            // The edit's own time orders it; without one, the time it was signed at, so a
            // replayed request (same signature, same time) is recognized.
            let order = wire
                .timestamp
                .map(|t| t.timestamp_millis())
                .or(signed_at.map(|s| s.saturating_mul(1000)))
                .map(|ms| EditOrder(vec![ms]));
            Ok(InboundEvent::Edit(MessageEdit {
                platform_message_id: wire.id.0,
                parts,
                edited_at: wire.timestamp,
                order,
            }))
        }
        "retract" => {
            let wire: WireRetract = read(value, at)?;
            Ok(InboundEvent::Retract {
                platform_message_id: wire.id.0,
            })
        }
        "status" => {
            let wire: WireStatus = read(value, at)?;
            Ok(InboundEvent::Status(StatusUpdate {
                platform_message_id: wire.id.0,
                status: match wire.status {
                    WireDeliveryStatus::Sent => DeliveryStatus::Sent,
                    WireDeliveryStatus::Delivered => DeliveryStatus::Delivered,
                    WireDeliveryStatus::Read => DeliveryStatus::Read,
                    WireDeliveryStatus::Failed => DeliveryStatus::Failed,
                },
                error: wire.error,
            }))
        }
        other => Err(invalid(
            prefix("type"),
            format!("unknown event type {other:?}; expected message, edit, retract or status"),
        )),
    }
}

/// Reads a body of the generic contract: one event or a list of them.
pub fn parse_body(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    parse_signed_body(body, None)
}

/// Reads a body signed at `signed_at` (unix seconds): edits without a `timestamp` are
/// ordered by it.
pub fn parse_signed_body(
    body: &[u8],
    signed_at: Option<i64>,
) -> Result<Vec<InboundEvent>, ParseError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::Malformed(e.to_string()))?;
    match &value {
        Value::Array(items) if items.is_empty() => {
            Err(invalid("body", "the list of events is empty"))
        }
        Value::Array(items) if items.len() > MAX_EVENTS => Err(invalid(
            "body",
            format!("at most {MAX_EVENTS} events per request"),
        )),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_event(item, &format!("[{i}]"), signed_at))
            .collect(),
        Value::Object(_) => Ok(vec![parse_event(&value, "", signed_at)?]),
        _ => Err(invalid(
            "body",
            "must be an event object or a list of events",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<Vec<InboundEvent>, ParseError> {
        parse_body(value.to_string().as_bytes())
    }

    #[test]
    fn the_example_in_the_openapi_document_parses() {
        let schema = serde_json::to_value(<WireEvent as utoipa::PartialSchema>::schema()).unwrap();
        let events = parse(schema["example"].clone()).expect("the example is a valid event");
        assert!(matches!(events[..], [InboundEvent::Message(_)]));
    }

    fn field_of(err: ParseError) -> String {
        match err {
            ParseError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn reads_a_message_with_every_documented_field() {
        let events = parse(json!({
            "type": "message", "id": "app-msg-123", "thread_id": "t-1",
            "timestamp": "2026-11-21T10:00:00Z",
            "from": {"id": "user-42", "name": "Ana", "email": "ana@example.com"},
            "reply_to": "app-msg-100",
            "parts": [{"type": "text", "text": "Hi"},
                      {"type": "image", "media": {"url": "https://x/a.png", "mime_type": "image/png"}, "caption": "c"}]
        }))
        .unwrap();
        let InboundEvent::Message(m) = &events[0] else {
            panic!("not a message")
        };
        assert_eq!(m.platform_message_id, "app-msg-123");
        assert_eq!(m.thread_id.as_deref(), Some("t-1"));
        assert_eq!(m.from.identifier.value, "user-42");
        assert_eq!(m.from.display_name.as_deref(), Some("Ana"));
        assert_eq!(m.from.email.as_deref(), Some("ana@example.com"));
        assert_eq!(m.reply_to.as_deref(), Some("app-msg-100"));
        assert_eq!(m.parts.len(), 2);
        assert_eq!(m.raw["id"], "app-msg-123");
    }

    #[test]
    fn reads_a_batch_of_messages_and_statuses() {
        let events = parse(json!([
            {"type": "message", "id": "a", "from": {"id": "u"}, "parts": [{"type": "text", "text": "x"}]},
            {"type": "status", "id": "out-1", "status": "delivered", "error": null}
        ]))
        .unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[1],
            InboundEvent::Status(StatusUpdate {
                platform_message_id: "out-1".into(),
                status: DeliveryStatus::Delivered,
                error: None
            })
        );
    }

    #[test]
    fn bad_events_name_the_field_at_fault() {
        let text = |id: Value| json!({"type": "message", "id": id, "from": {"id": "u"}, "parts": [{"type": "text", "text": "x"}]});
        assert_eq!(field_of(parse(json!({"id": "a"})).unwrap_err()), "type");
        assert_eq!(
            field_of(parse(json!({"type": "typing"})).unwrap_err()),
            "type"
        );
        assert_eq!(field_of(parse(text(json!(""))).unwrap_err()), "id");
        assert_eq!(field_of(parse(text(json!(5))).unwrap_err()), "id");
        assert_eq!(
            field_of(parse(json!({"type": "message", "id": "a", "parts": []})).unwrap_err()),
            "from"
        );
        assert_eq!(
            field_of(
                parse(json!({"type": "message", "id": "a", "from": {}, "parts": []})).unwrap_err()
            ),
            "from.id"
        );
        assert_eq!(
            field_of(
                parse(json!({"type": "message", "id": "a", "from": {"id": "u"}, "parts": []}))
                    .unwrap_err()
            ),
            "parts"
        );
        assert_eq!(
            field_of(
                parse(json!([text(json!("ok")), {"type": "status", "id": "x", "status": "lost"}]))
                    .unwrap_err()
            ),
            "[1].status"
        );
        assert_eq!(field_of(parse(json!([])).unwrap_err()), "body");
        assert_eq!(field_of(parse(json!("hello")).unwrap_err()), "body");
        assert!(matches!(
            parse_body(b"{\"type\":\"message\","),
            Err(ParseError::Malformed(_))
        ));
    }
}
