//! What WhatsApp Cloud, Messenger and Instagram share because all are Meta platforms on
//! the Graph API: the `X-Hub-Signature-256` webhook signature, the GET `hub.challenge`
//! handshake, Graph error classification, authorized calls and media downloads, and the
//! JSON walker every parser uses to name the field at fault.
//!
//! Knows nothing of the platforms' payloads beyond these shared conventions, except in
//! [`messaging`]: Messenger and Instagram are one platform (Meta's Messenger Platform),
//! and their webhook events and Send API replies are read and planned there.

use std::time::Duration;

pub mod messaging;

use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::fetch::{Credentials, MediaClient};
use super::{
    FetchError, FetchedMedia, HandshakeError, HandshakeReply, ParseError, RawRequest,
    RetiredSecret, SendError, VerifyError, classify_status, classify_transport, retry_after,
};
use crate::model::{ContactPart, LocationPart, Part, UnsupportedPart};
use crate::secret::Secret;

/// The Graph API both platforms default to. v26.0 is the newest version (July 2026);
/// earlier ones expire on Meta's schedule (v21.0 in January 2027).
pub const DEFAULT_API_BASE: &str = "https://graph.facebook.com/v26.0";

/// The header Meta signs webhooks in: `sha256=<hex HMAC-SHA256(app secret, raw body)>`.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// The longest `hub.challenge` echoed back (Meta sends a short number).
const MAX_CHALLENGE_LEN: usize = 256;

/// Graph error codes that mean "slow down": application (4), user (17), page (32) and
/// API-call (613) request limits, WABA limit (80007), Cloud API throughput (130429),
/// spam rate limit (131048), pair rate limit (131056).
const RATE_LIMIT_CODES: &[i64] = &[4, 17, 32, 613, 80007, 130429, 131048, 131056];

/// Graph error codes for passing trouble on Meta's side: unknown (1), temporary (2),
/// "something went wrong" (131000), service unavailable (131016, 133004).
const TRANSIENT_CODES: &[i64] = &[1, 2, 131000, 131016, 133004];

/// The default for a channel's `api_base` key.
pub fn default_api_base() -> String {
    DEFAULT_API_BASE.to_owned()
}

/// Config check for `api_base`.
pub fn validate_api_base(api_base: &str, errors: &mut Vec<(String, String)>) {
    if !crate::model::is_http_url(api_base) {
        errors.push(("api_base".into(), "must be an http(s) URL".into()));
    }
}

/// Reads an id written in config as a string or a bare number (`phone_number_id =
/// 227118690421377` is as natural in TOML as the quoted form).
pub fn id_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    match Id::deserialize(d) {
        Ok(Id::Text(s)) => Ok(s),
        Ok(Id::Number(n)) => Ok(n.to_string()),
        Err(_) => Err(serde::de::Error::custom("expected a string or a number")),
    }
}

/// Whether an id is safe to put in a Graph URL path: Graph ids are digits, and nothing
/// here may add a path segment or a query.
pub fn is_path_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && id != "."
        && id != ".."
}

/// Adds to a failure of part of a reply how many of its messages had already gone out,
/// so a rep knows the contact saw part of it.
pub fn after_partial(error: SendError, sent: usize, total: usize) -> SendError {
    if sent == 0 {
        return error;
    }
    let suffix = format!(" ({sent} of {total} messages of this reply had already gone out)");
    match error {
        SendError::Retryable {
            reason,
            retry_after,
        } => SendError::Retryable {
            reason: reason + &suffix,
            retry_after,
        },
        SendError::RateLimited {
            reason,
            retry_after,
        } => SendError::RateLimited {
            reason: reason + &suffix,
            retry_after,
        },
        SendError::Permanent { reason } => SendError::Permanent {
            reason: reason + &suffix,
        },
    }
}

/// The `sha256=<hex>` signature Meta sends for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The app secret that verifies webhooks, plus secrets a reload replaced that are still
/// accepted for a while.
pub struct AppSecrets {
    current: Secret,
    retired: Vec<(Secret, DateTime<Utc>)>,
}

impl AppSecrets {
    pub fn new(current: &Secret, retired: &[RetiredSecret]) -> Self {
        Self {
            current: current.clone(),
            retired: retired
                .iter()
                .map(|r| (r.secret.clone(), r.until))
                .collect(),
        }
    }

    /// Checks `X-Hub-Signature-256` over the raw body against the current secret and
    /// every retired one still valid at `now`. The comparison is constant time.
    pub fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError> {
        let header = request
            .header(SIGNATURE_HEADER)
            .ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;
        let (scheme, hex_digest) = header
            .trim()
            .split_once('=')
            .ok_or(VerifyError::BadSignature)?;
        if !scheme.eq_ignore_ascii_case("sha256") {
            return Err(VerifyError::BadSignature);
        }
        let signature = hex::decode(hex_digest).map_err(|_| VerifyError::BadSignature)?;
        let secrets = std::iter::once(&self.current).chain(
            self.retired
                .iter()
                .filter(|(_, until)| *until > now)
                .map(|(s, _)| s),
        );
        for secret in secrets {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
                .expect("HMAC takes keys of any length");
            mac.update(&request.body);
            // verify_slice compares in constant time.
            if mac.verify_slice(&signature).is_ok() {
                return Ok(());
            }
        }
        Err(VerifyError::BadSignature)
    }
}

/// Answers Meta's subscription check: `GET ?hub.mode=subscribe&hub.verify_token=…&
/// hub.challenge=…` is answered with the challenge when the token matches.
pub fn handshake(
    request: &RawRequest,
    verify_token: &Secret,
) -> Result<HandshakeReply, HandshakeError> {
    match request.query_param("hub.mode").as_deref() {
        Some("subscribe") => {}
        Some(other) => {
            return Err(HandshakeError::Invalid(format!(
                "hub.mode must be subscribe, not {other:?}"
            )));
        }
        None => return Err(HandshakeError::Invalid("hub.mode is required".into())),
    }
    let token = request
        .query_param("hub.verify_token")
        .ok_or(HandshakeError::Forbidden)?;
    if !bool::from(token.as_bytes().ct_eq(verify_token.expose().as_bytes())) {
        return Err(HandshakeError::Forbidden);
    }
    let challenge = request
        .query_param("hub.challenge")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| HandshakeError::Invalid("hub.challenge is required".into()))?;
    if challenge.len() > MAX_CHALLENGE_LEN || challenge.chars().any(char::is_control) {
        return Err(HandshakeError::Invalid(
            "hub.challenge is not a plausible challenge".into(),
        ));
    }
    Ok(HandshakeReply {
        content_type: "text/plain",
        body: challenge,
    })
}

/// A payload string, trimmed, or `None` when it is absent or blank.
pub fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Something a Meta payload carries that has no part of its own, kept whole.
pub fn unsupported(kind: &str, raw: &Value) -> Part {
    Part::Unsupported(UnsupportedPart {
        platform_type: kind.to_owned(),
        raw: Some(raw.clone()),
    })
}

/// The last path segment of a file URL when it looks like a file name.
pub fn file_name(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    let last = url.path_segments()?.next_back()?;
    (last.contains('.') && !last.starts_with('.')).then(|| last.to_owned())
}

/// Replaces every occurrence of `secret` in `text`, so a platform echoing a token back
/// cannot put it into an error, a log line or a rep's view.
pub fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_owned()
    } else {
        text.replace(secret, "[redacted]")
    }
}

/// A Graph API error body: `{"error": {"message", "type", "code", "error_subcode",
/// "error_data", "is_transient", "fbtrace_id"}}`.
#[derive(Debug, Default, Deserialize)]
struct GraphError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    code: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    error_subcode: Option<i64>,
    #[serde(default)]
    error_data: Option<Value>,
    #[serde(default)]
    is_transient: Option<bool>,
}

/// Reads a number that may come as a JSON number or a numeric string; anything else is
/// treated as absent.
fn lenient_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(match value {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// The Graph error in a response body, if it carries one.
fn graph_error(body: &str) -> Option<GraphError> {
    let value: Value = serde_json::from_str(body).ok()?;
    let error = value.get("error")?;
    if !error.is_object() {
        return None;
    }
    serde_json::from_value(error.clone()).ok()
}

/// Classifies a failed Graph call from its error `code` first (Meta: build on codes, not
/// on titles or HTTP status), then from the HTTP status. `secret` is redacted from the
/// reason.
pub fn classify_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    secret: &str,
) -> SendError {
    let body = redact(body, secret);
    let Some(error) = graph_error(&body) else {
        return classify_status(status, headers, &body);
    };
    let mut reason = format!("HTTP {}: Graph error", status.as_u16());
    if let Some(code) = error.code {
        reason.push_str(&format!(" {code}"));
        if let Some(sub) = error.error_subcode {
            reason.push_str(&format!("/{sub}"));
        }
    }
    if let Some(message) = error.message.as_deref().filter(|m| !m.is_empty()) {
        reason.push_str(": ");
        reason.push_str(message);
    }
    let details = match &error.error_data {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => o.get("details").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    if let Some(details) = details.filter(|d| !d.is_empty()) {
        reason.push_str(&format!(" ({details})"));
    }
    let reason: String = reason.chars().take(400).collect();
    let retry_after: Option<Duration> = retry_after(headers, Utc::now());
    match error.code {
        Some(code) if RATE_LIMIT_CODES.contains(&code) => SendError::RateLimited {
            reason,
            retry_after,
        },
        Some(code) if TRANSIENT_CODES.contains(&code) => SendError::Retryable {
            reason,
            retry_after,
        },
        _ if error.is_transient == Some(true) => SendError::Retryable {
            reason,
            retry_after,
        },
        _ => match classify_status(status, headers, "") {
            SendError::RateLimited { .. } => SendError::RateLimited {
                reason,
                retry_after,
            },
            SendError::Retryable { .. } => SendError::Retryable {
                reason,
                retry_after,
            },
            SendError::Permanent { .. } => SendError::Permanent { reason },
        },
    }
}

/// Graph API access for one channel: base URL, shared client and the bearer token,
/// which only this type (and never a URL) carries.
pub struct Graph {
    http: reqwest::Client,
    base: String,
    token: Secret,
}

impl Graph {
    pub fn new(http: reqwest::Client, api_base: &str, token: &Secret) -> Self {
        Self {
            http,
            base: api_base.trim_end_matches('/').to_owned(),
            token: token.clone(),
        }
    }

    /// `{api_base}/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// POSTs JSON with the bearer token; a non-2xx answer or a 2xx answer carrying an
    /// `error` object is a classified failure.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, SendError> {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(self.token.expose())
            .json(body)
            .send()
            .await
            .map_err(classify_transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() || graph_error(&text).is_some() {
            return Err(classify_error(status, &headers, &text, self.token.expose()));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GETs a Graph object as JSON (media lookups). 404, and Graph's "does not exist"
    /// error (code 100), mean the object is gone.
    pub async fn get_json(&self, path: &str) -> Result<Value, FetchError> {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| FetchError::Upstream(classify_transport(e).to_string()))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return serde_json::from_str(&text)
                .map_err(|_| FetchError::Upstream("the platform answered with no JSON".into()));
        }
        let code = graph_error(&text).and_then(|e| e.code);
        let what = format!(
            "HTTP {}{}",
            status.as_u16(),
            code.map(|c| format!(", Graph error {c}"))
                .unwrap_or_default()
        );
        if matches!(status.as_u16(), 404 | 410) || code == Some(100) {
            Err(FetchError::Gone(what))
        } else {
            Err(FetchError::Upstream(what))
        }
    }

    /// Downloads a media URL through `web` (the Graph origin is configured; any other URL
    /// must be public, as must every redirect). The bearer token goes along only to the
    /// Graph host itself and to Meta's own domains, never to a third party, and never on
    /// a redirect to another origin.
    pub async fn fetch(&self, url: &str, web: &MediaClient) -> Result<FetchedMedia, FetchError> {
        let credentials = if self.trusts(url) {
            Credentials::Bearer(self.token.expose())
        } else {
            Credentials::None
        };
        web.fetch_with(url, &[&self.base], credentials).await
    }

    /// Whether `url` may receive the token: same origin as `api_base`, or HTTPS on a
    /// Meta domain (lookaside.fbsbx.com for WhatsApp media, fbcdn.net for Messenger).
    pub fn trusts(&self, url: &str) -> bool {
        const META_DOMAINS: &[&str] = &[
            "facebook.com",
            "fbsbx.com",
            "fbcdn.net",
            "whatsapp.net",
            "whatsapp.com",
            "cdninstagram.com",
        ];
        let (Ok(target), Ok(base)) = (reqwest::Url::parse(url), reqwest::Url::parse(&self.base))
        else {
            return false;
        };
        if target.origin() == base.origin() {
            return true;
        }
        let Some(host) = target.host_str() else {
            return false;
        };
        target.scheme() == "https"
            && META_DOMAINS
                .iter()
                .any(|d| host == *d || host.ends_with(&format!(".{d}")))
    }
}

/// Splits text into pieces of at most `max` characters, breaking at whitespace where
/// one is near the end of a piece.
pub fn chunks(text: &str, max: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= max {
        return vec![text.to_owned()];
    }
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let mut end = (start + max).min(chars.len());
        if end < chars.len() {
            // Look back at most a fifth of a piece for a place to break.
            if let Some(space) = (end - max / 5..end)
                .rev()
                .find(|&i| i > start && chars[i].is_whitespace())
            {
                end = space + 1;
            }
        }
        let piece: String = chars[start..end].iter().collect();
        if !piece.trim().is_empty() {
            pieces.push(piece);
        }
        start = end;
    }
    pieces
}

/// The first http(s) URL in a JSON value (for sending an unsupported part as a link).
pub fn first_url(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) if s.starts_with("https://") || s.starts_with("http://") => Some(s),
        Value::Array(items) => items.iter().find_map(first_url),
        Value::Object(map) => map.values().find_map(first_url),
        _ => None,
    }
}

/// The user a Messenger or Instagram reply goes to: the user part of the thread
/// (`"{page or account id}:{user id}"`), else the contact's identifier. `platform` names
/// the platform in the refusal.
pub fn recipient(message: &super::Outbound, platform: &str) -> Result<String, SendError> {
    let user = match message.platform_thread_id.as_deref() {
        Some(thread) => thread
            .split_once(':')
            .map_or(thread, |(_, user)| user)
            .to_owned(),
        None => message.to.value.clone(),
    };
    if user.trim().is_empty() {
        return Err(SendError::Permanent {
            reason: format!("the conversation has no {platform} user to send to"),
        });
    }
    Ok(user)
}

/// A location as text, for Messenger and Instagram, which cannot send one: its name and
/// address, then a map link, a line each.
pub fn location_text(l: &LocationPart) -> String {
    let mut lines: Vec<String> = [&l.name, &l.address]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    lines.push(format!(
        "https://www.google.com/maps/search/?api=1&query={},{}",
        l.latitude, l.longitude
    ));
    lines.join("\n")
}

/// A contact card as text, for Messenger and Instagram: name, phones and e-mails, a line each.
pub fn contact_text(c: &ContactPart) -> String {
    let lines: Vec<String> = c
        .name
        .iter()
        .chain(&c.phones)
        .chain(&c.emails)
        .cloned()
        .collect();
    lines.join("\n")
}

/// A part the platform has no equivalent for, as text: `[type]`, then the first URL in its
/// raw JSON when it has one.
pub fn unsupported_text(u: &UnsupportedPart) -> String {
    match u.raw.as_ref().and_then(first_url) {
        Some(url) => format!("[{}] {url}", u.platform_type),
        None => format!("[{}]", u.platform_type),
    }
}

/// Checks the content type and reads the body as JSON.
pub fn json_body(request: &RawRequest) -> Result<Value, ParseError> {
    serde_json::from_slice(request.json_body()?).map_err(|e| ParseError::Malformed(e.to_string()))
}

/// A JSON value and where it was found (`entry[0].changes[1].value`), so every parse
/// error names its field.
#[derive(Debug)]
pub struct Node<'a> {
    pub value: &'a Value,
    pub path: String,
}

impl<'a> Node<'a> {
    pub fn root(value: &'a Value) -> Self {
        Self {
            value,
            path: String::new(),
        }
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The dotted path of this value (`body` at the root).
    pub fn path(&self) -> &str {
        if self.path.is_empty() {
            "body"
        } else {
            &self.path
        }
    }

    /// An error about this value.
    pub fn invalid(&self, message: impl Into<String>) -> ParseError {
        ParseError::Invalid {
            field: self.path().to_owned(),
            message: message.into(),
        }
    }

    /// An error about a field of this value.
    pub fn invalid_field(&self, key: &str, message: impl Into<String>) -> ParseError {
        ParseError::Invalid {
            field: self.child_path(key),
            message: message.into(),
        }
    }

    fn object(&self) -> Result<&'a Map<String, Value>, ParseError> {
        self.value
            .as_object()
            .ok_or_else(|| self.invalid("must be an object"))
    }

    /// A field, or `None` when absent or null.
    pub fn get(&self, key: &str) -> Result<Option<Node<'a>>, ParseError> {
        Ok(self
            .object()?
            .get(key)
            .filter(|v| !v.is_null())
            .map(|value| Node {
                value,
                path: self.child_path(key),
            }))
    }

    /// A field that must be there.
    pub fn req(&self, key: &str) -> Result<Node<'a>, ParseError> {
        self.get(key)?
            .ok_or_else(|| self.invalid_field(key, "is required"))
    }

    /// An object field, or `None` when absent or null.
    pub fn get_object(&self, key: &str) -> Result<Option<Node<'a>>, ParseError> {
        match self.get(key)? {
            Some(node) if node.value.is_object() => Ok(Some(node)),
            Some(node) => Err(node.invalid("must be an object")),
            None => Ok(None),
        }
    }

    /// An object field that must be there.
    pub fn req_object(&self, key: &str) -> Result<Node<'a>, ParseError> {
        self.get_object(key)?
            .ok_or_else(|| self.invalid_field(key, "is required"))
    }

    /// A string field, or `None` when absent or null.
    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, ParseError> {
        match self.get(key)? {
            Some(node) => node
                .value
                .as_str()
                .map(Some)
                .ok_or_else(|| node.invalid("must be a string")),
            None => Ok(None),
        }
    }

    /// A string field that must be there and not empty.
    pub fn req_str(&self, key: &str) -> Result<&'a str, ParseError> {
        match self.opt_str(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(self.invalid_field(key, "must not be empty")),
            None => Err(self.invalid_field(key, "is required")),
        }
    }

    /// An id field that platforms send as a string or a number.
    pub fn opt_id(&self, key: &str) -> Result<Option<String>, ParseError> {
        match self.get(key)? {
            Some(node) => match node.value {
                Value::String(s) if !s.trim().is_empty() => Ok(Some(s.clone())),
                Value::String(_) => Err(node.invalid("must not be empty")),
                Value::Number(n) => Ok(Some(n.to_string())),
                _ => Err(node.invalid("must be a string or a number")),
            },
            None => Ok(None),
        }
    }

    /// An id field (string or number) that must be there.
    pub fn req_id(&self, key: &str) -> Result<String, ParseError> {
        self.opt_id(key)?
            .ok_or_else(|| self.invalid_field(key, "is required"))
    }

    /// A number field (or a numeric string), or `None` when absent or null.
    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>, ParseError> {
        match self.get(key)? {
            Some(node) => {
                let n = match node.value {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                };
                n.filter(|n| n.is_finite())
                    .map(Some)
                    .ok_or_else(|| node.invalid("must be a number"))
            }
            None => Ok(None),
        }
    }

    /// A boolean field; absent, null or not a boolean reads as false.
    pub fn flag(&self, key: &str) -> bool {
        self.value
            .get(key)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// A list field's items; absent or null is an empty list.
    pub fn list(&self, key: &str) -> Result<Vec<Node<'a>>, ParseError> {
        match self.get(key)? {
            Some(node) => {
                let items = node
                    .value
                    .as_array()
                    .ok_or_else(|| node.invalid("must be a list"))?;
                Ok(items
                    .iter()
                    .enumerate()
                    .map(|(i, value)| Node {
                        value,
                        path: format!("{}[{i}]", node.path),
                    })
                    .collect())
            }
            None => Ok(Vec::new()),
        }
    }

    /// A list field that must be there.
    pub fn req_list(&self, key: &str) -> Result<Vec<Node<'a>>, ParseError> {
        if self.get(key)?.is_none() {
            return Err(self.invalid_field(key, "is required"));
        }
        self.list(key)
    }

    /// A unix time in seconds (WhatsApp sends it as a string), or `None` when absent.
    pub fn opt_unix_seconds(&self, key: &str) -> Result<Option<DateTime<Utc>>, ParseError> {
        self.opt_time(key, |n| DateTime::from_timestamp(n, 0))
    }

    /// A unix time in milliseconds (Messenger), or `None` when absent.
    pub fn opt_unix_millis(&self, key: &str) -> Result<Option<DateTime<Utc>>, ParseError> {
        self.opt_time(key, DateTime::from_timestamp_millis)
    }

    fn opt_time(
        &self,
        key: &str,
        convert: impl Fn(i64) -> Option<DateTime<Utc>>,
    ) -> Result<Option<DateTime<Utc>>, ParseError> {
        match self.get(key)? {
            Some(node) => {
                let n = match node.value {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                };
                n.and_then(convert)
                    .map(Some)
                    .ok_or_else(|| node.invalid("must be a unix time"))
            }
            None => Ok(None),
        }
    }
}

/// What the tests of the three Meta adapters (WhatsApp, Messenger, Instagram) share: a
/// webhook request as Meta sends one, and the checks of its signature and handshake.
#[cfg(test)]
pub(crate) mod testing {
    use axum::http::{HeaderMap, HeaderValue};
    use chrono::Utc;

    use super::{SIGNATURE_HEADER, sign};
    use crate::adapters::{ChannelAdapter, HandshakeError, RawRequest, RetiredSecret, VerifyError};
    use crate::model::event::{InboundEvent, InboundMessage};
    use crate::secret::Secret;

    /// A POST to `/hooks/{channel}` with `body`, its content type and, when given, the
    /// `X-Hub-Signature-256` header.
    pub(crate) fn request(
        channel: &str,
        body: &str,
        signature: Option<String>,
        content_type: &str,
    ) -> RawRequest {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_str(content_type).unwrap());
        if let Some(s) = signature {
            headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&s).unwrap());
        }
        RawRequest::post(
            &format!("https://bridge.example/hooks/{channel}"),
            headers,
            body.as_bytes().to_vec(),
        )
    }

    /// `body` as Meta sends it: JSON, signed with the app secret.
    pub(crate) fn signed(channel: &str, app_secret: &str, body: &str) -> RawRequest {
        request(
            channel,
            body,
            Some(sign(app_secret.as_bytes(), body.as_bytes())),
            "application/json",
        )
    }

    /// `body`, signed as Meta signs it, verified and parsed by `adapter` as the daemon would.
    pub(crate) fn parse<A: ChannelAdapter>(
        adapter: &A,
        channel: &str,
        app_secret: &str,
        body: &str,
    ) -> Vec<InboundEvent> {
        let request = signed(channel, app_secret, body);
        adapter.verify(&request, Utc::now()).unwrap();
        adapter.parse(&request).unwrap()
    }

    /// The messages `events` hold; any other event fails the test.
    pub(crate) fn messages(events: Vec<InboundEvent>) -> Vec<InboundMessage> {
        events
            .into_iter()
            .map(|e| match e {
                InboundEvent::Message(m) => m,
                other => panic!("not a message: {other:?}"),
            })
            .collect()
    }

    /// The signature is checked on the raw bytes: missing or forged fails, a retired secret
    /// passes until its time and not after.
    pub(crate) fn assert_signatures_checked_with_retired_secrets<A: ChannelAdapter>(
        adapter: impl Fn(&[RetiredSecret]) -> A,
        channel: &str,
        app_secret: &str,
        body: &str,
    ) {
        let now = Utc::now();
        let adapter = adapter(&[RetiredSecret {
            secret: Secret::new("previous-secret"),
            until: now + chrono::Duration::seconds(60),
        }]);
        adapter
            .verify(&signed(channel, app_secret, body), now)
            .unwrap();
        assert_eq!(
            adapter
                .verify(&request(channel, body, None, "application/json"), now)
                .unwrap_err(),
            VerifyError::MissingHeader("x-hub-signature-256")
        );
        let forged = request(
            channel,
            body,
            Some(sign(b"not-the-secret", body.as_bytes())),
            "application/json",
        );
        assert_eq!(
            adapter.verify(&forged, now).unwrap_err(),
            VerifyError::BadSignature
        );
        let old = request(
            channel,
            body,
            Some(sign(b"previous-secret", body.as_bytes())),
            "application/json",
        );
        adapter.verify(&old, now).unwrap();
        assert_eq!(
            adapter
                .verify(&old, now + chrono::Duration::seconds(61))
                .unwrap_err(),
            VerifyError::BadSignature
        );
    }

    /// The GET handshake echoes `hub.challenge` for the right verify token (the tests'
    /// configs use `verify-me`) and refuses any other.
    pub(crate) fn assert_handshake_answers_the_challenge(
        adapter: &impl ChannelAdapter,
        challenge: &str,
    ) {
        let mut get = request("meta", "", None, "text/plain");
        get.method = axum::http::Method::GET;
        get.query = Some(format!(
            "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge={challenge}"
        ));
        assert_eq!(adapter.handshake(&get).unwrap().body, challenge);
        get.query = Some(format!(
            "hub.mode=subscribe&hub.verify_token=guess&hub.challenge={challenge}"
        ));
        assert_eq!(
            adapter.handshake(&get).unwrap_err(),
            HandshakeError::Forbidden
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    const SECRET: &str = "meta-app-secret";

    fn signed(body: &[u8], signature: Option<&str>) -> RawRequest {
        let mut headers = HeaderMap::new();
        if let Some(s) = signature {
            headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(s).unwrap());
        }
        RawRequest::post("https://bridge.example/hooks/wa", headers, body.to_vec())
    }

    fn get(query: &str) -> RawRequest {
        let mut request = RawRequest::post(
            &format!("https://bridge.example/hooks/wa?{query}"),
            HeaderMap::new(),
            Vec::new(),
        );
        request.method = axum::http::Method::GET;
        request
    }

    #[test]
    fn signs_like_meta() {
        // HMAC-SHA256("It's a Secret to Everybody", "Hello, World!"), the vector GitHub
        // publishes for the same `sha256=` header scheme.
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn verifies_the_raw_body_with_the_app_secret() {
        let secrets = AppSecrets::new(&Secret::new(SECRET), &[]);
        let body = "{\"x\":\"caf\u{e9} \u{1f600}\"}".as_bytes();
        let now = Utc::now();
        let good = sign(SECRET.as_bytes(), body);
        secrets.verify(&signed(body, Some(&good)), now).unwrap();
        // Upper-case hex and scheme are the same signature.
        let upper = format!("SHA256={}", good["sha256=".len()..].to_uppercase());
        secrets.verify(&signed(body, Some(&upper)), now).unwrap();
        let checks = [
            (None, VerifyError::MissingHeader(SIGNATURE_HEADER)),
            (Some("garbage"), VerifyError::BadSignature),
            (Some("sha1=abcd"), VerifyError::BadSignature),
            (Some("sha256=zz"), VerifyError::BadSignature),
            (Some("sha256="), VerifyError::BadSignature),
        ];
        for (header, expected) in checks {
            assert_eq!(
                secrets.verify(&signed(body, header), now).unwrap_err(),
                expected
            );
        }
        let other = sign(b"another secret", body);
        assert_eq!(
            secrets
                .verify(&signed(body, Some(&other)), now)
                .unwrap_err(),
            VerifyError::BadSignature
        );
        let tampered = sign(SECRET.as_bytes(), b"{\"x\":\"cafe\"}");
        assert_eq!(
            secrets
                .verify(&signed(body, Some(&tampered)), now)
                .unwrap_err(),
            VerifyError::BadSignature
        );
    }

    #[test]
    fn a_retired_secret_verifies_until_its_time() {
        let now = Utc::now();
        let retired = [RetiredSecret {
            secret: Secret::new("old-secret"),
            until: now + chrono::Duration::minutes(5),
        }];
        let secrets = AppSecrets::new(&Secret::new(SECRET), &retired);
        let body = b"{}";
        let old = sign(b"old-secret", body);
        secrets.verify(&signed(body, Some(&old)), now).unwrap();
        assert_eq!(
            secrets
                .verify(
                    &signed(body, Some(&old)),
                    now + chrono::Duration::minutes(6)
                )
                .unwrap_err(),
            VerifyError::BadSignature
        );
    }

    #[test]
    fn handshake_echoes_the_challenge_only_for_the_right_token() {
        let token = Secret::new("verify-me");
        let reply = handshake(
            &get("hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444"),
            &token,
        )
        .unwrap();
        assert_eq!(
            reply,
            HandshakeReply {
                content_type: "text/plain",
                body: "1158201444".into()
            }
        );
        assert_eq!(
            handshake(
                &get("hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1"),
                &token
            )
            .unwrap_err(),
            HandshakeError::Forbidden
        );
        assert_eq!(
            handshake(&get("hub.mode=subscribe&hub.challenge=1"), &token).unwrap_err(),
            HandshakeError::Forbidden
        );
        assert!(matches!(
            handshake(&get("hub.verify_token=verify-me&hub.challenge=1"), &token),
            Err(HandshakeError::Invalid(_))
        ));
        assert!(matches!(
            handshake(
                &get("hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=1"),
                &token
            ),
            Err(HandshakeError::Invalid(_))
        ));
        assert!(matches!(
            handshake(
                &get("hub.mode=subscribe&hub.verify_token=verify-me"),
                &token
            ),
            Err(HandshakeError::Invalid(_))
        ));
    }

    fn error_body(code: i64) -> String {
        json!({"error": {"message": "(#x) something", "type": "OAuthException", "code": code,
                         "error_data": {"messaging_product": "whatsapp", "details": "more"},
                         "fbtrace_id": "Az8or"}})
        .to_string()
    }

    #[test]
    fn graph_errors_are_classified_by_code_then_status() {
        let none = HeaderMap::new();
        let bad = StatusCode::BAD_REQUEST;
        for code in [4, 17, 32, 613, 80007, 130429, 131048, 131056] {
            let e = classify_error(bad, &none, &error_body(code), "tok");
            assert!(matches!(e, SendError::RateLimited { .. }), "{code}: {e:?}");
        }
        for code in [1, 2, 131000, 131016, 133004] {
            let e = classify_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &none,
                &error_body(code),
                "tok",
            );
            assert!(matches!(e, SendError::Retryable { .. }), "{code}: {e:?}");
        }
        for code in [100, 10, 190, 131026, 131047, 131051, 368, 551] {
            let e = classify_error(bad, &none, &error_body(code), "tok");
            assert!(matches!(e, SendError::Permanent { .. }), "{code}: {e:?}");
        }
        // An unknown code marked transient, and an unknown code with a 5xx, are retried.
        let transient = json!({"error": {"code": 999, "is_transient": true}}).to_string();
        assert!(matches!(
            classify_error(bad, &none, &transient, "tok"),
            SendError::Retryable { .. }
        ));
        assert!(matches!(
            classify_error(StatusCode::BAD_GATEWAY, &none, &error_body(999), "tok"),
            SendError::Retryable { .. }
        ));
        // No Graph error at all: the HTTP status decides.
        assert!(matches!(
            classify_error(StatusCode::SERVICE_UNAVAILABLE, &none, "<html>", "tok"),
            SendError::Retryable { .. }
        ));
        assert!(matches!(
            classify_error(StatusCode::FORBIDDEN, &none, "", "tok"),
            SendError::Permanent { .. }
        ));
    }

    #[test]
    fn rate_limits_keep_retry_after_and_reasons_name_the_code() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("30"));
        let e = classify_error(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            &error_body(130429),
            "tok",
        );
        assert_eq!(
            e,
            SendError::RateLimited {
                reason: "HTTP 429: Graph error 130429: (#x) something (more)".into(),
                retry_after: Some(Duration::from_secs(30)),
            }
        );
        // A bare 429 with no Graph body is a rate limit too.
        assert!(matches!(
            classify_error(StatusCode::TOO_MANY_REQUESTS, &headers, "", "tok"),
            SendError::RateLimited {
                retry_after: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn a_token_echoed_by_the_platform_never_reaches_the_reason() {
        let body = json!({"error": {"code": 190, "message": "Invalid token EAAGsecret123",
                                     "error_data": "EAAGsecret123"}})
        .to_string();
        let e = classify_error(
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            &body,
            "EAAGsecret123",
        );
        assert!(!e.to_string().contains("EAAGsecret123"), "{e}");
        let plain = classify_error(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            "proxy saw EAAGsecret123",
            "EAAGsecret123",
        );
        assert!(!plain.to_string().contains("EAAGsecret123"), "{plain}");
    }

    #[test]
    fn the_token_goes_only_to_graph_and_meta_hosts() {
        let graph = Graph::new(
            reqwest::Client::new(),
            "http://127.0.0.1:4000/v26.0/",
            &Secret::new("t"),
        );
        assert_eq!(
            graph.url("/123/messages"),
            "http://127.0.0.1:4000/v26.0/123/messages"
        );
        assert!(graph.trusts("http://127.0.0.1:4000/media/1"));
        assert!(graph.trusts("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1"));
        assert!(graph.trusts("https://scontent.xx.fbcdn.net/v/t1.png"));
        assert!(
            !graph.trusts("http://lookaside.fbsbx.com/x"),
            "not over plain HTTP"
        );
        assert!(
            !graph.trusts("http://127.0.0.1:4001/media/1"),
            "another port"
        );
        assert!(!graph.trusts("https://evil.example/fbsbx.com"));
        assert!(!graph.trusts("https://notfbsbx.com/x"));
        assert!(!graph.trusts("not a url"));
    }

    #[test]
    fn long_text_is_split_at_whitespace_within_the_limit() {
        assert_eq!(chunks("short", 10), vec!["short"]);
        let text = "aaaa bbbb cccc dddd";
        let pieces = chunks(text, 10);
        assert!(pieces.iter().all(|p| p.chars().count() <= 10), "{pieces:?}");
        assert_eq!(pieces.concat(), text);
        let unbroken = "x".repeat(25);
        assert_eq!(chunks(&unbroken, 10).len(), 3);
        let emoji = "\u{1f600}".repeat(7);
        assert_eq!(chunks(&emoji, 3).concat(), emoji);
    }

    #[test]
    fn walker_names_the_field_at_fault() {
        let value = json!({"entry": [{"id": 5, "changes": "x"}], "n": "1.5", "t": "17830"});
        let root = Node::root(&value);
        let entry = &root.req_list("entry").unwrap()[0];
        assert_eq!(entry.opt_id("id").unwrap().as_deref(), Some("5"));
        let err = entry.list("changes").unwrap_err();
        assert_eq!(
            err,
            ParseError::Invalid {
                field: "entry[0].changes".into(),
                message: "must be a list".into()
            }
        );
        assert!(
            matches!(root.req_str("missing"), Err(ParseError::Invalid { field, .. }) if field == "missing")
        );
        assert_eq!(root.opt_f64("n").unwrap(), Some(1.5));
        assert_eq!(
            root.opt_unix_seconds("t").unwrap().unwrap().timestamp(),
            17830
        );
        let scalar = json!(3);
        assert!(
            matches!(Node::root(&scalar).get("x"), Err(ParseError::Invalid { field, .. }) if field == "body")
        );
    }

    #[test]
    fn finds_the_first_link_in_a_part() {
        let raw = json!({"type": "poll", "options": ["a", {"href": "https://x.example/p"}]});
        assert_eq!(first_url(&raw), Some("https://x.example/p"));
        assert_eq!(first_url(&json!({"a": "ftp://x"})), None);
    }
}
