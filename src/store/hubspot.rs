//! The HubSpot side of the store (custom-channel mode, issue #18), as a sub-trait so the
//! big `Store` trait is not edited for it: which of our messages HubSpot has (and under
//! which ids), what a publish needs to read, the files a publish uploaded. Both stores
//! implement it (`sqlite/hubspot.rs`, `postgres/hubspot.rs`); `Store::hubspot()` hands it
//! out. Knows nothing of HubSpot's API.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::model::{ConversationId, Identifier, MessageId, Part, Sender};
use crate::store::StoreError;

/// Which way a message crossed between us and HubSpot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HubspotDirection {
    /// A contact's message we published into HubSpot.
    In,
    /// A rep's message HubSpot sent us to deliver.
    Out,
}

impl HubspotDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            HubspotDirection::In => "in",
            HubspotDirection::Out => "out",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "in" => Some(HubspotDirection::In),
            "out" => Some(HubspotDirection::Out),
            _ => None,
        }
    }
}

/// One of our messages as HubSpot knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct HubspotLink {
    pub message_id: MessageId,
    pub hubspot_message_id: String,
    /// HubSpot's `conversationsThreadId`.
    pub hubspot_thread_id: Option<String>,
    pub direction: HubspotDirection,
    pub published_at: DateTime<Utc>,
}

impl HubspotLink {
    /// A link as both stores select it: `message_id, hubspot_message_id,
    /// hubspot_thread_id, direction, published_at`; a direction no version wrote reads as
    /// `in`.
    pub(crate) fn from_row(row: (String, String, Option<String>, String, i64)) -> Self {
        let (message_id, hubspot_message_id, hubspot_thread_id, direction, published_at) = row;
        HubspotLink {
            message_id: MessageId::from_stored(message_id),
            hubspot_message_id,
            hubspot_thread_id,
            direction: HubspotDirection::parse(&direction).unwrap_or(HubspotDirection::In),
            published_at: crate::model::from_millis(published_at),
        }
    }
}

/// What publishing one inbound message needs, read together.
#[derive(Clone, Debug, PartialEq)]
pub struct PublishSource {
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub channel_id: String,
    pub parts: Vec<Part>,
    /// When the platform says the contact sent it, if it says.
    pub sent_at: Option<DateTime<Utc>>,
    /// When we received it.
    pub received_at: DateTime<Utc>,
    /// How the contact is reached on the channel.
    pub contact: Identifier,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    /// HubSpot's id of the message this one quotes, when that one is in HubSpot.
    pub in_reply_to: Option<String>,
}

/// HubSpot jobs of one of our channels waiting (`pending`) or given up (`dead`) in the
/// outbox.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChannelQueue {
    /// The channel of the job's message; `None` when the message is gone (purged).
    pub channel_id: Option<String>,
    pub pending: u64,
    pub dead: u64,
}

/// HubSpot's share of the outbox per channel, read straight from the database without
/// opening the store: SQLite through one read-only connection, which WAL lets read beside
/// a running daemon's writer (it never writes, never migrates, never takes the writer's
/// place); PostgreSQL through one connection in a read-only session. For
/// `channel-bridge hubspot status`, which must work beside the daemon.
pub async fn read_queues(
    storage: &crate::config::StorageConfig,
) -> Result<Vec<ChannelQueue>, StoreError> {
    match storage {
        crate::config::StorageConfig::Sqlite { path } => {
            super::sqlite::read_hubspot_queues(path).await
        }
        crate::config::StorageConfig::Postgres { url, schema, .. } => {
            super::postgres::read_hubspot_queues(url, schema.as_deref()).await
        }
    }
}

/// How much HubSpot work waits in the outbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HubspotQueue {
    pub pending: u64,
    pub dead: u64,
}

/// One event of a verified HubSpot webhook, with what to do about it (decided by
/// `crate::hubspot::replies`, stored by [`HubspotStore::record_webhook`]).
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookRecord {
    /// What deduplicates it (`message:{id}`, `event:{eventId}`, `sha256:{…}`).
    pub key: String,
    /// HubSpot's `type`.
    pub kind: String,
    /// The event as received (JSON).
    pub payload: String,
    pub action: WebhookAction,
}

/// What an event does to the store.
#[derive(Clone, Debug, PartialEq)]
pub enum WebhookAction {
    /// A rep's message: an outbound reply and its delivery job.
    Reply(HubspotReply),
    /// A channel account was created, changed or deleted.
    Account(AccountChange),
    /// Nothing beyond recording it (an unknown type).
    Ignore,
}

/// A rep's message from HubSpot, to be sent to the contact.
#[derive(Clone, Debug, PartialEq)]
pub struct HubspotReply {
    pub hubspot_message_id: String,
    /// Our conversation ids HubSpot names (`channelIntegrationThreadIds`), first tried
    /// first.
    pub conversations: Vec<String>,
    /// HubSpot's `conversationsThreadId`: the conversation of a message we published into
    /// that thread, when none of `conversations` exists.
    pub hubspot_thread_id: Option<String>,
    /// The channels linked to HubSpot: a conversation on any other channel is never
    /// replied to, whatever id HubSpot names.
    pub linked_channels: Vec<String>,
    /// HubSpot's id of the message the rep quoted.
    pub in_reply_to: Option<String>,
    pub parts: Vec<Part>,
    pub sender: Sender,
    /// Why it cannot be sent whatever the conversation (nothing sendable in it); reported
    /// to HubSpot as FAILED.
    pub refused: Option<String>,
}

impl HubspotReply {
    /// Why the reply cannot be sent when no conversation takes it: what made it
    /// unsendable, else that its thread is not ours. Reported to HubSpot as FAILED.
    pub(crate) fn unroutable_reason(&self) -> String {
        self.refused.clone().unwrap_or_else(|| {
            "channel-bridge has no conversation for this HubSpot thread".to_owned()
        })
    }

    /// The rep's reply to store in `conversation`, due now, quoting `reply_to` (the
    /// quoted HubSpot message's, when it is a message of that conversation).
    pub(crate) fn new_reply(
        &self,
        conversation: String,
        reply_to: Option<String>,
        now: i64,
    ) -> super::NewReply {
        super::NewReply {
            conversation_id: ConversationId::from_stored(conversation),
            parts: self.parts.clone(),
            reply_to: reply_to.map(MessageId::from_stored),
            sender: self.sender.clone(),
            run_at: crate::model::from_millis(now),
            ticket_change: None,
            via: None,
        }
    }

    /// The link that keeps HubSpot's id of the stored reply `message`.
    pub(crate) fn link(&self, message: &MessageId, now: i64) -> HubspotLink {
        HubspotLink {
            message_id: message.clone(),
            hubspot_message_id: self.hubspot_message_id.clone(),
            hubspot_thread_id: self.hubspot_thread_id.clone(),
            direction: HubspotDirection::Out,
            published_at: crate::model::from_millis(now),
        }
    }
}

/// A channel account's new state; `None` fields stay as they were.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountChange {
    pub channel_account_id: String,
    pub authorized: Option<bool>,
    pub deleted: bool,
    pub name: Option<String>,
}

/// What recording one event did.
#[derive(Clone, Debug, PartialEq)]
pub enum WebhookOutcome {
    /// Stored before (HubSpot retried): nothing new.
    Duplicate,
    /// A reply was queued in `conversation_id`.
    Replied {
        message_id: MessageId,
        conversation_id: ConversationId,
    },
    /// No conversation (or nothing sendable): recorded, and FAILED is reported to HubSpot.
    Unroutable { reason: String },
    /// A channel account's state was recorded.
    Account,
    /// Recorded and otherwise left alone.
    Ignored,
}

/// How `hubspot_events.outcome` names an outcome.
pub(crate) fn outcome_label(outcome: &WebhookOutcome) -> &'static str {
    match outcome {
        WebhookOutcome::Duplicate => "duplicate",
        WebhookOutcome::Replied { .. } => "reply",
        WebhookOutcome::Unroutable { .. } => "unroutable",
        WebhookOutcome::Account => "account",
        WebhookOutcome::Ignored => "ignored",
    }
}

/// A delivery status reported back to HubSpot on the message a rep wrote there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportedStatus {
    Sent,
    Read,
    Failed,
}

impl ReportedStatus {
    /// As HubSpot's `statusType` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportedStatus::Sent => "SENT",
            ReportedStatus::Read => "READ",
            ReportedStatus::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SENT" => Some(ReportedStatus::Sent),
            "READ" => Some(ReportedStatus::Read),
            "FAILED" => Some(ReportedStatus::Failed),
            _ => None,
        }
    }

    /// The status HubSpot hears of when our message moves to `status`, if any (queued and
    /// delivered have no HubSpot status; SENT is reported when the send succeeds).
    pub fn of(status: crate::model::DeliveryStatus) -> Option<Self> {
        use crate::model::DeliveryStatus as D;
        match status {
            D::Sent => Some(ReportedStatus::Sent),
            D::Read => Some(ReportedStatus::Read),
            D::Failed => Some(ReportedStatus::Failed),
            _ => None,
        }
    }
}

/// A channel account as HubSpot last described it.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountState {
    pub channel_account_id: String,
    pub authorized: bool,
    pub deleted: bool,
    pub name: Option<String>,
    /// The event type that last changed it.
    pub last_event: String,
    pub updated_at: DateTime<Utc>,
}

impl AccountState {
    /// Whether HubSpot takes messages for it: publishing to it parks otherwise.
    pub fn usable(&self) -> bool {
        self.authorized && !self.deleted
    }
}

/// The reason a parked publish job shows (`last_error`); a re-authorization makes the
/// jobs with it due at once.
pub const PARKED_PREFIX: &str = "parked: ";

/// The ordering key of status reports on one HubSpot message: SENT before READ.
pub fn status_key(hubspot_message_id: &str) -> String {
    format!("hubspot-status:{hubspot_message_id}")
}

/// The payload of a status job.
pub fn status_payload(
    message: Option<&MessageId>,
    hubspot_message_id: &str,
    status: ReportedStatus,
    error: Option<&str>,
) -> String {
    serde_json::json!({
        "message_id": message,
        "hubspot_message_id": hubspot_message_id,
        "status": status.as_str(),
        "error": error,
    })
    .to_string()
}

#[async_trait]
pub trait HubspotStore: Send + Sync {
    /// The inbound message `message` with what publishing it needs.
    async fn publish_source(&self, message: &MessageId) -> Result<PublishSource, StoreError>;

    /// HubSpot's ids for our message, once it crossed.
    async fn hubspot_link(&self, message: &MessageId) -> Result<Option<HubspotLink>, StoreError>;

    /// Our message HubSpot knows as `hubspot_message_id`.
    async fn hubspot_link_by_hubspot_id(
        &self,
        hubspot_message_id: &str,
    ) -> Result<Option<HubspotLink>, StoreError>;

    /// Records that a message crossed; recording the same message again keeps the first.
    async fn record_hubspot_link(&self, link: &HubspotLink) -> Result<(), StoreError>;

    /// Files already uploaded for `message`'s parts, as (part index, HubSpot file id).
    async fn hubspot_files(&self, message: &MessageId) -> Result<Vec<(u32, String)>, StoreError>;

    /// Records that part `part` of `message` was uploaded as `file_id`.
    async fn record_hubspot_file(
        &self,
        message: &MessageId,
        part: u32,
        file_id: &str,
    ) -> Result<(), StoreError>;

    /// Publish (and status) jobs waiting or dead in the outbox.
    async fn hubspot_queue(&self) -> Result<HubspotQueue, StoreError>;

    /// Records a verified webhook's events in one transaction, each once: a rep's message
    /// becomes an outbound reply with its delivery job (and keeps HubSpot's id), an
    /// account event updates the account. Answers one outcome per event.
    async fn record_webhook(
        &self,
        events: Vec<WebhookRecord>,
    ) -> Result<Vec<WebhookOutcome>, StoreError>;

    /// Every channel account HubSpot told us about.
    async fn hubspot_accounts(&self) -> Result<Vec<AccountState>, StoreError>;

    /// Clears the payload of webhook events received before `before` (their keys stay, so
    /// a late retry is still a duplicate); returns how many were cleared.
    async fn clear_event_payloads(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Events whose payload one write clears, so retention never holds the writer long.
pub const CLEAR_CHUNK: i64 = 2000;
