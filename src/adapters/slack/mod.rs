//! Slack Events API: signed JSON events in, `chat.postMessage` and the external file
//! upload flow out.
//!
//! Slack signs every request with `v0=hex(HMAC-SHA256(signing secret, "v0:{ts}:{body}"))`
//! in `X-Slack-Signature`, over `X-Slack-Request-Timestamp`. A message is known by its
//! channel and `ts` (unique within a channel only), so our platform message id is
//! `{channel}:{ts}`. A conversation is a Slack thread: `{channel}/{thread_ts}` for a
//! message in a thread or one that starts a thread in a channel, and the whole DM
//! (`{channel}`) for a direct message outside threads. Slack posts no delivery or read
//! receipts, and new apps may read thread history only at 1 request a minute, so
//! everything is captured live from the events (docs/platforms/slack.md).
//!
//! `wire` holds the Events API envelope, `inbound` turns events into ours, `outbound` plans
//! a reply's posts and uploads and reads Slack's answers; this file is the adapter that
//! joins them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::fetch::{Credentials, MediaClient, same_origin_as_any};
use super::signature::{TOLERANCE_SECS, hmac_sha256_matches_any};
use super::{
    ChannelAdapter, FetchError, FetchedMedia, HandshakeReply, InboundEvent, Outbound, ParseError,
    RawRequest, Receipt, RetiredSecret, SendError, VerifyError, classify_status,
    classify_transport, secrets_in_force,
};
use crate::model::{Media, MediaPart};
use crate::secret::Secret;

mod inbound;
mod outbound;
mod wire;

pub use inbound::parse_events;
use outbound::{Step, Target, file_name, plan, read_answer};
use wire::Envelope;

/// The identifier type of a Slack contact: the member id (`U…`/`W…`) Slack gives them.
pub const IDENTIFIER_TYPE: &str = "slack_user";

/// Slack's Web API base URL.
pub const DEFAULT_API_BASE: &str = "https://slack.com/api";

/// Where Slack serves `url_private` files (the bot token goes there and nowhere else).
pub const DEFAULT_FILES_BASE: &str = "https://files.slack.com";

/// The largest reply attachment we fetch and upload to Slack.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 50 * 1024 * 1024;

const SIGNATURE_HEADER: &str = "x-slack-signature";
const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";

/// Slack cuts `chat.postMessage` text at 40,000 characters; longer text is split.
pub const MAX_TEXT: usize = 40_000;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The bot token (`xoxb-…`): sends, uploads and fetches `url_private` files.
    pub bot_token: Secret,
    /// The app's signing secret: verifies every event Slack posts.
    pub signing_secret: Secret,
    /// The Web API base URL (tests point it at a mock).
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// The origin of `url_private` file links, the only place the bot token is sent to
    /// fetch a file.
    #[serde(default = "default_files_base")]
    pub files_base: String,
    /// The largest reply attachment fetched and uploaded to Slack.
    #[serde(default = "default_max_upload_bytes")]
    pub max_upload_bytes: u64,
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.to_owned()
}

fn default_files_base() -> String {
    DEFAULT_FILES_BASE.to_owned()
}

fn default_max_upload_bytes() -> u64 {
    DEFAULT_MAX_UPLOAD_BYTES
}

impl SlackConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        for (key, url) in [
            ("api_base", &self.api_base),
            ("files_base", &self.files_base),
        ] {
            if !crate::model::is_http_url(url) {
                errors.push((key.into(), "must be an http(s) URL".into()));
            }
        }
        if self.max_upload_bytes == 0 {
            errors.push(("max_upload_bytes".into(), "must be at least 1".into()));
        }
        errors
    }
}

pub struct SlackAdapter {
    bot_token: Secret,
    signing_secret: Secret,
    /// Signing secrets replaced by a reload, still accepted until their time.
    retired: Vec<RetiredSecret>,
    api_base: String,
    files_base: String,
    max_upload_bytes: u64,
    http: reqwest::Client,
    /// Fetches reply attachments to upload them, under the channel's address policy.
    media: MediaClient,
}

impl SlackAdapter {
    pub fn new(
        config: &SlackConfig,
        http: reqwest::Client,
        retired: &[RetiredSecret],
        media: MediaClient,
    ) -> Self {
        Self {
            bot_token: config.bot_token.clone(),
            signing_secret: config.signing_secret.clone(),
            retired: retired.to_vec(),
            api_base: config.api_base.trim_end_matches('/').to_owned(),
            files_base: config.files_base.trim_end_matches('/').to_owned(),
            max_upload_bytes: config.max_upload_bytes,
            http,
            media,
        }
    }

    /// Calls a Web API method with a JSON body; Slack answers HTTP 200 with `ok: false`
    /// when it refuses, so both layers are read.
    async fn call(&self, method: &str, body: &Value) -> Result<Value, SendError> {
        let response = self
            .http
            .post(format!("{}/{method}", self.api_base))
            .bearer_auth(self.bot_token.expose())
            .json(body)
            .send()
            .await
            .map_err(classify_transport)?;
        self.answer(method, response).await
    }

    /// Calls a Web API method that takes form fields (`files.getUploadURLExternal`).
    async fn call_form(&self, method: &str, form: &[(&str, String)]) -> Result<Value, SendError> {
        let response = self
            .http
            .post(format!("{}/{method}", self.api_base))
            .bearer_auth(self.bot_token.expose())
            .form(form)
            .send()
            .await
            .map_err(classify_transport)?;
        self.answer(method, response).await
    }

    async fn answer(&self, method: &str, response: reqwest::Response) -> Result<Value, SendError> {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        read_answer(method, status, &headers, &text)
    }

    /// Posts text into the target; returns the message's `{channel}:{ts}`.
    async fn post_text(&self, target: &Target, text: &str) -> Result<Option<String>, SendError> {
        let mut body = json!({"channel": target.channel, "text": text});
        if let Some(ts) = &target.thread_ts {
            body["thread_ts"] = ts.clone().into();
        }
        let answer = self.call("chat.postMessage", &body).await?;
        let channel = answer
            .get("channel")
            .and_then(Value::as_str)
            .unwrap_or(&target.channel);
        Ok(answer
            .get("ts")
            .and_then(Value::as_str)
            .map(|ts| format!("{channel}:{ts}")))
    }

    /// Sends a file the rep linked through Slack's upload flow: fetch it (public
    /// addresses only unless the channel allows private ones, size-capped), ask for an
    /// upload URL, send the bytes there, then share it into the target.
    async fn upload(&self, target: &Target, part: &MediaPart) -> Result<(), SendError> {
        let url = part
            .media
            .url
            .as_deref()
            .ok_or_else(|| SendError::Permanent {
                reason: "an attachment has no URL to fetch it from".into(),
            })?;
        let bytes = self.fetch_attachment(url).await?;
        let filename = file_name(&part.media, url);
        let grant = self
            .call_form(
                "files.getUploadURLExternal",
                &[
                    ("filename", filename.clone()),
                    ("length", bytes.len().to_string()),
                ],
            )
            .await?;
        let (Some(upload_url), Some(file_id)) = (
            grant.get("upload_url").and_then(Value::as_str),
            grant.get("file_id").and_then(Value::as_str),
        ) else {
            return Err(SendError::Retryable {
                reason: "Slack gave no upload_url or file_id".into(),
                retry_after: None,
            });
        };
        let response = self
            .http
            .post(upload_url)
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .map_err(classify_transport)?;
        if !response.status().is_success() {
            let status = response.status();
            let headers = response.headers().clone();
            let text = response.text().await.unwrap_or_default();
            return Err(classify_status(status, &headers, &text));
        }
        let mut body = json!({
            "files": [{"id": file_id, "title": filename}],
            "channel_id": target.channel,
        });
        if let Some(ts) = &target.thread_ts {
            body["thread_ts"] = ts.clone().into();
        }
        if let Some(caption) = part.caption.as_deref().filter(|c| !c.trim().is_empty()) {
            body["initial_comment"] = caption.into();
        }
        self.call("files.completeUploadExternal", &body).await?;
        Ok(())
    }

    async fn fetch_attachment(&self, url: &str) -> Result<Vec<u8>, SendError> {
        let fetched = self.media.fetch(url, &[]).await.map_err(|e| match e {
            FetchError::Upstream(reason) => SendError::Retryable {
                reason: format!("could not fetch the attachment: {reason}"),
                retry_after: None,
            },
            other => SendError::Permanent {
                reason: format!("could not fetch the attachment: {other}"),
            },
        })?;
        let mut response = fetched.response;
        let too_big = || SendError::Permanent {
            reason: format!(
                "the attachment is larger than this channel's max_upload_bytes ({})",
                self.max_upload_bytes
            ),
        };
        if response
            .content_length()
            .is_some_and(|n| n > self.max_upload_bytes)
        {
            return Err(too_big());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify_transport)? {
            if (bytes.len() + chunk.len()) as u64 > self.max_upload_bytes {
                return Err(too_big());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

#[async_trait]
impl ChannelAdapter for SlackAdapter {
    fn verify(&self, request: &RawRequest, now: DateTime<Utc>) -> Result<(), VerifyError> {
        let timestamp = request
            .header(TIMESTAMP_HEADER)
            .ok_or(VerifyError::MissingHeader("X-Slack-Request-Timestamp"))?;
        let presented = request
            .header(SIGNATURE_HEADER)
            .ok_or(VerifyError::MissingHeader("X-Slack-Signature"))?;
        let seconds: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| VerifyError::BadTimestamp)?;
        // abs_diff: a timestamp near i64::MIN or MAX must be refused, not overflow.
        if now.timestamp().abs_diff(seconds) > TOLERANCE_SECS.unsigned_abs() {
            return Err(VerifyError::TimestampOutOfTolerance);
        }
        let signature = presented
            .trim()
            .strip_prefix("v0=")
            .and_then(|hex_sig| hex::decode(hex_sig).ok())
            .ok_or(VerifyError::BadSignature)?;
        let mut base = format!("v0:{}:", timestamp.trim()).into_bytes();
        base.extend_from_slice(&request.body);
        let keys = secrets_in_force(&self.signing_secret, &self.retired, now);
        if hmac_sha256_matches_any(keys, &base, &signature) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    fn parse(&self, request: &RawRequest) -> Result<Vec<InboundEvent>, ParseError> {
        parse_events(request.json_body()?)
    }

    /// Slack checks a new Request URL with a signed `url_verification` POST whose
    /// `challenge` must come back.
    fn challenge(&self, request: &RawRequest) -> Option<HandshakeReply> {
        let envelope: Envelope = serde_json::from_slice(&request.body).ok()?;
        if envelope.kind != "url_verification" {
            return None;
        }
        Some(HandshakeReply {
            content_type: "application/json",
            body: json!({"challenge": envelope.challenge.unwrap_or_default()}).to_string(),
        })
    }

    /// Steps in order into the conversation's thread. Once something has gone out, a
    /// later failure is reported in the note instead of failing the send: a retry would
    /// post the earlier steps a second time.
    async fn send(&self, message: &Outbound) -> Result<Receipt, SendError> {
        let target = Target::of(message)?;
        let steps = plan(&message.parts);
        if steps.is_empty() {
            return Err(SendError::Permanent {
                reason: "nothing to send on Slack".into(),
            });
        }
        let mut first_id = None;
        let mut notes = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let result = match step {
                Step::Text(text) => self.post_text(&target, text).await,
                Step::Upload(part) => self.upload(&target, part).await.map(|()| None),
            };
            match result {
                Ok(id) => {
                    if first_id.is_none() {
                        first_id = id;
                    }
                }
                Err(e) if i == 0 => return Err(e),
                Err(e) => {
                    notes.push(format!(
                        "Step {} of {} and any after it were not sent: {e}",
                        i + 1,
                        steps.len()
                    ));
                    break;
                }
            }
        }
        Ok(Receipt {
            platform_message_id: first_id,
            note: (!notes.is_empty()).then(|| notes.join(" ")),
        })
    }

    /// `url_private` files need the bot token; it is sent to the files origin only.
    async fn fetch_media(
        &self,
        media: &Media,
        web: &MediaClient,
    ) -> Result<FetchedMedia, FetchError> {
        let url = media.url.as_deref().ok_or(FetchError::NoMedia)?;
        let ours = reqwest::Url::parse(url)
            .ok()
            .is_some_and(|u| same_origin_as_any(&u, &[&self.files_base]));
        if ours {
            web.fetch_with(
                url,
                &[&self.files_base],
                Credentials::Bearer(self.bot_token.expose()),
            )
            .await
        } else {
            web.fetch(url, &[]).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::fetch::MediaClient;
    use crate::adapters::{
        ChannelAdapter, InboundEvent, InboundMessage, RawRequest, RetiredSecret, VerifyError,
    };

    use crate::secret::Secret;
    use axum::http::HeaderMap;
    use axum::http::HeaderValue;
    use chrono::{DateTime, Utc};
    use hmac::{Hmac, Mac};
    use serde_json::{Value, json};
    use sha2::Sha256;
    use std::time::Duration;

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

    fn config() -> SlackConfig {
        SlackConfig {
            bot_token: Secret::new("xoxb-test-token"),
            signing_secret: Secret::new(SECRET),
            api_base: DEFAULT_API_BASE.into(),
            files_base: DEFAULT_FILES_BASE.into(),
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
        }
    }

    fn adapter(retired: &[RetiredSecret]) -> SlackAdapter {
        SlackAdapter::new(
            &config(),
            reqwest::Client::new(),
            retired,
            MediaClient::new(Duration::from_secs(5), true),
        )
    }

    fn sign(key: &str, ts: i64, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(format!("v0:{ts}:{body}").as_bytes());
        format!("v0={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn request(body: &str, ts: Option<i64>, signature: Option<&str>) -> RawRequest {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        if let Some(ts) = ts {
            headers.insert(
                TIMESTAMP_HEADER,
                HeaderValue::from_str(&ts.to_string()).unwrap(),
            );
        }
        if let Some(s) = signature {
            headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(s).unwrap());
        }
        RawRequest::post(
            "https://bridge.example.com/hooks/sl",
            headers,
            body.to_owned(),
        )
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    pub(super) fn envelope(event: Value) -> String {
        json!({
            "token": "legacy", "team_id": "T1", "api_app_id": "A0OURAPP",
            "type": "event_callback", "event_id": "Ev1", "event_time": 1_700_000_000,
            "authorizations": [{"team_id": "T1", "user_id": "U0OURBOT", "is_bot": true}],
            "event": event,
        })
        .to_string()
    }

    pub(super) fn parse(event: Value) -> Vec<InboundEvent> {
        parse_events(envelope(event).as_bytes()).unwrap()
    }

    pub(super) fn message(event: Value) -> InboundMessage {
        match parse(event).as_slice() {
            [InboundEvent::Message(m)] => m.clone(),
            other => panic!("expected one message, got {other:?}"),
        }
    }

    #[test]
    fn a_signed_request_within_five_minutes_is_believed() {
        let body = envelope(json!({"type": "message"}));
        let ts = now().timestamp() - 200;
        let a = adapter(&[]);
        assert_eq!(
            a.verify(
                &request(&body, Some(ts), Some(&sign(SECRET, ts, &body))),
                now()
            ),
            Ok(())
        );
    }

    #[test]
    fn forged_stale_and_unsigned_requests_are_refused() {
        let body = envelope(json!({"type": "message"}));
        let a = adapter(&[]);
        let ts = now().timestamp();
        assert_eq!(
            a.verify(
                &request(&body, Some(ts), Some(&sign("other", ts, &body))),
                now()
            ),
            Err(VerifyError::BadSignature)
        );
        let stale = ts - 301;
        assert_eq!(
            a.verify(
                &request(&body, Some(stale), Some(&sign(SECRET, stale, &body))),
                now()
            ),
            Err(VerifyError::TimestampOutOfTolerance)
        );
        assert_eq!(
            a.verify(&request(&body, None, Some(&sign(SECRET, ts, &body))), now()),
            Err(VerifyError::MissingHeader("X-Slack-Request-Timestamp"))
        );
        assert_eq!(
            a.verify(&request(&body, Some(ts), None), now()),
            Err(VerifyError::MissingHeader("X-Slack-Signature"))
        );
        let unprefixed = sign(SECRET, ts, &body).replace("v0=", "");
        assert_eq!(
            a.verify(&request(&body, Some(ts), Some(&unprefixed)), now()),
            Err(VerifyError::BadSignature)
        );
        for extreme in [i64::MIN, i64::MAX] {
            let signed = request(&body, Some(extreme), Some(&sign(SECRET, extreme, &body)));
            assert_eq!(
                a.verify(&signed, now()),
                Err(VerifyError::TimestampOutOfTolerance)
            );
        }
        // The signature covers the timestamp: replaying the body under a new one fails.
        let replayed = request(&body, Some(ts + 10), Some(&sign(SECRET, ts, &body)));
        assert_eq!(a.verify(&replayed, now()), Err(VerifyError::BadSignature));
    }

    #[test]
    fn a_rotated_signing_secret_is_accepted_until_its_time() {
        let body = envelope(json!({"type": "message"}));
        let ts = now().timestamp();
        let retired = [RetiredSecret {
            secret: Secret::new("old-secret"),
            until: now() + chrono::Duration::seconds(60),
        }];
        let signed_old = request(&body, Some(ts), Some(&sign("old-secret", ts, &body)));
        assert_eq!(adapter(&retired).verify(&signed_old, now()), Ok(()));
        let later = now() + chrono::Duration::seconds(61);
        let ts = later.timestamp();
        let signed_old = request(&body, Some(ts), Some(&sign("old-secret", ts, &body)));
        assert_eq!(
            adapter(&retired).verify(&signed_old, later),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn url_verification_answers_the_challenge_and_stores_nothing() {
        let body =
            json!({"token": "t", "challenge": "3eZbrw1aB", "type": "url_verification"}).to_string();
        let a = adapter(&[]);
        let reply = a.challenge(&request(&body, None, None)).unwrap();
        assert_eq!(reply.body, r#"{"challenge":"3eZbrw1aB"}"#);
        assert_eq!(parse_events(body.as_bytes()).unwrap(), vec![]);
        assert_eq!(
            a.challenge(&request(&envelope(json!({})), None, None)),
            None
        );
    }
}
