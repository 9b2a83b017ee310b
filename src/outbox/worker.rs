//! The delivery worker: leases due jobs, sends each through its channel's adapter, and
//! records the outcome. Only the oldest pending job of a conversation is ever leased, so
//! replies leave in order however many run at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::{Pacer, retry};
use crate::adapters::{Receipt, SendError};
use crate::model::{MessageId, ReplaceNul};
use crate::runtime::{LiveChannel, Runtime, SharedRuntime};
use crate::store::{Job, JobKind, JobOutcome, LeaseRequest, Store, StoreError};
use crate::telemetry;

/// The longest pause between tries to record an outcome while the store is unreachable.
const RECORD_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Pause after a store error before leasing again.
const STORE_BACKOFF: Duration = Duration::from_millis(500);
/// How often a publish parked on a de-authorized HubSpot account looks again (a
/// re-authorization event makes it due at once; this is the safety net).
const PARK_RECHECK: Duration = Duration::from_secs(60);
/// How long the signed link to a rep's HubSpot file works: the platform fetches it while
/// the send runs, or soon after.
const SIGNED_URL_LIFETIME_S: u64 = 3600;
/// HubSpot shows a FAILED reason to the rep; a platform's answer can be long.
const MAX_FAILURE_TEXT: usize = 1000;

/// `text` without any secret of the job's channel (or of `[smtp]`, for emails).
fn redact(text: &str, runtime: &Runtime, job: &Job) -> String {
    let mut secrets = runtime
        .channel(&job.channel_id)
        .map(|c| c.config.adapter.secrets())
        .unwrap_or_default();
    let smtp_password = runtime.config.smtp.as_ref().and_then(|smtp| {
        let url = reqwest::Url::parse(smtp.url.expose()).ok()?;
        url.password().map(crate::config::Secret::new)
    });
    if let Some(smtp) = &runtime.config.smtp {
        secrets.push(&smtp.url);
    }
    if let Some(password) = &smtp_password {
        secrets.push(password);
    }
    if let Some(hubspot) = &runtime.hubspot {
        secrets.extend(hubspot.secrets());
    }
    crate::secret::redact(text, &secrets)
}

/// Why an attempt did not send: a classified send failure (retried on the schedule) or
/// an outcome decided before sending.
enum Failure {
    Send(SendError),
    Outcome(JobOutcome),
}

impl From<SendError> for Failure {
    fn from(e: SendError) -> Self {
        Failure::Send(e)
    }
}

pub struct DeliveryWorker {
    store: Arc<dyn Store>,
    runtime: SharedRuntime,
    /// Poked when a job may have become due (a reply was queued, a job finished).
    wake: Arc<Notify>,
    /// Names this process's leases.
    owner: String,
    /// Told how long leased jobs had waited, to pace the reply API.
    pacer: Arc<Pacer>,
}

impl DeliveryWorker {
    pub fn new(
        store: Arc<dyn Store>,
        runtime: SharedRuntime,
        wake: Arc<Notify>,
        pacer: Arc<Pacer>,
    ) -> Self {
        Self {
            store,
            runtime,
            wake,
            pacer,
            owner: format!("worker-{}", ulid::Ulid::new()),
        }
    }

    /// Runs until `shutdown`, then waits up to `grace` for jobs in flight and gives back
    /// the leases of any that did not finish.
    pub async fn run(self, shutdown: CancellationToken, grace: Duration) {
        let this = Arc::new(self);
        let concurrency = this.runtime.load().config.delivery.concurrency;
        let slots = Arc::new(Semaphore::new(concurrency));
        let tracker = TaskTracker::new();
        // Other replicas' commits (PostgreSQL); a pending future when the store has none.
        let mut signal = this.store.job_signal();
        let signalled = async |signal: &mut Option<tokio::sync::watch::Receiver<u64>>| match signal
        {
            Some(rx) => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        };
        while !shutdown.is_cancelled() {
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = this.wake.notified() => {}
                    _ = shutdown.cancelled() => {}
                }
                continue;
            }
            let runtime = this.runtime.load_full();
            let channels = runtime.enabled_channels();
            let request = LeaseRequest {
                owner: this.owner.clone(),
                now: Utc::now(),
                lease: Duration::from_millis(runtime.config.delivery.lease_ms),
                channels: channels.clone(),
                limit: free,
            };
            let jobs = match this.store.lease_jobs(&request).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "Could not lease delivery jobs; trying again.");
                    tokio::select! {
                        _ = tokio::time::sleep(STORE_BACKOFF) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    continue;
                }
            };
            let leased = jobs.len();
            this.pacer.leased(
                jobs.iter().map(|job| {
                    let waited = (request.now - job.due_at).to_std().unwrap_or_default();
                    (job.channel_id.as_str(), waited)
                }),
                leased < free,
                Duration::from_millis(runtime.config.delivery.pace_target_ms),
            );
            for job in jobs {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    break;
                };
                let worker = this.clone();
                tracker.spawn(async move {
                    worker.run_job(job).await;
                    drop(slot);
                    worker.wake.notify_one();
                });
            }
            if leased == free {
                continue;
            }
            // Whatever queues a job wakes the worker; this bound is only a safety net.
            let idle = Duration::from_millis(runtime.config.delivery.poll_ms);
            let wait = match this.store.next_due(&channels).await {
                Ok(Some(at)) => (at - Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(idle),
                Ok(None) => idle,
                Err(_) => STORE_BACKOFF,
            };
            // Only conversation heads count, and a leased head counts from its lease's
            // end, so a wait of zero means something fell due just now.
            tokio::select! {
                _ = this.wake.notified() => {}
                _ = signalled(&mut signal) => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        tracker.close();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!("Delivery jobs still running at shutdown; their leases are given back.");
        }
        match this.store.release_leases(&this.owner).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(released = n, "Gave back unfinished delivery leases."),
            Err(e) => {
                tracing::warn!(error = %e, "Could not give back delivery leases; they expire by themselves.")
            }
        }
    }

    /// One attempt at a job, in the job's span: every line logged while it runs names
    /// the job, its channel and (once known) its conversation.
    async fn run_job(&self, job: Job) {
        let kind = match &job.kind {
            JobKind::Deliver { .. } => "deliver",
            JobKind::Email(_) => "email",
            JobKind::HubspotPublish { .. } => "hubspot_publish",
            JobKind::HubspotStatus { .. } => "hubspot_status",
        };
        // At level ERROR, as the request span: present whatever RUST_LOG lets through.
        let span = tracing::error_span!(
            "job",
            job_id = %job.id,
            kind,
            channel = %job.channel_id,
            conversation_id = tracing::field::Empty,
            attempt = job.attempts + 1,
        );
        self.attempt_and_record(job).instrument(span).await
    }

    async fn attempt_and_record(&self, job: Job) {
        let started = Instant::now();
        let outcome = self.attempt(&job).await;
        let label = match &outcome {
            JobOutcome::Sent { .. } => "sent",
            JobOutcome::Retry { .. } => "retry",
            JobOutcome::Dead { .. } => "dead",
            JobOutcome::Released => "released",
            JobOutcome::Park { .. } => "parked",
        };
        let error = match &outcome {
            JobOutcome::Retry { error, .. } | JobOutcome::Dead { error } => Some(error.clone()),
            _ => None,
        };
        self.record(&job, outcome).await;
        // A job outlives its channel when the channel is taken out of the config.
        let configured = self.runtime.load().channel(&job.channel_id).is_some();
        telemetry::delivery_attempt(
            if configured {
                &job.channel_id
            } else {
                telemetry::UNKNOWN_CHANNEL
            },
            job.id.as_str(),
            label,
            error.as_deref(),
            started.elapsed(),
        );
    }

    async fn attempt(&self, job: &Job) -> JobOutcome {
        let runtime = self.runtime.load_full();
        let sent = match &job.kind {
            JobKind::Deliver { message_id } => {
                let Some(channel) = runtime
                    .channel(&job.channel_id)
                    .filter(|c| c.config.enabled)
                else {
                    // Disabled or removed since it was leased: it waits, untouched.
                    return JobOutcome::Released;
                };
                self.deliver(job, message_id, channel, &runtime).await
            }
            JobKind::Email(email) => {
                let Some(mailer) = &runtime.mailer else {
                    // [smtp] was removed since: the email waits for it to come back.
                    return JobOutcome::Released;
                };
                mailer
                    .send(email)
                    .await
                    .map(|()| Receipt::default())
                    .map_err(Failure::Send)
            }
            JobKind::HubspotPublish { message_id, note } => {
                let Some(client) = runtime.hubspot.clone() else {
                    // [hubspot] was removed since: the publish waits for it to come back.
                    return JobOutcome::Released;
                };
                self.publish_to_hubspot(job, message_id, note.as_ref(), &client, &runtime)
                    .await
            }
            JobKind::HubspotStatus {
                message_id,
                hubspot_message_id,
                status,
                error,
            } => {
                let Some(client) = runtime.hubspot.clone() else {
                    return JobOutcome::Released;
                };
                if let Some(message) = message_id {
                    tracing::Span::current().record("conversation_id", message.as_str());
                }
                report_status(&client, hubspot_message_id, *status, error.as_deref()).await
            }
        };
        match sent {
            Ok(receipt) => JobOutcome::Sent {
                platform_message_id: receipt.platform_message_id,
                note: receipt.note,
            },
            Err(Failure::Outcome(outcome)) => outcome,
            Err(Failure::Send(error)) => {
                // The reason may quote the platform's answer, which may echo a credential
                // (a bot token in the URL): it is stored, listed and logged, so redact it.
                let reason = redact(&error.to_string(), &runtime, job);
                let delay = retry::next_delay(
                    runtime.retry_schedule(),
                    job.attempts + 1,
                    &error,
                    Duration::from_millis(runtime.config.delivery.max_retry_after_ms),
                    retry::jitter(),
                );
                match delay {
                    Some(delay) => JobOutcome::Retry {
                        at: Utc::now() + delay,
                        error: reason,
                    },
                    None => JobOutcome::Dead { error: reason },
                }
            }
        }
    }

    /// Publishes an inbound message into HubSpot (custom-channel mode).
    async fn publish_to_hubspot(
        &self,
        job: &Job,
        message_id: &MessageId,
        note: Option<&crate::store::PublishNote>,
        client: &crate::hubspot::HubspotClient,
        runtime: &Runtime,
    ) -> Result<Receipt, Failure> {
        // The schedule has no delay after this attempt: the next failure dead-letters.
        let last_attempt = runtime
            .retry_schedule()
            .get(job.attempts as usize + 1)
            .is_none();
        match crate::hubspot::publisher::publish(
            self.store.as_ref(),
            client,
            runtime,
            message_id,
            note,
            last_attempt,
        )
        .await
        {
            Ok(receipt) => Ok(receipt),
            Err(crate::hubspot::publisher::PublishError::Send(e)) => Err(Failure::Send(e)),
            Err(crate::hubspot::publisher::PublishError::Gone(why)) => {
                Err(Failure::Outcome(JobOutcome::Dead { error: why }))
            }
            Err(crate::hubspot::publisher::PublishError::Store(e)) => {
                tracing::warn!(job = %job.id, error = %e, "Could not read a message to publish to HubSpot.");
                Err(Failure::Outcome(JobOutcome::Released))
            }
            Err(crate::hubspot::publisher::PublishError::Parked(reason)) => {
                tracing::info!(job = %job.id, %reason, "Publish parked until HubSpot takes messages for its account.");
                Err(Failure::Outcome(JobOutcome::Park {
                    at: Utc::now() + PARK_RECHECK,
                    reason,
                }))
            }
        }
    }

    /// Sends an outbound message through its channel's adapter.
    async fn deliver(
        &self,
        job: &Job,
        message_id: &MessageId,
        channel: &LiveChannel,
        runtime: &Runtime,
    ) -> Result<Receipt, Failure> {
        let read = match &job.outbound {
            Some(outbound) => Ok(outbound.as_ref().clone()),
            None => self.store.outbound(message_id).await,
        };
        let outbound = match read {
            Ok(outbound) => outbound,
            Err(StoreError::NotFound(what)) => {
                return Err(Failure::Outcome(JobOutcome::Dead {
                    error: format!("{what} no longer exists"),
                }));
            }
            Err(StoreError::Invalid(reason)) => {
                return Err(Failure::Outcome(JobOutcome::Dead { error: reason }));
            }
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "Could not load a message to deliver.");
                return Err(Failure::Outcome(JobOutcome::Released));
            }
        };
        tracing::Span::current().record("conversation_id", outbound.conversation_id.as_str());
        let outbound = fresh_hubspot_links(outbound, runtime).await?;
        channel.adapter.send(&outbound).await.map_err(Failure::Send)
    }

    /// Writes the outcome, retrying for as long as the store is unreachable: a sent
    /// message whose outcome is lost would be sent again when its lease runs out. (At
    /// shutdown the drain's grace period bounds this.)
    async fn record(&self, job: &Job, mut outcome: JobOutcome) {
        // The platform's answer is outside text: a NUL in it would fail on PostgreSQL and
        // the message would be sent again (model::nul).
        match &mut outcome {
            JobOutcome::Sent {
                platform_message_id,
                note,
            } => {
                platform_message_id.replace_nul();
                note.replace_nul();
            }
            JobOutcome::Retry { error, .. } | JobOutcome::Dead { error } => error.replace_nul(),
            JobOutcome::Park { reason, .. } => reason.replace_nul(),
            JobOutcome::Released => {}
        }
        let mut delay = Duration::from_millis(50);
        loop {
            match self
                .store
                .finish_job(job, &self.owner, outcome.clone())
                .await
            {
                Ok(()) => return,
                Err(StoreError::Unavailable(e) | StoreError::Contended(e)) => {
                    tracing::warn!(job = %job.id, error = %e, "Could not record a delivery outcome; retrying.");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RECORD_BACKOFF_MAX);
                }
                Err(e) => {
                    tracing::warn!(job = %job.id, error = %e, "Could not record a delivery outcome.");
                    return;
                }
            }
        }
    }
}

/// A rep's HubSpot files, as links that work now: each part naming a HubSpot file
/// (`hubspot-file:{id}`, `hubspot::replies`) gets a fresh signed URL from the Files API,
/// so a reply retried hours later still sends its files. The platform fetches the link;
/// nothing is stored.
async fn fresh_hubspot_links(
    mut outbound: crate::model::outbound::Outbound,
    runtime: &Runtime,
) -> Result<crate::model::outbound::Outbound, Failure> {
    for part in &mut outbound.parts {
        let Some(media) = part.media_mut().map(|m| &mut m.media) else {
            continue;
        };
        let Some(file_id) = crate::hubspot::replies::file_id(media).map(str::to_owned) else {
            continue;
        };
        let Some(client) = &runtime.hubspot else {
            return Err(Failure::Send(SendError::Retryable {
                reason: "a HubSpot file needs [hubspot] to be configured".into(),
                retry_after: None,
            }));
        };
        let signed = client
            .signed_url(&file_id, SIGNED_URL_LIFETIME_S)
            .await
            .map_err(|e| Failure::Send(e.into_send_error()))?;
        media.url = Some(signed.url);
        // The platform must fetch the link, not take the reference for one of its own ids.
        media.platform_ref = None;
    }
    Ok(outbound)
}

/// Tells HubSpot what became of a rep's message (`PATCH …/messages/{id}`).
async fn report_status(
    client: &crate::hubspot::HubspotClient,
    hubspot_message_id: &str,
    status: crate::store::hubspot::ReportedStatus,
    error: Option<&str>,
) -> Result<Receipt, Failure> {
    use crate::hubspot::wire::{MessageStatus, StatusType};
    use crate::store::hubspot::ReportedStatus;
    let status_type = match status {
        ReportedStatus::Sent => StatusType::Sent,
        ReportedStatus::Read => StatusType::Read,
        ReportedStatus::Failed => StatusType::Failed,
    };
    let error_message = match status {
        ReportedStatus::Failed => Some(
            error
                .unwrap_or("the platform did not take the message")
                .chars()
                .take(MAX_FAILURE_TEXT)
                .collect(),
        ),
        _ => None,
    };
    client
        .update_message_status(
            hubspot_message_id,
            &MessageStatus {
                status_type,
                error_message,
            },
        )
        .await
        .map(|()| Receipt::default())
        .map_err(|e| Failure::Send(e.into_send_error()))
}
