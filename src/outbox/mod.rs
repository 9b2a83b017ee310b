//! The transactional outbox: jobs written in the same transaction as the change that
//! needs them, run by workers with leases, retried on a schedule, dead-lettered when the
//! schedule runs out (docs/ARCHITECTURE.md §4).

pub mod pacing;
pub mod retry;
pub mod worker;

pub use pacing::Pacer;
pub use worker::DeliveryWorker;
