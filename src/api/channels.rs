//! The configured channels and whether they are taking traffic.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::Caller;
use super::openapi::{StoreErrors, Unauthorized};
use crate::app::AppState;
use crate::config::Threading;
use crate::error::ApiError;
use crate::reload::ReloadStatus;

/// A configured channel as operators see it.
#[derive(Serialize, ToSchema)]
#[schema(as = Channel)]
pub struct ChannelInfo {
    /// The channel's table name in the config, and the last segment of its webhook URL.
    id: String,
    /// Which adapter speaks for it (`generic`, `telegram`, …).
    kind: &'static str,
    /// A disabled channel answers its webhooks with 503 and sends nothing.
    enabled: bool,
    threading: Threading,
    /// After a conversation closes, a new message reopens it (true) or starts a new one.
    reopen: bool,
    /// Where the platform should send webhooks; null without `server.public_url`.
    webhook_url: Option<String>,
    /// The HubSpot channel account the channel publishes to; null when not linked.
    hubspot: Option<HubspotAccountLink>,
    /// When it last stored an inbound message; null if it never did.
    last_inbound_at: Option<DateTime<Utc>>,
}

/// A channel's HubSpot channel account and what HubSpot last said about it.
#[derive(Serialize, ToSchema)]
pub struct HubspotAccountLink {
    channel_account_id: String,
    state: HubspotAccountStatus,
    /// When a `CHANNEL_ACCOUNT_*` event last changed it; null before the first.
    updated_at: Option<DateTime<Utc>>,
}

/// Whether HubSpot takes the account's messages.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HubspotAccountStatus {
    /// Publishing goes on.
    Authorized,
    /// De-authorized in HubSpot: publishes wait (not failed) until it is authorized again.
    Deauthorized,
    /// Deleted in HubSpot (`CHANNEL_ACCOUNT_PURGED`): publishes wait until it is back.
    Deleted,
    /// No account event received yet: treated as authorized.
    Unknown,
}

/// The channels, in one page, with the state of the last config reload.
#[derive(Serialize, ToSchema)]
pub struct ChannelList {
    items: Vec<ChannelInfo>,
    /// Always null: every channel is on the one page.
    next_cursor: Option<String>,
    config: ReloadStatus,
}

/// Lists the configured channels and the state of the last config reload.
#[utoipa::path(
    get,
    path = "/api/v1/channels",
    operation_id = "list_channels",
    tag = "channels",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every configured channel.", body = ChannelList),
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<ChannelList>, ApiError> {
    let runtime = state.runtime.load_full();
    let public = runtime.config.server.public_url.clone();
    let linked = runtime
        .config
        .channels
        .values()
        .any(|c| c.hubspot.is_some());
    let accounts = if linked {
        state.store.hubspot().hubspot_accounts().await?
    } else {
        Vec::new()
    };
    let hubspot = |link: &crate::config::ChannelHubspot| {
        let known = accounts
            .iter()
            .find(|a| a.channel_account_id == link.channel_account_id);
        HubspotAccountLink {
            channel_account_id: link.channel_account_id.clone(),
            state: match known {
                None => HubspotAccountStatus::Unknown,
                Some(a) if a.deleted => HubspotAccountStatus::Deleted,
                Some(a) if !a.authorized => HubspotAccountStatus::Deauthorized,
                Some(_) => HubspotAccountStatus::Authorized,
            },
            updated_at: known.map(|a| a.updated_at),
        }
    };
    let ids: Vec<String> = runtime.config.channels.keys().cloned().collect();
    let mut last_inbound = state.store.last_inbound(&ids).await?;
    let items = runtime
        .config
        .channels
        .iter()
        .map(|(id, channel)| ChannelInfo {
            id: id.clone(),
            kind: channel.adapter.kind(),
            enabled: channel.enabled,
            threading: channel.threading,
            reopen: channel.reopen,
            webhook_url: public.as_ref().map(|base| format!("{base}/hooks/{id}")),
            hubspot: channel.hubspot.as_ref().map(hubspot),
            last_inbound_at: last_inbound.remove(id),
        })
        .collect();
    let config = state
        .reload
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(Json(ChannelList {
        items,
        next_cursor: None,
        config,
    }))
}
