//! HubSpot's request and response bodies, as serde types. Requests carry every field the
//! published OpenAPI specs (`customChannels.json` v3, `files.json` v3) mark required;
//! responses are read leniently (only what we use is required, unknown fields ignored),
//! since HubSpot adds fields over time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `messageDirection` of a published message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageDirection {
    Incoming,
    Outgoing,
}

/// How a sender or recipient is addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryIdentifierType {
    #[serde(rename = "HS_EMAIL_ADDRESS")]
    EmailAddress,
    #[serde(rename = "HS_PHONE_NUMBER")]
    PhoneNumber,
    #[serde(rename = "HS_SHORT_CODE")]
    ShortCode,
    #[serde(rename = "CHANNEL_SPECIFIC_OPAQUE_ID")]
    ChannelSpecificOpaqueId,
}

impl DeliveryIdentifierType {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryIdentifierType::EmailAddress => "HS_EMAIL_ADDRESS",
            DeliveryIdentifierType::PhoneNumber => "HS_PHONE_NUMBER",
            DeliveryIdentifierType::ShortCode => "HS_SHORT_CODE",
            DeliveryIdentifierType::ChannelSpecificOpaqueId => "CHANNEL_SPECIFIC_OPAQUE_ID",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryIdentifier {
    #[serde(rename = "type")]
    pub kind: DeliveryIdentifierType,
    pub value: String,
}

/// A sender or recipient of a published message (`ChannelIntegrationParticipant`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    pub delivery_identifier: DeliveryIdentifier,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `fileUsageType` of a FILE attachment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FileUsageType {
    Audio,
    Image,
    Other,
    Sticker,
    VoiceRecording,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PhoneType {
    Cell,
    Home,
    Main,
    Work,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContactPhone {
    pub phone: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<PhoneType>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContactEmail {
    pub email: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContactUrl {
    pub url: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactName {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
}

/// A shared contact card. `addresses`, `emails`, `phones` and `urls` are required by the
/// spec (empty lists are valid).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContactProfile {
    pub addresses: Vec<serde_json::Value>,
    pub emails: Vec<ContactEmail>,
    pub phones: Vec<ContactPhone>,
    pub urls: Vec<ContactUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<ContactName>,
}

/// An attachment of a published message (the request-side variants we send).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Attachment {
    #[serde(rename_all = "camelCase")]
    File {
        file_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_usage_type: Option<FileUsageType>,
    },
    Location {
        latitude: f64,
        longitude: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Contact {
        contact_profile: ContactProfile,
    },
    UnsupportedContent,
}

/// The body of `POST /conversations/v3/custom-channels/{channelId}/messages`
/// (`ChannelIntegrationMessageEgg`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageEgg {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rich_text: Option<String>,
    pub message_direction: MessageDirection,
    pub channel_account_id: String,
    pub senders: Vec<Participant>,
    pub recipients: Vec<Participant>,
    /// RFC 3339.
    pub timestamp: String,
    pub attachments: Vec<Attachment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_thread_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_idempotency_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to_id: Option<String>,
}

/// A message as HubSpot answers it (`PublicConversationsMessage`), the fields we use.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedMessage {
    pub id: String,
    #[serde(default)]
    pub conversations_thread_id: Option<String>,
}

/// A temporary link to a private file (`SignedUrl` of the Files API), the field we use.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedUrl {
    pub url: String,
}

/// `statusType` of a delivery status update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatusType {
    Sent,
    Failed,
    Read,
}

/// The body of `PATCH …/messages/{messageId}`: SENT, READ, or FAILED with the reason.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStatus {
    pub status_type: StatusType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// A custom channel's capabilities (an open map in the spec; these are the keys HubSpot
/// documents).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub delivery_identifier_types: Vec<DeliveryIdentifierType>,
    pub threading_model: String,
    pub rich_text: Vec<String>,
    pub allow_inline_images: bool,
    pub allow_outgoing_messages: bool,
    pub allow_conversation_start: bool,
    pub allow_multiple_recipients: bool,
    pub outgoing_attachment_types: Vec<String>,
    pub allowed_file_attachment_mime_types: Vec<String>,
    pub max_file_attachment_count: u32,
    pub max_file_attachment_size_bytes: u64,
    pub max_total_file_attachment_size_bytes: u64,
}

/// The body that creates or updates a custom channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelDefinition {
    pub name: String,
    pub capabilities: Capabilities,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_description: Option<String>,
    /// Required by the PATCH schema (`PublicChannelIntegrationChannelPatch`), optional on
    /// create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_logo_url: Option<String>,
}

/// A custom channel as HubSpot answers it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// As HubSpot holds them (an open map), to tell whether an update is needed.
    #[serde(default)]
    pub capabilities: Option<serde_json::Value>,
    #[serde(default)]
    pub channel_description: Option<String>,
    #[serde(default)]
    pub channel_logo_url: Option<String>,
}

/// The body that creates a channel account (`PublicChannelAccountEgg`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelAccountEgg {
    pub inbox_id: String,
    pub name: String,
    pub authorized: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_identifier: Option<DeliveryIdentifier>,
}

/// A channel account as HubSpot answers it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelAccount {
    pub id: String,
    #[serde(default)]
    pub inbox_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub authorized: Option<bool>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub delivery_identifier: Option<DeliveryIdentifier>,
}

/// A page of a list (`CollectionResponse…`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Collection<T> {
    pub results: Vec<T>,
    #[serde(default)]
    pub paging: Option<Paging>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Paging {
    #[serde(default)]
    pub next: Option<NextPage>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct NextPage {
    pub after: String,
}

/// A file in HubSpot's File Manager, the fields we use.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct File {
    pub id: String,
}

/// The `options` part of a Files upload (`FileUploadOptions`, a JSON string).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileUploadOptions {
    pub access: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_validation_strategy: Option<String>,
}

/// The answer of `POST /oauth/v1/token`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    pub expires_in: u64,
}

/// HubSpot's error body: `message` is what a dead letter shows.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub context: BTreeMap<String, Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_egg_serializes_with_hubspots_field_names_and_enums() {
        let egg = MessageEgg {
            text: "hi".into(),
            rich_text: None,
            message_direction: MessageDirection::Incoming,
            channel_account_id: "2002".into(),
            senders: vec![Participant {
                delivery_identifier: DeliveryIdentifier {
                    kind: DeliveryIdentifierType::PhoneNumber,
                    value: "+15550100".into(),
                },
                name: Some("Ana".into()),
            }],
            recipients: vec![],
            timestamp: "2026-01-01T00:00:00Z".into(),
            attachments: vec![
                Attachment::File {
                    file_id: "9".into(),
                    file_usage_type: Some(FileUsageType::VoiceRecording),
                },
                Attachment::UnsupportedContent,
            ],
            integration_thread_id: Some("conv_1".into()),
            integration_idempotency_id: Some("msg_1".into()),
            in_reply_to_id: None,
        };
        let v = serde_json::to_value(&egg).unwrap();
        assert_eq!(v["messageDirection"], "INCOMING");
        assert_eq!(v["channelAccountId"], "2002");
        assert_eq!(
            v["senders"][0]["deliveryIdentifier"]["type"],
            "HS_PHONE_NUMBER"
        );
        assert_eq!(v["attachments"][0]["type"], "FILE");
        assert_eq!(v["attachments"][0]["fileUsageType"], "VOICE_RECORDING");
        assert_eq!(
            v["attachments"][1],
            serde_json::json!({"type": "UNSUPPORTED_CONTENT"})
        );
        assert_eq!(v["integrationThreadId"], "conv_1");
        assert!(v.get("inReplyToId").is_none());
        assert!(v.get("richText").is_none());
    }

    #[test]
    fn a_status_update_names_its_type_in_capitals() {
        let v = serde_json::to_value(MessageStatus {
            status_type: StatusType::Failed,
            error_message: Some("blocked".into()),
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"statusType": "FAILED", "errorMessage": "blocked"})
        );
    }
}
