//! Copies the write-ahead log into the database file from a thread of its own.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold, on the
//! writer thread: every few batches the writer stopped taking requests to copy pages and
//! fsync the database file. Here a second connection checkpoints (PASSIVE: it never blocks
//! the writer or readers) every few milliseconds, so the WAL stays short and the
//! writer's own checkpoint, kept as a backstop at a higher threshold, finds little left
//! to copy when it resets the log.

use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use crate::store::StoreError;

/// How often the log is copied into the database file.
const INTERVAL: Duration = Duration::from_millis(100);

pub struct Checkpointer {
    stop: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (already in WAL mode).
    pub fn start(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // A checkpoint syncs as its own connection says: the log before copying, the
        // database file after.
        conn.execute_batch("PRAGMA synchronous = FULL;")?;
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &stopped))
            .map_err(|e| StoreError::Internal(format!("cannot start the checkpointer: {e}")))?;
        Ok(Self {
            stop: Mutex::new(Some((stop, thread))),
        })
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

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    let mut last_error = None;
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        // Busy (another checkpoint running) is a result row, not an error; an error here
        // (disk full) also fails the writer's commits, which report it to callers.
        let result = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(|e| e.to_string());
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
        let checkpointer = Checkpointer::start(&path).unwrap();
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
}
