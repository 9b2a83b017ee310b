//! The generic channel: our own webhook contract for any in-house app (README, "The generic
//! webhook contract").
//! Both directions are signed with Standard Webhooks using the channel's `secret`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::fetch::MediaClient;
use super::signature::{self, WebhookKey};
use super::{
    ChannelAdapter, FetchError, FetchedMedia, InboundContact, InboundEvent, InboundMessage,
    MessageEdit, Outbound, ParseError, RawRequest, Receipt, RetiredSecret, SendError, StatusUpdate,
    VerifyError, classify_status, classify_transport, invalid, read,
};
use crate::model::{DeliveryStatus, EditOrder, Identifier, Part};
use crate::secret::Secret;

/// The identifier type of a generic channel's contacts.
pub const IDENTIFIER_TYPE: &str = "app_user";

/// The most events one webhook may carry; a larger batch is refused whole.
pub const MAX_EVENTS: usize = 1000;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericConfig {
    /// `whsec_<base64>`: verifies inbound webhooks and signs outbound ones.
    pub secret: Secret,
    /// Where replies are POSTed.
    pub outbound_url: String,
}

impl GenericConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if let Err(e) = WebhookKey::parse(self.secret.expose()) {
            errors.push(("secret".into(), e.into()));
        }
        if !crate::model::is_http_url(&self.outbound_url) {
            errors.push(("outbound_url".into(), "must be an http(s) URL".into()));
        }
        errors
    }
}

pub struct GenericAdapter {
    key: WebhookKey,
    /// Keys replaced by a reload, each accepted (inbound only) until its time.
    retired: Vec<(WebhookKey, DateTime<Utc>)>,
    outbound_url: String,
    http: reqwest::Client,
}

impl GenericAdapter {
    pub fn new(config: &GenericConfig, http: reqwest::Client, retired: &[RetiredSecret]) -> Self {
        Self {
            key: WebhookKey::parse(config.secret.expose())
                .expect("validated when the config was loaded"),
            retired: retired
                .iter()
                .filter_map(|r| Some((WebhookKey::parse(r.secret.expose()).ok()?, r.until)))
                .collect(),
            outbound_url: config.outbound_url.clone(),
            http,
        }
    }

    /// The keys that verify a request arriving at `now`.
    fn keys(&self, now: DateTime<Utc>) -> Vec<WebhookKey> {
        std::iter::once(self.key.clone())
            .chain(
                self.retired
                    .iter()
                    .filter(|(_, until)| *until > now)
                    .map(|(k, _)| k.clone()),
            )
            .collect()
    }
}

/// A generic channel's webhook body: one event, or a list of events (at most 1000) stored
/// in one transaction.
// 1000 is MAX_EVENTS; the document cannot compute it.
#[derive(ToSchema)]
#[serde(untagged)]
#[schema(as = GenericWebhook)]
pub enum WireBody {
    One(WireEvent),
    Many(Vec<WireEvent>),
}

/// One event of a generic channel's webhook, told apart by `type`.
// Only the OpenAPI document uses this enum: `parse_event` dispatches on `type` itself, to
// name a bad field with its path. Its variants are the structs parsing reads.
#[derive(ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = GenericEvent, example = json!({
    "type": "message", "id": "app-msg-123", "timestamp": "2026-11-21T10:00:00Z",
    "from": {"id": "user-42", "name": "Ana", "email": "ana@example.com"},
    "parts": [{"type": "text", "text": "Hi"}]
}))]
pub enum WireEvent {
    /// A new message from the app's user.
    Message(WireMessage),
    /// The user changed a message they sent.
    Edit(WireEdit),
    /// The user took a message back.
    Retract(WireRetract),
    /// How far one of our replies got.
    Status(WireStatus),
}

/// A new message: `id` is the app's own message id, the key for deduplication.
#[derive(Deserialize, ToSchema)]
#[schema(as = GenericMessage)]
pub struct WireMessage {
    #[schema(value_type = String, min_length = 1)]
    id: NonEmpty,
    /// The app's thread id, for channels with `threading = "platform_thread"`.
    #[serde(default)]
    thread_id: Option<String>,
    /// When the user sent it (default: when it arrived).
    #[serde(default)]
    timestamp: Option<DateTime<Utc>>,
    from: WireFrom,
    /// The app's id of the message this one quotes.
    #[serde(default)]
    reply_to: Option<String>,
    #[schema(value_type = Vec<Part>, min_items = 1)]
    parts: Value,
}

/// The app's user who wrote: `id` identifies them as the contact's `app_user` identifier.
#[derive(Deserialize, ToSchema)]
#[schema(as = GenericSender)]
pub struct WireFrom {
    #[schema(value_type = String, min_length = 1)]
    id: NonEmpty,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

/// A changed message: `id` is the app's id of the message; `parts` replace its parts.
#[derive(Deserialize, ToSchema)]
#[schema(as = GenericEdit)]
pub struct WireEdit {
    #[schema(value_type = String, min_length = 1)]
    id: NonEmpty,
    #[serde(default)]
    timestamp: Option<DateTime<Utc>>,
    #[schema(value_type = Vec<Part>, min_items = 1)]
    parts: Value,
}

/// A message taken back: `id` is the app's id of the message.
#[derive(Deserialize, ToSchema)]
#[schema(as = GenericRetract)]
pub struct WireRetract {
    #[schema(value_type = String, min_length = 1)]
    id: NonEmpty,
}

/// A status report on one of our replies: `id` is the id the app answered the send with.
#[derive(Deserialize, ToSchema)]
#[schema(as = GenericStatus)]
pub struct WireStatus {
    #[schema(value_type = String, min_length = 1)]
    id: NonEmpty,
    status: WireDeliveryStatus,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = GenericDeliveryStatus)]
pub enum WireDeliveryStatus {
    Sent,
    Delivered,
    Read,
    Failed,
}

/// A string that must have something in it (ids).
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct NonEmpty(String);

impl TryFrom<String> for NonEmpty {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.trim().is_empty() {
            Err("must not be empty")
        } else {
            Ok(Self(s))
        }
    }
}

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

/// The JSON body a reply is POSTed with.
pub fn outbound_body(message: &Outbound) -> Value {
    json!({
        "type": "message",
        "id": message.message_id,
        "conversation_id": message.conversation_id,
        "thread_id": message.platform_thread_id,
        "to": {"id": message.to.value},
        "reply_to": message.reply_to,
        "parts": message.parts,
    })
}

#[async_trait]
impl ChannelAdapter for GenericAdapter {
    fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError> {
        signature::verify(
            &self.keys(now),
            request.header("webhook-id"),
            request.header("webhook-timestamp"),
            request.header("webhook-signature"),
            &request.body,
            now,
        )
    }

    fn parse(&self, request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError> {
        match request.content_type().as_deref() {
            Some("application/json") => parse_signed_body(
                &request.body,
                request
                    .header("webhook-timestamp")
                    .and_then(|t| t.trim().parse().ok()),
            ),
            other => Err(ParseError::UnsupportedMediaType(
                other.unwrap_or("none").to_owned(),
            )),
        }
    }

    async fn send(&self, message: &Outbound) -> Result<Receipt, SendError> {
        let body = serde_json::to_vec(&outbound_body(message)).expect("JSON values serialize");
        let timestamp = Utc::now().timestamp();
        // The message id is the webhook id: it stays the same on every retry, so the app
        // can drop a repeat.
        let id = message.message_id.as_str();
        let response = self
            .http
            .post(&self.outbound_url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", self.key.sign(id, timestamp, &body))
            .body(body)
            .send()
            .await
            .map_err(classify_transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(classify_status(status, &headers, &text));
        }
        let answer = serde_json::from_str::<Value>(&text).ok();
        // A 2xx that says it failed is a failure (some gateways answer 200 to everything):
        // tried again on the schedule, as a 5xx would be.
        if let Some(error) = answer
            .as_ref()
            .and_then(|v| v.get("error"))
            .filter(|e| !e.is_null())
        {
            let snippet: String = error.to_string().chars().take(200).collect();
            return Err(SendError::Retryable {
                reason: format!("HTTP {status} with an error in the body: {snippet}"),
                retry_after: None,
            });
        }
        let platform_message_id = answer.and_then(|v| match v.get("id")? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        Ok(Receipt {
            platform_message_id,
            note: None,
        })
    }

    /// The generic contract gives media as URLs. The app's own origin (that of
    /// `outbound_url`) is configured, so trusted; any other URL must be public.
    async fn fetch_media(
        &self,
        media: &crate::model::Media,
        web: &MediaClient,
    ) -> Result<FetchedMedia, FetchError> {
        let url = media.url.as_deref().ok_or(FetchError::NoMedia)?;
        web.fetch(url, &[&self.outbound_url]).await
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

    #[test]
    fn outbound_body_follows_the_contract() {
        let out = Outbound {
            message_id: crate::model::MessageId::new(),
            conversation_id: crate::model::ConversationId::new(),
            platform_thread_id: None,
            to: Identifier {
                kind: IDENTIFIER_TYPE.into(),
                value: "user-42".into(),
            },
            reply_to: Some("app-msg-100".into()),
            parts: vec![Part::Text(crate::model::TextPart {
                text: "On its way".into(),
            })],
        };
        let body = outbound_body(&out);
        assert_eq!(body["type"], "message");
        assert_eq!(body["to"], json!({"id": "user-42"}));
        assert_eq!(body["reply_to"], "app-msg-100");
        assert_eq!(
            body["parts"][0],
            json!({"type": "text", "text": "On its way"})
        );
        assert!(body["id"].as_str().unwrap().starts_with("msg_"));
    }
}
