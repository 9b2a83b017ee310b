//! What the bridge does with each event HubSpot posts (docs/hubspot-guide.md, "Replies
//! from HubSpot"): a rep's message becomes a reply in our conversation, sent through the
//! channel's adapter like any rep's reply; a channel-account event records the account's
//! state; anything else is only recorded. Pure: it turns a parsed event into the record
//! the store commits, and a stored reply's HubSpot files into fresh links at send time.
//!
//! HubSpot's file links in a webhook may be signed and expire, and a reply may be retried
//! for hours. So a file keeps HubSpot's file id (`Media::platform_ref` =
//! `hubspot-file:{fileId}`), and each delivery attempt asks the Files API for a fresh
//! signed URL (`GET /files/v3/files/{fileId}/signed-url`) that the platform fetches
//! (see the worker). No bytes are copied into our store.

use super::events::{
    AccountChange as Change, AccountEvent, EventKind, OutgoingMessage, WebhookEvent,
};
use crate::model::{Media, MediaPart, Part, ReplaceNul, Sender, SenderKind, TextPart, is_http_url};
use crate::store::hubspot::{AccountChange, HubspotReply, WebhookAction, WebhookRecord};

/// How a reply's part names a HubSpot file: `hubspot-file:{fileId}`.
pub const FILE_REF_PREFIX: &str = "hubspot-file:";

/// The HubSpot file id a part's media names, if it names one.
pub fn file_id(media: &Media) -> Option<&str> {
    media.platform_ref.as_deref()?.strip_prefix(FILE_REF_PREFIX)
}

/// The record the store commits for one event; a reply may only go to a conversation of
/// one of `linked_channels` (the channels with a `hubspot` link).
pub fn record(event: &WebhookEvent, linked_channels: &[String]) -> WebhookRecord {
    let action = match &event.kind {
        EventKind::OutgoingMessage(message) => {
            WebhookAction::Reply(reply(message, linked_channels))
        }
        EventKind::Account(account) => WebhookAction::Account(account_change(account)),
        EventKind::Unknown(_) => WebhookAction::Ignore,
    };
    let mut payload = event.payload.to_string();
    payload.replace_nul();
    WebhookRecord {
        key: event.key.clone(),
        kind: event.kind.type_name().to_owned(),
        payload,
        action,
    }
}

/// A rep's message as a reply: its text, then one part per file. The sender is the rep
/// as HubSpot names them (`hubspot:A-123`).
pub fn reply(event: &OutgoingMessage, linked_channels: &[String]) -> HubspotReply {
    let message = &event.message;
    let mut parts = Vec::new();
    if let Some(text) = message.text.as_deref().filter(|t| !t.trim().is_empty()) {
        parts.push(Part::Text(TextPart {
            text: text.to_owned(),
        }));
    }
    let mut skipped = Vec::new();
    for attachment in &message.attachments {
        match attachment_part(attachment) {
            Some(part) => parts.push(part),
            None => skipped.push(attachment.kind.clone().unwrap_or_else(|| "?".into())),
        }
    }
    if !skipped.is_empty() {
        tracing::warn!(
            hubspot_message_id = %message.id,
            skipped = %skipped.join(","),
            "A HubSpot message has attachments channel-bridge cannot send; sending the rest."
        );
    }
    parts.replace_nul();
    let refused = parts.is_empty().then(|| {
        "the message has nothing channel-bridge can send (no text and no file)".to_owned()
    });
    let mut conversations = event.channel_integration_thread_ids.clone();
    conversations.retain(|c| !c.trim().is_empty());
    HubspotReply {
        hubspot_message_id: message.id.clone(),
        conversations,
        hubspot_thread_id: message.conversations_thread_id.clone(),
        linked_channels: linked_channels.to_vec(),
        in_reply_to: message.in_reply_to_id.clone(),
        parts,
        sender: Sender {
            kind: SenderKind::Rep,
            id: format!("hubspot:{}", message.author().unwrap_or("unknown")),
        },
        refused,
    }
}

/// A `FILE` attachment as a media part: the kind from `fileUsageType`, else from the
/// file's name. Other attachment types (`LOCATION`, `QUICK_REPLIES`, …) have no part.
fn attachment_part(attachment: &super::events::Attachment) -> Option<Part> {
    if attachment.kind.as_deref().is_some_and(|k| k != "FILE") {
        return None;
    }
    let file_id = attachment
        .file_id
        .as_deref()
        .filter(|id| !id.trim().is_empty());
    let url = attachment.url.as_deref().filter(|u| is_http_url(u));
    if file_id.is_none() && url.is_none() {
        return None;
    }
    let mime_type = attachment.name.as_deref().and_then(mime_of);
    let media = Media {
        platform_ref: file_id.map(|id| format!("{FILE_REF_PREFIX}{id}")),
        url: url.map(str::to_owned),
        mime_type: mime_type.map(str::to_owned),
        filename: attachment.name.clone(),
        ..Media::default()
    };
    let part = MediaPart {
        media,
        caption: None,
    };
    let major = mime_type.and_then(|m| m.split('/').next()).unwrap_or("");
    Some(match (attachment.file_usage_type.as_deref(), major) {
        (Some("IMAGE"), _) | (None | Some("OTHER"), "image") => Part::Image(part),
        (Some("VOICE_RECORDING"), _) => Part::VoiceNote(part),
        (Some("AUDIO"), _) | (None | Some("OTHER"), "audio") => Part::Audio(part),
        (Some("STICKER"), _) => Part::Sticker(part),
        (None | Some("OTHER"), "video") => Part::Video(part),
        _ => Part::File(part),
    })
}

/// The MIME type of a file by its extension, for the common kinds a rep attaches.
fn mime_of(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" => "audio/ogg",
        "m4a" => "audio/mp4",
        "wav" => "audio/wav",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "zip" => "application/zip",
        _ => return None,
    })
}

/// An account event as the state it leaves: a created account is authorized unless it
/// says otherwise; an update changes what it names; a purge deletes it.
fn account_change(event: &AccountEvent) -> AccountChange {
    let (authorized, deleted) = match event.change {
        Change::Created => (Some(event.authorized.unwrap_or(true)), false),
        Change::Updated => (event.authorized, false),
        Change::Purged => (None, true),
    };
    AccountChange {
        channel_account_id: event.channel_account_id.clone(),
        authorized,
        deleted,
        name: event.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hubspot::events::parse;

    fn one(body: serde_json::Value) -> WebhookRecord {
        let events = parse(body.to_string().as_bytes()).unwrap();
        record(&events[0], &["hs".to_owned()])
    }

    fn outgoing(attachments: serde_json::Value, text: &str) -> serde_json::Value {
        serde_json::json!({
            "type": "OUTGOING_CHANNEL_MESSAGE_CREATED",
            "channelIntegrationThreadIds": ["conv_1"],
            "message": {"id": "hs-9", "conversationsThreadId": "77", "text": text,
                "senders": [{"actorId": "A-5"}], "attachments": attachments}
        })
    }

    #[test]
    fn a_reps_message_becomes_a_reply_with_its_text_files_and_author() {
        let record = one(outgoing(
            serde_json::json!([
                {"type": "FILE", "fileId": "11", "name": "photo.JPG", "url": "https://f.hubspot.net/a"},
                {"type": "FILE", "fileId": "12", "name": "memo.ogg", "fileUsageType": "VOICE_RECORDING"},
                {"type": "FILE", "fileId": "13", "name": "report.pdf"},
                {"type": "LOCATION", "latitude": 1.0, "longitude": 2.0}
            ]),
            "Here you go",
        ));
        assert_eq!(record.key, "message:hs-9");
        let WebhookAction::Reply(reply) = record.action else {
            panic!("{:?}", record.action);
        };
        assert_eq!(reply.conversations, ["conv_1"]);
        assert_eq!(reply.linked_channels, ["hs"]);
        assert_eq!(reply.hubspot_thread_id.as_deref(), Some("77"));
        assert_eq!(reply.sender.id, "hubspot:A-5");
        assert_eq!(reply.refused, None);
        assert_eq!(reply.parts.len(), 4, "{:?}", reply.parts);
        assert!(matches!(&reply.parts[0], Part::Text(t) if t.text == "Here you go"));
        let Part::Image(image) = &reply.parts[1] else {
            panic!("{:?}", reply.parts[1]);
        };
        assert_eq!(file_id(&image.media), Some("11"));
        assert_eq!(image.media.mime_type.as_deref(), Some("image/jpeg"));
        assert!(matches!(&reply.parts[2], Part::VoiceNote(_)));
        assert!(
            matches!(&reply.parts[3], Part::File(f) if f.media.filename.as_deref() == Some("report.pdf"))
        );
    }

    #[test]
    fn a_message_with_nothing_sendable_is_refused_with_a_reason() {
        let record = one(outgoing(
            serde_json::json!([{"type": "QUICK_REPLIES"}]),
            "  ",
        ));
        let WebhookAction::Reply(reply) = record.action else {
            panic!("{:?}", record.action);
        };
        assert!(reply.parts.is_empty());
        assert!(reply.refused.is_some());
    }

    #[test]
    fn account_events_leave_the_state_they_describe() {
        let change = |body: serde_json::Value| match one(body).action {
            WebhookAction::Account(a) => a,
            other => panic!("{other:?}"),
        };
        let created =
            change(serde_json::json!({"type": "CHANNEL_ACCOUNT_CREATED", "channelAccountId": "9"}));
        assert_eq!((created.authorized, created.deleted), (Some(true), false));
        let renamed = change(
            serde_json::json!({"type": "CHANNEL_ACCOUNT_UPDATED", "channelAccountId": 9, "name": "New"}),
        );
        assert_eq!((renamed.authorized, renamed.deleted), (None, false));
        assert_eq!(renamed.channel_account_id, "9");
        let off = change(
            serde_json::json!({"type": "CHANNEL_ACCOUNT_UPDATED", "channelAccountId": "9", "authorized": false}),
        );
        assert_eq!(off.authorized, Some(false));
        let purged =
            change(serde_json::json!({"type": "CHANNEL_ACCOUNT_PURGED", "channelAccountId": "9"}));
        assert!(purged.deleted);
    }

    #[test]
    fn unknown_types_are_recorded_and_ignored() {
        let record = one(serde_json::json!({"type": "SOMETHING_NEW", "eventId": "e-1"}));
        assert_eq!(record.action, WebhookAction::Ignore);
        assert_eq!(record.kind, "SOMETHING_NEW");
        assert_eq!(record.key, "event:e-1");
    }
}
