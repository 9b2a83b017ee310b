//! What a delivery's outcome writes on its message, once the job has left the worker's
//! lease: sent (folding in the status reports that outran the send, and telling HubSpot
//! for a rep's HubSpot reply), retried, or failed. The lease and the job's own row are each
//! store's, since their queues differ (SQLite keeps job heads, PostgreSQL skips locked rows).

use std::future::Future;

use super::Tx;
use crate::desk;
use crate::model::{DeliveryStatus, MessageId};
use crate::store::hubspot::ReportedStatus;
use crate::store::{Job, JobOutcome, StoreError};

/// The reads and writes a delivery's outcome needs, in each store's SQL.
pub(crate) trait DeliveryTx: Tx {
    /// The status reports a platform sent about `platform_id` on `channel` before the send
    /// that gives a message that id had finished, oldest first; held (on PostgreSQL) so
    /// that each later report sees the send's result.
    fn early_reports(
        &mut self,
        channel: &str,
        platform_id: &str,
    ) -> impl Future<Output = Result<Vec<DeliveryStatus>, StoreError>>;

    /// Records an attempt on a message: sent (with the platform's id and note, clearing the
    /// last error), failed for now (`error`), or neither (a dead letter's last attempt).
    fn record_attempt(
        &mut self,
        message: &str,
        outcome: Attempt<'_>,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// Moves a message's delivery status forward and announces it.
    fn delivery_updated(
        &mut self,
        message: &str,
        status: DeliveryStatus,
        error: Option<&str>,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// When `message` is a rep's HubSpot reply, queues the report of its status to HubSpot.
    fn report_to_hubspot(
        &mut self,
        message: &str,
        status: ReportedStatus,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>>;
}

/// What one attempt left on the message.
pub(crate) enum Attempt<'a> {
    Sent {
        platform_message_id: Option<&'a str>,
        note: Option<&'a str>,
    },
    Failed(&'a str),
    Last,
}

/// Writes a finished delivery job's outcome on its message.
pub(crate) async fn record_outcome(
    tx: &mut impl DeliveryTx,
    job: &Job,
    message: &MessageId,
    outcome: &JobOutcome,
    now: i64,
) -> Result<(), StoreError> {
    let id = message.as_str();
    match outcome {
        JobOutcome::Sent {
            platform_message_id,
            note,
        } => {
            // Reports the platform sent before this send finished (it can be that fast)
            // are waiting; fold them in now.
            let reports = match platform_message_id {
                Some(pid) => tx.early_reports(&job.channel_id, pid).await?,
                None => Vec::new(),
            };
            let status = desk::delivery::fold(DeliveryStatus::Sent, reports);
            let sent = Attempt::Sent {
                platform_message_id: platform_message_id.as_deref(),
                note: note.as_deref(),
            };
            tx.record_attempt(id, sent).await?;
            // A rep's HubSpot reply: HubSpot hears SENT (and READ after it, when the
            // platform already said so).
            tx.report_to_hubspot(id, ReportedStatus::Sent, now).await?;
            tx.delivery_updated(id, status, None, now).await
        }
        JobOutcome::Retry { error, .. } => tx.record_attempt(id, Attempt::Failed(error)).await,
        JobOutcome::Dead { error } => {
            tx.record_attempt(id, Attempt::Last).await?;
            let failed = DeliveryStatus::Failed;
            tx.delivery_updated(id, failed, Some(error), now).await
        }
        JobOutcome::Released | JobOutcome::Park { .. } => Ok(()),
    }
}
