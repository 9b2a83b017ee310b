//! What ingest answers for each event, and how an edit's history is kept.

use serde::Serialize;
use utoipa::ToSchema;

use serde_json::Value;

use super::{Detail, PublishNote, StoreError};
use crate::model::{ConversationId, MessageId, Part};

/// What happened to one inbound event.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum IngestOutcome {
    /// A new message, stored in `conversation_id`.
    Stored {
        id: String,
        message_id: MessageId,
        conversation_id: ConversationId,
        new_conversation: bool,
        /// The routing decision, when the message opened or reopened its conversation
        /// (for metrics; not part of the webhook's answer).
        #[serde(skip)]
        routed: Option<Routed>,
        /// Why the contact's offline owner was not emailed this message (`no_address`,
        /// `no_smtp`), for the log and metric; not part of the webhook's answer.
        #[serde(skip)]
        owner_not_emailed: Option<&'static str>,
    },
    /// Seen before: nothing was stored again.
    Duplicate { id: String, message_id: MessageId },
    /// A status report, recorded; `applied` if it moved a message's status.
    Status { id: String, applied: bool },
    /// An edit; `applied` when it changed the message, else `skipped` says why.
    Edited {
        id: String,
        applied: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<EditSkipped>,
    },
    /// A retraction; `applied` unless the message is unknown.
    Retracted { id: String, applied: bool },
    /// A watermark: how many of our messages it moved forward.
    Watermark { updated: usize },
}

/// Why an edit left its message as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EditSkipped {
    /// No inbound message has that id on the channel.
    UnknownMessage,
    /// The edit was applied before (a redelivery or a replay), or changes nothing.
    Duplicate,
    /// The platform ordered it before the edit the message already shows.
    Stale,
}

/// What an edit does to a stored message, decided by `desk::edits` from its versions.
pub(crate) enum EditPlan {
    Skip(EditSkipped),
    /// Store the edit's parts, with this as the new `history` (JSON), edited at
    /// `edited_at`; `note` is what a channel linked to HubSpot publishes about it.
    Apply {
        history: String,
        edited_at: i64,
        note: Option<PublishNote>,
    },
}

/// Plans an edit of a message that says `parts` now and said `history` before (both as
/// stored: JSON), on a channel linked to HubSpot or not (`hubspot`: HubSpot cannot edit a
/// message, so it gets a note saying which revision this is). Each revision keeps, in
/// `replaced_by`, the order of the edit that replaced it, so every version's order is known.
pub(crate) fn plan_edit(
    parts: &str,
    history: Option<&str>,
    edit: &crate::model::event::MessageEdit,
    hubspot: bool,
    now: i64,
) -> Result<EditPlan, StoreError> {
    use crate::desk::edits::{EditVerdict, Version, judge};
    use crate::model::EditOrder;
    let mut revisions: Vec<Value> = history
        .and_then(|h| serde_json::from_str(h).ok())
        .unwrap_or_default();
    let current: Value = serde_json::from_str(parts).unwrap_or_default();
    // A version whose parts cannot be read back matches no edit.
    let read_parts = |v: &Value| serde_json::from_value::<Vec<Part>>(v.clone()).unwrap_or_default();
    let order_of = |revision: &Value| -> Option<EditOrder> {
        serde_json::from_value(revision.get("replaced_by")?.clone()).ok()
    };
    let mut versions = Vec::with_capacity(revisions.len() + 1);
    let mut order = None;
    for revision in revisions
        .iter()
        .chain(std::iter::once(&serde_json::json!({"parts": current})))
    {
        versions.push(Version {
            order: order.take(),
            parts: read_parts(&revision["parts"]),
        });
        order = order_of(revision);
    }
    match judge(&versions, edit.order.as_ref(), &edit.parts) {
        EditVerdict::Duplicate => Ok(EditPlan::Skip(EditSkipped::Duplicate)),
        EditVerdict::Stale => Ok(EditPlan::Skip(EditSkipped::Stale)),
        EditVerdict::Apply => {
            revisions.push(serde_json::json!({
                "parts": current,
                "replaced_at": crate::model::from_millis(now),
                "replaced_by": edit.order,
            }));
            let history = serde_json::to_string(&revisions)
                .map_err(|e| StoreError::Internal(Detail::caused_by("cannot encode JSON", e)))?;
            let note = hubspot.then(|| PublishNote::Edited {
                revision: edit_revision(&history),
            });
            Ok(EditPlan::Apply {
                edited_at: edit.edited_at.map_or(now, |t| t.timestamp_millis()),
                history,
                note,
            })
        }
    }
}

/// Which edit of its message a history (as [`plan_edit`] writes it) records: 1 after the
/// first edit.
fn edit_revision(history: &str) -> u32 {
    serde_json::from_str::<Vec<Value>>(history)
        .map_or(1, |h| u32::try_from(h.len()).unwrap_or(u32::MAX))
}

/// How routing decided about a conversation: by which rule, and whether someone got it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Routed {
    /// `nobody`, `users_and_teams` or `contact_owner`.
    pub rule: &'static str,
    pub assigned: bool,
}

impl IngestOutcome {
    /// The answer to edit `id`: applied, or `skipped` and why.
    pub(crate) fn edited(id: &str, skipped: Option<EditSkipped>) -> Self {
        IngestOutcome::Edited {
            id: id.to_owned(),
            applied: skipped.is_none(),
            skipped,
        }
    }
}

impl Routed {
    /// What ingest reports of a routing decision.
    pub(crate) fn of(decision: &crate::desk::routing::Decision) -> Self {
        Routed {
            rule: decision.rule,
            assigned: decision.assignee.is_some(),
        }
    }
}
