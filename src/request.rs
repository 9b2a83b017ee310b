//! One span per HTTP request, named by a request id that the answer carries back in
//! `x-request-id`. A caller (a proxy, the in-house app) may send its own id so that its
//! logs and ours name the same request; anything else gets a fresh `req_…` id. The span
//! carries the channel and the conversation the request concerns, so every log line
//! written while handling it says which ones. This module knows URLs, not handlers.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing::field::Empty;

/// The header that carries the request id both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a caller; longer ones are replaced, so a client
/// cannot flood every log line of its requests.
const MAX_ID_LEN: usize = 128;

/// The caller's request id if it is short and plain (letters, digits, `-_.:/+=@`),
/// else a new one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| acceptable(id))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("req_{}", ulid::Ulid::new()))
}

/// Whether a caller's id may be used as is: it ends up in logs and headers verbatim.
fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b))
}

/// The channel and conversation a request path names: `/hooks/{channel}` and
/// `/api/v1/conversations/{id}/…`.
fn subject(path: &str) -> (Option<&str>, Option<&str>) {
    let mut segments = path.trim_start_matches('/').split('/');
    match (segments.next(), segments.next(), segments.next()) {
        (Some("hooks"), Some(channel), _) if !channel.is_empty() => (Some(channel), None),
        (Some("api"), Some("v1"), Some("conversations")) => {
            (None, segments.next().filter(|id| id.starts_with("conv_")))
        }
        _ => (None, None),
    }
}

/// Wraps every request in its span and answers with its id in `x-request-id`.
pub async fn layer(request: Request, next: Next) -> Response {
    let id = request_id(request.headers());
    let path = request.uri().path();
    let (channel, conversation) = subject(path);
    // The path, never the query: a query may carry a platform's verify token. At level
    // ERROR so that the span is there whatever RUST_LOG lets through: a warning logged
    // with RUST_LOG=warn still names its request.
    let span = tracing::error_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %path,
        channel = Empty,
        conversation_id = Empty,
    );
    if let Some(channel) = channel {
        span.record("channel", channel);
    }
    if let Some(conversation) = conversation {
        span.record("conversation_id", conversation);
    }
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "Answered a request."
        )
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Names the conversation a request turned out to concern (e.g. the one a webhook's
/// message was threaded into) on the current request's span.
pub fn record_conversation(conversation: &str) {
    tracing::Span::current().record("conversation_id", conversation);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_caller_id_is_kept_and_anything_else_is_replaced() {
        let cases = [
            ("abc-123", true),
            ("trace:00f067aa0ba902b7/1", true),
            ("", false),
            ("has space", false),
            ("new\nline", false),
            ("quote\"", false),
            ("ü", false),
        ];
        for (id, kept) in cases {
            assert_eq!(acceptable(id), kept, "{id:?}");
        }
        assert!(acceptable(&"a".repeat(MAX_ID_LEN)));
        assert!(!acceptable(&"a".repeat(MAX_ID_LEN + 1)));

        let mut headers = HeaderMap::new();
        assert!(request_id(&headers).starts_with("req_"));
        headers.insert(REQUEST_ID, HeaderValue::from_static("from-the-proxy"));
        assert_eq!(request_id(&headers), "from-the-proxy");
        headers.insert(REQUEST_ID, HeaderValue::from_static("two words"));
        assert!(request_id(&headers).starts_with("req_"));
    }

    #[test]
    fn the_path_names_the_channel_or_the_conversation() {
        let cases = [
            ("/hooks/demo", (Some("demo"), None)),
            ("/hooks/", (None, None)),
            (
                "/api/v1/conversations/conv_01J/messages",
                (None, Some("conv_01J")),
            ),
            ("/api/v1/conversations/conv_01J", (None, Some("conv_01J"))),
            ("/api/v1/conversations", (None, None)),
            ("/api/v1/tickets/tkt_01J", (None, None)),
            ("/metrics", (None, None)),
        ];
        for (path, expected) in cases {
            assert_eq!(subject(path), expected, "{path}");
        }
    }
}
