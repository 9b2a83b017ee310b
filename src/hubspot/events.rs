//! The events HubSpot posts to the custom channel's `webhookUrl`
//! (research/hubspot-custom-channels.md §5.1): a rep's message to send
//! (`OUTGOING_CHANNEL_MESSAGE_CREATED`) and channel-account changes
//! (`CHANNEL_ACCOUNT_CREATED` / `_UPDATED` / `_PURGED`). The body is one JSON object; an
//! array of them is accepted too, as several implementers do defensively. Unknown types
//! are read as [`EventKind::Unknown`]: acknowledged and logged, never refused, so HubSpot
//! does not retry them for a day.
//!
//! Pure: parsing a fixture needs no server. Fields are read leniently (HubSpot documents
//! few of them); only what we act on is required.

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::adapters::{ParseError, invalid};

/// One event of a webhook, with what it is stored under.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookEvent {
    /// What deduplicates it: `message:{message.id}` for a rep's message, else
    /// `event:{eventId}`, else `sha256:{…}` of the event itself (HubSpot retries the same
    /// body).
    pub key: String,
    pub kind: EventKind,
    /// The event as received, stored and read back by the job that acts on it.
    pub payload: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    OutgoingMessage(Box<OutgoingMessage>),
    Account(AccountEvent),
    /// A type we do not act on, named as HubSpot named it.
    Unknown(String),
}

impl EventKind {
    /// The event's `type` as HubSpot spells it.
    pub fn type_name(&self) -> &str {
        match self {
            EventKind::OutgoingMessage(_) => OUTGOING_MESSAGE,
            EventKind::Account(a) => a.change.type_name(),
            EventKind::Unknown(t) => t,
        }
    }
}

pub const OUTGOING_MESSAGE: &str = "OUTGOING_CHANNEL_MESSAGE_CREATED";

/// A rep's message, to be sent to the contact.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutgoingMessage {
    #[serde(default)]
    pub event_id: Option<String>,
    /// Our `integrationThreadId`s of the thread: our conversation id.
    #[serde(default)]
    pub channel_integration_thread_ids: Vec<String>,
    pub message: Message,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    #[serde(default)]
    pub conversations_thread_id: Option<String>,
    #[serde(default)]
    pub channel_account_id: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub senders: Vec<Actor>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    #[serde(default)]
    pub in_reply_to_id: Option<String>,
}

impl Message {
    /// Who wrote it: the first sender's actor id (`A-123`), else `createdBy`.
    pub fn author(&self) -> Option<&str> {
        self.senders
            .iter()
            .find_map(|s| s.actor_id.as_deref())
            .or(self.created_by.as_deref())
            .filter(|a| !a.trim().is_empty())
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    #[serde(default)]
    pub actor_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// An attachment of a rep's message. Only `FILE` is sent on; the other types (`LOCATION`,
/// `CONTACT`, …) have no outbound part yet and are noted on the reply instead.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub file_id: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub file_usage_type: Option<String>,
}

/// What happened to a channel account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountChange {
    Created,
    Updated,
    Purged,
}

impl AccountChange {
    pub fn type_name(self) -> &'static str {
        match self {
            AccountChange::Created => "CHANNEL_ACCOUNT_CREATED",
            AccountChange::Updated => "CHANNEL_ACCOUNT_UPDATED",
            AccountChange::Purged => "CHANNEL_ACCOUNT_PURGED",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AccountEvent {
    pub change: AccountChange,
    pub channel_account_id: String,
    /// `authorized` when the event carries it (false: HubSpot stopped taking messages).
    pub authorized: Option<bool>,
    pub name: Option<String>,
}

/// Reads a webhook body: one event object, or an array of them.
pub fn parse(body: &[u8]) -> Result<Vec<WebhookEvent>, ParseError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::Malformed(e.to_string()))?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(invalid("body", "an empty list has no event"));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| parse_event(v, &format!("[{i}]")))
                .collect()
        }
        v @ Value::Object(_) => Ok(vec![parse_event(v, "")?]),
        _ => Err(invalid("body", "must be an event object or a list of them")),
    }
}

/// One event, `at` naming it in errors (`[2]` in a list, nothing alone).
pub fn parse_event(value: Value, at: &str) -> Result<WebhookEvent, ParseError> {
    let field = |name: &str| {
        if at.is_empty() {
            name.to_owned()
        } else {
            format!("{at}.{name}")
        }
    };
    let Some(object) = value.as_object() else {
        return Err(invalid(at.to_owned(), "must be an event object"));
    };
    let kind = match object.get("type") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => return Err(invalid(field("type"), "is required (a string)")),
    };
    let text_of = |name: &str| -> Option<String> {
        match object.get(name)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let event_id = text_of("eventId");
    let (key, kind) = match kind.as_str() {
        OUTGOING_MESSAGE => {
            let message: OutgoingMessage = serde_json::from_value(value.clone())
                .map_err(|e| invalid(field("message"), e.to_string()))?;
            if message.message.id.trim().is_empty() {
                return Err(invalid(field("message.id"), "must not be empty"));
            }
            (
                format!("message:{}", message.message.id),
                EventKind::OutgoingMessage(Box::new(message)),
            )
        }
        "CHANNEL_ACCOUNT_CREATED" | "CHANNEL_ACCOUNT_UPDATED" | "CHANNEL_ACCOUNT_PURGED" => {
            let change = match kind.as_str() {
                "CHANNEL_ACCOUNT_CREATED" => AccountChange::Created,
                "CHANNEL_ACCOUNT_UPDATED" => AccountChange::Updated,
                _ => AccountChange::Purged,
            };
            let account = text_of("channelAccountId")
                .ok_or_else(|| invalid(field("channelAccountId"), "is required"))?;
            let authorized = match object.get("authorized") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(_) => return Err(invalid(field("authorized"), "must be true or false")),
            };
            let event = AccountEvent {
                change,
                channel_account_id: account,
                authorized,
                name: text_of("name").or_else(|| text_of("channelAccountName")),
            };
            (
                key_of(event_id.as_deref(), &value),
                EventKind::Account(event),
            )
        }
        _ => (
            key_of(event_id.as_deref(), &value),
            EventKind::Unknown(kind),
        ),
    };
    Ok(WebhookEvent {
        key,
        kind,
        payload: value,
    })
}

fn key_of(event_id: Option<&str>, value: &Value) -> String {
    match event_id {
        Some(id) => format!("event:{id}"),
        None => {
            let digest = Sha256::digest(value.to_string().as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            format!("sha256:{hex}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/hubspot/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn an_outgoing_message_reads_its_ids_text_author_and_attachments() {
        let events = parse(&fixture("outgoing_message.json")).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].key, "message:hs-out-1");
        let EventKind::OutgoingMessage(m) = &events[0].kind else {
            panic!("{:?}", events[0].kind);
        };
        assert_eq!(m.channel_integration_thread_ids, ["conv_01"]);
        assert_eq!(
            m.message.conversations_thread_id.as_deref(),
            Some("8877665544")
        );
        assert_eq!(
            m.message.text.as_deref(),
            Some("Sorry about that, checking now")
        );
        assert_eq!(m.message.author(), Some("A-1234567"));
        assert_eq!(m.message.in_reply_to_id.as_deref(), Some("hs-msg-5001"));
        assert_eq!(m.message.attachments.len(), 1);
        assert_eq!(m.message.attachments[0].file_id.as_deref(), Some("777"));
    }

    #[test]
    fn account_events_read_the_account_and_its_authorization() {
        let events = parse(&fixture("account_updated.json")).unwrap();
        let EventKind::Account(a) = &events[0].kind else {
            panic!("{:?}", events[0].kind);
        };
        assert_eq!(a.change, AccountChange::Updated);
        assert_eq!(a.channel_account_id, "2002");
        assert_eq!(a.authorized, Some(false));
        assert_eq!(events[0].key, "event:evt-2");
        let purged = parse(&fixture("account_purged.json")).unwrap();
        assert!(matches!(
            &purged[0].kind,
            EventKind::Account(AccountEvent {
                change: AccountChange::Purged,
                ..
            })
        ));
    }

    #[test]
    fn an_array_of_events_is_accepted_and_unknown_types_are_kept_by_name() {
        let events = parse(&fixture("batch_with_unknown.json")).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].kind, EventKind::Unknown("SOMETHING_NEW".into()));
        // Without an eventId, the same event body always has the same key.
        assert!(events[1].key.starts_with("sha256:"));
        let again = parse(&fixture("batch_with_unknown.json")).unwrap();
        assert_eq!(again[1].key, events[1].key);
    }

    #[test]
    fn malformed_bodies_are_refused_naming_the_field() {
        assert!(matches!(parse(b"{nope"), Err(ParseError::Malformed(_))));
        let cases: [(&[u8], &str); 5] = [
            (b"42", "body"),
            (b"[]", "body"),
            (br#"{"portalId": "1"}"#, "type"),
            (
                br#"[{"type": "CHANNEL_ACCOUNT_CREATED"}]"#,
                "[0].channelAccountId",
            ),
            (
                br#"{"type": "OUTGOING_CHANNEL_MESSAGE_CREATED", "message": {"text": "hi"}}"#,
                "message",
            ),
        ];
        for (body, expected) in cases {
            match parse(body) {
                Err(ParseError::Invalid { field, .. }) => assert_eq!(field, expected),
                other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }
}
