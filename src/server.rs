//! The HTTP listener: accepts connections and serves the router with the limits that keep
//! slow or abusive clients from exhausting memory or starving everyone else.
//!
//! `axum::serve` has no header read timeout, so a slowloris (headers sent a byte at a
//! time) or ten thousand idle keep-alive sockets would each hold a connection forever.
//! Here hyper serves each connection itself (HTTP/1.1, which every platform speaks):
//! - a request head must arrive whole within `server.header_read_timeout_ms`, also when a
//!   keep-alive connection sits idle between requests, or the connection is closed;
//! - a request body must arrive whole within `server.body_read_timeout_ms` (408);
//! - at most `server.max_connections` are open: past it the listener stops accepting (the
//!   kernel's backlog holds the rest) until one closes, so memory stays bounded;
//! - requests handled at once are counted against one of three budgets, by path:
//!   webhooks (`server.max_concurrent_webhooks`), the API (`server.max_concurrent_requests`)
//!   and everything else, the console (`server.max_concurrent_console`). Past its budget a
//!   request is shed at once with 503 `overloaded` and `Retry-After`, which platforms
//!   redeliver on. Separate budgets because webhooks come from anyone: unauthenticated
//!   clients dribbling webhook bodies can fill the webhook budget, never the API's;
//! - `server.max_connections` is fitted to the process's open-file limit at start: the
//!   soft limit is raised as far as the hard one allows, and past that the connection
//!   limit is lowered (with a warning), so accepting never runs out of descriptors that
//!   the database and outbound requests need.
//!
//! Shutdown is passed in: the listener closes, idle connections close, requests in flight
//! finish (up to the grace period).

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerConfig;
use crate::error::ApiError;

/// Paths that answer even when requests are being shed: probes must tell "alive but
/// busy" from "dead".
const UNLIMITED_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// How long the accept loop pauses after an accept error (out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// File descriptors kept out of `max_connections` for everything else the process opens:
/// database files and connections, outbound deliveries and media fetches, the config
/// watcher, logs.
const RESERVED_FILES: u64 = 256;

/// The listener's limits, read from `[server]` at start-up.
#[derive(Clone, Debug)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    /// API requests at once.
    pub max_concurrent_requests: usize,
    /// Webhook requests at once.
    pub max_concurrent_webhooks: usize,
    /// Requests to every other path (the console) at once.
    pub max_concurrent_console: usize,
}

impl Limits {
    /// The limits `[server]` configures.
    pub fn from_config(server: &ServerConfig) -> Self {
        Self {
            header_read_timeout: Duration::from_millis(server.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(server.body_read_timeout_ms),
            max_connections: server.max_connections,
            max_concurrent_requests: server.max_concurrent_requests,
            max_concurrent_webhooks: server.max_concurrent_webhooks,
            max_concurrent_console: server.max_concurrent_console,
        }
    }

    /// Fits `max_connections` to this process's open-file limit: raises the soft limit
    /// toward the hard one when connections need it, and lowers `max_connections` with a
    /// warning when even the hard limit is too low.
    pub fn within_open_file_limit(mut self) -> Self {
        let wanted = self.max_connections as u64;
        let (soft, hard) = open_file_limit();
        let fit = fit_connections(wanted, soft, hard);
        let mut soft = soft;
        if let Some(raised) = fit.raise_soft_to {
            match set_open_file_limit(raised, hard) {
                Ok(()) => {
                    tracing::info!(from = ?soft, to = raised, "Raised the open-file limit.");
                    soft = Some(raised);
                }
                Err(e) => tracing::warn!(error = %e, "Could not raise the open-file limit."),
            }
        }
        let allowed = fit_connections(wanted, soft, soft).max_connections;
        if allowed < wanted {
            tracing::warn!(
                max_connections = wanted,
                open_file_limit = ?soft,
                using = allowed,
                reserved = RESERVED_FILES,
                "server.max_connections does not fit in the open-file limit (ulimit -n); \
                 serving at most the connections that fit. Raise the limit to use more."
            );
            self.max_connections = allowed as usize;
        }
        self
    }
}

/// What [`fit_connections`] decided.
#[derive(Debug, PartialEq, Eq)]
struct ConnectionFit {
    /// The soft open-file limit to ask for, when the current one is too low.
    raise_soft_to: Option<u64>,
    /// Connections that fit in the (raised) limit, at most the ones wanted.
    max_connections: u64,
}

/// How `wanted` connections fit in the open-file limits `soft` and `hard` (`None`:
/// unlimited), keeping [`RESERVED_FILES`] (or a quarter of a small limit) for the rest.
fn fit_connections(wanted: u64, soft: Option<u64>, hard: Option<u64>) -> ConnectionFit {
    let needed = wanted.saturating_add(RESERVED_FILES);
    let raise_soft_to = match (soft, hard) {
        (Some(soft), Some(hard)) if soft < needed => Some(needed.min(hard)).filter(|&n| n > soft),
        (Some(soft), None) if soft < needed => Some(needed),
        _ => None,
    };
    let max_connections = match raise_soft_to.or(soft) {
        None => wanted,
        Some(limit) => {
            let reserved = RESERVED_FILES.min(limit / 4);
            wanted.min(limit - reserved).max(1)
        }
    };
    ConnectionFit {
        raise_soft_to,
        max_connections,
    }
}

/// The soft and hard open-file limits (`None`: unlimited).
#[cfg(unix)]
fn open_file_limit() -> (Option<u64>, Option<u64>) {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    (limit.current, limit.maximum)
}

#[cfg(not(unix))]
fn open_file_limit() -> (Option<u64>, Option<u64>) {
    (None, None)
}

#[cfg(unix)]
fn set_open_file_limit(soft: u64, hard: Option<u64>) -> std::io::Result<()> {
    let limit = rustix::process::Rlimit {
        current: Some(soft),
        maximum: hard,
    };
    rustix::process::setrlimit(rustix::process::Resource::Nofile, limit).map_err(Into::into)
}

#[cfg(not(unix))]
fn set_open_file_limit(_soft: u64, _hard: Option<u64>) -> std::io::Result<()> {
    Ok(())
}

/// Connections the kernel completes and queues while the accept loop catches up. Tokio's
/// `bind` leaves it at 128: a burst of more clients than that (a platform opening many
/// connections at once, or the reply API's producers) had the rest's SYNs dropped and
/// retried after a whole second.
pub const LISTEN_BACKLOG: u32 = 1024;

/// Binds `addr` for serving, with [`LISTEN_BACKLOG`] (the kernel caps it at
/// `net.core.somaxconn`).
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // As `TcpListener::bind`: a restart may bind while old connections sit in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `router` on `listener` until `shutdown` fires, then stops accepting, lets
/// requests in flight finish for up to `grace`, and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let router = router.layer(axum::middleware::from_fn_with_state(
        RequestLimits {
            webhooks: Arc::new(Semaphore::new(limits.max_concurrent_webhooks)),
            api: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
            console: Arc::new(Semaphore::new(limits.max_concurrent_console)),
            body_read_timeout: limits.body_read_timeout,
        },
        guard,
    ));
    let service = TowerToHyperService::new(router);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let tracker = TaskTracker::new();
    loop {
        // A free connection slot first: at the limit we stop accepting rather than accept
        // and drop, so a waiting client is served as soon as a slot frees up.
        let slot = tokio::select! {
            slot = connections.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "Could not accept a connection; pausing briefly.");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(TokioIo::new(stream), service.clone());
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = shutdown.cancelled() => {
                    // Idle connections close now; one mid-request finishes it first.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "Connection closed with an error.");
            }
            drop(slot);
        });
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "Requests still running at the end of the drain; their connections close."
        );
    }
}

/// What [`guard`] needs for every request.
#[derive(Clone)]
struct RequestLimits {
    webhooks: Arc<Semaphore>,
    api: Arc<Semaphore>,
    console: Arc<Semaphore>,
    body_read_timeout: Duration,
}

impl RequestLimits {
    /// The budget a request to `path` counts against, and its name for metrics.
    fn budget(&self, path: &str) -> (&Arc<Semaphore>, &'static str) {
        if path.starts_with("/hooks/") || path.starts_with("/hubspot/") {
            (&self.webhooks, "webhooks")
        } else if path.starts_with("/api/") {
            (&self.api, "api")
        } else {
            (&self.console, "console")
        }
    }
}

/// Sheds requests past their budget's concurrency limit and puts a deadline on reading
/// the body.
async fn guard(State(limits): State<RequestLimits>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if UNLIMITED_PATHS.contains(&path) {
        return next.run(request).await;
    }
    let (budget, name) = limits.budget(path);
    let Ok(_permit) = budget.clone().try_acquire_owned() else {
        crate::telemetry::request_shed(name);
        return ApiError::unavailable(
            "overloaded",
            "too many requests at once; try again shortly",
            1,
        )
        .into_response();
    };
    let deadline = tokio::time::sleep(limits.body_read_timeout);
    let request = request.map(|body| Body::new(DeadlineBody::new(body, deadline)));
    next.run(request).await
}

/// The error a body gives when it did not arrive within `server.body_read_timeout_ms`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimeout;

/// True when `error` (or anything it wraps) is a [`BodyTimeout`].
pub fn is_body_timeout(error: &(dyn StdError + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<BodyTimeout>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// A request body that fails with [`BodyTimeout`] once its deadline passes.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
}

impl DeadlineBody {
    fn new(inner: Body, deadline: Sleep) -> Self {
        Self {
            inner,
            deadline: Box::pin(deadline),
        }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_burst_of_connections_past_tokios_default_backlog_is_queued_not_dropped() {
        // Nothing accepts: every connection must wait in the kernel's queue. A SYN the
        // queue has no room for is retried only after a second, past this timeout.
        let listener = super::listen("127.0.0.1:0".parse().unwrap()).expect("listens");
        let addr = listener.local_addr().unwrap();
        // The kernel caps the backlog at somaxconn (4096 since Linux 5.4, 128 before).
        let cap = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(4096);
        let burst = cap.min(600);
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..burst {
            clients.spawn(async move {
                let connect = tokio::net::TcpStream::connect(addr);
                tokio::time::timeout(std::time::Duration::from_millis(500), connect).await
            });
        }
        let mut queued = Vec::new();
        while let Some(outcome) = clients.join_next().await {
            if let Ok(Ok(stream)) = outcome.expect("task") {
                queued.push(stream);
            }
        }
        assert_eq!(
            queued.len(),
            burst,
            "connections the listener's queue dropped"
        );
    }

    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn max_connections_fit_the_open_file_limit_raising_the_soft_limit_first() {
        let fit = |wanted, soft, hard| {
            let f = fit_connections(wanted, soft, hard);
            (f.raise_soft_to, f.max_connections)
        };
        // (wanted, soft, hard) -> (raise the soft limit to, connections served)
        let cases = [
            // Room enough: nothing changes.
            ((10_000, Some(1 << 20), Some(1 << 20)), (None, 10_000)),
            ((10_000, None, None), (None, 10_000)),
            // The usual 1024 soft limit under a high hard one: raised, all fit.
            ((10_000, Some(1024), Some(524_288)), (Some(10_256), 10_000)),
            ((10_000, Some(1024), None), (Some(10_256), 10_000)),
            // The hard limit is too low: raised to it, and the connections clamped.
            ((10_000, Some(1024), Some(4096)), (Some(4096), 3840)),
            // Soft already at the hard limit: clamped only.
            ((10_000, Some(1024), Some(1024)), (None, 768)),
            // A tiny limit keeps a quarter for the rest, and at least one connection.
            ((10_000, Some(100), Some(100)), (None, 75)),
            ((10_000, Some(1), Some(1)), (None, 1)),
        ];
        for ((wanted, soft, hard), expected) in cases {
            assert_eq!(
                fit(wanted, soft, hard),
                expected,
                "{wanted} connections, soft {soft:?}, hard {hard:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_body_that_stalls_past_its_deadline_fails_with_body_timeout() {
        use futures_util::StreamExt;
        // One chunk, then nothing more, ever: a client that stopped sending.
        let stalled = futures_util::stream::once(async {
            Ok::<_, std::io::Error>(Bytes::from_static(b"part"))
        })
        .chain(futures_util::stream::pending());
        let body = DeadlineBody::new(
            Body::from_stream(stalled),
            tokio::time::sleep(Duration::from_millis(50)),
        );
        let error = body.collect().await.expect_err("the deadline passes");
        assert!(is_body_timeout(&*error), "{error}");
    }
}
