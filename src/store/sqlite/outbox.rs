//! The outbox tables on SQLite: enqueue, lease, finish, dead letters.

use chrono::DateTime;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::json;

use super::{WriterTx, events};
use crate::model::{DeliveryStatus, JobId, MessageId};
use crate::store::hubspot::ReportedStatus;
use crate::store::sequences::outbox::{self, Attempt, DeliveryTx};
use crate::store::sequences::ready;
use crate::store::{
    Delivery, Job, JobKind, JobOutcome, JobState, LeaseRequest, Page, QueueStats, StoreError,
};

use crate::store::jobs::DELIVERY_COLUMNS;
use crate::store::{JOB_DELIVER as DELIVER, JOB_EMAIL as EMAIL};

pub fn enqueue_delivery(
    conn: &Connection,
    channel: &str,
    conversation: &str,
    message: &MessageId,
    run_at: i64,
    now: i64,
) -> Result<JobId, StoreError> {
    let payload = json!({"message_id": message}).to_string();
    insert_job(conn, DELIVER, channel, conversation, &payload, run_at, now)
}

/// Queues an email; emails of one conversation go out in order.
pub fn enqueue_email(
    conn: &Connection,
    conversation: &str,
    email: &crate::model::outbound::Email,
    now: i64,
) -> Result<JobId, StoreError> {
    let payload = serde_json::to_string(email).map_err(|e| {
        StoreError::Internal(crate::store::Detail::caused_by("cannot encode JSON", e))
    })?;
    let key = format!("email:{conversation}");
    let channel = crate::store::JOB_CHANNEL_SMTP;
    insert_job(conn, EMAIL, channel, &key, &payload, now, now)
}

/// A pending job, the head of its ordering key when nothing else of that key is pending.
pub(super) fn insert_job(
    conn: &Connection,
    kind: &str,
    channel: &str,
    ordering_key: &str,
    payload: &str,
    run_at: i64,
    now: i64,
) -> Result<JobId, StoreError> {
    let id = JobId::new();
    conn.prepare_cached(
        "INSERT INTO jobs (id, kind, channel_id, ordering_key, payload, state, run_at, created_at,
             updated_at, head)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?7, NOT EXISTS (
             SELECT 1 FROM jobs WHERE ordering_key = ?4 AND state = 'pending'))",
    )?
    .execute(params![
        id.as_str(),
        kind,
        channel,
        ordering_key,
        payload,
        run_at,
        now
    ])?;
    Ok(id)
}

pub fn lease(conn: &Connection, request: &LeaseRequest) -> Result<Vec<Job>, StoreError> {
    let now = request.now.timestamp_millis();
    let until = now + request.lease.as_millis() as i64;
    let channels = serde_json::to_string(&request.channels).unwrap_or_else(|_| "[]".into());
    // Only the head (oldest pending job) of each ordering key may run: a later message of
    // the same conversation waits until the one before it is sent or dead.
    let mut statement = conn.prepare_cached(
        "UPDATE jobs SET lease_owner = ?1, lease_until = ?2
         WHERE seq IN (
             SELECT seq FROM jobs
             WHERE state = 'pending' AND head = 1 AND run_at <= ?3 AND lease_until <= ?3
               AND channel_id IN (SELECT value FROM json_each(?4))
             ORDER BY run_at, seq
             LIMIT ?5)
         RETURNING id, kind, channel_id, payload, attempts, run_at",
    )?;
    let rows = statement.query_map(
        params![request.owner, until, now, channels, request.limit as i64],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, u32>(4)?,
                r.get::<_, i64>(5)?,
            ))
        },
    )?;
    let mut jobs = Vec::new();
    for row in rows {
        let (id, kind, channel_id, payload, attempts, run_at) = row?;
        let kind = JobKind::decode(&kind, &payload)?;
        // Read here, where the writer's page cache is warm; a message that cannot be read
        // is left to the worker, whose own read reports why.
        let outbound = match &kind {
            JobKind::Deliver { message_id } => super::queries::outbound(conn, message_id)
                .ok()
                .map(Box::new),
            JobKind::Email(_) | JobKind::HubspotPublish { .. } | JobKind::HubspotStatus { .. } => {
                None
            }
        };
        jobs.push(Job {
            id: JobId::from_stored(id),
            kind,
            channel_id,
            attempts,
            due_at: DateTime::from_timestamp_millis(run_at).unwrap_or_default(),
            outbound,
        });
    }
    Ok(jobs)
}

pub fn next_due(conn: &Connection, channels: &[String]) -> Result<Option<i64>, StoreError> {
    let channels = serde_json::to_string(channels).unwrap_or_else(|_| "[]".into());
    Ok(conn
        .prepare_cached(
            "SELECT MIN(MAX(run_at, lease_until)) FROM jobs
             WHERE state = 'pending' AND head = 1
               AND channel_id IN (SELECT value FROM json_each(?1))",
        )?
        .query_row([channels], |r| r.get::<_, Option<i64>>(0))?)
}

pub fn finish(
    conn: &Connection,
    job: &Job,
    owner: &str,
    outcome: &JobOutcome,
    now: i64,
) -> Result<(), StoreError> {
    let id = job.id.as_str();
    // Every change is conditional on still holding the lease: a job whose lease ran out
    // and was taken by another worker is that worker's to finish.
    let changed = match outcome {
        JobOutcome::Sent { .. } => leave_queue(
            conn,
            "DELETE FROM jobs WHERE id = ?1 AND lease_owner = ?2 RETURNING ordering_key",
            params![id, owner],
        )?,
        JobOutcome::Retry { at, error } => conn
            .prepare_cached(
                "UPDATE jobs SET attempts = attempts + 1, run_at = ?3, last_error = ?4,
                     lease_owner = NULL, lease_until = 0, updated_at = ?5
                 WHERE id = ?1 AND lease_owner = ?2",
            )?
            .execute(params![id, owner, at.timestamp_millis(), error, now])?,
        JobOutcome::Dead { error } => leave_queue(
            conn,
            "UPDATE jobs SET state = 'dead', attempts = attempts + 1, last_error = ?3,
                 lease_owner = NULL, lease_until = 0, updated_at = ?4
             WHERE id = ?1 AND lease_owner = ?2
             RETURNING ordering_key",
            params![id, owner, error, now],
        )?,
        JobOutcome::Released => conn
            .prepare_cached(
                "UPDATE jobs SET lease_owner = NULL, lease_until = 0 WHERE id = ?1 AND lease_owner = ?2",
            )?
            .execute(params![id, owner])?,
        JobOutcome::Park { at, reason } => conn
            .prepare_cached(
                "UPDATE jobs SET run_at = ?3, last_error = ?4, lease_owner = NULL, lease_until = 0,
                     updated_at = ?5
                 WHERE id = ?1 AND lease_owner = ?2",
            )?
            .execute(params![id, owner, at.timestamp_millis(), reason, now])?,
    };
    if changed == 0 {
        return Err(StoreError::Conflict(format!(
            "job {id} is no longer leased by this worker"
        )));
    }
    match &job.kind {
        JobKind::Deliver { message_id } => {
            let tx = &mut WriterTx(conn);
            ready(outbox::record_outcome(tx, job, message_id, outcome, now))
        }
        JobKind::Email(_) | JobKind::HubspotPublish { .. } | JobKind::HubspotStatus { .. } => {
            Ok(())
        }
    }
}

/// Runs `sql`, which takes one job out of the pending queue and returns its ordering key,
/// and passes the key's head on to the next job; how many jobs it took (0 or 1).
fn leave_queue(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<usize, StoreError> {
    let key: Option<Option<String>> = conn
        .prepare_cached(sql)?
        .query_row(params, |r| r.get(0))
        .optional()?;
    if let Some(Some(key)) = &key {
        rehead(conn, key)?;
    }
    Ok(usize::from(key.is_some()))
}

/// Marks the oldest pending job of `key` as its head, and no other: after the head left
/// (sent or dead) or an older job came back (a dead letter retried).
/// Index lookups only: a conversation's queue may be long.
fn rehead(conn: &Connection, key: &str) -> Result<(), StoreError> {
    let first: Option<i64> = conn
        .prepare_cached(
            "SELECT seq FROM jobs WHERE ordering_key = ?1 AND state = 'pending'
             ORDER BY seq LIMIT 1",
        )?
        .query_row([key], |r| r.get(0))
        .optional()?;
    let Some(first) = first else {
        return Ok(());
    };
    conn.prepare_cached(
        "UPDATE jobs SET head = 0
         WHERE ordering_key = ?1 AND state = 'pending' AND head = 1 AND seq <> ?2",
    )?
    .execute(params![key, first])?;
    conn.prepare_cached("UPDATE jobs SET head = 1 WHERE seq = ?1 AND head = 0")?
        .execute([first])?;
    Ok(())
}

impl DeliveryTx for WriterTx<'_> {
    async fn early_reports(
        &mut self,
        channel: &str,
        platform_id: &str,
    ) -> Result<Vec<DeliveryStatus>, StoreError> {
        let mut statement = self.0.prepare_cached(
            "SELECT status FROM status_reports WHERE channel_id = ?1 AND platform_message_id = ?2
             ORDER BY seq",
        )?;
        let mut reports = Vec::new();
        for status in
            statement.query_map(params![channel, platform_id], |r| r.get::<_, String>(0))?
        {
            reports.extend(DeliveryStatus::parse(&status?));
        }
        Ok(reports)
    }

    async fn record_attempt(
        &mut self,
        message: &str,
        outcome: Attempt<'_>,
    ) -> Result<(), StoreError> {
        match outcome {
            Attempt::Sent {
                platform_message_id,
                note,
            } => self
                .0
                .prepare_cached(
                    "UPDATE messages SET platform_message_id = ?2, delivery_error = NULL,
                         delivery_note = ?3, attempts = attempts + 1
                     WHERE id = ?1",
                )?
                .execute(params![message, platform_message_id, note])?,
            Attempt::Failed(error) => self
                .0
                .prepare_cached(
                    "UPDATE messages SET delivery_error = ?2, attempts = attempts + 1 WHERE id = ?1",
                )?
                .execute(params![message, error])?,
            Attempt::Last => self
                .0
                .prepare_cached("UPDATE messages SET attempts = attempts + 1 WHERE id = ?1")?
                .execute([message])?,
        };
        Ok(())
    }

    async fn delivery_updated(
        &mut self,
        message: &str,
        status: DeliveryStatus,
        error: Option<&str>,
        at: i64,
    ) -> Result<(), StoreError> {
        events::delivery_updated(self.0, message, status, error, at)
    }

    async fn report_to_hubspot(
        &mut self,
        message: &str,
        status: ReportedStatus,
        at: i64,
    ) -> Result<(), StoreError> {
        super::hubspot::report_status(self.0, message, status, None, at)
    }
}

pub fn release_all(conn: &Connection, owner: Option<&str>) -> Result<u64, StoreError> {
    let changed = match owner {
        Some(owner) => conn
            .prepare_cached(
                "UPDATE jobs SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = ?1",
            )?
            .execute([owner])?,
        None => conn
            .prepare_cached(
                "UPDATE jobs SET lease_owner = NULL, lease_until = 0 WHERE lease_owner IS NOT NULL",
            )?
            .execute([])?,
    };
    Ok(changed as u64)
}

/// A job row read by `DELIVERY_COLUMNS` as the deliveries API shows it.
fn delivery(row: &Row) -> rusqlite::Result<Delivery> {
    Ok(Delivery::from_row((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
        row.get(11)?,
    )))
}

pub fn list(
    conn: &Connection,
    state: JobState,
    after: i64,
    limit: u32,
) -> Result<Page<Delivery>, StoreError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM jobs WHERE state = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let mut items = Vec::new();
    let mut last_seq = 0i64;
    let mut rows = statement.query(params![state.as_str(), after, limit as i64 + 1])?;
    while let Some(row) = rows.next()? {
        if items.len() == limit as usize {
            return Ok(Page {
                items,
                next_cursor: Some(last_seq.to_string()),
            });
        }
        last_seq = row.get(0)?;
        items.push(delivery(row)?);
    }
    Ok(Page {
        items,
        next_cursor: None,
    })
}

pub fn retry(conn: &Connection, id: &JobId, now: i64) -> Result<Delivery, StoreError> {
    let state: Option<(String, i64)> = conn
        .prepare_cached("SELECT state, lease_until FROM jobs WHERE id = ?1")?
        .query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match state {
        None => return Err(StoreError::NotFound("delivery")),
        Some((state, _)) if state == "dead" => {}
        Some((_, lease_until)) if lease_until > now => {
            return Err(StoreError::Conflict(format!(
                "delivery {id} is being sent right now"
            )));
        }
        Some(_) => {
            // A pending job waiting out its backoff: an operator who fixed the cause
            // should not have to wait for the schedule, so it becomes due now (its
            // attempts still count towards the schedule).
            conn.prepare_cached(
                "UPDATE jobs SET run_at = MIN(run_at, ?2), updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![id.as_str(), now])?;
            let sql = format!("SELECT {DELIVERY_COLUMNS} FROM jobs WHERE id = ?1");
            return Ok(conn
                .prepare_cached(&sql)?
                .query_row([id.as_str()], delivery)?);
        }
    }
    let key: Option<String> = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'pending', attempts = 0, run_at = ?2, lease_owner = NULL,
                 lease_until = 0, updated_at = ?2, head = 1
             WHERE id = ?1
             RETURNING ordering_key",
        )?
        .query_row(params![id.as_str(), now], |r| r.get(0))?;
    if let Some(key) = &key {
        rehead(conn, key)?;
    }
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM jobs WHERE id = ?1");
    let view = conn
        .prepare_cached(&sql)?
        .query_row([id.as_str()], delivery)?;
    // Only a delivery's retry sends its message again; a HubSpot report or publish that
    // names a message leaves it as it is.
    if let Some(message) = view.message_id.as_ref().filter(|_| view.kind == DELIVER) {
        conn.prepare_cached(
            "UPDATE messages SET delivery_status = 'queued', delivery_error = NULL
             WHERE id = ?1 AND delivery_status = 'failed'",
        )?
        .execute([message.as_str()])?;
    }
    Ok(view)
}

pub fn stats(conn: &Connection, now: i64) -> Result<QueueStats, StoreError> {
    let (pending, dead, oldest): (i64, i64, Option<i64>) = conn
        .prepare_cached(
            "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'dead'),
                    MIN(run_at) FILTER (WHERE state = 'pending' AND run_at <= ?1)
             FROM jobs",
        )?
        .query_row([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    // Counted from the partial index that keeps one open conversation per thread.
    let open_conversations = conn
        .prepare_cached(
            "SELECT channel_id, count(*) FROM conversations
             WHERE status = 'open' AND deleted_at IS NULL
             GROUP BY channel_id ORDER BY channel_id",
        )?
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<Result<_, _>>()?;
    Ok(QueueStats {
        open_conversations,
        pending: pending as u64,
        dead: dead as u64,
        oldest_due_age: std::time::Duration::from_millis(
            oldest.map_or(0, |at| (now - at).max(0) as u64),
        ),
    })
}
