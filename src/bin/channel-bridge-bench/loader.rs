//! The growth scenario's direct loader: fills a stopped daemon's SQLite database through
//! the store's own ingest sequence, in-process, without HTTP or signatures. The rows are
//! the ones the daemon writes for the same webhooks (the bodies go through the generic
//! adapter's parser), at the writer's pace instead of the HTTP stack's.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use channel_bridge::store::sqlite::SqliteStore;
use channel_bridge::store::{ChannelRules, Store};

/// Events per ingest call: one transaction each, as a webhook carrying a list would be.
const EVENTS_PER_CALL: u64 = 50;
/// Ingest calls in flight: enough to fill the writer's batches.
const CALLERS: usize = 8;

/// What a direct fill took.
pub struct Filled {
    pub messages: u64,
    /// Storing the messages.
    pub ingest: Duration,
    /// Then the search indexer catching up with them.
    pub index: Duration,
}

/// Stores messages `0..messages` of `run_id` (the bodies `body(run_id, i)` gives) on
/// `channel` of the config at `config`, into the SQLite database at `db`, then waits
/// until the search index holds them all. The daemon must be stopped.
pub async fn fill(
    config: &Path,
    db: &Path,
    channel: &str,
    messages: u64,
    body: impl Fn(u64) -> String + Send + Sync + 'static,
) -> anyhow::Result<Filled> {
    let config = channel_bridge::config::load_file(config)
        .map_err(|e| anyhow::anyhow!("the daemon's config: {e}"))?;
    let channel_config = config
        .channels
        .get(channel)
        .with_context(|| format!("no channel {channel:?} in the daemon's config"))?;
    let rules = Arc::new(ChannelRules::new(channel, channel_config, &config));
    let store = Arc::new(SqliteStore::open(db).await?);
    let body = Arc::new(body);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (store, rules, body, next) =
                (store.clone(), rules.clone(), body.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let from = next.fetch_add(EVENTS_PER_CALL, Ordering::Relaxed);
                    if from >= messages {
                        return anyhow::Ok(());
                    }
                    let to = (from + EVENTS_PER_CALL).min(messages);
                    let list = (from..to).map(|i| body(i)).collect::<Vec<_>>().join(",");
                    let events = channel_bridge::adapters::generic::parse_body(
                        format!("[{list}]").as_bytes(),
                    )
                    .map_err(|e| anyhow::anyhow!("a loader body does not parse: {e}"))?;
                    store.ingest(&rules, events).await?;
                }
            })
        })
        .collect();
    let mut last_report = Instant::now();
    for caller in callers {
        while !caller.is_finished() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if last_report.elapsed() >= Duration::from_secs(60) {
                last_report = Instant::now();
                let done = next.load(Ordering::Relaxed).min(messages);
                eprintln!(
                    "direct fill: {done} of {messages} after {:.0} s",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        caller.await??;
    }
    let ingest = started.elapsed();
    // The indexer runs beside the ingest; what it has not reached yet is queued.
    let index_started = Instant::now();
    loop {
        let queued = store.search_backlog().await?;
        if queued == 0 {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(60) {
            last_report = Instant::now();
            eprintln!("direct fill: {queued} messages still to index");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let index = index_started.elapsed();
    store.close().await;
    Ok(Filled {
        messages,
        ingest,
        index,
    })
}
