//! One IMAP connection: TCP, TLS (from the first byte or by STARTTLS), LOGIN, and the few
//! UID commands inbound needs. Every command has a deadline, so a connection that went
//! silent is noticed and replaced instead of hanging the mailbox's poller.

use std::sync::Arc;
use std::time::Duration;

use async_imap::types::UnsolicitedResponse;
use futures_util::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

use super::ImapError;
use super::config::{After, ImapConfig, ImapTls};
use crate::secret::redact;

/// How long one command (or connecting) may take before the connection is given up.
pub(super) const DEADLINE: Duration = Duration::from_secs(60);

/// The byte stream under the session: plain TCP or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Io for T {}

type Inner = async_imap::Session<Box<dyn Io>>;

/// A logged-in session with what the server said it can do.
pub struct Session {
    inner: Inner,
    /// RFC 2177 IDLE: the server says when something arrives.
    pub idle: bool,
    /// RFC 6851 MOVE.
    move_: bool,
    /// RFC 4315 UIDPLUS (UID EXPUNGE), for moving without MOVE.
    uidplus: bool,
}

/// A folder as SELECT found it.
#[derive(Clone, Copy, Debug)]
pub struct Selected {
    pub uidvalidity: u32,
}

/// Runs `work` within the deadline; `what` names the step in the error.
async fn within<T>(
    what: &'static str,
    work: impl Future<Output = Result<T, async_imap::error::Error>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(DEADLINE, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ImapError::Protocol(format!("{what}: {e}"))),
        Err(_) => Err(ImapError::Protocol(format!(
            "{what}: no answer within {}s",
            DEADLINE.as_secs()
        ))),
    }
}

fn tls_connector() -> Result<TlsConnector, ImapError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    // Both rustls providers are in the tree (aws-lc-rs through lettre, ring through
    // others), so the provider is named rather than left to rustls to guess.
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_platform_verifier())
        .map_err(|e| ImapError::Tls(e.to_string()))?
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

async fn tls(stream: TcpStream, host: &str) -> Result<Box<dyn Io>, ImapError> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| ImapError::Tls(format!("{host:?} is not a host name for TLS")))?;
    let stream = tokio::time::timeout(DEADLINE, tls_connector()?.connect(name, stream))
        .await
        .map_err(|_| ImapError::Tls("no TLS handshake within the deadline".into()))?
        .map_err(|e| ImapError::Tls(e.to_string()))?;
    Ok(Box::new(stream))
}

impl Session {
    /// Connects, secures the connection as configured and logs in.
    pub async fn open(config: &ImapConfig) -> Result<Self, ImapError> {
        let host = config.host.trim_start_matches('[').trim_end_matches(']');
        let tcp = tokio::time::timeout(DEADLINE, TcpStream::connect((host, config.port())))
            .await
            .map_err(|_| ImapError::Connect("no connection within the deadline".into()))?
            .map_err(|e| ImapError::Connect(e.to_string()))?;
        let stream: Box<dyn Io> = match config.tls {
            ImapTls::Tls => tls(tcp, host).await?,
            ImapTls::None => Box::new(tcp),
            ImapTls::Starttls => {
                let mut client = async_imap::Client::new(tcp);
                greeting(&mut client).await?;
                within(
                    "STARTTLS",
                    client.run_command_and_check_ok("STARTTLS", None),
                )
                .await?;
                // No greeting follows STARTTLS.
                let stream = tls(client.into_inner(), host).await?;
                return Self::login(async_imap::Client::new(stream), config).await;
            }
        };
        let mut client = async_imap::Client::new(stream);
        greeting(&mut client).await?;
        Self::login(client, config).await
    }

    async fn login(
        client: async_imap::Client<Box<dyn Io>>,
        config: &ImapConfig,
    ) -> Result<Self, ImapError> {
        let password = config.password.expose();
        let login = client.login(&config.username, password);
        let mut inner = match tokio::time::timeout(DEADLINE, login).await {
            Err(_) => return Err(ImapError::Login("no answer within the deadline".into())),
            // The server's words, never ours: a server may echo what it was sent.
            Ok(Err((e, _))) => {
                return Err(ImapError::Login(redact(
                    &e.to_string(),
                    &[&config.password],
                )));
            }
            Ok(Ok(session)) => session,
        };
        let capabilities = within("CAPABILITY", inner.capabilities()).await?;
        Ok(Self {
            idle: capabilities.has_str("IDLE"),
            move_: capabilities.has_str("MOVE"),
            uidplus: capabilities.has_str("UIDPLUS"),
            inner,
        })
    }

    /// Selects `folder` (read-write: flags and moves follow).
    pub async fn select(&mut self, folder: &str) -> Result<Selected, ImapError> {
        let mailbox = within("SELECT", self.inner.select(folder)).await?;
        let uidvalidity = mailbox
            .uid_validity
            .ok_or_else(|| ImapError::Protocol("SELECT: the server sent no UIDVALIDITY".into()))?;
        Ok(Selected { uidvalidity })
    }

    /// The UIDs above `after` in the selected folder (only those not `\Seen` with
    /// `unseen`), lowest first.
    pub async fn uids_after(&mut self, after: u32, unseen: bool) -> Result<Vec<u32>, ImapError> {
        let Some(first) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let unseen = if unseen { " UNSEEN" } else { "" };
        let found = within(
            "UID SEARCH",
            self.inner.uid_search(format!("UID {first}:*{unseen}")),
        )
        .await?;
        // `n:*` always includes the highest UID, even one below n.
        let mut uids: Vec<u32> = found.into_iter().filter(|uid| *uid > after).collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// The whole message with this UID, without flagging it seen (that waits for the
    /// commit). `None` when it is gone (expunged meanwhile).
    pub async fn fetch(&mut self, uid: u32) -> Result<Option<Vec<u8>>, ImapError> {
        let fetches = within("UID FETCH", async {
            self.inner
                .uid_fetch(uid.to_string(), "(UID BODY.PEEK[])")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        Ok(fetches
            .into_iter()
            .find(|f| f.uid == Some(uid))
            .and_then(|f| f.body().map(<[u8]>::to_vec)))
    }

    /// Does to the stored message what `after` says.
    pub async fn finish(&mut self, uid: u32, after: &After) -> Result<(), ImapError> {
        let uid = uid.to_string();
        match after {
            After::Seen => self.add_flags(&uid, "\\Seen").await,
            After::Move(target) if self.move_ => {
                within("UID MOVE", self.inner.uid_mv(&uid, target)).await
            }
            After::Move(target) => {
                within("UID COPY", self.inner.uid_copy(&uid, target)).await?;
                self.add_flags(&uid, "\\Seen \\Deleted").await?;
                if self.uidplus {
                    within("UID EXPUNGE", async {
                        self.inner
                            .uid_expunge(&uid)
                            .await?
                            .try_collect::<Vec<_>>()
                            .await
                    })
                    .await?;
                }
                // Without UIDPLUS an EXPUNGE would remove every \Deleted message, not only
                // ours: the copy is left flagged for the server's or the owner's expunge.
                Ok(())
            }
        }
    }

    async fn add_flags(&mut self, uid: &str, flags: &str) -> Result<(), ImapError> {
        within("UID STORE", async {
            self.inner
                .uid_store(uid, format!("+FLAGS.SILENT ({flags})"))
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await
        .map(|_| ())
    }

    /// Whether the server said, since the last look, that messages arrived (responses it
    /// sent unasked during other commands).
    pub fn heard_of_new_mail(&mut self) -> bool {
        let mut new = false;
        while let Ok(response) = self.inner.unsolicited_responses.try_recv() {
            new |= matches!(
                response,
                UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
            );
        }
        new
    }

    /// Waits in IDLE until the server reports a change or `bound` passes. Dropping the
    /// future drops the connection's IDLE with it (the session is consumed).
    pub async fn idle(self, bound: Duration) -> Result<Self, ImapError> {
        let Session {
            inner,
            idle,
            move_,
            uidplus,
        } = self;
        let mut handle = inner.idle();
        within("IDLE", handle.init()).await?;
        let (wait, _stop) = handle.wait_with_timeout(bound);
        wait.await
            .map_err(|e| ImapError::Protocol(format!("IDLE: {e}")))?;
        let inner = within("DONE", handle.done()).await?;
        Ok(Session {
            inner,
            idle,
            move_,
            uidplus,
        })
    }

    /// Says goodbye, within the deadline; a server that does not answer is left.
    pub async fn logout(mut self) {
        let _ = within("LOGOUT", self.inner.logout()).await;
    }
}

async fn greeting(client: &mut async_imap::Client<impl Io>) -> Result<(), ImapError> {
    match tokio::time::timeout(DEADLINE, client.read_response()).await {
        Ok(Ok(Some(_))) => Ok(()),
        Ok(Ok(None)) => Err(ImapError::Connect("closed before its greeting".into())),
        Ok(Err(e)) => Err(ImapError::Connect(format!("greeting: {e}"))),
        Err(_) => Err(ImapError::Connect("no greeting within the deadline".into())),
    }
}
