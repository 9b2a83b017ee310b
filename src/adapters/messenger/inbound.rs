//! Messenger webhooks in: a Page's messaging events (messages, edits, postbacks, deliveries
//! and reads) turned into events.

use serde_json::Value;

use crate::adapters::meta::messaging;
use crate::adapters::meta::{Node, file_name, non_empty, unsupported};
use crate::adapters::{InboundEvent, ParseError};
use crate::model::{LocationPart, Media, MediaPart, Part, TextPart};

use super::PLATFORM;

/// Reads a webhook body: every event of every entry, `messaging[]` and `standby[]` (the
/// latter while another app, such as the Page inbox, holds the thread).
pub fn parse_value(value: &Value) -> Result<Vec<InboundEvent>, ParseError> {
    messaging::parse_value(&PLATFORM, value)
}

/// A Messenger contact: their page-scoped id (PSID), as the tests expect one.
#[cfg(test)]
pub(super) fn contact(psid: &str) -> crate::model::Identifier {
    messaging::contact(&PLATFORM, psid)
}

/// A message's text and attachments: media (stickers among them), shared pins and links.
pub(super) fn message_parts(message: &Node) -> Result<Vec<Part>, ParseError> {
    // Until 2026-08-30 Meta sends a sticker twice: as `image` with a sticker_id and as
    // `sticker`. Keep the `sticker` one. (Attachments that are not a list fail below.)
    let has_sticker = message
        .value
        .get("attachments")
        .and_then(Value::as_array)
        .is_some_and(|all| {
            all.iter()
                .any(|a| a.get("type").and_then(Value::as_str) == Some("sticker"))
        });
    messaging::message_parts(message, |attachment| {
        let kind = attachment.req_str("type")?;
        let payload = attachment.get_object("payload")?;
        let sticker_id = match &payload {
            Some(p) => p.opt_id("sticker_id")?,
            None => None,
        };
        let part = match kind {
            "image" if sticker_id.is_some() && has_sticker => return Ok(None),
            "image" | "video" | "audio" | "file" | "sticker" => {
                let payload =
                    payload.ok_or_else(|| attachment.invalid_field("payload", "is required"))?;
                let url = non_empty(payload.opt_str("url")?);
                let platform_ref = sticker_id.clone().or(payload.opt_id("attachment_id")?);
                if url.is_none() && platform_ref.is_none() {
                    return Err(payload.invalid_field("url", "is required"));
                }
                let filename = match kind {
                    "file" => url.as_deref().and_then(file_name),
                    _ => None,
                };
                let media = MediaPart {
                    media: Media {
                        platform_ref,
                        url,
                        filename,
                        ..Media::default()
                    },
                    caption: None,
                };
                match kind {
                    _ if sticker_id.is_some() => Part::Sticker(media),
                    "image" => Part::Image(media),
                    "video" => Part::Video(media),
                    // Voice clips recorded in Messenger arrive as plain audio.
                    "audio" => Part::Audio(media),
                    "file" => Part::File(media),
                    _ => Part::Sticker(media),
                }
            }
            // Not in current docs, but sent by Messenger for shared pins for years.
            "location" => {
                let coordinates = payload
                    .ok_or_else(|| attachment.invalid_field("payload", "is required"))?
                    .req_object("coordinates")?;
                let coordinate = |key: &str, limit: f64| -> Result<f64, ParseError> {
                    let value = coordinates
                        .opt_f64(key)?
                        .ok_or_else(|| coordinates.invalid_field(key, "is required"))?;
                    if value.abs() > limit {
                        return Err(coordinates.invalid_field(key, "is out of range"));
                    }
                    Ok(value)
                };
                Part::Location(LocationPart {
                    latitude: coordinate("lat", 90.0)?,
                    longitude: coordinate("long", 180.0)?,
                    name: non_empty(attachment.opt_str("title")?),
                    address: None,
                })
            }
            // A shared link: the link is what the contact sent.
            "fallback" => {
                let url = match &payload {
                    Some(p) => non_empty(p.opt_str("url")?),
                    None => None,
                }
                .or(non_empty(attachment.opt_str("url")?));
                let title = match &payload {
                    Some(p) => non_empty(p.opt_str("title")?),
                    None => None,
                }
                .or(non_empty(attachment.opt_str("title")?));
                match url {
                    Some(url) => Part::Text(TextPart {
                        text: match title {
                            Some(title) => format!("{title}\n{url}"),
                            None => url,
                        },
                    }),
                    None => unsupported(kind, attachment.value),
                }
            }
            // reel, ig_reel, post, ig_post, appointment_booking and anything newer.
            other => unsupported(other, attachment.value),
        };
        Ok(Some(part))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::messenger::tests::{PAGE, PSID, adapter, messages, parse, signed};
    use crate::adapters::{
        ChannelAdapter, InboundEvent, MessageEdit, ParseError, StatusUpdate, StatusWatermark,
    };
    use crate::fixtures::fixture;
    use crate::model::{DeliveryStatus, EditOrder, Identifier, LocationPart, Part, TextPart};
    use chrono::DateTime;
    use serde_json::{Value, json};

    fn url_of(part: &Part) -> Option<&str> {
        part.media()?.media.url.as_deref()
    }

    #[test]
    fn text_with_a_quote_names_sender_thread_and_quoted_message() {
        let [m] = messages(fixture!("messenger/text_reply.json"))
            .try_into()
            .unwrap();
        assert_eq!(m.platform_message_id, "m_vubkW1zWbFkR8xGxQ2");
        assert_eq!(
            m.thread_id.as_deref(),
            Some("104893211234567:7210934512867345")
        );
        assert_eq!(
            m.from.identifier,
            Identifier {
                kind: "messenger_psid".into(),
                value: PSID.into()
            }
        );
        assert_eq!(
            m.from.display_name, None,
            "Messenger webhooks carry no names"
        );
        assert_eq!(m.reply_to.as_deref(), Some("m_l-HzOUT1"));
        assert_eq!(
            m.parts,
            vec![Part::Text(TextPart {
                text: "Size M please \u{2014} \u{1f600}".into()
            })]
        );
        assert_eq!(m.sent_at.unwrap().timestamp_millis(), 1783002420000);
        assert_eq!(m.raw["sender"]["id"], PSID);
    }

    #[test]
    fn a_quick_reply_is_the_text_on_its_button() {
        let [m] = messages(fixture!("messenger/quick_reply.json"))
            .try_into()
            .unwrap();
        assert_eq!(m.parts[0].text(), Some("Track my order"));
        assert_eq!(m.raw["message"]["quick_reply"]["payload"], "TRACK_ORDER");
    }

    #[test]
    fn attachments_become_media_parts_with_their_urls() {
        let ms = messages(fixture!("messenger/attachments.json"));
        assert_eq!(ms.len(), 4);
        assert_eq!(ms[0].parts.len(), 2, "an album is several image parts");
        assert!(ms[0].parts.iter().all(|p| matches!(p, Part::Image(_))));
        assert_eq!(
            url_of(&ms[0].parts[1]),
            Some("https://scontent.xx.fbcdn.net/v/t1.15752-9/photo2.jpg?_nc_cat=1&oh=def")
        );
        assert!(matches!(ms[1].parts[0], Part::Video(_)));
        assert!(matches!(ms[2].parts[0], Part::Audio(_)));
        let Part::File(file) = &ms[3].parts[0] else {
            panic!("{:?}", ms[3].parts)
        };
        assert_eq!(file.media.filename.as_deref(), Some("invoice-2026-03.pdf"));
    }

    #[test]
    fn a_sticker_sent_twice_in_the_transition_is_one_sticker_part() {
        let ms = messages(fixture!("messenger/sticker.json"));
        for m in &ms {
            let [Part::Sticker(sticker)] = m.parts.as_slice() else {
                panic!("{}: {:?}", m.platform_message_id, m.parts)
            };
            assert_eq!(
                sticker.media.platform_ref.as_deref(),
                Some("369239263222822")
            );
            assert!(
                sticker
                    .media
                    .url
                    .as_deref()
                    .unwrap()
                    .ends_with("thumbs.png")
            );
        }
        assert_eq!(ms.len(), 2);
    }

    #[test]
    fn locations_links_and_unknown_attachments() {
        let ms = messages(fixture!("messenger/location_and_links.json"));
        assert_eq!(
            ms[0].parts,
            vec![Part::Location(LocationPart {
                latitude: 52.520008,
                longitude: 13.404954,
                name: Some("Pin's Location".into()),
                address: None,
            })]
        );
        assert_eq!(
            ms[1].parts,
            vec![
                Part::Text(TextPart {
                    text: "look at this".into()
                }),
                Part::Text(TextPart {
                    text: "Linen shirt\nhttps://shop.example/p/42".into()
                }),
            ]
        );
        assert!(
            matches!(&ms[2].parts[..], [Part::Unsupported(u)] if u.platform_type == "fallback")
        );
        let [Part::Unsupported(reel)] = &ms[3].parts[..] else {
            panic!("{:?}", ms[3].parts)
        };
        assert_eq!(reel.platform_type, "reel");
        assert_eq!(
            reel.raw.as_ref().unwrap()["payload"]["reel_video_id"],
            "1090"
        );
    }

    #[test]
    fn echoes_reactions_optins_and_referrals_carry_no_event() {
        assert!(parse(fixture!("messenger/echo_and_others.json")).is_empty());
    }

    #[test]
    fn an_edit_replaces_the_text_of_the_message() {
        assert_eq!(
            parse(fixture!("messenger/edit.json")),
            vec![InboundEvent::Edit(MessageEdit {
                platform_message_id: "m_vubkW1zWbFkR8xGxQ2".into(),
                parts: vec![Part::Text(TextPart {
                    text: "Size L please".into()
                })],
                edited_at: DateTime::from_timestamp_millis(1783002436000),
                order: Some(EditOrder(vec![1, 1783002436000])),
            })]
        );
    }

    #[test]
    fn an_edit_is_ordered_by_its_count_then_its_time_and_a_malformed_count_is_ignored() {
        let order = |body: &str| match parse(body).as_slice() {
            [InboundEvent::Edit(edit)] => edit.order.clone(),
            other => panic!("expected one edit, got {other:?}"),
        };
        let edit = fixture!("messenger/edit.json");
        assert_eq!(
            order(&edit.replace(r#""num_edit": 1"#, r#""num_edit": 3"#)),
            Some(EditOrder(vec![3, 1783002436000]))
        );
        assert_eq!(
            order(&edit.replace(r#""num_edit": 1"#, r#""num_edit": "x""#)),
            Some(EditOrder(vec![0, 1783002436000]))
        );
    }

    #[test]
    fn deliveries_report_each_mid_and_a_watermark_and_reads_a_watermark() {
        let mark = |status, ms| {
            InboundEvent::Watermark(StatusWatermark {
                contact: contact(PSID),
                status,
                up_to: DateTime::from_timestamp_millis(ms).unwrap(),
            })
        };
        let delivered = |mid: &str| {
            InboundEvent::Status(StatusUpdate {
                platform_message_id: mid.into(),
                status: DeliveryStatus::Delivered,
                error: None,
            })
        };
        assert_eq!(
            parse(fixture!("messenger/delivery_read.json")),
            vec![
                delivered("m_OUT1"),
                delivered("m_OUT2"),
                mark(DeliveryStatus::Delivered, 1783002436500),
                mark(DeliveryStatus::Delivered, 1783002437500),
                mark(DeliveryStatus::Read, 1783002438500),
            ]
        );
    }

    #[test]
    fn a_postback_with_a_mid_is_the_title_the_contact_tapped() {
        let ms = messages(fixture!("messenger/postback.json"));
        assert_eq!(
            ms.len(),
            1,
            "a postback without a mid has no key and is not kept"
        );
        assert_eq!(ms[0].platform_message_id, "m_PB1");
        assert_eq!(ms[0].parts[0].text(), Some("Talk to a person"));
    }

    #[test]
    fn a_batch_yields_every_event_of_every_entry_including_standby() {
        let events = parse(fixture!("messenger/batch.json"));
        let summary: Vec<String> = events
            .iter()
            .map(|e| match e {
                InboundEvent::Message(m) => {
                    format!("{}@{}", m.platform_message_id, m.from.identifier.value)
                }
                InboundEvent::Watermark(w) => format!("{:?}@{}", w.status, w.contact.value),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            summary,
            [
                "m_BATCH_A1@7210934512867345",
                "m_BATCH_B1@6100000000000001",
                "Read@7210934512867345",
                "m_STANDBY1@7210934512867345",
            ]
        );
    }

    fn field_of(body: &str) -> String {
        match adapter(&[]).parse(&signed(body)) {
            Err(ParseError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid for {body}, got {other:?}"),
        }
    }

    #[test]
    fn malformed_payloads_name_the_field_at_fault() {
        let one = |event: Value| {
            json!({"object": "page", "entry": [{"id": PAGE, "messaging": [event]}]}).to_string()
        };
        let base = |extra: Value| {
            let mut e = json!({"sender": {"id": PSID}, "recipient": {"id": PAGE},
                               "timestamp": 1783002420000u64});
            for (k, v) in extra.as_object().unwrap() {
                e[k] = v.clone();
            }
            one(e)
        };
        let at = "entry[0].messaging[0]";
        let cases = [
            (r#"{"entry":[]}"#.to_owned(), "object".to_owned()),
            (
                r#"{"object":"instagram","entry":[]}"#.to_owned(),
                "object".to_owned(),
            ),
            (r#"{"object":"page"}"#.to_owned(), "entry".to_owned()),
            (
                r#"{"object":"page","entry":[{"messaging":{}}]}"#.to_owned(),
                "entry[0].messaging".to_owned(),
            ),
            (
                base(json!({"message": {"text": "no mid"}})),
                format!("{at}.message.mid"),
            ),
            (
                one(json!({"recipient": {"id": PAGE}, "message": {"mid": "m_1", "text": "x"}})),
                format!("{at}.sender"),
            ),
            (
                one(json!({"sender": {}, "message": {"mid": "m_1", "text": "x"}})),
                format!("{at}.sender.id"),
            ),
            (
                base(json!({"message": {"mid": "m_1", "text": "x"}, "timestamp": "soon"})),
                format!("{at}.timestamp"),
            ),
            (
                base(json!({"message": {"mid": "m_1", "attachments": {}}})),
                format!("{at}.message.attachments"),
            ),
            (
                base(json!({"message": {"mid": "m_1", "attachments": [{"payload": {}}]}})),
                format!("{at}.message.attachments[0].type"),
            ),
            (
                base(
                    json!({"message": {"mid": "m_1", "attachments": [{"type": "image", "payload": {}}]}}),
                ),
                format!("{at}.message.attachments[0].payload.url"),
            ),
            (
                base(json!({"message": {"mid": "m_1", "attachments": [{"type": "image"}]}})),
                format!("{at}.message.attachments[0].payload"),
            ),
            (
                base(
                    json!({"message": {"mid": "m_1", "attachments": [{"type": "location",
                    "payload": {"coordinates": {"lat": 95, "long": 0}}}]}}),
                ),
                format!("{at}.message.attachments[0].payload.coordinates.lat"),
            ),
            (
                base(json!({"message": {"mid": "m_1", "reply_to": {"mid": 5}}})),
                format!("{at}.message.reply_to.mid"),
            ),
            (
                base(json!({"message_edit": {"mid": "m_1"}})),
                format!("{at}.message_edit.text"),
            ),
            (
                base(json!({"delivery": {"mids": [5]}})),
                format!("{at}.delivery.mids[0]"),
            ),
            (base(json!({"read": {}})), format!("{at}.read.watermark")),
            (
                base(json!({"read": {"watermark": "later"}})),
                format!("{at}.read.watermark"),
            ),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(&body), field, "{body}");
        }
    }
}
