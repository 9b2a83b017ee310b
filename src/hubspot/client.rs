//! `HubspotClient`: every call the bridge makes to HubSpot goes through here, so that the
//! rules HubSpot sets hold for all of them:
//! - bearer auth from the static token, or from OAuth (the refresh token is exchanged at
//!   `POST {api_base}/oauth/v1/token` before the access token expires, and once more when
//!   HubSpot answers 401, after which the request is sent again once);
//! - the client-side limiter: at most `rate_limit_requests` requests leave in any
//!   `rate_limit_window_ms` (counted when a request is sent; the rest wait), so a burst
//!   queues here instead of failing at HubSpot;
//! - `429` pauses the limiter for `Retry-After` (or the `X-HubSpot-RateLimit-*` window when
//!   nothing is left of it) and comes back as [`HubspotError::Retry`];
//! - other 4xx are [`HubspotError::Refused`] with HubSpot's own error message.
//!
//! It knows HubSpot's HTTP API and nothing of our store or desk.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::wire;
use crate::adapters::SendError;
use crate::config::{HubspotAuth, HubspotConfig, Secret};

/// An OAuth access token is refreshed when it has less than this left.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// The shortest pause after a 429 that said nothing about when to come back.
const RATE_LIMIT_FLOOR: Duration = Duration::from_secs(1);

/// Why a HubSpot call failed, classified for the outbox.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HubspotError {
    /// Worth another try later: a 429 (`rate_limited`), a 5xx, a timeout.
    #[error("{reason}")]
    Retry {
        after: Option<Duration>,
        reason: String,
        rate_limited: bool,
    },
    /// HubSpot refused the request; sending it again would fail the same way. `message`
    /// is HubSpot's own explanation.
    #[error("HubSpot refused the request (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    /// No HTTP answer at all.
    #[error("could not reach HubSpot: {0}")]
    Transport(String),
    /// The config lacks what this call needs (`channel_id`, `developer_api_key`).
    #[error("{0}")]
    NotConfigured(String),
}

impl HubspotError {
    /// The outbox's view: retry on the schedule, respect a rate limit, or dead-letter.
    pub fn into_send_error(self) -> SendError {
        match self {
            HubspotError::Retry {
                after,
                reason,
                rate_limited: true,
            } => SendError::RateLimited {
                reason,
                retry_after: after,
            },
            HubspotError::Retry { after, reason, .. } => SendError::Retryable {
                reason,
                retry_after: after,
            },
            HubspotError::Transport(reason) => SendError::Retryable {
                reason: format!("could not reach HubSpot: {reason}"),
                retry_after: None,
            },
            e @ (HubspotError::Refused { .. } | HubspotError::NotConfigured(_)) => {
                SendError::Permanent {
                    reason: e.to_string(),
                }
            }
        }
    }
}

/// At most `max` requests in any `window`. HubSpot counts a request when it arrives, which
/// is some time after we send it and before its answer comes back; so a request holds its
/// place in the window from when it is sent until its answer is read, and only then starts
/// to age. A request sent a full window after that cannot arrive within the window of the
/// earlier one, whatever the network did to either (counting from the send alone let a
/// slow first request and a fast 111th land within 10 s at HubSpot).
pub struct Limiter {
    max: usize,
    window: Duration,
    state: Mutex<LimiterState>,
}

#[derive(Default)]
struct LimiterState {
    /// The requests of the current window: (ticket, when answered; `None` while in flight).
    sent: VecDeque<(u64, Option<Instant>)>,
    next_ticket: u64,
    /// HubSpot said stop (a 429): nothing leaves before this.
    paused_until: Option<Instant>,
}

/// A request's place in the limiter's window; dropping it (when the answer was read, or
/// the request failed) starts its place's ageing.
pub struct Permit<'a> {
    limiter: &'a Limiter,
    ticket: Option<u64>,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket else { return };
        let mut state = self.limiter.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = state.sent.iter_mut().find(|(t, _)| *t == ticket) {
            slot.1 = Some(Instant::now());
        }
    }
}

/// How often a full window is looked at again while all its requests are still in flight.
const IN_FLIGHT_POLL: Duration = Duration::from_millis(5);

impl Limiter {
    /// `max == 0` turns the limiter off.
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max: max as usize,
            window,
            state: Mutex::new(LimiterState::default()),
        }
    }

    /// Waits until one more request may leave now, and holds its place until the
    /// returned permit is dropped (after the answer is read).
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let wait = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                match state.paused_until {
                    Some(until) if until > now => until - now,
                    _ => {
                        state.paused_until = None;
                        if self.max == 0 {
                            return Permit {
                                limiter: self,
                                ticket: None,
                            };
                        }
                        let window = self.window;
                        state
                            .sent
                            .retain(|(_, answered)| answered.is_none_or(|t| now - t < window));
                        if state.sent.len() < self.max {
                            let ticket = state.next_ticket;
                            state.next_ticket += 1;
                            state.sent.push_back((ticket, None));
                            return Permit {
                                limiter: self,
                                ticket: Some(ticket),
                            };
                        }
                        // The first answered request to leave the window frees a place.
                        state
                            .sent
                            .iter()
                            .filter_map(|(_, answered)| *answered)
                            .min()
                            .map_or(IN_FLIGHT_POLL, |oldest| {
                                (oldest + window).saturating_duration_since(now)
                            })
                    }
                }
            };
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// Holds every request back for `pause` (HubSpot answered 429).
    pub fn pause(&self, pause: Duration) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let until = Instant::now() + pause;
        if state.paused_until.is_none_or(|p| p < until) {
            state.paused_until = Some(until);
        }
    }
}

struct Token {
    value: Secret,
    expires_at: Instant,
}

/// Which credential a call takes.
#[derive(Clone, Copy)]
enum Auth {
    /// The portal's bearer token (channel accounts, messages, files).
    Bearer,
    /// The developer API key (channel definitions), as `hapikey` + `appId` query.
    DeveloperKey,
}

/// A request body, cheap to send again (after a 401 refresh).
#[derive(Clone)]
enum Body {
    None,
    Json(Bytes),
    Multipart { boundary: String, bytes: Bytes },
}

pub struct HubspotClient {
    http: reqwest::Client,
    config: HubspotConfig,
    token: tokio::sync::Mutex<Option<Token>>,
    limiter: Limiter,
}

impl HubspotClient {
    pub fn new(config: &HubspotConfig, http: reqwest::Client) -> Self {
        Self {
            http,
            config: config.clone(),
            token: tokio::sync::Mutex::new(None),
            limiter: Limiter::new(
                config.rate_limit_requests,
                Duration::from_millis(config.rate_limit_window_ms),
            ),
        }
    }

    /// The config this client was built from (a reload keeps the client while it is equal).
    pub fn config(&self) -> &HubspotConfig {
        &self.config
    }

    /// Every secret the client holds, for redacting error text.
    pub fn secrets(&self) -> Vec<&Secret> {
        let mut secrets = vec![&self.config.client_secret];
        match &self.config.auth {
            HubspotAuth::Static(token) => secrets.push(token),
            HubspotAuth::OAuth { refresh_token, .. } => secrets.push(refresh_token),
        }
        if let Some(key) = &self.config.developer_api_key {
            secrets.push(key);
        }
        secrets
    }

    fn channel_id(&self) -> Result<&str, HubspotError> {
        self.config.channel_id.as_deref().ok_or_else(|| {
            HubspotError::NotConfigured(
                "hubspot.channel_id is not set; run `channel-bridge hubspot register`".into(),
            )
        })
    }

    /// `{api_base}` + the path segments (each percent-encoded as needed).
    fn url(&self, segments: &[&str]) -> Result<Url, HubspotError> {
        let mut url = Url::parse(&self.config.api_base)
            .map_err(|e| HubspotError::NotConfigured(format!("hubspot.api_base: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| HubspotError::NotConfigured("hubspot.api_base cannot be a base".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    fn messages_url(&self, extra: &[&str]) -> Result<Url, HubspotError> {
        let channel = self.channel_id()?;
        let mut segments = vec![
            "conversations",
            "v3",
            "custom-channels",
            channel,
            "messages",
        ];
        segments.extend_from_slice(extra);
        self.url(&segments)
    }

    /// Publishes a message (`POST …/custom-channels/{channelId}/messages`).
    pub async fn publish_message(
        &self,
        egg: &wire::MessageEgg,
    ) -> Result<wire::PublishedMessage, HubspotError> {
        let url = self.messages_url(&[])?;
        self.call_json(Method::POST, url, Auth::Bearer, json_body(egg)?)
            .await
    }

    /// Reports a delivery status on one of HubSpot's messages (SENT, READ, FAILED).
    pub async fn update_message_status(
        &self,
        message_id: &str,
        status: &wire::MessageStatus,
    ) -> Result<(), HubspotError> {
        let url = self.messages_url(&[message_id])?;
        self.call(Method::PATCH, url, Auth::Bearer, json_body(status)?)
            .await
            .map(drop)
    }

    /// Uploads a file into the File Manager, private (`POST /files/v3/files`).
    pub async fn upload_file(
        &self,
        file_name: &str,
        mime_type: &str,
        bytes: Bytes,
    ) -> Result<wire::File, HubspotError> {
        let url = self.url(&["files", "v3", "files"])?;
        let body = super::files::upload_body(file_name, mime_type, bytes).into();
        self.call_json(Method::POST, url, Auth::Bearer, body).await
    }

    /// A link to a private File Manager file that works for `expiration_s` seconds
    /// (`GET /files/v3/files/{fileId}/signed-url`): what a platform fetches a rep's
    /// attachment from, asked for again at each delivery attempt.
    pub async fn signed_url(
        &self,
        file_id: &str,
        expiration_s: u64,
    ) -> Result<wire::SignedUrl, HubspotError> {
        let mut url = self.url(&["files", "v3", "files", file_id, "signed-url"])?;
        url.query_pairs_mut()
            .append_pair("expirationSeconds", &expiration_s.to_string());
        self.call_json(Method::GET, url, Auth::Bearer, Body::None)
            .await
    }

    /// The app's custom channels, every page (developer API key).
    pub async fn list_channels(&self) -> Result<Vec<wire::Channel>, HubspotError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = self.url(&["conversations", "v3", "custom-channels"])?;
            url.query_pairs_mut().append_pair("limit", "100");
            if let Some(after) = &after {
                url.query_pairs_mut().append_pair("after", after);
            }
            let page: wire::Collection<wire::Channel> = self
                .call_json(Method::GET, url, Auth::DeveloperKey, Body::None)
                .await?;
            all.extend(page.results);
            match page.paging.and_then(|p| p.next) {
                Some(next) if Some(&next.after) != after.as_ref() => after = Some(next.after),
                _ => return Ok(all),
            }
        }
    }

    /// Registers a custom channel (developer API key).
    pub async fn create_channel(
        &self,
        definition: &wire::ChannelDefinition,
    ) -> Result<wire::Channel, HubspotError> {
        let url = self.url(&["conversations", "v3", "custom-channels"])?;
        self.call_json(
            Method::POST,
            url,
            Auth::DeveloperKey,
            json_body(definition)?,
        )
        .await
    }

    /// Updates a custom channel's definition (developer API key).
    pub async fn update_channel(
        &self,
        channel_id: &str,
        definition: &wire::ChannelDefinition,
    ) -> Result<wire::Channel, HubspotError> {
        let url = self.url(&["conversations", "v3", "custom-channels", channel_id])?;
        self.call_json(
            Method::PATCH,
            url,
            Auth::DeveloperKey,
            json_body(definition)?,
        )
        .await
    }

    /// The channel's accounts, every page.
    pub async fn list_channel_accounts(&self) -> Result<Vec<wire::ChannelAccount>, HubspotError> {
        let channel = self.channel_id()?.to_owned();
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = self.url(&[
                "conversations",
                "v3",
                "custom-channels",
                &channel,
                "channel-accounts",
            ])?;
            url.query_pairs_mut().append_pair("limit", "100");
            if let Some(after) = &after {
                url.query_pairs_mut().append_pair("after", after);
            }
            let page: wire::Collection<wire::ChannelAccount> = self
                .call_json(Method::GET, url, Auth::Bearer, Body::None)
                .await?;
            all.extend(page.results);
            match page.paging.and_then(|p| p.next) {
                Some(next) if Some(&next.after) != after.as_ref() => after = Some(next.after),
                _ => return Ok(all),
            }
        }
    }

    /// Creates a channel account on the channel.
    pub async fn create_channel_account(
        &self,
        egg: &wire::ChannelAccountEgg,
    ) -> Result<wire::ChannelAccount, HubspotError> {
        let channel = self.channel_id()?.to_owned();
        let url = self.url(&[
            "conversations",
            "v3",
            "custom-channels",
            &channel,
            "channel-accounts",
        ])?;
        self.call_json(Method::POST, url, Auth::Bearer, json_body(egg)?)
            .await
    }

    /// One channel account.
    pub async fn channel_account(&self, id: &str) -> Result<wire::ChannelAccount, HubspotError> {
        let channel = self.channel_id()?.to_owned();
        let url = self.url(&[
            "conversations",
            "v3",
            "custom-channels",
            &channel,
            "channel-accounts",
            id,
        ])?;
        self.call_json(Method::GET, url, Auth::Bearer, Body::None)
            .await
    }

    async fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        auth: Auth,
        body: Body,
    ) -> Result<T, HubspotError> {
        let bytes = self.call(method, url, auth, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| HubspotError::Retry {
            after: None,
            reason: format!("HubSpot answered a body we cannot read: {e}"),
            rate_limited: false,
        })
    }

    /// Sends one request under the limiter, with auth; a 401 on OAuth refreshes the token
    /// and sends it once more.
    async fn call(
        &self,
        method: Method,
        url: Url,
        auth: Auth,
        body: Body,
    ) -> Result<Bytes, HubspotError> {
        let mut refreshed = false;
        loop {
            let mut url = url.clone();
            let mut request = match auth {
                Auth::Bearer => {
                    let token = self.bearer(false).await?;
                    self.http
                        .request(method.clone(), url)
                        .bearer_auth(token.expose())
                }
                Auth::DeveloperKey => {
                    let key = self.config.developer_api_key.as_ref().ok_or_else(|| {
                        HubspotError::NotConfigured(
                            "hubspot.developer_api_key is required to register the channel".into(),
                        )
                    })?;
                    url.query_pairs_mut()
                        .append_pair("hapikey", key.expose())
                        .append_pair("appId", &self.config.app_id);
                    self.http.request(method.clone(), url)
                }
            };
            request = match &body {
                Body::None => request,
                Body::Json(bytes) => request
                    .header("content-type", "application/json")
                    .body(bytes.clone()),
                Body::Multipart { boundary, bytes } => request
                    .header(
                        "content-type",
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .body(bytes.clone()),
            };
            let permit = self.limiter.acquire().await;
            let response = request
                .send()
                .await
                .map_err(|e| HubspotError::Transport(transport_reason(e)))?;
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| HubspotError::Transport(transport_reason(e)))?;
            // HubSpot has counted it by now: its place in the window starts ageing.
            drop(permit);
            if status == StatusCode::UNAUTHORIZED
                && matches!(auth, Auth::Bearer)
                && matches!(self.config.auth, HubspotAuth::OAuth { .. })
                && !refreshed
            {
                refreshed = true;
                self.bearer(true).await?;
                continue;
            }
            return self.classify(status, &headers, bytes);
        }
    }

    fn classify(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        bytes: Bytes,
    ) -> Result<Bytes, HubspotError> {
        if status.is_success() {
            return Ok(bytes);
        }
        let message = error_message(&bytes);
        match status.as_u16() {
            429 => {
                let after = rate_limit_wait(headers);
                self.limiter.pause(after.unwrap_or(RATE_LIMIT_FLOOR));
                Err(HubspotError::Retry {
                    after,
                    reason: format!("HubSpot rate limit (HTTP 429): {message}"),
                    rate_limited: true,
                })
            }
            408 | 425 | 500..=599 => Err(HubspotError::Retry {
                after: crate::adapters::retry_after(headers, chrono::Utc::now()),
                reason: format!("HubSpot HTTP {}: {message}", status.as_u16()),
                rate_limited: false,
            }),
            code => Err(HubspotError::Refused {
                status: code,
                message,
            }),
        }
    }

    /// The bearer token: the static one, or a fresh OAuth access token (refreshed when
    /// `force`, or when close to expiry).
    async fn bearer(&self, force: bool) -> Result<Secret, HubspotError> {
        let (client_id, refresh_token) = match &self.config.auth {
            HubspotAuth::Static(token) => return Ok(token.clone()),
            HubspotAuth::OAuth {
                client_id,
                refresh_token,
            } => (client_id, refresh_token),
        };
        let mut token = self.token.lock().await;
        if !force
            && let Some(t) = token.as_ref()
            && t.expires_at > Instant::now() + REFRESH_MARGIN
        {
            return Ok(t.value.clone());
        }
        let url = self.url(&["oauth", "v1", "token"])?;
        let response = self
            .http
            .post(url)
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", client_id.as_str()),
                ("client_secret", self.config.client_secret.expose()),
                ("refresh_token", refresh_token.expose()),
            ])
            .send()
            .await
            .map_err(|e| HubspotError::Transport(transport_reason(e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| HubspotError::Transport(transport_reason(e)))?;
        if !status.is_success() {
            return Err(match self.classify(status, &headers, bytes) {
                Err(HubspotError::Refused { status, message }) => HubspotError::Refused {
                    status,
                    message: format!("the OAuth refresh token was refused: {message}"),
                },
                Err(e) => e,
                Ok(_) => unreachable!("a non-success status is an error"),
            });
        }
        let answer: wire::TokenResponse =
            serde_json::from_slice(&bytes).map_err(|e| HubspotError::Retry {
                after: None,
                reason: format!("HubSpot's token answer cannot be read: {e}"),
                rate_limited: false,
            })?;
        let value = Secret::new(answer.access_token);
        *token = Some(Token {
            value: value.clone(),
            expires_at: Instant::now() + Duration::from_secs(answer.expires_in),
        });
        Ok(value)
    }
}

fn json_body<T: Serialize>(value: &T) -> Result<Body, HubspotError> {
    serde_json::to_vec(value)
        .map(|v| Body::Json(Bytes::from(v)))
        .map_err(|e| HubspotError::NotConfigured(format!("cannot encode the request: {e}")))
}

impl From<super::files::Multipart> for Body {
    fn from(m: super::files::Multipart) -> Self {
        Body::Multipart {
            boundary: m.boundary,
            bytes: m.bytes,
        }
    }
}

/// HubSpot's `message` from an error body, or the start of the body as it is.
fn error_message(bytes: &[u8]) -> String {
    match serde_json::from_slice::<wire::ErrorBody>(bytes) {
        Ok(wire::ErrorBody {
            message: Some(message),
            ..
        }) => message,
        _ => {
            let text = String::from_utf8_lossy(bytes);
            let snippet: String = text.chars().take(200).collect();
            if snippet.is_empty() {
                "no details given".into()
            } else {
                snippet
            }
        }
    }
}

/// How long a 429 asks us to wait: `Retry-After`, else the rest of the rate-limit window
/// when the headers say nothing is left of it.
fn rate_limit_wait(headers: &HeaderMap) -> Option<Duration> {
    if let Some(after) = crate::adapters::retry_after(headers, chrono::Utc::now()) {
        return Some(after);
    }
    let number =
        |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    let remaining = number("x-hubspot-ratelimit-remaining");
    let interval = number("x-hubspot-ratelimit-interval-milliseconds");
    match (remaining, interval) {
        (Some(0), Some(ms)) | (None, Some(ms)) => Some(Duration::from_millis(ms)),
        _ => None,
    }
}

/// A transport error without its URL (which may carry the developer key).
fn transport_reason(error: reqwest::Error) -> String {
    match crate::adapters::classify_transport(error) {
        SendError::Retryable { reason, .. }
        | SendError::RateLimited { reason, .. }
        | SendError::Permanent { reason } => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_limiter_lets_max_through_per_window_and_queues_the_rest() {
        let limiter = Limiter::new(3, Duration::from_millis(300));
        let start = Instant::now();
        for _ in 0..3 {
            drop(limiter.acquire().await);
        }
        assert!(start.elapsed() < Duration::from_millis(150));
        drop(limiter.acquire().await);
        assert!(start.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn a_place_in_the_window_ages_only_from_when_its_answer_came() {
        let limiter = Limiter::new(1, Duration::from_millis(200));
        let start = Instant::now();
        let slow = limiter.acquire().await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        // Answered at 150 ms: HubSpot may have counted it just then.
        drop(slow);
        drop(limiter.acquire().await);
        assert!(
            start.elapsed() >= Duration::from_millis(350),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn a_pause_holds_every_request_back_even_with_the_limiter_off() {
        let limiter = Limiter::new(0, Duration::from_secs(10));
        limiter.pause(Duration::from_millis(200));
        let start = Instant::now();
        drop(limiter.acquire().await);
        assert!(start.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn a_429_waits_for_retry_after_or_the_rest_of_the_window() {
        let mut headers = HeaderMap::new();
        headers.insert("x-hubspot-ratelimit-remaining", "0".parse().unwrap());
        headers.insert(
            "x-hubspot-ratelimit-interval-milliseconds",
            "10000".parse().unwrap(),
        );
        assert_eq!(rate_limit_wait(&headers), Some(Duration::from_secs(10)));
        headers.insert("retry-after", "3".parse().unwrap());
        assert_eq!(rate_limit_wait(&headers), Some(Duration::from_secs(3)));
    }

    #[test]
    fn hubspots_error_message_is_what_a_refusal_says() {
        let body = br#"{"status":"error","message":"Channel account 9 is not authorized","correlationId":"x","category":"VALIDATION_ERROR"}"#;
        assert_eq!(error_message(body), "Channel account 9 is not authorized");
        assert_eq!(error_message(b""), "no details given");
    }
}
