//! Integration tests: the real app on 127.0.0.1:0, wiremock as the in-house app, one
//! SQLite file per test. One test binary (modules below) keeps link time down.

mod access;
mod clients;
mod comments;
mod contacts;
mod delivery;
mod desk;
mod dovecot;
mod email_inbound;
mod errors;
mod events;
mod harness;
mod hostile;
mod hubspot_failures;
mod hubspot_platforms;
mod hubspot_publish;
mod hubspot_setup;
mod hubspot_webhook;
mod imap;
mod inboxes;
mod ingest;
mod instagram;
mod line;
mod media;
mod messenger;
mod openapi;
mod outbound_faults;
mod reload;
mod routing;
mod slack;
mod smtp;
mod snippets;
mod store_faults;
#[path = "../support/mod.rs"]
mod support;
mod telegram;
mod twilio;
mod uploads;
mod viber;
mod whatsapp;
