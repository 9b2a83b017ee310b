//! Instagram webhooks in: an account's messaging events (messages, story replies, edits,
//! deletions, postbacks and reads) turned into events.

use serde_json::Value;

use crate::adapters::meta::messaging;
use crate::adapters::meta::{Node, file_name, non_empty, unsupported};
use crate::adapters::{InboundEvent, ParseError};
use crate::model::{Media, MediaPart, Part, TextPart};

use super::PLATFORM;

/// Reads a webhook body: every event of every entry, `messaging[]` and `standby[]` (the
/// latter while another app holds the thread). `changes[]` (comments, mentions in posts)
/// are not direct messages and are left alone.
pub fn parse_value(value: &Value) -> Result<Vec<InboundEvent>, ParseError> {
    messaging::parse_value(&PLATFORM, value)
}

/// An Instagram contact: their Instagram-scoped id (IGSID), as the tests expect one.
#[cfg(test)]
pub(super) fn contact(igsid: &str) -> crate::model::Identifier {
    messaging::contact(&PLATFORM, igsid)
}

/// A message's text and attachments: media, shared posts and links, and what Instagram
/// alone has (story mentions, reels) kept whole.
pub(super) fn message_parts(message: &Node) -> Result<Vec<Part>, ParseError> {
    messaging::message_parts(message, |attachment| {
        let kind = attachment.req_str("type")?;
        let payload = attachment.get_object("payload")?;
        let part = match kind {
            "image" | "video" | "audio" | "file" => {
                let payload =
                    payload.ok_or_else(|| attachment.invalid_field("payload", "is required"))?;
                let url = non_empty(payload.opt_str("url")?)
                    .ok_or_else(|| payload.invalid_field("url", "is required"))?;
                let filename = match kind {
                    "file" => file_name(&url),
                    _ => None,
                };
                let media = MediaPart {
                    media: Media {
                        url: Some(url),
                        filename,
                        ..Media::default()
                    },
                    caption: None,
                };
                match kind {
                    "image" => Part::Image(media),
                    "video" => Part::Video(media),
                    // Voice clips recorded in Instagram arrive as plain audio.
                    "audio" => Part::Audio(media),
                    _ => Part::File(media),
                }
            }
            // A shared post or link: the link is what the contact sent.
            "share" => match &payload {
                Some(p) => match non_empty(p.opt_str("url")?) {
                    Some(url) => Part::Text(TextPart { text: url }),
                    None => unsupported(kind, attachment.value),
                },
                None => unsupported(kind, attachment.value),
            },
            // story_mention, reel, ig_reel, ig_post, like_heart and anything newer: kept
            // whole (with its CDN link) for the rep, not fetched.
            other => unsupported(other, attachment.value),
        };
        Ok(Some(part))
    })
}

#[cfg(test)]
mod tests {

    use crate::adapters::instagram::tests::{ACCOUNT, IGSID, adapter, messages, parse, signed};
    use crate::adapters::{ChannelAdapter, InboundEvent, MessageEdit, ParseError, StatusUpdate};
    use crate::fixtures::fixture;
    use crate::model::{DeliveryStatus, EditOrder, Identifier, Part, TextPart};
    use chrono::DateTime;
    use serde_json::{Value, json};

    const FIRST_MID: &str = "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1";

    fn url_of(part: &Part) -> Option<&str> {
        match part {
            Part::Image(m) | Part::Video(m) | Part::Audio(m) | Part::File(m) => {
                m.media.url.as_deref()
            }
            _ => None,
        }
    }

    #[test]
    fn text_with_a_quote_names_sender_thread_and_quoted_message() {
        let [m] = messages(fixture!("instagram/text_reply.json"))
            .try_into()
            .unwrap();
        assert_eq!(m.platform_message_id, FIRST_MID);
        assert_eq!(
            m.thread_id.as_deref(),
            Some("17841405822304914:1254459154682919")
        );
        assert_eq!(
            m.from.identifier,
            Identifier {
                kind: "instagram_igsid".into(),
                value: IGSID.into()
            }
        );
        assert_eq!(m.reply_to.as_deref(), Some("aWdfOUT1"));
        assert_eq!(
            m.parts,
            vec![Part::Text(TextPart {
                text: "Is the linen shirt back in stock? \u{2014} \u{1f600}".into()
            })]
        );
        assert_eq!(m.sent_at.unwrap().timestamp_millis(), 1783002420000);
    }

    #[test]
    fn a_quick_reply_is_the_text_on_its_button() {
        let [m] = messages(fixture!("instagram/quick_reply.json"))
            .try_into()
            .unwrap();
        assert_eq!(m.parts[0].text(), Some("Track my order"));
        assert_eq!(m.raw["message"]["quick_reply"]["payload"], "TRACK_ORDER");
    }

    #[test]
    fn attachments_become_media_parts_with_their_urls() {
        let ms = messages(fixture!("instagram/attachments.json"));
        assert_eq!(ms.len(), 4);
        assert_eq!(ms[0].parts.len(), 2, "several images are several parts");
        assert!(ms[0].parts.iter().all(|p| matches!(p, Part::Image(_))));
        assert_eq!(
            url_of(&ms[0].parts[1]),
            Some("https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1802&signature=def")
        );
        assert!(matches!(ms[1].parts[0], Part::Video(_)));
        assert!(matches!(ms[2].parts[0], Part::Audio(_)));
        let Part::File(file) = &ms[3].parts[0] else {
            panic!("{:?}", ms[3].parts)
        };
        assert_eq!(file.media.filename.as_deref(), Some("receipt-2026-11.pdf"));
    }

    #[test]
    fn shares_are_links_and_stories_and_reels_are_kept_whole() {
        let ms = messages(fixture!("instagram/shares_and_stories.json"));
        assert_eq!(ms.len(), 6);
        assert_eq!(
            ms[0].parts,
            vec![Part::Text(TextPart {
                text: "https://www.instagram.com/p/C0aBcDeFgHi/".into()
            })]
        );
        let kind = |p: &Part| match p {
            Part::Unsupported(u) => u.platform_type.clone(),
            other => format!("{other:?}"),
        };
        assert_eq!(kind(&ms[1].parts[0]), "story_mention");
        assert_eq!(ms[2].parts[0].text(), Some("Love this colour!"));
        assert_eq!(kind(&ms[2].parts[1]), "story_reply");
        assert_eq!(ms[2].reply_to, None, "a story is not one of our messages");
        let Part::Unsupported(story) = &ms[2].parts[1] else {
            unreachable!()
        };
        assert_eq!(story.raw.as_ref().unwrap()["id"], "18023456789012345");
        assert_eq!(kind(&ms[3].parts[0]), "ig_reel");
        assert_eq!(kind(&ms[4].parts[0]), "reel");
        let Part::Unsupported(reel) = &ms[3].parts[0] else {
            unreachable!()
        };
        assert_eq!(
            reel.raw.as_ref().unwrap()["payload"]["reel_video_id"],
            "18345678901234567"
        );
        assert_eq!(kind(&ms[5].parts[0]), "message", "is_unsupported is kept");
    }

    #[test]
    fn a_story_reply_without_text_is_the_story_alone() {
        let body = fixture!("instagram/shares_and_stories.json")
            .replace(r#""text": "Love this colour!","#, "");
        let ms = messages(&body);
        assert!(
            matches!(&ms[2].parts[..], [Part::Unsupported(u)] if u.platform_type == "story_reply"),
            "{:?}",
            ms[2].parts
        );
    }

    #[test]
    fn echoes_reactions_referrals_and_postbacks_without_mid_carry_no_event() {
        assert!(parse(fixture!("instagram/echo_and_reaction.json")).is_empty());
    }

    #[test]
    fn an_edit_replaces_the_text_and_a_deletion_retracts() {
        assert_eq!(
            parse(fixture!("instagram/edit.json")),
            vec![InboundEvent::Edit(MessageEdit {
                platform_message_id: FIRST_MID.into(),
                parts: vec![Part::Text(TextPart {
                    text: "Is the linen shirt back in stock in size L?".into()
                })],
                edited_at: DateTime::from_timestamp_millis(1783002436000),
                order: Some(EditOrder(vec![1, 1783002436000])),
            })]
        );
        assert_eq!(
            parse(fixture!("instagram/deleted.json")),
            vec![InboundEvent::Retract {
                platform_message_id: FIRST_MID.into()
            }]
        );
    }

    #[test]
    fn a_read_receipt_marks_the_named_message_read() {
        assert_eq!(
            parse(fixture!("instagram/read.json")),
            vec![InboundEvent::Status(StatusUpdate {
                platform_message_id: "aWdfOUT1".into(),
                status: DeliveryStatus::Read,
                error: None,
            })]
        );
    }

    #[test]
    fn a_postback_with_a_mid_is_the_title_the_contact_tapped() {
        let [m] = messages(fixture!("instagram/postback.json"))
            .try_into()
            .unwrap();
        assert_eq!(m.platform_message_id, "aWdfPB1");
        assert_eq!(m.parts[0].text(), Some("Talk to a person"));
    }

    fn field_of(body: &str) -> String {
        match adapter(&[]).parse(&signed(body)) {
            Err(ParseError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid for {body}, got {other:?}"),
        }
    }

    #[test]
    fn malformed_payloads_name_the_field_at_fault() {
        let base = |extra: Value| {
            let mut e = json!({"sender": {"id": IGSID}, "recipient": {"id": ACCOUNT},
                               "timestamp": 1783002420000u64});
            for (k, v) in extra.as_object().unwrap() {
                e[k] = v.clone();
            }
            json!({"object": "instagram", "entry": [{"id": ACCOUNT, "messaging": [e]}]}).to_string()
        };
        let at = "entry[0].messaging[0]";
        let cases = [
            (r#"{"entry":[]}"#.to_owned(), "object".to_owned()),
            (
                r#"{"object":"page","entry":[]}"#.to_owned(),
                "object".to_owned(),
            ),
            (r#"{"object":"instagram"}"#.to_owned(), "entry".to_owned()),
            (
                base(json!({"message": {"text": "no mid"}})),
                format!("{at}.message.mid"),
            ),
            (
                base(json!({"sender": {}, "message": {"mid": "m_1", "text": "x"}})),
                format!("{at}.sender.id"),
            ),
            (
                base(
                    json!({"message": {"mid": "m_1", "attachments": [{"type": "image", "payload": {}}]}}),
                ),
                format!("{at}.message.attachments[0].payload.url"),
            ),
            (
                base(json!({"message": {"mid": "m_1", "attachments": [{"type": "video"}]}})),
                format!("{at}.message.attachments[0].payload"),
            ),
            (
                base(json!({"message": {"mid": "m_1", "reply_to": {"story": {}}}})),
                format!("{at}.message.reply_to.story.url"),
            ),
            (
                base(json!({"message_edit": {"mid": "m_1"}})),
                format!("{at}.message_edit.text"),
            ),
            (base(json!({"read": {}})), format!("{at}.read.mid")),
            (base(json!({"read": {"mid": 5}})), format!("{at}.read.mid")),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(&body), field, "{body}");
        }
    }
}
