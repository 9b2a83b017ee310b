//! HubSpot's webhook signature, version 3 (research/hubspot-custom-channels.md §6.1):
//! `base64(HMAC-SHA256(client_secret, method + uri + raw body + timestamp))`, sent as
//! `X-HubSpot-Signature-v3` with the timestamp (Unix milliseconds) in
//! `X-HubSpot-Request-Timestamp`. The URI is the public URL HubSpot called, with a few
//! percent-escapes decoded the way HubSpot decodes them before signing.
//!
//! Pure: no HTTP server, no clock of its own (the caller passes `now`). v1 and v2 are not
//! accepted: they carry no timestamp, so a captured request could be replayed for ever.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const SIGNATURE_HEADER: &str = "x-hubspot-signature-v3";
pub const TIMESTAMP_HEADER: &str = "x-hubspot-request-timestamp";

/// How far the timestamp may be from our clock, either way: 5 minutes.
pub const TOLERANCE_MS: i64 = 5 * 60 * 1000;

/// Why a webhook is not HubSpot's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing header {0}")]
    Missing(&'static str),
    #[error("X-HubSpot-Request-Timestamp is not a Unix time in milliseconds")]
    BadTimestamp,
    #[error("X-HubSpot-Request-Timestamp is more than 5 minutes from now")]
    Stale,
    #[error("X-HubSpot-Signature-v3 does not match the request")]
    Mismatch,
}

impl SignatureError {
    /// The error code the webhook answers with (the same codes as `/hooks/{channel}`).
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Missing(_) => "missing_signature",
            SignatureError::BadTimestamp | SignatureError::Stale => "invalid_timestamp",
            SignatureError::Mismatch => "invalid_signature",
        }
    }
}

/// The escapes HubSpot decodes in the URI before signing; every other one stays encoded.
const DECODED: [(&str, char); 12] = [
    ("%3A", ':'),
    ("%2F", '/'),
    ("%3F", '?'),
    ("%40", '@'),
    ("%21", '!'),
    ("%24", '$'),
    ("%27", '\''),
    ("%28", '('),
    ("%29", ')'),
    ("%2A", '*'),
    ("%2C", ','),
    ("%3B", ';'),
];

/// `uri` as HubSpot signs it: only the escapes of [`DECODED`] decoded (either case).
pub fn signed_uri(uri: &str) -> String {
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        match escape.and_then(|e| {
            DECODED
                .iter()
                .find(|(code, _)| code.eq_ignore_ascii_case(e))
        }) {
            Some((_, c)) => {
                out.push(*c);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn mac(secret: &[u8], method: &str, uri: &str, body: &[u8], timestamp: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(method.to_ascii_uppercase().as_bytes());
    mac.update(signed_uri(uri).as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    mac
}

/// The `X-HubSpot-Signature-v3` value for a request (what HubSpot computes; tests and
/// `channel-bridge` tooling sign with it).
pub fn sign(secret: &[u8], method: &str, uri: &str, body: &[u8], timestamp: &str) -> String {
    BASE64.encode(
        mac(secret, method, uri, body, timestamp)
            .finalize()
            .into_bytes(),
    )
}

/// Checks a request: the timestamp within [`TOLERANCE_MS`] of `now`, then the signature,
/// compared in constant time. `uri` is the full public URL called, query string as
/// received.
pub fn verify(
    secret: &[u8],
    method: &str,
    uri: &str,
    body: &[u8],
    signature: Option<&str>,
    timestamp: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing("X-HubSpot-Signature-v3"))?;
    let timestamp = timestamp.ok_or(SignatureError::Missing("X-HubSpot-Request-Timestamp"))?;
    let sent_ms: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    // abs_diff: a timestamp near i64::MIN or MAX must be refused, not overflow.
    if now.timestamp_millis().abs_diff(sent_ms) > TOLERANCE_MS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let Ok(given) = BASE64.decode(signature.trim()) else {
        return Err(SignatureError::Mismatch);
    };
    let expected = mac(secret, method, uri, body, timestamp)
        .finalize()
        .into_bytes();
    if bool::from(expected.as_slice().ct_eq(&given)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"hs-client-secret";
    const TIMESTAMP: &str = "1767225600000";
    // Computed independently (Python's hmac over the same concatenation).
    const WITH_QUERY: &str = "RcJQ1UFt3WDaGPbCQ8ckWIwj9YEehiWCNLGLmZv6/QU=";
    const EMPTY_BODY: &str = "j+aZIgevn7SBIL/NW41FUeSKp6C7CBDEvcsb+2giYb4=";
    const BODY: &[u8] = br#"{"type":"OUTGOING_CHANNEL_MESSAGE_CREATED"}"#;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    fn now() -> DateTime<Utc> {
        at(1_767_225_600_000)
    }

    #[test]
    fn fixed_vectors_match_hubspots_algorithm() {
        let uri = "https://bridge.example.com/hubspot/webhook?token=a%3Ab";
        assert_eq!(sign(SECRET, "POST", uri, BODY, TIMESTAMP), WITH_QUERY);
        assert_eq!(
            sign(
                SECRET,
                "post",
                "https://bridge.example.com/hubspot/webhook",
                b"",
                TIMESTAMP
            ),
            EMPTY_BODY
        );
        let ok = verify(
            SECRET,
            "POST",
            uri,
            BODY,
            Some(WITH_QUERY),
            Some(TIMESTAMP),
            now(),
        );
        assert_eq!(ok, Ok(()));
    }

    #[test]
    fn only_the_documented_escapes_are_decoded() {
        assert_eq!(
            signed_uri("https://h/p?a=%3a%2F%3F%40%21%24%27%28%29%2A%2C%3B&b=%20%25&c=%"),
            "https://h/p?a=:/?@!$'()*,;&b=%20%25&c=%"
        );
    }

    #[test]
    fn a_changed_body_uri_method_timestamp_or_secret_is_refused() {
        let uri = "https://bridge.example.com/hubspot/webhook?token=a%3Ab";
        let check = |secret: &[u8], method, uri, body: &[u8], ts| {
            verify(secret, method, uri, body, Some(WITH_QUERY), Some(ts), now())
        };
        let mismatch = Err(SignatureError::Mismatch);
        assert_eq!(check(SECRET, "POST", uri, b"{}", TIMESTAMP), mismatch);
        assert_eq!(
            check(
                SECRET,
                "POST",
                "https://other/hubspot/webhook",
                BODY,
                TIMESTAMP
            ),
            mismatch
        );
        assert_eq!(check(SECRET, "PUT", uri, BODY, TIMESTAMP), mismatch);
        assert_eq!(check(SECRET, "POST", uri, BODY, "1767225600001"), mismatch);
        assert_eq!(check(b"other", "POST", uri, BODY, TIMESTAMP), mismatch);
        assert_eq!(
            verify(
                SECRET,
                "POST",
                uri,
                BODY,
                Some("%%%"),
                Some(TIMESTAMP),
                now()
            ),
            mismatch
        );
    }

    #[test]
    fn timestamps_more_than_five_minutes_away_are_refused_either_way() {
        let uri = "https://h/hubspot/webhook";
        let signed_at = |ms: i64| {
            let ts = ms.to_string();
            let signature = sign(SECRET, "POST", uri, BODY, &ts);
            verify(
                SECRET,
                "POST",
                uri,
                BODY,
                Some(&signature),
                Some(&ts),
                now(),
            )
        };
        let now_ms = now().timestamp_millis();
        assert_eq!(signed_at(now_ms - TOLERANCE_MS), Ok(()));
        assert_eq!(signed_at(now_ms + TOLERANCE_MS), Ok(()));
        assert_eq!(
            signed_at(now_ms - TOLERANCE_MS - 1),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            signed_at(now_ms + TOLERANCE_MS + 1),
            Err(SignatureError::Stale)
        );
        // Seconds instead of milliseconds read as 1970: stale.
        assert_eq!(signed_at(now_ms / 1000), Err(SignatureError::Stale));
        // The furthest timestamps are refused, not an overflow (a request once closed the
        // connection with i64::MIN).
        assert_eq!(signed_at(i64::MIN), Err(SignatureError::Stale));
        assert_eq!(signed_at(i64::MAX), Err(SignatureError::Stale));
    }

    #[test]
    fn missing_headers_and_unreadable_timestamps_say_which() {
        let uri = "https://h/hubspot/webhook";
        let e = verify(SECRET, "POST", uri, BODY, None, Some(TIMESTAMP), now()).unwrap_err();
        assert_eq!(e.code(), "missing_signature");
        let e = verify(SECRET, "POST", uri, BODY, Some("x"), None, now()).unwrap_err();
        assert_eq!(e, SignatureError::Missing("X-HubSpot-Request-Timestamp"));
        let e = verify(SECRET, "POST", uri, BODY, Some("x"), Some("soon"), now()).unwrap_err();
        assert_eq!(e.code(), "invalid_timestamp");
    }
}
