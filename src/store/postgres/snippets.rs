//! Reply snippets created through the API (config snippets are never stored).

use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use super::get;
use crate::model::from_millis;
use crate::store::{SaveMode, StoreError, StoredSnippet};

fn row(r: &PgRow) -> Result<StoredSnippet, StoreError> {
    Ok(StoredSnippet {
        id: get(r, "id")?,
        text: get(r, "text")?,
        created_by: get(r, "created_by")?,
        created_at: from_millis(get(r, "created_at")?),
        updated_at: from_millis(get(r, "updated_at")?),
    })
}

pub async fn list(c: &mut PgConnection) -> Result<Vec<StoredSnippet>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, text, created_by, created_at, updated_at FROM snippets ORDER BY id COLLATE \"C\"",
    )
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(row).collect()
}

pub async fn save(
    c: &mut PgConnection,
    id: &str,
    text: &str,
    by: &str,
    mode: SaveMode,
    now: i64,
) -> Result<StoredSnippet, StoreError> {
    let saved = match mode {
        // Checked by the insert itself: a failed insert would abort the transaction.
        SaveMode::Create => sqlx::query(
            "INSERT INTO snippets (id, text, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (id) DO NOTHING
             RETURNING id, text, created_by, created_at, updated_at",
        )
        .bind(id)
        .bind(text)
        .bind(by)
        .bind(now)
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| StoreError::Conflict(format!("id: a snippet {id:?} exists already")))?,
        SaveMode::Replace => sqlx::query(
            "UPDATE snippets SET text = $2, updated_at = $3 WHERE id = $1
             RETURNING id, text, created_by, created_at, updated_at",
        )
        .bind(id)
        .bind(text)
        .bind(now)
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NotFound("snippet"))?,
    };
    row(&saved)
}

pub async fn delete(c: &mut PgConnection, id: &str) -> Result<(), StoreError> {
    let changed = sqlx::query("DELETE FROM snippets WHERE id = $1")
        .bind(id)
        .execute(&mut *c)
        .await?
        .rows_affected();
    if changed == 0 {
        return Err(StoreError::NotFound("snippet"));
    }
    Ok(())
}
