//! Signing in with an API token, the session cookie, and CSRF.
//!
//! Sessions are rows in the store (`console_sessions`), not signed cookies: every replica
//! reads the same rows, so a browser signed in on one is signed in on all, and signing out
//! ends the session everywhere at once (a signed cookie would stay valid until it expired).
//! The cookie carries a random secret; the store keeps only its SHA-256, and the SHA-256 of
//! the token signed in with, so removing or rotating that token in the config ends its
//! sessions at the next request. Role, rep and scope are read from the live config on
//! every request, as the API does for a bearer token.

use axum::extract::{FromRequestParts, OptionalFromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::html;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{PageError, layout};
use crate::api::Caller;
use crate::app::AppState;
use crate::error::ApiError;
use crate::store::ConsoleSession;

/// The session cookie's name.
pub const COOKIE: &str = "cb_session";
/// The sign-in form's own CSRF cookie (double submit): there is no session yet.
const LOGIN_COOKIE: &str = "cb_login";
/// How long a session lasts from sign-in.
pub const LIFETIME: chrono::Duration = chrono::Duration::hours(12);

/// A signed-in person: the caller their token makes, and their forms' CSRF token.
#[derive(Clone, Debug)]
pub struct Console {
    pub caller: Caller,
    pub csrf: String,
    id_hash: String,
}

impl Console {
    /// Succeeds when a form sent this session's CSRF token.
    pub fn check_csrf(&self, form: &Fields) -> Result<(), PageError> {
        let sent = form.get("_csrf").unwrap_or_default();
        if bool::from(sent.as_bytes().ct_eq(self.csrf.as_bytes())) {
            Ok(())
        } else {
            Err(PageError(ApiError::forbidden(
                "this form is out of date (or not from this console); reload the page and send it again",
            )))
        }
    }

    /// Succeeds when a script's request sent this session's CSRF token in `X-CSRF-Token`.
    pub fn check_csrf_header(&self, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
        let sent = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if bool::from(sent.as_bytes().ct_eq(self.csrf.as_bytes())) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this page is out of date (or not from this console); reload it and attach again",
            ))
        }
    }

    pub fn is_admin(&self) -> bool {
        self.caller.require_admin().is_ok()
    }
}

/// A posted form's fields in order; a name may repeat.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, if it is not blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every non-blank field whose name starts with `prefix`, without it.
    pub fn prefixed<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.0.iter().filter_map(move |(k, v)| {
            k.strip_prefix(prefix)
                .filter(|_| !v.trim().is_empty())
                .map(|k| (k, v.as_str()))
        })
    }
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn random_hex(bytes: usize) -> Result<String, ApiError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("no randomness for a session: {e}"),
        )
    })?;
    Ok(hex::encode(buf))
}

/// The value of cookie `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The session this request's cookie names, if it is live and its token still configured.
async fn find(parts: &Parts, state: &AppState) -> Result<Option<Console>, ApiError> {
    let Some(secret) = cookie(&parts.headers, COOKIE).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let id_hash = sha256_hex(secret);
    let Some(session) = state.store.session(&id_hash, Utc::now()).await? else {
        return Ok(None);
    };
    let runtime = state.runtime.load();
    let Some(token) = runtime
        .config
        .api
        .tokens
        .iter()
        .find(|t| hex::encode(t.sha256) == session.token_sha256)
    else {
        return Ok(None);
    };
    Ok(Some(Console {
        caller: Caller {
            name: token.name.clone(),
            role: token.role,
            rep: token.rep.clone(),
            scope: crate::desk::inboxes::scope(&runtime.config, token.role, token.rep.as_deref()),
        },
        csrf: session.csrf,
        id_hash,
    }))
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match find(parts, state).await {
            Ok(Some(console)) => Ok(console),
            Ok(None) => Err(Redirect::to("/login").into_response()),
            Err(e) => Err(PageError(e).into_response()),
        }
    }
}

impl OptionalFromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Response> {
        find(parts, state)
            .await
            .map_err(|e| PageError(e).into_response())
    }
}

/// `; Secure` when the console is served over https (`server.public_url`).
fn secure(state: &AppState) -> &'static str {
    let runtime = state.runtime.load();
    match runtime.config.server.public_url.as_deref() {
        Some(url) if url.starts_with("https://") => "; Secure",
        _ => "",
    }
}

fn set_cookie(value: String) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(&value).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "cannot set the cookie",
        )
    })
}

/// `GET /login`: the sign-in form.
pub async fn login_page(State(state): State<AppState>) -> Result<Response, PageError> {
    sign_in_form(&state, StatusCode::OK, None)
}

fn sign_in_form(
    state: &AppState,
    status: StatusCode,
    error: Option<&str>,
) -> Result<Response, PageError> {
    let nonce = random_hex(16)?;
    let body = layout::bare(
        "Sign in",
        html! {
            section.signin {
                h1 { "channel-bridge" }
                p { "Sign in with your API token (the one you use for the REST API)." }
                @if let Some(error) = error { p.error role="alert" { (error) } }
                form method="post" action="/login" {
                    input type="hidden" name="_csrf" value=(nonce);
                    label for="token" { "API token" }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    button type="submit" { "Sign in" }
                }
            }
        },
    );
    let cookie = set_cookie(format!(
        "{LOGIN_COOKIE}={nonce}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=900{}",
        secure(state)
    ))?;
    let mut response = (status, body).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

/// `POST /login`: a configured token starts a session.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<Fields>,
) -> Result<Response, PageError> {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    let sent = form.get("_csrf").unwrap_or_default();
    if expected.is_empty() || !bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
        return sign_in_form(
            &state,
            StatusCode::FORBIDDEN,
            Some("The sign-in form expired; please sign in again."),
        );
    }
    let presented = form.get("token").unwrap_or_default().trim().to_owned();
    let token_sha256 = {
        let runtime = state.runtime.load();
        match runtime.token(&presented) {
            Some(token) => hex::encode(token.sha256),
            None => {
                return sign_in_form(
                    &state,
                    StatusCode::UNAUTHORIZED,
                    Some("That is not a token this daemon knows."),
                );
            }
        }
    };
    let secret = random_hex(32)?;
    let now = Utc::now();
    state
        .store
        .create_session(&ConsoleSession {
            id_hash: sha256_hex(&secret),
            token_sha256,
            csrf: random_hex(32)?,
            created_at: now,
            expires_at: now + LIFETIME,
        })
        .await
        .map_err(ApiError::from)?;
    let mut response = Redirect::to("/inbox").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(format!(
            "{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            LIFETIME.num_seconds(),
            secure(&state)
        ))?,
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(format!("{LOGIN_COOKIE}=; Path=/login; Max-Age=0"))?,
    );
    Ok(response)
}

/// `POST /logout`: ends the session in the store (on every replica) and drops the cookie.
pub async fn logout(
    State(state): State<AppState>,
    console: Console,
    axum::Form(form): axum::Form<Fields>,
) -> Result<Response, PageError> {
    console.check_csrf(&form)?;
    state
        .store
        .delete_session(&console.id_hash)
        .await
        .map_err(ApiError::from)?;
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(format!(
            "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            secure(&state)
        ))?,
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; cb_session=abc; cb_login=n"),
        );
        assert_eq!(cookie(&headers, COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), Some("n"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn blank_form_fields_count_as_not_sent() {
        let form = Fields(vec![
            ("text".into(), "  ".into()),
            ("text".into(), "hi".into()),
            ("prop.order".into(), "42".into()),
            ("prop.empty".into(), "".into()),
        ]);
        assert_eq!(form.get("text"), Some("hi"));
        assert_eq!(
            form.prefixed("prop.").collect::<Vec<_>>(),
            vec![("order", "42")]
        );
    }
}
