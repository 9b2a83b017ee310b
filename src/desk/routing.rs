//! Who a new (or reopened) conversation goes to (docs/ARCHITECTURE.md §11), as a pure decision
//! over the channel's rule and the reps' presence and load. Every decision carries its
//! reason: the rule, each rep considered, and why each was passed over.

use serde::Serialize;
use serde_json::{Value, json};

/// Where a rep stands for routing. Away counts as offline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepState {
    pub id: String,
    pub online: bool,
    /// Open conversations assigned to the rep.
    pub load: u32,
    pub capacity: u32,
}

/// A channel's routing rule with what it needs resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    Nobody,
    /// Round-robin over `pool` (in rotation order), after `last` (the last rep assigned).
    RoundRobin {
        pool: Vec<RepState>,
        last: Option<String>,
    },
    /// The contact's owner, if the contact has one, and whether an offline owner can be
    /// emailed.
    ContactOwner {
        owner: Option<RepState>,
        mail: OwnerMail,
    },
    /// The contact's owner is not a rep who works this channel's inboxes: they could not
    /// see the conversation, so it is not given to them.
    ContactOwnerOutside {
        owner: String,
    },
}

/// Whether a message for an offline contact owner can go out by email.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerMail {
    Possible,
    /// The owner has no `email` in `[[reps]]`.
    NoAddress,
    /// No `[smtp]` is configured.
    NoSmtp,
}

impl OwnerMail {
    /// From whether `[smtp]` is set and the owner's address.
    pub fn of(smtp: bool, address: Option<&str>) -> Self {
        match (smtp, address) {
            (false, _) => OwnerMail::NoSmtp,
            (true, None) => OwnerMail::NoAddress,
            (true, Some(_)) => OwnerMail::Possible,
        }
    }

    /// Why an offline owner is not emailed (`no_address`, `no_smtp`), for the metric and
    /// the log; `None` when they are.
    pub fn skipped(self) -> Option<&'static str> {
        match self {
            OwnerMail::Possible => None,
            OwnerMail::NoAddress => Some("no_address"),
            OwnerMail::NoSmtp => Some("no_smtp"),
        }
    }
}

/// How one rep fared in a decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Considered {
    pub rep_id: String,
    /// `assigned`, `offline`, `at_capacity`, `not_reached` (someone earlier was chosen), or
    /// `outside_inbox` (a contact owner who does not work the channel's inbox).
    pub outcome: &'static str,
}

/// The outcome and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub assignee: Option<String>,
    pub rule: &'static str,
    pub considered: Vec<Considered>,
    /// Contact-owner routing to an offline owner: the message is also emailed to them.
    pub email_owner: bool,
    /// An offline owner who is not emailed, and why (`no_address`, `no_smtp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_emailed: Option<&'static str>,
    pub note: String,
}

pub fn decide(rule: &Rule) -> Decision {
    match rule {
        Rule::Nobody => Decision {
            assignee: None,
            rule: "nobody",
            considered: Vec::new(),
            email_owner: false,
            not_emailed: None,
            note: "the channel assigns nobody".into(),
        },
        Rule::RoundRobin { pool, last } => round_robin(pool, last.as_deref()),
        Rule::ContactOwner { owner: None, .. } => Decision {
            assignee: None,
            rule: "contact_owner",
            considered: Vec::new(),
            email_owner: false,
            not_emailed: None,
            note: "the contact has no owner".into(),
        },
        Rule::ContactOwner {
            owner: Some(owner),
            mail,
        } => contact_owner(owner, *mail),
        Rule::ContactOwnerOutside { owner } => Decision {
            assignee: None,
            rule: "contact_owner",
            considered: vec![Considered {
                rep_id: owner.clone(),
                outcome: "outside_inbox",
            }],
            email_owner: false,
            not_emailed: None,
            note: "the contact's owner does not work this channel's inbox, so could not see \
                   the conversation: waits unassigned"
                .into(),
        },
    }
}

/// The owner gets it; while offline, the message is emailed to them if it can be, and
/// the note says which happened.
fn contact_owner(owner: &RepState, mail: OwnerMail) -> Decision {
    let not_emailed = if owner.online { None } else { mail.skipped() };
    let note = match (owner.online, mail) {
        (true, _) => "assigned to the contact's owner",
        (false, OwnerMail::Possible) => {
            "assigned to the contact's owner, who is offline: the message is emailed to them"
        }
        (false, OwnerMail::NoAddress) => {
            "assigned to the contact's owner, who is offline and has no email address: \
             the message is not emailed"
        }
        (false, OwnerMail::NoSmtp) => {
            "assigned to the contact's owner, who is offline; no [smtp] is configured: \
             the message is not emailed"
        }
    };
    Decision {
        assignee: Some(owner.id.clone()),
        rule: "contact_owner",
        considered: vec![Considered {
            rep_id: owner.id.clone(),
            outcome: "assigned",
        }],
        email_owner: !owner.online && mail == OwnerMail::Possible,
        not_emailed,
        note: note.into(),
    }
}

/// Starts after the last rep assigned and takes the first who is online and below
/// capacity, so over many assignments every eligible rep gets the same share (±1).
fn round_robin(pool: &[RepState], last: Option<&str>) -> Decision {
    let start = last
        .and_then(|l| pool.iter().position(|r| r.id == l))
        .map_or(0, |i| i + 1);
    let mut considered = Vec::new();
    let mut assignee = None;
    for offset in 0..pool.len() {
        let rep = &pool[(start + offset) % pool.len()];
        let outcome = if assignee.is_some() {
            "not_reached"
        } else if !rep.online {
            "offline"
        } else if rep.load >= rep.capacity {
            "at_capacity"
        } else {
            assignee = Some(rep.id.clone());
            "assigned"
        };
        considered.push(Considered {
            rep_id: rep.id.clone(),
            outcome,
        });
    }
    let note = match &assignee {
        Some(_) => "round-robin among online reps below capacity".to_owned(),
        None if pool.is_empty() => "no reps are listed for this channel".to_owned(),
        None => "nobody is online below capacity: waits unassigned until someone is".to_owned(),
    };
    Decision {
        assignee,
        rule: "users_and_teams",
        considered,
        email_owner: false,
        not_emailed: None,
        note,
    }
}

/// The rotation pool of a `users_and_teams` rule: the listed users, then members of the
/// listed teams, each once, in config order.
pub fn pool<'r>(
    users: &[String],
    teams: &[String],
    reps: &'r [crate::config::RepConfig],
) -> Vec<&'r crate::config::RepConfig> {
    let mut pool: Vec<&crate::config::RepConfig> = Vec::new();
    let listed = users
        .iter()
        .filter_map(|u| reps.iter().find(|r| &r.id == u))
        .chain(
            reps.iter()
                .filter(|r| r.teams.iter().any(|t| teams.contains(t))),
        );
    for rep in listed {
        if !pool.iter().any(|p| p.id == rep.id) {
            pool.push(rep);
        }
    }
    pool
}

/// Whether a rep counts as online, from the presence they last reported (`status`, when):
/// they said `online`, no longer ago than the presence timeout. Away counts as offline,
/// and so does a report gone stale (a closed console does not say goodbye).
pub fn is_online(reported: Option<(&str, i64)>, now: i64, timeout_ms: i64) -> bool {
    matches!(reported, Some((status, at)) if status == "online" && at >= now - timeout_ms)
}

/// A rep's presence as the console shows it: what they last reported while it is fresh,
/// else `offline`.
pub fn effective_presence(reported: Option<(String, i64)>, now: i64, timeout_ms: i64) -> String {
    match reported {
        Some((status, at)) if at >= now - timeout_ms => status,
        _ => "offline".to_owned(),
    }
}

/// What recording a routing decision writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Recording<'d> {
    /// The audit row's action: `assigned` or `left_unassigned`.
    pub action: &'static str,
    /// The audit row's `changes`: the whole decision with its reasons.
    pub changes: Value,
    /// The audit row's `reason`: the decision's note.
    pub note: &'d str,
    /// The rep the conversation (and its ticket) is given to, if anyone.
    pub assignee: Option<&'d str>,
    /// Whether the channel's rotation cursor moves to the assignee (round robin only).
    pub advances_rotation: bool,
    /// The `conversation.assigned` event's data, when someone is assigned.
    pub event: Option<Value>,
}

/// How a decision is recorded; `None` for a channel that routes to nobody, which has
/// nothing to explain.
pub fn recording(decision: &Decision) -> Option<Recording<'_>> {
    if decision.rule == "nobody" {
        return None;
    }
    let assignee = decision.assignee.as_deref();
    Some(Recording {
        action: if assignee.is_some() {
            "assigned"
        } else {
            "left_unassigned"
        },
        changes: serde_json::to_value(decision).unwrap_or_default(),
        note: &decision.note,
        assignee,
        advances_rotation: assignee.is_some() && decision.rule == "users_and_teams",
        event: assignee.map(|rep| json!({"owner_id": rep, "by": "routing", "rule": decision.rule})),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(id: &str, online: bool, load: u32, capacity: u32) -> RepState {
        RepState {
            id: id.into(),
            online,
            load,
            capacity,
        }
    }

    #[test]
    fn round_robin_takes_the_next_eligible_rep_after_the_last_one() {
        let pool = vec![
            rep("a", true, 0, 5),
            rep("b", false, 0, 5),
            rep("c", true, 5, 5),
            rep("d", true, 1, 5),
        ];
        let cases = [
            (None, Some("a")),
            (Some("a"), Some("d")),
            (Some("d"), Some("a")),
            (Some("gone"), Some("a")),
        ];
        for (last, expected) in cases {
            let rule = Rule::RoundRobin {
                pool: pool.clone(),
                last: last.map(String::from),
            };
            assert_eq!(
                decide(&rule).assignee.as_deref(),
                expected,
                "after {last:?}"
            );
        }
    }

    #[test]
    fn the_reason_says_why_each_rep_was_passed_over() {
        let pool = vec![
            rep("a", false, 0, 5),
            rep("b", true, 5, 5),
            rep("c", true, 0, 5),
            rep("d", true, 0, 5),
        ];
        let decision = decide(&Rule::RoundRobin { pool, last: None });
        let outcomes: Vec<_> = decision
            .considered
            .iter()
            .map(|c| (c.rep_id.as_str(), c.outcome))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("a", "offline"),
                ("b", "at_capacity"),
                ("c", "assigned"),
                ("d", "not_reached")
            ]
        );
    }

    #[test]
    fn nobody_eligible_leaves_the_conversation_unassigned() {
        for pool in [vec![], vec![rep("a", false, 0, 5), rep("b", true, 3, 3)]] {
            let decision = decide(&Rule::RoundRobin { pool, last: None });
            assert_eq!(decision.assignee, None);
        }
        assert_eq!(decide(&Rule::Nobody).assignee, None);
        assert_eq!(
            decide(&Rule::ContactOwner {
                owner: None,
                mail: OwnerMail::Possible
            })
            .assignee,
            None
        );
    }

    #[test]
    fn round_robin_is_fair_within_one_over_a_thousand_assignments() {
        let mut pool = vec![
            rep("a", true, 0, 10_000),
            rep("b", true, 0, 10_000),
            rep("c", true, 0, 10_000),
        ];
        let mut last = None;
        for _ in 0..1000 {
            let decision = decide(&Rule::RoundRobin {
                pool: pool.clone(),
                last: last.clone(),
            });
            let chosen = decision.assignee.unwrap();
            pool.iter_mut().find(|r| r.id == chosen).unwrap().load += 1;
            last = Some(chosen);
        }
        let loads: Vec<u32> = pool.iter().map(|r| r.load).collect();
        let (min, max) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
        assert!(max - min <= 1, "{loads:?}");
    }

    #[test]
    fn the_contacts_owner_gets_it_and_an_email_when_offline_if_one_can_be_sent() {
        let cases = [
            (true, OwnerMail::Possible, false, None),
            (true, OwnerMail::NoAddress, false, None),
            (false, OwnerMail::Possible, true, None),
            (false, OwnerMail::NoAddress, false, Some("no_address")),
            (false, OwnerMail::NoSmtp, false, Some("no_smtp")),
        ];
        for (online, mail, emailed, not_emailed) in cases {
            let decision = decide(&Rule::ContactOwner {
                owner: Some(rep("carol", online, 0, 10)),
                mail,
            });
            assert_eq!(decision.assignee.as_deref(), Some("carol"));
            assert_eq!(
                (decision.email_owner, decision.not_emailed),
                (emailed, not_emailed),
                "online {online}, {mail:?}"
            );
            assert_eq!(
                decision.note.contains("is emailed"),
                emailed,
                "the note says what happened: {}",
                decision.note
            );
        }
    }

    #[test]
    fn a_contact_owner_outside_the_channels_inbox_is_not_given_the_conversation() {
        let decision = decide(&Rule::ContactOwnerOutside {
            owner: "dave".into(),
        });
        assert_eq!(decision.assignee, None);
        assert_eq!(decision.considered[0].outcome, "outside_inbox");
    }

    #[test]
    fn the_pool_lists_users_then_team_members_once_each() {
        let rep = |id: &str, teams: &[&str]| crate::config::RepConfig {
            id: id.into(),
            name: None,
            email: None,
            teams: teams.iter().map(|t| t.to_string()).collect(),
            capacity: 10,
            notify: false,
        };
        let reps = vec![rep("a", &["x"]), rep("b", &["y"]), rep("c", &["x", "y"])];
        let pool = pool(&["c".into(), "ghost".into()], &["x".into()], &reps);
        let ids: Vec<&str> = pool.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["c", "a"]);
    }

    #[test]
    fn a_rep_is_online_only_while_their_online_report_is_fresh() {
        let cases = [
            (Some(("online", 1_000)), true),
            (Some(("online", 999)), false),
            (Some(("away", 1_000)), false),
            (Some(("offline", 1_000)), false),
            (None, false),
        ];
        for (reported, online) in cases {
            assert_eq!(is_online(reported, 1_500, 500), online, "{reported:?}");
        }
    }

    #[test]
    fn a_stale_presence_shows_as_offline() {
        let fresh = Some(("away".to_owned(), 1_000));
        assert_eq!(effective_presence(fresh, 1_500, 500), "away");
        let stale = Some(("online".to_owned(), 999));
        assert_eq!(effective_presence(stale, 1_500, 500), "offline");
        assert_eq!(effective_presence(None, 1_500, 500), "offline");
    }

    #[test]
    fn a_channel_that_routes_to_nobody_records_nothing() {
        assert_eq!(recording(&decide(&Rule::Nobody)), None);
    }

    #[test]
    fn a_round_robin_assignment_moves_the_rotation_and_is_announced() {
        let decision = decide(&Rule::RoundRobin {
            pool: vec![rep("a", true, 0, 1)],
            last: None,
        });
        let recorded = recording(&decision).unwrap();
        assert_eq!(recorded.action, "assigned");
        assert_eq!(recorded.assignee, Some("a"));
        assert!(recorded.advances_rotation);
        assert_eq!(
            recorded.event,
            Some(json!({"owner_id": "a", "by": "routing", "rule": "users_and_teams"}))
        );
        assert_eq!(recorded.changes["considered"][0]["outcome"], "assigned");
    }

    #[test]
    fn a_contact_owner_assignment_leaves_the_rotation_alone() {
        let decision = decide(&Rule::ContactOwner {
            owner: Some(rep("carol", true, 0, 1)),
            mail: OwnerMail::Possible,
        });
        let recorded = recording(&decision).unwrap();
        assert_eq!(recorded.assignee, Some("carol"));
        assert!(!recorded.advances_rotation);
    }

    #[test]
    fn a_conversation_left_unassigned_is_audited_but_not_announced() {
        let decision = decide(&Rule::RoundRobin {
            pool: vec![rep("a", false, 0, 1)],
            last: None,
        });
        let recorded = recording(&decision).unwrap();
        assert_eq!(recorded.action, "left_unassigned");
        assert_eq!(recorded.assignee, None);
        assert!(!recorded.advances_rotation);
        assert_eq!(recorded.event, None);
    }
}
