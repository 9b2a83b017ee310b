//! Logs and metrics. Every notable event is a function here that logs once and counts
//! once, so names and labels stay consistent (vector's `internal_events`). Secrets never
//! reach these functions: callers pass channel ids, reasons and counts only.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Log output format, chosen by `CHANNEL_BRIDGE_LOG_FORMAT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

impl LogFormat {
    pub fn from_env() -> Self {
        match std::env::var("CHANNEL_BRIDGE_LOG_FORMAT").as_deref() {
            Ok("json") => LogFormat::Json,
            _ => LogFormat::Human,
        }
    }
}

/// Installs the global log subscriber (level from `RUST_LOG`, default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: a container log or a file gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The `channel` label of events about a channel the config does not have (a webhook to
/// `/hooks/<anything>`). Each label value is a series kept for the life of the process,
/// so a name chosen by an unauthenticated caller never becomes one; the parentheses keep
/// it apart from every channel id (letters, digits, '-' and '_').
pub const UNKNOWN_CHANNEL: &str = "(unknown)";

/// The Prometheus registry of this process (installed on first use).
pub fn metrics() -> &'static PrometheusHandle {
    METRICS.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ])
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Only one recorder per process; tests build several apps and share this one.
        let _ = metrics::set_global_recorder(recorder);
        gauge!("channel_bridge_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

/// Describes every metric and starts each channel's series at zero, so dashboards and
/// alerts see them before the first event. Called at start-up and after each reload.
pub fn register(channels: &[String]) {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "channel_bridge_webhooks_received_total",
        "Webhooks verified and parsed, by channel."
    );
    describe_counter!(
        "channel_bridge_webhooks_rejected_total",
        "Webhooks refused, by channel and reason (the error code)."
    );
    describe_counter!(
        "channel_bridge_messages_stored_total",
        "Inbound messages stored, by channel."
    );
    describe_counter!(
        "channel_bridge_messages_duplicate_total",
        "Redelivered inbound messages acknowledged without storing."
    );
    describe_histogram!(
        "channel_bridge_ingest_seconds",
        "Time from receiving a webhook to its commit."
    );
    describe_histogram!("channel_bridge_webhook_events", "Events per webhook.");
    describe_histogram!(
        "channel_bridge_commit_batch_size",
        "Requests committed together by one SQLite transaction."
    );
    describe_counter!(
        "channel_bridge_deliveries_total",
        "Delivery attempts, by channel and outcome (sent, retry, dead, released)."
    );
    describe_histogram!(
        "channel_bridge_delivery_seconds",
        "Duration of delivery attempts."
    );
    describe_histogram!(
        "channel_bridge_reply_pace_seconds",
        "How long replies waited for their channel's outbox to catch up (backpressure), \
         by channel and result: eased (it caught up) or timed_out (accepted after \
         delivery.pace_max_wait_ms)."
    );
    describe_gauge!(
        "channel_bridge_queue_pending_jobs",
        "Outbox jobs waiting to run."
    );
    describe_gauge!(
        "channel_bridge_queue_dead_jobs",
        "Dead-lettered outbox jobs."
    );
    describe_gauge!(
        "channel_bridge_queue_oldest_due_seconds",
        "How long the longest-waiting due job has been due."
    );
    describe_counter!(
        "channel_bridge_config_reload_total",
        "Config reloads, by result (ok, error)."
    );
    describe_counter!(
        "channel_bridge_requests_shed_total",
        "Requests answered 503 overloaded, by budget: webhooks (server.max_concurrent_webhooks), \
         api (server.max_concurrent_requests), console (server.max_concurrent_console)."
    );
    describe_gauge!(
        "channel_bridge_build_info",
        "Always 1; the version label names the build."
    );
    describe_counter!(
        "channel_bridge_assignments_total",
        "Routing decisions for new and reopened conversations, by rule and result \
         (assigned, unassigned), and waiting conversations assigned later."
    );
    describe_gauge!(
        "channel_bridge_open_conversations",
        "Open conversations, by channel."
    );
    describe_counter!(
        "channel_bridge_owner_emails_skipped_total",
        "Inbound messages for an offline contact owner that were not emailed, by channel \
         and reason (no_address, no_smtp)."
    );
    describe_counter!(
        "channel_bridge_imap_messages_total",
        "Messages read from an email channel's IMAP mailbox and parsed, by channel."
    );
    describe_counter!(
        "channel_bridge_imap_unreadable_total",
        "IMAP messages that could not be parsed or stored, left in the mailbox unflagged, \
         by channel (each logged at ERROR with its UID)."
    );
    describe_counter!(
        "channel_bridge_imap_errors_total",
        "Failed IMAP sessions (reconnected after a backoff), by channel and reason \
         (connect, tls, login, protocol, store)."
    );
    for result in ["ok", "error"] {
        counter!("channel_bridge_config_reload_total", "result" => result).increment(0);
    }
    for budget in ["webhooks", "api", "console"] {
        counter!("channel_bridge_requests_shed_total", "budget" => budget).increment(0);
    }
    let _ = histogram!("channel_bridge_commit_batch_size");
    for rule in ["nobody", "users_and_teams", "contact_owner"] {
        for result in ["assigned", "unassigned"] {
            counter!("channel_bridge_assignments_total", "rule" => rule, "result" => result)
                .increment(0);
        }
    }
    for channel in channels {
        let channel = channel.to_owned();
        counter!("channel_bridge_webhooks_received_total", "channel" => channel.clone())
            .increment(0);
        counter!("channel_bridge_messages_stored_total", "channel" => channel.clone()).increment(0);
        counter!("channel_bridge_messages_duplicate_total", "channel" => channel.clone())
            .increment(0);
        // Registered, not recorded: each histogram shows with a count of zero.
        let _ = histogram!("channel_bridge_ingest_seconds", "channel" => channel.clone());
        let _ = histogram!("channel_bridge_webhook_events", "channel" => channel.clone());
        let _ = histogram!("channel_bridge_delivery_seconds", "channel" => channel.clone());
        let _ = histogram!("channel_bridge_reply_pace_seconds", "channel" => channel.clone(), "result" => "eased");
        gauge!("channel_bridge_open_conversations", "channel" => channel.clone()).increment(0.0);
        for outcome in ["sent", "retry", "dead"] {
            counter!("channel_bridge_deliveries_total", "channel" => channel.clone(), "outcome" => outcome)
                .increment(0);
        }
    }
}

/// A webhook passed verification and parsing and is about to be stored.
pub fn webhook_received(channel: &str, events: usize) {
    counter!("channel_bridge_webhooks_received_total", "channel" => channel.to_owned())
        .increment(1);
    histogram!("channel_bridge_webhook_events", "channel" => channel.to_owned())
        .record(events as f64);
}

/// A webhook was answered with an error; `reason` is the error code sent back. `channel`
/// is a configured channel's id or [`UNKNOWN_CHANNEL`], never a name from the request.
pub fn webhook_rejected(channel: &str, reason: &'static str, detail: &str) {
    tracing::warn!(channel, reason, detail, "Rejected a webhook.");
    counter!("channel_bridge_webhooks_rejected_total", "channel" => channel.to_owned(), "reason" => reason)
        .increment(1);
}

/// A webhook's events were committed.
pub fn webhook_stored(channel: &str, stored: usize, duplicates: usize, elapsed: Duration) {
    tracing::debug!(channel, stored, duplicates, "Stored webhook events.");
    counter!("channel_bridge_messages_stored_total", "channel" => channel.to_owned())
        .increment(stored as u64);
    counter!("channel_bridge_messages_duplicate_total", "channel" => channel.to_owned())
        .increment(duplicates as u64);
    histogram!("channel_bridge_ingest_seconds", "channel" => channel.to_owned())
        .record(elapsed.as_secs_f64());
}

/// An IMAP poller logged in and reads its folder (with IDLE, or by polling).
pub fn imap_connected(channel: &str, folder: &str, idle: bool) {
    tracing::info!(channel, folder, idle, "Reading the IMAP mailbox.");
}

/// An IMAP message was fetched and parsed into this many events.
pub fn imap_received(channel: &str, events: usize) {
    counter!("channel_bridge_imap_messages_total", "channel" => channel.to_owned()).increment(1);
    histogram!("channel_bridge_webhook_events", "channel" => channel.to_owned())
        .record(events as f64);
}

/// An IMAP message could not be parsed or stored: it stays in the mailbox, unflagged,
/// and the cursor moves past it, so it is not tried forever. An operator must look.
pub fn imap_unreadable(channel: &str, folder: &str, uid: u32, reason: &str) {
    tracing::error!(
        channel,
        folder,
        uid,
        reason,
        "An IMAP message cannot be taken; it stays in the mailbox, unflagged, and is not tried again."
    );
    counter!("channel_bridge_imap_unreadable_total", "channel" => channel.to_owned()).increment(1);
}

/// An IMAP session failed; the poller reconnects after `wait`. `detail` holds no secret
/// (the server's login answer is redacted where it is read).
pub fn imap_failed(
    channel: &str,
    folder: &str,
    reason: &'static str,
    detail: &str,
    wait: Duration,
) {
    tracing::warn!(
        channel,
        folder,
        reason,
        detail,
        retry_in_ms = wait.as_millis() as u64,
        "IMAP mailbox unavailable; reconnecting."
    );
    counter!("channel_bridge_imap_errors_total", "channel" => channel.to_owned(), "reason" => reason)
        .increment(1);
}

/// A platform delivered an edit ordered before the one its message shows: kept out.
pub fn stale_edit(channel: &str, platform_message_id: &str) {
    tracing::info!(
        channel,
        platform_message_id,
        "Ignored a stale edit: the message shows a later one."
    );
}

/// The writer committed a batch of this many requests in one transaction.
pub fn record_batch(size: usize) {
    histogram!("channel_bridge_commit_batch_size").record(size as f64);
}

/// A reply was paced: it waited for its channel's outbox (see `outbox::pacing`).
pub fn reply_paced(channel: &str, paced: crate::outbox::pacing::Paced) {
    use crate::outbox::pacing::Paced;
    let (result, waited) = match paced {
        Paced::AtOnce => return,
        Paced::Eased(waited) => ("eased", waited),
        Paced::TimedOut(waited) => ("timed_out", waited),
    };
    tracing::debug!(
        channel,
        result,
        waited_ms = waited.as_millis() as u64,
        "Reply paced."
    );
    histogram!("channel_bridge_reply_pace_seconds", "channel" => channel.to_owned(), "result" => result)
        .record(waited.as_secs_f64());
}

/// One delivery attempt ended; `outcome` is sent, retry, dead or released.
pub fn delivery_attempt(
    channel: &str,
    job: &str,
    outcome: &'static str,
    error: Option<&str>,
    elapsed: Duration,
) {
    match (outcome, error) {
        ("dead", Some(error)) => {
            tracing::error!(
                channel,
                job,
                error,
                "Delivery dead-lettered; retry it with POST /api/v1/deliveries/{{id}}/retry."
            )
        }
        (_, Some(error)) => {
            tracing::warn!(channel, job, outcome, error, "Delivery attempt failed.")
        }
        _ => tracing::debug!(channel, job, outcome, "Delivery attempt finished."),
    }
    counter!("channel_bridge_deliveries_total", "channel" => channel.to_owned(), "outcome" => outcome)
        .increment(1);
    histogram!("channel_bridge_delivery_seconds", "channel" => channel.to_owned())
        .record(elapsed.as_secs_f64());
}

/// The outbox's pending and dead job counts and the age of the oldest due job.
pub fn queue_depth(pending: u64, dead: u64, oldest_due_age: Duration) {
    gauge!("channel_bridge_queue_pending_jobs").set(pending as f64);
    gauge!("channel_bridge_queue_dead_jobs").set(dead as f64);
    gauge!("channel_bridge_queue_oldest_due_seconds").set(oldest_due_age.as_secs_f64());
}

/// Open conversations per channel as counted now; `channels` (the configured ones) not
/// in `counts` have none, so their gauge goes back to zero. Channels no longer configured
/// count together under [`UNKNOWN_CHANNEL`].
pub fn open_conversations(channels: &[String], counts: &[(String, u64)]) {
    let mut unknown = 0;
    for channel in channels {
        if !counts.iter().any(|(c, _)| c == channel) {
            gauge!("channel_bridge_open_conversations", "channel" => channel.clone()).set(0.0);
        }
    }
    for (channel, n) in counts {
        if channels.contains(channel) {
            gauge!("channel_bridge_open_conversations", "channel" => channel.clone())
                .set(*n as f64);
        } else {
            unknown += n;
        }
    }
    gauge!("channel_bridge_open_conversations", "channel" => UNKNOWN_CHANNEL).set(unknown as f64);
}

/// Routing decided about a new or reopened conversation under `rule`.
pub fn routed(rule: &'static str, assigned: bool) {
    let result = if assigned { "assigned" } else { "unassigned" };
    counter!("channel_bridge_assignments_total", "rule" => rule, "result" => result).increment(1);
}

/// A message for the contact's offline owner was not emailed (`no_address`, `no_smtp`):
/// the owner learns of it only when they come online.
pub fn owner_not_emailed(channel: &str, conversation: &str, reason: &'static str) {
    tracing::warn!(
        channel,
        conversation_id = conversation,
        reason,
        "Did not email the offline contact owner: set their email in [[reps]] (and [smtp])."
    );
    counter!("channel_bridge_owner_emails_skipped_total", "channel" => channel.to_owned(), "reason" => reason)
        .increment(1);
}

/// What `check-config` warns about in a valid config, logged when it is applied (at
/// start-up and on each reload) so it is seen where the daemon runs.
pub fn config_warnings(config: &crate::config::Config) {
    for warning in crate::config::warnings(config) {
        tracing::warn!(key = %warning.key, "Config: {}", warning.message);
    }
}

/// Waiting conversations of round-robin channels were assigned when a rep became free.
pub fn backfilled(assigned: usize) {
    if assigned > 0 {
        tracing::info!(assigned, "Assigned waiting conversations.");
    }
    counter!("channel_bridge_assignments_total", "rule" => "users_and_teams", "result" => "assigned")
        .increment(assigned as u64);
}

/// A config reload was applied (`ok`) or refused (`error`).
pub fn config_reload(result: &'static str) {
    counter!("channel_bridge_config_reload_total", "result" => result).increment(1);
}

/// A request was shed (503 `overloaded`): its budget (`webhooks`, `api` or `console`)
/// was used up.
pub fn request_shed(budget: &'static str) {
    counter!("channel_bridge_requests_shed_total", "budget" => budget).increment(1);
}
