//! Files reps uploaded to attach to replies, kept until no message needs them.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::model::from_millis;
use crate::store::{StoreError, Upload};

/// Stores an upload, noting the newest message of the moment (see the migration).
pub fn save(conn: &Connection, upload: &Upload) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO uploads
            (id, token, filename, content_type, size, bytes, uploaded_by, after_seq, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,
                 (SELECT COALESCE(MAX(seq), 0) FROM messages), ?8)",
    )?
    .execute(params![
        upload.id,
        upload.token,
        upload.filename,
        upload.content_type,
        upload.bytes.len() as i64,
        upload.bytes,
        upload.uploaded_by,
        upload.created_at.timestamp_millis(),
    ])?;
    Ok(())
}

/// The upload with this token.
pub fn find(conn: &Connection, token: &str) -> Result<Option<Upload>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, filename, content_type, bytes, uploaded_by, created_at
             FROM uploads WHERE token = ?1",
        )?
        .query_row(params![token], |r| {
            Ok(Upload {
                id: r.get(0)?,
                token: token.to_owned(),
                filename: r.get(1)?,
                content_type: r.get(2)?,
                bytes: r.get(3)?,
                uploaded_by: r.get(4)?,
                created_at: from_millis(r.get(5)?),
            })
        })
        .optional()?)
}

/// Deletes the uploads older than `before` whose token no later message contains. The
/// token is 64 hex characters, so it is found in a message's parts only where its URL is.
pub fn purge(conn: &Connection, before: DateTime<Utc>) -> Result<u64, StoreError> {
    let purged = conn
        .prepare_cached(
            "DELETE FROM uploads WHERE created_at < ?1 AND NOT EXISTS (
                 SELECT 1 FROM messages m
                 WHERE m.seq > uploads.after_seq AND instr(m.parts, uploads.token) > 0)",
        )?
        .execute(params![before.timestamp_millis()])?;
    Ok(purged as u64)
}
