//! Contacts: who is on the other side, with their identifiers, owner and email.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::{Caller, JsonBody};
use crate::app::AppState;
use crate::error::ApiError;
use crate::model::{Contact, ContactId};
use crate::store::ContactUpdate;

fn contact_id(raw: &str) -> Result<ContactId, ApiError> {
    ContactId::parse(raw).ok_or_else(|| ApiError::not_found("contact"))
}

pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Contact>, ApiError> {
    Ok(Json(state.store.contact(&contact_id(&id)?).await?))
}

/// `{"owner_id"?: "alice" | null, "email"?: "…" | null}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    #[serde(default, deserialize_with = "super::present")]
    owner_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::present")]
    email: Option<Option<String>>,
}

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
