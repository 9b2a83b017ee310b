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
//! - at most `server.max_concurrent_requests` are handled at once: past it a request is
//!   shed at once with 503 `overloaded` and `Retry-After`, which platforms redeliver on.
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

/// The listener's limits, read from `[server]` at start-up.
#[derive(Clone, Debug)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    pub max_concurrent_requests: usize,
}

impl Limits {
    /// The limits `[server]` configures.
    pub fn from_config(server: &ServerConfig) -> Self {
        Self {
            header_read_timeout: Duration::from_millis(server.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(server.body_read_timeout_ms),
            max_connections: server.max_connections,
            max_concurrent_requests: server.max_concurrent_requests,
        }
    }
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
    let requests = Arc::new(Semaphore::new(limits.max_concurrent_requests));
    let router = router.layer(axum::middleware::from_fn_with_state(
        RequestLimits {
            requests,
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
    requests: Arc<Semaphore>,
    body_read_timeout: Duration,
}

/// Sheds requests past the concurrency limit and puts a deadline on reading the body.
async fn guard(State(limits): State<RequestLimits>, request: Request, next: Next) -> Response {
    if UNLIMITED_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let Ok(_permit) = limits.requests.clone().try_acquire_owned() else {
        crate::telemetry::request_shed();
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
    use super::*;
    use http_body_util::BodyExt;

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
