//! Inboxes and who sees what: channels are grouped into inboxes in the config, a channel
//! in none is in `default`, and a rep sees the channels of the inboxes they belong to
//! (listed directly or through a team). Pure functions over the config, resolved per
//! request from the live one, so a reload changes what reps see at once.

use std::collections::BTreeSet;

use crate::config::{Config, RepConfig, Role};

/// The inbox of every channel that no configured inbox lists.
pub const DEFAULT_INBOX: &str = "default";

/// An inbox as it stands under the current config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbox {
    pub id: String,
    /// Its configured channels (for `default`: those no other inbox lists).
    pub channels: Vec<String>,
    pub users: Vec<String>,
    pub teams: Vec<String>,
    /// Every rep belongs to it: the `default` inbox unless its config lists members.
    pub open_to_all: bool,
    /// The channels it covers; for `default` also channels gone from the config, whose
    /// conversations stay.
    pub scope: Scope,
}

impl Inbox {
    /// Whether a rep (or, for `None`, a rep token that names no rep) works this inbox.
    pub fn has_member(&self, rep: Option<&RepConfig>) -> bool {
        if self.open_to_all {
            return true;
        }
        rep.is_some_and(|rep| {
            self.users.contains(&rep.id) || rep.teams.iter().any(|t| self.teams.contains(t))
        })
    }

    /// `default` is shown when it is configured or holds a configured channel.
    fn shown(&self, config: &Config) -> bool {
        self.id != DEFAULT_INBOX
            || !self.channels.is_empty()
            || config.inboxes.contains_key(DEFAULT_INBOX)
    }
}

/// Every inbox, in id order, `default` included even when it holds no configured channel
/// (it still holds the channels removed from the config).
fn all(config: &Config) -> Vec<Inbox> {
    let listed: BTreeSet<String> = config
        .inboxes
        .iter()
        .filter(|(id, _)| *id != DEFAULT_INBOX)
        .flat_map(|(_, i)| i.channels.iter().cloned())
        .collect();
    let unlisted: Vec<String> = config
        .channels
        .keys()
        .filter(|c| !listed.contains(*c))
        .cloned()
        .collect();
    let configured_default = config
        .inboxes
        .get(DEFAULT_INBOX)
        .cloned()
        .unwrap_or_default();
    let mut inboxes: Vec<Inbox> = config
        .inboxes
        .iter()
        .filter(|(id, _)| *id != DEFAULT_INBOX)
        .map(|(id, inbox)| Inbox {
            id: id.clone(),
            channels: inbox.channels.clone(),
            users: inbox.users.clone(),
            teams: inbox.teams.clone(),
            open_to_all: false,
            scope: Scope::Only(inbox.channels.iter().cloned().collect()),
        })
        .collect();
    inboxes.push(Inbox {
        id: DEFAULT_INBOX.to_owned(),
        channels: unlisted,
        open_to_all: configured_default.users.is_empty() && configured_default.teams.is_empty(),
        users: configured_default.users,
        teams: configured_default.teams,
        scope: Scope::Except(listed),
    });
    inboxes.sort_by(|a, b| a.id.cmp(&b.id));
    inboxes
}

/// Every inbox as `GET /api/v1/inboxes` shows it, in id order. `default` holds the
/// channels no other inbox lists; it is shown when it has channels or is configured.
pub fn resolve(config: &Config) -> Vec<Inbox> {
    all(config)
        .into_iter()
        .filter(|i| i.shown(config))
        .collect()
}

/// The channels a caller may see and act on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Admin tokens: everything.
    #[default]
    All,
    /// These channels only.
    Only(BTreeSet<String>),
    /// Every channel but these: the `default` inbox is every channel the other inboxes
    /// do not list, including channels gone from the config.
    Except(BTreeSet<String>),
}

impl Scope {
    /// Whether this channel is visible.
    pub fn allows(&self, channel: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(channels) => channels.contains(channel),
            Scope::Except(channels) => !channels.contains(channel),
        }
    }

    /// What either scope allows.
    pub fn union(self, other: Scope) -> Scope {
        match (self, other) {
            (Scope::All, _) | (_, Scope::All) => Scope::All,
            (Scope::Only(a), Scope::Only(b)) => Scope::Only(&a | &b),
            (Scope::Only(a), Scope::Except(b)) | (Scope::Except(b), Scope::Only(a)) => {
                Scope::Except(&b - &a)
            }
            (Scope::Except(a), Scope::Except(b)) => Scope::Except(&a & &b),
        }
    }
}

/// The inboxes a caller works, as `GET /api/v1/inboxes` shows them: all of them for
/// admins, for reps those they belong to.
pub fn inboxes_of(config: &Config, role: Role, rep: Option<&str>) -> Vec<Inbox> {
    let all = resolve(config);
    match role {
        Role::Admin => all,
        Role::Rep => {
            let rep = rep.and_then(|id| config.rep(id));
            all.into_iter().filter(|i| i.has_member(rep)).collect()
        }
    }
}

/// What a caller may see: admins everything; reps the channels of their inboxes. A rep
/// token that names no rep (or a rep no longer configured) belongs only to inboxes open
/// to all, so a config without inboxes lets every rep token see every channel, as before.
pub fn scope(config: &Config, role: Role, rep: Option<&str>) -> Scope {
    match role {
        Role::Admin => Scope::All,
        Role::Rep => {
            let rep = rep.and_then(|id| config.rep(id));
            all(config)
                .into_iter()
                .filter(|i| i.has_member(rep))
                .fold(Scope::Only(BTreeSet::new()), |scope, inbox| {
                    scope.union(inbox.scope)
                })
        }
    }
}

/// Whether a rep may be given work on this channel (by hand or by routing): they work one
/// of its inboxes, so they can see it. Work given to anyone else would answer them 404
/// and still count against their capacity.
pub fn rep_works_channel(config: &Config, rep: &str, channel: &str) -> bool {
    config.rep(rep).is_some() && scope(config, Role::Rep, Some(rep)).allows(channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(inboxes: &str) -> Config {
        let channel = |id: &str| {
            format!(
                "[channels.{id}]\nkind = \"generic\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\noutbound_url = \"http://127.0.0.1:9/x\"\n"
            )
        };
        let text = format!(
            r#"
[[reps]]
id = "alice"
[[reps]]
id = "bob"
teams = ["billing"]
[[reps]]
id = "carol"
teams = ["billing", "vip"]
{}{}{}{}
{inboxes}
"#,
            channel("tg"),
            channel("wa"),
            channel("web"),
            channel("sms"),
        );
        crate::config::load_str(&text, []).unwrap()
    }

    /// Which of the configured channels, and of a channel removed from the config, a
    /// scope allows.
    fn sees(scope: &Scope) -> Vec<&'static str> {
        ["gone", "sms", "tg", "wa", "web"]
            .into_iter()
            .filter(|c| scope.allows(c))
            .collect()
    }

    #[test]
    fn without_inboxes_every_channel_is_in_default_and_every_rep_token_sees_it() {
        let config = config("");
        let inboxes = resolve(&config);
        assert_eq!(inboxes.len(), 1);
        assert_eq!(inboxes[0].id, "default");
        assert_eq!(inboxes[0].channels, ["sms", "tg", "wa", "web"]);
        for rep in [None, Some("alice"), Some("ghost")] {
            let scope = scope(&config, Role::Rep, rep);
            assert_eq!(scope, Scope::Except(BTreeSet::new()), "{rep:?}");
            assert_eq!(sees(&scope), ["gone", "sms", "tg", "wa", "web"]);
        }
        assert_eq!(scope(&config, Role::Admin, None), Scope::All);
    }

    #[test]
    fn reps_see_the_channels_of_their_inboxes_directly_or_through_a_team() {
        let config = config(
            r#"
[inboxes.sales]
channels = ["tg"]
users = ["alice"]
[inboxes.support]
channels = ["wa", "web"]
teams = ["billing"]
"#,
        );
        let cases: [(Option<&str>, &[&str]); 5] = [
            // Everyone is in the default inbox: sms, which no inbox lists, and channels
            // gone from the config.
            (Some("alice"), &["gone", "sms", "tg"]),
            (Some("bob"), &["gone", "sms", "wa", "web"]),
            (Some("carol"), &["gone", "sms", "wa", "web"]),
            (None, &["gone", "sms"]),
            (Some("ghost"), &["gone", "sms"]),
        ];
        for (rep, expected) in cases {
            assert_eq!(sees(&scope(&config, Role::Rep, rep)), expected, "{rep:?}");
        }
        let ids: Vec<String> = inboxes_of(&config, Role::Rep, Some("alice"))
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, ["default", "sales"]);
        assert_eq!(inboxes_of(&config, Role::Admin, None).len(), 3);
    }

    #[test]
    fn a_default_inbox_with_members_is_theirs_alone_and_hidden_when_empty() {
        let restricted = config(
            r#"
[inboxes.default]
users = ["carol"]
[inboxes.sales]
channels = ["tg", "wa", "web"]
users = ["alice"]
"#,
        );
        assert_eq!(
            sees(&scope(&restricted, Role::Rep, Some("carol"))),
            ["gone", "sms"]
        );
        assert_eq!(
            sees(&scope(&restricted, Role::Rep, Some("alice"))),
            ["tg", "wa", "web"]
        );
        assert!(sees(&scope(&restricted, Role::Rep, Some("bob"))).is_empty());
        assert!(sees(&scope(&restricted, Role::Rep, None)).is_empty());

        let everything_listed = config(
            r#"
[inboxes.a]
channels = ["tg", "wa"]
users = ["alice"]
[inboxes.b]
channels = ["web", "sms"]
"#,
        );
        let ids: Vec<String> = resolve(&everything_listed)
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, ["a", "b"]);
        // Default is not shown, but still holds what left the config.
        assert_eq!(
            sees(&scope(&everything_listed, Role::Rep, Some("alice"))),
            ["gone", "tg", "wa"]
        );
        // An inbox without members is for admins only.
        assert_eq!(
            sees(&scope(&everything_listed, Role::Rep, Some("bob"))),
            ["gone"]
        );
    }

    #[test]
    fn scopes_add_up() {
        let set = |s: &[&str]| s.iter().map(|c| c.to_string()).collect::<BTreeSet<_>>();
        let cases = [
            (
                Scope::Only(set(&["a"])),
                Scope::Only(set(&["b"])),
                Scope::Only(set(&["a", "b"])),
            ),
            (
                Scope::Only(set(&["a"])),
                Scope::Except(set(&["a", "b"])),
                Scope::Except(set(&["b"])),
            ),
            (
                Scope::Except(set(&["a", "b"])),
                Scope::Only(set(&["b"])),
                Scope::Except(set(&["a"])),
            ),
            (
                Scope::Except(set(&["a", "b"])),
                Scope::Except(set(&["b", "c"])),
                Scope::Except(set(&["b"])),
            ),
            (Scope::Only(set(&["a"])), Scope::All, Scope::All),
        ];
        for (a, b, expected) in cases {
            assert_eq!(a.clone().union(b.clone()), expected, "{a:?} + {b:?}");
        }
    }
}
