//! The help-desk rules of a channel as the store applies them: routing plans with their
//! reps, and what owner and digest e-mails name.

use crate::config::{ChannelConfig, Threading, TicketTemplate};
use crate::desk::routing::{OwnerMail, RepState, Rule};

/// The help-desk rules of one channel, as the ingest transaction needs them.
#[derive(Clone, Debug)]
pub struct ChannelRules {
    pub channel_id: String,
    pub threading: Threading,
    pub reopen: bool,
    pub ticket: TicketTemplate,
    pub routing: RoutingPlan,
    /// A rep's presence older than this counts as offline.
    pub presence_timeout_ms: i64,
    /// The HubSpot channel account new inbound messages are published to (each queues a
    /// `HubspotPublish` job in the ingest transaction); `None` when not linked.
    pub hubspot_account: Option<String>,
}

/// A channel's routing rule with the reps it involves resolved from config.
#[derive(Clone, Debug, Default)]
pub enum RoutingPlan {
    #[default]
    Nobody,
    /// Round-robin over these reps (in rotation order).
    RoundRobin { pool: Vec<RepSlot> },
    /// The contact's owner; offline owners get each inbound message by email.
    ContactOwner {
        reps: Vec<RepSlot>,
        /// Where emails to offline owners come from; `None` when no `[smtp]` is configured.
        email: Option<OwnerEmail>,
    },
}

/// A contact's owner as contact-owner routing finds them.
pub(crate) enum OwnerSlot<'a> {
    None,
    /// Not a rep who works the channel's inbox (or no longer a rep at all).
    Outside(String),
    Rep(&'a RepSlot),
}

impl RoutingPlan {
    /// The contact owner `owner` among the reps this plan may give work to.
    pub(crate) fn owner_slot(&self, owner: Option<String>) -> OwnerSlot<'_> {
        let RoutingPlan::ContactOwner { reps, .. } = self else {
            return OwnerSlot::None;
        };
        match owner {
            None => OwnerSlot::None,
            Some(o) => match reps.iter().find(|r| r.id == o) {
                Some(slot) => OwnerSlot::Rep(slot),
                None => OwnerSlot::Outside(o),
            },
        }
    }

    /// Whether an offline owner `slot` can be emailed under this plan.
    pub(crate) fn owner_mail(&self, slot: &RepSlot) -> crate::desk::routing::OwnerMail {
        let smtp = matches!(self, RoutingPlan::ContactOwner { email: Some(_), .. });
        crate::desk::routing::OwnerMail::of(smtp, slot.email.as_deref())
    }

    /// The contact-owner rule `desk::routing` decides over, from the owner as found and,
    /// for an owner who is one of the plan's reps, where they stand (`state`).
    pub(crate) fn contact_owner_rule(&self, owner: OwnerSlot<'_>, state: Option<RepState>) -> Rule {
        match owner {
            OwnerSlot::Outside(owner) => Rule::ContactOwnerOutside { owner },
            OwnerSlot::Rep(slot) if state.is_some() => Rule::ContactOwner {
                owner: state,
                mail: self.owner_mail(slot),
            },
            _ => Rule::ContactOwner {
                owner: None,
                mail: OwnerMail::Possible,
            },
        }
    }

    /// Where an e-mail to the offline owner `slot` goes and what it names, when one can
    /// be sent under this plan.
    pub(crate) fn mail_target<'a>(&'a self, slot: &'a RepSlot) -> Option<MailTarget<'a>> {
        match (self, slot.email.as_deref()) {
            (
                RoutingPlan::ContactOwner {
                    email: Some(from), ..
                },
                Some(to),
            ) => Some(MailTarget { to, from }),
            _ => None,
        }
    }
}

/// Where an offline owner's e-mail goes, and what it says about the channel.
pub(crate) struct MailTarget<'a> {
    pub to: &'a str,
    pub from: &'a OwnerEmail,
}

/// A rep as routing sees them.
#[derive(Clone, Debug)]
pub struct RepSlot {
    pub id: String,
    pub capacity: u32,
    pub email: Option<String>,
}

/// What an owner email needs beyond the message.
#[derive(Clone, Debug)]
pub struct OwnerEmail {
    /// Base of the conversation link (`server.public_url`).
    pub link_base: Option<String>,
    /// The channel as the email names it (`channels.ID.name`).
    pub channel_name: String,
}

/// A rep as digests need them.
#[derive(Clone, Debug)]
pub struct DigestRep {
    pub id: String,
    pub email: String,
    /// `[[reps]].notify`; the rep's own choice (through the API) overrides it.
    pub notify: bool,
}

impl DigestRep {
    /// Whether the rep wants digests: their own choice (`choices`, by rep) where they made
    /// one, else the config's.
    pub(crate) fn wants_digest(&self, choices: &std::collections::HashMap<String, bool>) -> bool {
        choices.get(&self.id).copied().unwrap_or(self.notify)
    }
}

/// What digest emails say besides the messages.
#[derive(Clone, Debug, Default)]
pub struct DigestLinks {
    /// Base of the conversation links (`server.public_url`).
    pub link_base: Option<String>,
    /// Channels by id as the email names them (`channels.ID.name`); an id not here is
    /// named as it is.
    pub channel_names: std::collections::HashMap<String, String>,
}

impl DigestLinks {
    /// What the email calls channel `id`.
    pub fn channel_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.channel_names.get(id).map_or(id, String::as_str)
    }
}

impl ChannelRules {
    /// Plain rules for unit tests: per-contact threading, reopening, nobody routed.
    #[cfg(test)]
    pub(crate) fn for_tests(channel_id: &str) -> Self {
        Self {
            channel_id: channel_id.into(),
            threading: Threading::PerContact,
            reopen: true,
            ticket: TicketTemplate {
                pipeline: "support".into(),
                status: "new".into(),
                priority: None,
                properties: Default::default(),
            },
            routing: RoutingPlan::Nobody,
            presence_timeout_ms: 300_000,
            hubspot_account: None,
        }
    }

    pub fn new(channel_id: &str, channel: &ChannelConfig, config: &crate::config::Config) -> Self {
        let slot = |r: &crate::config::RepConfig| RepSlot {
            id: r.id.clone(),
            capacity: r.capacity,
            email: r.email.clone(),
        };
        // Only reps who can see the channel's conversations are given them.
        let works = |r: &&crate::config::RepConfig| {
            crate::desk::inboxes::rep_works_channel(config, &r.id, channel_id)
        };
        let routing = match &channel.routing {
            crate::config::RoutingConfig::Nobody => RoutingPlan::Nobody,
            crate::config::RoutingConfig::UsersAndTeams { users, teams } => {
                RoutingPlan::RoundRobin {
                    pool: crate::desk::routing::pool(users, teams, &config.reps)
                        .into_iter()
                        .filter(works)
                        .map(slot)
                        .collect(),
                }
            }
            crate::config::RoutingConfig::ContactOwner => RoutingPlan::ContactOwner {
                reps: config.reps.iter().filter(works).map(slot).collect(),
                email: config.smtp.as_ref().map(|_| OwnerEmail {
                    link_base: config.server.public_url.clone(),
                    channel_name: channel.name.clone(),
                }),
            },
        };
        Self {
            channel_id: channel_id.to_owned(),
            threading: channel.threading,
            reopen: channel.reopen,
            ticket: channel.ticket.clone(),
            routing,
            presence_timeout_ms: (config.presence.timeout_s * 1000) as i64,
            hubspot_account: channel
                .hubspot
                .as_ref()
                .map(|link| link.channel_account_id.clone()),
        }
    }
}
