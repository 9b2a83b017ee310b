//! Group commit: one thread owns the write connection. Requests queue on a bounded channel;
//! the thread takes everything waiting (up to a cap), applies the requests in one
//! transaction and commits once. Every waiter is answered only once the batch is durable.
//!
//! Under light load a batch is one request and nothing waits longer than its own commit.
//! Under heavy load batches grow by themselves while the previous flush runs, so the fsync
//! cost is shared.
//!
//! The flush overlaps the next batch (docs/ARCHITECTURE.md §3): the connection runs with
//! `synchronous = NORMAL`, so COMMIT only writes the batch's frames to the write-ahead log,
//! and a second thread, the syncer, fdatasyncs the log and then answers the batch's
//! waiters while the writer already applies the next batch. Nothing leaves the process
//! before that: every answer (an acknowledgement, a leased delivery, a job to publish or
//! mail) comes from the syncer, and the log is written in order, so one fdatasync makes a
//! batch and every batch before it durable. Only readers of the database may see a batch
//! about one flush early; what they may do with it is said where they read (the event
//! stream reads up to the durable mark, [`Writer::durable_mark`]).
//!
//! A request that fails must leave its neighbours' work in the batch. Isolating every
//! request in a savepoint costs more than the request itself (each savepoint copies every
//! page it touches to the statement journal, and makes FTS5 flush its pending terms into
//! a new segment), while failures are rare. So a batch runs optimistically, with no
//! savepoints; only when a request fails is the transaction rolled back and the batch run
//! again with a savepoint per request. Requests are therefore `Fn`: running one twice
//! must do nothing outside the database (ids drawn in the first run are simply lost).

use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc as std_mpsc;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::store::StoreError;

pub mod fault;

/// The most requests one transaction takes.
const MAX_BATCH: usize = 512;
/// Requests that may wait for the writer before callers wait to enqueue (backpressure).
const QUEUE_DEPTH: usize = 4096;
/// Committed batches that may wait for the syncer before the writer waits for it. One is
/// enough to overlap the flush with the next batch, keeps readers at most two batches
/// ahead of what is durable, and lets requests pile up into bigger batches while the
/// writer waits (17-18 requests against 13-14 with 8 waiting, at the same rate:
/// BENCHMARKS.md, History).
const SYNC_DEPTH: usize = 1;

/// One request: run inside the batch's transaction (perhaps twice), answered after the
/// commit.
trait Work: Send {
    /// Runs the request, in a savepoint of its own when `isolated`; keeps its result and
    /// says whether it succeeded.
    fn run(&mut self, conn: &Connection, isolated: bool) -> bool;
    /// Answers with the kept result, given the batch's commit result.
    fn answer(self: Box<Self>, commit: Result<(), StoreError>);
    fn abort(self: Box<Self>, error: StoreError);
}

struct Request<F, T> {
    f: F,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> Work for Request<F, T>
where
    F: Fn(&Connection) -> Result<T, StoreError> + Send,
    T: Send + 'static,
{
    fn run(&mut self, conn: &Connection, isolated: bool) -> bool {
        let result = if isolated {
            in_savepoint(conn, &self.f)
        } else {
            guarded(|| (self.f)(conn))
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, commit: Result<(), StoreError>) {
        let result = self
            .result
            .unwrap_or_else(|| Err(StoreError::Internal("a write never ran".into())));
        // The caller may have gone away (request cancelled); its work is committed anyway.
        let _ = self.reply.send(result.and_then(|v| commit.map(|()| v)));
    }

    fn abort(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

/// Runs `f`, turning a panic into an error: a bug in one request must not take the
/// writer (and so every later write) down.
fn guarded<T>(f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(StoreError::Internal("a write panicked".into())))
}

fn in_savepoint<T>(
    conn: &Connection,
    f: impl Fn(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT request")?;
    match guarded(|| f(conn)) {
        Ok(value) => {
            conn.execute_batch("RELEASE request")?;
            Ok(value)
        }
        Err(e) => {
            // On some errors (SQLITE_FULL, IOERR, BUSY, NOMEM) SQLite may roll back the
            // whole transaction itself, savepoint and all: then there is nothing to roll
            // back to, the request's own error is the answer, and the batch notices.
            if !conn.is_autocommit() {
                conn.execute_batch("ROLLBACK TO request; RELEASE request")?;
            }
            Err(e)
        }
    }
}

enum Command {
    Work(Box<dyn Work>),
    Stop(oneshot::Sender<()>),
}

/// The handle through which every write reaches the writer thread.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Command>,
    durable: Arc<AtomicI64>,
}

/// What the writer reports about each batch, for metrics.
pub type BatchObserver = Box<dyn Fn(usize) + Send>;

/// Read in each batch's transaction just before COMMIT (say, the newest event's seq), and
/// published by [`Writer::durable_mark`] once that batch is durable.
pub type Mark = Box<dyn Fn(&Connection) -> Result<i64, StoreError> + Send>;

/// How a committed batch becomes durable before anyone hears of it.
pub struct Durability {
    /// The write-ahead log, fdatasynced after each commit when the connection runs with
    /// `synchronous = NORMAL`; `None` when COMMIT syncs by itself (`FULL`).
    pub wal: Option<File>,
    /// What [`Writer::durable_mark`] reports; without it, the mark stays 0.
    pub mark: Option<Mark>,
    /// A power cut to simulate (debug builds only; see [`fault`]).
    pub fault: Option<fault::PowerCut>,
}

impl Durability {
    /// COMMIT is durable by itself; no mark.
    pub fn at_commit() -> Self {
        Self {
            wal: None,
            mark: None,
            fault: None,
        }
    }
}

impl Writer {
    /// Starts the writer thread on `conn`, which must be in WAL mode, outside a
    /// transaction, and the syncer thread that answers its batches once `durability`
    /// says they are on disk.
    pub fn start(
        conn: Connection,
        durability: Durability,
        observe: BatchObserver,
    ) -> std::io::Result<Self> {
        let (queue, commands) = mpsc::channel(QUEUE_DEPTH);
        let Durability { wal, mark, fault } = durability;
        let initial = match &mark {
            Some(mark) => mark(&conn).unwrap_or(0),
            None => 0,
        };
        let durable = Arc::new(AtomicI64::new(initial));
        let (to_syncer, committed) = std_mpsc::sync_channel(SYNC_DEPTH);
        let syncer = {
            let durable = durable.clone();
            std::thread::Builder::new()
                .name("sqlite-syncer".into())
                .spawn(move || sync(wal, fault, &committed, &durable))?
        };
        let thread = Thread {
            conn,
            syncer: to_syncer,
            mark,
        };
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || thread.run(commands, observe, syncer))?;
        Ok(Self { queue, durable })
    }

    /// Runs `f` in the next batch and returns its result once the batch is durable.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Command::Work(Box::new(Request {
                f,
                result: None,
                reply,
            })))
            .await
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?
    }

    /// The mark of the newest durable batch: a reader that must not act on what is not yet
    /// durable reads up to it.
    pub fn durable_mark(&self) -> i64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Whether the writer has stopped and takes no more requests.
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Commits everything queued before this call and waits until it is durable, then
    /// stops the threads and closes the connection.
    pub async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.queue.send(Command::Stop(done)).await.is_ok() {
            let _ = stopped.await;
        }
    }
}

/// A batch committed to the log, waiting for the syncer.
struct Committed {
    answers: Vec<Box<dyn Work>>,
    mark: Option<i64>,
}

/// The writer thread's state.
struct Thread {
    conn: Connection,
    syncer: std_mpsc::SyncSender<Committed>,
    mark: Option<Mark>,
}

impl Thread {
    fn run(
        self,
        mut commands: mpsc::Receiver<Command>,
        observe: BatchObserver,
        syncer: std::thread::JoinHandle<()>,
    ) {
        let mut stop = None;
        while stop.is_none() {
            let Some(first) = commands.blocking_recv() else {
                break;
            };
            let mut batch = Vec::new();
            match first {
                Command::Work(work) => batch.push(work),
                Command::Stop(done) => stop = Some(done),
            }
            while stop.is_none() && batch.len() < MAX_BATCH {
                match commands.try_recv() {
                    Ok(Command::Work(work)) => batch.push(work),
                    Ok(Command::Stop(done)) => stop = Some(done),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                observe(batch.len());
                self.commit_batch(batch);
            }
        }
        // Later requests find the channel closed and answer "unavailable".
        commands.close();
        while let Ok(command) = commands.try_recv() {
            if let Command::Work(work) = command {
                work.abort(StoreError::Unavailable("the database is closing".into()));
            }
        }
        // The syncer answers what is committed, then ends with its channel.
        let Self {
            conn,
            syncer: to_syncer,
            ..
        } = self;
        drop(to_syncer);
        let _ = syncer.join();
        drop(conn);
        if let Some(done) = stop {
            let _ = done.send(());
        }
    }

    fn commit_batch(&self, mut batch: Vec<Box<dyn Work>>) {
        let conn = &self.conn;
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            return abort_all(batch, &StoreError::from(e));
        }
        if batch.iter_mut().all(|work| work.run(conn, false)) {
            return self.commit(batch);
        }
        // One request failed: its partial writes are mixed with its neighbours', so the
        // whole transaction goes and the batch runs again, each request in its own
        // savepoint.
        if !conn.is_autocommit()
            && let Err(e) = conn.execute_batch("ROLLBACK")
        {
            return abort_all(batch, &StoreError::from(e));
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            return abort_all(batch, &StoreError::from(e));
        }
        for work in &mut batch {
            work.run(conn, true);
            if conn.is_autocommit() {
                // SQLite rolled the whole transaction back: what the batch applied so far
                // is gone, and the rest must not run outside a transaction. Nothing was
                // written; every caller is told to try again.
                return abort_all(
                    batch,
                    &StoreError::Unavailable(
                        "the database rolled the batch back (disk full or I/O error); try again"
                            .into(),
                    ),
                );
            }
        }
        self.commit(batch);
    }

    /// Commits the open transaction and hands the batch to the syncer, which answers it
    /// once it is durable. A failed commit is answered at once: nothing was written.
    fn commit(&self, batch: Vec<Box<dyn Work>>) {
        let conn = &self.conn;
        // A failed read leaves the previous mark: readers wait for the next batch.
        let mark = self.mark.as_ref().and_then(|mark| mark(conn).ok());
        if let Err(e) = conn.execute_batch("COMMIT") {
            // A failed COMMIT (disk full, I/O error) may leave the transaction open.
            let _ = conn.execute_batch("ROLLBACK");
            let e = StoreError::from(e);
            for work in batch {
                work.answer(Err(e.clone()));
            }
            return;
        }
        let committed = Committed {
            answers: batch,
            mark,
        };
        if let Err(std_mpsc::SendError(committed)) = self.syncer.send(committed) {
            // The syncer is gone only if it panicked: nobody can say the batch is durable.
            for work in committed.answers {
                work.abort(StoreError::Unavailable(
                    "the database cannot make writes durable".into(),
                ));
            }
        }
    }
}

/// The syncer thread: takes every committed batch waiting, makes them durable with one
/// fdatasync of the log, publishes their mark, then answers their waiters.
fn sync(
    wal: Option<File>,
    fault: Option<fault::PowerCut>,
    committed: &std_mpsc::Receiver<Committed>,
    durable: &AtomicI64,
) {
    let mut flushes = 0;
    let mut flushed_len = fault.as_ref().map_or(0, fault::PowerCut::log_len);
    while let Ok(first) = committed.recv() {
        let mut ready = vec![first];
        ready.extend(committed.try_iter());
        flushes += 1;
        if let Some(cut) = &fault {
            cut.before_flush(flushes, flushed_len);
            flushed_len = cut.log_len();
        }
        if let Some(wal) = &wal
            && let Err(e) = wal.sync_data()
        {
            // After a failed fsync the kernel may have dropped the log's dirty pages and
            // will not report it again (PostgreSQL's "fsyncgate"): answering would
            // acknowledge what may be lost, and going on would let readers see rows that
            // may vanish. What is on disk is what SQLite recovers at the next start, and
            // every waiter, having no answer, sends again.
            tracing::error!(error = %e, "Could not flush the SQLite log to disk; stopping the process.");
            std::process::abort();
        }
        if let Some(mark) = ready.iter().filter_map(|c| c.mark).max() {
            durable.fetch_max(mark, Ordering::AcqRel);
        }
        for batch in ready {
            for work in batch.answers {
                work.answer(Ok(()));
            }
        }
    }
}

fn abort_all(batch: Vec<Box<dyn Work>>, error: &StoreError) {
    for work in batch {
        work.abort(error.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (Writer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (v INTEGER UNIQUE);")
            .unwrap();
        (
            Writer::start(conn, Durability::at_commit(), Box::new(|_| {})).unwrap(),
            dir,
        )
    }

    #[tokio::test]
    async fn a_failing_request_rolls_back_alone_and_its_neighbours_commit() {
        let (w, _dir) = writer();
        let insert = |v: i64| {
            let w = w.clone();
            async move {
                w.write(move |c| {
                    c.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
                    // The second row of each request collides for v = 2 only.
                    c.execute(
                        "INSERT INTO t (v) VALUES (?1)",
                        [v * 100 + if v == 2 { 0 } else { 1 }],
                    )?;
                    if v == 2 {
                        c.execute("INSERT INTO t (v) VALUES (?1)", [200])?;
                    }
                    Ok(v)
                })
                .await
            }
        };
        let results = futures_join(vec![insert(1), insert(2), insert(3)]).await;
        assert!(results[0].is_ok() && results[1].is_err() && results[2].is_ok());
        let count = w
            .write(|c| Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))?))
            .await
            .unwrap();
        assert_eq!(count, 4, "requests 1 and 3 keep both rows, request 2 none");
    }

    #[tokio::test]
    async fn the_durable_mark_covers_a_batch_before_its_waiters_are_answered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; CREATE TABLE t (v INTEGER UNIQUE);",
        )
        .unwrap();
        let durability = Durability {
            wal: Some(File::open(dir.path().join("w.db-wal")).unwrap()),
            mark: Some(Box::new(|c: &Connection| {
                Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?)
            })),
            fault: None,
        };
        let w = Writer::start(conn, durability, Box::new(|_| {})).unwrap();
        assert_eq!(w.durable_mark(), 0);
        for v in 1..=3 {
            w.write(move |c| Ok(c.execute("INSERT INTO t (v) VALUES (?1)", [v])?))
                .await
                .unwrap();
            assert_eq!(
                w.durable_mark(),
                v,
                "answered only once its mark is published"
            );
        }
    }

    #[tokio::test]
    async fn a_panicking_request_does_not_stop_the_writer() {
        let (w, _dir) = writer();
        let r = w
            .write(|_| -> Result<(), StoreError> { panic!("bug") })
            .await;
        assert!(matches!(r, Err(StoreError::Internal(_))));
        w.write(|c| Ok(c.execute("INSERT INTO t (v) VALUES (1)", [])?))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn writes_after_stop_are_refused_as_unavailable() {
        let (w, _dir) = writer();
        w.stop().await;
        let r = w.write(|_| Ok(())).await;
        assert!(matches!(r, Err(StoreError::Unavailable(_))));
    }

    /// Inserts a row of `size` bytes tagged `tag`, twice (two statements, one request).
    async fn insert_pair(w: &Writer, tag: i64, size: usize) -> Result<(), StoreError> {
        w.write(move |c| {
            for _ in 0..2 {
                c.execute(
                    "INSERT INTO blobs (tag, data) VALUES (?1, zeroblob(?2))",
                    rusqlite::params![tag, size as i64],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn rows_tagged(w: &Writer, tag: i64) -> i64 {
        w.write(move |c| {
            Ok(
                c.query_row("SELECT count(*) FROM blobs WHERE tag = ?1", [tag], |r| {
                    r.get(0)
                })?,
            )
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_full_database_answers_unavailable_writes_nothing_half_and_recovers_when_space_returns()
     {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE blobs (tag INTEGER, data BLOB);
             PRAGMA max_page_count = 64;",
        )
        .unwrap();
        let w = Writer::start(conn, Durability::at_commit(), Box::new(|_| {})).unwrap();

        // Fill it: each request needs two 8 KiB rows, and the file may not pass 64 pages.
        let mut full_at = None;
        for tag in 0..100 {
            match insert_pair(&w, tag, 8 * 1024).await {
                Ok(()) => {}
                Err(StoreError::Unavailable(message)) => {
                    assert!(message.to_string().contains("full"), "{message}");
                    full_at = Some(tag);
                    break;
                }
                Err(other) => panic!("a full database must be unavailable, got {other:?}"),
            }
        }
        let tag = full_at.expect("the database filled up");
        assert_eq!(
            rows_tagged(&w, tag).await,
            0,
            "the refused request left no row"
        );
        for earlier in 0..tag {
            assert_eq!(
                rows_tagged(&w, earlier).await,
                2,
                "request {earlier} is whole"
            );
        }

        // Space comes back (here: a higher page limit); the writer was never stuck.
        w.write(|c| Ok(c.pragma_update(None, "max_page_count", 100_000)?))
            .await
            .unwrap();
        insert_pair(&w, tag, 8 * 1024).await.unwrap();
        assert_eq!(rows_tagged(&w, tag).await, 2);
    }

    #[tokio::test]
    async fn a_database_locked_by_another_connection_answers_unavailable_until_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE blobs (tag INTEGER, data BLOB);")
            .unwrap();
        conn.busy_timeout(std::time::Duration::from_millis(100))
            .unwrap();
        let w = Writer::start(conn, Durability::at_commit(), Box::new(|_| {})).unwrap();

        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let refused = insert_pair(&w, 1, 10).await;
        assert!(
            matches!(refused, Err(StoreError::Unavailable(_))),
            "{refused:?}"
        );
        other.execute_batch("ROLLBACK").unwrap();

        insert_pair(&w, 1, 10).await.unwrap();
        assert_eq!(rows_tagged(&w, 1).await, 2);
    }

    async fn futures_join<F: std::future::Future + Send + 'static>(
        futures: Vec<F>,
    ) -> Vec<F::Output>
    where
        F::Output: Send + 'static,
    {
        let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    }
}
