//! Web console sessions: one row per signed-in browser, keyed by the hash of its cookie.
//! Every replica reads the same table, so a session works on all of them.

use chrono::{DateTime, TimeZone, Utc};
use sqlx::PgConnection;

use crate::store::{ConsoleSession, StoreError};

/// Stores a session and drops the expired ones, so the table holds only live sessions.
pub async fn create(c: &mut PgConnection, session: &ConsoleSession) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
        .bind(session.created_at.timestamp_millis())
        .execute(&mut *c)
        .await?;
    sqlx::query(
        "INSERT INTO console_sessions (id_hash, token_sha256, csrf, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&session.id_hash)
    .bind(&session.token_sha256)
    .bind(&session.csrf)
    .bind(session.created_at.timestamp_millis())
    .bind(session.expires_at.timestamp_millis())
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// The live session with this id hash.
pub async fn find(
    c: &mut PgConnection,
    id_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<ConsoleSession>, StoreError> {
    let row: Option<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT token_sha256, csrf, created_at, expires_at FROM console_sessions
         WHERE id_hash = $1 AND expires_at > $2",
    )
    .bind(id_hash)
    .bind(now.timestamp_millis())
    .fetch_optional(&mut *c)
    .await?;
    Ok(
        row.map(|(token_sha256, csrf, created, expires)| ConsoleSession {
            id_hash: id_hash.to_owned(),
            token_sha256,
            csrf,
            created_at: millis(created),
            expires_at: millis(expires),
        }),
    )
}

/// Ends a session.
pub async fn delete(c: &mut PgConnection, id_hash: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(&mut *c)
        .await?;
    Ok(())
}

fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}
