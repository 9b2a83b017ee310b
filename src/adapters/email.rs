//! Email out through SMTP (lettre): owners' notifications today, an `email` channel's
//! replies later. Every email of a conversation threads under one root id.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};

use super::SendError;
use crate::config::SmtpConfig;

/// An email ready to send, as an outbox job carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    /// Unique per email: `<{id}@channel-bridge>`.
    pub id: String,
    /// Emails sharing a thread id reply to one root (`In-Reply-To`/`References`).
    pub thread: String,
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
