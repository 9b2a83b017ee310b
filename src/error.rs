//! The one place errors become HTTP answers: `{"error": {"code", "message"}}` with the
//! right status. Internal details are logged here and never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::adapters::{ParseError, VerifyError};
use crate::store::StoreError;

/// The body of every error answer: `{"error": {"code": "…", "message": "…"}}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "not_found", "message": "conversation not found"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable `code` for programs and a `message` for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and snake_case (`invalid_signature`, `not_found`, `invalid_request`, …).
    pub code: &'static str,
    /// Says what to fix; for a refused field it starts with the field's path.
    pub message: String,
}

/// An error answer of the HTTP API or the webhook ingress.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, sent as `Retry-After` (on 503s).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    }
}

/// `message` without the position serde_json appends (`… at line 1 column 12`): where
/// the parser stopped is an internal of the parser, not something the caller can act on.
pub fn without_position(message: &str) -> &str {
    let Some(at) = message.rfind(" at line ") else {
        return message;
    };
    let position = &message[at + " at line ".len()..];
    let is_position = position
        .split_once(" column ")
        .is_some_and(|(line, column)| {
            [line, column]
                .iter()
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
    if is_position { &message[..at] } else { message }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let chain = crate::store::Chain(&e).to_string();
        match e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Invalid(message) => ApiError::unprocessable(message),
            StoreError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            StoreError::Merged(into) => ApiError::new(
                StatusCode::NOT_FOUND,
                "contact_merged",
                format!("contact was merged into {into}"),
            ),
            StoreError::Unavailable(_) | StoreError::Contended(_) => {
                tracing::warn!(error = %chain, "Storage unavailable; answering 503.");
                ApiError::unavailable(
                    "storage_unavailable",
                    "storage is unavailable; try again shortly",
                    5,
                )
            }
            StoreError::Internal(_) => {
                tracing::error!(error = %chain, "Storage error.");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

impl From<VerifyError> for ApiError {
    fn from(e: VerifyError) -> Self {
        let status = match e {
            VerifyError::NoInbound => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::UNAUTHORIZED,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::UnsupportedMediaType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                e.to_string(),
            ),
            ParseError::Malformed(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                without_position(&e.to_string()),
            ),
            ParseError::Invalid { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_event",
                without_position(&e.to_string()),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED && self.code == "unauthorized" {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parsers_position_is_cut_from_messages_and_nothing_else_is() {
        let cases = [
            ("expected value at line 1 column 12", "expected value"),
            (
                "invalid type: string \"x\", expected a sequence at line 3 column 40",
                "invalid type: string \"x\", expected a sequence",
            ),
            ("EOF while parsing an object", "EOF while parsing an object"),
            ("meet at line 5", "meet at line 5"),
            ("at line a column 2", "at line a column 2"),
        ];
        for (message, expected) in cases {
            assert_eq!(without_position(message), expected, "{message}");
        }
    }
}
