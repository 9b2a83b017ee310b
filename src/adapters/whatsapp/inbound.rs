//! A webhook body in, normalized events out: every message and status of every change of
//! every entry, read as pure functions over the JSON.

use serde_json::Value;

use super::IDENTIFIER_TYPE;
use crate::adapters::meta::{Node, non_empty};
use crate::adapters::{InboundContact, InboundEvent, InboundMessage, ParseError, StatusUpdate};
use crate::model::{
    ContactPart, DeliveryStatus, Identifier, LocationPart, Media, MediaPart, Part, TextPart,
    UnsupportedPart,
};

/// Reads a webhook body: every message and status of every change of every entry.
pub fn parse_value(value: &Value) -> Result<Vec<InboundEvent>, ParseError> {
    let root = Node::root(value);
    let object = root.req_str("object")?;
    if object != "whatsapp_business_account" {
        return Err(root.invalid_field(
            "object",
            format!("expected \"whatsapp_business_account\", got {object:?}"),
        ));
    }
    let mut events = Vec::new();
    for entry in root.req_list("entry")? {
        for change in entry.list("changes")? {
            // Other fields (account_update, message_template_status_update, …) carry
            // nothing a conversation needs.
            if change.opt_str("field")?.is_some_and(|f| f != "messages") {
                continue;
            }
            if let Some(value) = change.get_object("value")? {
                parse_change(&value, &mut events)?;
            }
        }
    }
    Ok(events)
}

fn parse_change(value: &Node, events: &mut Vec<InboundEvent>) -> Result<(), ParseError> {
    let messages = value.list("messages")?;
    if !messages.is_empty() {
        let metadata = value.req_object("metadata")?;
        let number = metadata
            .opt_id("phone_number_id")?
            .ok_or_else(|| metadata.invalid_field("phone_number_id", "is required"))?;
        let contacts = value.list("contacts")?;
        for message in &messages {
            events.push(parse_message(message, &number, &contacts)?);
        }
    }
    for status in value.list("statuses")? {
        if let Some(event) = parse_status(&status)? {
            events.push(event);
        }
    }
    // `errors[]` alone reports a problem on Meta's side with no message to store.
    Ok(())
}

fn parse_message(
    message: &Node,
    number: &str,
    contacts: &[Node],
) -> Result<InboundEvent, ParseError> {
    let id = message.req_str("id")?;
    let phone = message.opt_str("from")?.filter(|s| !s.trim().is_empty());
    let user_id = message
        .opt_str("from_user_id")?
        .filter(|s| !s.trim().is_empty());
    let sender = phone.or(user_id).ok_or_else(|| {
        message.invalid_field(
            "from",
            "is required (or from_user_id for a username account)",
        )
    })?;
    let kind = message.req_str("type")?;
    let sent_at = message.opt_unix_seconds("timestamp")?;
    let reply_to = match message.get_object("context")? {
        Some(context) => context
            .opt_str("id")?
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned),
        None => None,
    };
    let parts = parse_parts(message, kind)?;
    Ok(InboundEvent::Message(InboundMessage {
        conversation_hint: None,
        platform_message_id: id.to_owned(),
        thread_id: Some(format!("{number}:{sender}")),
        from: InboundContact {
            identifier: Identifier {
                kind: IDENTIFIER_TYPE.into(),
                value: sender.to_owned(),
            },
            display_name: display_name(contacts, phone, user_id),
            email: None,
        },
        reply_to,
        parts,
        sent_at,
        raw: message.value.clone(),
    }))
}

/// The sender's profile name (or username) from `contacts[]`, matched by `wa_id` or
/// `user_id`; a lone contact is the sender. Cosmetic, so read leniently.
fn display_name(contacts: &[Node], phone: Option<&str>, user_id: Option<&str>) -> Option<String> {
    let field = |c: &Node, key: &str| c.value.get(key).and_then(Value::as_str).map(str::to_owned);
    let matches = |c: &&Node| {
        (phone.is_some() && field(c, "wa_id").as_deref() == phone)
            || (user_id.is_some() && field(c, "user_id").as_deref() == user_id)
    };
    let contact = contacts
        .iter()
        .find(matches)
        .or_else(|| (contacts.len() == 1).then(|| &contacts[0]))?;
    let profile = contact.value.get("profile")?;
    ["name", "username"]
        .iter()
        .filter_map(|k| profile.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_owned)
}

fn parse_parts(message: &Node, kind: &str) -> Result<Vec<Part>, ParseError> {
    let part = match kind {
        "text" => {
            let text = message.req_object("text")?;
            Part::Text(TextPart {
                text: text.req_str("body")?.to_owned(),
            })
        }
        "image" | "video" | "audio" | "document" | "sticker" => media_part(message, kind)?,
        "location" => {
            let location = message.req_object("location")?;
            let coordinate = |key: &str, limit: f64| -> Result<f64, ParseError> {
                let value = location
                    .opt_f64(key)?
                    .ok_or_else(|| location.invalid_field(key, "is required"))?;
                if value.abs() > limit {
                    return Err(location.invalid_field(key, "is out of range"));
                }
                Ok(value)
            };
            Part::Location(LocationPart {
                latitude: coordinate("latitude", 90.0)?,
                longitude: coordinate("longitude", 180.0)?,
                name: non_empty(location.opt_str("name")?),
                address: non_empty(location.opt_str("address")?),
            })
        }
        "contacts" => {
            let cards = message.req_list("contacts")?;
            if cards.is_empty() {
                return Err(message.invalid_field("contacts", "must not be empty"));
            }
            return cards.iter().map(contact_part).collect();
        }
        "interactive" => {
            let interactive = message.req_object("interactive")?;
            let reply = match interactive.opt_str("type")? {
                Some(t @ ("button_reply" | "list_reply")) => Some(interactive.req_object(t)?),
                _ => None,
            };
            match reply {
                // The title is what the contact saw and tapped; the id stays in `raw`.
                Some(reply) => Part::Text(TextPart {
                    text: reply.req_str("title")?.to_owned(),
                }),
                None => unsupported(message, "interactive"),
            }
        }
        "button" => {
            let button = message.req_object("button")?;
            let text = non_empty(button.opt_str("text")?)
                .or(non_empty(button.opt_str("payload")?))
                .ok_or_else(|| button.invalid_field("text", "is required"))?;
            Part::Text(TextPart { text })
        }
        // reaction, order, system, unsupported, unknown and anything newer.
        other => unsupported(message, other),
    };
    Ok(vec![part])
}

fn unsupported(message: &Node, kind: &str) -> Part {
    Part::Unsupported(UnsupportedPart {
        platform_type: kind.to_owned(),
        raw: Some(message.value.clone()),
    })
}

fn media_part(message: &Node, kind: &str) -> Result<Part, ParseError> {
    let object = message.req_object(kind)?;
    let id = object.opt_id("id")?;
    let url = non_empty(object.opt_str("url")?);
    if id.is_none() && url.is_none() {
        return Err(object.invalid_field("id", "is required"));
    }
    let media = MediaPart {
        media: Media {
            platform_ref: id,
            url,
            mime_type: non_empty(object.opt_str("mime_type")?),
            size_bytes: object
                .opt_f64("file_size")?
                .filter(|n| *n >= 0.0)
                .map(|n| n as u64),
            filename: non_empty(object.opt_str("filename")?),
            duration_s: None,
        },
        caption: non_empty(object.opt_str("caption")?),
    };
    Ok(match kind {
        "image" => Part::Image(media),
        "video" => Part::Video(media),
        "document" => Part::File(media),
        "sticker" => Part::Sticker(media),
        // `voice: true` marks a clip recorded in the app (a voice note).
        _ if object.flag("voice") => Part::VoiceNote(media),
        _ => Part::Audio(media),
    })
}

fn contact_part(card: &Node) -> Result<Part, ParseError> {
    let name = match card.get_object("name")? {
        Some(name) => non_empty(name.opt_str("formatted_name")?).or_else(|| {
            let given: Vec<&str> = ["first_name", "middle_name", "last_name"]
                .iter()
                .filter_map(|k| name.value.get(*k).and_then(Value::as_str))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            (!given.is_empty()).then(|| given.join(" "))
        }),
        None => None,
    };
    let mut phones = Vec::new();
    for phone in card.list("phones")? {
        if let Some(p) = non_empty(phone.opt_str("phone")?).or(non_empty(phone.opt_str("wa_id")?)) {
            phones.push(p);
        }
    }
    let mut emails = Vec::new();
    for email in card.list("emails")? {
        if let Some(e) = non_empty(email.opt_str("email")?) {
            emails.push(e);
        }
    }
    Ok(Part::Contact(ContactPart {
        name,
        phones,
        emails,
    }))
}

fn parse_status(status: &Node) -> Result<Option<InboundEvent>, ParseError> {
    let id = status.req_str("id")?;
    let reported = match status.req_str("status")? {
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "read" => DeliveryStatus::Read,
        "failed" => DeliveryStatus::Failed,
        // deleted, warning, played…: nothing the delivery status tracks.
        _ => return Ok(None),
    };
    let errors: Vec<String> = status
        .list("errors")?
        .iter()
        .map(|e| describe_error(e.value))
        .collect();
    Ok(Some(InboundEvent::Status(StatusUpdate {
        platform_message_id: id.to_owned(),
        status: reported,
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    })))
}

/// `131047: Re-engagement message (Message failed to send because …)`.
fn describe_error(error: &Value) -> String {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let code = match error.get("code") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "error".into(),
    };
    let title = text(error.get("title")).or(text(error.get("message")));
    let details = text(error.pointer("/error_data/details"));
    let mut out = code;
    if let Some(title) = title {
        out.push_str(": ");
        out.push_str(&title);
    }
    if let Some(details) = details {
        out.push_str(&format!(" ({details})"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::whatsapp::tests::*;
    use crate::adapters::whatsapp::*;
    use crate::fixtures::fixture;
    use axum::http::{HeaderMap, HeaderValue};
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn text_with_a_quote_names_sender_thread_and_quoted_message() {
        let m = only_message(fixture!("whatsapp/text_reply.json"));
        assert_eq!(
            m.platform_message_id,
            "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgUM0VCMDRBN0YxQ0Q2RTk2QjhFMjYA"
        );
        assert_eq!(m.thread_id.as_deref(), Some("227118690421377:447700900123"));
        assert_eq!(
            m.from.identifier,
            Identifier {
                kind: "whatsapp_user".into(),
                value: PRIYA.into()
            }
        );
        assert_eq!(m.from.display_name.as_deref(), Some("Priya"));
        assert_eq!(
            m.reply_to.as_deref(),
            Some("wamid.HBgMNDQ3NzAwOTAwMTIzFQIAERgSQkl6MDAwMDAwMDAwMDAwMQA=")
        );
        assert_eq!(
            m.parts,
            vec![Part::Text(TextPart {
                text: "Yes please, size M \u{2014} thanks! \u{1f600}".into()
            })]
        );
        assert_eq!(m.sent_at.unwrap().timestamp(), 1783001480);
        assert_eq!(m.raw["type"], "text");
    }

    #[test]
    fn image_keeps_its_media_id_mime_type_and_caption() {
        let part = only_part(fixture!("whatsapp/image.json"));
        assert!(matches!(part, Part::Image(_)));
        let m = part.media().expect("an image has media");
        assert_eq!(m.media.platform_ref.as_deref(), Some("1470623974238919"));
        assert_eq!(m.media.mime_type.as_deref(), Some("image/jpeg"));
        assert_eq!(m.caption.as_deref(), Some("The dent on the lid"));
    }

    #[test]
    fn video_audio_voice_document_and_sticker_map_to_their_kinds() {
        let video = only_part(fixture!("whatsapp/video.json"));
        assert!(
            matches!(&video, Part::Video(m) if m.media.platform_ref.as_deref() == Some("1070486281544591"))
        );
        let audio = only_part(fixture!("whatsapp/audio.json"));
        assert!(
            matches!(&audio, Part::Audio(m) if m.media.mime_type.as_deref() == Some("audio/mpeg"))
        );
        let voice = only_part(fixture!("whatsapp/voice.json"));
        assert!(
            matches!(&voice, Part::VoiceNote(m) if m.media.platform_ref.as_deref() == Some("2153937768413427"))
        );
        let document = only_part(fixture!("whatsapp/document.json"));
        let Part::File(file) = document else {
            panic!("not a file: {document:?}")
        };
        assert_eq!(file.media.filename.as_deref(), Some("invoice-2026-03.pdf"));
        assert_eq!(file.media.mime_type.as_deref(), Some("application/pdf"));
        assert_eq!(file.caption.as_deref(), Some("Invoice for March"));
        let sticker = only_part(fixture!("whatsapp/sticker.json"));
        assert!(
            matches!(&sticker, Part::Sticker(m) if m.media.mime_type.as_deref() == Some("image/webp"))
        );
    }

    #[test]
    fn location_and_contact_cards_become_their_parts() {
        assert_eq!(
            only_part(fixture!("whatsapp/location.json")),
            Part::Location(LocationPart {
                latitude: 51.5072,
                longitude: -0.1276,
                name: Some("Trafalgar Square".into()),
                address: Some("London WC2N 5DN".into()),
            })
        );
        let m = only_message(fixture!("whatsapp/contacts.json"));
        assert_eq!(
            m.parts,
            vec![
                Part::Contact(ContactPart {
                    name: Some("Bo Lindqvist".into()),
                    phones: vec!["+46 70 123 45 67".into()],
                    emails: vec!["bo@example.com".into()],
                }),
                Part::Contact(ContactPart {
                    name: Some("Ana Silva".into()),
                    phones: vec!["+351 912 345 678".into()],
                    emails: vec![],
                }),
            ]
        );
    }

    #[test]
    fn button_and_list_replies_are_the_text_the_contact_tapped() {
        let events = parse(fixture!("whatsapp/interactive.json"));
        let messages: Vec<&InboundMessage> = events
            .iter()
            .map(|e| match e {
                InboundEvent::Message(m) => m,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(messages.len(), 4);
        let text = |m: &InboundMessage| m.parts[0].text().map(str::to_owned);
        assert_eq!(text(messages[0]).as_deref(), Some("Change size"));
        assert_eq!(messages[0].reply_to.as_deref(), Some("wamid.OUT-MENU"));
        assert_eq!(text(messages[1]).as_deref(), Some("Tuesday 10:00"));
        assert!(matches!(&messages[2].parts[0],
            Part::Unsupported(u) if u.platform_type == "interactive"
                && u.raw.as_ref().unwrap()["interactive"]["type"] == "nfm_reply"));
        assert_eq!(text(messages[3]).as_deref(), Some("Stop promotions"));
    }

    #[test]
    fn reactions_system_and_unknown_types_are_kept_as_unsupported_with_their_json() {
        for (body, kind, id) in [
            (
                fixture!("whatsapp/reaction.json"),
                "reaction",
                "wamid.REACT1",
            ),
            (
                fixture!("whatsapp/unsupported.json"),
                "unsupported",
                "wamid.UNS1",
            ),
            (fixture!("whatsapp/system.json"), "system", "wamid.SYS1"),
        ] {
            let m = only_message(body);
            assert_eq!(m.platform_message_id, id);
            let [Part::Unsupported(u)] = m.parts.as_slice() else {
                panic!("{:?}", m.parts)
            };
            assert_eq!(u.platform_type, kind);
            assert_eq!(u.raw.as_ref().unwrap()["id"], id);
        }
    }

    #[test]
    fn a_username_account_is_known_by_its_business_scoped_id() {
        let m = only_message(fixture!("whatsapp/username.json"));
        assert_eq!(m.from.identifier.value, "GB.1502576394655843");
        assert_eq!(
            m.thread_id.as_deref(),
            Some("227118690421377:GB.1502576394655843")
        );
        assert_eq!(m.from.display_name.as_deref(), Some("Kai"));
    }

    #[test]
    fn a_batch_yields_every_message_and_status_in_order() {
        let events = parse(fixture!("whatsapp/batch.json"));
        let ids: Vec<String> = events
            .iter()
            .map(|e| match e {
                InboundEvent::Message(m) => m.platform_message_id.clone(),
                InboundEvent::Status(s) => format!("status:{}", s.platform_message_id),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            ids,
            [
                "wamid.BATCH-A1",
                "wamid.BATCH-B1",
                "wamid.BATCH-A2",
                "status:wamid.OUT1",
                "wamid.BATCH-C1"
            ]
        );
        let InboundEvent::Message(tomas) = &events[1] else {
            unreachable!()
        };
        assert_eq!(tomas.from.display_name.as_deref(), Some("Tom\u{e1}s"));
        assert_eq!(
            tomas.thread_id.as_deref(),
            Some("227118690421377:34600111222")
        );
        let InboundEvent::Message(other_number) = &events[4] else {
            unreachable!()
        };
        assert_eq!(
            other_number.thread_id.as_deref(),
            Some("227118690429999:447700900123"),
            "the thread names the business number the contact wrote to"
        );
    }

    #[test]
    fn statuses_report_on_our_wamids_with_failure_reasons() {
        let events = parse(fixture!("whatsapp/statuses.json"));
        let status = |id: &str, status, error: Option<&str>| {
            InboundEvent::Status(StatusUpdate {
                platform_message_id: id.into(),
                status,
                error: error.map(str::to_owned),
            })
        };
        assert_eq!(
            events,
            vec![
                status("wamid.OUT1", DeliveryStatus::Sent, None),
                status("wamid.OUT1", DeliveryStatus::Delivered, None),
                status("wamid.OUT1", DeliveryStatus::Read, None),
                status(
                    "wamid.OUT2",
                    DeliveryStatus::Failed,
                    Some(
                        "131047: Re-engagement message (Message failed to send because more than 24 hours have passed since the customer last replied to this number.)"
                    )
                ),
            ],
            "the `deleted` status is not a delivery status"
        );
    }

    #[test]
    fn other_fields_and_error_only_changes_carry_no_event() {
        assert!(parse(fixture!("whatsapp/not_messages.json")).is_empty());
        assert!(parse(r#"{"object":"whatsapp_business_account","entry":[]}"#).is_empty());
    }

    fn field_of(body: &str) -> String {
        match adapter(&[]).parse(&signed(body)) {
            Err(ParseError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid for {body}, got {other:?}"),
        }
    }

    fn one_message(message: Value) -> String {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages", "value": {"metadata": {"phone_number_id": NUMBER},
            "messages": [message]}}]}]})
        .to_string()
    }

    #[test]
    fn malformed_payloads_name_the_field_at_fault() {
        let text = |extra: Value| {
            let mut m = json!({"from": PRIYA, "id": "wamid.X", "timestamp": "1783001480",
                               "type": "text", "text": {"body": "hi"}});
            for (k, v) in extra.as_object().unwrap() {
                if v.is_null() {
                    m.as_object_mut().unwrap().remove(k);
                } else {
                    m[k] = v.clone();
                }
            }
            one_message(m)
        };
        let prefix = "entry[0].changes[0].value.messages[0]";
        let cases = [
            (r#"{"entry":[]}"#.to_owned(), "object".to_owned()),
            (r#"{"object":"page","entry":[]}"#.to_owned(), "object".to_owned()),
            (r#"{"object":"whatsapp_business_account"}"#.to_owned(), "entry".to_owned()),
            (
                r#"{"object":"whatsapp_business_account","entry":{}}"#.to_owned(),
                "entry".to_owned(),
            ),
            (
                r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[{}]}}]}]}"#.to_owned(),
                "entry[0].changes[0].value.metadata".to_owned(),
            ),
            (text(json!({"id": null})), format!("{prefix}.id")),
            (text(json!({"id": ""})), format!("{prefix}.id")),
            (text(json!({"from": null})), format!("{prefix}.from")),
            (text(json!({"from": 447700900123u64})), format!("{prefix}.from")),
            (text(json!({"type": null})), format!("{prefix}.type")),
            (text(json!({"timestamp": "yesterday"})), format!("{prefix}.timestamp")),
            (text(json!({"text": null})), format!("{prefix}.text")),
            (text(json!({"text": {"body": 5}})), format!("{prefix}.text.body")),
            (text(json!({"context": "wamid.Q"})), format!("{prefix}.context")),
            (
                text(json!({"type": "image", "image": {"mime_type": "image/png"}})),
                format!("{prefix}.image.id"),
            ),
            (
                text(json!({"type": "location", "location": {"latitude": 91, "longitude": 0}})),
                format!("{prefix}.location.latitude"),
            ),
            (
                text(json!({"type": "location", "location": {"latitude": 1}})),
                format!("{prefix}.location.longitude"),
            ),
            (text(json!({"type": "contacts", "contacts": []})), format!("{prefix}.contacts")),
            (
                text(json!({"type": "interactive", "interactive": {"type": "button_reply"}})),
                format!("{prefix}.interactive.button_reply"),
            ),
            (
                json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
                    "statuses": [{"id": "wamid.OUT1"}]}}]}]})
                .to_string(),
                "entry[0].changes[0].value.statuses[0].status".to_owned(),
            ),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(&body), field, "{body}");
        }
    }

    #[test]
    fn wrong_content_type_and_broken_json_are_refused() {
        let adapter = adapter(&[]);
        let body = fixture!("whatsapp/text_reply.json");
        let form = request(body, None, "application/x-www-form-urlencoded");
        assert!(matches!(
            adapter.parse(&form),
            Err(ParseError::UnsupportedMediaType(t)) if t == "application/x-www-form-urlencoded"
        ));
        assert!(matches!(
            adapter.parse(&signed("{\"object\":")),
            Err(ParseError::Malformed(_))
        ));
    }

    /// JSON shaped like a webhook: the real field names at any depth, with values of
    /// every type, so the parser's every branch sees wrong shapes.
    fn webhook_like() -> impl Strategy<Value = Value> {
        let keys = prop::sample::select(vec![
            "object",
            "entry",
            "changes",
            "field",
            "value",
            "metadata",
            "phone_number_id",
            "contacts",
            "messages",
            "statuses",
            "from",
            "from_user_id",
            "id",
            "type",
            "timestamp",
            "text",
            "body",
            "image",
            "audio",
            "voice",
            "document",
            "sticker",
            "location",
            "latitude",
            "longitude",
            "interactive",
            "button_reply",
            "title",
            "button",
            "context",
            "status",
            "errors",
            "profile",
            "name",
            "wa_id",
            "phones",
            "emails",
            "caption",
            "file_size",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            prop::sample::select(vec![
                "whatsapp_business_account",
                "messages",
                "text",
                "image",
                "audio",
                "location",
                "contacts",
                "interactive",
                "button_reply",
                "list_reply",
                "delivered",
                "failed",
                "1783001480",
                "",
                "wamid.X",
                "227118690421377",
            ])
            .prop_map(Value::from),
            ".*".prop_map(Value::from),
        ];
        leaf.prop_recursive(6, 96, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(keys.clone(), inner, 0..6).prop_map(|m| {
                    Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }

    /// One adapter for every generated case (building a client per case is slow).
    static SHARED: std::sync::LazyLock<WhatsAppAdapter> = std::sync::LazyLock::new(|| adapter(&[]));

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_parser(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let mut headers = HeaderMap::new();
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            let request = RawRequest::post("https://bridge.example/hooks/wa", headers, body);
            let _ = SHARED.parse(&request);
        }

        #[test]
        fn arbitrary_json_shapes_never_panic_the_parser(value in webhook_like()) {
            let _ = parse_value(&value);
            let wrapped = json!({"object": "whatsapp_business_account", "entry": [{"changes": [
                {"field": "messages", "value": {"metadata": {"phone_number_id": "1"},
                 "messages": [value.clone()], "statuses": [value.clone()], "contacts": [value]}}]}]});
            let _ = parse_value(&wrapped);
        }
    }
}
