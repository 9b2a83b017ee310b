//! E-mail: out through SMTP (lettre), owners' notifications and an `email` channel's
//! replies; in as raw RFC 5322 messages ([`parse_raw`], from IMAP or a provider's raw
//! MIME). Every email of a conversation threads under one root id.

pub mod mime;
pub mod webhooks;

pub use mime::parse_raw;

/// An e-mail attachment kept inside the message's stored payload (`mime:…` or
/// `postmark:…` reference): `None` when `platform_ref` is not such a reference.
pub fn stored_attachment(
    raw: Option<&serde_json::Value>,
    platform_ref: &str,
) -> Option<Result<mime::Attachment, super::FetchError>> {
    let ours = platform_ref.starts_with(mime::MEDIA_REF_PREFIX)
        || platform_ref.starts_with(webhooks::POSTMARK_REF_PREFIX);
    if !ours {
        return None;
    }
    let gone = || super::FetchError::Gone("the stored e-mail no longer holds this file".into());
    Some(
        raw.and_then(|raw| {
            mime::attachment(raw, platform_ref)
                .or_else(|| webhooks::postmark_attachment(raw, platform_ref))
        })
        .ok_or_else(gone),
    )
}
pub use webhooks::{MailgunConfig, PostmarkConfig};

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;

pub use crate::model::outbound::Email;

use super::SendError;
use crate::secret::Secret;

/// Where email goes out: `smtp://host:port` (STARTTLS when offered), `smtps://host:port`
/// (TLS), credentials as `smtp://user:password@host`; a secret, since it may hold them.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub url: Secret,
    pub from: String,
}

/// A configured SMTP sender with its connection pool.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    config: SmtpConfig,
}

/// Why SMTP could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("smtp.url: {0}")]
pub struct MailerError(String);

/// The Message-ID domain of mail sent before ids took the sender's domain; replies to
/// such mail still thread, since threading reads only the id's local part.
pub const LEGACY_DOMAIN: &str = "channel-bridge";

/// The domain of our Message-IDs: the sender address's, as RFC 5322 recommends, so
/// receiving servers do not score the mail as forged.
fn id_domain(from: &Mailbox) -> String {
    let domain = from.email.domain();
    if domain.is_empty() {
        LEGACY_DOMAIN.to_owned()
    } else {
        domain.to_ascii_lowercase()
    }
}

impl Mailer {
    pub fn new(config: &SmtpConfig, timeout_ms: u64) -> Result<Self, MailerError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(config.url.expose())
            // Never echo the URL: it may hold the SMTP password.
            .map_err(|_| MailerError("cannot be used as an SMTP URL".into()))?
            .timeout(Some(Duration::from_millis(timeout_ms)))
            .build();
        let from = config
            .from
            .parse()
            .map_err(|_| MailerError(format!("smtp.from {:?} is not an address", config.from)))?;
        Ok(Self {
            transport,
            from,
            config: config.clone(),
        })
    }

    /// The domain of the Message-IDs this mailer writes.
    pub fn domain(&self) -> String {
        id_domain(&self.from)
    }

    /// The settings this mailer was built from (a reload keeps it when they are unchanged).
    pub fn config(&self) -> &SmtpConfig {
        &self.config
    }

    pub async fn send(&self, email: &Email) -> Result<(), SendError> {
        let to: Mailbox = email.to.parse().map_err(|_| SendError::Permanent {
            reason: format!("{:?} is not an email address", email.to),
        })?;
        let domain = self.domain();
        let root = format!("<{}@{domain}>", email.thread);
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&email.subject)
            .message_id(Some(format!("<{}@{domain}>", email.id)));
        if let Some(reply_to) = &email.reply_to {
            let reply_to: Mailbox = reply_to.parse().map_err(|_| SendError::Permanent {
                reason: format!("reply-to {reply_to:?} is not an email address"),
            })?;
            builder = builder.reply_to(reply_to);
        }
        let message = builder
            .in_reply_to(root.clone())
            .references(root)
            .header(ContentType::TEXT_PLAIN)
            .body(email.text.clone())
            .map_err(|e| SendError::Permanent {
                reason: format!("cannot build the email: {e}"),
            })?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(classify)
    }
}

/// A permanent SMTP rejection (5xx) will not change on retry; anything else may.
fn classify(e: SmtpError) -> SendError {
    let reason = format!("SMTP: {e}");
    if e.is_permanent() {
        SendError::Permanent { reason }
    } else {
        SendError::Retryable {
            reason,
            retry_after: None,
        }
    }
}

/// An email channel (`kind = "email"`): replies go out through SMTP (also those
/// `via_channel` sends to a contact's address); mail comes in through a provider's
/// webhook (Postmark, Mailgun) or IMAP.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailChannelConfig {
    /// The subject of replies (the conversation's thread keeps them together).
    #[serde(default = "default_subject")]
    pub subject: String,
    /// Our support address: replies set `Reply-To: {local}+{conversation id}@{domain}`, so
    /// an answer finds its conversation even when the client drops the thread headers.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Postmark inbound webhooks, authenticated by `?token=` on the URL.
    #[serde(default)]
    pub postmark: Option<PostmarkConfig>,
    /// Mailgun inbound routes, signed with the webhook signing key.
    #[serde(default)]
    pub mailgun: Option<MailgunConfig>,
    /// Where the contact's answers are read from (`[channels.<id>.imap]`, src/imap/).
    #[serde(default)]
    pub imap: Option<crate::imap::ImapConfig>,
}

fn default_subject() -> String {
    "Re: your message".into()
}

impl EmailChannelConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if self.subject.trim().is_empty() {
            errors.push(("subject".into(), "must not be empty".into()));
        }
        if let Some(reply_to) = &self.reply_to
            && plus_address(reply_to, "conv_X").is_none()
        {
            errors.push((
                "reply_to".into(),
                "must be a plain address such as support@example.com (no + tag, no name)".into(),
            ));
        }
        if let Some(p) = &self.postmark
            && p.token.expose().len() < 16
        {
            errors.push((
                "postmark.token".into(),
                "must be at least 16 characters (the URL's only protection)".into(),
            ));
        }
        if let Some(m) = &self.mailgun
            && m.signing_key.expose().trim().is_empty()
        {
            errors.push(("mailgun.signing_key".into(), "must not be empty".into()));
        }
        errors
    }

    /// The secrets in these settings, for redaction.
    pub fn secrets(&self) -> Vec<&Secret> {
        let mut out = Vec::new();
        if let Some(p) = &self.postmark {
            out.push(&p.token);
        }
        if let Some(m) = &self.mailgun {
            out.push(&m.signing_key);
        }
        if let Some(i) = &self.imap {
            out.push(&i.password);
        }
        out
    }
}

/// `local+tag@domain` for a plain `local@domain`; `None` when `address` is not one.
pub fn plus_address(address: &str, tag: &str) -> Option<String> {
    let (local, domain) = address.trim().split_once('@')?;
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    };
    (plain(local) && plain(domain) && domain.contains('.'))
        .then(|| format!("{local}+{tag}@{domain}"))
}

/// The identifier type of contacts reached by email.
pub const IDENTIFIER_TYPE: &str = "email";

pub struct EmailChannel {
    subject: String,
    reply_to: Option<String>,
    postmark: Option<PostmarkConfig>,
    mailgun: Option<MailgunConfig>,
    mailer: Option<Mailer>,
}

impl EmailChannel {
    pub fn new(config: &EmailChannelConfig, smtp: Option<(&SmtpConfig, u64)>) -> Self {
        let mailer = smtp.and_then(|(smtp, timeout)| match Mailer::new(smtp, timeout) {
            Ok(mailer) => Some(mailer),
            Err(e) => {
                tracing::error!(error = %e, "Cannot set up SMTP for an email channel.");
                None
            }
        });
        Self {
            subject: config.subject.clone(),
            reply_to: config.reply_to.clone(),
            postmark: config.postmark.clone(),
            mailgun: config.mailgun.clone(),
            mailer,
        }
    }
}

#[async_trait::async_trait]
impl super::ChannelAdapter for EmailChannel {
    fn verify(
        &self,
        request: &super::RawRequest,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), super::VerifyError> {
        match (webhooks::provider(request), &self.postmark, &self.mailgun) {
            (Some(webhooks::Provider::Postmark), Some(p), _) => {
                webhooks::verify_postmark(p, request)
            }
            (Some(webhooks::Provider::Mailgun), _, Some(m)) => {
                webhooks::verify_mailgun(m, request, now)
            }
            // Nothing configured takes this request: it is not believed, whatever it is.
            (_, None, None) => Err(super::VerifyError::NoInbound),
            _ => Err(super::VerifyError::MissingHeader("signature")),
        }
    }

    fn parse(
        &self,
        request: &super::RawRequest,
    ) -> Result<Vec<super::InboundEvent>, super::ParseError> {
        match webhooks::provider(request) {
            Some(webhooks::Provider::Postmark) if self.postmark.is_some() => {
                webhooks::parse_postmark(&request.body)
            }
            Some(webhooks::Provider::Mailgun) if self.mailgun.is_some() => {
                webhooks::parse_mailgun(request)
            }
            _ => Err(super::ParseError::UnsupportedMediaType(
                request.content_type().unwrap_or_else(|| "none".into()),
            )),
        }
    }

    async fn send(&self, message: &super::Outbound) -> Result<super::Receipt, SendError> {
        let mailer = self.mailer.as_ref().ok_or_else(|| SendError::Retryable {
            reason: "SMTP is not set up ([smtp])".into(),
            retry_after: None,
        })?;
        let mut text = String::new();
        let mut note = None;
        for part in &message.parts {
            match part {
                crate::model::Part::Text(t) => text.push_str(&t.text),
                other => {
                    let link = match other {
                        crate::model::Part::Image(m)
                        | crate::model::Part::Video(m)
                        | crate::model::Part::Audio(m)
                        | crate::model::Part::VoiceNote(m)
                        | crate::model::Part::Sticker(m)
                        | crate::model::Part::File(m) => m.media.url.clone().unwrap_or_default(),
                        _ => String::new(),
                    };
                    if let Some(caption) = other.text() {
                        text.push_str(caption);
                        text.push('\n');
                    }
                    text.push_str(&link);
                    note = Some("attachments were sent as links".to_owned());
                }
            }
            text.push('\n');
        }
        let email = Email {
            to: message.to.value.clone(),
            subject: self.subject.clone(),
            text,
            id: message.message_id.to_string(),
            thread: message.conversation_id.to_string(),
            reply_to: self
                .reply_to
                .as_deref()
                .and_then(|a| plus_address(a, message.conversation_id.as_str())),
        };
        mailer.send(&email).await?;
        Ok(super::Receipt {
            platform_message_id: Some(format!("{}@{}", email.id, mailer.domain())),
            note,
        })
    }

    async fn fetch_media(
        &self,
        _: &crate::model::Media,
        _: &super::fetch::MediaClient,
    ) -> Result<super::FetchedMedia, super::FetchError> {
        Err(super::FetchError::NoMedia)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> EmailChannelConfig {
        toml::from_str(toml_text).expect("parses")
    }

    #[test]
    fn inbound_settings_are_validated_by_key_and_their_secrets_redacted() {
        let good = config(
            "reply_to = \"support@example.com\"\npostmark = { token = \"0123456789abcdef\" }\nmailgun = { signing_key = \"key-1\" }",
        );
        assert!(good.validate().is_empty());
        assert_eq!(good.secrets().len(), 2);
        let bad = config(
            "reply_to = \"Support <support+x@example.com>\"\npostmark = { token = \"short\" }\nmailgun = { signing_key = \" \" }",
        );
        let keys: Vec<String> = bad.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["reply_to", "postmark.token", "mailgun.signing_key"]);
        assert!(toml::from_str::<EmailChannelConfig>("postmark = { tokn = \"x\" }").is_err());
    }

    #[test]
    fn the_reply_to_address_is_tagged_with_the_conversation() {
        assert_eq!(
            plus_address("support@example.com", "conv_01").as_deref(),
            Some("support+conv_01@example.com")
        );
        assert_eq!(plus_address("support", "conv_01"), None);
    }
}
