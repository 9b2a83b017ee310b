//! [`ImapStore`] on SQLite: cursors and mailbox leases, through the writer.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::store::StoreError;
use crate::store::imap::{
    ADVANCE_SQL, CURSOR_SQL, ImapCursor, ImapStore, LEASE_SQL, RELEASE_SQL, cursor,
};

#[async_trait]
impl ImapStore for SqliteStore {
    async fn imap_cursor(
        &self,
        channel: &str,
        folder: &str,
    ) -> Result<Option<ImapCursor>, StoreError> {
        let (channel, folder) = (channel.to_owned(), folder.to_owned());
        self.readers
            .read(move |conn| {
                let row: Option<(i64, i64)> = conn
                    .prepare_cached(CURSOR_SQL)?
                    .query_row(params![channel, folder], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                row.map(|(v, u)| cursor(v, u)).transpose()
            })
            .await
    }

    async fn advance_imap_cursor(
        &self,
        channel: &str,
        folder: &str,
        new: ImapCursor,
        now: DateTime<Utc>,
    ) -> Result<ImapCursor, StoreError> {
        let (channel, folder) = (channel.to_owned(), folder.to_owned());
        self.writer
            .write(move |conn| {
                let (v, u): (i64, i64) = conn.prepare_cached(ADVANCE_SQL)?.query_row(
                    params![
                        channel,
                        folder,
                        new.uidvalidity,
                        new.last_uid,
                        now.timestamp_millis()
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                cursor(v, u)
            })
            .await
    }

    async fn lease_mailbox(
        &self,
        channel: &str,
        folder: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (channel, folder, owner) = (channel.to_owned(), folder.to_owned(), owner.to_owned());
        self.writer
            .write(move |conn| {
                let taken = conn.prepare_cached(LEASE_SQL)?.execute(params![
                    channel,
                    folder,
                    owner,
                    until.timestamp_millis(),
                    now.timestamp_millis()
                ])?;
                Ok(taken == 1)
            })
            .await
    }

    async fn release_mailbox(
        &self,
        channel: &str,
        folder: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        let (channel, folder, owner) = (channel.to_owned(), folder.to_owned(), owner.to_owned());
        self.writer
            .write(move |conn| {
                conn.prepare_cached(RELEASE_SQL)?
                    .execute(params![channel, folder, owner])?;
                Ok(())
            })
            .await
    }
}
