//! HubSpot custom-channel mode (issue #18, docs/hubspot-guide.md): the bridge as a
//! HubSpot custom channel. Inbound messages of linked channels are published into
//! HubSpot's inbox / help desk; reps' replies come back through `POST /hubspot/webhook`
//! and leave through the channel's adapter.
//!
//! This module knows HubSpot's API (`client`, `wire`, `files`) and how our messages map
//! onto it; the store keeps which message crossed under which HubSpot id, and the outbox
//! runs the jobs.

pub mod client;
pub mod events;
pub mod files;
pub mod publish;
pub mod publisher;
pub mod replies;
pub mod setup;
pub mod signature;
pub mod wire;

pub use client::{HubspotClient, HubspotError};
