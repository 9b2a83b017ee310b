//! IMAP inbound for `email` channels (issue #20, docs/ARCHITECTURE.md §1): the contact's
//! answers to our e-mails are read from a mailbox instead of posted to a webhook. One
//! poller per enabled email channel with an `imap` block, started, stopped and restarted
//! by [`run`] as reloads change the config; each takes the mailbox's lease in the store
//! (one replica reads a mailbox at a time), then per message, in UID order:
//! fetch → `parse_raw` → `store.ingest` (the channel's rules) → advance the cursor →
//! flag `\Seen` or move. A crash anywhere in that line takes the message again at most,
//! and Message-ID dedupe stores it once. Knows no HTTP; the store knows no IMAP.

pub mod config;
mod session;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{After, ImapConfig, ImapTls};

use crate::adapters::AdapterConfig;
use crate::model::ReplaceNul;
use crate::runtime::SharedRuntime;
use crate::store::imap::ImapCursor;
use crate::store::{IngestOutcome, Store, StoreError};
use crate::telemetry;
use session::Session;

/// Why a mailbox could not be read just now; the poller reconnects after a backoff.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("TLS: {0}")]
    Tls(String),
    /// The server refused the login (its words, with our password redacted).
    #[error("login refused: {0}")]
    Login(String),
    #[error("{0}")]
    Protocol(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Another replica (or a poller of an earlier config) reads this mailbox.
    #[error("another poller holds the mailbox's lease")]
    Leased,
}

impl ImapError {
    /// A short stable reason for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ImapError::Connect(_) => "connect",
            ImapError::Tls(_) => "tls",
            ImapError::Login(_) => "login",
            ImapError::Protocol(_) => "protocol",
            ImapError::Store(_) => "store",
            ImapError::Leased => "leased",
        }
    }
}

/// What the pollers share.
#[derive(Clone)]
pub struct Context {
    pub store: Arc<dyn Store>,
    pub runtime: SharedRuntime,
    /// Wakes the delivery worker: a stored message may have queued an owner's e-mail.
    pub wake: Arc<Notify>,
}

/// How long an idle supervisor goes between looks at the live config: a reload that adds,
/// changes or disables a mailbox takes effect within this.
const CONFIG_LOOK: Duration = Duration::from_secs(1);

/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Runs one poller per configured mailbox until `shutdown`, then waits for them to give
/// their leases back.
pub async fn run(context: Context, shutdown: CancellationToken) {
    let process = ulid::Ulid::new();
    let tracker = TaskTracker::new();
    let mut running: HashMap<String, (ImapConfig, CancellationToken)> = HashMap::new();
    let mut generation = 0u64;
    let mut seen: Option<Arc<crate::runtime::Runtime>> = None;
    loop {
        let runtime = context.runtime.load_full();
        if !seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &runtime)) {
            let wanted = mailboxes(&runtime);
            running.retain(|id, (config, stop)| {
                let keep = wanted.get(id) == Some(config);
                if !keep {
                    stop.cancel();
                }
                keep
            });
            for (id, config) in wanted {
                if running.contains_key(&id) {
                    continue;
                }
                generation += 1;
                // Each poller is its own lease owner: a restarted one waits for the one it
                // replaces to let go, as another replica would.
                let owner = format!("imap-{process}-{generation}");
                let stop = shutdown.child_token();
                let span = tracing::info_span!("imap", channel = %id, folder = %config.folder);
                tracker.spawn(tracing::Instrument::instrument(
                    poll(
                        context.clone(),
                        id.clone(),
                        config.clone(),
                        owner,
                        stop.clone(),
                    ),
                    span,
                ));
                running.insert(id, (config, stop));
            }
            seen = Some(runtime);
        }
        tokio::select! {
            _ = tokio::time::sleep(CONFIG_LOOK) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    tracker.close();
    tracker.wait().await;
}

/// The mailboxes the config asks for: enabled email channels with an `imap` block.
fn mailboxes(runtime: &crate::runtime::Runtime) -> HashMap<String, ImapConfig> {
    runtime
        .config
        .channels
        .iter()
        .filter(|(_, c)| c.enabled)
        .filter_map(|(id, c)| match &c.adapter {
            AdapterConfig::Email(email) => email.imap.clone().map(|imap| (id.clone(), imap)),
            _ => None,
        })
        .collect()
}

/// Doubles from a second up to [`MAX_BACKOFF`], ±20 %; reset once a look succeeds.
struct Backoff(u32);

impl Backoff {
    fn next(&mut self) -> Duration {
        let base = Duration::from_secs(1u64 << self.0.min(9)).min(MAX_BACKOFF);
        self.0 = self.0.saturating_add(1);
        base.mul_f64(1.0 + crate::outbox::retry::jitter())
    }
}

/// One mailbox's poller: reads it while it holds the lease, reconnects after failures.
async fn poll(
    context: Context,
    channel: String,
    config: ImapConfig,
    owner: String,
    stop: CancellationToken,
) {
    let folder = config.folder.clone();
    let mut backoff = Backoff(0);
    let poller = Poller {
        context: &context,
        channel: &channel,
        config: &config,
        owner: &owner,
        stop: &stop,
    };
    loop {
        let wait = match poller.session(&mut backoff).await {
            Ok(()) => break,
            // Someone else reads it: look again soon, to take over when they stop.
            Err(ImapError::Leased) => lease_retry(&config),
            Err(e) => {
                let wait = backoff.next();
                telemetry::imap_failed(&channel, &folder, e.code(), &e.to_string(), wait);
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => break,
        }
    }
    if let Err(e) = context
        .store
        .imap()
        .release_mailbox(&channel, &folder, &owner)
        .await
    {
        tracing::warn!(channel, folder, error = %e, "Could not give the mailbox's lease back; it expires by itself.");
    }
}

/// How long a lease lasts: one IDLE (or poll wait) plus time for a look and a command
/// deadline, so a live poller renews it well before another may take it.
fn lease_length(config: &ImapConfig) -> Duration {
    Duration::from_secs(config.poll_interval_secs + 120)
}

/// How often a poller without the lease asks for it again.
fn lease_retry(config: &ImapConfig) -> Duration {
    Duration::from_secs(config.poll_interval_secs.min(5))
}

struct Poller<'a> {
    context: &'a Context,
    channel: &'a str,
    config: &'a ImapConfig,
    owner: &'a str,
    stop: &'a CancellationToken,
}

/// What became of one message.
enum Taken {
    /// Stored (or already stored): flag or move it.
    Stored,
    /// Cannot be read or stored: left as it is in the mailbox, logged and counted.
    Unreadable,
}

impl Poller<'_> {
    /// Takes or renews the lease; `Leased` when another poller has it.
    async fn lease(&self) -> Result<(), ImapError> {
        let now = Utc::now();
        let until = now + lease_length(self.config);
        let taken = self
            .context
            .store
            .imap()
            .lease_mailbox(self.channel, &self.config.folder, self.owner, now, until)
            .await?;
        if taken {
            Ok(())
        } else {
            Err(ImapError::Leased)
        }
    }

    /// One connection: read what is new, wait for more (IDLE or the poll interval),
    /// again, until stopped (`Ok`) or something fails.
    async fn session(&self, backoff: &mut Backoff) -> Result<(), ImapError> {
        self.lease().await?;
        let mut session = Session::open(self.config).await?;
        telemetry::imap_connected(self.channel, &self.config.folder, session.idle);
        let bound = Duration::from_secs(self.config.poll_interval_secs);
        loop {
            self.lease().await?;
            self.look(&mut session).await?;
            *backoff = Backoff(0);
            if self.stop.is_cancelled() {
                session.logout().await;
                return Ok(());
            }
            // Mail that arrived during the look was announced then: look again now.
            if session.heard_of_new_mail() {
                continue;
            }
            if session.idle {
                tokio::select! {
                    idled = session.idle(bound) => session = idled?,
                    _ = self.stop.cancelled() => return Ok(()),
                }
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(bound) => {}
                    _ = self.stop.cancelled() => {
                        session.logout().await;
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Takes every message after the cursor, in UID order, one at a time.
    async fn look(&self, session: &mut Session) -> Result<(), ImapError> {
        let folder = &self.config.folder;
        let imap = self.context.store.imap();
        let selected = session.select(folder).await?;
        let start = match imap.imap_cursor(self.channel, folder).await? {
            Some(cursor) if cursor.uidvalidity == selected.uidvalidity => Some(cursor.last_uid),
            Some(cursor) => {
                tracing::warn!(
                    channel = self.channel,
                    folder,
                    before = cursor.uidvalidity,
                    now = selected.uidvalidity,
                    "The folder's UIDVALIDITY changed (recreated or restored): reading it from the start; messages already stored are recognised by their Message-ID."
                );
                Some(0)
            }
            None => None,
        };
        // A mailbox read for the first time: what a person already read there is not
        // taken (it was dealt with before the channel existed), what is unread is.
        let uids = match start {
            Some(after) => session.uids_after(after, false).await?,
            None => session.uids_after(0, true).await?,
        };
        for uid in uids {
            if self.stop.is_cancelled() {
                break;
            }
            self.lease().await?;
            let taken = match session.fetch(uid).await? {
                Some(raw) => Some(self.take(uid, &raw).await?),
                // Expunged meanwhile: nothing to take, and UIDs are never reused.
                None => None,
            };
            imap.advance_imap_cursor(
                self.channel,
                folder,
                ImapCursor {
                    uidvalidity: selected.uidvalidity,
                    last_uid: uid,
                },
                Utc::now(),
            )
            .await?;
            if let Some(Taken::Stored) = taken {
                session.finish(uid, &self.config.after).await?;
            }
        }
        Ok(())
    }

    /// Parses and stores one message. A store that cannot be reached is an error (the
    /// message is taken again after the reconnect); a message that cannot be parsed or
    /// stored at all is `Unreadable`, so it is not tried forever.
    async fn take(&self, uid: u32, raw: &[u8]) -> Result<Taken, ImapError> {
        let started = Instant::now();
        let folder = &self.config.folder;
        let mut events = match crate::adapters::email::parse_raw(raw) {
            Ok(events) => events,
            Err(e) => {
                telemetry::imap_unreadable(self.channel, folder, uid, &e.to_string());
                return Ok(Taken::Unreadable);
            }
        };
        events.replace_nul();
        telemetry::imap_received(self.channel, events.len());
        if events.is_empty() {
            return Ok(Taken::Stored);
        }
        let runtime = self.context.runtime.load_full();
        let Some(live) = runtime.channel(self.channel).filter(|c| c.config.enabled) else {
            // Disabled or removed by a reload this moment: the supervisor stops this
            // poller; the message waits for the channel to come back.
            return Err(ImapError::Protocol("the channel was disabled".into()));
        };
        let outcomes = match self.context.store.ingest(&live.rules, events).await {
            Ok(outcomes) => outcomes,
            Err(StoreError::Invalid(why)) => {
                telemetry::imap_unreadable(self.channel, folder, uid, &why);
                return Ok(Taken::Unreadable);
            }
            Err(e) => return Err(e.into()),
        };
        let stored = outcomes
            .iter()
            .filter(|o| matches!(o, IngestOutcome::Stored { .. }))
            .count();
        if stored > 0 {
            self.context.wake.notify_one();
        }
        telemetry::webhook_stored(
            self.channel,
            stored,
            outcomes.len() - stored,
            started.elapsed(),
        );
        Ok(Taken::Stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnections_back_off_from_a_second_to_five_minutes_with_jitter() {
        let mut backoff = Backoff(0);
        let waits: Vec<Duration> = (0..12).map(|_| backoff.next()).collect();
        for (wait, base) in waits
            .iter()
            .zip([1u64, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300])
        {
            let base = Duration::from_secs(base);
            assert!(
                *wait >= base.mul_f64(0.8) && *wait <= base.mul_f64(1.2),
                "{wait:?} for {base:?}"
            );
        }
    }

    #[test]
    fn a_lease_outlives_one_idle_and_a_poller_without_it_asks_again_within_seconds() {
        let config: ImapConfig = toml::from_str(
            "host = \"h\"\nusername = \"u\"\npassword = \"p\"\npoll_interval_secs = 1740\n",
        )
        .unwrap();
        assert!(lease_length(&config) > Duration::from_secs(1740) + session::DEADLINE);
        assert_eq!(lease_retry(&config), Duration::from_secs(5));
    }
}
