//! Delivery status only moves forward: queued → sent → delivered → read, and failed is
//! final. Platforms report out of order (a `read` can overtake its `delivered`), so a late
//! report never downgrades what a rep already sees.

use crate::model::DeliveryStatus;

fn rank(status: DeliveryStatus) -> u8 {
    match status {
        DeliveryStatus::Received => 0,
        DeliveryStatus::Queued => 1,
        DeliveryStatus::Sent => 2,
        DeliveryStatus::Delivered => 3,
        DeliveryStatus::Read => 4,
        DeliveryStatus::Failed => 5,
        DeliveryStatus::Internal => 6,
    }
}

/// The status after `reported` arrives for a message now at `current`, or `None` if the
/// report changes nothing.
pub fn advance(current: DeliveryStatus, reported: DeliveryStatus) -> Option<DeliveryStatus> {
    use DeliveryStatus::*;
    match (current, reported) {
        // Inbound messages and comments have no delivery to track; a failed message stays
        // failed.
        (Received | Internal, _) | (Failed, _) => None,
        (_, Received | Queued | Internal) => None,
        // A message the contact received cannot fail to reach them any more.
        (Delivered | Read, Failed) => None,
        (Queued | Sent, Failed) => Some(Failed),
        _ if rank(reported) > rank(current) => Some(reported),
        _ => None,
    }
}

/// Folds several reports (in any order) into the status they add up to.
pub fn fold(
    current: DeliveryStatus,
    reports: impl IntoIterator<Item = DeliveryStatus>,
) -> DeliveryStatus {
    reports.into_iter().fold(current, |status, report| {
        advance(status, report).unwrap_or(status)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeliveryStatus::*;

    #[test]
    fn status_moves_forward_only() {
        let cases = [
            (Queued, Sent, Some(Sent)),
            (Sent, Delivered, Some(Delivered)),
            (Sent, Read, Some(Read)),
            (Delivered, Read, Some(Read)),
            (Read, Delivered, None),
            (Delivered, Sent, None),
            (Sent, Sent, None),
            (Queued, Failed, Some(Failed)),
            (Sent, Failed, Some(Failed)),
            (Delivered, Failed, None),
            (Failed, Read, None),
            (Failed, Sent, None),
            (Received, Read, None),
            (Sent, Queued, None),
            (Internal, Read, None),
            (Sent, Internal, None),
        ];
        for (current, reported, expected) in cases {
            assert_eq!(
                advance(current, reported),
                expected,
                "{current:?} + {reported:?}"
            );
        }
    }

    #[test]
    fn reports_in_any_order_add_up_to_the_furthest() {
        assert_eq!(fold(Queued, [Read, Delivered, Sent]), Read);
        assert_eq!(fold(Sent, [Delivered, Failed]), Delivered);
        assert_eq!(fold(Sent, [Failed, Read]), Failed);
    }
}
