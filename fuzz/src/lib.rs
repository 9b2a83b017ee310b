//! What every fuzz target runs: a platform's webhook request, built from the fuzzer's
//! bytes, through the channel's real adapter (verify, then parse), checking the rules the
//! ingress relies on: nothing panics, and every refusal maps to a 4xx answer, never a 5xx.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use channel_bridge::adapters::{ChannelAdapter, RawRequest};
use channel_bridge::error::ApiError;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// The channel ids below, one per adapter kind.
pub const PLATFORMS: &[&str] = &[
    "generic",
    "telegram",
    "whatsapp",
    "messenger",
    "line",
    "twilio",
    "viber",
    "slack",
    "instagram",
    "postmark",
    "mailgun",
];

/// The webhook URL the channels believe they are served at (Twilio signs it).
pub const URL_BASE: &str = "https://bridge.example.test/hooks";

/// The standard webhooks secret of the generic channel.
pub const GENERIC_SECRET: &str = "whsec_ZnV6ei1zZWNyZXQtZnV6ei1zZWNyZXQtMTIzNA==";

const CONFIG: &str = r#"
[channels.generic]
kind = "generic"
secret = "whsec_ZnV6ei1zZWNyZXQtZnV6ei1zZWNyZXQtMTIzNA=="
outbound_url = "http://127.0.0.1:9/out"
[channels.telegram]
kind = "telegram"
bot_token = "123:fuzz"
secret_token = "fuzz-secret-token"
api_base = "http://127.0.0.1:9"
[channels.whatsapp]
kind = "whatsapp"
access_token = "fuzz-access"
app_secret = "fuzz-app-secret"
verify_token = "fuzz-verify"
phone_number_id = "227118690421377"
api_base = "http://127.0.0.1:9/v1"
[channels.messenger]
kind = "messenger"
page_access_token = "fuzz-page"
app_secret = "fuzz-app-secret"
verify_token = "fuzz-verify"
api_base = "http://127.0.0.1:9/v1"
[channels.line]
kind = "line"
channel_access_token = "fuzz-line-token"
channel_secret = "fuzz-line-secret"
api_base = "http://127.0.0.1:9"
api_data_base = "http://127.0.0.1:9"
[channels.twilio]
kind = "twilio"
account_sid = "ACaaaabbbbccccddddeeeeffff00001111"
auth_token = "fuzz-twilio-token"
from = "+14155550100"
api_base = "http://127.0.0.1:9"
[channels.viber]
kind = "viber"
auth_token = "fuzz-viber-token"
api_base = "http://127.0.0.1:9"
[channels.slack]
kind = "slack"
bot_token = "xoxb-fuzz"
signing_secret = "fuzz-slack-secret"
api_base = "http://127.0.0.1:9"
[channels.instagram]
kind = "instagram"
access_token = "fuzz-instagram"
app_secret = "fuzz-app-secret"
verify_token = "fuzz-verify"
account_id = "17841405822304914"
api_base = "http://127.0.0.1:9/v1"
[channels.postmark]
kind = "email"
postmark = { token = "fuzz-postmark-token-0123" }
[channels.mailgun]
kind = "email"
mailgun = { signing_key = "fuzz-mailgun-key" }
[smtp]
url = "smtp://127.0.0.1:9"
from = "fuzz@example.com"
"#;

static ADAPTERS: LazyLock<HashMap<&'static str, Arc<dyn ChannelAdapter>>> = LazyLock::new(|| {
    let config = channel_bridge::config::load_str(CONFIG, []).expect("the fuzz config is valid");
    let http = reqwest::Client::new();
    let media =
        channel_bridge::adapters::fetch::MediaClient::new(std::time::Duration::from_secs(1), false);
    PLATFORMS
        .iter()
        .map(|id| {
            let channel = config.channel(id).expect("configured");
            (*id, channel.adapter.build(http.clone(), &[], None, &media))
        })
        .collect()
});

/// The adapter of `platform` (one of [`PLATFORMS`]).
pub fn adapter(platform: &str) -> Arc<dyn ChannelAdapter> {
    ADAPTERS[platform].clone()
}

/// The content type `platform` posts its webhooks with.
pub fn content_type(platform: &str) -> &'static str {
    match platform {
        "twilio" | "mailgun" => "application/x-www-form-urlencoded",
        _ => "application/json",
    }
}

/// The header that carries `platform`'s signature (generic uses three; see
/// `standard_webhooks`).
pub fn signature_header(platform: &str) -> &'static str {
    match platform {
        "telegram" => "x-telegram-bot-api-secret-token",
        "whatsapp" | "messenger" | "instagram" => "x-hub-signature-256",
        "line" => "x-line-signature",
        "twilio" => "x-twilio-signature",
        "viber" => "x-viber-content-signature",
        "slack" => "x-slack-signature",
        // Postmark signs nothing (the URL carries a token); Mailgun signs inside the form.
        "postmark" | "mailgun" => "x-signature",
        _ => "webhook-signature",
    }
}

/// A POST to `platform`'s webhook URL with these headers (invalid ones are left out, as
/// HTTP would never deliver them) and body.
pub fn request(platform: &str, headers: &[(&str, &str)], body: &[u8]) -> RawRequest {
    let mut map = HeaderMap::new();
    map.insert(
        "content-type",
        HeaderValue::from_static(content_type(platform)),
    );
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.insert(name, value);
        }
    }
    RawRequest::post(&format!("{URL_BASE}/{platform}"), map, body.to_vec())
}

/// Verifies and parses `request` as the ingress does; panics (a finding) if a refusal
/// would be answered with anything but a 4xx.
pub fn check(platform: &str, request: &RawRequest) {
    let adapter = adapter(platform);
    if let Err(e) = adapter.verify(request, chrono::Utc::now()) {
        let status = ApiError::from(e).status;
        assert!(status.is_client_error(), "verify answered {status}");
    }
    // Parsed whether or not it verified: the parser must stand anything.
    if let Err(e) = adapter.parse(request) {
        let status = ApiError::from(e).status;
        assert!(status.is_client_error(), "parse answered {status}");
    }
}

/// Fuzzes a platform's parser with `body` as the webhook body (unsigned: [`check`] parses
/// whether or not verification passed).
pub fn parse(platform: &str, body: &[u8]) {
    check(platform, &request(platform, &[], body));
}

/// Fuzzes a platform's signature check with a presented signature header and a body.
pub fn verify(platform: &str, signature: &str, body: &[u8]) {
    // Slack signs over a timestamp header: a current one gets the fuzzed signature checked.
    let now = chrono::Utc::now().timestamp().to_string();
    let mut headers = vec![(signature_header(platform), signature)];
    if platform == "slack" {
        headers.push(("x-slack-request-timestamp", now.as_str()));
    }
    check(platform, &request(platform, &headers, body));
}

/// Fuzzes the MIME reader every inbound e-mail goes through: it must refuse with a 4xx or
/// take the mail, never panic.
pub fn mime(raw: &[u8]) {
    if let Err(e) = channel_bridge::adapters::email::parse_raw(raw) {
        let status = ApiError::from(e).status;
        assert!(status.is_client_error(), "parse_raw answered {status}");
    }
}
