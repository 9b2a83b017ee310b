//! A simulated power cut between a batch's COMMIT and its flush, for the fault tests
//! (tests/faults/power_cut.rs). It can be armed only in debug builds, the ones `cargo test`
//! runs, with `CHANNEL_BRIDGE_FAULT=power-cut-before-flush:N`.
//!
//! At its N-th flush the syncer, instead of flushing, cuts the log back to its length at
//! the last flush that completed (what a disk holds after a power cut: the frames written
//! since were in the OS's cache only) and, 300 ms later, sends the process SIGKILL. Whatever was answered
//! before that moment must still be there after a restart. The cut is exact only while the
//! log just grows, so with the fault armed the store runs without its checkpointer and the
//! writer's own checkpoint (`SqliteStore::open`).

use std::path::{Path, PathBuf};

/// The environment variable that arms a fault.
pub const FAULT_ENV: &str = "CHANNEL_BRIDGE_FAULT";

/// A power cut armed at one flush.
pub struct PowerCut {
    at: u64,
    wal: PathBuf,
}

impl PowerCut {
    /// The power cut `CHANNEL_BRIDGE_FAULT` arms for the log at `wal`, in a debug build.
    pub fn from_env(wal: &Path) -> Option<Self> {
        if !cfg!(debug_assertions) {
            return None;
        }
        let value = std::env::var(FAULT_ENV).ok()?;
        let at = value
            .strip_prefix("power-cut-before-flush:")?
            .parse()
            .ok()?;
        Some(Self {
            at,
            wal: wal.to_owned(),
        })
    }

    /// The log's length now: measured before a flush, all of it is durable after.
    pub fn log_len(&self) -> u64 {
        std::fs::metadata(&self.wal).map_or(0, |m| m.len())
    }

    /// Called before the syncer's `flush`-th flush: at the armed one, cuts the log back to
    /// `durable` bytes, kills the process and never returns.
    pub fn before_flush(&self, flush: u64, durable: u64) {
        if flush < self.at {
            return;
        }
        tracing::warn!(
            flush,
            durable_log_bytes = durable,
            "Fault: power cut after a commit, before its flush."
        );
        let cut = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.wal)
            .and_then(|log| log.set_len(durable));
        if let Err(e) = cut {
            tracing::error!(error = %e, "Fault: could not cut the log back.");
        }
        // The power goes a moment later: whatever the process had already answered or
        // sent reaches the other side, as it would in a real cut, and the test can see it.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        // SIGKILL cannot be caught; this thread goes no further.
        loop {
            std::thread::park();
        }
    }
}
