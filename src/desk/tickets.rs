//! The ticket lifecycle (docs/ARCHITECTURE.md §11): which statuses a ticket may take, and what a
//! status change does to its conversations.

use serde_json::{Map, Value};

use crate::config::{PipelineConfig, StatusConfig};

/// How urgent a ticket is: HubSpot's four levels, so a ticket's priority maps onto
/// `hs_ticket_priority` as it is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[schema(as = TicketPriority)]
pub enum Priority {
    Low,
    Medium,
    High,
    Urgent,
}

impl Priority {
    /// Every level, least urgent first.
    pub const ALL: [Priority; 4] = [Self::Low, Self::Medium, Self::High, Self::Urgent];

    /// The level as the API and the store write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }

    /// The level named `s` exactly (lowercase), if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Why a ticket may not take a status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatusError {
    #[error("status: pipeline {pipeline:?} has no status {status:?}")]
    Unknown { pipeline: String, status: String },
    #[error("properties: status {status:?} requires {}", missing.join(", "))]
    MissingProperties {
        status: String,
        missing: Vec<String>,
    },
}

/// Checks that a ticket in `pipeline` may take `status` given `properties`: the status
/// exists, and every property it requires is set (not null, not blank). For a move into a
/// status, pass the properties sent with the move; to keep a status, pass all of them.
pub fn check_status<'p>(
    pipeline_id: &str,
    pipeline: &'p PipelineConfig,
    status: &str,
    properties: &Map<String, Value>,
) -> Result<&'p StatusConfig, StatusError> {
    let target = pipeline
        .statuses
        .iter()
        .find(|s| s.id == status)
        .ok_or_else(|| StatusError::Unknown {
            pipeline: pipeline_id.to_owned(),
            status: status.to_owned(),
        })?;
    let missing: Vec<String> = target
        .requires
        .iter()
        .filter(|key| match properties.get(*key) {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            Some(_) => false,
        })
        .cloned()
        .collect();
    if missing.is_empty() {
        Ok(target)
    } else {
        Err(StatusError::MissingProperties {
            status: status.to_owned(),
            missing,
        })
    }
}

/// Merges a properties patch: `null` removes a key, anything else sets it.
pub fn merge_properties(current: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        if value.is_null() {
            current.remove(key);
        } else {
            current.insert(key.clone(), value.clone());
        }
    }
}

/// What a ticket's status change does to its conversations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConversationEffect<C> {
    /// The ticket closed: every conversation closes.
    CloseAll,
    /// The ticket reopened and has exactly one conversation: it reopens.
    Reopen(C),
    /// Nothing changes (with several conversations, a reopened ticket reopens none).
    Nothing,
}

pub fn effect_of_status_change<C: Clone>(
    was_closed: bool,
    now_closed: bool,
    conversations: &[C],
) -> ConversationEffect<C> {
    match (was_closed, now_closed, conversations) {
        (false, true, _) => ConversationEffect::CloseAll,
        (true, false, [only]) => ConversationEffect::Reopen(only.clone()),
        _ => ConversationEffect::Nothing,
    }
}

/// The audit trail's record of a move to the trash: the conversations that went with
/// the ticket, and the replies still queued for them, which trashing does not cancel.
pub fn trash_record(conversations: &[crate::model::ConversationId], queued_replies: u64) -> Value {
    serde_json::json!({
        "conversations": conversations.len(),
        "conversation_ids": conversations,
        "queued_replies": queued_replies,
        "queued_replies_cancelled": false,
    })
}

/// How the audit trail records a field's change: `{"from": …, "to": …}`, one format for
/// every entity and both stores.
pub fn from_to(from: impl Into<Value>, to: impl Into<Value>) -> Value {
    serde_json::json!({"from": from.into(), "to": to.into()})
}

/// One audit entry a change writes about its ticket: the action and its `changes` JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    pub action: &'static str,
    pub changes: Value,
}

/// What a rep or token asked to change on a ticket; `None` fields stay as they are.
#[derive(Clone, Copy, Debug, Default)]
pub struct Change<'a> {
    pub status: Option<&'a str>,
    /// `Some(None)` unassigns.
    pub owner_id: Option<Option<&'a str>>,
    /// `Some(None)` clears it.
    pub priority: Option<Option<Priority>>,
    /// Merged into the properties; a `null` value removes a key.
    pub properties: Option<&'a Map<String, Value>>,
}

/// Why a ticket change is refused (nothing is stored).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChangeRefused {
    #[error("the ticket's pipeline {0:?} is no longer configured")]
    PipelineGone(String),
    #[error(transparent)]
    Status(#[from] StatusError),
}

/// A ticket change as the store applies it: the row's new values, the event each of its
/// conversations gets (when the status moved), the audit entries, and what happens to
/// its conversations.
#[derive(Clone, Debug, PartialEq)]
pub struct TicketPlan {
    pub status: String,
    pub owner_id: Option<String>,
    pub priority: Option<String>,
    pub properties: Map<String, Value>,
    /// Whether the ticket is closed after the change (`closed_at` kept or set, else
    /// cleared).
    pub closed: bool,
    /// The `ticket.status_changed` payload, when the status moved.
    pub status_event: Option<Value>,
    /// In the order the store writes them: status, owner, priority, properties.
    pub audit: Vec<AuditRecord>,
    pub conversations: ConversationEffect<crate::model::ConversationId>,
}

/// Plans a change to `current` (a live ticket with its conversations): the status must
/// exist in the ticket's pipeline and have what it requires, closing closes every
/// conversation, reopening reopens a lone one.
pub fn plan_change(
    current: &crate::model::Ticket,
    pipelines: &std::collections::BTreeMap<String, PipelineConfig>,
    change: Change<'_>,
) -> Result<TicketPlan, ChangeRefused> {
    let mut properties = current.properties.clone();
    if let Some(patch) = change.properties {
        merge_properties(&mut properties, patch);
    }
    let status = change.status.unwrap_or(&current.status).to_owned();
    let pipeline = pipelines
        .get(&current.pipeline)
        .ok_or_else(|| ChangeRefused::PipelineGone(current.pipeline.clone()))?;
    // A move into a conditional status must bring its properties with it (each closing
    // records its own resolution, not a stale one from an earlier closing). Any other
    // change must not leave the current status without what it requires.
    let moving = status != current.status;
    let given = change.properties.cloned().unwrap_or_default();
    let target = check_status(
        &current.pipeline,
        pipeline,
        &status,
        if moving { &given } else { &properties },
    )?;
    let closed = target.closed;
    let owner_id = match change.owner_id {
        Some(owner) => owner.map(str::to_owned),
        None => current.owner_id.clone(),
    };
    let priority = match change.priority {
        Some(priority) => priority.map(|p| p.as_str().to_owned()),
        None => current.priority.clone(),
    };
    let mut audit = Vec::new();
    let mut status_event = None;
    if moving {
        status_event = Some(serde_json::json!({
            "ticket_id": current.id, "status": status, "previous_status": current.status
        }));
        audit.push(AuditRecord {
            action: "status_changed",
            changes: serde_json::json!({"status": from_to(current.status.clone(), status.clone())}),
        });
    }
    if owner_id != current.owner_id {
        audit.push(AuditRecord {
            action: "owner_changed",
            changes: serde_json::json!({"owner_id": from_to(current.owner_id.clone(), owner_id.clone())}),
        });
    }
    if priority != current.priority {
        audit.push(AuditRecord {
            action: "priority_changed",
            changes: serde_json::json!({"priority": from_to(current.priority.clone(), priority.clone())}),
        });
    }
    if properties != current.properties {
        audit.push(AuditRecord {
            action: "properties_changed",
            changes: serde_json::json!({"properties": from_to(
                Value::Object(current.properties.clone()),
                Value::Object(properties.clone())
            )}),
        });
    }
    let conversations = effect_of_status_change(
        current.closed_at.is_some(),
        closed,
        &current.conversation_ids,
    );
    Ok(TicketPlan {
        status,
        owner_id,
        priority,
        properties,
        closed,
        status_event,
        audit,
        conversations,
    })
}

/// A conversation's status change as the store records it: the
/// `conversation.status_changed` payload and the audit entry, for a conversation that
/// really moved to `to`.
pub fn conversation_status_record(to: crate::model::ConversationStatus) -> (Value, AuditRecord) {
    use crate::model::ConversationStatus::{Closed, Open};
    let (from, to) = match to {
        Closed => ("open", "closed"),
        Open => ("closed", "open"),
    };
    (
        serde_json::json!({"status": to}),
        AuditRecord {
            action: "status_changed",
            changes: serde_json::json!({"status": from_to(from, to)}),
        },
    )
}

/// A conversation's new owner as the store records it.
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    pub owner_id: Option<String>,
    /// The `conversation.assigned` payload.
    pub event: Value,
    /// The conversation's audit entry.
    pub audit: AuditRecord,
    /// The ticket's audit entry when its owner follows (it had another one).
    pub ticket: Option<AuditRecord>,
}

/// Plans assigning a conversation owned by `current` (on a ticket owned by
/// `ticket_owner`) to `requested` (`None`: unassign) by `by`: nothing when it already has
/// that owner; else the ticket follows, since a conversation's owner is its ticket's
/// owner too (never the other way round).
pub fn plan_assignment(
    current: Option<&str>,
    ticket_owner: Option<&str>,
    requested: Option<&str>,
    by: &str,
) -> Option<Assignment> {
    if requested == current {
        return None;
    }
    let owner_change = |from: Option<&str>| AuditRecord {
        action: "owner_changed",
        changes: serde_json::json!({"owner_id": from_to(from, requested)}),
    };
    Some(Assignment {
        owner_id: requested.map(str::to_owned),
        event: serde_json::json!({"owner_id": requested, "previous_owner_id": current, "by": by}),
        audit: owner_change(current),
        ticket: (ticket_owner != requested).then(|| owner_change(ticket_owner)),
    })
}

/// What restoring a ticket did to one of its conversations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restored {
    /// Back as it was when trashed, open or closed.
    AsItWas,
    /// It was open, but its contact has opened another conversation on that channel
    /// since (one open conversation per thread): it comes back closed.
    Closed,
}

impl Restored {
    /// The outcome for a conversation that was `open` when trashed, when another open
    /// conversation now holds its thread (`thread_taken`).
    pub fn of(open: bool, thread_taken: bool) -> Self {
        if open && thread_taken {
            Restored::Closed
        } else {
            Restored::AsItWas
        }
    }

    /// The audit trail's record of it: the changes, and why when it is not as it was.
    pub fn record(self, status_when_trashed: &str) -> (Value, Option<String>) {
        match self {
            Restored::AsItWas => (serde_json::json!({"status": status_when_trashed}), None),
            Restored::Closed => (
                serde_json::json!({"status": {"from": "open", "to": "closed"}}),
                Some(
                    "the contact has opened another conversation on this channel since: \
                     this one comes back closed"
                        .to_owned(),
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn priorities_are_hubspots_four_levels_in_lowercase() {
        use super::Priority;
        let names: Vec<&str> = Priority::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(names, ["low", "medium", "high", "urgent"]);
        assert_eq!(Priority::parse("high"), Some(Priority::High));
        assert_eq!(Priority::parse("HIGH"), None);
        assert_eq!(Priority::parse("critical"), None);
        assert_eq!(
            serde_json::from_value::<Priority>(serde_json::json!("urgent")).ok(),
            Some(Priority::Urgent)
        );
    }

    use super::*;
    use serde_json::json;

    fn pipeline() -> PipelineConfig {
        let status = |id: &str, closed: bool, requires: &[&str]| StatusConfig {
            id: id.into(),
            closed,
            requires: requires.iter().map(|s| s.to_string()).collect(),
        };
        PipelineConfig {
            statuses: vec![
                status("new", false, &[]),
                status("closed", true, &["resolution"]),
                status("escalated", false, &["reason", "tier"]),
            ],
        }
    }

    fn props(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    type Case = (&'static str, Value, Result<&'static str, Vec<&'static str>>);

    #[test]
    fn conditional_statuses_require_their_properties() {
        let p = pipeline();
        let cases: Vec<Case> = vec![
            ("new", json!({}), Ok("new")),
            ("closed", json!({}), Err(vec!["resolution"])),
            (
                "closed",
                json!({"resolution": null}),
                Err(vec!["resolution"]),
            ),
            (
                "closed",
                json!({"resolution": "  "}),
                Err(vec!["resolution"]),
            ),
            ("closed", json!({"resolution": "refunded"}), Ok("closed")),
            ("escalated", json!({"tier": 2}), Err(vec!["reason"])),
            ("escalated", json!({}), Err(vec!["reason", "tier"])),
        ];
        for (status, properties, expected) in cases {
            let got = check_status("support", &p, status, &props(properties.clone()));
            match expected {
                Ok(id) => assert_eq!(got.unwrap().id, id),
                Err(missing) => assert_eq!(
                    got.unwrap_err(),
                    StatusError::MissingProperties {
                        status: status.into(),
                        missing: missing.iter().map(|s| s.to_string()).collect()
                    },
                    "{status} {properties}"
                ),
            }
        }
        assert!(matches!(
            check_status("support", &p, "lost", &Map::new()),
            Err(StatusError::Unknown { .. })
        ));
    }

    #[test]
    fn closing_closes_all_and_reopening_reopens_only_a_lone_conversation() {
        use ConversationEffect::*;
        assert_eq!(effect_of_status_change(false, true, &[1, 2]), CloseAll);
        assert_eq!(effect_of_status_change(true, false, &[1]), Reopen(1));
        assert_eq!(effect_of_status_change(true, false, &[1, 2]), Nothing);
        assert_eq!(effect_of_status_change(false, false, &[1]), Nothing);
        assert_eq!(effect_of_status_change(true, true, &[1]), Nothing);
    }

    #[test]
    fn a_null_in_a_patch_removes_the_property() {
        let mut current = props(json!({"a": 1, "b": 2}));
        merge_properties(&mut current, &props(json!({"a": null, "c": 3})));
        assert_eq!(Value::Object(current), json!({"b": 2, "c": 3}));
    }

    fn ticket(status: &str, closed: bool, conversations: &[&str]) -> crate::model::Ticket {
        crate::model::Ticket {
            id: crate::model::TicketId::from_stored("tkt_1".into()),
            pipeline: "support".into(),
            status: status.into(),
            priority: None,
            owner_id: Some("alice".into()),
            properties: props(json!({"order": "42"})),
            conversation_ids: conversations
                .iter()
                .map(|c| crate::model::ConversationId::from_stored((*c).into()))
                .collect(),
            created_at: crate::model::from_millis(0),
            closed_at: closed.then(|| crate::model::from_millis(1)),
            trashed_at: None,
        }
    }

    fn pipelines() -> std::collections::BTreeMap<String, PipelineConfig> {
        [("support".to_owned(), pipeline())].into()
    }

    #[test]
    fn closing_a_ticket_plans_its_status_event_audit_and_closing_every_conversation() {
        let patch = props(json!({"resolution": "refunded"}));
        let plan = plan_change(
            &ticket("new", false, &["c1", "c2"]),
            &pipelines(),
            Change {
                status: Some("closed"),
                properties: Some(&patch),
                ..Change::default()
            },
        )
        .unwrap();
        assert!(plan.closed);
        assert_eq!(plan.conversations, ConversationEffect::CloseAll);
        assert_eq!(
            plan.status_event,
            Some(json!({"ticket_id": "tkt_1", "status": "closed", "previous_status": "new"}))
        );
        let actions: Vec<&str> = plan.audit.iter().map(|a| a.action).collect();
        assert_eq!(actions, ["status_changed", "properties_changed"]);
        assert_eq!(
            plan.audit[0].changes,
            json!({"status": {"from": "new", "to": "closed"}})
        );
        assert_eq!(
            plan.audit[1].changes,
            json!({"properties": {"from": {"order": "42"}, "to": {"order": "42", "resolution": "refunded"}}})
        );
    }

    #[test]
    fn a_move_into_a_conditional_status_needs_the_properties_sent_with_it() {
        let mut current = ticket("new", false, &["c1"]);
        current.properties = props(json!({"resolution": "stale"}));
        assert_eq!(
            plan_change(
                &current,
                &pipelines(),
                Change {
                    status: Some("closed"),
                    ..Change::default()
                }
            ),
            Err(ChangeRefused::Status(StatusError::MissingProperties {
                status: "closed".into(),
                missing: vec!["resolution".into()],
            }))
        );
    }

    #[test]
    fn a_ticket_whose_pipeline_is_gone_takes_no_change() {
        let mut current = ticket("new", false, &["c1"]);
        current.pipeline = "sales".into();
        let refused = plan_change(&current, &pipelines(), Change::default()).unwrap_err();
        assert_eq!(refused, ChangeRefused::PipelineGone("sales".into()));
        assert_eq!(
            refused.to_string(),
            "the ticket's pipeline \"sales\" is no longer configured"
        );
    }

    #[test]
    fn reopening_plans_the_lone_conversations_reopening_and_owner_and_priority_are_audited() {
        let plan = plan_change(
            &ticket("closed", true, &["c1"]),
            &pipelines(),
            Change {
                status: Some("new"),
                owner_id: Some(None),
                priority: Some(Some(Priority::High)),
                properties: None,
            },
        )
        .unwrap();
        assert!(!plan.closed);
        assert_eq!(
            plan.conversations,
            ConversationEffect::Reopen(crate::model::ConversationId::from_stored("c1".into()))
        );
        assert_eq!(plan.owner_id, None);
        assert_eq!(plan.priority.as_deref(), Some("high"));
        let actions: Vec<&str> = plan.audit.iter().map(|a| a.action).collect();
        assert_eq!(
            actions,
            ["status_changed", "owner_changed", "priority_changed"]
        );
        assert_eq!(
            plan.audit[1].changes,
            json!({"owner_id": {"from": "alice", "to": null}})
        );
    }

    #[test]
    fn a_change_that_changes_nothing_plans_no_event_and_no_audit() {
        let plan = plan_change(
            &ticket("new", false, &["c1"]),
            &pipelines(),
            Change {
                status: Some("new"),
                owner_id: Some(Some("alice")),
                ..Change::default()
            },
        )
        .unwrap();
        assert_eq!(plan.status_event, None);
        assert!(plan.audit.is_empty());
        assert_eq!(plan.conversations, ConversationEffect::Nothing);
    }

    #[test]
    fn a_conversations_status_change_is_recorded_as_from_and_to() {
        let (event, audit) = conversation_status_record(crate::model::ConversationStatus::Open);
        assert_eq!(event, json!({"status": "open"}));
        assert_eq!(audit.action, "status_changed");
        assert_eq!(
            audit.changes,
            json!({"status": {"from": "closed", "to": "open"}})
        );
    }

    #[test]
    fn assigning_a_conversation_moves_its_tickets_owner_unless_it_already_has_that_one() {
        let plan = plan_assignment(None, None, Some("alice"), "api").unwrap();
        assert_eq!(plan.owner_id.as_deref(), Some("alice"));
        assert_eq!(
            plan.event,
            json!({"owner_id": "alice", "previous_owner_id": null, "by": "api"})
        );
        assert_eq!(plan.audit.action, "owner_changed");
        assert_eq!(
            plan.audit.changes,
            json!({"owner_id": {"from": null, "to": "alice"}})
        );
        assert_eq!(plan.ticket, Some(plan.audit.clone()));
        let same_ticket_owner = plan_assignment(None, Some("alice"), Some("alice"), "api").unwrap();
        assert_eq!(same_ticket_owner.ticket, None);
        let unassigned = plan_assignment(Some("alice"), Some("alice"), None, "api").unwrap();
        assert_eq!(
            unassigned.ticket.map(|t| t.changes),
            Some(json!({"owner_id": {"from": "alice", "to": null}}))
        );
    }

    #[test]
    fn assigning_a_conversation_to_its_owner_changes_nothing() {
        assert_eq!(plan_assignment(Some("bob"), None, Some("bob"), "api"), None);
        assert_eq!(plan_assignment(None, Some("bob"), None, "api"), None);
    }

    #[test]
    fn a_restored_conversation_comes_back_closed_only_if_it_was_open_and_its_thread_is_taken() {
        let cases = [
            (true, false, Restored::AsItWas),
            (false, true, Restored::AsItWas),
            (false, false, Restored::AsItWas),
            (true, true, Restored::Closed),
        ];
        for (open, taken, expected) in cases {
            assert_eq!(
                Restored::of(open, taken),
                expected,
                "open {open}, taken {taken}"
            );
        }
        let (changes, reason) = Restored::Closed.record("open");
        assert_eq!(changes["status"]["to"], "closed");
        assert!(reason.is_some(), "closing on restore says why");
        assert_eq!(
            Restored::AsItWas.record("closed"),
            (serde_json::json!({"status": "closed"}), None)
        );
    }
}
