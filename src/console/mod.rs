//! The web console served at `/`: the inbox, a conversation with its ticket, and the
//! operations page, as server-rendered HTML with a little JavaScript for live updates and
//! keyboard use. It holds no rules of its own: every page and form calls the REST API's
//! handlers (`crate::api`) as functions, with the [`Caller`](crate::api::Caller) the
//! session's token makes, so a person sees and does exactly what that token may through
//! the API, and is refused the same way (a 422 is shown in place, a conversation of
//! another inbox is a 404 page).

mod conversation;
mod inbox;
mod layout;
mod ops;
mod session;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;

use crate::app::AppState;
use crate::error::ApiError;

pub use session::Console;

/// The strict policy every console answer carries: scripts, styles and media only from
/// this origin (no inline script or style), no framing, forms post only here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// The console's routes. They are HTML pages and form posts, not API operations, so they
/// are not in `/api/openapi.json`; `routes!` cannot add a route without an OpenAPI
/// operation, hence the plain axum routes, registered here and nowhere else.
#[allow(clippy::disallowed_methods)]
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/inbox", get(inbox::page))
        .route("/presence", post(inbox::presence))
        .route("/c/{id}", get(conversation::page))
        .route("/c/{id}/reply", post(conversation::reply))
        .route("/console/uploads", post(conversation::upload))
        .route("/c/{id}/comment", post(conversation::comment))
        .route("/c/{id}/update", post(conversation::update))
        .route("/t/{id}/update", post(conversation::update_ticket))
        .route("/contacts/{id}/merge", post(conversation::merge))
        .route("/deliveries/{id}/retry", post(ops::retry))
        .route("/ops", get(ops::page))
        .route("/console/events", get(inbox::events))
        .route("/console/media/{id}/{n}", get(conversation::media))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .layer(axum::middleware::from_fn(security_headers))
}

/// `/`: the inbox when signed in, else the sign-in page.
async fn home(console: Option<Console>) -> Redirect {
    match console {
        Some(_) => Redirect::to("/inbox"),
        None => Redirect::to("/login"),
    }
}

/// Headers that keep every console answer out of frames and sniffing, under the CSP, and
/// out of shared caches (pages show one person's data).
async fn security_headers(request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !is_asset && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The stylesheet, embedded at compile time.
pub const CSS: &str = include_str!("assets/console.css");
/// The script, embedded at compile time: live updates, keyboard, form helpers.
pub const JS: &str = include_str!("assets/console.js");

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// An API answer as JSON, for pages that show what the API says.
fn json<T: Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// A refusal from the API as the console shows it: a page with the same status, or the
/// sign-in page for an unknown or revoked token.
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = self.0;
        if e.status == StatusCode::UNAUTHORIZED {
            return Redirect::to("/login").into_response();
        }
        let title = match e.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::UNPROCESSABLE_ENTITY => "Not accepted",
            s if s.is_server_error() => "Unavailable",
            _ => "Refused",
        };
        let message = match e.status {
            // Same words as an unknown id: a conversation of another inbox does not exist
            // for this person.
            StatusCode::NOT_FOUND => format!(
                "No such {}, or not one of yours.",
                e.message.trim_end_matches(" not found")
            ),
            _ => e.message.clone(),
        };
        let body = layout::bare(
            title,
            maud::html! {
                section.error-page {
                    h1 { (title) }
                    p.error { (message) }
                    p { a href="/inbox" { "Back to the inbox" } }
                }
            },
        );
        (e.status, body).into_response()
    }
}

/// A redirect target from a form, kept on this site: a path, never `//host` or a URL.
fn local_path(raw: Option<&str>, fallback: &str) -> String {
    match raw {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_owned(),
        _ => fallback.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_after_a_form_stay_on_this_site() {
        assert_eq!(local_path(Some("/c/x"), "/inbox"), "/c/x");
        assert_eq!(local_path(Some("//evil.example/"), "/inbox"), "/inbox");
        assert_eq!(
            local_path(Some("https://evil.example/"), "/inbox"),
            "/inbox"
        );
        assert_eq!(local_path(Some("/\\evil.example"), "/inbox"), "/inbox");
        assert_eq!(local_path(None, "/inbox"), "/inbox");
    }

    #[test]
    fn the_policy_forbids_inline_script_and_framing() {
        assert!(CSP.contains("script-src 'self'"));
        assert!(!CSP.contains("unsafe-inline"));
        assert!(CSP.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn the_script_sets_no_inline_style_or_html_from_event_text() {
        // Event text reaches the page only through textContent; markup comes from the
        // server's own (escaped) pages.
        assert!(!JS.contains("eval("));
        assert!(!JS.contains(".style."));
    }
}
