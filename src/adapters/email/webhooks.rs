//! E-mail from providers' inbound webhooks: Postmark's inbound JSON and Mailgun's signed
//! inbound form (parsed fields, or the whole message as `body-mime`).
//!
//! Postmark signs nothing, so its URL carries a secret (`?token=`), compared in constant
//! time. Mailgun signs `timestamp + token` with the account's webhook signing key (HMAC-
//! SHA256, hex in `signature`); a stale timestamp is refused like every other adapter's.
//! Both end as the same normalized message as [`super::parse_raw`] gives.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::mime;
use crate::adapters::signature::{TOLERANCE_SECS, hmac_sha256_matches_any};
use crate::adapters::{InboundEvent, ParseError, RawRequest, VerifyError, invalid};
use crate::model::{Media, MediaPart, Part, TextPart};
use crate::secret::Secret;

/// The media reference prefix of an attachment inside a stored Postmark payload.
pub const POSTMARK_REF_PREFIX: &str = "postmark:";

/// Postmark inbound: the secret the webhook URL carries as `?token=`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostmarkConfig {
    pub token: Secret,
}

/// Mailgun inbound routes: the account's HTTP webhook signing key.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailgunConfig {
    pub signing_key: Secret,
}

/// Which provider a request is from, by its body's media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Postmark,
    Mailgun,
}

/// Postmark posts JSON; Mailgun posts forms.
pub fn provider(request: &RawRequest) -> Option<Provider> {
    match request.content_type().as_deref() {
        Some("application/json") => Some(Provider::Postmark),
        Some("application/x-www-form-urlencoded" | "multipart/form-data") => {
            Some(Provider::Mailgun)
        }
        _ => None,
    }
}

/// Checks Postmark's URL token in constant time.
pub fn verify_postmark(config: &PostmarkConfig, request: &RawRequest) -> Result<(), VerifyError> {
    let given = request
        .query_param("token")
        .ok_or(VerifyError::MissingHeader("token (query parameter)"))?;
    let expected = config.token.expose().as_bytes();
    if bool::from(given.as_bytes().ct_eq(expected)) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// Checks Mailgun's signature over `timestamp + token`, and that the timestamp is recent.
pub fn verify_mailgun(
    config: &MailgunConfig,
    request: &RawRequest,
    now: DateTime<Utc>,
) -> Result<(), VerifyError> {
    let form = Form::read(request).map_err(|_| VerifyError::MissingHeader("signature"))?;
    // Mailgun sends the three either as top-level fields or inside a `signature` object
    // (JSON-style field names such as `signature[timestamp]` are not used by inbound routes).
    let field = |name| {
        form.text(name)
            .ok_or(VerifyError::MissingHeader("signature"))
    };
    let timestamp = field("timestamp")?;
    let token = field("token")?;
    let signature = field("signature")?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    if now.timestamp().abs_diff(ts) > TOLERANCE_SECS as u64 {
        return Err(VerifyError::TimestampOutOfTolerance);
    }
    let signature = hex::decode(signature.trim()).map_err(|_| VerifyError::BadSignature)?;
    let message = format!("{timestamp}{token}");
    if hmac_sha256_matches_any(
        std::iter::once(&config.signing_key),
        message.as_bytes(),
        &signature,
    ) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// A Postmark inbound payload as normalized events (its `RawEmail`, when the server is set
/// to include it, goes through [`super::parse_raw`] for the full original).
pub fn parse_postmark(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::Malformed(e.to_string()))?;
    if let Some(raw) = value.get("RawEmail").and_then(Value::as_str) {
        return mime::parse_raw(raw.as_bytes());
    }
    let p: PostmarkInbound = crate::adapters::read(&value, "")?;
    let address = p
        .from_full
        .as_ref()
        .map(|f| f.email.clone())
        .or(p.from.clone())
        .map(|a| a.trim().to_lowercase())
        .filter(|a| a.contains('@'))
        .ok_or_else(|| invalid("FromFull.Email", "is missing"))?;
    let display_name = p
        .from_full
        .as_ref()
        .and_then(|f| f.name.clone())
        .filter(|n| !n.trim().is_empty());
    let header = |name: &str| {
        p.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    };
    let message_id = header("Message-ID")
        .map(|id| id.trim().trim_matches(['<', '>']).to_owned())
        .filter(|id| !id.is_empty())
        .or_else(|| p.message_id.clone().map(|id| format!("{id}@postmark")))
        .ok_or_else(|| invalid("MessageID", "is missing"))?;
    let in_reply_to = ids(header("In-Reply-To"));
    let references = ids(header("References"));
    let text = match (&p.text_body, &p.html_body) {
        (Some(t), _) if !t.trim().is_empty() => mime::strip_quoted(&t.replace("\r\n", "\n")),
        (_, Some(h)) => mime::strip_quoted(&mime::html_to_text(h)),
        _ => String::new(),
    };
    let mut parts = Vec::new();
    if !text.trim().is_empty() {
        parts.push(Part::Text(TextPart { text }));
    }
    for (n, a) in p.attachments.iter().enumerate() {
        let mime_type = a
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into())
            .to_ascii_lowercase();
        parts.push(mime::media_part(
            &mime_type,
            MediaPart {
                media: Media {
                    platform_ref: Some(format!("{POSTMARK_REF_PREFIX}{message_id}#{n}")),
                    mime_type: Some(mime_type.clone()),
                    size_bytes: a.content_length,
                    filename: a.name.clone(),
                    ..Media::default()
                },
                caption: None,
            },
        ));
    }
    if parts.is_empty() {
        parts.push(Part::Text(TextPart {
            text: p
                .subject
                .clone()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| "(empty e-mail)".into()),
        }));
    }
    let recipients: Vec<String> = p
        .to_full
        .iter()
        .chain(&p.cc_full)
        .map(|r| r.email.trim().to_lowercase())
        .chain(p.original_recipient.iter().map(|r| r.trim().to_lowercase()))
        .collect();
    let headers = mime::Headers {
        auto_submitted: header("Auto-Submitted").map(str::to_owned),
        precedence: header("Precedence").map(str::to_owned),
        x_autoreply: header("X-Autoreply").is_some()
            || header("X-Autorespond").is_some()
            || header("X-Auto-Response-Suppress").is_some_and(|v| v.contains("All")),
        subject: p.subject.clone().unwrap_or_default(),
        from: address.clone(),
    };
    let sent_at = header("Date")
        .or(p.date.as_deref())
        .and_then(|d| DateTime::parse_from_rfc2822(d.trim()).ok())
        .map(|d| d.with_timezone(&Utc));
    let envelope = mime::Envelope {
        message_id,
        from: mime::contact(address, display_name),
        in_reply_to,
        references,
        recipients,
    };
    Ok(envelope.into_events(parts, sent_at, value, &headers))
}

/// The message ids in an `In-Reply-To` or `References` value.
fn ids(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(|c: char| c.is_whitespace() || c == ',')
        .map(|id| id.trim().trim_matches(['<', '>']).to_owned())
        .filter(|id| !id.is_empty())
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PostmarkInbound {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    from_full: Option<PostmarkAddress>,
    #[serde(default)]
    to_full: Vec<PostmarkAddress>,
    #[serde(default)]
    cc_full: Vec<PostmarkAddress>,
    #[serde(default)]
    original_recipient: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default, rename = "MessageID")]
    message_id: Option<String>,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    text_body: Option<String>,
    #[serde(default)]
    html_body: Option<String>,
    #[serde(default)]
    headers: Vec<PostmarkHeader>,
    #[serde(default)]
    attachments: Vec<PostmarkAttachment>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PostmarkAddress {
    email: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PostmarkHeader {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PostmarkAttachment {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    content_length: Option<u64>,
}

/// An attachment of a stored Postmark payload, by its `postmark:{id}#{n}` reference.
pub fn postmark_attachment(raw: &Value, platform_ref: &str) -> Option<mime::Attachment> {
    let rest = platform_ref.strip_prefix(POSTMARK_REF_PREFIX)?;
    let n: usize = rest.rsplit_once('#')?.1.parse().ok()?;
    let a = raw.get("Attachments")?.get(n)?;
    Some(mime::Attachment {
        bytes: BASE64.decode(a.get("Content")?.as_str()?).ok()?,
        mime_type: a
            .get("ContentType")
            .and_then(Value::as_str)
            .unwrap_or("application/octet-stream")
            .to_ascii_lowercase(),
    })
}

/// A Mailgun form as fields and files, either encoding.
struct Form {
    fields: Vec<(String, String)>,
    /// The whole multipart body as a MIME message, kept so its files can be served.
    multipart: Option<Vec<u8>>,
}

impl Form {
    fn read(request: &RawRequest) -> Result<Self, ParseError> {
        match request.content_type().as_deref() {
            Some("application/x-www-form-urlencoded") => Ok(Self {
                fields: serde_urlencoded::from_bytes(&request.body)
                    .map_err(|e| ParseError::Malformed(format!("form: {e}")))?,
                multipart: None,
            }),
            Some("multipart/form-data") => {
                // A multipart form is a MIME multipart: read it with the MIME parser under
                // the request's own Content-Type (which carries the boundary).
                let content_type = request.header("content-type").unwrap_or_default();
                if content_type.contains(['\r', '\n']) {
                    return Err(invalid("content-type", "is not a single header line"));
                }
                let mut mime = format!("Content-Type: {content_type}\r\n\r\n").into_bytes();
                mime.extend_from_slice(&request.body);
                let fields = form_fields(&mime)?;
                Ok(Self {
                    fields,
                    multipart: Some(mime),
                })
            }
            other => Err(ParseError::UnsupportedMediaType(
                other.unwrap_or("none").to_owned(),
            )),
        }
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The text fields of a multipart form (parts without a filename).
fn form_fields(mime: &[u8]) -> Result<Vec<(String, String)>, ParseError> {
    let message = MessageParser::default()
        .parse(mime)
        .ok_or_else(|| invalid("body", "is not a multipart form"))?;
    let mut fields = Vec::new();
    for part in message.parts.iter().skip(1) {
        let Some(disposition) = part.content_disposition() else {
            continue;
        };
        if disposition.attribute("filename").is_some() {
            continue;
        }
        let Some(name) = disposition.attribute("name") else {
            continue;
        };
        let value = match &part.body {
            PartType::Text(t) | PartType::Html(t) => t.to_string(),
            PartType::Binary(b) | PartType::InlineBinary(b) => {
                String::from_utf8_lossy(b).into_owned()
            }
            _ => continue,
        };
        fields.push((name.to_owned(), value));
    }
    if fields.is_empty() {
        return Err(invalid("body", "the multipart form has no fields"));
    }
    Ok(fields)
}

/// A Mailgun inbound form as normalized events: `body-mime` (a route forwarding to a URL
/// ending in `mime`) through [`super::parse_raw`], else the parsed fields.
pub fn parse_mailgun(request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError> {
    let form = Form::read(request)?;
    if let Some(raw) = form.text("body-mime") {
        return mime::parse_raw(raw.as_bytes());
    }
    let from = form
        .text("sender")
        .or(form.text("from"))
        .ok_or_else(|| invalid("sender", "is missing"))?;
    let (display_name, address) = split_address(from);
    let address = address
        .filter(|a| a.contains('@'))
        .ok_or_else(|| invalid("sender", "has no e-mail address"))?;
    let display_name = display_name.or_else(|| form.text("from").and_then(|f| split_address(f).0));
    let message_id = form
        .text("Message-Id")
        .map(|id| id.trim().trim_matches(['<', '>']).to_owned())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| invalid("Message-Id", "is missing"))?;
    let in_reply_to = ids(form.text("In-Reply-To"));
    let references = ids(form.text("References"));
    let text = match (
        form.text("stripped-text"),
        form.text("body-plain"),
        form.text("body-html"),
    ) {
        (Some(t), _, _) if !t.trim().is_empty() => t.replace("\r\n", "\n").trim().to_owned(),
        (_, Some(t), _) if !t.trim().is_empty() => mime::strip_quoted(&t.replace("\r\n", "\n")),
        (_, _, Some(h)) => mime::strip_quoted(&mime::html_to_text(h)),
        _ => String::new(),
    };
    let mut parts = Vec::new();
    if !text.trim().is_empty() {
        parts.push(Part::Text(TextPart { text }));
    }
    if let Some(multipart) = &form.multipart {
        parts.extend(mime::attachment_parts_of(multipart, &message_id));
    }
    let subject = form.text("subject").unwrap_or_default().to_owned();
    if parts.is_empty() {
        parts.push(Part::Text(TextPart {
            text: if subject.trim().is_empty() {
                "(empty e-mail)".into()
            } else {
                subject.clone()
            },
        }));
    }
    let recipients: Vec<String> = form
        .text("recipient")
        .unwrap_or_default()
        .split(',')
        .map(|r| r.trim().to_lowercase())
        .filter(|r| !r.is_empty())
        .collect();
    // Mailgun's message-headers: a JSON list of [name, value] pairs.
    let all_headers: Vec<(String, String)> = form
        .text("message-headers")
        .and_then(|h| serde_json::from_str(h).ok())
        .unwrap_or_default();
    let header = |name: &str| {
        all_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let headers = mime::Headers {
        auto_submitted: header("Auto-Submitted"),
        precedence: header("Precedence"),
        x_autoreply: header("X-Autoreply").is_some() || header("X-Autorespond").is_some(),
        subject: subject.clone(),
        from: address.clone(),
    };
    let sent_at = form
        .text("Date")
        .map(str::to_owned)
        .or_else(|| header("Date"))
        .and_then(|d| DateTime::parse_from_rfc2822(d.trim()).ok())
        .map(|d| d.with_timezone(&Utc));
    let mut raw = json!({
        "fields": form
            .fields
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "signature" | "token" | "timestamp"))
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<serde_json::Map<_, _>>(),
    });
    if let Some(multipart) = &form.multipart {
        raw["mime"] = Value::String(BASE64.encode(multipart));
    }
    let envelope = mime::Envelope {
        message_id,
        from: mime::contact(address, display_name),
        in_reply_to,
        references,
        recipients,
    };
    Ok(envelope.into_events(parts, sent_at, raw, &headers))
}

/// `"Name <a@b>"` or `"a@b"` as (name, lower-cased address).
fn split_address(value: &str) -> (Option<String>, Option<String>) {
    let value = value.trim();
    match (value.rfind('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => {
            let name = value[..open].trim().trim_matches('"').trim();
            (
                (!name.is_empty()).then(|| name.to_owned()),
                Some(value[open + 1..close].trim().to_lowercase()),
            )
        }
        _ => (None, Some(value.to_lowercase())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/email/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn request(url: &str, content_type: &str, body: Vec<u8>) -> RawRequest {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_str(content_type).expect("header"),
        );
        RawRequest::post(url, headers, body)
    }

    const TOKEN: &str = "pm-0123456789abcdef";
    const KEY: &str = "key-mailgun-signing";

    fn postmark() -> PostmarkConfig {
        PostmarkConfig {
            token: Secret::new(TOKEN),
        }
    }

    #[test]
    fn postmark_token_must_match_in_the_query() {
        let body = fixture("postmark_inbound.json");
        let ok = request(
            &format!("http://x/hooks/mail?token={TOKEN}"),
            "application/json",
            body.clone(),
        );
        assert_eq!(verify_postmark(&postmark(), &ok), Ok(()));
        let wrong = request(
            "http://x/hooks/mail?token=nope",
            "application/json",
            body.clone(),
        );
        assert_eq!(
            verify_postmark(&postmark(), &wrong),
            Err(VerifyError::BadSignature)
        );
        let missing = request("http://x/hooks/mail", "application/json", body);
        assert!(matches!(
            verify_postmark(&postmark(), &missing),
            Err(VerifyError::MissingHeader(_))
        ));
    }

    #[test]
    fn postmark_inbound_becomes_a_message_with_its_attachment() {
        let events = parse_postmark(&fixture("postmark_inbound.json")).expect("parses");
        let [InboundEvent::Message(m)] = events.as_slice() else {
            panic!("not one message: {events:?}");
        };
        assert_eq!(
            m.platform_message_id,
            "CAFx8u=Qk2vT5e+9yV3QhXb1pL@mail.gmail.com"
        );
        assert_eq!(m.from.identifier.value, "ana.souza@gmail.com");
        assert_eq!(m.from.display_name.as_deref(), Some("Ana Souza"));
        assert_eq!(
            m.conversation_hint.as_deref(),
            Some("conv_01JEXAMP7E0000000000000000")
        );
        assert_eq!(
            m.parts[0],
            Part::Text(TextPart {
                text: "Thanks, that fixed it!".into()
            })
        );
        let Part::Image(image) = &m.parts[1] else {
            panic!("no image: {:?}", m.parts);
        };
        let reference = image.media.platform_ref.as_deref().unwrap_or_default();
        let got = postmark_attachment(&m.raw, reference).expect("attachment");
        assert!(got.bytes.starts_with(b"\x89PNG"));
    }

    fn sign(timestamp: &str, token: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).expect("key");
        mac.update(format!("{timestamp}{token}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn mailgun_form(timestamp: &str, signature: &str) -> Vec<u8> {
        serde_urlencoded::to_string([
            ("timestamp", timestamp),
            ("token", "c1c4f5b1a2"),
            ("signature", signature),
            ("sender", "lena@example.org"),
            ("from", "Lena Berg <lena@example.org>"),
            (
                "recipient",
                "support+conv_01jexamp7e0000000000000000@example.com",
            ),
            ("subject", "Re: Contract"),
            ("Message-Id", "<mg-1@example.org>"),
            (
                "In-Reply-To",
                "<msg_01JEXAMP7E0000000000000001@example.com>",
            ),
            ("body-plain", "Signed.\n\nOn Thu, Support wrote:\n> sign it"),
            ("stripped-text", "Signed."),
        ])
        .expect("form")
        .into_bytes()
    }

    #[test]
    fn mailgun_signature_and_timestamp_are_checked() {
        let config = MailgunConfig {
            signing_key: Secret::new(KEY),
        };
        let now = Utc::now();
        let ts = now.timestamp().to_string();
        let good = request(
            "http://x/hooks/mail",
            "application/x-www-form-urlencoded",
            mailgun_form(&ts, &sign(&ts, "c1c4f5b1a2")),
        );
        assert_eq!(verify_mailgun(&config, &good, now), Ok(()));
        let forged = request(
            "http://x/hooks/mail",
            "application/x-www-form-urlencoded",
            mailgun_form(&ts, &sign(&ts, "other")),
        );
        assert_eq!(
            verify_mailgun(&config, &forged, now),
            Err(VerifyError::BadSignature)
        );
        let old = (now.timestamp() - 3600).to_string();
        let stale = request(
            "http://x/hooks/mail",
            "application/x-www-form-urlencoded",
            mailgun_form(&old, &sign(&old, "c1c4f5b1a2")),
        );
        assert_eq!(
            verify_mailgun(&config, &stale, now),
            Err(VerifyError::TimestampOutOfTolerance)
        );
        let events = parse_mailgun(&good).expect("parses");
        let [InboundEvent::Message(m)] = events.as_slice() else {
            panic!("not one message: {events:?}");
        };
        assert_eq!(m.platform_message_id, "mg-1@example.org");
        assert_eq!(m.from.display_name.as_deref(), Some("Lena Berg"));
        assert_eq!(
            m.parts,
            vec![Part::Text(TextPart {
                text: "Signed.".into()
            })]
        );
        assert!(m.raw["fields"].get("signature").is_none());
    }

    #[test]
    fn mailgun_multipart_form_with_body_mime_goes_through_parse_raw() {
        let raw = String::from_utf8(fixture("attachment.eml")).expect("utf-8");
        let body = format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"timestamp\"\r\n\r\n1\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"body-mime\"\r\n\r\n{raw}\r\n\
             --XyZ--\r\n"
        );
        let req = request(
            "http://x/hooks/mail",
            "multipart/form-data; boundary=XyZ",
            body.into_bytes(),
        );
        let events = parse_mailgun(&req).expect("parses");
        let [InboundEvent::Message(m)] = events.as_slice() else {
            panic!("not one message: {events:?}");
        };
        assert_eq!(m.platform_message_id, "attach-1@example.org");
        assert!(matches!(m.parts.get(1), Some(Part::File(_))));
    }
}
