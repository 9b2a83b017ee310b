//! The store as the daemon starts and stops it: a health check, and no work after close.

use std::sync::Arc;

use channel_bridge::model::ConversationId;
use channel_bridge::store::postgres::PgStore;
use channel_bridge::store::{Store, StoreError};

use crate::support::*;

conformance!(
    a_closed_store_refuses_reads_and_writes_as_unavailable,
    seeding_sql_runs_every_statement_and_counts_the_rows_it_changed,
);

/// Replicas started together on a schema that does not exist yet all open it: creating
/// the schema and migrating it race, and neither may fail a replica's start.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(pg_tests),
    ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
)]
async fn postgres_replicas_opening_a_missing_schema_together_all_start() {
    let schema = PgSchema::new("postgres_replicas_opening_a_missing_schema_together");
    let mut opens = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (url, name) = (schema.url(), schema.name().to_owned());
        opens.spawn(async move { PgStore::open(&url, Some(&name), 2).await });
    }
    while let Some(opened) = opens.join_next().await {
        let store = opened
            .expect("the open task finishes")
            .unwrap_or_else(|e| panic!("every replica opens the new schema: {e}"));
        store.ping().await.expect("an open store answers");
        store.close().await;
    }
}

async fn a_closed_store_refuses_reads_and_writes_as_unavailable(
    store: Arc<dyn Store>,
    _: &Backend,
) {
    store.ping().await.expect("an open store answers");
    let conversation = open_conversation(&*store, &rules("chat"), "ana").await;
    store.close().await;

    let unavailable = |what: &str, r: Result<(), StoreError>| match r {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("{what} after close: expected unavailable, got {other:?}"),
    };
    unavailable("ping", store.ping().await);
    unavailable(
        "ingest",
        store
            .ingest(&rules("chat"), vec![Msg::new("m2", "ana").into()])
            .await
            .map(drop),
    );
    unavailable("a read", store.conversation(&conversation).await.map(drop));
    unavailable(
        "a reply",
        store
            .create_reply(new_reply(&ConversationId::new(), "hi"))
            .await
            .map(drop),
    );
}

/// The escape hatch the other tests seed with behaves alike on both stores.
async fn seeding_sql_runs_every_statement_and_counts_the_rows_it_changed(
    store: Arc<dyn Store>,
    backend: &Backend,
) {
    let conversation = open_conversation(&*store, &rules("chat"), "ana").await;
    let changed = backend
        .execute(&format!(
            "UPDATE conversations SET last_message_at = 1800000000000 WHERE id = '{c}';
             UPDATE messages SET created_at = 1800000000000 WHERE conversation_id = '{c}';
             UPDATE conversations SET last_message_at = 0 WHERE id = 'conv_none'",
            c = conversation.as_str()
        ))
        .await;
    assert_eq!(changed, 2);
    let seeded = store.conversation(&conversation).await.unwrap();
    assert_eq!(
        seeded.last_message_at,
        channel_bridge::model::from_millis(1_800_000_000_000)
    );
}
