//! Refuses `/api/v1` query parameters an operation does not declare: `?chanel=tg` is a
//! typo, and answering it with the unfiltered list would look like an answer. The
//! declared parameters are read from the OpenAPI document, which the handlers'
//! annotations build, so the set accepted is the set documented, for every operation,
//! including ones added later. This module knows the document, not the handlers.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::Caller;
use crate::app::AppState;
use crate::error::ApiError;

/// `(method, path template)` → the query parameters its operation declares.
type Declared = HashMap<(String, String), BTreeSet<String>>;

/// The declared query parameters of every `/api/v1` operation of `document`.
fn declared(document: &Value) -> Declared {
    let mut out = Declared::new();
    let Some(paths) = document["paths"].as_object() else {
        return out;
    };
    for (path, item) in paths.iter().filter(|(p, _)| p.starts_with("/api/v1/")) {
        let Some(operations) = item.as_object() else {
            continue;
        };
        for (method, operation) in operations {
            let names = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect();
            out.insert((method.to_ascii_lowercase(), path.clone()), names);
        }
    }
    out
}

static DECLARED: LazyLock<Declared> = LazyLock::new(|| {
    let document = serde_json::to_value(super::openapi::document()).unwrap_or_default();
    declared(&document)
});

/// The first parameter of `raw` that is not in `known`, with what is, as a 422.
fn check(raw: &str, known: &BTreeSet<String>) -> Result<(), ApiError> {
    // A query that is not form-encoded is refused by the handler that reads it.
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).unwrap_or_default();
    let Some(unknown) = pairs.iter().map(|(k, _)| k).find(|k| !known.contains(*k)) else {
        return Ok(());
    };
    let takes = if known.is_empty() {
        "it takes none".to_owned()
    } else {
        let names: Vec<&str> = known.iter().map(String::as_str).collect();
        format!("it takes {}", names.join(", "))
    };
    Err(ApiError::unprocessable(format!(
        "{unknown}: not a parameter of this operation ({takes})"
    )))
}

/// Answers 422 naming the first undeclared query parameter of an `/api/v1` request. An
/// unauthenticated caller gets its 401 first, as from the handler.
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let known = request
        .extensions()
        .get::<MatchedPath>()
        .filter(|p| p.as_str().starts_with("/api/v1/"))
        .and_then(|p| {
            let method = request.method().as_str().to_ascii_lowercase();
            DECLARED.get(&(method, p.as_str().to_owned()))
        });
    if let (Some(known), Some(raw)) = (known, request.uri().query())
        && let Err(refusal) = check(raw, known)
    {
        let (mut parts, _body) = request.into_parts();
        if let Err(unauthorized) = Caller::from_request_parts(&mut parts, &state).await {
            return unauthorized.into_response();
        }
        return refusal.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undeclared_parameter_is_refused_by_name_and_declared_ones_pass() {
        let known: BTreeSet<String> = ["channel", "limit"].map(String::from).into();
        assert!(check("channel=tg&limit=5", &known).is_ok());
        assert!(check("", &known).is_ok());
        let refusal = check("limit=5&chanel=tg", &known).unwrap_err();
        assert_eq!(refusal.status, 422);
        assert_eq!(
            refusal.message,
            "chanel: not a parameter of this operation (it takes channel, limit)"
        );
        let refusal = check("limit=5", &BTreeSet::new()).unwrap_err();
        assert_eq!(
            refusal.message,
            "limit: not a parameter of this operation (it takes none)"
        );
    }

    #[test]
    fn the_declared_parameters_are_the_documents() {
        let document = serde_json::to_value(super::super::openapi::document()).unwrap();
        let declared = declared(&document);
        let list = &declared[&("get".to_owned(), "/api/v1/conversations".to_owned())];
        for name in ["channel", "owner", "ticket_status", "limit", "cursor"] {
            assert!(list.contains(name), "{name}: {list:?}");
        }
        let show = &declared[&("get".to_owned(), "/api/v1/conversations/{id}".to_owned())];
        assert!(show.is_empty(), "{show:?}");
        assert!(
            !declared.keys().any(|(_, path)| path.starts_with("/hooks/")),
            "platforms choose their webhooks' query parameters"
        );
    }
}
