//! The HubSpot side of the store (custom-channel mode, issue #18), as a sub-trait so the
//! big `Store` trait is not edited for it: which of our messages HubSpot has (and under
//! which ids), what a publish needs to read, the files a publish uploaded. Both stores
//! implement it (`sqlite/hubspot.rs`, `postgres/hubspot.rs`); `Store::hubspot()` hands it
//! out. Knows nothing of HubSpot's API.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::model::{ConversationId, Identifier, MessageId, Part};
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
}
