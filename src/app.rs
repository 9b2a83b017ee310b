//! Wires the daemon together: store, runtime config, HTTP router, delivery worker; and
//! runs it until the shutdown token fires, then drains.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use axum::Router;
use axum::http::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::error::ApiError;
use crate::outbox::{DeliveryWorker, Pacer};
use crate::reload::{self, ReloadStatus, Reloader};
use crate::runtime::{Runtime, SharedRuntime, http_client};
use crate::store::{self, Store};
use crate::{api, ingress, server, telemetry};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub runtime: SharedRuntime,
    /// Wakes the delivery worker when there may be new work.
    pub wake: Arc<Notify>,
    /// Paces replies to what the outbox delivers.
    pub pacer: Arc<Pacer>,
    pub reload: Arc<Mutex<ReloadStatus>>,
    /// Cancelled when the daemon drains: long-lived responses (event streams) end.
    pub shutdown: CancellationToken,
}

/// A built daemon, listening but not yet serving.
pub struct App {
    listener: TcpListener,
    state: AppState,
    http: reqwest::Client,
    config_file: Option<ConfigFile>,
}

/// The file a running daemon reloads its config from, and the trigger that asks it to.
struct ConfigFile {
    path: PathBuf,
    trigger: mpsc::Sender<()>,
    triggers: mpsc::Receiver<()>,
    /// Watching starts with `reload_from`, so no change made after it is missed.
    _watcher: Option<notify::RecommendedWatcher>,
}

impl App {
    /// Binds the listener, opens the store (migrating it) and builds the adapters.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // Bind first: a daemon that cannot listen (port taken) must leave nothing on disk,
        // not a fresh database or data/ folder.
        let listener = server::listen(config.server.listen)
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        let store = store::open(&config.storage)
            .await
            .context("cannot open the store")?;
        let http = http_client(&config);
        telemetry::metrics();
        telemetry::register(&config.channels.keys().cloned().collect::<Vec<_>>());
        telemetry::config_warnings(&config);
        let runtime = Arc::new(ArcSwap::from_pointee(Runtime::build(config, &http)));
        Ok(Self {
            listener,
            state: AppState {
                store,
                runtime,
                wake: Arc::new(Notify::new()),
                pacer: Arc::new(Pacer::new()),
                reload: Arc::default(),
                shutdown: CancellationToken::new(),
            },
            http,
            config_file: None,
        })
    }

    /// Reloads the config from `path` on SIGHUP and (with `reload.watch`) when the file
    /// changes.
    pub fn reload_from(mut self, path: PathBuf) -> Self {
        let (trigger, triggers) = mpsc::channel(16);
        let watcher = match self.state.runtime.load().config.reload.watch {
            false => None,
            true => match reload::watch_file(&path, trigger.clone()) {
                Ok(watcher) => Some(watcher),
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot watch the config file; reload with SIGHUP.");
                    None
                }
            },
        };
        self.config_file = Some(ConfigFile {
            path,
            trigger,
            triggers,
            _watcher: watcher,
        });
        self
    }

    /// Asks for a reload, as SIGHUP does (only after [`App::reload_from`]).
    pub fn reload_trigger(&self) -> Option<mpsc::Sender<()>> {
        self.config_file.as_ref().map(|f| f.trigger.clone())
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.state.store.clone()
    }

    pub fn runtime(&self) -> SharedRuntime {
        self.state.runtime.clone()
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets in-flight requests
    /// and jobs finish (up to `server.shutdown_grace_ms`), gives back unfinished leases and
    /// closes the store.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let App {
            listener,
            state,
            http,
            config_file,
        } = self;
        let grace = Duration::from_millis(state.runtime.load().config.server.shutdown_grace_ms);
        let worker = DeliveryWorker::new(
            state.store.clone(),
            state.runtime.clone(),
            state.wake.clone(),
            state.pacer.clone(),
        );
        let worker = tokio::spawn(worker.run(shutdown.clone(), grace));
        // Kept (with its file watcher) for as long as the daemon serves.
        let _config_file = config_file.map(|file| {
            let reloader = Reloader::new(
                file.path.clone(),
                state.runtime.clone(),
                http,
                state.reload.clone(),
                state.wake.clone(),
            );
            tokio::spawn(reloader.run(file.triggers, shutdown.clone()));
            tokio::spawn(reload::on_sighup(file.trigger, shutdown.clone()));
            file._watcher
        });

        tokio::spawn(crate::retention::run(
            state.store.clone(),
            state.runtime.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(send_digests(state.clone(), shutdown.clone()));
        let imap = tokio::spawn(crate::imap::run(
            crate::imap::Context {
                store: state.store.clone(),
                runtime: state.runtime.clone(),
                wake: state.wake.clone(),
            },
            shutdown.clone(),
        ));
        let streams = state.shutdown.clone();
        let draining = shutdown.clone();
        tokio::spawn(async move {
            draining.cancelled().await;
            streams.cancel();
        });

        tracing::info!(address = %listener.local_addr()?, "Listening.");
        let limits = server::Limits::from_config(&state.runtime.load().config.server)
            .within_open_file_limit();
        server::serve(
            listener,
            router(state.clone()),
            limits,
            shutdown.clone(),
            grace,
        )
        .await;
        let _ = worker.await;
        // The pollers finish the message in hand and give their mailboxes' leases back.
        if tokio::time::timeout(grace, imap).await.is_err() {
            tracing::warn!(
                "IMAP pollers did not stop within the grace period; their leases expire by themselves."
            );
        }
        state.store.close().await;
        tracing::info!("Stopped.");
        Ok(())
    }
}

/// Every route, each with its OpenAPI operation: `routes!` adds both from the handler's
/// `#[utoipa::path]`, so the router and `GET /api/openapi.json` cannot disagree. Each
/// `routes!` takes the handlers of one path.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(api::openapi::ApiDoc::openapi())
        .routes(routes!(ingress::receive, ingress::handshake))
        .routes(routes!(ingress::hubspot::receive))
        .merge(api::router())
        .routes(routes!(api::uploads::serve))
        .routes(routes!(api::openapi::serve))
        .routes(routes!(api::ops::healthz))
        .routes(routes!(api::ops::readyz))
        .routes(routes!(api::ops::metrics))
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let (router, _document) = routes().split_for_parts();
    router
        .merge(crate::console::router())
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed here",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::params::layer,
        ))
        .layer(axum::middleware::from_fn(crate::request::layer))
        .with_state(state)
}

/// Queues notification digests for offline reps who want them, at most one per rep per
/// `presence.digest_interval_s` (checked at least every minute).
async fn send_digests(state: AppState, shutdown: CancellationToken) {
    loop {
        let runtime = state.runtime.load_full();
        let config = &runtime.config;
        let interval = config.presence.digest_interval_s.max(1);
        if runtime.mailer.is_some() {
            let reps = config
                .reps
                .iter()
                .filter_map(|r| {
                    Some(crate::store::DigestRep {
                        id: r.id.clone(),
                        email: r.email.clone()?,
                        notify: r.notify,
                    })
                })
                .collect();
            let queued = state
                .store
                .queue_digests(
                    reps,
                    crate::store::DigestLinks {
                        link_base: config.server.public_url.clone(),
                        channel_names: config
                            .channels
                            .iter()
                            .map(|(id, c)| (id.clone(), c.name.clone()))
                            .collect(),
                    },
                    (interval * 1000) as i64,
                    (config.presence.timeout_s * 1000) as i64,
                )
                .await;
            match queued {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(digests = n, "Queued notification digests.");
                    state.wake.notify_one();
                }
                Err(e) => tracing::warn!(error = %e, "Could not queue notification digests."),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(interval.min(60))) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
