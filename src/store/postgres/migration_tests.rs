//! The schema migrations against databases written by earlier versions.

use chrono::Utc;
use sqlx::Executor;

use super::*;
use crate::store::{LeaseRequest, Store};

/// A fresh schema on the test server, migrated only up to schema `version`, as an older
/// release left it; returns the server URL and the schema.
async fn database_at_schema(test: &str, version: usize) -> (Secret, String) {
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

async fn drop_schema(url: &Secret, schema: &str) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url.expose())
        .await
        .unwrap();
    let quoted = quote_ident(schema);
    conn.execute(format!("DROP SCHEMA {quoted} CASCADE").as_str())
        .await
        .unwrap();
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
    let store = PgStore::open(&url, Some(&schema), 4).await.unwrap();
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
    store.close().await;
    drop_schema(&url, &schema).await;
}
