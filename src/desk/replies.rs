//! Where a rep's reply goes. A reply normally stays in its conversation; with
//! `via_channel` it moves to another channel of the same contact (today only e-mail, to
//! the contact's address), into that contact's conversation there on the same ticket.
//! The API and the console both ask this module before anything is stored; the store then
//! finds or opens the conversation the answer names. No HTTP, no SQL, no adapters.

use thiserror::Error;

use crate::model::Identifier;

/// The only channel kind a reply can move to, which is also the kind of identifier it is
/// sent to there (the e-mail adapter's `IDENTIFIER_TYPE`).
pub const VIA_KIND: &str = "email";

/// Where a `via_channel` reply goes: a channel and the contact's identifier on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    pub channel_id: String,
    pub identifier: Identifier,
}

/// Why a reply cannot move to the channel a rep asked for; the message is the API's.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ViaRefused {
    /// Not a configured channel, or not one the caller sees (the same answer, so a rep
    /// learns nothing about channels outside their inboxes).
    #[error("via_channel: no channel {0:?}")]
    NoChannel(String),
    #[error("via_channel: {channel:?} is a {kind} channel; replies can move to email channels")]
    NotEmail { channel: String, kind: String },
    #[error("via_channel: the contact has no email (set it with PATCH /api/v1/contacts/{{id}})")]
    NoEmail,
}

/// The facts about the channel a rep asked a reply to move to.
#[derive(Clone, Copy, Debug)]
pub struct Requested<'a> {
    pub id: &'a str,
    /// The channel's adapter kind, `None` when no such channel is configured.
    pub kind: Option<&'a str>,
    /// Whether the caller's inboxes include it.
    pub visible: bool,
}

/// Whether a reply may move to a channel of this adapter kind (the console offers only
/// these).
pub fn can_carry(kind: &str) -> bool {
    kind == VIA_KIND
}

/// Where a reply asked to go through `requested` goes, given the contact's e-mail address.
pub fn via(requested: Requested<'_>, contact_email: Option<&str>) -> Result<Via, ViaRefused> {
    let kind = match requested.kind {
        Some(kind) if requested.visible => kind,
        _ => return Err(ViaRefused::NoChannel(requested.id.to_owned())),
    };
    if !can_carry(kind) {
        return Err(ViaRefused::NotEmail {
            channel: requested.id.to_owned(),
            kind: kind.to_owned(),
        });
    }
    let email = contact_email.ok_or(ViaRefused::NoEmail)?;
    Ok(Via {
        channel_id: requested.id.to_owned(),
        identifier: Identifier {
            kind: VIA_KIND.into(),
            value: email.to_owned(),
        },
    })
}

/// What the store found for a `via_channel` reply, loaded in its transaction.
#[derive(Clone, Copy, Debug)]
pub struct ViaFacts<'a> {
    /// The contact of the conversation the rep replied in.
    pub contact: &'a str,
    /// Whose the via identifier (the address) on the via channel is, if anyone's.
    pub identifier_owner: Option<&'a str>,
    /// The contact's newest live conversation on the via channel that is on the same
    /// ticket, if there is one.
    pub existing: Option<&'a str>,
}

/// The conversation a `via_channel` reply goes into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViaConversation {
    /// The contact's conversation there on this ticket.
    Existing(String),
    /// None yet: open one on the same ticket, keyed to the contact.
    Open { thread_key: String },
}

/// What the store does for a `via_channel` reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViaPlan {
    /// The contact gets the identifier on that channel (it had none there).
    pub add_identifier: bool,
    pub conversation: ViaConversation,
}

/// Why a `via_channel` reply cannot go where it was asked to (409).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ViaConflict {
    #[error("via_channel: {value} on {channel} belongs to another contact")]
    IdentifierTaken { value: String, channel: String },
    /// Found by the store when opening: the contact's thread there holds an open
    /// conversation of another ticket.
    #[error(
        "via_channel: the contact already has an open conversation on {channel} (another ticket)"
    )]
    ThreadTaken { channel: String },
}

/// Plans a `via_channel` reply: the address must be the contact's or nobody's; the reply
/// joins the contact's conversation there on the same ticket, or opens one.
pub fn plan_via(via: &Via, facts: ViaFacts<'_>) -> Result<ViaPlan, ViaConflict> {
    if facts
        .identifier_owner
        .is_some_and(|owner| owner != facts.contact)
    {
        return Err(ViaConflict::IdentifierTaken {
            value: via.identifier.value.clone(),
            channel: via.channel_id.clone(),
        });
    }
    Ok(ViaPlan {
        add_identifier: facts.identifier_owner.is_none(),
        conversation: match facts.existing {
            Some(id) => ViaConversation::Existing(id.to_owned()),
            None => ViaConversation::Open {
                thread_key: format!("contact:{}", facts.contact),
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(kind: Option<&'static str>, visible: bool) -> Requested<'static> {
        Requested {
            id: "mail",
            kind,
            visible,
        }
    }

    fn to_mail() -> Via {
        via(mail(Some("email"), true), Some("ana@example.com")).unwrap()
    }

    #[test]
    fn a_via_reply_joins_the_contacts_conversation_on_that_ticket_if_there_is_one() {
        let facts = ViaFacts {
            contact: "ctc_ana",
            identifier_owner: Some("ctc_ana"),
            existing: Some("conv_mail"),
        };
        assert_eq!(
            plan_via(&to_mail(), facts),
            Ok(ViaPlan {
                add_identifier: false,
                conversation: ViaConversation::Existing("conv_mail".into()),
            })
        );
    }

    #[test]
    fn a_via_reply_without_a_conversation_there_opens_one_keyed_to_the_contact_and_adds_the_address()
     {
        let facts = ViaFacts {
            contact: "ctc_ana",
            identifier_owner: None,
            existing: None,
        };
        assert_eq!(
            plan_via(&to_mail(), facts),
            Ok(ViaPlan {
                add_identifier: true,
                conversation: ViaConversation::Open {
                    thread_key: "contact:ctc_ana".into()
                },
            })
        );
    }

    #[test]
    fn an_address_of_another_contact_refuses_the_via_reply() {
        let facts = ViaFacts {
            contact: "ctc_ana",
            identifier_owner: Some("ctc_bo"),
            existing: None,
        };
        let refused = plan_via(&to_mail(), facts).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "via_channel: ana@example.com on mail belongs to another contact"
        );
        assert_eq!(
            ViaConflict::ThreadTaken {
                channel: "mail".into()
            }
            .to_string(),
            "via_channel: the contact already has an open conversation on mail (another ticket)"
        );
    }

    #[test]
    fn a_reply_moves_to_a_visible_email_channel_to_the_contacts_address() {
        assert_eq!(
            via(mail(Some("email"), true), Some("ana@example.com")),
            Ok(Via {
                channel_id: "mail".into(),
                identifier: Identifier {
                    kind: "email".into(),
                    value: "ana@example.com".into(),
                },
            })
        );
    }

    #[test]
    fn an_unknown_channel_and_one_the_caller_does_not_see_are_refused_alike() {
        let unknown = via(mail(None, true), Some("a@b.c"));
        let unseen = via(mail(Some("email"), false), Some("a@b.c"));
        assert_eq!(unknown, Err(ViaRefused::NoChannel("mail".into())));
        assert_eq!(unseen, unknown);
    }

    #[test]
    fn only_email_channels_carry_a_reply() {
        assert_eq!(
            via(mail(Some("telegram"), true), Some("a@b.c")),
            Err(ViaRefused::NotEmail {
                channel: "mail".into(),
                kind: "telegram".into()
            })
        );
        assert!(can_carry("email"));
        assert!(!can_carry("generic"));
    }

    #[test]
    fn a_contact_without_an_email_cannot_be_written_to_by_mail() {
        assert_eq!(
            via(mail(Some("email"), true), None),
            Err(ViaRefused::NoEmail)
        );
    }

    #[test]
    fn the_via_kind_is_the_email_adapters_kind_and_identifier_type() {
        assert_eq!(VIA_KIND, crate::adapters::email::IDENTIFIER_TYPE);
    }

    #[test]
    fn refusals_word_the_apis_422_messages() {
        assert_eq!(
            ViaRefused::NotEmail {
                channel: "tg".into(),
                kind: "telegram".into()
            }
            .to_string(),
            "via_channel: \"tg\" is a telegram channel; replies can move to email channels"
        );
        assert_eq!(
            ViaRefused::NoEmail.to_string(),
            "via_channel: the contact has no email (set it with PATCH /api/v1/contacts/{id})"
        );
    }
}
