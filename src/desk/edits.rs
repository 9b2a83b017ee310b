//! Whether a contact's edit changes a message: platforms redeliver webhooks, deliver
//! them out of order, and a signed edit can be replayed, so an edit is applied once and
//! never takes a message back to an earlier version. Knows nothing of how versions are
//! stored.

use crate::model::{EditOrder, Part};

/// One version of a message: its parts, and the order of the edit that produced it
/// (`None` for what the message first said, and for edits whose platform gave no order).
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    pub order: Option<EditOrder>,
    pub parts: Vec<Part>,
}

/// What to do with an incoming edit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EditVerdict {
    /// It is newer than what the message says: apply it, keeping the current version.
    Apply,
    /// It was applied before (a redelivery or a replay), or it would change nothing.
    Duplicate,
    /// The platform ordered it before the edit the message already shows: it is
    /// recorded as stale and not applied.
    Stale,
}

/// Judges an edit against the message's versions, oldest first (the last is what the
/// message says now).
///
/// An edit whose order a version already carries, with that version's parts, is that
/// edit again. One ordered before the current version is stale. Two different edits with
/// the same order (a platform whose clock ticks in seconds) both apply, in arrival order.
/// An edit without an order can only be told a duplicate when it changes nothing.
pub fn judge(versions: &[Version], order: Option<&EditOrder>, parts: &[Part]) -> EditVerdict {
    if let Some(order) = order
        && versions
            .iter()
            .any(|v| v.order.as_ref() == Some(order) && v.parts == parts)
    {
        return EditVerdict::Duplicate;
    }
    let current = versions.last();
    if let (Some(order), Some(shown)) = (order, current.and_then(|v| v.order.as_ref()))
        && order < shown
    {
        return EditVerdict::Stale;
    }
    if current.is_some_and(|v| v.parts == parts) {
        return EditVerdict::Duplicate;
    }
    EditVerdict::Apply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TextPart;
    use proptest::prelude::*;

    fn text(s: &str) -> Vec<Part> {
        vec![Part::Text(TextPart { text: s.into() })]
    }

    fn order(keys: &[i64]) -> Option<EditOrder> {
        Some(EditOrder(keys.to_vec()))
    }

    fn version(keys: Option<&[i64]>, s: &str) -> Version {
        Version {
            order: keys.and_then(order),
            parts: text(s),
        }
    }

    /// (rule, the message's versions, the edit's order, its text, the verdict)
    type Case = (
        &'static str,
        Vec<Version>,
        Option<EditOrder>,
        &'static str,
        EditVerdict,
    );

    #[test]
    fn edits_apply_once_in_the_platforms_order_and_never_backwards() {
        use EditVerdict::*;
        let original = version(None, "helo");
        let first = version(Some(&[100, 1]), "hello");
        let second = version(Some(&[200, 2]), "hello!");
        let cases: Vec<Case> = vec![
            (
                "a first edit applies",
                vec![original.clone()],
                order(&[100, 1]),
                "hello",
                Apply,
            ),
            (
                "the same edit again is a duplicate",
                vec![original.clone(), first.clone()],
                order(&[100, 1]),
                "hello",
                Duplicate,
            ),
            (
                "a newer edit applies",
                vec![original.clone(), first.clone()],
                order(&[200, 2]),
                "hello!",
                Apply,
            ),
            (
                "a replay of an earlier edit after a later one is a duplicate",
                vec![original.clone(), first.clone(), second.clone()],
                order(&[100, 1]),
                "hello",
                Duplicate,
            ),
            (
                "an edit ordered before the shown one is stale",
                vec![original.clone(), second.clone()],
                order(&[100, 1]),
                "hello",
                Stale,
            ),
            (
                "the tie-breaker orders edits of the same second",
                vec![original.clone(), version(Some(&[100, 2]), "b")],
                order(&[100, 1]),
                "a",
                Stale,
            ),
            (
                "an edit back to an earlier text, ordered later, applies",
                vec![original.clone(), first.clone()],
                order(&[200, 2]),
                "helo",
                Apply,
            ),
            (
                "two different edits with one order both apply",
                vec![original.clone(), version(Some(&[100]), "a")],
                order(&[100]),
                "b",
                Apply,
            ),
            (
                "after two edits with one order, a replay of the first is a duplicate",
                vec![
                    original.clone(),
                    version(Some(&[100]), "a"),
                    version(Some(&[100]), "b"),
                ],
                order(&[100]),
                "a",
                Duplicate,
            ),
            (
                "an unordered edit that changes nothing is a duplicate",
                vec![original.clone(), first.clone()],
                None,
                "hello",
                Duplicate,
            ),
            (
                "an unordered edit that changes something applies",
                vec![original.clone(), first.clone()],
                None,
                "hi",
                Apply,
            ),
            (
                "an ordered edit after unordered ones applies",
                vec![original.clone(), version(None, "x")],
                order(&[1]),
                "y",
                Apply,
            ),
            (
                "an ordered edit repeating the current text is a duplicate",
                vec![original.clone(), first.clone()],
                order(&[300, 3]),
                "hello",
                Duplicate,
            ),
        ];
        for (rule, versions, order, parts, expected) in cases {
            assert_eq!(
                judge(&versions, order.as_ref(), &text(parts)),
                expected,
                "{rule}"
            );
        }
    }

    proptest! {
        /// However the platform's edits arrive (any order, each any number of times), the
        /// message ends up saying the last edit the platform ordered, and its history
        /// never holds more versions than there were distinct edits.
        #[test]
        fn any_delivery_of_edits_ends_at_the_last_one_the_platform_ordered(
            deliveries in prop::collection::vec(0usize..6, 1..40),
        ) {
            // Edit n says "v{n}" and is ordered n.
            let mut versions = vec![version(None, "original")];
            for &n in &deliveries {
                let parts = text(&format!("v{n}"));
                let order = EditOrder(vec![n as i64]);
                if judge(&versions, Some(&order), &parts) == EditVerdict::Apply {
                    versions.push(Version { order: Some(order), parts });
                }
            }
            let last = deliveries.iter().max().copied().unwrap_or_default();
            prop_assert_eq!(&versions.last().unwrap().parts, &text(&format!("v{last}")));
            let distinct: std::collections::BTreeSet<_> = deliveries.iter().collect();
            prop_assert!(versions.len() <= distinct.len() + 1);
            let orders: Vec<_> = versions.iter().filter_map(|v| v.order.clone()).collect();
            prop_assert!(orders.windows(2).all(|w| w[0] < w[1]), "applied out of order");
        }
    }
}
