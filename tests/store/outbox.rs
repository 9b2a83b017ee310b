//! The outbox: leasing (one job per conversation in flight, oldest due first), how an
//! attempt ends, leases that expire or are given back, dead letters and their retry, and
//! the figures workers and metrics read.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use channel_bridge::model::{ConversationId, DeliveryStatus, JobId, MessageId};
use channel_bridge::store::{JobOutcome, JobState, PageRequest, Store, StoreError};
use chrono::{Duration, Utc};

use crate::support::*;

conformance!(
    jobs_of_one_conversation_are_leased_one_at_a_time_in_order,
    due_jobs_are_leased_oldest_due_first_up_to_the_limit,
    a_job_not_yet_due_waits_for_its_time,
    only_jobs_of_the_requested_channels_are_leased,
    a_sent_job_is_done_and_its_message_is_sent,
    a_retried_job_waits_for_its_time_and_keeps_its_conversation_waiting,
    a_dead_letter_fails_its_message_and_no_longer_holds_its_conversation_back,
    a_retried_dead_letter_goes_out_before_the_later_replies_of_its_conversation,
    a_released_job_is_leased_again_at_once_untouched,
    an_expired_lease_is_taken_over_and_only_the_new_holder_may_finish_the_job,
    release_leases_gives_back_only_that_owners_leases,
    dead_letters_are_listed_page_by_page_and_a_retry_starts_one_afresh,
    retrying_a_job_waiting_out_its_backoff_makes_it_due_now_but_not_one_being_sent,
    next_due_is_when_the_first_job_that_may_run_falls_due,
    queue_stats_count_pending_and_dead_jobs_and_the_oldest_due_age,
);

/// One conversation per user on "chat".
async fn conversations(store: &dyn Store, users: &[&str]) -> Vec<ConversationId> {
    let mut out = Vec::new();
    for user in users {
        out.push(open_conversation(store, &rules("chat"), user).await);
    }
    out
}

fn messages_of(jobs: &[channel_bridge::store::Job]) -> BTreeSet<MessageId> {
    jobs.iter().map(message_of).collect()
}

async fn jobs_of_one_conversation_are_leased_one_at_a_time_in_order(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let [a, b] = <[_; 2]>::try_from(conversations(&*store, &["ana", "bo"]).await).unwrap();
    let a1 = reply(&*store, &a, "a1").await.id;
    let a2 = reply(&*store, &a, "a2").await.id;
    let a3 = reply(&*store, &a, "a3").await.id;
    let b1 = reply(&*store, &b, "b1").await.id;

    let first = lease(&*store, "w", &["chat"]).await;
    assert_eq!(
        messages_of(&first),
        BTreeSet::from([a1.clone(), b1.clone()])
    );
    assert!(lease(&*store, "w", &["chat"]).await.is_empty());

    let job = |id: &MessageId| first.iter().find(|j| &message_of(j) == id).unwrap().clone();
    store.finish_job(&job(&a1), "w", sent("p1")).await.unwrap();
    let next = lease(&*store, "w", &["chat"]).await;
    assert_eq!(messages_of(&next), BTreeSet::from([a2.clone()]));
    store.finish_job(&job(&b1), "w", sent("p2")).await.unwrap();
    assert!(lease(&*store, "w", &["chat"]).await.is_empty());
    store.finish_job(&next[0], "w", sent("p3")).await.unwrap();
    let last = lease(&*store, "w", &["chat"]).await;
    assert_eq!(messages_of(&last), BTreeSet::from([a3]));
}

async fn due_jobs_are_leased_oldest_due_first_up_to_the_limit(store: Arc<dyn Store>, _: &Backend) {
    let cs = conversations(&*store, &["ana", "bo", "cy"]).await;
    let now = Utc::now();
    let one = reply_at(&*store, &cs[0], "due 1 s ago", now - Duration::seconds(1)).await;
    let three = reply_at(&*store, &cs[1], "due 3 s ago", now - Duration::seconds(3)).await;
    let two = reply_at(&*store, &cs[2], "due 2 s ago", now - Duration::seconds(2)).await;

    let mut request = lease_request("w", &["chat"], now);
    request.limit = 2;
    let jobs = store.lease_jobs(&request).await.unwrap();
    // Each says when it fell due: the reply API's pacing measures waits from it.
    let due = |id: &MessageId| {
        let job = jobs.iter().find(|j| &message_of(j) == id).expect("leased");
        job.due_at.timestamp_millis()
    };
    assert_eq!(
        due(&three.id),
        (now - Duration::seconds(3)).timestamp_millis()
    );
    assert_eq!(
        due(&two.id),
        (now - Duration::seconds(2)).timestamp_millis()
    );
    assert_eq!(messages_of(&jobs), BTreeSet::from([three.id, two.id]));
    let rest = store.lease_jobs(&request).await.unwrap();
    assert_eq!(messages_of(&rest), BTreeSet::from([one.id]));
}

async fn a_job_not_yet_due_waits_for_its_time(store: Arc<dyn Store>, _: &Backend) {
    let [c] = <[_; 1]>::try_from(conversations(&*store, &["ana"]).await).unwrap();
    let now = Utc::now();
    let later = reply_at(&*store, &c, "later", now + Duration::hours(1)).await;
    assert!(lease(&*store, "w", &["chat"]).await.is_empty());
    let jobs = store
        .lease_jobs(&lease_request("w", &["chat"], now + Duration::hours(2)))
        .await
        .unwrap();
    assert_eq!(messages_of(&jobs), BTreeSet::from([later.id]));
    assert_eq!(jobs[0].attempts, 0);
    assert_eq!(jobs[0].channel_id, "chat");
}

async fn only_jobs_of_the_requested_channels_are_leased(store: Arc<dyn Store>, _: &Backend) {
    let chat = open_conversation(&*store, &rules("chat"), "ana").await;
    let wa = open_conversation(&*store, &rules("wa"), "ana").await;
    let on_chat = reply(&*store, &chat, "chat").await.id;
    let on_wa = reply(&*store, &wa, "wa").await.id;

    assert!(lease(&*store, "w", &[]).await.is_empty());
    assert!(lease(&*store, "w", &["sms"]).await.is_empty());
    let jobs = lease(&*store, "w", &["wa"]).await;
    assert_eq!(messages_of(&jobs), BTreeSet::from([on_wa]));
    assert_eq!(jobs[0].channel_id, "wa");
    let jobs = lease(&*store, "w", &["chat", "wa"]).await;
    assert_eq!(messages_of(&jobs), BTreeSet::from([on_chat]));
}

async fn a_sent_job_is_done_and_its_message_is_sent(store: Arc<dyn Store>, _: &Backend) {
    let [c] = <[_; 1]>::try_from(conversations(&*store, &["ana"]).await).unwrap();
    let with_id = reply(&*store, &c, "one").await;
    let jobs = lease(&*store, "w", &["chat"]).await;
    let outcome = JobOutcome::Sent {
        platform_message_id: Some("out-1".into()),
        note: Some("the sticker went out as a link".into()),
    };
    store.finish_job(&jobs[0], "w", outcome).await.unwrap();
    let message = store.message(&with_id.id).await.unwrap();
    assert_eq!(message.delivery.status, DeliveryStatus::Sent);
    assert_eq!(message.platform_message_id.as_deref(), Some("out-1"));
    assert_eq!(
        message.delivery.note.as_deref(),
        Some("the sticker went out as a link")
    );
    assert_eq!(
        (message.delivery.attempts, message.delivery.error),
        (1, None)
    );
    let pending = store
        .deliveries(JobState::Pending, &page(10))
        .await
        .unwrap();
    assert!(pending.items.is_empty(), "a sent job is gone");
    assert_eq!(store.queue_stats().await.unwrap().pending, 0);

    // Some platforms give no id for what they took.
    let without_id = reply(&*store, &c, "two").await;
    let jobs = lease(&*store, "w", &["chat"]).await;
    let outcome = JobOutcome::Sent {
        platform_message_id: None,
        note: None,
    };
    store.finish_job(&jobs[0], "w", outcome).await.unwrap();
    let message = store.message(&without_id.id).await.unwrap();
    assert_eq!(message.delivery.status, DeliveryStatus::Sent);
    assert_eq!(message.platform_message_id, None);
    assert!(lease(&*store, "w", &["chat"]).await.is_empty());
}

async fn a_retried_job_waits_for_its_time_and_keeps_its_conversation_waiting(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let [c] = <[_; 1]>::try_from(conversations(&*store, &["ana"]).await).unwrap();
    let first = reply(&*store, &c, "first").await.id;
    reply(&*store, &c, "second").await;
    let jobs = lease(&*store, "w", &["chat"]).await;
    let at = Utc::now() + Duration::minutes(1);
    let retry = JobOutcome::Retry {
        at,
        error: "HTTP 503".into(),
    };
    store.finish_job(&jobs[0], "w", retry).await.unwrap();

    let message = store.message(&first).await.unwrap();
    assert_eq!(message.delivery.status, DeliveryStatus::Queued);
    assert_eq!(message.delivery.error.as_deref(), Some("HTTP 503"));
    assert_eq!(message.delivery.attempts, 1);
    let listed = &store
        .deliveries(JobState::Pending, &page(10))
        .await
        .unwrap()
        .items[0];
    assert_eq!(listed.message_id.as_ref(), Some(&first));
    assert_eq!(listed.attempts, 1);
    assert_eq!(listed.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(listed.run_at, to_ms(at));

    // Neither it (not due) nor the reply after it (behind it) may run now.
    assert!(lease(&*store, "w", &["chat"]).await.is_empty());
    let later = store
        .lease_jobs(&lease_request("w", &["chat"], at + Duration::seconds(1)))
        .await
        .unwrap();
    assert_eq!(messages_of(&later), BTreeSet::from([first]));
    assert_eq!(later[0].attempts, 1);
}

async fn a_dead_letter_fails_its_message_and_no_longer_holds_its_conversation_back(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let [c] = <[_; 1]>::try_from(conversations(&*store, &["ana"]).await).unwrap();
    let first = reply(&*store, &c, "first").await.id;
    let second = reply(&*store, &c, "second").await.id;
    let jobs = lease(&*store, "w", &["chat"]).await;
    let dead = JobOutcome::Dead {
        error: "HTTP 400: no such chat".into(),
    };
    store.finish_job(&jobs[0], "w", dead).await.unwrap();

    let message = store.message(&first).await.unwrap();
    assert_eq!(message.delivery.status, DeliveryStatus::Failed);
    assert_eq!(
        message.delivery.error.as_deref(),
        Some("HTTP 400: no such chat")
    );
    assert_eq!(message.delivery.attempts, 1);
    let dead = store
        .deliveries(JobState::Dead, &page(10))
        .await
        .unwrap()
        .items;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, jobs[0].id);
    assert_eq!(dead[0].state, JobState::Dead);
    assert_eq!(dead[0].attempts, 1);
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("HTTP 400: no such chat")
    );

    let next = lease(&*store, "w", &["chat"]).await;
    assert_eq!(messages_of(&next), BTreeSet::from([second]));
    let stats = store.queue_stats().await.unwrap();
    assert_eq!((stats.pending, stats.dead), (1, 1));
}

async fn a_retried_dead_letter_goes_out_before_the_later_replies_of_its_conversation(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let [c] = <[_; 1]>::try_from(conversations(&*store, &["ana"]).await).unwrap();
    let first = reply(&*store, &c, "first").await.id;
    let second = reply(&*store, &c, "second").await.id;
    let third = reply(&*store, &c, "third").await.id;
    let sent = || JobOutcome::Sent {
        platform_message_id: None,
        note: None,
    };
    let jobs = lease(&*store, "w", &["chat"]).await;
    assert_eq!(messages_of(&jobs), BTreeSet::from([first.clone()]));
    let dead = JobOutcome::Dead {
        error: "HTTP 400".into(),
    };
    store.finish_job(&jobs[0], "w", dead).await.unwrap();
    let jobs2 = lease(&*store, "w", &["chat"]).await;
    assert_eq!(messages_of(&jobs2), BTreeSet::from([second]));
    store.finish_job(&jobs2[0], "w", sent()).await.unwrap();

    // The operator retries the first reply: it is older than the third, so it goes first.
    store.retry_delivery(&jobs[0].id, Utc::now()).await.unwrap();
    let retried = lease(&*store, "w", &["chat"]).await;
    assert_eq!(messages_of(&retried), BTreeSet::from([first]));
    assert!(lease(&*store, "w2", &["chat"]).await.is_empty());
    store.finish_job(&retried[0], "w", sent()).await.unwrap();
    assert_eq!(
        messages_of(&lease(&*store, "w", &["chat"]).await),
        BTreeSet::from([third])
    );
}

async fn a_released_job_is_leased_again_at_once_untouched(store: Arc<dyn Store>, _: &Backend) {
    let [c] = <[_; 1]>::try_from(conversations(&*store, &["ana"]).await).unwrap();
    let first = reply(&*store, &c, "first").await.id;
    let jobs = lease(&*store, "w", &["chat"]).await;
    store
        .finish_job(&jobs[0], "w", JobOutcome::Released)
        .await
        .unwrap();
    let message = store.message(&first).await.unwrap();
    assert_eq!(message.delivery.status, DeliveryStatus::Queued);
    assert_eq!(message.delivery.attempts, 0);
    let again = lease(&*store, "other", &["chat"]).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, jobs[0].id);
    assert_eq!(again[0].attempts, 0);
}

async fn an_expired_lease_is_taken_over_and_only_the_new_holder_may_finish_the_job(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let [c] = <[_; 1]>::try_from(conversations(&*store, &["ana"]).await).unwrap();
    let message = reply(&*store, &c, "hi").await.id;
    let t = Utc::now();
    let mut short = lease_request("a", &["chat"], t);
    short.lease = StdDuration::from_secs(1);
    let by_a = store.lease_jobs(&short).await.unwrap();
    assert_eq!(by_a.len(), 1);

    let while_held = lease_request("b", &["chat"], t + Duration::milliseconds(500));
    assert!(store.lease_jobs(&while_held).await.unwrap().is_empty());
    let after_expiry = lease_request("b", &["chat"], t + Duration::seconds(2));
    let by_b = store.lease_jobs(&after_expiry).await.unwrap();
    assert_eq!(by_b.len(), 1);
    assert_eq!(by_b[0].id, by_a[0].id);

    match store.finish_job(&by_a[0], "a", sent("from-a")).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("a's lease is gone: expected a conflict, got {other:?}"),
    }
    store
        .finish_job(&by_b[0], "b", sent("from-b"))
        .await
        .unwrap();
    let message = store.message(&message).await.unwrap();
    assert_eq!(message.platform_message_id.as_deref(), Some("from-b"));
    assert_eq!(message.delivery.attempts, 1);
}

async fn release_leases_gives_back_only_that_owners_leases(store: Arc<dyn Store>, _: &Backend) {
    let cs = conversations(&*store, &["ana", "bo"]).await;
    for c in &cs {
        reply(&*store, c, "hi").await;
    }
    let one = |owner: &str| {
        let mut r = lease_request(owner, &["chat"], Utc::now());
        r.limit = 1;
        r
    };
    let by_a = store.lease_jobs(&one("a")).await.unwrap();
    let by_b = store.lease_jobs(&one("b")).await.unwrap();
    assert_eq!((by_a.len(), by_b.len()), (1, 1));

    assert_eq!(store.release_leases("a").await.unwrap(), 1);
    assert_eq!(store.release_leases("nobody").await.unwrap(), 0);
    // a's job runs again at once, long before its lease would have run out; b's is held.
    let by_c = lease(&*store, "c", &["chat"]).await;
    assert_eq!(by_c.len(), 1);
    assert_eq!(by_c[0].id, by_a[0].id);
    assert!(matches!(
        store.finish_job(&by_a[0], "a", sent("late")).await,
        Err(StoreError::Conflict(_))
    ));
    store.finish_job(&by_b[0], "b", sent("ok")).await.unwrap();
}

async fn dead_letters_are_listed_page_by_page_and_a_retry_starts_one_afresh(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let cs = conversations(&*store, &["ana", "bo", "cy"]).await;
    for c in &cs {
        reply(&*store, c, "hi").await;
    }
    for job in lease(&*store, "w", &["chat"]).await {
        let dead = JobOutcome::Dead {
            error: "HTTP 403".into(),
        };
        store.finish_job(&job, "w", dead).await.unwrap();
    }
    let first = store.deliveries(JobState::Dead, &page(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let cursor = first.next_cursor.clone().expect("more to come");
    let second = store
        .deliveries(
            JobState::Dead,
            &PageRequest {
                limit: 2,
                cursor: Some(cursor),
            },
        )
        .await
        .unwrap();
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.next_cursor, None);
    let mut ids: Vec<JobId> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|d| d.id.clone())
        .collect();
    let listed = ids.clone();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    assert_eq!(listed, ids, "oldest first");
    assert!(
        store
            .deliveries(JobState::Pending, &page(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let now = Utc::now();
    let retried = store.retry_delivery(&listed[0], now).await.unwrap();
    assert_eq!(retried.id, listed[0]);
    assert_eq!(retried.state, JobState::Pending);
    assert_eq!(retried.attempts, 0);
    assert_eq!(retried.run_at, to_ms(now));
    let message = retried.message_id.clone().expect("a delivery");
    let message = store.message(&message).await.unwrap();
    assert_eq!(message.delivery.status, DeliveryStatus::Queued);
    assert_eq!(message.delivery.error, None);
    assert_eq!(
        store
            .deliveries(JobState::Dead, &page(10))
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let jobs = lease(&*store, "w", &["chat"]).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].id.clone(), jobs[0].attempts),
        (listed[0].clone(), 0)
    );

    // Only dead letters can be retried.
    assert!(matches!(
        store.retry_delivery(&listed[0], now).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.retry_delivery(&JobId::new(), now).await,
        Err(StoreError::NotFound(_))
    ));
    let bad = PageRequest {
        limit: 2,
        cursor: Some("not-a-cursor".into()),
    };
    assert!(matches!(
        store.deliveries(JobState::Dead, &bad).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn retrying_a_job_waiting_out_its_backoff_makes_it_due_now_but_not_one_being_sent(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let [c] = <[_; 1]>::try_from(conversations(&*store, &["ana"]).await).unwrap();
    let first = reply(&*store, &c, "first").await.id;
    let jobs = lease(&*store, "w", &["chat"]).await;
    let now = Utc::now();
    // Leased: an attempt is under way, so there is nothing to bring forward.
    assert!(matches!(
        store.retry_delivery(&jobs[0].id, now).await,
        Err(StoreError::Conflict(_))
    ));
    let retry = JobOutcome::Retry {
        at: now + Duration::hours(1),
        error: "HTTP 503".into(),
    };
    store.finish_job(&jobs[0], "w", retry).await.unwrap();
    assert!(lease(&*store, "w", &["chat"]).await.is_empty());

    let retried = store.retry_delivery(&jobs[0].id, now).await.unwrap();
    assert_eq!(retried.state, JobState::Pending);
    assert_eq!(retried.run_at, to_ms(now));
    assert_eq!(retried.attempts, 1, "its attempts still count");
    let leased = lease(&*store, "w", &["chat"]).await;
    assert_eq!(messages_of(&leased), BTreeSet::from([first]));
}

async fn next_due_is_when_the_first_job_that_may_run_falls_due(store: Arc<dyn Store>, _: &Backend) {
    let chat = || vec!["chat".to_owned()];
    assert_eq!(store.next_due(&chat()).await.unwrap(), None);
    let cs = conversations(&*store, &["ana", "bo"]).await;
    let wa = open_conversation(&*store, &rules("wa"), "cy").await;
    let t = to_ms(Utc::now());
    reply_at(&*store, &cs[0], "in 10 min", t + Duration::minutes(10)).await;
    reply_at(&*store, &cs[1], "in 5 min", t + Duration::minutes(5)).await;
    reply_at(&*store, &wa, "in 1 min", t + Duration::minutes(1)).await;
    // Due already, but behind the first reply of its conversation: it cannot run yet.
    reply_at(&*store, &cs[0], "behind", t - Duration::minutes(1)).await;

    assert_eq!(
        store.next_due(&chat()).await.unwrap(),
        Some(t + Duration::minutes(5))
    );
    assert_eq!(
        store.next_due(&["wa".to_owned()]).await.unwrap(),
        Some(t + Duration::minutes(1))
    );
    assert_eq!(
        store
            .next_due(&["chat".to_owned(), "wa".to_owned()])
            .await
            .unwrap(),
        Some(t + Duration::minutes(1))
    );
    assert_eq!(store.next_due(&[]).await.unwrap(), None);

    // A leased job is due again when its lease runs out.
    let leased = store
        .lease_jobs(&lease_request("w", &["chat"], t + Duration::minutes(6)))
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(
        store.next_due(&chat()).await.unwrap(),
        Some(t + Duration::minutes(7))
    );
}

async fn queue_stats_count_pending_and_dead_jobs_and_the_oldest_due_age(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    let empty = store.queue_stats().await.unwrap();
    assert_eq!((empty.pending, empty.dead), (0, 0));
    assert_eq!(empty.oldest_due_age, StdDuration::ZERO);

    let cs = conversations(&*store, &["ana", "bo", "cy"]).await;
    let now = Utc::now();
    reply_at(&*store, &cs[0], "overdue", now - Duration::hours(1)).await;
    reply_at(&*store, &cs[1], "not yet due", now + Duration::hours(1)).await;
    reply(&*store, &cs[2], "will die").await;
    // The due ones: the overdue reply goes back untouched, the other dies.
    let jobs = lease(&*store, "w", &["chat"]).await;
    assert_eq!(jobs.len(), 2);
    for job in &jobs {
        let outcome = match store
            .outbound(&message_of(job))
            .await
            .unwrap()
            .conversation_id
        {
            c if c == cs[2] => JobOutcome::Dead {
                error: "gone".into(),
            },
            _ => JobOutcome::Released,
        };
        store.finish_job(job, "w", outcome).await.unwrap();
    }

    let stats = store.queue_stats().await.unwrap();
    assert_eq!((stats.pending, stats.dead), (2, 1));
    assert!(
        stats.oldest_due_age >= StdDuration::from_secs(3600)
            && stats.oldest_due_age < StdDuration::from_secs(3600 + 600),
        "{:?}",
        stats.oldest_due_age
    );
}
