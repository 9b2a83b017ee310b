//! Web console sessions: one row per signed-in browser, keyed by the hash of its cookie.

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::store::{ConsoleSession, StoreError};

/// Stores a session and drops the expired ones, so the table holds only live sessions.
pub fn create(conn: &Connection, session: &ConsoleSession) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM console_sessions WHERE expires_at <= ?1")?
        .execute(params![session.created_at.timestamp_millis()])?;
    conn.prepare_cached(
        "INSERT INTO console_sessions (id_hash, token_sha256, csrf, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        session.id_hash,
        session.token_sha256,
        session.csrf,
        session.created_at.timestamp_millis(),
        session.expires_at.timestamp_millis(),
    ])?;
    Ok(())
}

/// The live session with this id hash.
pub fn find(
    conn: &Connection,
    id_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<ConsoleSession>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT token_sha256, csrf, created_at, expires_at FROM console_sessions
             WHERE id_hash = ?1 AND expires_at > ?2",
        )?
        .query_row(params![id_hash, now.timestamp_millis()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .optional()?;
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
pub fn delete(conn: &Connection, id_hash: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM console_sessions WHERE id_hash = ?1")?
        .execute(params![id_hash])?;
    Ok(())
}

fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}
