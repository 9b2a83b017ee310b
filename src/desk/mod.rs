//! The help-desk rules as pure functions over plain types: how messages thread into
//! conversations, how delivery status moves. No HTTP, no SQL: the store and the API
//! call these and persist or show what they decide.

pub mod analytics;
pub mod comments;
pub mod delivery;
pub mod edits;
pub mod inboxes;
pub mod ingest;
pub mod notify;
pub mod replies;
pub mod routing;
pub mod search;
pub mod snippets;
pub mod threading;
pub mod tickets;
