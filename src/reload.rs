//! Config hot reload (docs/ARCHITECTURE.md §8). SIGHUP and changes to the config file both
//! send a trigger on one channel; one function applies it: load and validate the whole
//! file, keep the running config if it is invalid, else swap the new runtime in at once.
//! Requests and jobs already running finish on the snapshot they started with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use notify::{RecursiveMode, Watcher};
use serde::Serialize;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};
use crate::runtime::{Runtime, SharedRuntime};
use crate::telemetry;

/// What the last reload did, shown by `/readyz` and `GET /api/v1/channels`.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ReloadStatus {
    /// `ok` or `error`; absent until the first reload.
    pub last_result: Option<&'static str>,
    pub last_at: Option<DateTime<Utc>>,
    /// Why the last reload was refused (the running config stayed).
    pub error: Option<String>,
    /// Changed settings that only take effect after a restart.
    pub restart_required: Vec<String>,
}

/// A summary of an applied reload, for the log and for tests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub restart_required: Vec<String>,
}

pub struct Reloader {
    path: PathBuf,
    runtime: SharedRuntime,
    http: reqwest::Client,
    status: Arc<Mutex<ReloadStatus>>,
    /// Poked after a swap: a re-enabled channel's deliveries may run now.
    wake: Arc<Notify>,
}

impl Reloader {
    pub fn new(
        path: PathBuf,
        runtime: SharedRuntime,
        http: reqwest::Client,
        status: Arc<Mutex<ReloadStatus>>,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            path,
            runtime,
            http,
            status,
            wake,
        }
    }

    /// Loads the file and applies it if valid. The one path every reload takes.
    pub fn reload(&self) -> Result<Applied, config::ConfigErrors> {
        let now = Utc::now();
        let loaded = config::load_file(&self.path);
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.last_at = Some(now);
        let new = match loaded {
            Ok(new) => new,
            Err(errors) => {
                tracing::error!(config = %self.path.display(), errors = %errors, "Refused an invalid config; the running one stays.");
                telemetry::config_reload("error");
                status.last_result = Some("error");
                status.error = Some(errors.to_string());
                return Err(errors);
            }
        };
        let old = self.runtime.load_full();
        let (new, restart_required) = keep_static_settings(&old.config, new);
        let applied = diff(&old, &new, restart_required);
        telemetry::register(&applied.added);
        telemetry::config_warnings(&new);
        self.runtime
            .store(Arc::new(Runtime::rebuild(Some(&old), new, &self.http, now)));
        self.wake.notify_one();
        telemetry::config_reload("ok");
        for setting in &applied.restart_required {
            tracing::warn!(
                setting,
                "Changed setting takes effect after a restart; the old value stays until then."
            );
        }
        tracing::info!(
            added = ?applied.added, removed = ?applied.removed, changed = ?applied.changed,
            "Applied a new config."
        );
        *status = ReloadStatus {
            last_result: Some("ok"),
            last_at: Some(now),
            error: None,
            restart_required: applied.restart_required.clone(),
        };
        Ok(applied)
    }

    /// Applies reloads as triggers arrive, folding a burst within `reload.debounce_ms`
    /// into one, until `shutdown`.
    pub async fn run(self, mut triggers: mpsc::Receiver<()>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                trigger = triggers.recv() => if trigger.is_none() { return },
                _ = shutdown.cancelled() => return,
            }
            let debounce = Duration::from_millis(self.runtime.load().config.reload.debounce_ms);
            tokio::time::sleep(debounce).await;
            while triggers.try_recv().is_ok() {}
            let _ = self.reload();
        }
    }
}

/// Settings bound at start-up (the listener, the database, the worker pool) keep their
/// running values; each change is reported as needing a restart.
fn keep_static_settings(old: &Config, mut new: Config) -> (Config, Vec<String>) {
    let mut restart = Vec::new();
    if new.server.listen != old.server.listen {
        restart.push("server.listen".to_owned());
        new.server.listen = old.server.listen;
    }
    // The listener's limits are fixed when it starts serving.
    let limits = |s: &crate::config::ServerConfig| {
        (
            s.header_read_timeout_ms,
            s.body_read_timeout_ms,
            s.max_connections,
            s.max_concurrent_requests,
            s.max_concurrent_webhooks,
            s.max_concurrent_console,
        )
    };
    if limits(&new.server) != limits(&old.server) {
        restart.push(
            "server limits (timeouts, max_connections, max_concurrent_requests, \
             max_concurrent_webhooks, max_concurrent_console)"
                .to_owned(),
        );
        new.server.header_read_timeout_ms = old.server.header_read_timeout_ms;
        new.server.body_read_timeout_ms = old.server.body_read_timeout_ms;
        new.server.max_connections = old.server.max_connections;
        new.server.max_concurrent_requests = old.server.max_concurrent_requests;
        new.server.max_concurrent_webhooks = old.server.max_concurrent_webhooks;
        new.server.max_concurrent_console = old.server.max_concurrent_console;
    }
    if new.storage != old.storage {
        restart.push("storage.url".to_owned());
        new.storage = old.storage.clone();
    }
    if new.delivery.concurrency != old.delivery.concurrency {
        restart.push("delivery.concurrency".to_owned());
        new.delivery.concurrency = old.delivery.concurrency;
    }
    (new, restart)
}

fn diff(old: &Runtime, new: &Config, restart_required: Vec<String>) -> Applied {
    let before = &old.config.channels;
    let after = &new.channels;
    Applied {
        added: after
            .keys()
            .filter(|k| !before.contains_key(*k))
            .cloned()
            .collect(),
        removed: before
            .keys()
            .filter(|k| !after.contains_key(*k))
            .cloned()
            .collect(),
        changed: after
            .iter()
            .filter(|(k, c)| before.get(*k).is_some_and(|b| b != *c))
            .map(|(k, _)| k.clone())
            .collect(),
        restart_required,
    }
}

/// Sends a trigger for every SIGHUP, until `shutdown`.
pub async fn on_sighup(triggers: mpsc::Sender<()>, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("Cannot listen for SIGHUP; reload by editing the config file.");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the config.");
                let _ = triggers.try_send(());
            }
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Watches the config file's folder (editors and Kubernetes ConfigMaps replace the file
/// rather than write it in place) and sends a trigger when something there changes that
/// concerns the file. The watcher stops when the returned value is dropped.
pub fn watch_file(
    path: &Path,
    triggers: mpsc::Sender<()>,
) -> notify::Result<notify::RecommendedWatcher> {
    let path = std::path::absolute(path)?;
    let folder = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = path.file_name().map(|n| n.to_owned());
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        // A ConfigMap swaps a `..data` symlink, which names no file of ours.
        let concerns_us = event.paths.iter().any(|p| {
            p.file_name() == name.as_deref()
                || p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".."))
        });
        if concerns_us {
            let _ = triggers.try_send(());
        }
    })?;
    watcher.watch(&folder, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_watcher_triggers_when_the_file_is_written_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "a = 1").unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let _watcher = watch_file(&path, tx).unwrap();

        std::fs::write(&path, "a = 2").unwrap();
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("write noticed");
        while rx.try_recv().is_ok() {}

        // Editors write a temporary file and rename it over the config.
        let temp = dir.path().join(".config.toml.swp");
        std::fs::write(&temp, "a = 3").unwrap();
        std::fs::rename(&temp, &path).unwrap();
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("rename noticed");
    }

    #[tokio::test]
    async fn the_watcher_triggers_when_a_configmap_swaps_its_data_symlink() {
        use std::os::unix::fs::symlink;
        // config.toml -> ..data/config.toml, ..data -> ..v1: as the kubelet mounts it.
        let dir = tempfile::tempdir().unwrap();
        for version in ["..v1", "..v2"] {
            std::fs::create_dir(dir.path().join(version)).unwrap();
            std::fs::write(dir.path().join(version).join("config.toml"), version).unwrap();
        }
        symlink("..v1", dir.path().join("..data")).unwrap();
        symlink("..data/config.toml", dir.path().join("config.toml")).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let _watcher = watch_file(&dir.path().join("config.toml"), tx).unwrap();

        // The update: a new symlink renamed over ..data. No file named config.toml changes.
        symlink("..v2", dir.path().join("..data_tmp")).unwrap();
        std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("swap noticed");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("config.toml")).unwrap(),
            "..v2"
        );
    }
}
