//! Media as a rep opens it, passed on with a size cap and never as a page the rep's
//! browser would render.
//!
//! Who vouches for the media decides how it is fetched. An inbound message's media is what
//! the platform gave us: the channel's adapter fetches it, with the platform's credentials
//! (which never reach the rep). A reply's or a comment's media is what a rep wrote: only
//! its `url` is fetched, as a public URL without credentials, so a rep cannot point the
//! daemon at a platform API, the in-house app or the network it runs in.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Caller;
use super::openapi::{StoreErrors, Unauthorized};
use crate::adapters::FetchError;
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::model::{Direction, MessageId};

/// The file of a media part: an inbound message's from the platform, with the channel's
/// credentials; a rep's reply's from its public URL, without them.
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
            part's `mime_type`). Images, audio and video are served `inline`, anything else \
            (HTML, SVG, text, documents) as an `attachment`, always with \
            `X-Content-Type-Options: nosniff`, so no file is rendered as a page.",
            content(("application/octet-stream")),
            headers(
                ("content-disposition" = String,
                    description = "`inline` or `attachment`, with `filename=…` if the part \
                        has one"),
                ("x-content-type-options" = String, description = "`nosniff`"),
                ("content-security-policy" = String, description = "`sandbox`"),
            )),
        (status = 403, description = "The URL, or a redirect on the way, points at a private \
            address the channel does not allow, or a reply's URL is not public; or more than \
            5 redirects (`media_refused`).", body = ErrorBody),
        (status = 404, description = "No such message or part (also an `n` that is not a \
            whole number from 0), the part has no media, a reply's part has no URL, or the \
            platform no longer has the file (`not_found`, `media_unavailable`).",
            body = ErrorBody),
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
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    // A segment that is not even text names no message.
    let Path((id, n)) = path.map_err(|_| ApiError::not_found("message"))?;
    let id = MessageId::parse(&id).ok_or_else(|| ApiError::not_found("message"))?;
    let message = state.store.message(&id).await?;
    if !caller.sees(&message.channel_id) {
        return Err(ApiError::not_found("message"));
    }
    let part = n
        .parse::<usize>()
        .ok()
        .and_then(|n| message.parts.get(n))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "part not found: the message has {} parts, numbered from 0",
                    message.parts.len()
                ),
            )
        })?;
    let media = part
        .media()
        .ok_or_else(|| ApiError::not_found("media in this part"))?;
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
    // An e-mail's attachment is inside the mail we stored, not at the platform.
    if message.direction == Direction::Inbound
        && let Some(platform_ref) = media.media.platform_ref.as_deref()
    {
        let raw = state.store.message_raw(&id).await?;
        if let Some(found) = crate::adapters::email::stored_attachment(raw.as_ref(), platform_ref) {
            let attachment = found.map_err(|e| {
                ApiError::new(StatusCode::NOT_FOUND, "media_unavailable", e.to_string())
            })?;
            if attachment.bytes.len() as u64 > cap {
                return Err(too_large());
            }
            let http = axum::http::Response::builder()
                .header(header::CONTENT_TYPE, attachment.mime_type)
                .body(attachment.bytes)
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "media_unavailable",
                        "the stored file has an unusable content type",
                    )
                })?;
            return respond(media, reqwest::Response::from(http), cap).await;
        }
    }
    let fetched = match message.direction {
        Direction::Inbound => {
            channel
                .adapter
                .fetch_media(&media.media, &channel.media)
                .await
        }
        // A rep wrote it: its platform_ref is never looked up with our credentials.
        Direction::Outbound | Direction::Internal => match media.media.url.as_deref() {
            Some(url) => match super::uploads::own_token(&runtime.config, url) {
                // A file uploaded here opens from the store, not through our own public
                // URL (a private address, or one this host may not reach itself).
                Some(token) => {
                    return super::uploads::serve(State(state.clone()), Ok(Path(token))).await;
                }
                None => channel.media.fetch_public(url).await,
            },
            None => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "media_unavailable",
                    "a reply's file opens from its url, and this part has none",
                ));
            }
        },
    }
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
    respond(media, fetched.response, cap).await
}

/// Streams a fetched file to the rep under `cap`, never as a page the browser renders.
async fn respond(
    media: &crate::model::MediaPart,
    mut response: reqwest::Response,
    cap: u64,
) -> Result<Response, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "media_too_large",
            format!("the file is larger than media.max_bytes ({cap} bytes)"),
        )
    };
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
    let disposition = if renders_safely(&content_type) {
        "inline"
    } else {
        "attachment"
    };
    let disposition = match &media.media.filename {
        Some(name) => {
            let safe: String = name
                .chars()
                .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
                .collect();
            format!("{disposition}; filename=\"{safe}\"")
        }
        None => disposition.to_owned(),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        content_type
            .parse()
            .unwrap_or(header::HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("private, max-age=300"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    // Opened directly anyway, a document runs no script and has no origin.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("sandbox"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        disposition
            .parse()
            .unwrap_or(header::HeaderValue::from_static("attachment")),
    );
    Ok(response)
}

/// Whether a browser shows `content_type` as media rather than as a document that could
/// run script: raster images, audio and video. SVG is an image that runs script.
pub(crate) fn renders_safely(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "image/avif" | "image/bmp"
    ) || (essence.starts_with("audio/") || essence.starts_with("video/"))
        && essence
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/.+-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::renders_safely;

    #[test]
    fn only_raster_images_audio_and_video_render_inline() {
        for inline in [
            "image/png",
            "IMAGE/JPEG; q=1",
            "audio/ogg; codecs=opus",
            "video/mp4",
        ] {
            assert!(renders_safely(inline), "{inline}");
        }
        for attachment in [
            "text/html",
            "text/html; charset=utf-8",
            "image/svg+xml",
            "application/xhtml+xml",
            "text/plain",
            "application/pdf",
            "application/octet-stream",
            "text/xml",
            "",
        ] {
            assert!(!renders_safely(attachment), "{attachment}");
        }
    }
}
