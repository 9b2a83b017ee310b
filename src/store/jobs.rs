//! The outbox as the store keeps it: jobs and their kinds, how an attempt ends, how a job
//! is stored (kind and JSON payload) and read back, and how the deliveries API shows it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use serde_json::Value;

use super::{Detail, StoreError, hubspot};
use crate::model::{JobId, MessageId};

/// The channel id email jobs are queued under (they run whenever `[smtp]` is set).
pub const JOB_CHANNEL_SMTP: &str = "@smtp";
/// The channel id HubSpot jobs are queued under (they run whenever `[hubspot]` is set), so
/// they do not wait on the platform channel's own queue.
pub const JOB_CHANNEL_HUBSPOT: &str = "@hubspot";

/// A job leased to a worker.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub kind: JobKind,
    pub channel_id: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// When the job fell due: queued, or its retry's time came.
    pub due_at: DateTime<Utc>,
    /// The reply to send, when the store read it while leasing (saving the worker a
    /// read); `None` means the worker reads it with [`Store::outbound`].
    pub outbound: Option<Box<crate::model::outbound::Outbound>>,
}

/// What a job does.
#[derive(Clone, Debug, PartialEq)]
pub enum JobKind {
    /// Send an outbound message through its channel's adapter.
    Deliver { message_id: MessageId },
    /// Send an email through SMTP.
    Email(crate::model::outbound::Email),
    /// Publish an inbound message into HubSpot (custom-channel mode), or with `note` a
    /// follow-up saying it was edited or taken back; runs under [`JOB_CHANNEL_HUBSPOT`],
    /// one at a time per conversation.
    HubspotPublish {
        message_id: MessageId,
        note: Option<PublishNote>,
    },
    /// Report a delivery status on a rep's HubSpot message (`PATCH …/messages/{id}`);
    /// runs under [`JOB_CHANNEL_HUBSPOT`], in order per HubSpot message.
    HubspotStatus {
        /// Our reply, when there is one (an unroutable message has none).
        message_id: Option<MessageId>,
        hubspot_message_id: String,
        status: hubspot::ReportedStatus,
        error: Option<String>,
    },
}

/// A follow-up about a message HubSpot already has: HubSpot can neither edit nor delete a
/// published message, so the change is published as a note in reply to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishNote {
    /// The contact edited it; `revision` counts its edits (1 for the first).
    Edited { revision: u32 },
    /// The contact took it back.
    Retracted,
}

impl PublishNote {
    /// What tells this note apart from the message and from other notes on it (part of
    /// its `integrationIdempotencyId`).
    pub fn key(&self) -> String {
        match self {
            PublishNote::Edited { revision } => format!("edited-{revision}"),
            PublishNote::Retracted => "retracted".into(),
        }
    }
}

/// The stored payload of a `hubspot_publish` job.
pub(crate) fn hubspot_publish_payload(message: &MessageId, note: Option<&PublishNote>) -> String {
    match note {
        None => serde_json::json!({"message_id": message}),
        Some(PublishNote::Edited { revision }) => {
            serde_json::json!({"message_id": message, "note": "edited", "revision": revision})
        }
        Some(PublishNote::Retracted) => {
            serde_json::json!({"message_id": message, "note": "retracted"})
        }
    }
    .to_string()
}

/// How a job attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub enum JobOutcome {
    /// The platform took the message.
    Sent {
        platform_message_id: Option<String>,
        note: Option<String>,
    },
    /// Try again at `at`.
    Retry { at: DateTime<Utc>, error: String },
    /// No more tries: the job is dead-lettered and the message failed.
    Dead { error: String },
    /// Not attempted (its channel went away or was disabled): put it back untouched.
    Released,
    /// Not attempted, and not to be for a while (its HubSpot channel account is not
    /// authorized): due again at `at`, its attempts untouched, `reason` shown as its error.
    Park { at: DateTime<Utc>, reason: String },
}

/// A request for due jobs.
#[derive(Clone, Debug)]
pub struct LeaseRequest {
    pub owner: String,
    pub now: DateTime<Utc>,
    pub lease: Duration,
    /// Only jobs of these channels are leased; the others wait.
    pub channels: Vec<String>,
    pub limit: usize,
}

/// `pending`: waiting for (or between) attempts; `dead`: out of attempts, waiting for a
/// retry by an operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Dead,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(JobState::Pending),
            "dead" => Some(JobState::Dead),
            _ => None,
        }
    }
}

/// The `jobs` columns a [`Delivery`] is read from, in [`DeliveryRow`]'s order (both
/// stores select them).
pub(crate) const DELIVERY_COLUMNS: &str =
    "seq, id, kind, state, channel_id, ordering_key, payload, attempts,
    last_error, run_at, created_at, updated_at";

/// A job row as [`DELIVERY_COLUMNS`] selects it.
pub(crate) type DeliveryRow = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    u32,
    Option<String>,
    i64,
    i64,
    i64,
);

impl Delivery {
    /// The delivery a job row shows: its kind's label, the conversation of its ordering
    /// key and the message its payload names, if any.
    pub(crate) fn from_row(row: DeliveryRow) -> Self {
        let (
            _,
            id,
            kind,
            state,
            channel_id,
            key,
            payload,
            attempts,
            last_error,
            run_at,
            created_at,
            updated_at,
        ) = row;
        let message_id = serde_json::from_str::<Value>(&payload).ok().and_then(|v| {
            v["message_id"]
                .as_str()
                .map(|s| MessageId::from_stored(s.to_owned()))
        });
        Delivery {
            id: JobId::from_stored(id),
            kind: job_kind_label(&kind),
            state: JobState::parse(&state).unwrap_or(JobState::Pending),
            channel_id,
            conversation_id: key.and_then(conversation_of_key),
            message_id,
            attempts,
            last_error,
            run_at: crate::model::from_millis(run_at),
            created_at: crate::model::from_millis(created_at),
            updated_at: crate::model::from_millis(updated_at),
        }
    }
}

/// A job as the deliveries API shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Delivery {
    pub id: JobId,
    /// `deliver` (a reply to its platform), `email`, `hubspot_publish` (a contact's
    /// message into HubSpot) or `hubspot_status` (a reply's status reported to HubSpot).
    pub kind: &'static str,
    pub state: JobState,
    pub channel_id: String,
    pub conversation_id: Option<String>,
    pub message_id: Option<MessageId>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Per channel, what waits in the outbox: exact counts and the newest error.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChannelDeliveries {
    pub channel_id: String,
    /// Deliveries still being tried.
    pub pending: u64,
    /// Dead-lettered deliveries, waiting for a redrive.
    pub dead: u64,
    /// The newest error among its pending and dead deliveries.
    pub last_error: Option<String>,
    /// When that error was recorded.
    pub last_error_at: Option<DateTime<Utc>>,
}

/// How the outbox tables name a job's kind.
pub(crate) const JOB_DELIVER: &str = "deliver";
pub(crate) const JOB_EMAIL: &str = "email";
pub(crate) const JOB_HUBSPOT_PUBLISH: &str = "hubspot_publish";
pub(crate) const JOB_HUBSPOT_STATUS: &str = "hubspot_status";

impl JobKind {
    /// Reads a job back from its stored kind and JSON payload.
    pub(crate) fn decode(kind: &str, payload: &str) -> Result<Self, StoreError> {
        let value: Value = serde_json::from_str(payload)
            .map_err(|e| StoreError::Internal(Detail::caused_by("job payload is not JSON", e)))?;
        match kind {
            JOB_DELIVER => {
                let id = value["message_id"].as_str().unwrap_or_default();
                Ok(JobKind::Deliver {
                    message_id: MessageId::from_stored(id.to_owned()),
                })
            }
            JOB_EMAIL => serde_json::from_value(value)
                .map(JobKind::Email)
                .map_err(|e| StoreError::Internal(Detail::caused_by("email job payload", e))),
            JOB_HUBSPOT_PUBLISH => {
                let id = value["message_id"].as_str().unwrap_or_default();
                let note = match value["note"].as_str() {
                    None => None,
                    Some("edited") => Some(PublishNote::Edited {
                        revision: value["revision"]
                            .as_u64()
                            .and_then(|r| u32::try_from(r).ok())
                            .unwrap_or(1),
                    }),
                    Some("retracted") => Some(PublishNote::Retracted),
                    Some(other) => {
                        return Err(StoreError::Internal(
                            format!("unknown HubSpot note {other:?}").into(),
                        ));
                    }
                };
                Ok(JobKind::HubspotPublish {
                    message_id: MessageId::from_stored(id.to_owned()),
                    note,
                })
            }
            JOB_HUBSPOT_STATUS => {
                let text = |k: &str| value[k].as_str().map(str::to_owned);
                let status = text("status")
                    .as_deref()
                    .and_then(hubspot::ReportedStatus::parse)
                    .ok_or_else(|| {
                        StoreError::Internal("status job without a valid status".into())
                    })?;
                Ok(JobKind::HubspotStatus {
                    message_id: text("message_id").map(MessageId::from_stored),
                    hubspot_message_id: text("hubspot_message_id").unwrap_or_default(),
                    status,
                    error: text("error"),
                })
            }
            other => Err(StoreError::Internal(
                format!("unknown job kind {other:?}").into(),
            )),
        }
    }
}

/// A stored job kind as the deliveries API names it.
pub(crate) fn job_kind_label(kind: &str) -> &'static str {
    match kind {
        JOB_DELIVER => JOB_DELIVER,
        JOB_EMAIL => JOB_EMAIL,
        JOB_HUBSPOT_PUBLISH => JOB_HUBSPOT_PUBLISH,
        JOB_HUBSPOT_STATUS => JOB_HUBSPOT_STATUS,
        _ => "unknown",
    }
}

/// The conversation a job's ordering key names: delivery jobs order under the
/// conversation's id, emails under `email:{conversation}`, HubSpot publishes under
/// `hubspot:{conversation}`; HubSpot status reports order under the HubSpot message
/// (`hubspot-status:{id}`) and name no conversation.
pub(crate) fn conversation_of_key(key: String) -> Option<String> {
    if key.starts_with("hubspot-status:") {
        return None;
    }
    Some(
        key.strip_prefix("email:")
            .or_else(|| key.strip_prefix("hubspot:"))
            .map(str::to_owned)
            .unwrap_or(key),
    )
}
