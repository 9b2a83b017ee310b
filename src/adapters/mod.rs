//! Channel adapters: one per platform, each turning that platform's webhooks into
//! normalized events and normalized replies into that platform's send calls.
//!
//! Inbound is pure (`verify`, `parse` over a [`RawRequest`]: no I/O, fixture-testable);
//! outbound is async (`send`). Adapters know nothing of storage, threading or routing.

pub mod email;
pub mod fetch;
pub mod generic;
pub mod instagram;
pub mod line;
pub mod messenger;
pub mod meta;
pub mod signature;
pub mod slack;
pub mod telegram;
pub mod text;
pub mod twilio;
pub mod viber;
pub mod whatsapp;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;

// The normalized types adapters produce and take live in `model`; re-exported here because
// every adapter speaks them.
pub use crate::model::event::{
    InboundContact, InboundEvent, InboundMessage, MessageEdit, StatusUpdate, StatusWatermark,
};
pub use crate::model::outbound::Outbound;

/// A webhook request as received, before anything trusts it.
#[derive(Clone, Debug)]
pub struct RawRequest {
    pub method: Method,
    /// The full URL the platform called, as the platform knows it: `server.public_url`
    /// plus path and query (Twilio signs this).
    pub url: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RawRequest {
    /// A POST with this body and headers (fixture tests).
    pub fn post(url: &str, headers: HeaderMap, body: impl Into<Bytes>) -> Self {
        Self {
            method: Method::POST,
            url: url.to_owned(),
            query: url.split_once('?').map(|(_, q)| q.to_owned()),
            headers,
            body: body.into(),
        }
    }

    /// The query parameters, decoded, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_str(self.query.as_deref().unwrap_or_default()).unwrap_or_default()
    }

    /// One query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// A header's value as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The media type of the body without parameters, lowercased.
    pub fn content_type(&self) -> Option<String> {
        self.header("content-type").map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// The body of a JSON webhook; a request of any other media type is refused as 415.
    pub fn json_body(&self) -> Result<&[u8], ParseError> {
        match self.content_type().as_deref() {
            Some("application/json") => Ok(&self.body),
            other => Err(ParseError::UnsupportedMediaType(
                other.unwrap_or("none").to_owned(),
            )),
        }
    }
}

/// What the platform said when it took a message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Receipt {
    pub platform_message_id: Option<String>,
    /// Something the rep should know about how it went out (a part the platform cannot
    /// carry was sent as a link), shown as `delivery.note`.
    pub note: Option<String>,
}

/// Takes the outcome of call `i` of a reply sent as several calls (Telegram's, Viber's):
/// the first call's failure fails the reply; a later one is noted for the rep, naming the
/// part and its kind, and the reply stops there. The first call's id is the receipt's.
/// Returns whether to go on.
pub fn after_call(
    i: usize,
    outcome: Result<Option<String>, SendError>,
    (part, kind): (usize, &str),
    first_id: &mut Option<String>,
    notes: &mut Vec<String>,
) -> Result<bool, SendError> {
    match outcome {
        Ok(id) if i == 0 => *first_id = id,
        Ok(_) => {}
        Err(e) if i == 0 => return Err(e),
        Err(e) => {
            notes.push(format!(
                "Part {part} ({kind}) and any after it were not sent: {e}"
            ));
            return Ok(false);
        }
    }
    Ok(true)
}

/// The answer to a platform's GET verification (Meta's `hub.challenge`).
#[derive(Clone, Debug, PartialEq)]
pub struct HandshakeReply {
    pub content_type: &'static str,
    pub body: String,
}

/// Why a handshake was not answered.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HandshakeError {
    /// This platform verifies no GET (405).
    #[error("this channel answers no GET requests")]
    NotSupported,
    /// The verify token is wrong (403).
    #[error("verify token does not match")]
    Forbidden,
    /// The request is not a handshake this platform sends (400).
    #[error("{0}")]
    Invalid(String),
}

/// An inbound media file as fetched from its platform.
pub struct FetchedMedia {
    /// The platform's answer; its body is streamed to the rep with a size cap.
    pub response: reqwest::Response,
}

/// Why a media file could not be fetched.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FetchError {
    /// The part has nothing to fetch (no URL or platform reference).
    #[error("this part has no media to fetch")]
    NoMedia,
    /// The platform would not give the file (expired, deleted): 404 for the rep.
    #[error("the platform no longer has this file: {0}")]
    Gone(String),
    /// The platform failed or could not be reached: 502 for the rep.
    #[error("could not fetch the file from the platform: {0}")]
    Upstream(String),
    /// The URL points where media is not fetched from (a private address): 403.
    #[error("this media URL is not fetched: {0}")]
    Refused(String),
}

/// Why a webhook is not believed. Every variant answers 401.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VerifyError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a unix time in seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is more than 5 minutes from now")]
    TimestampOutOfTolerance,
    #[error("no signature matches")]
    BadSignature,
    /// The channel only sends (email): nothing may post to it.
    #[error("this channel takes no webhooks")]
    NoInbound,
}

impl VerifyError {
    /// A short stable reason for metrics and error codes.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader(_) => "missing_signature",
            VerifyError::BadTimestamp | VerifyError::TimestampOutOfTolerance => "invalid_timestamp",
            VerifyError::BadSignature => "invalid_signature",
            VerifyError::NoInbound => "no_inbound",
        }
    }
}

/// Why a verified webhook cannot be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("content type {0:?} is not accepted here; send application/json")]
    UnsupportedMediaType(String),
    #[error("body is not valid JSON: {0}")]
    Malformed(String),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

/// A payload error naming the field at fault.
pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ParseError {
    ParseError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Deserializes `value`, naming the field at fault (below `at`, e.g. `[2]`) on error;
/// an error about the whole value names `body`.
pub fn read<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
    at: &str,
) -> Result<T, ParseError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let message = e.into_inner().to_string();
        let field = crate::model::field_path(at, &inner, &message);
        invalid(
            if field.is_empty() {
                "body".into()
            } else {
                field
            },
            message,
        )
    })
}

/// A failed send, classified so the outbox knows whether to try again.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SendError {
    /// Network trouble, a timeout or a server error: try again on the schedule.
    #[error("{reason}")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The platform asked us to slow down (429); try again no sooner than it said.
    #[error("{reason}")]
    RateLimited {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The platform refused this message; sending it again would fail the same way.
    #[error("{reason}")]
    Permanent { reason: String },
}

/// An adapter: verifies and parses one platform's webhooks and sends to it.
#[async_trait]
pub trait ChannelAdapter: Send + Sync {
    /// Checks that the request really comes from the platform.
    fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError>;

    /// Turns a verified request into events. Pure: no I/O.
    fn parse(&self, request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError>;

    /// Sends one reply to the platform.
    async fn send(&self, message: &Outbound) -> Result<Receipt, SendError>;

    /// Answers a GET verification request, for platforms that send one.
    fn handshake(&self, _request: &RawRequest) -> Result<HandshakeReply, HandshakeError> {
        Err(HandshakeError::NotSupported)
    }

    /// The answer to a verified POST that is the platform checking the URL rather than
    /// telling us something (Slack's `url_verification`); `None` for an ordinary webhook.
    fn challenge(&self, _request: &RawRequest) -> Option<HandshakeReply> {
        None
    }

    /// Fetches the media of an inbound message, which the platform gave us (with the
    /// platform's credentials, which never leave the adapter). Everything goes through
    /// `web`, which applies the address policy to every hop. Never called for media a rep
    /// wrote: that is fetched as a public URL, without credentials.
    async fn fetch_media(
        &self,
        media: &crate::model::Media,
        web: &fetch::MediaClient,
    ) -> Result<FetchedMedia, FetchError>;
}

/// A verification secret replaced by a reload, still accepted until `until`.
#[derive(Clone, Debug, PartialEq)]
pub struct RetiredSecret {
    pub secret: crate::secret::Secret,
    pub until: DateTime<Utc>,
}

/// The current verification secret and every retired one still accepted at `now`.
pub fn secrets_in_force<'a>(
    current: &'a crate::secret::Secret,
    retired: &'a [RetiredSecret],
    now: DateTime<Utc>,
) -> impl Iterator<Item = &'a crate::secret::Secret> {
    std::iter::once(current).chain(
        retired
            .iter()
            .filter(move |r| r.until > now)
            .map(|r| &r.secret),
    )
}

/// The adapter part of a channel's config, tagged by `kind`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AdapterConfig {
    Email(email::EmailChannelConfig),
    Generic(generic::GenericConfig),
    Telegram(telegram::TelegramConfig),
    Viber(viber::ViberConfig),
    Whatsapp(whatsapp::WhatsAppConfig),
    Messenger(messenger::MessengerConfig),
    Line(line::LineConfig),
    Twilio(twilio::TwilioConfig),
    Slack(slack::SlackConfig),
    Instagram(instagram::InstagramConfig),
}

impl AdapterConfig {
    /// Rules serde cannot check, as (key within the channel, message) pairs.
    pub fn validate(&self) -> Vec<(String, String)> {
        match self {
            AdapterConfig::Email(c) => {
                let mut errors = c.validate();
                if let Some(imap) = &c.imap {
                    errors.extend(
                        imap.validate()
                            .into_iter()
                            .map(|(key, message)| (format!("imap.{key}"), message)),
                    );
                }
                errors
            }
            AdapterConfig::Generic(c) => c.validate(),
            AdapterConfig::Telegram(c) => c.validate(),
            AdapterConfig::Viber(c) => c.validate(),
            AdapterConfig::Whatsapp(c) => c.validate(),
            AdapterConfig::Messenger(c) => c.validate(),
            AdapterConfig::Line(c) => c.validate(),
            AdapterConfig::Twilio(c) => c.validate(),
            AdapterConfig::Slack(c) => c.validate(),
            AdapterConfig::Instagram(c) => c.validate(),
        }
    }

    /// The `kind` name as written in config.
    pub fn kind(&self) -> &'static str {
        match self {
            AdapterConfig::Email(_) => "email",
            AdapterConfig::Generic(_) => "generic",
            AdapterConfig::Telegram(_) => "telegram",
            AdapterConfig::Viber(_) => "viber",
            AdapterConfig::Whatsapp(_) => "whatsapp",
            AdapterConfig::Messenger(_) => "messenger",
            AdapterConfig::Line(_) => "line",
            AdapterConfig::Twilio(_) => "twilio",
            AdapterConfig::Slack(_) => "slack",
            AdapterConfig::Instagram(_) => "instagram",
        }
    }

    /// Every secret in this channel's settings, for redacting error text.
    pub fn secrets(&self) -> Vec<&crate::secret::Secret> {
        match self {
            AdapterConfig::Email(c) => c.secrets(),
            AdapterConfig::Generic(c) => vec![&c.secret],
            AdapterConfig::Telegram(c) => vec![&c.bot_token, &c.secret_token],
            AdapterConfig::Viber(c) => vec![&c.auth_token],
            AdapterConfig::Whatsapp(c) => vec![&c.access_token, &c.app_secret, &c.verify_token],
            AdapterConfig::Messenger(c) => {
                vec![&c.page_access_token, &c.app_secret, &c.verify_token]
            }
            AdapterConfig::Line(c) => vec![&c.channel_access_token, &c.channel_secret],
            AdapterConfig::Twilio(c) => vec![&c.auth_token],
            AdapterConfig::Slack(c) => vec![&c.bot_token, &c.signing_secret],
            AdapterConfig::Instagram(c) => vec![&c.access_token, &c.app_secret, &c.verify_token],
        }
    }

    /// The identifier types this channel's contacts are known by, the usual one first.
    pub fn identifier_types(&self) -> &'static [&'static str] {
        match self {
            AdapterConfig::Email(_) => &[email::IDENTIFIER_TYPE],
            AdapterConfig::Generic(_) => &[generic::IDENTIFIER_TYPE],
            AdapterConfig::Telegram(_) => &[telegram::IDENTIFIER_TYPE],
            AdapterConfig::Viber(_) => &[viber::IDENTIFIER_TYPE],
            AdapterConfig::Whatsapp(_) => &[whatsapp::IDENTIFIER_TYPE],
            AdapterConfig::Messenger(_) => &[messenger::IDENTIFIER_TYPE],
            AdapterConfig::Line(_) => &[
                line::IDENTIFIER_TYPE,
                line::GROUP_IDENTIFIER_TYPE,
                line::ROOM_IDENTIFIER_TYPE,
            ],
            AdapterConfig::Twilio(_) => &[twilio::IDENTIFIER_TYPE],
            AdapterConfig::Slack(_) => &[slack::IDENTIFIER_TYPE],
            AdapterConfig::Instagram(_) => &[instagram::IDENTIFIER_TYPE],
        }
    }

    /// How this kind threads when the channel does not say: a Slack conversation is a
    /// Slack thread (or a whole DM); elsewhere one conversation per contact.
    pub fn default_threading(&self) -> crate::model::Threading {
        match self {
            AdapterConfig::Slack(_) => crate::model::Threading::PlatformThread,
            _ => crate::model::Threading::PerContact,
        }
    }

    /// The secret that authenticates this channel's webhooks: what a rotation replaces.
    pub fn verification_secret(&self) -> Option<&crate::secret::Secret> {
        Some(match self {
            AdapterConfig::Email(_) => return None,
            AdapterConfig::Generic(c) => &c.secret,
            AdapterConfig::Telegram(c) => &c.secret_token,
            AdapterConfig::Viber(c) => &c.auth_token,
            AdapterConfig::Whatsapp(c) => &c.app_secret,
            AdapterConfig::Messenger(c) => &c.app_secret,
            AdapterConfig::Line(c) => &c.channel_secret,
            AdapterConfig::Twilio(c) => &c.auth_token,
            AdapterConfig::Slack(c) => &c.signing_secret,
            AdapterConfig::Instagram(c) => &c.app_secret,
        })
    }

    /// Builds the adapter; `http` is the shared client (pool, timeouts) for sends,
    /// `retired` are earlier verification secrets still accepted for a while, and `media`
    /// is the channel's media client (for adapters that fetch a reply's files to upload
    /// them).
    pub fn build(
        &self,
        http: reqwest::Client,
        retired: &[RetiredSecret],
        smtp: Option<(&email::SmtpConfig, u64)>,
        media: &fetch::MediaClient,
    ) -> Arc<dyn ChannelAdapter> {
        match self {
            AdapterConfig::Email(c) => Arc::new(email::EmailChannel::new(c, smtp)),
            AdapterConfig::Generic(c) => Arc::new(generic::GenericAdapter::new(c, http, retired)),
            AdapterConfig::Telegram(c) => {
                Arc::new(telegram::TelegramAdapter::new(c, http, retired))
            }
            AdapterConfig::Viber(c) => Arc::new(viber::ViberAdapter::new(c, http, retired)),
            AdapterConfig::Whatsapp(c) => {
                Arc::new(whatsapp::WhatsAppAdapter::new(c, http, retired))
            }
            AdapterConfig::Messenger(c) => {
                Arc::new(messenger::MessengerAdapter::new(c, http, retired))
            }
            AdapterConfig::Line(c) => Arc::new(line::LineAdapter::new(c, http, retired)),
            AdapterConfig::Twilio(c) => Arc::new(twilio::TwilioAdapter::new(c, http, retired)),
            AdapterConfig::Instagram(c) => {
                Arc::new(instagram::InstagramAdapter::new(c, http, retired))
            }
            AdapterConfig::Slack(c) => {
                Arc::new(slack::SlackAdapter::new(c, http, retired, media.clone()))
            }
        }
    }
}

/// Classifies an HTTP answer that was not a success: 408, 425, 429 and 5xx are worth
/// another try, any other 4xx is the platform refusing the message.
pub fn classify_status(status: StatusCode, headers: &HeaderMap, body: &str) -> SendError {
    let snippet: String = body.chars().take(200).collect();
    let reason = if status.is_redirection() {
        format!("HTTP {status}: redirects are not followed; configure the final URL")
    } else if snippet.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {snippet}")
    };
    let retry_after = retry_after(headers, Utc::now());
    match status.as_u16() {
        429 => SendError::RateLimited {
            reason,
            retry_after,
        },
        408 | 425 | 500..=599 => SendError::Retryable {
            reason,
            retry_after,
        },
        _ => SendError::Permanent { reason },
    }
}

/// Classifies a request that got no HTTP answer. The URL is left out of the reason: some
/// platforms put credentials in it.
pub fn classify_transport(error: reqwest::Error) -> SendError {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let error = error.without_url();
    // The useful part (connection refused, DNS failure) is at the bottom of the chain.
    let mut reason = kind.to_owned();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    SendError::Retryable {
        reason,
        retry_after: None,
    }
}

/// Reads `Retry-After` as seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    let delta = at.with_timezone(&Utc) - now;
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(retry: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_str(retry).unwrap());
        h
    }

    #[test]
    fn server_errors_and_timeouts_retry_client_errors_do_not() {
        let none = HeaderMap::new();
        for code in [408u16, 425, 500, 502, 503, 504] {
            let e = classify_status(StatusCode::from_u16(code).unwrap(), &none, "");
            assert!(matches!(e, SendError::Retryable { .. }), "{code}");
        }
        for code in [400u16, 401, 403, 404, 410, 422] {
            let e = classify_status(StatusCode::from_u16(code).unwrap(), &none, "");
            assert!(matches!(e, SendError::Permanent { .. }), "{code}");
        }
        let e = classify_status(StatusCode::TOO_MANY_REQUESTS, &headers("7"), "slow down");
        assert_eq!(
            e,
            SendError::RateLimited {
                reason: "HTTP 429 Too Many Requests: slow down".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            retry_after(&headers("120"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:29:30 GMT"), now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(retry_after(&headers("soon"), now), None);
    }
}
