//! Fault tests on the real binary: a full disk under the store, SIGKILL crash loops and
//! the secrets that must never reach a log or a response. RELIABILITY.md says how to run
//! the long versions.

mod crash_loop;
mod daemon;
mod disk_full;
mod hubspot_publish_crash;
mod hubspot_reply_crash;
mod open_files;
mod power_cut;
mod secrets;
#[path = "../support/mod.rs"]
mod support;
