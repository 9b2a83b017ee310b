//! channel-bridge: connects messaging apps a help desk does not support to the help desk
//! as a custom channel. See docs/ARCHITECTURE.md for the flow; each module's header says what
//! it is for and what it must not know.

pub mod adapters;
pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod console;
pub mod desk;
pub mod error;
pub mod hubspot;
pub mod imap;
pub mod ingress;
pub mod model;
pub mod outbox;
pub mod reload;
pub mod request;
pub mod retention;
pub mod runtime;
pub mod secret;
pub mod server;
pub mod signals;
pub mod store;
pub mod telemetry;

/// The recorded platform requests the unit tests parse (shared with `tests/`).
#[cfg(test)]
#[path = "../tests/support/fixtures.rs"]
mod fixtures;

pub use app::App;
