//! IMAP inbound's cursors and mailbox leases: a cursor per (channel, folder) that only
//! moves forward within a UIDVALIDITY and starts over under a new one; one reader per
//! mailbox at a time, taken over when its lease expires.

use std::sync::Arc;

use channel_bridge::store::Store;
use channel_bridge::store::imap::ImapCursor;
use chrono::{Duration, Utc};

use crate::support::*;

conformance!(
    a_cursor_moves_forward_only_within_one_uidvalidity,
    a_new_uidvalidity_replaces_the_cursor,
    cursors_are_kept_per_channel_and_folder,
    one_owner_reads_a_mailbox_until_its_lease_expires_or_is_released,
    a_lease_alone_records_no_cursor,
);

fn at(uidvalidity: u32, last_uid: u32) -> ImapCursor {
    ImapCursor {
        uidvalidity,
        last_uid,
    }
}

async fn a_cursor_moves_forward_only_within_one_uidvalidity(store: Arc<dyn Store>, _: &Backend) {
    let imap = store.imap();
    let now = Utc::now();
    assert_eq!(imap.imap_cursor("mail", "INBOX").await.unwrap(), None);
    assert_eq!(
        imap.advance_imap_cursor("mail", "INBOX", at(7, 3), now)
            .await
            .unwrap(),
        at(7, 3)
    );
    assert_eq!(
        imap.advance_imap_cursor("mail", "INBOX", at(7, 9), now)
            .await
            .unwrap(),
        at(7, 9)
    );
    // A late commit of an earlier message does not take the cursor back.
    assert_eq!(
        imap.advance_imap_cursor("mail", "INBOX", at(7, 5), now)
            .await
            .unwrap(),
        at(7, 9)
    );
    assert_eq!(
        imap.imap_cursor("mail", "INBOX").await.unwrap(),
        Some(at(7, 9))
    );
}

async fn a_new_uidvalidity_replaces_the_cursor(store: Arc<dyn Store>, _: &Backend) {
    let imap = store.imap();
    let now = Utc::now();
    imap.advance_imap_cursor("mail", "INBOX", at(7, 40), now)
        .await
        .unwrap();
    // The folder was recreated: its UIDs start again, lower than before.
    assert_eq!(
        imap.advance_imap_cursor("mail", "INBOX", at(8, 2), now)
            .await
            .unwrap(),
        at(8, 2)
    );
    assert_eq!(
        imap.imap_cursor("mail", "INBOX").await.unwrap(),
        Some(at(8, 2))
    );
    // UIDVALIDITY is 32 bits unsigned: the top of the range round-trips.
    imap.advance_imap_cursor("mail", "INBOX", at(u32::MAX, u32::MAX), now)
        .await
        .unwrap();
    assert_eq!(
        imap.imap_cursor("mail", "INBOX").await.unwrap(),
        Some(at(u32::MAX, u32::MAX))
    );
}

async fn cursors_are_kept_per_channel_and_folder(store: Arc<dyn Store>, _: &Backend) {
    let imap = store.imap();
    let now = Utc::now();
    imap.advance_imap_cursor("mail", "INBOX", at(1, 10), now)
        .await
        .unwrap();
    imap.advance_imap_cursor("mail", "Support", at(2, 20), now)
        .await
        .unwrap();
    imap.advance_imap_cursor("sales", "INBOX", at(3, 30), now)
        .await
        .unwrap();
    assert_eq!(
        imap.imap_cursor("mail", "INBOX").await.unwrap(),
        Some(at(1, 10))
    );
    assert_eq!(
        imap.imap_cursor("mail", "Support").await.unwrap(),
        Some(at(2, 20))
    );
    assert_eq!(
        imap.imap_cursor("sales", "INBOX").await.unwrap(),
        Some(at(3, 30))
    );
    assert_eq!(imap.imap_cursor("sales", "Support").await.unwrap(), None);
}

async fn one_owner_reads_a_mailbox_until_its_lease_expires_or_is_released(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let imap = store.imap();
    let now = Utc::now();
    let later = now + Duration::seconds(30);
    assert!(
        imap.lease_mailbox("mail", "INBOX", "a", now, later)
            .await
            .unwrap()
    );
    assert!(
        !imap
            .lease_mailbox("mail", "INBOX", "b", now, later)
            .await
            .unwrap(),
        "b waits while a holds it"
    );
    // The owner renews; another folder is another lease.
    assert!(
        imap.lease_mailbox("mail", "INBOX", "a", now, later)
            .await
            .unwrap()
    );
    assert!(
        imap.lease_mailbox("mail", "Support", "b", now, later)
            .await
            .unwrap()
    );
    // Expired (a's replica died): b takes it over, and then a cannot.
    assert!(
        imap.lease_mailbox("mail", "INBOX", "b", later, later + Duration::seconds(30))
            .await
            .unwrap()
    );
    assert!(
        !imap
            .lease_mailbox("mail", "INBOX", "a", later, later + Duration::seconds(30))
            .await
            .unwrap()
    );
    // Only the owner's release counts; after it, anyone may take the lease at once.
    imap.release_mailbox("mail", "INBOX", "a").await.unwrap();
    assert!(
        !imap
            .lease_mailbox("mail", "INBOX", "c", later, later + Duration::seconds(30))
            .await
            .unwrap()
    );
    imap.release_mailbox("mail", "INBOX", "b").await.unwrap();
    assert!(
        imap.lease_mailbox("mail", "INBOX", "c", later, later + Duration::seconds(30))
            .await
            .unwrap()
    );
}

async fn a_lease_alone_records_no_cursor(store: Arc<dyn Store>, _: &Backend) {
    let imap = store.imap();
    let now = Utc::now();
    imap.lease_mailbox("mail", "INBOX", "a", now, now + Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(imap.imap_cursor("mail", "INBOX").await.unwrap(), None);
    // A cursor saved under a lease keeps the lease.
    imap.advance_imap_cursor("mail", "INBOX", at(5, 1), now)
        .await
        .unwrap();
    assert!(
        !imap
            .lease_mailbox("mail", "INBOX", "b", now, now + Duration::seconds(30))
            .await
            .unwrap()
    );
}
