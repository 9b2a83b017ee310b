//! The rep and admin REST API (`/api/v1`) and the operational endpoints. Handlers
//! translate HTTP to store calls and back; rules live in `desk`, errors map in `error`.
//! The web console (`crate::console`) calls these handlers as functions, so it follows
//! exactly the same rules.

mod access;
pub(crate) mod analytics;
pub(crate) mod channels;
pub(crate) mod comments;
pub(crate) mod contacts;
pub(crate) mod conversations;
pub(crate) mod deliveries;
pub(crate) mod events;
mod inboxes;
pub(crate) mod media;
pub mod openapi;
pub mod ops;
pub mod params;
pub(crate) mod reps;
pub(crate) mod snippets;
pub(crate) mod tickets;
pub(crate) mod uploads;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::config::Role;
use crate::desk::inboxes::Scope;
use crate::error::ApiError;
use crate::store::PageRequest;

/// The `/api/v1` routes with their OpenAPI operations. Each `routes!` takes the handlers
/// of one path (their annotations name it): handlers of different paths in one `routes!`
/// would each be served on every one of those paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(conversations::list))
        .routes(routes!(
            conversations::show,
            conversations::update,
            conversations::delete
        ))
        .routes(routes!(conversations::messages, conversations::reply))
        .routes(routes!(comments::create))
        .routes(routes!(media::fetch))
        .routes(routes!(uploads::create))
        .routes(routes!(tickets::list))
        .routes(routes!(tickets::show, tickets::update, tickets::delete))
        .routes(routes!(tickets::history))
        .routes(routes!(tickets::restore))
        .routes(routes!(contacts::create))
        .routes(routes!(contacts::show, contacts::update))
        .routes(routes!(contacts::conversations))
        .routes(routes!(contacts::merge))
        .routes(routes!(contacts::history))
        .routes(routes!(inboxes::list))
        .routes(routes!(snippets::list, snippets::create))
        .routes(routes!(snippets::show, snippets::update, snippets::delete))
        .routes(routes!(deliveries::list))
        .routes(routes!(deliveries::retry))
        .routes(routes!(deliveries::summary))
        .routes(routes!(channels::list))
        .routes(routes!(events::stream))
        .routes(routes!(reps::list))
        .routes(routes!(reps::presence))
        .routes(routes!(reps::notifications))
        .routes(routes!(analytics::report))
}

/// The authenticated caller of an API request, with what they may see under the config
/// of the moment the request started.
#[derive(Clone, Debug)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// The rep the token acts as (`rep` in `[[api.tokens]]`).
    pub rep: Option<String>,
    /// The channels of the caller's inboxes (everything for admins).
    pub scope: Scope,
}

impl Caller {
    /// Who the caller's actions are attributed to: their rep, else the token's name.
    pub fn author(&self) -> String {
        self.rep.clone().unwrap_or_else(|| self.name.clone())
    }

    /// The caller as a message's sender: their rep, or the token itself when it is bound
    /// to no rep (never a rep named like the token).
    pub fn sender(&self) -> crate::model::Sender {
        use crate::model::{Sender, SenderKind};
        match &self.rep {
            Some(rep) => Sender {
                kind: SenderKind::Rep,
                id: rep.clone(),
            },
            None => Sender {
                kind: SenderKind::Token,
                id: self.name.clone(),
            },
        }
    }

    /// The caller as the audit trail names them.
    pub fn actor(&self) -> crate::store::Actor {
        crate::store::Actor::of(&self.sender())
    }

    /// Whether the caller may see and act on this channel's conversations.
    pub fn sees(&self, channel: &str) -> bool {
        self.scope.allows(channel)
    }

    /// Succeeds if the caller may change this rep's own settings (presence,
    /// notifications): they are that rep, or an admin. Those settings steer routing and
    /// email, so a rep cannot set them for a colleague.
    pub fn require_self_or_admin(&self, rep: &str) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Rep if self.rep.as_deref() == Some(rep) => Ok(()),
            Role::Rep => Err(ApiError::forbidden(
                "a rep token changes only its own rep's settings",
            )),
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Rep => Err(ApiError::forbidden("this needs an admin token")),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer <token>"))?;
        let runtime = state.runtime.load();
        let token = runtime
            .token(presented)
            .ok_or_else(|| ApiError::unauthorized("unknown token"))?;
        Ok(Caller {
            name: token.name.clone(),
            role: token.role,
            rep: token.rep.clone(),
            scope: crate::desk::inboxes::scope(&runtime.config, token.role, token.rep.as_deref()),
        })
    }
}

/// A caller with an admin token: a rep token is refused with 403 before the body is read,
/// so a rep learns nothing from validation errors.
pub struct AdminCaller(pub Caller);

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require_admin()?;
        Ok(AdminCaller(caller))
    }
}

/// A JSON request body: 415 unless `application/json`, 413 over `max_body_bytes`, 400 if
/// it is not JSON, 422 naming the field if it does not fit `T`; a NUL in it becomes U+FFFD.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let content_type = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            });
        if content_type.as_deref() != Some("application/json") {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let limit = state.runtime.load().config.server.max_body_bytes;
        let bytes = read_body(request.into_body(), limit).await?;
        // serde reads a struct from an array too (`[null, null]` as its fields in order);
        // every body here is an object.
        if bytes.trim_ascii_start().starts_with(b"[") {
            return Err(ApiError::unprocessable(
                "body: must be a JSON object, not an array",
            ));
        }
        // PostgreSQL cannot store a NUL and SQLite can: one rule for both (model::nul).
        let bytes = crate::model::nul::replace_nul_in_json(&bytes);
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            // serde_json says where it stopped reading ("at line 1 column 12"): the
            // parser's position, which names nothing the caller wrote.
            let what = crate::error::without_position(&inner.to_string()).to_owned();
            if inner.is_data() {
                let field = crate::model::field_path("", &path, &what);
                let field = if field.is_empty() {
                    "body".into()
                } else {
                    field
                };
                ApiError::unprocessable(format!("{field}: {what}"))
            } else {
                ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "malformed_json",
                    format!("body is not valid JSON: {what}"),
                )
            }
        })?;
        Ok(JsonBody(value))
    }
}

/// Reads a whole body, refusing it with 413 past `limit` bytes.
pub async fn read_body(body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::payload_too_large(limit))
        }
        Err(e) if crate::server::is_body_timeout(&*e) => Err(ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the body did not arrive within server.body_read_timeout_ms; send it again",
        )),
        Err(e) => Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "unreadable_body",
            format!("could not read the body: {e}"),
        )),
    }
}

/// Reads a query string into `T`, answering 422 naming the parameter when it does not fit.
pub fn query<T: DeserializeOwned>(raw: Option<&str>) -> Result<T, ApiError> {
    serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|e| ApiError::unprocessable(format!("query: {e}")))
}

/// For `Option<Option<T>>` fields: tells a field sent as `null` (`Some(None)`: clear it)
/// from one not sent (`None`: leave it).
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Some(Option::deserialize(d)?))
}

/// A query parameter's value, `None` when it is absent. An empty value is refused with
/// 422 naming the parameter: `?channel=` filters on no channel, it does not mean "all".
pub(crate) fn given(name: &str, raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw {
        Some(value) if value.is_empty() => Err(ApiError::unprocessable(format!(
            "{name}: must not be empty; leave the parameter out instead"
        ))),
        other => Ok(other),
    }
}

/// Reads an optional RFC 3339 query parameter, answering 422 naming it when it is not one
/// (an empty value is not one).
pub(crate) fn time(
    name: &str,
    raw: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    match raw {
        None => Ok(None),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&chrono::Utc)))
            .map_err(|_| ApiError::unprocessable(format!("{name}: {s:?} is not an RFC 3339 time"))),
    }
}

/// Paging parameters shared by every list. `limit` is read as text because it is
/// flattened into each list's query struct, and serde's flatten hands query values over as
/// strings.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// How many items to answer at most, from 1; a page holds at most 200, so a larger
    /// number is served as 200 (`next_cursor` says whether more follow).
    #[param(value_type = Option<i64>, minimum = 1, default = 50)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page; leave it out (or empty) for the first
    /// page. Cursors are opaque: one this server did not give is refused (422).
    cursor: Option<String>,
}

/// The 422 for a `limit` that is not a whole number from 1.
fn limit_refused(raw: &str) -> ApiError {
    ApiError::unprocessable(format!(
        "limit: must be a whole number from 1 to 9223372036854775807 (at most {MAX_PAGE} are \
         served), not {raw:?}"
    ))
}

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;

impl Paging {
    pub fn page(self) -> Result<PageRequest, ApiError> {
        let limit = match self.limit.as_deref() {
            None => DEFAULT_PAGE,
            // More than a page holds gets a full page, as it always has: clients written
            // against that (asking for 500) keep working, and `next_cursor` tells them
            // whether more follow. Up to the document's int64, as it says.
            Some(raw) => match raw.parse::<i64>() {
                Ok(limit) if limit >= 1 && raw.bytes().all(|b| b.is_ascii_digit()) => {
                    u32::try_from(limit).map_or(MAX_PAGE, |l| l.min(MAX_PAGE))
                }
                _ => return Err(limit_refused(raw)),
            },
        };
        Ok(PageRequest {
            limit,
            cursor: self.cursor.filter(|c| !c.is_empty()),
        })
    }
}
