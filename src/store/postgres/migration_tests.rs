//! The schema migrations against databases written by earlier versions, and what only
//! PostgreSQL has to get right: event positions and waking the other replicas.

use chrono::Utc;
use sqlx::Executor;

use super::*;
use crate::store::{LeaseRequest, Store};

/// A fresh schema on the test server, migrated only up to schema `version`, as an older
/// release left it; returns the server URL and the schema.
pub(super) async fn database_at_schema(test: &str, version: usize) -> (Secret, String) {
    let url = std::env::var("CHANNEL_BRIDGE_TEST_PG").expect("CHANNEL_BRIDGE_TEST_PG");
    let schema = format!("mig_{test}_{}", std::process::id());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let quoted = quote_ident(&schema);
    conn.execute(format!("DROP SCHEMA IF EXISTS {quoted} CASCADE; CREATE SCHEMA {quoted}; SET search_path = {quoted}").as_str())
        .await
        .unwrap();
    conn.execute(
        "CREATE TABLE schema_migrations (
             version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .unwrap();
    for (i, sql) in MIGRATIONS[..version].iter().enumerate() {
        conn.execute(*sql).await.unwrap();
        conn.execute(
            format!("INSERT INTO schema_migrations (version) VALUES ({})", i + 1).as_str(),
        )
        .await
        .unwrap();
    }
    (Secret::new(url), schema)
}

pub(super) async fn drop_schema(url: &Secret, schema: &str) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url.expose())
        .await
        .unwrap();
    let quoted = quote_ident(schema);
    conn.execute(format!("DROP SCHEMA {quoted} CASCADE").as_str())
        .await
        .unwrap();
}

/// Opens a store on `schema`, which migrates it the rest of the way.
async fn open(url: &Secret, schema: &str) -> PgStore {
    PgStore::open(url, Some(schema), 4).await.unwrap()
}

/// A store on a fresh schema with every migration applied.
async fn fresh_store(test: &str) -> (PgStore, Secret, String) {
    let (url, schema) = database_at_schema(test, MIGRATIONS.len()).await;
    (open(&url, &schema).await, url, schema)
}

/// Closes `stores` and drops their schema.
async fn dispose(stores: &[&PgStore], url: &Secret, schema: &str) {
    for store in stores {
        store.close().await;
    }
    drop_schema(url, schema).await;
}

/// Queued jobs written before job heads lease in the same order after them: the oldest
/// pending job of each key, and nothing behind it.
#[tokio::test]
#[cfg_attr(
    not(pg_tests),
    ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
)]
async fn the_job_heads_migration_keeps_queue_order() {
    let heads = include_str!("../../../migrations/postgres/0011_job_heads.sql");
    let before = MIGRATIONS.iter().position(|m| *m == heads).unwrap();
    let (url, schema) = database_at_schema("job_heads", before).await;
    {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url.expose())
            .await
            .unwrap();
        let mut seed = format!("SET search_path = {};", quote_ident(&schema));
        // Two queued publishes in conv_a (oldest first), one in conv_b.
        for (n, conv) in [(1, "conv_a"), (2, "conv_b"), (3, "conv_a")] {
            seed += &format!(
                "INSERT INTO jobs (id, kind, channel_id, ordering_key, payload, state, run_at,
                     created_at, updated_at)
                     VALUES ('job_{n}', '{}', '@hubspot', 'hubspot:{conv}',
                         '{{\"message_id\":\"msg_{n}\"}}', 'pending', 0, 2, 2);",
                crate::store::JOB_HUBSPOT_PUBLISH
            );
        }
        conn.execute(seed.as_str()).await.unwrap();
    }
    let store = open(&url, &schema).await;
    let lease = |owner: &str| LeaseRequest {
        owner: owner.into(),
        now: Utc::now(),
        lease: std::time::Duration::from_secs(30),
        channels: vec!["@hubspot".into()],
        limit: 10,
    };
    let mut first: Vec<String> = store
        .lease_jobs(&lease("a"))
        .await
        .unwrap()
        .iter()
        .map(|j| j.id.to_string())
        .collect();
    first.sort();
    assert_eq!(first, ["job_1", "job_2"], "one head per conversation");
    assert!(
        store.lease_jobs(&lease("b")).await.unwrap().is_empty(),
        "job_3 waits behind job_1"
    );
    dispose(&[&store], &url, &schema).await;
}

/// Events written before positions keep their ids (a stream resumes where it was), and
/// the next event comes after them.
#[tokio::test]
#[cfg_attr(
    not(pg_tests),
    ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
)]
async fn the_event_positions_migration_keeps_event_ids() {
    let positions = include_str!("../../../migrations/postgres/0012_event_positions.sql");
    let before = MIGRATIONS.iter().position(|m| *m == positions).unwrap();
    let (url, schema) = database_at_schema("event_positions", before).await;
    {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url.expose())
            .await
            .unwrap();
        let seed = format!(
            "SET search_path = {};
             INSERT INTO events (seq, kind, data, at) VALUES (7, 'old', '{{}}', 1), (9, 'old', '{{}}', 2);
             SELECT setval('events_seq_seq', 9);",
            quote_ident(&schema)
        );
        conn.execute(seed.as_str()).await.unwrap();
    }
    let store = open(&url, &schema).await;
    let all = crate::store::EventFilter::default();
    let resumed = store.events_after(7, &all, 10).await.unwrap();
    assert_eq!(resumed.iter().map(|e| e.id).collect::<Vec<_>>(), [9]);
    store
        .execute_for_tests("INSERT INTO events (kind, data, at) VALUES ('new', '{}', 3)")
        .await
        .unwrap();
    assert_eq!(store.latest_event().await.unwrap(), 10);
    let next = store.events_after(9, &all, 10).await.unwrap();
    assert_eq!(
        next.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["new"]
    );
    dispose(&[&store], &url, &schema).await;
}

/// A transaction that wrote its event first and committed last: a stream that already
/// read past the events committed meanwhile still gets it (no transaction holds an events
/// lock to its COMMIT any more, so commit order and insert order differ).
#[tokio::test]
#[cfg_attr(
    not(pg_tests),
    ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
)]
async fn an_event_committed_late_still_reaches_a_stream_that_read_past_it() {
    let (store, url, schema) = fresh_store("late_event").await;
    let all = crate::store::EventFilter::default();
    let kinds =
        |events: &[crate::store::Event]| events.iter().map(|e| e.kind.clone()).collect::<Vec<_>>();
    let mut slow = store.pool().begin().await.unwrap();
    sqlx::query("INSERT INTO events (kind, data, at) VALUES ('slow', '{}', 1)")
        .execute(&mut *slow)
        .await
        .unwrap();
    store
        .execute_for_tests("INSERT INTO events (kind, data, at) VALUES ('fast', '{}', 2)")
        .await
        .unwrap();
    let seen = store.events_after(0, &all, 10).await.unwrap();
    assert_eq!(kinds(&seen), ["fast"]);
    slow.commit().await.unwrap();
    let next = store.events_after(seen[0].id, &all, 10).await.unwrap();
    assert_eq!(kinds(&next), ["slow"], "the late event was skipped");
    assert!(next[0].id > seen[0].id);
    dispose(&[&store], &url, &schema).await;
}

/// Events get their positions soon after they commit even when no stream reads, so the
/// next stream to open does not first sequence a long backlog.
#[tokio::test]
#[cfg_attr(
    not(pg_tests),
    ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
)]
async fn events_are_positioned_without_a_stream_reading() {
    let (store, url, schema) = fresh_store("background_positions").await;
    let mut seed = String::new();
    for n in 0..50 {
        seed += &format!("INSERT INTO events (kind, data, at) VALUES ('e{n}', '{{}}', 1);");
    }
    store.execute_for_tests(&seed).await.unwrap();
    let unpositioned = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE pos IS NULL")
            .fetch_one(store.pool())
            .await
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while unpositioned().await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing positioned them"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    dispose(&[&store], &url, &schema).await;
}

/// An ingest on one replica wakes another's event streams and its delivery worker, with
/// no trigger inside the writing transaction (the notifier sends after the commit).
#[tokio::test]
#[cfg_attr(
    not(pg_tests),
    ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_commit_on_one_replica_wakes_the_others() {
    use crate::model::event::{InboundContact, InboundEvent, InboundMessage};
    use crate::model::{Identifier, Part, TextPart};
    let (writer, url, schema) = fresh_store("wake_others").await;
    let other = open(&url, &schema).await;
    let mut changes = other.changes();
    let mut jobs = other.job_signal().unwrap();
    // The listener's first bumps (it looks once after connecting) are not the wake.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    changes.borrow_and_update();
    jobs.borrow_and_update();
    let rules = crate::store::ChannelRules {
        // A linked channel queues a publish, ready at once, with the message.
        hubspot_account: Some("acct".into()),
        ..crate::store::ChannelRules::for_tests("demo")
    };
    let message = InboundEvent::Message(InboundMessage {
        conversation_hint: None,
        platform_message_id: "m1".into(),
        thread_id: None,
        from: InboundContact {
            identifier: Identifier {
                kind: "app_user".into(),
                value: "ana".into(),
            },
            display_name: None,
            email: None,
        },
        reply_to: None,
        parts: vec![Part::Text(TextPart { text: "hi".into() })],
        sent_at: None,
        raw: serde_json::json!({}),
    });
    writer.ingest(&rules, vec![message]).await.unwrap();
    let wait = std::time::Duration::from_secs(5);
    tokio::time::timeout(wait, changes.changed())
        .await
        .expect("the other replica's streams were not woken")
        .unwrap();
    tokio::time::timeout(wait, jobs.changed())
        .await
        .expect("the other replica's worker was not woken")
        .unwrap();
    dispose(&[&writer, &other], &url, &schema).await;
}

/// Once retention has purged every event, the next one still gets an id above every id a
/// stream has seen, so a stream resuming from its last id gets it.
#[tokio::test]
#[cfg_attr(
    not(pg_tests),
    ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
)]
async fn an_event_after_a_purge_of_every_event_gets_a_higher_id() {
    let (store, url, schema) = fresh_store("purged_events").await;
    let all = crate::store::EventFilter::default();
    let insert = "INSERT INTO events (kind, data, at) VALUES ('e', '{}', 1)";
    store
        .execute_for_tests(&format!("{insert}; {insert}"))
        .await
        .unwrap();
    let seen = store.events_after(0, &all, 10).await.unwrap();
    let last = seen.last().unwrap().id;
    store.execute_for_tests("DELETE FROM events").await.unwrap();
    assert_eq!(store.latest_event().await.unwrap(), last);
    store.execute_for_tests(insert).await.unwrap();
    let next = store.events_after(last, &all, 10).await.unwrap();
    assert_eq!(
        next.len(),
        1,
        "the stream resuming at {last} missed the new event"
    );
    dispose(&[&store], &url, &schema).await;
}

/// A lease that finds nothing to take (the ready job is on a channel this worker does not
/// serve) wakes nobody: otherwise each replica's worker would wake the others, and
/// itself, for ever.
#[tokio::test]
#[cfg_attr(
    not(pg_tests),
    ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_lease_that_takes_nothing_wakes_no_worker() {
    let (store, url, schema) = fresh_store("quiet_lease").await;
    store
        .execute_for_tests(
            "INSERT INTO jobs (id, kind, channel_id, ordering_key, payload, state, run_at,
                 created_at, updated_at)
                 VALUES ('job_1', 'deliver', 'disabled', 'conv_a',
                     '{\"message_id\":\"msg_1\"}', 'pending', 0, 1, 1)",
        )
        .await
        .unwrap();
    let mut jobs = store.job_signal().unwrap();
    // Let the listener connect and its first look, and any wake from the seeding, pass.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    jobs.borrow_and_update();
    let lease = LeaseRequest {
        owner: "w".into(),
        now: Utc::now(),
        lease: std::time::Duration::from_secs(30),
        channels: vec!["enabled".into()],
        limit: 10,
    };
    for _ in 0..3 {
        assert!(store.lease_jobs(&lease).await.unwrap().is_empty());
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !jobs.has_changed().unwrap(),
        "an empty lease woke the workers"
    );
    dispose(&[&store], &url, &schema).await;
}
