//! Copies the write-ahead log into the database file from a thread of its own.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold, on the
//! writer thread: every few batches the writer stopped taking requests to copy pages and
//! fsync the database file. Here a second connection checkpoints (PASSIVE: it never blocks
//! the writer or readers) every few milliseconds, so the WAL stays short and the
//! writer's own checkpoint, kept as a backstop at a higher threshold, finds little left
//! to copy when it resets the log.
//!
//! SQLite reuses the log file from its start and never shrinks it by itself: after a
//! burst, or a full disk during which nothing could be checkpointed, the `-wal` file kept
//! its peak size, space the database file could not use, and a disk freed by the operator
//! filled again after a few messages. So once a checkpoint has caught up with the log and
//! the file is larger than [`WAL_SIZE_LIMIT`], this thread truncates it (a TRUNCATE
//! checkpoint); the writer's `journal_size_limit` does the same when it restarts the log.

use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use crate::store::StoreError;

/// How often the log is copied into the database file.
const INTERVAL: Duration = Duration::from_millis(100);

/// The size the log file is brought back to once checkpoints have caught up
/// (`journal_size_limit`). Checkpoints every [`INTERVAL`] keep the log far below it under
/// a steady load; it is reached after bursts and outages.
pub const WAL_SIZE_LIMIT: u64 = 4 * 1024 * 1024;

/// How long a TRUNCATE checkpoint waits for readers to leave the log. While it waits it
/// holds off the writer, so it gives up quickly and tries again on the next round.
const TRUNCATE_WAIT: Duration = Duration::from_millis(20);

/// How long the connection waits for a lock otherwise.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Checkpointer {
    stop: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (already in WAL mode), truncating its
    /// log once it is larger than `wal_size_limit` bytes and fully checkpointed.
    pub fn start(path: &Path, wal_size_limit: u64) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // A checkpoint syncs as its own connection says: the log before copying, the
        // database file after.
        conn.execute_batch(&format!(
            "PRAGMA synchronous = FULL; PRAGMA journal_size_limit = {wal_size_limit};"
        ))?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let log = Log {
            path: wal.into(),
            size_limit: wal_size_limit,
        };
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &log, &stopped))
            .map_err(|e| {
                StoreError::Internal(crate::store::Detail::caused_by(
                    "cannot start the checkpointer",
                    e,
                ))
            })?;
        Ok(Self {
            stop: Mutex::new(Some((stop, thread))),
        })
    }

    /// A checkpointer that never runs: the log only grows (and the writer's own checkpoint
    /// is all there is), which a simulated power cut needs (writer/fault.rs).
    pub fn idle() -> Self {
        Self {
            stop: Mutex::new(None),
        }
    }

    /// Stops the thread after the checkpoint it may be running.
    pub fn stop(&self) {
        let running = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((stop, thread)) = running {
            drop(stop);
            let _ = thread.join();
        }
    }
}

/// The log file and the size it is brought back to.
struct Log {
    path: std::path::PathBuf,
    size_limit: u64,
}

fn run(conn: &Connection, log: &Log, stopped: &mpsc::Receiver<()>) {
    let mut last_error = None;
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        // Busy (another checkpoint running) is a result row, not an error; an error here
        // (disk full) also fails the writer's commits, which report it to callers.
        let result = checkpoint(conn, log).map_err(|e| e.to_string());
        match result {
            Ok(()) => last_error = None,
            Err(e) if last_error.as_ref() != Some(&e) => {
                tracing::warn!(error = %e, "Could not checkpoint the SQLite log; will try again.");
                last_error = Some(e);
            }
            Err(_) => {}
        }
    }
}

/// One round: copies what it can of the log into the database file, then truncates the
/// log if it has grown past its limit and every frame in it has been copied.
fn checkpoint(conn: &Connection, log: &Log) -> rusqlite::Result<()> {
    // (busy, frames in the log, frames copied); -1 frames when not in WAL mode.
    let (busy, frames, copied) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let caught_up = busy == 0 && frames >= 0 && frames == copied;
    let size = std::fs::metadata(&log.path).map(|m| m.len()).unwrap_or(0);
    if !caught_up || size <= log.size_limit {
        return Ok(());
    }
    conn.busy_timeout(TRUNCATE_WAIT)?;
    let truncated = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0).map(|busy| busy == 0)
    });
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if truncated? {
        tracing::info!(
            bytes = size,
            limit = log.size_limit,
            "Truncated the SQLite log after it had grown past its limit."
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::OpenFlags;

    /// Rows in the database file itself, ignoring the log (`immutable` skips the WAL).
    fn rows_in_main_file(path: &Path) -> i64 {
        let uri = format!("file:{}?immutable=1", path.display());
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
        Connection::open_with_flags(uri, flags)
            .and_then(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .unwrap_or(0)
    }

    #[test]
    fn committed_pages_reach_the_database_file_without_a_checkpoint_by_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE t (v INTEGER);",
            )
            .unwrap();
        // Nothing checkpoints the creation yet: the main file has no table at all.
        assert_eq!(rows_in_main_file(&path), 0);
        let checkpointer = Checkpointer::start(&path, WAL_SIZE_LIMIT).unwrap();
        writer
            .execute_batch("INSERT INTO t VALUES (1), (2), (3);")
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while rows_in_main_file(&path) != 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "the rows never reached the database file"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        checkpointer.stop();
        checkpointer.stop();
    }

    fn wal_size(path: &Path) -> u64 {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
    }

    #[test]
    fn a_log_grown_past_its_limit_shrinks_back_once_the_checkpoint_has_caught_up() {
        const LIMIT: u64 = 256 * 1024;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE t (v BLOB);",
            )
            .unwrap();
        // Nothing checkpoints yet (as during a full disk): the log takes every page.
        for _ in 0..64 {
            writer
                .execute("INSERT INTO t VALUES (zeroblob(32768))", [])
                .unwrap();
        }
        let peak = wal_size(&path);
        assert!(peak > 8 * LIMIT, "the log grew to {peak} bytes");

        let checkpointer = Checkpointer::start(&path, LIMIT).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while wal_size(&path) > LIMIT {
            assert!(
                std::time::Instant::now() < deadline,
                "the log stayed at {} bytes (limit {LIMIT})",
                wal_size(&path)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        checkpointer.stop();
        // Nothing was lost on the way.
        let rows: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 64);
        assert_eq!(rows_in_main_file(&path), 64);
    }
}
