//! Integration tests: the real app on 127.0.0.1:0, wiremock as the in-house app, one
//! SQLite file per test. One test binary (modules below) keeps link time down.

mod delivery;
mod desk;
mod errors;
mod harness;
mod ingest;
mod media;
mod openapi;
mod reload;
