//! Inbound media as a rep opens it: fetched from the platform by the channel's adapter
//! (with the platform's credentials, which never reach the rep) and passed on with a size
//! cap.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Caller;
use super::openapi::{StoreErrors, Unauthorized};
use crate::adapters::FetchError;
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::model::{MessageId, Part};

/// The file of a media part, fetched from the platform with the channel's credentials.
#[utoipa::path(
    get,
    path = "/api/v1/messages/{id}/parts/{n}/media",
    operation_id = "get_media",
    tag = "conversations",
    security(("bearer" = [])),
    params(
        ("id" = MessageId, Path, description = "The message."),
        ("n" = usize, Path, description = "The part's index in `parts`, from 0."),
    ),
    responses(
        (status = 200, description = "The file, with the platform's content type (else the \
            part's `mime_type`) and its filename in `Content-Disposition`.",
            content(("application/octet-stream")),
            headers(("content-disposition" = String, description = "`inline; filename=…`"))),
        (status = 403, description = "The part's URL points at a private address and the \
            channel does not allow that (`media_refused`).", body = ErrorBody),
        (status = 404, description = "No such message or part, the part has no media, or the \
            platform no longer has it (`not_found`, `media_unavailable`).", body = ErrorBody),
        (status = 413, description = "The file is larger than `media.max_bytes` \
            (`media_too_large`).", body = ErrorBody),
        (status = 502, description = "The platform failed to hand the file over \
            (`media_fetch_failed`).", body = ErrorBody),
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    // Read as text: axum's own rejection of a non-number is plain text, not our JSON error.
    Path((id, n)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = MessageId::parse(&id).ok_or_else(|| ApiError::not_found("message"))?;
    let n: usize = n.parse().map_err(|_| ApiError::not_found("part"))?;
    let message = state.store.message(&id).await?;
    if !caller.sees(&message.channel_id) {
        return Err(ApiError::not_found("message"));
    }
    let part = message
        .parts
        .get(n)
        .ok_or_else(|| ApiError::not_found("part"))?;
    let media = match part {
        Part::Image(m)
        | Part::Video(m)
        | Part::Audio(m)
        | Part::VoiceNote(m)
        | Part::Sticker(m)
        | Part::File(m) => m,
        _ => return Err(ApiError::not_found("media in this part")),
    };
    let runtime = state.runtime.load_full();
    let channel = runtime
        .channel(&message.channel_id)
        .ok_or_else(|| ApiError::not_found("the channel of this message"))?;
    let cap = runtime.config.media.max_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "media_too_large",
            format!("the file is larger than media.max_bytes ({cap} bytes)"),
        )
    };
    let fetched = channel
        .adapter
        .fetch_media(&media.media, &channel.media)
        .await
        .map_err(|e| match e {
            FetchError::Refused(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "media_refused", e.to_string())
            }
            FetchError::NoMedia | FetchError::Gone(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "media_unavailable", e.to_string())
            }
            FetchError::Upstream(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "media_fetch_failed", e.to_string())
            }
        })?;
    let mut response = fetched.response;
    if response.content_length().is_some_and(|len| len > cap) {
        return Err(too_large());
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| media.media.mime_type.clone())
        .unwrap_or_else(|| "application/octet-stream".into());
    // Read under the cap: a platform that sends no length (or a wrong one) cannot make us
    // hold more than max_bytes.
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|_| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "media_fetch_failed",
            "the platform broke off the download",
        )
    })? {
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    let mut headers = vec![
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, "private, max-age=300".to_owned()),
    ];
    if let Some(name) = &media.media.filename {
        let safe: String = name
            .chars()
            .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
            .collect();
        headers.push((
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"{safe}\""),
        ));
    }
    let mut response = body.into_response();
    for (name, value) in headers {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}
