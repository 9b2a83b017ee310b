//! Files reps uploaded to attach to replies, kept until no message needs them.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::model::from_millis;
use crate::store::{StoreError, Upload};

/// Stores an upload, noting the newest message of the moment (see the migration). A reply
/// that uses it takes its sequence number after this commits, so a higher one.
pub async fn save(c: &mut PgConnection, upload: &Upload) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO uploads
            (id, token, filename, content_type, size, bytes, uploaded_by, after_seq, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7,
                 (SELECT COALESCE(MAX(seq), 0) FROM messages), $8)",
    )
    .bind(&upload.id)
    .bind(&upload.token)
    .bind(&upload.filename)
    .bind(&upload.content_type)
    .bind(upload.bytes.len() as i64)
    .bind(&upload.bytes)
    .bind(&upload.uploaded_by)
    .bind(upload.created_at.timestamp_millis())
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// The upload with this token.
pub async fn find(c: &mut PgConnection, token: &str) -> Result<Option<Upload>, StoreError> {
    type Row = (String, Option<String>, String, Vec<u8>, String, i64);
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, filename, content_type, bytes, uploaded_by, created_at
         FROM uploads WHERE token = $1",
    )
    .bind(token)
    .fetch_optional(&mut *c)
    .await?;
    Ok(row.map(
        |(id, filename, content_type, bytes, uploaded_by, created)| Upload {
            id,
            token: token.to_owned(),
            filename,
            content_type,
            bytes,
            uploaded_by,
            created_at: from_millis(created),
        },
    ))
}

/// Deletes the uploads older than `before` whose token no later message contains. The
/// token is 64 hex characters, so it is found in a message's parts only where its URL is.
pub async fn purge(c: &mut PgConnection, before: DateTime<Utc>) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "DELETE FROM uploads u WHERE u.created_at < $1 AND NOT EXISTS (
             SELECT 1 FROM messages m
             WHERE m.seq > u.after_seq AND strpos(m.parts, u.token) > 0)",
    )
    .bind(before.timestamp_millis())
    .execute(&mut *c)
    .await?;
    Ok(done.rows_affected())
}
