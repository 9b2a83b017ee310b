//! Prefixed, sortable identifiers (`msg_…`, `conv_…`): a reader of a log line or an API
//! response knows what an id names, and ids sort by creation time.

use std::fmt;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use ulid::Generator;

/// One monotonic generator per process, so ids made in the same millisecond still sort
/// in the order they were made.
static GENERATOR: Mutex<Option<Generator>> = Mutex::new(None);

pub(crate) fn next_ulid() -> ulid::Ulid {
    let mut guard = GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let generator = guard.get_or_insert_with(Generator::new);
    // Overflow needs 2^80 ids in one millisecond; fall back to a fresh random id then.
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with, including the underscore.
            pub const PREFIX: &'static str = concat!($prefix, "_");

            /// A new id, greater than every id made before it by this process.
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(format!("{}{}", Self::PREFIX, next_ulid()))
            }

            /// Accepts a string only if it has this kind's prefix and a ULID after it.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix(Self::PREFIX)?;
                ulid::Ulid::from_string(rest).ok()?;
                Some(Self(s.to_owned()))
            }

            /// Wraps a value read back from our own store, which only ever holds valid ids.
            pub fn from_stored(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        /// In the OpenAPI document: a string with this kind's prefix and a ULID.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some(concat!("`", $prefix, "_` and a ULID.")))
                    .pattern(Some(concat!("^", $prefix, "_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")))
                    .examples([concat!($prefix, "_01KAK3W9Q4M2N5P7S9T0V1W2XY")])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// A stored message, inbound or outbound.
    MessageId, "msg");
prefixed_id!(
    /// A conversation: one thread of messages with one contact on one channel.
    ConversationId, "conv");
prefixed_id!(
    /// A ticket: the unit of work a conversation belongs to.
    TicketId, "tkt");
prefixed_id!(
    /// A contact: the person on the platform side.
    ContactId, "ctc");
prefixed_id!(
    /// A job in the outbox (a delivery, an email, …).
    JobId, "job");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_in_a_row_sort_in_creation_order() {
        let ids: Vec<MessageId> = (0..1000).map(|_| MessageId::new()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn parse_requires_the_right_prefix_and_a_ulid() {
        let id = ConversationId::new();
        assert_eq!(ConversationId::parse(id.as_str()), Some(id.clone()));
        assert!(MessageId::parse(id.as_str()).is_none());
        assert!(ConversationId::parse("conv_not-a-ulid").is_none());
        assert!(ConversationId::parse("").is_none());
    }

    #[test]
    fn the_examples_in_the_openapi_document_parse() {
        fn example<T: utoipa::PartialSchema>() -> String {
            let schema = serde_json::to_value(T::schema()).unwrap();
            schema["examples"][0]
                .as_str()
                .expect("an example")
                .to_owned()
        }
        assert!(MessageId::parse(&example::<MessageId>()).is_some());
        assert!(ConversationId::parse(&example::<ConversationId>()).is_some());
        assert!(TicketId::parse(&example::<TicketId>()).is_some());
        assert!(ContactId::parse(&example::<ContactId>()).is_some());
        assert!(JobId::parse(&example::<JobId>()).is_some());
    }
}
