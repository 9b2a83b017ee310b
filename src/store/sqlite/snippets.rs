//! Reply snippets created through the API (config snippets are never stored).

use rusqlite::{Connection, OptionalExtension, params};

use super::OnConstraint;
use crate::model::from_millis;
use crate::store::{SaveMode, StoreError, StoredSnippet};

fn row(r: &rusqlite::Row) -> rusqlite::Result<StoredSnippet> {
    Ok(StoredSnippet {
        id: r.get(0)?,
        text: r.get(1)?,
        created_by: r.get(2)?,
        created_at: from_millis(r.get(3)?),
        updated_at: from_millis(r.get(4)?),
    })
}

pub fn list(conn: &Connection) -> Result<Vec<StoredSnippet>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, text, created_by, created_at, updated_at FROM snippets ORDER BY id",
    )?;
    let rows = statement.query_map([], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn save(
    conn: &Connection,
    id: &str,
    text: &str,
    by: &str,
    mode: SaveMode,
    now: i64,
) -> Result<StoredSnippet, StoreError> {
    match mode {
        SaveMode::Create => {
            conn.prepare_cached(
                "INSERT INTO snippets (id, text, created_by, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
            )?
            .execute(params![id, text, by, now])
            .on_constraint(|| {
                StoreError::Conflict(format!("id: a snippet {id:?} exists already"))
            })?;
        }
        SaveMode::Replace => {
            let changed = conn
                .prepare_cached("UPDATE snippets SET text = ?2, updated_at = ?3 WHERE id = ?1")?
                .execute(params![id, text, now])?;
            if changed == 0 {
                return Err(StoreError::NotFound("snippet"));
            }
        }
    }
    conn.prepare_cached(
        "SELECT id, text, created_by, created_at, updated_at FROM snippets WHERE id = ?1",
    )?
    .query_row([id], row)
    .optional()?
    .ok_or(StoreError::NotFound("snippet"))
}

pub fn delete(conn: &Connection, id: &str) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached("DELETE FROM snippets WHERE id = ?1")?
        .execute([id])?;
    if changed == 0 {
        return Err(StoreError::NotFound("snippet"));
    }
    Ok(())
}
