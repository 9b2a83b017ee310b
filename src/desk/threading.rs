//! Which conversation an inbound message joins (docs/ARCHITECTURE.md §11).

use crate::config::Threading;

/// The key that identifies a conversation within a channel: the contact (per_contact) or
/// the platform's thread (platform_thread; a message without one falls back to its contact).
pub fn thread_key(threading: Threading, contact_id: &str, platform_thread: Option<&str>) -> String {
    match (threading, platform_thread) {
        (Threading::PlatformThread, Some(thread)) => format!("thread:{thread}"),
        _ => format!("contact:{contact_id}"),
    }
}

/// What to do with an inbound message, given the conversations its thread key already has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThreadDecision<C> {
    /// Add it to the open conversation.
    Append(C),
    /// Reopen the most recent closed conversation and add it there.
    Reopen(C),
    /// Start a new conversation (with a new ticket).
    Create,
}

/// One open conversation per thread key; after it closes, `reopen` decides between
/// reopening it and starting afresh.
pub fn decide<C>(open: Option<C>, latest_closed: Option<C>, reopen: bool) -> ThreadDecision<C> {
    match (open, latest_closed) {
        (Some(conversation), _) => ThreadDecision::Append(conversation),
        (None, Some(conversation)) if reopen => ThreadDecision::Reopen(conversation),
        _ => ThreadDecision::Create,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_contact_threading_ignores_the_platform_thread() {
        assert_eq!(
            thread_key(Threading::PerContact, "ctc_1", Some("t9")),
            "contact:ctc_1"
        );
    }

    #[test]
    fn platform_threading_keys_by_thread_and_falls_back_to_the_contact() {
        assert_eq!(
            thread_key(Threading::PlatformThread, "ctc_1", Some("t9")),
            "thread:t9"
        );
        assert_eq!(
            thread_key(Threading::PlatformThread, "ctc_1", None),
            "contact:ctc_1"
        );
    }

    #[test]
    fn threading_decisions() {
        use ThreadDecision::*;
        let cases = [
            (Some(1), None, true, Append(1)),
            (Some(1), Some(2), false, Append(1)),
            (None, Some(2), true, Reopen(2)),
            (None, Some(2), false, Create),
            (None, None, true, Create),
        ];
        for (open, closed, reopen, expected) in cases {
            assert_eq!(
                decide(open, closed, reopen),
                expected,
                "{open:?} {closed:?} {reopen}"
            );
        }
    }
}
