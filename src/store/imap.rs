//! The IMAP side of the store (src/imap/), as a sub-trait like `hubspot`: how far each
//! (email channel, folder) has been read, and which replica reads it now. Both stores
//! implement it (`sqlite/imap.rs`, `postgres/imap.rs`); `Store::imap()` hands it out.
//! Knows nothing of IMAP itself: a cursor is two numbers.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::store::StoreError;

/// Every message of the folder up to `last_uid` is stored, while the folder's
/// UIDVALIDITY is `uidvalidity` (a UID means nothing under another).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImapCursor {
    pub uidvalidity: u32,
    pub last_uid: u32,
}

/// Where IMAP inbound stands, and who reads which mailbox.
#[async_trait]
pub trait ImapStore: Send + Sync {
    /// The cursor of `folder` of `channel`, once it was first read.
    async fn imap_cursor(
        &self,
        channel: &str,
        folder: &str,
    ) -> Result<Option<ImapCursor>, StoreError>;

    /// Records `cursor` and answers the one now stored: under the same UIDVALIDITY the
    /// cursor only moves forward (a late, lower UID changes nothing); a new UIDVALIDITY
    /// replaces it.
    async fn advance_imap_cursor(
        &self,
        channel: &str,
        folder: &str,
        cursor: ImapCursor,
        now: DateTime<Utc>,
    ) -> Result<ImapCursor, StoreError>;

    /// Takes or renews the lease on reading `folder` of `channel` for `owner`, until
    /// `until`: false while another owner holds a lease that has not expired at `now`.
    async fn lease_mailbox(
        &self,
        channel: &str,
        folder: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Gives the lease back (a stopping poller), so another replica need not wait for it
    /// to expire; a lease `owner` does not hold is left alone.
    async fn release_mailbox(
        &self,
        channel: &str,
        folder: &str,
        owner: &str,
    ) -> Result<(), StoreError>;
}

/// The one upsert both stores run (`?n` placeholders become `$n` on PostgreSQL): a new
/// UIDVALIDITY replaces the cursor, the same one keeps the higher UID.
pub(crate) const ADVANCE_SQL: &str = "INSERT INTO imap_cursors
        (channel_id, folder, uidvalidity, last_uid, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT (channel_id, folder) DO UPDATE SET
        last_uid = CASE WHEN imap_cursors.uidvalidity = excluded.uidvalidity
                        AND imap_cursors.last_uid > excluded.last_uid
                   THEN imap_cursors.last_uid ELSE excluded.last_uid END,
        uidvalidity = excluded.uidvalidity,
        updated_at = excluded.updated_at
     RETURNING uidvalidity, last_uid";

/// Takes the lease when it is free, expired (at `?5`) or already the owner's.
pub(crate) const LEASE_SQL: &str = "INSERT INTO imap_cursors
        (channel_id, folder, lease_owner, lease_until, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT (channel_id, folder) DO UPDATE SET
        lease_owner = excluded.lease_owner,
        lease_until = excluded.lease_until
     WHERE imap_cursors.lease_owner IS NULL
        OR imap_cursors.lease_owner = excluded.lease_owner
        OR imap_cursors.lease_until <= excluded.updated_at";

pub(crate) const RELEASE_SQL: &str =
    "UPDATE imap_cursors SET lease_owner = NULL, lease_until = NULL
     WHERE channel_id = ?1 AND folder = ?2 AND lease_owner = ?3";

pub(crate) const CURSOR_SQL: &str = "SELECT uidvalidity, last_uid FROM imap_cursors
     WHERE channel_id = ?1 AND folder = ?2 AND uidvalidity IS NOT NULL";

/// A cursor read back from either store's integer columns.
pub(crate) fn cursor(uidvalidity: i64, last_uid: i64) -> Result<ImapCursor, StoreError> {
    let number = |n: i64| {
        u32::try_from(n).map_err(|_| StoreError::Internal("imap cursor out of range".into()))
    };
    Ok(ImapCursor {
        uidvalidity: number(uidvalidity)?,
        last_uid: number(last_uid)?,
    })
}

/// PostgreSQL's spelling of a statement written with `?n` placeholders.
pub(crate) fn dollar(sql: &str) -> String {
    sql.replace('?', "$")
}
