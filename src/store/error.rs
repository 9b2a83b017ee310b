//! Why a store call failed, in terms the API can answer with, keeping the database's own
//! error as the cause so a log line shows the whole chain.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use crate::model::ContactId;

/// Why a store call failed, in terms the API can answer with.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request contradicts what is stored (422).
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The database cannot take the request now (busy, disk full, gone): try later (503).
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] Detail),
    /// The database aborted the transaction for a concurrent one (deadlock, serialization
    /// failure, a racing insert); running it again normally succeeds (503 if it keeps failing).
    #[error("storage contended: {0}")]
    Contended(#[source] Detail),
    #[error("storage error: {0}")]
    Internal(#[source] Detail),
    /// The contact was merged into another one (its id answers 404, naming the survivor).
    #[error("contact was merged into {0}")]
    Merged(ContactId),
}

/// What went wrong below the store: a message, and the error that caused it when there
/// is one (a driver's error, a task's panic), kept so the log can show it.
#[derive(Clone, Debug)]
pub struct Detail {
    message: String,
    cause: Option<Arc<dyn Error + Send + Sync>>,
}

impl Detail {
    /// `message`, caused by `cause`.
    pub fn caused_by(
        message: impl Into<String>,
        cause: impl Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            cause: Some(Arc::new(cause)),
        }
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for Detail {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

impl From<String> for Detail {
    fn from(message: String) -> Self {
        Self {
            message,
            cause: None,
        }
    }
}

impl From<&str> for Detail {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

/// An error and its causes on one line (`a: b: c`), for logs; a cause whose text the
/// previous link already shows is not repeated.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            let text = cause.to_string();
            if !shown.contains(&text) {
                write!(f, ": {text}")?;
                shown = text;
            }
            next = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("disk I/O error")]
    struct Io;

    #[test]
    fn a_store_error_s_chain_names_the_database_error_that_caused_it() {
        let e = StoreError::Unavailable(Detail::caused_by("writing the batch", Io));
        assert_eq!(
            Chain(&e).to_string(),
            "storage unavailable: writing the batch: disk I/O error"
        );
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let e = StoreError::Internal(Detail::caused_by("disk I/O error", Io));
        assert_eq!(Chain(&e).to_string(), "storage error: disk I/O error");
    }
}
