//! The outbox shared by every replica: enqueue, lease (`FOR UPDATE SKIP LOCKED`, with a
//! lease expiry), finish, dead letters.

use chrono::DateTime;
use serde_json::json;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use super::{events, get};
use crate::model::{DeliveryStatus, JobId, MessageId};
use crate::store::hubspot::ReportedStatus;
use crate::store::sequences::outbox::{self, Attempt, DeliveryTx};
use crate::store::{
    Delivery, Job, JobKind, JobOutcome, JobState, LeaseRequest, Page, QueueStats, StoreError,
};

use crate::store::jobs::DELIVERY_COLUMNS;
use crate::store::{JOB_DELIVER as DELIVER, JOB_EMAIL as EMAIL};

pub async fn enqueue_delivery(
    c: &mut PgConnection,
    channel: &str,
    conversation: &str,
    message: &MessageId,
    run_at: i64,
    now: i64,
) -> Result<JobId, StoreError> {
    let payload = json!({"message_id": message}).to_string();
    insert_job(c, DELIVER, channel, conversation, &payload, run_at, now).await
}

/// Queues an email; emails of one conversation go out in order.
pub async fn enqueue_email(
    c: &mut PgConnection,
    conversation: &str,
    email: &crate::model::outbound::Email,
    now: i64,
) -> Result<JobId, StoreError> {
    let payload = serde_json::to_string(email).map_err(|e| {
        StoreError::Internal(crate::store::Detail::caused_by("cannot encode JSON", e))
    })?;
    let key = format!("email:{conversation}");
    let channel = crate::store::JOB_CHANNEL_SMTP;
    insert_job(c, EMAIL, channel, &key, &payload, now, now).await
}

/// A pending job, the head of its ordering key when nothing else of that key is pending.
pub(super) async fn insert_job(
    c: &mut PgConnection,
    kind: &str,
    channel: &str,
    ordering_key: &str,
    payload: &str,
    run_at: i64,
    now: i64,
) -> Result<JobId, StoreError> {
    hold_key(c, ordering_key).await?;
    let id = JobId::new();
    sqlx::query(
        "INSERT INTO jobs (id, kind, channel_id, ordering_key, payload, state, run_at, created_at,
             updated_at, head)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $7, NOT EXISTS (
             SELECT 1 FROM jobs WHERE ordering_key = $4 AND state = 'pending'))",
    )
    .bind(id.as_str())
    .bind(kind)
    .bind(channel)
    .bind(ordering_key)
    .bind(payload)
    .bind(run_at)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(id)
}

/// Orders, per ordering key, the statements that decide its head: a new job's "is anything
/// pending?" and the re-head after a job leaves the queue. Under READ COMMITTED, without
/// it, a job queued while its key's head is being finished could see the old head still
/// pending while the finish sees no successor yet, and wait behind nobody for ever. Each
/// transaction takes it after every other lock it takes, so it closes no cycle.
async fn hold_key(c: &mut PgConnection, ordering_key: &str) -> Result<(), StoreError> {
    super::ingest::lock(c, &format!("job\u{1f}{ordering_key}")).await
}

/// Marks the oldest pending job of `key` as its head, and no other: after the head left
/// (sent or dead) or an older job came back (a dead letter retried). Index lookups only:
/// a conversation's queue may be long.
async fn rehead(c: &mut PgConnection, ordering_key: &str) -> Result<(), StoreError> {
    hold_key(c, ordering_key).await?;
    sqlx::query(
        "WITH first AS (
             SELECT seq FROM jobs WHERE ordering_key = $1 AND state = 'pending'
             ORDER BY seq LIMIT 1),
         cleared AS (
             UPDATE jobs SET head = FALSE
             WHERE ordering_key = $1 AND state = 'pending' AND head
               AND seq <> (SELECT seq FROM first))
         UPDATE jobs SET head = TRUE WHERE seq = (SELECT seq FROM first) AND NOT head",
    )
    .bind(ordering_key)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Leases due jobs, only the head (oldest pending job) of each ordering key. Rows another
/// replica is leasing right now are skipped, not waited for; a job whose head is leased
/// elsewhere stays behind it because the head is still pending.
pub async fn lease(c: &mut PgConnection, request: &LeaseRequest) -> Result<Vec<Job>, StoreError> {
    let now = request.now.timestamp_millis();
    let until = now + request.lease.as_millis() as i64;
    let rows = sqlx::query(
        "WITH picked AS (
             SELECT j.seq FROM jobs j
             WHERE j.state = 'pending' AND j.head AND j.run_at <= $3 AND j.lease_until <= $3
               AND j.channel_id = ANY($4)
             ORDER BY j.run_at, j.seq
             LIMIT $5
             FOR UPDATE SKIP LOCKED)
         UPDATE jobs SET lease_owner = $1, lease_until = $2
         FROM picked WHERE jobs.seq = picked.seq
         RETURNING jobs.seq, jobs.id, jobs.kind, jobs.channel_id, jobs.payload, jobs.attempts,
                   jobs.run_at",
    )
    .bind(&request.owner)
    .bind(until)
    .bind(now)
    .bind(&request.channels)
    .bind(request.limit as i64)
    .fetch_all(&mut *c)
    .await?;
    let mut jobs = Vec::with_capacity(rows.len());
    for row in &rows {
        let seq: i64 = get(row, "seq")?;
        let kind: String = get(row, "kind")?;
        let payload: String = get(row, "payload")?;
        jobs.push((
            seq,
            Job {
                id: JobId::from_stored(get(row, "id")?),
                kind: JobKind::decode(&kind, &payload)?,
                channel_id: get(row, "channel_id")?,
                attempts: get::<i32>(row, "attempts")?.max(0) as u32,
                due_at: DateTime::from_timestamp_millis(get(row, "run_at")?).unwrap_or_default(),
                // Read by the worker: with several replicas the lease is the contended part.
                outbound: None,
            },
        ));
    }
    jobs.sort_by_key(|(seq, _)| *seq);
    Ok(jobs.into_iter().map(|(_, job)| job).collect())
}

pub async fn next_due(
    c: &mut PgConnection,
    channels: &[String],
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT MIN(GREATEST(j.run_at, j.lease_until)) FROM jobs j
         WHERE j.state = 'pending' AND j.head AND j.channel_id = ANY($1)",
    )
    .bind(channels)
    .fetch_one(&mut *c)
    .await?)
}

pub async fn finish(
    c: &mut PgConnection,
    job: &Job,
    owner: &str,
    outcome: &JobOutcome,
    now: i64,
) -> Result<(), StoreError> {
    let id = job.id.as_str();
    // Every change is conditional on still holding the lease: a job whose lease ran out
    // and was taken by another worker is that worker's to finish. A send that succeeded
    // still counts after the lease ran out (the database may have been unreachable) as
    // long as nobody else has taken the job, so it is not sent twice.
    // A job that leaves the queue (sent or dead) hands its key's head on, last of all.
    let left = |key: Option<Option<String>>| (u64::from(key.is_some()), key.flatten());
    let (changed, left_key) = match outcome {
        JobOutcome::Sent { .. } => left(
            sqlx::query_scalar(
                "DELETE FROM jobs WHERE id = $1 AND (lease_owner = $2 OR lease_until <= $3)
                 RETURNING ordering_key",
            )
            .bind(id)
            .bind(owner)
            .bind(now)
            .fetch_optional(&mut *c)
            .await?,
        ),
        JobOutcome::Retry { at, error } => (
            sqlx::query(
                "UPDATE jobs SET attempts = attempts + 1, run_at = $3, last_error = $4,
                     lease_owner = NULL, lease_until = 0, updated_at = $5
                 WHERE id = $1 AND lease_owner = $2",
            )
            .bind(id)
            .bind(owner)
            .bind(at.timestamp_millis())
            .bind(error)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected(),
            None,
        ),
        JobOutcome::Dead { error } => left(
            sqlx::query_scalar(
                "UPDATE jobs SET state = 'dead', attempts = attempts + 1, last_error = $3,
                     lease_owner = NULL, lease_until = 0, updated_at = $4
                 WHERE id = $1 AND lease_owner = $2
                 RETURNING ordering_key",
            )
            .bind(id)
            .bind(owner)
            .bind(error)
            .bind(now)
            .fetch_optional(&mut *c)
            .await?,
        ),
        JobOutcome::Released => (
            sqlx::query(
                "UPDATE jobs SET lease_owner = NULL, lease_until = 0 WHERE id = $1 AND lease_owner = $2",
            )
            .bind(id)
            .bind(owner)
            .execute(&mut *c)
            .await?
            .rows_affected(),
            None,
        ),
        JobOutcome::Park { at, reason } => (
            sqlx::query(
                "UPDATE jobs SET run_at = $3, last_error = $4, lease_owner = NULL, lease_until = 0,
                     updated_at = $5
                 WHERE id = $1 AND lease_owner = $2",
            )
            .bind(id)
            .bind(owner)
            .bind(at.timestamp_millis())
            .bind(reason)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected(),
            None,
        ),
    };
    if changed == 0 {
        return Err(StoreError::Conflict(format!(
            "job {id} is no longer leased by this worker"
        )));
    }
    match &job.kind {
        JobKind::Deliver { message_id } => {
            outbox::record_outcome(c, job, message_id, outcome, now).await?
        }
        JobKind::Email(_) | JobKind::HubspotPublish { .. } | JobKind::HubspotStatus { .. } => {}
    }
    if let Some(key) = left_key {
        rehead(c, &key).await?;
    }
    Ok(())
}

impl DeliveryTx for PgConnection {
    async fn early_reports(
        &mut self,
        channel: &str,
        platform_id: &str,
    ) -> Result<Vec<DeliveryStatus>, StoreError> {
        // Ordered against record_status: each report is folded in here or applied there.
        super::ingest::lock(self, &super::ingest::platform_id_key(channel, platform_id)).await?;
        let statuses: Vec<String> = sqlx::query_scalar(
            "SELECT status FROM status_reports
             WHERE channel_id = $1 AND platform_message_id = $2 ORDER BY seq",
        )
        .bind(channel)
        .bind(platform_id)
        .fetch_all(self)
        .await?;
        Ok(statuses
            .iter()
            .filter_map(|s| DeliveryStatus::parse(s))
            .collect())
    }

    async fn record_attempt(
        &mut self,
        message: &str,
        outcome: Attempt<'_>,
    ) -> Result<(), StoreError> {
        let query = match outcome {
            Attempt::Sent {
                platform_message_id,
                note,
            } => sqlx::query(
                "UPDATE messages SET platform_message_id = $2, delivery_error = NULL,
                     delivery_note = $3, attempts = attempts + 1
                 WHERE id = $1",
            )
            .bind(message)
            .bind(platform_message_id)
            .bind(note),
            Attempt::Failed(error) => sqlx::query(
                "UPDATE messages SET delivery_error = $2, attempts = attempts + 1 WHERE id = $1",
            )
            .bind(message)
            .bind(error),
            Attempt::Last => {
                sqlx::query("UPDATE messages SET attempts = attempts + 1 WHERE id = $1")
                    .bind(message)
            }
        };
        query.execute(self).await?;
        Ok(())
    }

    async fn delivery_updated(
        &mut self,
        message: &str,
        status: DeliveryStatus,
        error: Option<&str>,
        at: i64,
    ) -> Result<(), StoreError> {
        events::delivery_updated(self, message, status, error, at).await
    }

    async fn report_to_hubspot(
        &mut self,
        message: &str,
        status: ReportedStatus,
        at: i64,
    ) -> Result<(), StoreError> {
        super::hubspot::report_status(self, message, status, None, at).await
    }
}

/// Gives back the leases `owner` holds. Unlike SQLite, other replicas may hold leases, so
/// only this owner's go; a dead replica's leases run out by themselves.
pub async fn release_all(c: &mut PgConnection, owner: &str) -> Result<u64, StoreError> {
    Ok(
        sqlx::query("UPDATE jobs SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = $1")
            .bind(owner)
            .execute(&mut *c)
            .await?
            .rows_affected(),
    )
}

/// A job row read by `DELIVERY_COLUMNS` as the deliveries API shows it.
fn delivery(row: &PgRow) -> Result<Delivery, StoreError> {
    Ok(Delivery::from_row((
        get(row, "seq")?,
        get(row, "id")?,
        get(row, "kind")?,
        get(row, "state")?,
        get(row, "channel_id")?,
        get(row, "ordering_key")?,
        get(row, "payload")?,
        get::<i32>(row, "attempts")?.max(0) as u32,
        get(row, "last_error")?,
        get(row, "run_at")?,
        get(row, "created_at")?,
        get(row, "updated_at")?,
    )))
}

pub async fn list(
    c: &mut PgConnection,
    state: JobState,
    after: i64,
    limit: u32,
) -> Result<Page<Delivery>, StoreError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM jobs WHERE state = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(state.as_str())
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut *c)
        .await?;
    let more = rows.len() > limit as usize;
    let mut items = Vec::new();
    let mut last_seq = 0i64;
    for row in rows.iter().take(limit as usize) {
        last_seq = get(row, "seq")?;
        items.push(delivery(row)?);
    }
    Ok(Page {
        items,
        next_cursor: more.then(|| last_seq.to_string()),
    })
}

pub async fn retry(c: &mut PgConnection, id: &JobId, now: i64) -> Result<Delivery, StoreError> {
    let state: Option<(String, i64)> =
        sqlx::query_as("SELECT state, lease_until FROM jobs WHERE id = $1 FOR UPDATE")
            .bind(id.as_str())
            .fetch_optional(&mut *c)
            .await?;
    match state {
        None => return Err(StoreError::NotFound("delivery")),
        Some((state, _)) if state == "dead" => {}
        Some((_, lease_until)) if lease_until > now => {
            return Err(StoreError::Conflict(format!(
                "delivery {id} is being sent right now"
            )));
        }
        Some(_) => {
            // A pending job waiting out its backoff becomes due now (see the SQLite store).
            let sql = format!(
                "UPDATE jobs SET run_at = LEAST(run_at, $2), updated_at = $2
                 WHERE id = $1
                 RETURNING {DELIVERY_COLUMNS}"
            );
            let row = sqlx::query(&sql)
                .bind(id.as_str())
                .bind(now)
                .fetch_one(&mut *c)
                .await?;
            return delivery(&row);
        }
    }
    let sql = format!(
        "UPDATE jobs SET state = 'pending', attempts = 0, run_at = $2, lease_owner = NULL,
             lease_until = 0, updated_at = $2
         WHERE id = $1
         RETURNING {DELIVERY_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(id.as_str())
        .bind(now)
        .fetch_one(&mut *c)
        .await?;
    if let Some(key) = get::<Option<String>>(&row, "ordering_key")? {
        rehead(c, &key).await?;
    }
    let view = delivery(&row)?;
    // Only a delivery's retry sends its message again; a HubSpot report or publish that
    // names a message leaves it as it is.
    if let Some(message) = view.message_id.as_ref().filter(|_| view.kind == DELIVER) {
        sqlx::query(
            "UPDATE messages SET delivery_status = 'queued', delivery_error = NULL
             WHERE id = $1 AND delivery_status = 'failed'",
        )
        .bind(message.as_str())
        .execute(&mut *c)
        .await?;
    }
    Ok(view)
}

pub async fn stats(c: &mut PgConnection, now: i64) -> Result<QueueStats, StoreError> {
    let row = sqlx::query(
        "SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
                count(*) FILTER (WHERE state = 'dead') AS dead,
                MIN(run_at) FILTER (WHERE state = 'pending' AND run_at <= $1) AS oldest
         FROM jobs",
    )
    .bind(now)
    .fetch_one(&mut *c)
    .await?;
    let (pending, dead, oldest): (i64, i64, Option<i64>) = (
        get(&row, "pending")?,
        get(&row, "dead")?,
        get(&row, "oldest")?,
    );
    let open_conversations = sqlx::query(
        "SELECT channel_id, count(*) AS open FROM conversations
         WHERE status = 'open' AND deleted_at IS NULL
         GROUP BY channel_id ORDER BY channel_id",
    )
    .fetch_all(&mut *c)
    .await?
    .iter()
    .map(|row| Ok((get(row, "channel_id")?, get::<i64>(row, "open")? as u64)))
    .collect::<Result<_, StoreError>>()?;
    Ok(QueueStats {
        open_conversations,
        pending: pending as u64,
        dead: dead as u64,
        oldest_due_age: std::time::Duration::from_millis(
            oldest.map_or(0, |at| (now - at).max(0) as u64),
        ),
    })
}
