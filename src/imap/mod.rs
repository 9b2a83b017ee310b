//! IMAP inbound for `email` channels (issue #20).
pub mod config;
pub use config::ImapConfig;
