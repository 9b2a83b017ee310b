//! The store conformance suite: every store-level rule, run against SQLite and against
//! PostgreSQL alike. Each test is an `async fn (store, backend)` in an area module, and
//! `conformance!` makes it two tests, `<area>::sqlite::<name>` and `<area>::postgres::<name>`.
//!
//! The PostgreSQL tests run on the database `CHANNEL_BRIDGE_TEST_PG` names
//! (`postgres://postgres@127.0.0.1:5432/test` in CI), each in a schema of its own that is
//! dropped afterwards; without the variable at build time they are ignored (build.rs).
//!
//! Tests use the `Store` trait only. Seeding the trait cannot do (timestamps in the past)
//! goes through `Backend::execute` with portable SQL.

#[macro_use]
mod support;

mod analytics;
mod concurrency;
mod console;
mod desk;
mod events;
mod hubspot;
mod hubspot_queues;
mod imap;
mod ingest;
mod lifecycle;
mod lists;
mod operations;
mod outbox;
mod reads;
mod replies;
mod routing;
mod seed;
mod threading;
mod tickets;
mod uploads;
