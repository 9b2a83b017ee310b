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
