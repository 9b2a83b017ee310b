//! The database locked by another connection: webhooks get 503 (platforms redeliver),
//! nothing is half-written, and everything works again once the lock is released.
//!
//! The daemon's `<db>.lock` file keeps a second daemon out, not another SQLite
//! connection: here the test itself holds SQLite's write lock, as a backup tool or a
//! stray `sqlite3` shell would.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{TestApp, text_event, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_answers_503_until_the_lock_is_released_then_takes_the_redelivery() {
    if crate::harness::on_postgres() {
        eprintln!("skipped: this test locks the SQLite file; the store is PostgreSQL");
        return;
    }
    let app = TestApp::spawn().await;
    let response = app
        .post_webhook("demo", &text_event("before-lock", "user-1", "hello"))
        .await;
    assert_eq!(response.status(), 200);

    let db = app.dir.path().join("bridge.db");
    let holder = tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn
    })
    .await
    .unwrap();

    // The writer waits out its busy timeout, then gives up on the request.
    let response = app
        .post_webhook(
            "demo",
            &text_event("during-lock", "user-1", "are you there?"),
        )
        .await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
    // Reads do not need the write lock.
    assert_eq!(app.conversations().await.len(), 1);

    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);

    // The platform redelivers the refused webhook; it is stored once, whole.
    wait_until(
        "the redelivery is stored",
        Duration::from_secs(30),
        || async {
            app.post_webhook(
                "demo",
                &text_event("during-lock", "user-1", "are you there?"),
            )
            .await
            .status()
                == 200
        },
    )
    .await;
    let again = app
        .post_webhook(
            "demo",
            &text_event("during-lock", "user-1", "are you there?"),
        )
        .await;
    let receipt: Value = again.json().await.unwrap();
    assert_eq!(receipt["duplicates"], 1, "{receipt}");
    let conversation = app.only_conversation().await;
    let ids: Vec<String> = app
        .messages(conversation["id"].as_str().unwrap())
        .await
        .iter()
        .map(|m| m["platform_message_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["before-lock", "during-lock"]);
}
