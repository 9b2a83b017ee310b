//! Contacts: who is on the other side, with their identifiers, owner and email.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::ToSchema;

use super::openapi::{JsonBodyErrors, StoreErrors, Unauthorized};
use super::{Caller, JsonBody};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::model::{Contact, ContactId};
use crate::store::ContactUpdate;

fn contact_id(raw: &str) -> Result<ContactId, ApiError> {
    ContactId::parse(raw).ok_or_else(|| ApiError::not_found("contact"))
}

/// One contact with the identifiers that reach them on each channel.
#[utoipa::path(
    get,
    path = "/api/v1/contacts/{id}",
    operation_id = "get_contact",
    tag = "contacts",
    security(("bearer" = [])),
    params(("id" = ContactId, Path, description = "The contact.")),
    responses(
        (status = 200, description = "The contact.", body = Contact),
        (status = 404, description = "No such contact (`not_found`).", body = ErrorBody),
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Contact>, ApiError> {
    Ok(Json(state.store.contact(&contact_id(&id)?).await?))
}

/// `{"owner_id"?: "alice" | null, "email"?: "…" | null}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ContactUpdate)]
pub struct UpdateRequest {
    /// A rep id, or `null` to clear; leave out to keep.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    owner_id: Option<Option<String>>,
    /// An email address, or `null` to clear; leave out to keep.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>, format = Email)]
    email: Option<Option<String>>,
}

/// Changes a contact's owner or email.
#[utoipa::path(
    patch,
    path = "/api/v1/contacts/{id}",
    operation_id = "update_contact",
    tag = "contacts",
    security(("bearer" = [])),
    params(("id" = ContactId, Path, description = "The contact.")),
    request_body = UpdateRequest,
    responses(
        (status = 200, description = "The contact as it is now.", body = Contact),
        (status = 404, description = "No such contact (`not_found`).", body = ErrorBody),
        JsonBodyErrors,
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<UpdateRequest>,
) -> Result<Json<Contact>, ApiError> {
    let id = contact_id(&id)?;
    if let Some(Some(owner)) = &request.owner_id {
        let runtime = state.runtime.load();
        if !runtime.config.reps.iter().any(|r| &r.id == owner) {
            return Err(ApiError::unprocessable(format!(
                "owner_id: no rep {owner:?} in the config"
            )));
        }
    }
    if let Some(Some(email)) = &request.email
        && !email.contains('@')
    {
        return Err(ApiError::unprocessable(format!(
            "email: {email:?} is not an email address"
        )));
    }
    let update = ContactUpdate {
        owner_id: request.owner_id,
        email: request.email,
    };
    Ok(Json(state.store.update_contact(&id, update).await?))
}
