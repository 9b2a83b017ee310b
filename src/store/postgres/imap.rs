//! [`ImapStore`] on PostgreSQL: cursors and mailbox leases. The lease is a row, not an
//! advisory lock: it needs no connection held for as long as a replica reads, and a
//! replica that dies leaves a lease that simply expires.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use std::time::Duration;

use super::{ATTEMPTS, PgStore};
use crate::store::StoreError;
use crate::store::imap::{
    ADVANCE_SQL, CURSOR_SQL, ImapCursor, ImapStore, LEASE_SQL, RELEASE_SQL, cursor, dollar,
};

async fn find(
    c: &mut PgConnection,
    channel: &str,
    folder: &str,
) -> Result<Option<ImapCursor>, StoreError> {
    let row: Option<(i64, i64)> = sqlx::query_as(&dollar(CURSOR_SQL))
        .bind(channel)
        .bind(folder)
        .fetch_optional(&mut *c)
        .await?;
    row.map(|(v, u)| cursor(v, u)).transpose()
}

async fn advance(
    c: &mut PgConnection,
    channel: &str,
    folder: &str,
    new: ImapCursor,
    now: DateTime<Utc>,
) -> Result<ImapCursor, StoreError> {
    let (v, u): (i64, i64) = sqlx::query_as(&dollar(ADVANCE_SQL))
        .bind(channel)
        .bind(folder)
        .bind(i64::from(new.uidvalidity))
        .bind(i64::from(new.last_uid))
        .bind(now.timestamp_millis())
        .fetch_one(&mut *c)
        .await?;
    cursor(v, u)
}

async fn lease(
    c: &mut PgConnection,
    (channel, folder, owner): (&str, &str, &str),
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(&dollar(LEASE_SQL))
        .bind(channel)
        .bind(folder)
        .bind(owner)
        .bind(until.timestamp_millis())
        .bind(now.timestamp_millis())
        .execute(&mut *c)
        .await?;
    Ok(done.rows_affected() == 1)
}

async fn release(
    c: &mut PgConnection,
    channel: &str,
    folder: &str,
    owner: &str,
) -> Result<(), StoreError> {
    sqlx::query(&dollar(RELEASE_SQL))
        .bind(channel)
        .bind(folder)
        .bind(owner)
        .execute(&mut *c)
        .await?;
    Ok(())
}

#[async_trait]
impl ImapStore for PgStore {
    async fn imap_cursor(
        &self,
        channel: &str,
        folder: &str,
    ) -> Result<Option<ImapCursor>, StoreError> {
        read!(self, |c| find(c, channel, folder))
    }

    async fn advance_imap_cursor(
        &self,
        channel: &str,
        folder: &str,
        new: ImapCursor,
        now: DateTime<Utc>,
    ) -> Result<ImapCursor, StoreError> {
        transaction!(self, |c| advance(c, channel, folder, new, now))
    }

    async fn lease_mailbox(
        &self,
        channel: &str,
        folder: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        transaction!(self, |c| lease(c, (channel, folder, owner), now, until))
    }

    async fn release_mailbox(
        &self,
        channel: &str,
        folder: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        transaction!(self, |c| release(c, channel, folder, owner))
    }
}
