//! Standard Webhooks signatures (used both ways by the generic channel): HMAC-SHA256 over
//! `"{id}.{timestamp}.{body}"` with a `whsec_<base64>` key, sent as `v1,<base64>`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::VerifyError;

/// Whether `signature` is the HMAC-SHA256 of `message` under one of `keys`. Every key is
/// tried and each comparison is constant time, so the time taken says nothing about
/// which matched.
pub fn hmac_sha256_matches_any<'a>(
    keys: impl Iterator<Item = &'a crate::secret::Secret>,
    message: &[u8],
    signature: &[u8],
) -> bool {
    keys.fold(false, |found, key| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(message);
        mac.verify_slice(signature).is_ok() | found
    })
}

/// How far a webhook's timestamp may be from our clock, either way.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// A decoded signing key.
#[derive(Clone)]
pub struct WebhookKey(Vec<u8>);

impl std::fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKey([redacted])")
    }
}

impl WebhookKey {
    /// Reads a `whsec_<base64>` secret.
    pub fn parse(secret: &str) -> Result<Self, &'static str> {
        let encoded = secret
            .strip_prefix("whsec_")
            .ok_or("must start with whsec_ followed by a base64 key")?;
        let key = BASE64
            .decode(encoded)
            .map_err(|_| "the part after whsec_ is not valid base64")?;
        if key.len() < 16 {
            return Err("the key must be at least 16 bytes (24 base64 characters)");
        }
        Ok(Self(key))
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` header value for this message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self
            .mac(id, &timestamp.to_string(), body)
            .finalize()
            .into_bytes();
        format!("v1,{}", BASE64.encode(tag))
    }

    fn matches(&self, id: &str, timestamp: &str, body: &[u8], signature: &[u8]) -> bool {
        // verify_slice compares in constant time.
        self.mac(id, timestamp, body)
            .verify_slice(signature)
            .is_ok()
    }
}

/// Checks the three Standard Webhooks headers against any of `keys` (several during a
/// key rotation). Several space-separated signatures may be sent; one match is enough.
pub fn verify(
    keys: &[WebhookKey],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), VerifyError> {
    let id = id.ok_or(VerifyError::MissingHeader("webhook-id"))?;
    let timestamp = timestamp.ok_or(VerifyError::MissingHeader("webhook-timestamp"))?;
    let signatures = signatures.ok_or(VerifyError::MissingHeader("webhook-signature"))?;
    let seconds: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    // abs_diff: a timestamp near i64::MIN or MAX must be refused, not overflow.
    if now.timestamp().abs_diff(seconds) > TOLERANCE_SECS.unsigned_abs() {
        return Err(VerifyError::TimestampOutOfTolerance);
    }
    let candidates = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| BASE64.decode(s).ok());
    for signature in candidates {
        if keys
            .iter()
            .any(|k| k.matches(id, timestamp.trim(), body, &signature))
        {
            return Ok(());
        }
    }
    Err(VerifyError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from the Standard Webhooks specification.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1614265330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn at(ts: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(ts, 0).unwrap()
    }

    fn key() -> WebhookKey {
        WebhookKey::parse(SPEC_SECRET).unwrap()
    }

    #[test]
    fn signs_the_specification_example() {
        assert_eq!(key().sign(SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIG);
    }

    #[test]
    fn accepts_the_specification_example_within_tolerance() {
        let ts = SPEC_TS.to_string();
        for now in [SPEC_TS, SPEC_TS + TOLERANCE_SECS, SPEC_TS - TOLERANCE_SECS] {
            verify(
                &[key()],
                Some(SPEC_ID),
                Some(&ts),
                Some(SPEC_SIG),
                SPEC_BODY,
                at(now),
            )
            .unwrap();
        }
    }

    #[test]
    fn rejects_forgeries_stale_timestamps_and_missing_headers() {
        let ts = SPEC_TS.to_string();
        let now = at(SPEC_TS);
        let check = |id, ts: Option<&str>, sig, body: &[u8], now| {
            verify(&[key()], id, ts, sig, body, now).unwrap_err()
        };
        assert_eq!(
            check(Some(SPEC_ID), Some(&ts), Some(SPEC_SIG), b"{}", now),
            VerifyError::BadSignature
        );
        assert_eq!(
            check(Some("other"), Some(&ts), Some(SPEC_SIG), SPEC_BODY, now),
            VerifyError::BadSignature
        );
        assert_eq!(
            check(Some(SPEC_ID), Some(&ts), Some("v1,AAAA"), SPEC_BODY, now),
            VerifyError::BadSignature
        );
        assert_eq!(
            check(
                Some(SPEC_ID),
                Some(&ts),
                Some(SPEC_SIG),
                SPEC_BODY,
                at(SPEC_TS + 301)
            ),
            VerifyError::TimestampOutOfTolerance
        );
        assert_eq!(
            check(
                Some(SPEC_ID),
                Some("yesterday"),
                Some(SPEC_SIG),
                SPEC_BODY,
                now
            ),
            VerifyError::BadTimestamp
        );
        // The furthest timestamps are refused, not an overflow.
        for extreme in [i64::MIN, i64::MAX] {
            let ts = extreme.to_string();
            assert_eq!(
                check(Some(SPEC_ID), Some(&ts), Some(SPEC_SIG), SPEC_BODY, now),
                VerifyError::TimestampOutOfTolerance
            );
        }
        assert_eq!(
            check(None, Some(&ts), Some(SPEC_SIG), SPEC_BODY, now),
            VerifyError::MissingHeader("webhook-id")
        );
        assert_eq!(
            check(Some(SPEC_ID), Some(&ts), None, SPEC_BODY, now),
            VerifyError::MissingHeader("webhook-signature")
        );
    }

    #[test]
    fn any_of_several_signatures_or_keys_may_match() {
        let ts = SPEC_TS.to_string();
        let other = WebhookKey::parse("whsec_c2Vjb25kLWtleS1mb3Itcm90YXRpb24=").unwrap();
        let sigs = format!("v1,bm9wZQ== v2,ignored {SPEC_SIG}");
        verify(
            &[key()],
            Some(SPEC_ID),
            Some(&ts),
            Some(&sigs),
            SPEC_BODY,
            at(SPEC_TS),
        )
        .unwrap();
        verify(
            &[other, key()],
            Some(SPEC_ID),
            Some(&ts),
            Some(SPEC_SIG),
            SPEC_BODY,
            at(SPEC_TS),
        )
        .unwrap();
    }

    #[test]
    fn secrets_must_be_whsec_base64_of_a_real_key() {
        assert!(WebhookKey::parse("plain").is_err());
        assert!(WebhookKey::parse("whsec_!!!").is_err());
        assert!(WebhookKey::parse("whsec_c2hvcnQ=").is_err());
    }
}
