//! Twilio Messaging (SMS, MMS and WhatsApp through Twilio): form-encoded webhooks signed
//! with the account's auth token over the full URL and the sorted parameters; replies
//! created through the Messages resource with HTTP Basic auth.
//!
//! One webhook URL takes both incoming messages and status callbacks: a `MessageStatus`
//! other than `received` makes a request a status report on a message we sent.
//! Twilio has no quoted replies on the way out and no idempotency key: a send that fails
//! after Twilio took it may be repeated by a retry.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha1::Sha1;

use super::fetch::{Credentials, MediaClient};
use super::{
    ChannelAdapter, FetchError, FetchedMedia, InboundContact, InboundEvent, InboundMessage,
    Outbound, ParseError, RawRequest, Receipt, RetiredSecret, SendError, StatusUpdate, VerifyError,
    classify_status, classify_transport, invalid, retry_after, secrets_in_force,
};
use crate::model::{
    DeliveryStatus, Identifier, LocationPart, Media, MediaPart, Part, TextPart, UnsupportedPart,
};
use crate::secret::Secret;

/// The identifier type of a Twilio contact: their address as Twilio writes it
/// (`+15551234567`, `whatsapp:+447700900123`).
pub const IDENTIFIER_TYPE: &str = "twilio_address";

pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";

/// The header Twilio signs webhooks with.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// The longest `Body` Twilio accepts; longer texts are split.
pub const MAX_BODY_CHARS: usize = 1600;

/// Twilio's "Too Many Requests" error code.
const RATE_LIMITED_CODE: u64 = 20429;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// `AC…`: the account that owns the number; the user name of Basic auth.
    pub account_sid: String,
    /// Verifies `X-Twilio-Signature` and is the password of Basic auth.
    pub auth_token: Secret,
    /// The sender for replies when the conversation does not name one: a number
    /// (`+14155550100`), a WhatsApp sender (`whatsapp:+14155550100`) or a Messaging
    /// Service (`MG…`, which then sends every reply).
    pub from: String,
    #[serde(default = "default_api_base")]
    pub api_base: String,
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.into()
}

fn is_messaging_service(from: &str) -> bool {
    from.len() == 34 && from.starts_with("MG") && from.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl TwilioConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let sid = &self.account_sid;
        if !(sid.len() == 34
            && sid.starts_with("AC")
            && sid.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            errors.push((
                "account_sid".into(),
                "must be an account SID: AC followed by 32 characters".into(),
            ));
        }
        if self.from.trim().is_empty() {
            errors.push((
                "from".into(),
                "must be a number, a whatsapp: address or a Messaging Service SID".into(),
            ));
        }
        if !crate::model::is_http_url(&self.api_base) {
            errors.push(("api_base".into(), "must be an http(s) URL".into()));
        }
        errors
    }
}

pub struct TwilioAdapter {
    account_sid: String,
    auth_token: Secret,
    /// Auth tokens replaced by a reload, each accepted (inbound only) until its time.
    retired: Vec<RetiredSecret>,
    from: String,
    api_base: String,
    http: reqwest::Client,
}

impl TwilioAdapter {
    pub fn new(config: &TwilioConfig, http: reqwest::Client, retired: &[RetiredSecret]) -> Self {
        Self {
            account_sid: config.account_sid.clone(),
            auth_token: config.auth_token.clone(),
            retired: retired.to_vec(),
            from: config.from.trim().to_owned(),
            api_base: config.api_base.trim_end_matches('/').to_owned(),
            http,
        }
    }

    /// The path of a Twilio-hosted media URL (ours or the real API's), which is fetched
    /// from `api_base` with the account's credentials.
    fn media_path(&self, url: &str) -> Option<String> {
        let url = reqwest::Url::parse(url).ok()?;
        [DEFAULT_API_BASE, self.api_base.as_str()]
            .iter()
            .filter_map(|base| reqwest::Url::parse(base).ok())
            .any(|base| base.origin() == url.origin())
            .then(|| media_resource_path(url.path()))?
    }
}

/// `path` as the one resource it names once normalised, if that is a media file of a
/// message: `/2010-04-01/Accounts/{AC…}/Messages/{MM…}/Media/{ME…}`. Anything else (the
/// message log, another resource, a path that climbs out with `..` in any spelling,
/// `%2e%2e` included) is no media.
fn media_resource_path(path: &str) -> Option<String> {
    // Normalised as the request would be: dot segments, percent-encoded or not, resolved.
    let url = reqwest::Url::parse("https://api.twilio.invalid")
        .ok()?
        .join(path.strip_prefix('/')?)
        .ok()?;
    let segments: Vec<&str> = url.path_segments()?.collect();
    let sid = |s: &str, prefix: &str| {
        s.len() > prefix.len()
            && s.starts_with(prefix)
            && s.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    let shaped = url.query().is_none()
        && matches!(
            segments[..],
            ["2010-04-01", "Accounts", account, "Messages", message, "Media", media]
                if sid(account, "AC") && sid(message, "") && sid(media, "ME")
        );
    shaped.then(|| url.path().to_owned())
}

// ---------------------------------------------------------------------------------------
// Signatures

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac =
        Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// `X-Twilio-Signature` for a POST to `url` with these form parameters: base64
/// HMAC-SHA1(auth token, URL + every name and value, sorted by name).
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    BASE64.encode(mac(auth_token, url, params).finalize().into_bytes())
}

/// The URL as given, and with its default port written out or left out: Twilio signs the
/// URL as configured, and proxies and libraries differ on the port.
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    if let Ok(parsed) = reqwest::Url::parse(url) {
        if let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) {
            let mut with_port = format!("{}://{host}:{port}{}", parsed.scheme(), parsed.path());
            if let Some(query) = parsed.query() {
                with_port.push('?');
                with_port.push_str(query);
            }
            variants.push(with_port);
        }
        // Serializing drops a default port.
        variants.push(parsed.to_string());
    }
    let mut unique: Vec<String> = Vec::with_capacity(variants.len());
    for variant in variants {
        if !unique.contains(&variant) {
            unique.push(variant);
        }
    }
    unique
}

/// Checks `X-Twilio-Signature` with any of `tokens` (constant time).
pub fn verify_signature<'a>(
    tokens: impl IntoIterator<Item = &'a str>,
    signature: Option<&str>,
    url: &str,
    params: &[(String, String)],
) -> Result<(), VerifyError> {
    let signature = signature.ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;
    let signature = BASE64
        .decode(signature.trim())
        .map_err(|_| VerifyError::BadSignature)?;
    let urls = url_variants(url);
    for token in tokens {
        for url in &urls {
            if mac(token, url, params).verify_slice(&signature).is_ok() {
                return Ok(());
            }
        }
    }
    Err(VerifyError::BadSignature)
}

// ---------------------------------------------------------------------------------------
// Inbound

/// A webhook's form parameters by name (the last of a repeated name wins).
struct Params(Map<String, Value>);

impl Params {
    fn read(body: &[u8]) -> Result<Self, ParseError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| invalid("body", format!("is not a form-encoded body: {e}")))?;
        Ok(Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ))
    }

    /// A parameter, if sent and not empty.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    fn required(&self, name: &str) -> Result<&str, ParseError> {
        self.get(name).ok_or_else(|| invalid(name, "is required"))
    }

    fn number<T: std::str::FromStr>(
        &self,
        name: &str,
        what: &str,
    ) -> Result<Option<T>, ParseError> {
        self.get(name)
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|_| invalid(name, format!("must be {what}")))
            })
            .transpose()
    }

    fn raw(&self) -> Value {
        Value::Object(self.0.clone())
    }
}

/// The part one inbound media file becomes, by its content type.
fn media_part(
    content_type: Option<&str>,
    media: Media,
    caption: Option<String>,
    whatsapp: bool,
) -> Part {
    let part = MediaPart { media, caption };
    let kind = content_type.unwrap_or_default().to_ascii_lowercase();
    let essence = kind.split(';').next().unwrap_or_default().trim();
    match essence {
        // WhatsApp stickers arrive as WebP images and voice notes as Ogg/Opus audio;
        // Twilio has no other sign of either.
        "image/webp" if whatsapp => Part::Sticker(part),
        "audio/ogg" | "audio/opus" if whatsapp => Part::VoiceNote(part),
        t if t.starts_with("image/") => Part::Image(part),
        t if t.starts_with("video/") => Part::Video(part),
        t if t.starts_with("audio/") => Part::Audio(part),
        _ => Part::File(part),
    }
}

fn status_of(reported: &str) -> Option<DeliveryStatus> {
    match reported {
        "sent" => Some(DeliveryStatus::Sent),
        "delivered" => Some(DeliveryStatus::Delivered),
        "read" => Some(DeliveryStatus::Read),
        "undelivered" | "failed" | "canceled" => Some(DeliveryStatus::Failed),
        // queued, accepted, scheduled, sending: not past what our own send recorded;
        // partially_delivered and anything new: nothing we can say for certain.
        _ => None,
    }
}

impl TwilioAdapter {
    fn parse_params(&self, params: &Params) -> Result<Vec<InboundEvent>, ParseError> {
        let sid = params
            .get("MessageSid")
            .or_else(|| params.get("SmsMessageSid"))
            .or_else(|| params.get("SmsSid"))
            .ok_or_else(|| invalid("MessageSid", "is required"))?;
        let reported = params
            .get("MessageStatus")
            .or_else(|| params.get("SmsStatus"));
        match reported {
            None | Some("received" | "receiving") => {
                Ok(vec![InboundEvent::Message(self.message(params, sid)?)])
            }
            Some(reported) => Ok(status_of(reported)
                .map(|status| {
                    let error =
                        params
                            .get("ErrorCode")
                            .map(|code| match params.get("ErrorMessage") {
                                Some(message) => format!("Twilio error {code}: {message}"),
                                None => format!("Twilio error {code}"),
                            });
                    InboundEvent::Status(StatusUpdate {
                        platform_message_id: sid.to_owned(),
                        status,
                        error: error.or_else(|| {
                            (status == DeliveryStatus::Failed).then(|| reported.to_owned())
                        }),
                    })
                })
                .into_iter()
                .collect()),
        }
    }

    fn message(&self, params: &Params, sid: &str) -> Result<InboundMessage, ParseError> {
        let from = params.required("From")?;
        let to = params.required("To")?;
        let whatsapp = from.starts_with("whatsapp:");
        let body = params.get("Body").map(str::to_owned);
        let count: usize = params.number("NumMedia", "a whole number")?.unwrap_or(0);
        if count > 10 {
            return Err(invalid("NumMedia", "must be at most 10"));
        }
        let mut parts = Vec::new();
        let mut caption = body.clone();
        for i in 0..count {
            let url_name = format!("MediaUrl{i}");
            let url = params.required(&url_name)?;
            if !crate::model::is_http_url(url) {
                return Err(invalid(url_name, "must be an http(s) URL"));
            }
            let content_type = params.get(&format!("MediaContentType{i}"));
            let media = Media {
                platform_ref: self.media_path(url),
                url: Some(url.to_owned()),
                mime_type: content_type.map(str::to_owned),
                ..Media::default()
            };
            // The text goes with the first file as its caption.
            parts.push(media_part(content_type, media, caption.take(), whatsapp));
        }
        if let Some(text) = caption {
            parts.push(Part::Text(TextPart { text }));
        }
        let latitude = params.number::<f64>("Latitude", "a number")?;
        let longitude = params.number::<f64>("Longitude", "a number")?;
        match (latitude, longitude) {
            (Some(latitude), Some(longitude)) => {
                if !(-90.0..=90.0).contains(&latitude) {
                    return Err(invalid("Latitude", "must be between -90 and 90"));
                }
                if !(-180.0..=180.0).contains(&longitude) {
                    return Err(invalid("Longitude", "must be between -180 and 180"));
                }
                parts.push(Part::Location(LocationPart {
                    latitude,
                    longitude,
                    name: params.get("Label").map(str::to_owned),
                    address: params.get("Address").map(str::to_owned),
                }));
            }
            (Some(_), None) => return Err(invalid("Longitude", "is required with Latitude")),
            (None, Some(_)) => return Err(invalid("Latitude", "is required with Longitude")),
            (None, None) => {}
        }
        if parts.is_empty() {
            parts.push(Part::Unsupported(UnsupportedPart {
                platform_type: params.get("MessageType").unwrap_or("empty").to_owned(),
                raw: Some(params.raw()),
            }));
        }
        Ok(InboundMessage {
            conversation_hint: None,
            platform_message_id: sid.to_owned(),
            thread_id: Some(format!("{to}:{from}")),
            from: InboundContact {
                identifier: Identifier {
                    kind: IDENTIFIER_TYPE.into(),
                    value: from.to_owned(),
                },
                display_name: params.get("ProfileName").map(str::to_owned),
                email: None,
            },
            reply_to: params.get("OriginalRepliedMessageSid").map(str::to_owned),
            parts,
            // Twilio's webhooks carry no time.
            sent_at: None,
            raw: params.raw(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Outbound

/// One message to create: its text, its file, or both.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TwilioMessage {
    pub body: Option<String>,
    pub media_url: Option<String>,
}

/// What a reply becomes on Twilio, and notes on what could not go out as written.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub messages: Vec<TwilioMessage>,
    pub notes: Vec<String>,
}

fn split_body(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(MAX_BODY_CHARS)
        .map(|piece| piece.iter().collect())
        .collect()
}

impl Plan {
    fn push_text(&mut self, text: &str) {
        for body in split_body(text) {
            self.messages.push(TwilioMessage {
                body: Some(body),
                media_url: None,
            });
        }
    }

    fn push_media(&mut self, url: &str, body: Option<String>) {
        let mut pieces = body
            .as_deref()
            .map(split_body)
            .unwrap_or_default()
            .into_iter();
        self.messages.push(TwilioMessage {
            body: pieces.next(),
            media_url: Some(url.to_owned()),
        });
        for rest in pieces {
            self.push_text(&rest);
        }
    }
}

/// Turns a reply's parts into Twilio messages, in order: one per text and one per file;
/// a text right before a file without a caption becomes that file's caption.
pub fn plan(parts: &[Part]) -> Plan {
    let mut plan = Plan::default();
    let mut pending: Option<String> = None;
    let flush = |plan: &mut Plan, pending: &mut Option<String>| {
        if let Some(text) = pending.take() {
            plan.push_text(&text);
        }
    };
    for part in parts {
        match part {
            Part::Text(t) if t.text.trim().is_empty() => {}
            Part::Text(t) => {
                flush(&mut plan, &mut pending);
                pending = Some(t.text.clone());
            }
            Part::Image(m)
            | Part::Video(m)
            | Part::Audio(m)
            | Part::VoiceNote(m)
            | Part::Sticker(m)
            | Part::File(m) => {
                let caption = m.caption.clone().filter(|c| !c.trim().is_empty());
                match m.media.url.as_deref() {
                    Some(url) => {
                        let body = match caption {
                            Some(caption) => {
                                flush(&mut plan, &mut pending);
                                Some(caption)
                            }
                            None => pending.take(),
                        };
                        plan.push_media(url, body);
                    }
                    None => {
                        flush(&mut plan, &mut pending);
                        pending = caption;
                        plan.notes.push(
                            "a file without a URL was not sent: Twilio sends files by URL only"
                                .into(),
                        );
                    }
                }
            }
            Part::Location(l) => {
                flush(&mut plan, &mut pending);
                let mut lines: Vec<String> =
                    l.name.iter().chain(l.address.iter()).cloned().collect();
                lines.push(format!(
                    "https://maps.google.com/?q={},{}",
                    l.latitude, l.longitude
                ));
                pending = Some(lines.join("\n"));
                plan.notes
                    .push("location sent as a map link: Twilio sends text and files".into());
            }
            Part::Contact(c) => {
                flush(&mut plan, &mut pending);
                let lines: Vec<&str> = c
                    .name
                    .as_deref()
                    .into_iter()
                    .chain(c.phones.iter().map(String::as_str))
                    .chain(c.emails.iter().map(String::as_str))
                    .collect();
                pending = Some(lines.join("\n"));
                plan.notes
                    .push("contact sent as text: Twilio sends text and files".into());
            }
            Part::Unsupported(u) => plan.notes.push(format!(
                "{} part not sent: Twilio has no such message",
                u.platform_type
            )),
        }
    }
    flush(&mut plan, &mut pending);
    plan
}

/// Where a reply goes: (sender param name, sender, recipient). The recipient is the
/// contact; the sender is the Messaging Service when `from` names one, else the number
/// the contact wrote to (the thread's `To`), else `from`.
fn addresses<'a>(
    config_from: &'a str,
    thread: Option<&'a str>,
    contact: &'a str,
) -> (&'static str, &'a str, &'a str) {
    let (ours, to) = match thread.and_then(|t| split_thread(t, contact)) {
        Some((ours, theirs)) => (Some(ours), theirs),
        None => (None, contact),
    };
    if is_messaging_service(config_from) {
        ("MessagingServiceSid", config_from, to)
    } else {
        ("From", ours.unwrap_or(config_from), to)
    }
}

/// Splits a thread id `"{To}:{From}"` into (our address, the contact's address). Both
/// halves may hold a colon (`whatsapp:+1…`), so the contact's known address decides.
pub fn split_thread<'a>(thread: &'a str, contact: &str) -> Option<(&'a str, &'a str)> {
    if let Some(ours) = thread
        .strip_suffix(contact)
        .and_then(|rest| rest.strip_suffix(':'))
        .filter(|ours| !ours.is_empty())
    {
        return Some((ours, &thread[thread.len() - contact.len()..]));
    }
    // Unknown contact: both halves have the same shape, so split in the middle colon.
    let colons: Vec<usize> = thread.match_indices(':').map(|(i, _)| i).collect();
    if colons.len().is_multiple_of(2) {
        return None;
    }
    let middle = colons[colons.len() / 2];
    let (ours, theirs) = (&thread[..middle], &thread[middle + 1..]);
    (!ours.is_empty() && !theirs.is_empty()).then_some((ours, theirs))
}

/// Classifies a refused create: Twilio's `code` 20429 (or HTTP 429) is a rate limit; the
/// reason names Twilio's code and message.
pub fn classify(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> SendError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let code = parsed.as_ref().and_then(|v| v.get("code")?.as_u64());
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message")?.as_str().map(str::to_owned));
    let named = code.map(|code| match &message {
        Some(message) => format!("Twilio error {code}: {message} (HTTP {status})"),
        None => format!("Twilio error {code} (HTTP {status})"),
    });
    if code == Some(RATE_LIMITED_CODE) || status.as_u16() == 429 {
        return SendError::RateLimited {
            reason: named.unwrap_or_else(|| format!("HTTP {status}")),
            retry_after: retry_after(headers, Utc::now()),
        };
    }
    match (classify_status(status, headers, body), named) {
        (SendError::Permanent { .. }, Some(reason)) => SendError::Permanent { reason },
        (SendError::Retryable { retry_after, .. }, Some(reason)) => SendError::Retryable {
            reason,
            retry_after,
        },
        (other, _) => other,
    }
}

#[async_trait]
impl ChannelAdapter for TwilioAdapter {
    fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError> {
        // Twilio signs every parameter it sent, known to us or not: all are taken as sent.
        let params: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&request.body).unwrap_or_default();
        let tokens = secrets_in_force(&self.auth_token, &self.retired, now).map(Secret::expose);
        verify_signature(
            tokens,
            request.header(SIGNATURE_HEADER),
            &request.url,
            &params,
        )
    }

    fn parse(&self, request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError> {
        match request.content_type().as_deref() {
            Some("application/x-www-form-urlencoded") => {
                self.parse_params(&Params::read(&request.body)?)
            }
            other => Err(ParseError::UnsupportedMediaType(
                other.unwrap_or("none").to_owned(),
            )),
        }
    }

    async fn send(&self, message: &Outbound) -> Result<Receipt, SendError> {
        let Plan { messages, notes } = plan(&message.parts);
        if messages.is_empty() {
            return Err(SendError::Permanent {
                reason: format!(
                    "nothing in this reply can be sent through Twilio: {}",
                    notes.join("; ")
                ),
            });
        }
        let (sender_param, sender, to) = addresses(
            &self.from,
            message.platform_thread_id.as_deref(),
            &message.to.value,
        );
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.api_base, self.account_sid
        );
        let mut first_sid = None;
        for outgoing in &messages {
            let mut form: Vec<(&str, &str)> = vec![("To", to), (sender_param, sender)];
            if let Some(body) = &outgoing.body {
                form.push(("Body", body));
            }
            if let Some(media) = &outgoing.media_url {
                form.push(("MediaUrl", media));
            }
            let response = self
                .http
                .post(&url)
                .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
                .form(&form)
                .send()
                .await
                .map_err(classify_transport)?;
            let status = response.status();
            let headers = response.headers().clone();
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() {
                return Err(classify(status, &headers, &text));
            }
            if first_sid.is_none() {
                first_sid = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.get("sid")?.as_str().map(str::to_owned))
                    .filter(|sid| !sid.is_empty());
            }
        }
        Ok(Receipt {
            platform_message_id: first_sid,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        })
    }

    /// Twilio-hosted media (inbound `MediaUrl`s) is fetched from `api_base` with Basic
    /// auth, following Twilio's redirect to its file store (the credentials are not sent
    /// on to another origin); any other URL is fetched as is, without them.
    async fn fetch_media(
        &self,
        media: &Media,
        web: &MediaClient,
    ) -> Result<FetchedMedia, FetchError> {
        let path = media
            .platform_ref
            .as_deref()
            .and_then(media_resource_path)
            .or_else(|| media.url.as_deref().and_then(|url| self.media_path(url)));
        if let Some(path) = path {
            let credentials = Credentials::Basic {
                user: &self.account_sid,
                password: self.auth_token.expose(),
            };
            return web
                .fetch_with(
                    &format!("{}{path}", self.api_base),
                    &[&self.api_base],
                    credentials,
                )
                .await;
        }
        match media.url.as_deref() {
            Some(url) => web.fetch(url, &[&self.api_base]).await,
            None => Err(FetchError::NoMedia),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::fixture;
    use crate::model::{ContactPart, ConversationId, MessageId};
    use axum::http::{HeaderMap, HeaderValue};
    use proptest::prelude::*;
    use serde_json::json;

    const ACCOUNT: &str = "ACaaaabbbbccccddddeeeeffff00001111";
    const TOKEN: &str = "twilio-auth-token";
    const URL: &str = "https://bridge.example.com/hooks/sms";

    const SMS_TEXT: &str = fixture!("twilio/sms_text.form");
    const MMS_MEDIA: &str = fixture!("twilio/mms_media.form");
    const WA_REPLY: &str = fixture!("twilio/whatsapp_reply.form");
    const WA_LOCATION: &str = fixture!("twilio/whatsapp_location.form");
    const WA_VOICE: &str = fixture!("twilio/whatsapp_voice.form");
    const WA_STICKER: &str = fixture!("twilio/whatsapp_sticker.form");
    const WA_UNSUPPORTED: &str = fixture!("twilio/whatsapp_unsupported.form");
    const STATUS_DELIVERED: &str = fixture!("twilio/status_delivered.form");
    const STATUS_UNDELIVERED: &str = fixture!("twilio/status_undelivered.form");
    const STATUS_READ: &str = fixture!("twilio/status_read.form");
    const STATUS_SENT: &str = fixture!("twilio/status_sent.form");

    fn config(api_base: &str) -> TwilioConfig {
        TwilioConfig {
            account_sid: ACCOUNT.into(),
            auth_token: Secret::new(TOKEN),
            from: "+14155550100".into(),
            api_base: api_base.into(),
        }
    }

    fn adapter_with(retired: &[RetiredSecret]) -> TwilioAdapter {
        TwilioAdapter::new(&config(DEFAULT_API_BASE), reqwest::Client::new(), retired)
    }

    fn pairs(body: &str) -> Vec<(String, String)> {
        serde_urlencoded::from_str(body).unwrap()
    }

    fn request(url: &str, body: &str, signature: Option<&str>, content_type: &str) -> RawRequest {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_str(content_type).unwrap());
        if let Some(signature) = signature {
            headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(signature).unwrap());
        }
        RawRequest::post(url, headers, body.to_owned())
    }

    fn signed(body: &str) -> RawRequest {
        request(
            URL,
            body,
            Some(&sign(TOKEN, URL, &pairs(body))),
            "application/x-www-form-urlencoded",
        )
    }

    fn parse(body: &str) -> Vec<InboundEvent> {
        let adapter = adapter_with(&[]);
        let request = signed(body);
        adapter.verify(&request, Utc::now()).unwrap();
        adapter.parse(&request).unwrap()
    }

    fn message(body: &str) -> InboundMessage {
        match parse(body).pop() {
            Some(InboundEvent::Message(m)) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    fn field_of(body: &str) -> String {
        match adapter_with(&[]).parse(&signed(body)).unwrap_err() {
            ParseError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn media(part: &Part) -> &MediaPart {
        match part {
            Part::Image(m)
            | Part::Video(m)
            | Part::Audio(m)
            | Part::VoiceNote(m)
            | Part::Sticker(m)
            | Part::File(m) => m,
            other => panic!("expected media, got {other:?}"),
        }
    }

    #[test]
    fn signs_twilio_s_published_example() {
        // Twilio's own example (security/signature_validation in twilio/api-snippets).
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(sign("12345", url, &params), "GvWf1cFY/Q7PnoempGyD5oXAezc=");
        // Order on the wire does not matter: Twilio sorts by name.
        let mut reversed = params.clone();
        reversed.reverse();
        verify_signature(
            ["12345"],
            Some("GvWf1cFY/Q7PnoempGyD5oXAezc="),
            url,
            &reversed,
        )
        .unwrap();
    }

    #[test]
    fn a_wrong_or_missing_signature_is_refused() {
        let adapter = adapter_with(&[]);
        let now = Utc::now();
        let form = "application/x-www-form-urlencoded";
        let forged = request(
            URL,
            SMS_TEXT,
            Some(&sign("other", URL, &pairs(SMS_TEXT))),
            form,
        );
        assert_eq!(adapter.verify(&forged, now), Err(VerifyError::BadSignature));
        let tampered_body = SMS_TEXT.replace("Body=Is", "Body=Was");
        let tampered = request(
            URL,
            &tampered_body,
            Some(&sign(TOKEN, URL, &pairs(SMS_TEXT))),
            form,
        );
        assert_eq!(
            adapter.verify(&tampered, now),
            Err(VerifyError::BadSignature)
        );
        let other_url = request(
            "https://bridge.example.com/hooks/other",
            SMS_TEXT,
            Some(&sign(TOKEN, URL, &pairs(SMS_TEXT))),
            form,
        );
        assert_eq!(
            adapter.verify(&other_url, now),
            Err(VerifyError::BadSignature)
        );
        let missing = request(URL, SMS_TEXT, None, form);
        assert_eq!(
            adapter.verify(&missing, now),
            Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
        );
        let garbage = request(URL, SMS_TEXT, Some("%%%"), form);
        assert_eq!(
            adapter.verify(&garbage, now),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn the_url_may_be_signed_with_or_without_its_default_port() {
        let adapter = adapter_with(&[]);
        let with_port = "https://bridge.example.com:443/hooks/sms";
        let signature = sign(TOKEN, with_port, &pairs(SMS_TEXT));
        let request = request(
            URL,
            SMS_TEXT,
            Some(&signature),
            "application/x-www-form-urlencoded",
        );
        adapter.verify(&request, Utc::now()).unwrap();
    }

    #[test]
    fn a_retired_token_is_accepted_until_its_time() {
        let now = Utc::now();
        let retired = [RetiredSecret {
            secret: Secret::new("old-token"),
            until: now + chrono::Duration::minutes(5),
        }];
        let adapter = adapter_with(&retired);
        let old = request(
            URL,
            SMS_TEXT,
            Some(&sign("old-token", URL, &pairs(SMS_TEXT))),
            "application/x-www-form-urlencoded",
        );
        adapter.verify(&old, now).unwrap();
        adapter.verify(&signed(SMS_TEXT), now).unwrap();
        assert_eq!(
            adapter.verify(&old, now + chrono::Duration::minutes(6)),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn an_sms() {
        let m = message(SMS_TEXT);
        assert_eq!(m.platform_message_id, "SM0a1b2c3d4e5f60718293a4b5c6d7e8f9");
        assert_eq!(m.thread_id.as_deref(), Some("+14155550100:+14155550123"));
        assert_eq!(
            m.from.identifier,
            Identifier {
                kind: "twilio_address".into(),
                value: "+14155550123".into()
            }
        );
        assert_eq!(m.from.display_name, None);
        assert_eq!(m.reply_to, None);
        assert_eq!(
            m.parts,
            vec![Part::Text(TextPart {
                text: "Is my order on its way?".into()
            })]
        );
        assert_eq!(m.raw["FromCity"], "SAN FRANCISCO");
        assert_eq!(m.raw["NumSegments"], "1");
    }

    #[test]
    fn an_mms_with_an_image_a_video_and_a_file_carries_its_text_as_the_first_caption() {
        let m = message(MMS_MEDIA);
        assert_eq!(m.parts.len(), 3);
        assert!(matches!(m.parts[0], Part::Image(_)));
        assert!(matches!(m.parts[1], Part::Video(_)));
        assert!(matches!(m.parts[2], Part::File(_)));
        let image = media(&m.parts[0]);
        assert_eq!(image.caption.as_deref(), Some("Photos of the damage"));
        assert_eq!(image.media.mime_type.as_deref(), Some("image/jpeg"));
        assert_eq!(
            image.media.platform_ref.as_deref(),
            Some(
                "/2010-04-01/Accounts/ACaaaabbbbccccddddeeeeffff00001111/Messages/MM1f2e3d4c5b6a79880f1e2d3c4b5a6978/Media/ME00000000000000000000000000000001"
            )
        );
        assert!(
            image
                .media
                .url
                .as_deref()
                .unwrap()
                .starts_with("https://api.twilio.com/")
        );
        assert_eq!(media(&m.parts[1]).caption, None);
        assert_eq!(
            media(&m.parts[2]).media.mime_type.as_deref(),
            Some("application/pdf")
        );
    }

    #[test]
    fn a_whatsapp_reply_names_the_quoted_message_and_the_profile() {
        let m = message(WA_REPLY);
        assert_eq!(
            m.reply_to.as_deref(),
            Some("SM524c000000000000000000000000beef")
        );
        assert_eq!(m.from.display_name.as_deref(), Some("Priya"));
        assert_eq!(m.from.identifier.value, "whatsapp:+447700900123");
        assert_eq!(
            m.thread_id.as_deref(),
            Some("whatsapp:+14155550100:whatsapp:+447700900123")
        );
    }

    #[test]
    fn whatsapp_locations_voice_notes_and_stickers() {
        assert_eq!(
            message(WA_LOCATION).parts,
            vec![Part::Location(LocationPart {
                latitude: 51.5033635,
                longitude: -0.1276248,
                name: Some("Office".into()),
                address: Some("10 Downing Street, London".into()),
            })]
        );
        let voice = message(WA_VOICE);
        assert!(matches!(voice.parts[..], [Part::VoiceNote(_)]), "{voice:?}");
        let sticker = message(WA_STICKER);
        assert!(
            matches!(sticker.parts[..], [Part::Sticker(_)]),
            "{sticker:?}"
        );
        // The same types by SMS are plain audio and image.
        let sms_voice = WA_VOICE.replace("whatsapp%3A", "");
        assert!(matches!(message(&sms_voice).parts[..], [Part::Audio(_)]));
    }

    #[test]
    fn a_message_with_nothing_we_know_is_kept_as_unsupported() {
        let m = message(WA_UNSUPPORTED);
        let [Part::Unsupported(u)] = &m.parts[..] else {
            panic!("{:?}", m.parts)
        };
        assert_eq!(u.platform_type, "interactive");
        assert_eq!(
            u.raw.as_ref().unwrap()["MessageSid"],
            "SM9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c"
        );
    }

    #[test]
    fn status_callbacks_report_on_our_messages() {
        let status = |body: &str| parse(body);
        assert_eq!(
            status(STATUS_DELIVERED),
            vec![InboundEvent::Status(StatusUpdate {
                platform_message_id: "SM11112222333344445555666677778888".into(),
                status: DeliveryStatus::Delivered,
                error: None,
            })]
        );
        assert_eq!(
            status(STATUS_UNDELIVERED),
            vec![InboundEvent::Status(StatusUpdate {
                platform_message_id: "SM11112222333344445555666677778888".into(),
                status: DeliveryStatus::Failed,
                error: Some("Twilio error 30003".into()),
            })]
        );
        let InboundEvent::Status(read) = &status(STATUS_READ)[0] else {
            panic!()
        };
        assert_eq!(read.status, DeliveryStatus::Read);
        let InboundEvent::Status(sent) = &status(STATUS_SENT)[0] else {
            panic!()
        };
        assert_eq!(sent.status, DeliveryStatus::Sent);
        for nothing_new in ["queued", "sending", "accepted", "partially_delivered"] {
            let body = STATUS_SENT.replace("Status=sent", &format!("Status={nothing_new}"));
            assert!(status(&body).is_empty(), "{nothing_new}");
        }
        let failed = STATUS_SENT.replace("Status=sent", "Status=failed");
        let InboundEvent::Status(failed) = &status(&failed)[0] else {
            panic!()
        };
        assert_eq!(failed.error.as_deref(), Some("failed"));
    }

    #[test]
    fn malformed_requests_name_the_parameter_at_fault() {
        let cases = [
            ("From=%2B1&To=%2B2&Body=hi", "MessageSid"),
            ("MessageSid=SM1&To=%2B2&Body=hi", "From"),
            ("MessageSid=SM1&From=%2B1&Body=hi", "To"),
            ("MessageSid=SM1&From=%2B1&To=%2B2&NumMedia=two", "NumMedia"),
            ("MessageSid=SM1&From=%2B1&To=%2B2&NumMedia=11", "NumMedia"),
            (
                "MessageSid=SM1&From=%2B1&To=%2B2&NumMedia=2&MediaUrl0=https%3A%2F%2Fx.example%2Fa",
                "MediaUrl1",
            ),
            (
                "MessageSid=SM1&From=%2B1&To=%2B2&NumMedia=1&MediaUrl0=ftp%3A%2F%2Fx",
                "MediaUrl0",
            ),
            (
                "MessageSid=SM1&From=%2B1&To=%2B2&Latitude=north&Longitude=1",
                "Latitude",
            ),
            ("MessageSid=SM1&From=%2B1&To=%2B2&Latitude=1", "Longitude"),
            (
                "MessageSid=SM1&From=%2B1&To=%2B2&Latitude=1&Longitude=190",
                "Longitude",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(body), field, "{body}");
        }
    }

    #[test]
    fn only_form_bodies_are_accepted() {
        let adapter = adapter_with(&[]);
        let json = request(URL, "{}", None, "application/json");
        assert_eq!(
            adapter.parse(&json),
            Err(ParseError::UnsupportedMediaType("application/json".into()))
        );
        let charset = request(
            URL,
            SMS_TEXT,
            None,
            "application/x-www-form-urlencoded; charset=utf-8",
        );
        assert_eq!(adapter.parse(&charset).unwrap().len(), 1);
    }

    fn media_part_with(url: Option<&str>, caption: Option<&str>) -> MediaPart {
        MediaPart {
            media: Media {
                url: url.map(str::to_owned),
                ..Media::default()
            },
            caption: caption.map(str::to_owned),
        }
    }

    fn text(t: &str) -> Part {
        Part::Text(TextPart { text: t.into() })
    }

    fn msg(body: Option<&str>, media_url: Option<&str>) -> TwilioMessage {
        TwilioMessage {
            body: body.map(str::to_owned),
            media_url: media_url.map(str::to_owned),
        }
    }

    #[test]
    fn replies_become_messages_in_order_with_text_as_the_next_file_s_caption() {
        let plan = plan(&[
            text("Here is the label"),
            Part::File(media_part_with(Some("https://x.example/label.pdf"), None)),
            text("And the photo:"),
            Part::Image(media_part_with(
                Some("https://x.example/a.jpg"),
                Some("front"),
            )),
            Part::Sticker(media_part_with(Some("https://x.example/s.webp"), None)),
            text("Bye"),
        ]);
        assert_eq!(
            plan.messages,
            vec![
                msg(
                    Some("Here is the label"),
                    Some("https://x.example/label.pdf")
                ),
                msg(Some("And the photo:"), None),
                msg(Some("front"), Some("https://x.example/a.jpg")),
                msg(None, Some("https://x.example/s.webp")),
                msg(Some("Bye"), None),
            ]
        );
        assert!(plan.notes.is_empty());
    }

    #[test]
    fn parts_twilio_cannot_carry_go_as_text_with_a_note() {
        let plan = plan(&[
            Part::Location(LocationPart {
                latitude: 51.5,
                longitude: -0.12,
                name: Some("Office".into()),
                address: None,
            }),
            Part::Contact(ContactPart {
                name: Some("Bo".into()),
                phones: vec!["+4912345".into()],
                emails: vec!["bo@example.com".into()],
            }),
            Part::Image(media_part_with(None, Some("lost photo"))),
            Part::Unsupported(UnsupportedPart {
                platform_type: "poll".into(),
                raw: None,
            }),
        ]);
        assert_eq!(
            plan.messages,
            vec![
                msg(Some("Office\nhttps://maps.google.com/?q=51.5,-0.12"), None),
                msg(Some("Bo\n+4912345\nbo@example.com"), None),
                msg(Some("lost photo"), None),
            ]
        );
        assert_eq!(plan.notes.len(), 4, "{:?}", plan.notes);
        assert!(plan.notes[0].starts_with("location sent as a map link"));
        assert!(plan.notes[3].starts_with("poll part not sent"));
    }

    #[test]
    fn long_texts_are_split_at_twilio_s_limit() {
        let plan = plan(&[text(&"x".repeat(MAX_BODY_CHARS * 2 + 1))]);
        assert_eq!(plan.messages.len(), 3);
        assert_eq!(plan.messages[2].body.as_deref(), Some("x"));
    }

    #[test]
    fn threads_split_into_our_address_and_the_contact_s() {
        assert_eq!(
            split_thread("+14155550100:+14155550123", "+14155550123"),
            Some(("+14155550100", "+14155550123"))
        );
        assert_eq!(
            split_thread(
                "whatsapp:+14155550100:whatsapp:+447700900123",
                "whatsapp:+447700900123"
            ),
            Some(("whatsapp:+14155550100", "whatsapp:+447700900123"))
        );
        // The contact hint does not match: fall back to the middle colon.
        assert_eq!(
            split_thread("whatsapp:+1:whatsapp:+44", "+99"),
            Some(("whatsapp:+1", "whatsapp:+44"))
        );
        assert_eq!(split_thread("nocolon", "+99"), None);
        assert_eq!(
            addresses(
                "+14155550199",
                Some("+14155550100:+14155550123"),
                "+14155550123"
            ),
            ("From", "+14155550100", "+14155550123")
        );
        assert_eq!(
            addresses("+14155550199", None, "+14155550123"),
            ("From", "+14155550199", "+14155550123")
        );
        let service = "MG0123456789abcdef0123456789abcdef";
        assert_eq!(
            addresses(service, Some("+14155550100:+14155550123"), "+14155550123"),
            ("MessagingServiceSid", service, "+14155550123")
        );
    }

    #[test]
    fn config_rules() {
        assert!(config(DEFAULT_API_BASE).validate().is_empty());
        let bad = TwilioConfig {
            account_sid: "SK123".into(),
            from: " ".into(),
            api_base: "api.twilio.com".into(),
            ..config(DEFAULT_API_BASE)
        };
        let keys: Vec<String> = bad.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["account_sid", "from", "api_base"]);
    }

    fn outbound(parts: Vec<Part>) -> Outbound {
        Outbound {
            message_id: MessageId::new(),
            conversation_id: ConversationId::new(),
            platform_thread_id: Some("+14155550100:+14155550123".into()),
            to: Identifier {
                kind: IDENTIFIER_TYPE.into(),
                value: "+14155550123".into(),
            },
            reply_to: None,
            parts,
        }
    }

    #[tokio::test]
    async fn send_failures_are_classified_from_status_and_twilio_code() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let error = |status: u16, code: u64, message: &str| {
            ResponseTemplate::new(status).set_body_json(json!({
                "code": code, "message": message,
                "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status
            }))
        };
        let cases = [
            (
                error(429, 20429, "Too Many Requests").insert_header("retry-after", "4"),
                "rate limited",
            ),
            (error(400, 20429, "Too Many Requests"), "rate limited"),
            (ResponseTemplate::new(503), "retryable"),
            (error(500, 20500, "Internal Server Error"), "retryable"),
            (
                error(
                    400,
                    21211,
                    "The 'To' number +1555 is not a valid phone number.",
                ),
                "permanent",
            ),
            (error(401, 20003, "Authenticate"), "permanent"),
            (
                ResponseTemplate::new(201)
                    .set_body_json(json!({"sid": "SMabc", "status": "queued"})),
                "sent",
            ),
        ];
        for (response, expected) in cases {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path(format!(
                    "/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
                )))
                .respond_with(response)
                .expect(1)
                .mount(&server)
                .await;
            let adapter = TwilioAdapter::new(&config(&server.uri()), reqwest::Client::new(), &[]);
            let result = adapter.send(&outbound(vec![text("hi")])).await;
            let got = match &result {
                Ok(_) => "sent",
                Err(SendError::RateLimited { .. }) => "rate limited",
                Err(SendError::Retryable { .. }) => "retryable",
                Err(SendError::Permanent { .. }) => "permanent",
            };
            assert_eq!(got, expected, "{result:?}");
            match result {
                Ok(receipt) => assert_eq!(receipt.platform_message_id.as_deref(), Some("SMabc")),
                Err(SendError::RateLimited {
                    retry_after,
                    reason,
                }) => {
                    assert!(reason.contains("20429"), "{reason}");
                    if retry_after.is_some() {
                        assert_eq!(retry_after, Some(std::time::Duration::from_secs(4)));
                    }
                }
                Err(SendError::Permanent { reason }) => {
                    assert!(reason.starts_with("Twilio error 2"), "{reason}");
                    assert!(!reason.contains(TOKEN));
                }
                Err(_) => {}
            }
        }
    }

    #[tokio::test]
    async fn a_reply_is_created_per_message_with_basic_auth_from_the_number_written_to() {
        use wiremock::matchers::{header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        let basic = format!("Basic {}", BASE64.encode(format!("{ACCOUNT}:{TOKEN}")));
        Mock::given(method("POST"))
            .and(path(format!(
                "/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
            )))
            .and(header("authorization", basic.as_str()))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(json!({"sid": "SMfirst", "status": "queued"})),
            )
            .expect(2)
            .mount(&server)
            .await;
        let adapter = TwilioAdapter::new(&config(&server.uri()), reqwest::Client::new(), &[]);
        let receipt = adapter
            .send(&outbound(vec![
                text("See attached"),
                Part::Image(media_part_with(Some("https://x.example/a.jpg"), None)),
                text("Anything else?"),
            ]))
            .await
            .unwrap();
        assert_eq!(receipt.platform_message_id.as_deref(), Some("SMfirst"));
        let requests = server.received_requests().await.unwrap();
        let forms: Vec<Vec<(String, String)>> = requests
            .iter()
            .map(|r| serde_urlencoded::from_bytes(&r.body).unwrap())
            .collect();
        let form = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            forms[0],
            form(&[
                ("To", "+14155550123"),
                ("From", "+14155550100"),
                ("Body", "See attached"),
                ("MediaUrl", "https://x.example/a.jpg"),
            ])
        );
        assert_eq!(
            forms[1],
            form(&[
                ("To", "+14155550123"),
                ("From", "+14155550100"),
                ("Body", "Anything else?"),
            ])
        );
    }

    #[tokio::test]
    async fn twilio_media_is_fetched_from_api_base_with_basic_auth_following_redirects() {
        use wiremock::matchers::{header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        let media_path = format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media/ME1");
        let basic = format!("Basic {}", BASE64.encode(format!("{ACCOUNT}:{TOKEN}")));
        Mock::given(method("GET"))
            .and(path(media_path.as_str()))
            .and(header("authorization", basic.as_str()))
            .respond_with(ResponseTemplate::new(307).insert_header(
                "location",
                format!("{}/store/ME1.jpg", server.uri()).as_str(),
            ))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/store/ME1.jpg"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(b"jpeg".to_vec(), "image/jpeg"))
            .expect(1)
            .mount(&server)
            .await;
        let adapter = TwilioAdapter::new(&config(&server.uri()), reqwest::Client::new(), &[]);
        // As stored from a webhook: the real API's URL; fetched from api_base.
        let inbound = Media {
            platform_ref: Some(media_path.clone()),
            url: Some(format!("{DEFAULT_API_BASE}{media_path}")),
            ..Media::default()
        };
        let fetched = adapter
            .fetch_media(&inbound, &test_media_client())
            .await
            .ok()
            .unwrap();
        assert_eq!(fetched.response.bytes().await.unwrap().as_ref(), b"jpeg");
        let elsewhere = Media {
            platform_ref: Some("/etc/passwd".into()),
            ..Media::default()
        };
        assert_eq!(
            adapter
                .fetch_media(&elsewhere, &test_media_client())
                .await
                .err(),
            Some(FetchError::NoMedia)
        );
    }

    #[test]
    fn only_a_message_s_media_file_is_fetched_with_the_account_s_credentials() {
        let media = format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media/ME1");
        assert_eq!(media_resource_path(&media), Some(media.clone()));
        assert_eq!(
            media_resource_path(&format!(
                "/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media/x/%2e%2e/ME1"
            )),
            Some(media.clone()),
            "judged once normalised"
        );
        for path in [
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json"),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/%2e%2e/Messages.json"),
            format!(
                "/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media/%2E%2e/%2e%2E/%2e./Messages.json"
            ),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media/ME1/../../../Messages.json"),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media/ME1?PageSize=1000"),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media/ME1.json"),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media"),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/CA1/Recordings/RE1"),
            format!("//evil.example/2010-04-01/Accounts/{ACCOUNT}/Messages/MM1/Media/ME1"),
            "/etc/passwd".to_owned(),
            String::new(),
        ] {
            assert_eq!(media_resource_path(&path), None, "{path}");
        }
        let adapter = adapter_with(&[]);
        assert_eq!(
            adapter.media_path(&format!("https://api.twilio.com.evil.example{media}")),
            None
        );
        assert_eq!(
            adapter.media_path(&format!("https://api.twilio.com{media}")),
            Some(media)
        );
    }

    fn arbitrary_params() -> impl Strategy<Value = Vec<(String, String)>> {
        let name = prop_oneof![
            Just("MessageSid".to_owned()),
            Just("From".to_owned()),
            Just("To".to_owned()),
            Just("Body".to_owned()),
            Just("NumMedia".to_owned()),
            Just("MediaUrl0".to_owned()),
            Just("MediaUrl1".to_owned()),
            Just("MediaContentType0".to_owned()),
            Just("Latitude".to_owned()),
            Just("Longitude".to_owned()),
            Just("MessageStatus".to_owned()),
            Just("SmsStatus".to_owned()),
            Just("ErrorCode".to_owned()),
            Just("OriginalRepliedMessageSid".to_owned()),
            "[A-Za-z0-9]{1,8}",
        ];
        let value = prop_oneof![
            Just("received".to_owned()),
            Just("delivered".to_owned()),
            Just("failed".to_owned()),
            Just("whatsapp:+1".to_owned()),
            Just("https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME".to_owned()),
            Just("image/webp".to_owned()),
            "-?[0-9]{1,4}(\\.[0-9]{1,3})?",
            ".{0,12}",
        ];
        prop::collection::vec((name, value), 0..12)
    }

    /// One adapter for every generated case (building an HTTP client is slow).
    static SHARED: std::sync::LazyLock<TwilioAdapter> =
        std::sync::LazyLock::new(|| adapter_with(&[]));

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_parser(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let adapter = &*SHARED;
            let request = request(URL, "", None, "application/x-www-form-urlencoded");
            let request = RawRequest { body: body.into(), ..request };
            let _ = adapter.verify(&request, Utc::now());
            let _ = adapter.parse(&request);
        }

        #[test]
        fn arbitrary_parameters_never_panic_the_parser(params in arbitrary_params()) {
            let adapter = &*SHARED;
            let body = serde_urlencoded::to_string(&params).unwrap();
            let _ = adapter.parse(&signed(&body));
        }

        #[test]
        fn arbitrary_threads_never_panic_the_split(thread in ".{0,20}", contact in ".{0,8}") {
            let _ = split_thread(&thread, &contact);
        }
    }

    /// Media fetches in these tests go to wiremock on loopback, which a channel allows
    /// only with media_allow_private.
    fn test_media_client() -> crate::adapters::fetch::MediaClient {
        crate::adapters::fetch::MediaClient::new(std::time::Duration::from_secs(5), true)
    }
}
