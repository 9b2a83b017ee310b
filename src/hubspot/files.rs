//! The Files API upload body (`POST /files/v3/files`, multipart/form-data): media a
//! contact sent is stored in HubSpot's File Manager, private (reachable only through
//! signed URLs), in one folder, then attached to the published message by its id.
//! Pure: builds bytes, sends nothing.

use bytes::{BufMut, Bytes, BytesMut};

/// Where uploaded media goes in the File Manager (created by HubSpot if missing).
pub const FOLDER_PATH: &str = "/channel-bridge";

/// A multipart body and the boundary that separates its parts.
pub struct Multipart {
    pub boundary: String,
    pub bytes: Bytes,
}

/// The upload of `bytes` as `file_name`: fields `file`, `fileName`, `folderPath` and
/// `options` (`{"access":"PRIVATE",…}`, a JSON string as the spec asks).
pub fn upload_body(file_name: &str, mime_type: &str, bytes: Bytes) -> Multipart {
    let boundary = format!("channel-bridge-{}", ulid::Ulid::new());
    let name = header_safe(file_name);
    let mime = header_safe(mime_type);
    let options = serde_json::to_string(&super::wire::FileUploadOptions {
        access: "PRIVATE".into(),
        duplicate_validation_strategy: Some("NONE".into()),
    })
    .unwrap_or_else(|_| r#"{"access":"PRIVATE"}"#.into());
    let mut body = BytesMut::with_capacity(bytes.len() + 1024);
    let mut field = |name: &str, value: &str| {
        body.put_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    };
    field("fileName", &name);
    field("folderPath", FOLDER_PATH);
    field("options", &options);
    body.put_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {mime}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.put_slice(&bytes);
    body.put_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Multipart {
        boundary,
        bytes: body.freeze(),
    }
}

/// A value safe inside a quoted header parameter: no quotes, backslashes or line breaks.
fn header_safe(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect();
    if cleaned.is_empty() {
        "file".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upload_carries_the_file_private_in_our_folder() {
        let body = upload_body("a\"b\r\n.png", "image/png", Bytes::from_static(b"\x89PNG"));
        let text = String::from_utf8_lossy(&body.bytes);
        assert!(text.contains(&format!("--{}\r\n", body.boundary)));
        assert!(
            text.contains("name=\"file\"; filename=\"ab.png\""),
            "{text}"
        );
        assert!(text.contains("Content-Type: image/png"));
        assert!(text.contains("\"access\":\"PRIVATE\""));
        assert!(text.contains("/channel-bridge"));
        assert!(text.ends_with(&format!("--{}--\r\n", body.boundary)));
    }
}
