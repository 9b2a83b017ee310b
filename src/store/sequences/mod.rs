//! The help-desk sequences that change several rows at once, written once for both stores
//! (docs/ARCHITECTURE.md §2). A sequence is an `async fn` over a transaction that
//! implements this module's step traits: each store writes the steps in its own SQL and
//! locking, and the order of the steps, what each one's outcome leads to, and which rule
//! of `desk` decides it are here, once.
//!
//! PostgreSQL runs a sequence on a `PgConnection` inside its transaction. SQLite runs it on
//! the writer thread over [`crate::store::sqlite::WriterTx`], whose steps are plain
//! rusqlite calls that never wait: [`ready`] polls the sequence once and it is done.

pub(crate) mod comments;
pub(crate) mod contacts;
pub(crate) mod hubspot;
pub(crate) mod ingest;
pub(crate) mod outbox;
pub(crate) mod replies;
pub(crate) mod routing;
pub(crate) mod tickets;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use serde_json::Value;

use super::{Actor, StoreError};
use crate::desk::tickets::AuditRecord;

/// One row of the audit trail, as a sequence records it.
pub(crate) struct AuditRow<'a> {
    pub ticket: &'a str,
    pub entity: &'a str,
    pub entity_id: &'a str,
    pub action: &'a str,
    pub actor: &'a Actor,
    pub changes: Value,
    pub at: i64,
}

impl<'a> AuditRow<'a> {
    /// A row about `ticket` itself, saying what `record` says.
    pub fn ticket(ticket: &'a str, record: AuditRecord, actor: &'a Actor, at: i64) -> Self {
        Self::about(ticket, ("ticket", ticket), record, actor, at)
    }

    /// A row about `conversation`, one of `ticket`'s, saying what `record` says.
    pub fn conversation(
        ticket: &'a str,
        conversation: &'a str,
        record: AuditRecord,
        actor: &'a Actor,
        at: i64,
    ) -> Self {
        Self::about(ticket, ("conversation", conversation), record, actor, at)
    }

    fn about(
        ticket: &'a str,
        (entity, entity_id): (&'a str, &'a str),
        record: AuditRecord,
        actor: &'a Actor,
        at: i64,
    ) -> Self {
        Self {
            ticket,
            entity,
            entity_id,
            action: record.action,
            actor,
            changes: record.changes,
            at,
        }
    }
}

/// An audit record of `action` with its `changes`.
pub(crate) fn audit_record(action: &'static str, changes: Value) -> AuditRecord {
    AuditRecord { action, changes }
}

/// The steps every sequence may take, whatever it changes.
pub(crate) trait Tx {
    /// Appends an event to the stream (`kind` about `conversation`, with `data`).
    fn emit(
        &mut self,
        kind: &str,
        conversation: &str,
        data: Value,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// Records one change in the audit trail.
    fn audit(&mut self, row: AuditRow<'_>) -> impl Future<Output = Result<(), StoreError>>;
}

/// Runs a sequence whose steps never wait (SQLite's, on the writer thread) to its end.
pub(crate) fn ready<T>(
    sequence: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match pin!(sequence).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        // Only a step that awaits real I/O can get here, and SQLite's steps have none.
        Poll::Pending => Err(StoreError::Internal(
            "a store sequence waited on the SQLite writer thread".into(),
        )),
    }
}
