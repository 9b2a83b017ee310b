//! Non-SQL pieces both store dialects build the same way: JSON text for the columns that
//! hold it, and what a delivery-status change reports. Kept here so a dialect's file holds
//! only its statements and locking; nothing here touches a connection.

use serde_json::{Value, json};

use super::hubspot::ReportedStatus;
use super::{Detail, StoreError};
use crate::model::{DeliveryStatus, Part};

/// `value` as the JSON text a column stores.
pub fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Internal(Detail::caused_by("cannot encode JSON", e)))
}

/// A message's parts from the JSON text its `parts` column holds.
pub(crate) fn parts(text: &str) -> Result<Vec<Part>, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Internal(Detail::caused_by("stored parts are not valid", e)))
}

/// What a send or a publish to a contact with no identifier on the channel fails with: the
/// contact was merged away from it, or its identifier removed, after the message was written.
pub(crate) fn no_identifier(contact: &str, channel: &str) -> StoreError {
    StoreError::Invalid(format!(
        "contact {contact} has no identifier on channel {channel}"
    ))
}

/// What moving an outbound message to `status` reports: the `delivery.updated` event's
/// data, and the status HubSpot hears of from this change, if any. SENT is left out: it is
/// reported where the send is recorded (outbox), whatever status the send folds to.
pub(crate) fn delivery_update(
    message: &str,
    status: DeliveryStatus,
    error: Option<&str>,
) -> (Value, Option<ReportedStatus>) {
    let data = json!({"message_id": message, "status": status, "error": error});
    let reported = ReportedStatus::of(status)
        .filter(|r| matches!(r, ReportedStatus::Read | ReportedStatus::Failed));
    (data, reported)
}

/// The status an outbound message moves to on a report of `reported`, from its status as
/// stored; a stored value this version cannot read counts as `unknown`.
pub(crate) fn advance_stored(
    stored: &str,
    unknown: DeliveryStatus,
    reported: DeliveryStatus,
) -> Option<DeliveryStatus> {
    let current = DeliveryStatus::parse(stored).unwrap_or(unknown);
    crate::desk::delivery::advance(current, reported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_reported_with_its_error_and_to_hubspot() {
        let (data, reported) = delivery_update("msg_1", DeliveryStatus::Failed, Some("blocked"));
        assert_eq!(
            data,
            json!({"message_id": "msg_1", "status": "failed", "error": "blocked"})
        );
        assert_eq!(reported, Some(ReportedStatus::Failed));
    }

    #[test]
    fn read_reaches_hubspot_but_sent_and_delivered_do_not_from_here() {
        let reported = |s| delivery_update("msg_1", s, None).1;
        assert_eq!(reported(DeliveryStatus::Read), Some(ReportedStatus::Read));
        assert_eq!(reported(DeliveryStatus::Sent), None);
        assert_eq!(reported(DeliveryStatus::Delivered), None);
    }

    #[test]
    fn a_stored_status_this_version_cannot_read_advances_from_the_fallback() {
        use DeliveryStatus as D;
        assert_eq!(
            advance_stored("sent", D::Queued, D::Delivered),
            Some(D::Delivered)
        );
        assert_eq!(advance_stored("read", D::Queued, D::Delivered), None);
        assert_eq!(
            advance_stored("bogus", D::Queued, D::Sent),
            crate::desk::delivery::advance(D::Queued, D::Sent)
        );
    }
}
