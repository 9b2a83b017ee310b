//! HubSpot's share of the outbox per channel, as `hubspot status` reads it: straight from
//! the database, without the store, while the store (the daemon) has it open.

use std::sync::Arc;

use channel_bridge::store::hubspot::{ChannelQueue, read_queues};
use channel_bridge::store::{ChannelRules, JOB_CHANNEL_HUBSPOT, JobKind, JobOutcome, Store};

use crate::support::*;

conformance!(
    publishes_waiting_and_dead_are_counted_per_channel_beside_the_open_store,
    an_outbox_without_hubspot_jobs_reads_as_no_channels,
);

/// `rules(channel)` linked to a HubSpot channel account: each message queues a publish.
fn linked(channel: &str) -> ChannelRules {
    ChannelRules {
        hubspot_account: Some("2002".into()),
        ..rules(channel)
    }
}

async fn publishes_waiting_and_dead_are_counted_per_channel_beside_the_open_store(
    store: Arc<dyn Store>,
    backend: &Backend,
) {
    for (channel, user) in [("tg", "ana"), ("tg", "bo"), ("wa", "cy")] {
        open_conversation(&*store, &linked(channel), user).await;
    }
    // Unlinked channels queue nothing for HubSpot.
    open_conversation(&*store, &rules("chat"), "di").await;
    // One of wa's publishes is given up.
    let jobs = lease(&*store, "w", &[JOB_CHANNEL_HUBSPOT]).await;
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    let mut dead = None;
    for job in &jobs {
        let JobKind::HubspotPublish { message_id, .. } = &job.kind else {
            panic!("not a publish: {job:?}");
        };
        if store
            .message(message_id)
            .await
            .expect("its message")
            .channel_id
            == "wa"
        {
            dead = Some(job.clone());
        }
    }
    let dead = dead.expect("wa's publish");
    store
        .finish_job(
            &dead,
            "w",
            JobOutcome::Dead {
                error: "HubSpot refused".into(),
            },
        )
        .await
        .expect("dead-lettered");

    let queues = read_queues(&backend.storage()).await.expect("read");

    assert_eq!(
        queues,
        vec![
            ChannelQueue {
                channel_id: Some("tg".into()),
                pending: 2,
                dead: 0,
            },
            ChannelQueue {
                channel_id: Some("wa".into()),
                pending: 0,
                dead: 1,
            },
        ]
    );
}

async fn an_outbox_without_hubspot_jobs_reads_as_no_channels(
    store: Arc<dyn Store>,
    backend: &Backend,
) {
    let conversation = open_conversation(&*store, &rules("chat"), "ana").await;
    reply(
        &*store,
        &conversation,
        "a reply queues a delivery, not a publish",
    )
    .await;

    let queues = read_queues(&backend.storage()).await.expect("read");

    assert!(queues.is_empty(), "{queues:?}");
}
