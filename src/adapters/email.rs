//! Email out through SMTP (lettre): owners' notifications today, an `email` channel's
//! replies later. Every email of a conversation threads under one root id.

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

const DOMAIN: &str = "channel-bridge";

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

    /// The settings this mailer was built from (a reload keeps it when they are unchanged).
    pub fn config(&self) -> &SmtpConfig {
        &self.config
    }

    pub async fn send(&self, email: &Email) -> Result<(), SendError> {
        let to: Mailbox = email.to.parse().map_err(|_| SendError::Permanent {
            reason: format!("{:?} is not an email address", email.to),
        })?;
        let root = format!("<{}@{DOMAIN}>", email.thread);
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&email.subject)
            .message_id(Some(format!("<{}@{DOMAIN}>", email.id)))
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

/// An outbound-only channel whose replies go out as email (`kind = "email"`): the
/// channel `via_channel` replies use to reach a contact by their email address.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailChannelConfig {
    /// The subject of replies (the conversation's thread keeps them together).
    #[serde(default = "default_subject")]
    pub subject: String,
    /// Where the contact's answers are read from (`[channels.<id>.imap]`, src/imap/).
    #[serde(default)]
    pub imap: Option<crate::imap::ImapConfig>,
}

fn default_subject() -> String {
    "Re: your message".into()
}

impl EmailChannelConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        if self.subject.trim().is_empty() {
            vec![("subject".into(), "must not be empty".into())]
        } else {
            Vec::new()
        }
    }
}

/// The identifier type of contacts reached by email.
pub const IDENTIFIER_TYPE: &str = "email";

pub struct EmailChannel {
    subject: String,
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
            mailer,
        }
    }
}

#[async_trait::async_trait]
impl super::ChannelAdapter for EmailChannel {
    fn verify(
        &self,
        _: &super::RawRequest,
        _: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), super::VerifyError> {
        Err(super::VerifyError::NoInbound)
    }

    fn parse(&self, _: &super::RawRequest) -> Result<Vec<super::InboundEvent>, super::ParseError> {
        Ok(Vec::new())
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
        };
        mailer.send(&email).await?;
        Ok(super::Receipt {
            platform_message_id: Some(format!("{}@{DOMAIN}", email.id)),
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
