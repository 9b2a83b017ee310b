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
