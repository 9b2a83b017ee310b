//! Files a rep uploads to attach to a reply. The platforms fetch a reply's media by URL
//! without credentials, so an upload answers a URL under `server.public_url` that opens
//! the file for anyone who has it: its token is 32 random bytes, the only way to it. A
//! reply's part then names that URL as `media.url`, like any other.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Caller;
use super::openapi::{StoreErrors, Unauthorized};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::store::Upload;

/// The query of `POST /api/v1/uploads`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The file's name, shown to the contact and in `Content-Disposition`; at most 255
    /// characters, no path.
    #[param(min_length = 1, max_length = 255)]
    filename: Option<String>,
}

/// The body of `POST /api/v1/uploads` as the document names it: any bytes (an array of
/// integers, which `Vec<u8>` would document, is not what is sent).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // Only the document names it: the handler reads the raw body.
pub struct UploadBody(Vec<u8>);

/// A stored upload.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UploadCreated {
    /// `upl_…`: names the upload; it opens nothing.
    #[schema(example = "upl_01JBX2Q6W9C8N6V5Y3Z4K7M2P1")]
    pub id: String,
    /// Where the file is served, without credentials: put it in a reply's part as
    /// `media.url`.
    #[schema(
        example = "https://bridge.example.com/media/uploads/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    )]
    pub url: String,
    /// The `Content-Type` it was sent with, and is served with.
    #[schema(example = "application/pdf")]
    pub content_type: String,
    pub filename: Option<String>,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// The part type that fits it: `image`, `video`, `audio` or `file`.
    #[schema(example = "file")]
    pub part_type: &'static str,
}

/// Why a file is refused whatever its size: programs a contact could be tricked into
/// running. Judged from the type sent, the file name and the first bytes, so renaming an
/// `.exe` or sending it as `application/octet-stream` does not get it through.
pub(crate) fn refused_kind(
    content_type: &str,
    filename: Option<&str>,
    bytes: &[u8],
) -> Option<&'static str> {
    let essence = essence(content_type);
    const TYPES: &[&str] = &[
        "application/x-msdownload",
        "application/x-msdos-program",
        "application/x-dosexec",
        "application/x-executable",
        "application/x-elf",
        "application/x-mach-binary",
        "application/vnd.microsoft.portable-executable",
        "application/x-msi",
        "application/x-ms-installer",
        "application/x-sh",
        "application/x-shellscript",
        "application/x-bat",
        "application/java-archive",
        "application/vnd.android.package-archive",
        "application/x-apple-diskimage",
    ];
    if TYPES.contains(&essence.as_str()) {
        return Some("an executable type");
    }
    const EXTENSIONS: &[&str] = &[
        "exe", "dll", "com", "scr", "msi", "bat", "cmd", "ps1", "vbs", "vbe", "js", "jse", "wsf",
        "hta", "cpl", "jar", "apk", "app", "dmg", "sh", "elf", "lnk",
    ];
    if let Some(ext) = filename
        .and_then(|f| f.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase())
        && EXTENSIONS.contains(&ext.as_str())
    {
        return Some("an executable file name");
    }
    const MAGIC: &[&[u8]] = &[
        b"MZ",               // Windows PE / DOS
        b"\x7fELF",          // Linux
        b"\xfe\xed\xfa\xce", // Mach-O 32
        b"\xfe\xed\xfa\xcf", // Mach-O 64
        b"\xce\xfa\xed\xfe", // Mach-O 32, little-endian
        b"\xcf\xfa\xed\xfe", // Mach-O 64, little-endian
        b"#!",               // a script with an interpreter
    ];
    if MAGIC.iter().any(|m| bytes.starts_with(m)) {
        return Some("a program");
    }
    None
}

/// The part type a file of this type goes in.
pub fn part_type(content_type: &str) -> &'static str {
    let essence = essence(content_type);
    if essence.starts_with("image/") && essence != "image/svg+xml" {
        "image"
    } else if essence.starts_with("video/") {
        "video"
    } else if essence.starts_with("audio/") {
        "audio"
    } else {
        "file"
    }
}

fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Stores a file sent as the raw body: what `POST /api/v1/uploads` and the console's
/// reply box both call.
pub async fn store(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    filename: Option<String>,
    body: Body,
) -> Result<UploadCreated, ApiError> {
    let runtime = state.runtime.load_full();
    let base = runtime.config.server.public_url.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "public_url_required",
            "uploads need server.public_url: the platforms fetch the file from \
                 {server.public_url}/media/uploads/…",
        )
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && !v.bytes().any(|b| b.is_ascii_control()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the file as the body with its own Content-Type",
            )
        })?
        .to_owned();
    if content_type.len() > 255 || essence(&content_type).starts_with("multipart/") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the file itself as the body (not a multipart form), with its own Content-Type",
        ));
    }
    let filename = match filename {
        None => None,
        Some(name) => Some(clean_filename(&name)?),
    };
    let cap = runtime.config.media.max_upload_bytes;
    let bytes = super::read_body(body, usize::try_from(cap).unwrap_or(usize::MAX))
        .await
        .map_err(|e| {
            if e.status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "upload_too_large",
                    format!("the file is larger than media.max_upload_bytes ({cap} bytes)"),
                )
            } else {
                e
            }
        })?;
    if bytes.is_empty() {
        return Err(ApiError::unprocessable("body: the file is empty"));
    }
    if let Some(what) = refused_kind(&content_type, filename.as_deref(), &bytes) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "upload_refused",
            format!("this looks like {what}; programs and scripts are not sent to contacts"),
        ));
    }
    let token = random_token()?;
    let upload = Upload {
        id: format!("upl_{}", crate::model::ids::next_ulid()),
        token: token.clone(),
        filename: filename.clone(),
        content_type: content_type.clone(),
        bytes: bytes.to_vec(),
        uploaded_by: caller.author(),
        created_at: chrono::Utc::now(),
    };
    state.store.save_upload(&upload).await?;
    tracing::info!(upload = %upload.id, size = upload.bytes.len(), by = %upload.uploaded_by, "Stored an upload.");
    Ok(UploadCreated {
        id: upload.id,
        url: format!("{}/media/uploads/{token}", base.trim_end_matches('/')),
        part_type: part_type(&content_type),
        content_type,
        filename,
        size_bytes: bytes.len() as u64,
    })
}

/// A file name as sent to contacts: its last path segment, without control characters.
fn clean_filename(raw: &str) -> Result<String, ApiError> {
    let name: String = raw
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let name = name.trim();
    if name.is_empty() || name == "." || name == ".." || name.chars().count() > 255 {
        return Err(ApiError::unprocessable(
            "filename: must be a file name of 1 to 255 characters",
        ));
    }
    Ok(name.to_owned())
}

fn random_token() -> Result<String, ApiError> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("no randomness for an upload: {e}"),
        )
    })?;
    Ok(hex::encode(buf))
}

/// Upload a file to attach to a reply: send it as the raw body with its `Content-Type`,
/// then put the answered `url` in a reply's part as `media.url`.
#[utoipa::path(
    post,
    path = "/api/v1/uploads",
    operation_id = "create_upload",
    tag = "conversations",
    security(("bearer" = [])),
    params(UploadQuery),
    request_body(content = UploadBody, content_type = "*/*",
        description = "The file itself (not a multipart form), with its own Content-Type."),
    responses(
        (status = 201, description = "Stored. The URL serves it without credentials; if no \
            message names it a day after the upload, it is deleted.", body = UploadCreated),
        (status = 413, description = "The file is larger than `media.max_upload_bytes` \
            (`upload_too_large`).", body = ErrorBody),
        (status = 415, description = "No Content-Type, a multipart form \
            (`unsupported_media_type`), or a program or script by its type, name or first \
            bytes (`upload_refused`).", body = ErrorBody),
        (status = 422, description = "An empty file or a bad `filename` \
            (`invalid_request`).", body = ErrorBody),
        Unauthorized,
        StoreErrors,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    query: axum::extract::RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, axum::Json<UploadCreated>), ApiError> {
    let UploadQuery { filename } = super::query(query.0.as_deref())?;
    let created = store(&state, &caller, &headers, filename, body).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// An uploaded file, as the platforms fetch it: no credentials, the token is the key.
#[utoipa::path(
    get,
    path = "/media/uploads/{token}",
    operation_id = "get_upload",
    tag = "conversations",
    params(("token" = String, Path, description = "The token in the URL the upload answered.")),
    responses(
        (status = 200, description = "The file with the Content-Type it was uploaded with. \
            Images, audio and video are served `inline`, anything else as an `attachment` \
            with its `filename`, with `X-Content-Type-Options: nosniff` and a sandbox \
            policy, so no file is rendered as a page of this site.",
            content(("*/*")),
            headers(
                ("content-disposition" = String,
                    description = "`inline` or `attachment`, with `filename=…` if it has one"),
                ("x-content-type-options" = String, description = "`nosniff`"),
                ("content-security-policy" = String, description = "`sandbox`"),
            )),
        (status = 404, description = "No upload has this token, or it was deleted \
            (`not_found`).", body = ErrorBody),
        StoreErrors,
    )
)]
pub async fn serve(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(token) = path.map_err(|_| ApiError::not_found("upload"))?;
    // Only our own tokens reach the store: 64 lowercase hex digits.
    if token.len() != 64
        || !token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(ApiError::not_found("upload"));
    }
    let upload = state
        .store
        .upload(&token)
        .await?
        .ok_or_else(|| ApiError::not_found("upload"))?;
    let disposition = if super::media::renders_safely(&upload.content_type) {
        "inline"
    } else {
        "attachment"
    };
    let disposition = match &upload.filename {
        Some(name) => {
            let safe: String = name
                .chars()
                .filter(|c| c.is_ascii() && !c.is_ascii_control() && *c != '"' && *c != '\\')
                .collect();
            let encoded = utf8_percent(name);
            format!("{disposition}; filename=\"{safe}\"; filename*=UTF-8''{encoded}")
        }
        None => disposition.to_owned(),
    };
    let mut response = upload.bytes.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&upload.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("attachment")),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    // The bytes behind a token never change.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400, immutable"),
    );
    Ok(response)
}

/// The token of `url` if it is the URL of a file uploaded here
/// (`{server.public_url}/media/uploads/{token}`).
pub(crate) fn own_token(config: &crate::config::Config, url: &str) -> Option<String> {
    let base = config.server.public_url.as_deref()?.trim_end_matches('/');
    let token = url.strip_prefix(base)?.strip_prefix("/media/uploads/")?;
    (token.len() == 64
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    .then(|| token.to_owned())
}

/// RFC 5987 encoding of a file name for `filename*`.
fn utf8_percent(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_refused_by_type_name_or_first_bytes() {
        assert!(refused_kind("application/x-msdownload", None, b"x").is_some());
        assert!(refused_kind("application/octet-stream", Some("setup.EXE"), b"x").is_some());
        assert!(refused_kind("application/pdf", Some("invoice.pdf"), b"MZ\x90\0").is_some());
        assert!(refused_kind("text/plain", Some("run.txt"), b"#!/bin/sh\n").is_some());
        assert!(refused_kind("application/octet-stream", None, b"\x7fELF\x02").is_some());
        assert_eq!(
            refused_kind("application/pdf", Some("invoice.pdf"), b"%PDF-1.7"),
            None
        );
        assert_eq!(refused_kind("image/png", Some("a.png"), b"\x89PNG"), None);
    }

    #[test]
    fn a_file_goes_in_the_part_its_type_fits() {
        assert_eq!(part_type("image/png"), "image");
        assert_eq!(part_type("IMAGE/JPEG; q=1"), "image");
        assert_eq!(
            part_type("image/svg+xml"),
            "file",
            "SVG runs script: sent as a file"
        );
        assert_eq!(part_type("video/mp4"), "video");
        assert_eq!(part_type("audio/ogg; codecs=opus"), "audio");
        assert_eq!(part_type("application/pdf"), "file");
    }

    #[test]
    fn a_file_name_keeps_its_last_segment_only() {
        assert_eq!(clean_filename("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(clean_filename("C:\\x\\report.pdf").unwrap(), "report.pdf");
        assert_eq!(clean_filename("a\nb.txt").unwrap(), "ab.txt");
        assert!(clean_filename("dir/").is_err());
        assert!(clean_filename("..").is_err());
    }
}
