//! Helpers behind the one-shot subcommands (`gen-secret`, `hash-token`, `sign`, `send`):
//! they make secrets, token hashes and signed test webhooks. No daemon state here.

use base64::Engine;
use sha2::Digest;

use crate::adapters::signature::WebhookKey;

/// Bytes of randomness in a generated webhook secret (the HMAC-SHA256 block is larger,
/// but 256 bits is the strength SHA-256 gives anyway).
const SECRET_BYTES: usize = 32;

/// A fresh `whsec_<base64>` webhook secret from the operating system's CSPRNG.
pub fn gen_secret() -> anyhow::Result<String> {
    let mut key = [0u8; SECRET_BYTES];
    getrandom::fill(&mut key)
        .map_err(|e| anyhow::anyhow!("the operating system gave no random bytes: {e}"))?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    ))
}

/// The `sha256 = "<hex>"` line of an `[[api.tokens]]` entry for this token.
pub fn token_hash_line(token: &str) -> String {
    format!(
        "sha256 = \"{}\"",
        hex::encode(sha2::Sha256::digest(token.as_bytes()))
    )
}

/// Drops one trailing line break (`\n` or `\r\n`), the one `echo` or a pasted line adds.
pub fn trim_one_newline(text: &str) -> &str {
    text.strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text)
}

/// Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`)
/// for this body, signed now with a fresh event id.
pub fn signed_headers(key: &WebhookKey, body: &[u8]) -> [(&'static str, String); 3] {
    let id = format!("evt_{}", ulid::Ulid::new());
    let timestamp = chrono::Utc::now().timestamp();
    let signature = key.sign(&id, timestamp, body);
    [
        ("webhook-id", id),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
    ]
}

/// What the daemon answered a webhook `send` posted.
pub struct Answer {
    /// The HTTP status.
    pub status: reqwest::StatusCode,
    /// The response body, as text.
    pub body: String,
}

/// Signs `body` and POSTs it to `{base}/hooks/{channel}` as a JSON webhook.
pub async fn send(
    base: &str,
    channel: &str,
    key: &WebhookKey,
    body: Vec<u8>,
) -> anyhow::Result<Answer> {
    let url = format!("{}/hooks/{channel}", base.trim_end_matches('/'));
    let mut request = reqwest::Client::new()
        .post(&url)
        .timeout(std::time::Duration::from_secs(30))
        .header("content-type", "application/json");
    for (name, value) in signed_headers(key, &body) {
        request = request.header(name, value);
    }
    let response = request
        .body(body)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the daemon at {url}: {e}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    Ok(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_is_a_valid_webhook_key_and_never_repeats() {
        let a = gen_secret().unwrap();
        let b = gen_secret().unwrap();
        assert!(WebhookKey::parse(&a).is_ok(), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn the_token_hash_line_is_the_sha256_of_the_exact_token() {
        // Matches the dev-admin-token hash in config/default.toml.
        assert_eq!(
            token_hash_line("dev-admin-token"),
            "sha256 = \"1734d503f6aa6a047c36d113cbad769f719c93784b469b771c4c3e7c63adbefd\""
        );
    }

    #[test]
    fn only_one_trailing_line_break_is_trimmed() {
        assert_eq!(trim_one_newline("tok\n"), "tok");
        assert_eq!(trim_one_newline("tok\r\n"), "tok");
        assert_eq!(trim_one_newline("tok\n\n"), "tok\n");
        assert_eq!(trim_one_newline("tok "), "tok ");
    }
}
