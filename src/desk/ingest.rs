//! The ingest sequence of one inbound message as decisions over facts a store loaded
//! (docs/ARCHITECTURE.md §1 and §11): which conversation a hint may name, what threading
//! did, whether the conversation is routed, what live clients are told, and whether and
//! what a contact's offline owner is e-mailed. No SQL: each store loads the facts in its
//! own transaction and applies what these return with its own statements and locks.

use serde_json::{Value, json};

use super::routing::OwnerMail;
use crate::model::outbound::Email;
use crate::model::{MessageId, Part};

/// What threading did with an inbound message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threaded {
    /// Added to the thread's open conversation.
    Appended,
    /// Added to the thread's latest closed conversation, which it reopened.
    Reopened,
    /// Started a new conversation (with a new ticket).
    Created,
}

impl Threaded {
    /// Whether the message started its conversation (the webhook's `new_conversation`).
    pub fn is_new(self) -> bool {
        self == Threaded::Created
    }

    /// Whether the conversation goes through routing: a conversation is routed when a
    /// message creates or reopens it; one appended to keeps the owner it has.
    pub fn routes(self) -> bool {
        self != Threaded::Appended
    }
}

/// The open and latest closed conversation threading chooses between.
pub type Candidates<C> = (Option<C>, Option<C>);

/// What a conversation hint (an e-mail answering our mail) contributes, given the
/// conversation it names as the store found it (`open`: whether it is open): that
/// conversation as the open or the closed candidate, or `None` to thread by key as usual
/// (nothing found, or a closed one on a channel that does not reopen).
pub fn hinted<C>(found: Option<(C, bool)>, reopen: bool) -> Option<Candidates<C>> {
    match found? {
        (conversation, true) => Some((Some(conversation), None)),
        (conversation, false) if reopen => Some((None, Some(conversation))),
        (_, false) => None,
    }
}

/// Whether threading looks for the key's latest closed conversation: only when none is
/// open and the channel reopens closed ones.
pub fn wants_closed(open_found: bool, reopen: bool) -> bool {
    !open_found && reopen
}

/// Whether a known contact's details are written again: only when the message brings a
/// name or an address (most messages come from known contacts and bring nothing new).
pub fn brings_details(name: Option<&str>, email: Option<&str>) -> bool {
    name.is_some() || email.is_some()
}

/// The `message.created` event's data for an inbound message, for live clients.
pub fn message_created(
    message: &MessageId,
    new_conversation: bool,
    contact_name: Option<&str>,
    parts: &[Part],
) -> Value {
    json!({
        "message_id": message,
        "direction": "inbound",
        "new_conversation": new_conversation,
        "contact_name": contact_name,
        "preview": super::notify::preview(parts),
    })
}

/// What storing a new inbound message writes besides the message, once threading has
/// placed it.
#[derive(Clone, Debug, PartialEq)]
pub struct MessagePlan {
    /// Whether the message started its conversation (the webhook's `new_conversation`).
    pub new_conversation: bool,
    /// Queue a HubSpot publish job: the channel is linked to HubSpot.
    pub publish: bool,
    /// The `message.created` event's data.
    pub event: Value,
    /// Route the conversation: the message created or reopened it.
    pub route: bool,
}

/// Plans what a new inbound message `message` writes, from what threading did, whether
/// the channel is linked to HubSpot and the contact's display name.
pub fn plan_message(
    threaded: Threaded,
    hubspot_linked: bool,
    message: &MessageId,
    contact_name: Option<&str>,
    parts: &[Part],
) -> MessagePlan {
    MessagePlan {
        new_conversation: threaded.is_new(),
        publish: hubspot_linked,
        event: message_created(message, threaded.is_new(), contact_name, parts),
        route: threaded.routes(),
    }
}

/// What a new inbound message means for its contact's owner (contact-owner channels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerNotice<T> {
    /// Nothing: the owner is online and sees it live.
    Nothing,
    /// The owner is offline but cannot be e-mailed, for this reason (`no_address`,
    /// `no_smtp`), which the log and metric report.
    NotEmailed(&'static str),
    /// E-mail it to the owner at `T` (an address and what the e-mail names).
    Email(T),
}

/// Whether an offline owner is e-mailed: an owner who is online is not; one who is
/// offline is when `target` (where the e-mail goes, known only when `mail` is possible)
/// is set, else the reason `mail` gives.
pub fn owner_notice<T>(online: bool, mail: OwnerMail, target: Option<T>) -> OwnerNotice<T> {
    if online {
        return OwnerNotice::Nothing;
    }
    match (mail, target) {
        (OwnerMail::Possible, Some(target)) => OwnerNotice::Email(target),
        (mail, _) => mail
            .skipped()
            .map_or(OwnerNotice::Nothing, OwnerNotice::NotEmailed),
    }
}

/// What the e-mail to an offline owner is built from, as the store loaded it.
pub struct OwnerEmailFacts<'a> {
    /// The owner's address.
    pub to: &'a str,
    /// The contact's display name, if it has one.
    pub contact_name: Option<&'a str>,
    pub contact_id: &'a str,
    /// The channel as the e-mail names it.
    pub channel_name: &'a str,
    /// Base of the conversation link (`server.public_url`), if set.
    pub link_base: Option<&'a str>,
    pub conversation: &'a str,
    /// The message being e-mailed.
    pub message: &'a str,
    pub parts: &'a [Part],
    /// The conversation's first inbound message: its id and its parts as stored (JSON).
    pub first_id: &'a str,
    pub first_parts: &'a str,
}

/// The e-mail an offline owner gets for a new message: one per message, all of a
/// conversation in one mail thread under the subject of its opening message.
pub fn owner_email(facts: &OwnerEmailFacts<'_>) -> Email {
    let contact = facts.contact_name.unwrap_or(facts.contact_id);
    let link = facts
        .link_base
        .map(|b| format!("{b}/api/v1/conversations/{}", facts.conversation));
    // Stored by us as a JSON list of parts; a row that is not only loses the subject line.
    let first_parts: Vec<Part> = serde_json::from_str(facts.first_parts).unwrap_or_default();
    let (subject, text) = super::notify::owner_email(
        contact,
        facts.channel_name,
        super::notify::Opening {
            parts: &first_parts,
            is_this_message: facts.first_id == facts.message,
        },
        facts.parts,
        link.as_deref(),
    );
    Email {
        to: facts.to.to_owned(),
        subject,
        text,
        id: facts.message.to_owned(),
        thread: facts.conversation.to_owned(),
        reply_to: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TextPart;

    fn text(s: &str) -> Vec<Part> {
        vec![Part::Text(TextPart { text: s.to_owned() })]
    }

    #[test]
    fn a_created_conversation_is_new_and_routed() {
        assert!(Threaded::Created.is_new());
        assert!(Threaded::Created.routes());
    }

    #[test]
    fn a_reopened_conversation_is_routed_again_but_is_not_new() {
        assert!(!Threaded::Reopened.is_new());
        assert!(Threaded::Reopened.routes());
    }

    #[test]
    fn a_message_appended_to_an_open_conversation_is_not_routed() {
        assert!(!Threaded::Appended.is_new());
        assert!(!Threaded::Appended.routes());
    }

    #[test]
    fn a_hint_naming_an_open_conversation_appends_to_it() {
        assert_eq!(hinted(Some(("c1", true)), false), Some((Some("c1"), None)));
        assert_eq!(hinted(Some(("c1", true)), true), Some((Some("c1"), None)));
    }

    #[test]
    fn a_hint_naming_a_closed_conversation_reopens_it_only_where_the_channel_reopens() {
        assert_eq!(hinted(Some(("c1", false)), true), Some((None, Some("c1"))));
        assert_eq!(hinted(Some(("c1", false)), false), None);
    }

    #[test]
    fn a_hint_naming_nothing_found_threads_by_key() {
        assert_eq!(hinted::<&str>(None, true), None);
    }

    #[test]
    fn a_closed_conversation_is_looked_for_only_when_none_is_open_and_the_channel_reopens() {
        assert!(wants_closed(false, true));
        assert!(!wants_closed(true, true));
        assert!(!wants_closed(false, false));
    }

    #[test]
    fn a_known_contact_is_rewritten_only_when_the_message_brings_a_name_or_an_address() {
        assert!(!brings_details(None, None));
        assert!(brings_details(Some("Ann"), None));
        assert!(brings_details(None, Some("ann@example.com")));
    }

    #[test]
    fn the_message_created_event_names_the_message_its_contact_and_a_preview() {
        let id = MessageId::from_stored("msg_1".to_owned());
        let data = message_created(&id, true, Some("Ann"), &text("hello"));
        assert_eq!(
            data,
            json!({"message_id": "msg_1", "direction": "inbound", "new_conversation": true,
                "contact_name": "Ann", "preview": "hello"})
        );
        let data = message_created(&id, false, None, &text("hi"));
        assert_eq!(data["contact_name"], Value::Null);
        assert_eq!(data["new_conversation"], false);
    }

    #[test]
    fn a_message_reopening_its_conversation_is_routed_published_and_announced_as_not_new() {
        let id = MessageId::from_stored("msg_1".to_owned());
        let plan = plan_message(Threaded::Reopened, true, &id, Some("Ann"), &text("again"));
        assert!(plan.route);
        assert!(plan.publish);
        assert!(!plan.new_conversation);
        assert_eq!(plan.event["new_conversation"], false);
        assert_eq!(plan.event["preview"], "again");
    }

    #[test]
    fn a_message_appended_on_an_unlinked_channel_is_neither_routed_nor_published() {
        let id = MessageId::from_stored("msg_1".to_owned());
        let plan = plan_message(Threaded::Appended, false, &id, None, &text("more"));
        assert!(!plan.route);
        assert!(!plan.publish);
    }

    #[test]
    fn an_online_owner_is_not_mailed() {
        assert_eq!(
            owner_notice(true, OwnerMail::Possible, Some("a@x")),
            OwnerNotice::Nothing
        );
        assert_eq!(
            owner_notice::<&str>(true, OwnerMail::NoAddress, None),
            OwnerNotice::Nothing
        );
    }

    #[test]
    fn an_offline_owner_with_an_address_and_smtp_is_mailed() {
        assert_eq!(
            owner_notice(false, OwnerMail::Possible, Some("a@x")),
            OwnerNotice::Email("a@x")
        );
    }

    #[test]
    fn an_offline_owner_without_email_is_not_mailed_and_the_reason_says_so() {
        assert_eq!(
            owner_notice::<&str>(false, OwnerMail::NoAddress, None),
            OwnerNotice::NotEmailed("no_address")
        );
        assert_eq!(
            owner_notice::<&str>(false, OwnerMail::NoSmtp, None),
            OwnerNotice::NotEmailed("no_smtp")
        );
    }

    fn facts<'a>(message: &'a str, parts: &'a [Part]) -> OwnerEmailFacts<'a> {
        OwnerEmailFacts {
            to: "owner@example.com",
            contact_name: None,
            contact_id: "ctc_1",
            channel_name: "Support",
            link_base: Some("https://desk.example.com"),
            conversation: "conv_1",
            message,
            parts,
            first_id: "msg_1",
            first_parts: r#"[{"type":"text","text":"my order is late"}]"#,
        }
    }

    #[test]
    fn an_owner_email_threads_by_conversation_and_is_unique_per_message() {
        let parts = text("any news?");
        let email = owner_email(&facts("msg_2", &parts));
        assert_eq!(email.to, "owner@example.com");
        assert_eq!(email.id, "msg_2");
        assert_eq!(email.thread, "conv_1");
        assert_eq!(email.reply_to, None);
        assert!(
            email.subject.starts_with("Re: ctc_1 on Support: "),
            "{}",
            email.subject
        );
        assert!(
            email.subject.contains("my order is late"),
            "{}",
            email.subject
        );
        assert!(
            email
                .text
                .contains("https://desk.example.com/api/v1/conversations/conv_1"),
            "{}",
            email.text
        );
    }

    #[test]
    fn the_opening_message_email_does_not_answer_itself() {
        let parts = text("my order is late");
        let mut f = facts("msg_1", &parts);
        f.contact_name = Some("Ann");
        let email = owner_email(&f);
        assert!(
            email.subject.starts_with("Ann on Support: "),
            "{}",
            email.subject
        );
    }
}
