//! The schema migrations against databases written by earlier versions.

use super::*;
use crate::model::MessageKind;

/// A database at `path` migrated only up to schema `version`, as an older release left it.
fn database_at_schema(path: &Path, version: usize) -> Connection {
    let conn = Connection::open(path).unwrap();
    for (i, sql) in MIGRATIONS[..version].iter().enumerate() {
        conn.execute_batch(&format!(
            "BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))
        .unwrap();
    }
    conn
}

/// A database written by the version before comments (schema 6) keeps every message,
/// its seq and its search entry through the rebuild of the messages table.
#[tokio::test]
async fn the_comments_migration_keeps_every_message_its_seq_and_its_search_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let conn = database_at_schema(&path, 6);
        conn.execute_batch(
            "INSERT INTO contacts (id, created_at, updated_at)
                 VALUES ('ctc_01KAK3W9Q4M2N5P7S9T0V1W2XY', 1, 1);
             INSERT INTO tickets (id, pipeline, status, created_at, updated_at)
                 VALUES ('tkt_01KAK3W9Q4M2N5P7S9T0V1W2XY', 'support', 'new', 1, 1);
             INSERT INTO conversations (id, channel_id, thread_key, status, ticket_id,
                 contact_id, created_at, last_message_at)
                 VALUES ('conv_01KAK3W9Q4M2N5P7S9T0V1W2XY', 'demo', 'contact:x', 'open',
                     'tkt_01KAK3W9Q4M2N5P7S9T0V1W2XY', 'ctc_01KAK3W9Q4M2N5P7S9T0V1W2XY', 1, 1);
             INSERT INTO messages (seq, id, conversation_id, channel_id, direction,
                 platform_message_id, sender_type, sender_id, parts, delivery_status,
                 created_at, delivery_note)
                 VALUES (7, 'msg_01KAK3W9Q4M2N5P7S9T0V1W2XY', 'conv_01KAK3W9Q4M2N5P7S9T0V1W2XY',
                     'demo', 'inbound', 'p-1', 'contact', 'ctc_01KAK3W9Q4M2N5P7S9T0V1W2XY',
                     '[{\"type\":\"text\",\"text\":\"where is my parcel\"}]', 'received', 1,
                     'a note');
             INSERT INTO message_text (rowid, body) VALUES (7, 'where is my parcel');",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    let conversation = ConversationId::from_stored("conv_01KAK3W9Q4M2N5P7S9T0V1W2XY".into());
    let page = PageRequest {
        limit: 10,
        cursor: None,
    };
    let messages = store.messages(&conversation, &page).await.unwrap().items;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].kind, MessageKind::Message);
    assert_eq!(messages[0].platform_message_id.as_deref(), Some("p-1"));
    assert_eq!(messages[0].delivery.note.as_deref(), Some("a note"));
    let filter = ConversationFilter {
        q: Some("parcel".into()),
        ..ConversationFilter::default()
    };
    assert_eq!(
        store
            .conversations(&filter, &page)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let seq: i64 = store
        .readers
        .read(|conn| Ok(conn.query_row("SELECT seq FROM messages", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(seq, 7);
    // The deduplication index came back with the table.
    let again = store
        .writer
        .write(|conn| {
            conn.execute(
                "INSERT INTO messages (id, conversation_id, channel_id, direction,
                     platform_message_id, sender_type, sender_id, parts, delivery_status,
                     created_at)
                 VALUES ('msg_x', 'conv_01KAK3W9Q4M2N5P7S9T0V1W2XY', 'demo', 'inbound',
                     'p-1', 'contact', 'c', '[]', 'received', 2)",
                [],
            )
            .map_err(StoreError::from)
        })
        .await;
    assert!(again.is_err(), "a second inbound p-1 must be refused");
}

/// A database written before job heads (schema 7) keeps its queue order through the
/// migration: only the oldest pending job of each conversation may be leased.
#[tokio::test]
async fn the_job_heads_migration_keeps_queue_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let conn = database_at_schema(&path, 7);
        let mut seed = String::from(
            "INSERT INTO contacts (id, created_at, updated_at) VALUES ('ctc_a', 1, 1);
             INSERT INTO contact_identifiers (channel_id, kind, value, contact_id)
                 VALUES ('demo', 'user_id', 'a', 'ctc_a');
             INSERT INTO tickets (id, pipeline, status, created_at, updated_at)
                 VALUES ('tkt_a', 'support', 'new', 1, 1);",
        );
        for conv in ["conv_a", "conv_b"] {
            seed.push_str(&format!(
                "INSERT INTO conversations (id, channel_id, thread_key, status, ticket_id,
                     contact_id, created_at, last_message_at)
                     VALUES ('{conv}', 'demo', 'k:{conv}', 'open', 'tkt_a', 'ctc_a', 1, 1);
                 INSERT INTO messages (id, conversation_id, channel_id, direction,
                     platform_message_id, sender_type, sender_id, parts, delivery_status,
                     created_at)
                     VALUES ('msg_in_{conv}', '{conv}', 'demo', 'inbound', 'p-{conv}',
                         'contact', 'ctc_a', '[]', 'received', 1);"
            ));
        }
        // Two queued replies in conv_a (oldest first), one in conv_b.
        for (n, conv) in [(1, "conv_a"), (2, "conv_b"), (3, "conv_a")] {
            seed.push_str(&format!(
                "INSERT INTO messages (id, conversation_id, channel_id, direction, sender_type,
                     sender_id, parts, delivery_status, created_at)
                     VALUES ('msg_out_{n}', '{conv}', 'demo', 'outbound', 'rep', 'alice',
                         '[]', 'queued', 2);
                 INSERT INTO jobs (id, kind, channel_id, ordering_key, payload, state, run_at,
                     created_at, updated_at)
                     VALUES ('job_{n}', '{}', 'demo', '{conv}',
                         '{{\"message_id\":\"msg_out_{n}\"}}', 'pending', 0, 2, 2);",
                crate::store::JOB_DELIVER
            ));
        }
        conn.execute_batch(&seed).unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    let lease = |owner: &str| LeaseRequest {
        owner: owner.into(),
        now: Utc::now(),
        lease: std::time::Duration::from_secs(30),
        channels: vec!["demo".into()],
        limit: 10,
    };
    let jobs = store.lease_jobs(&lease("w1")).await.unwrap();
    let leased: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
    assert_eq!(leased, ["job_1", "job_2"], "job_3 waits behind job_1");
    // The lease read each reply for its worker, addressed to the contact.
    let outbound = jobs[0]
        .outbound
        .as_deref()
        .expect("the reply came with the lease");
    assert_eq!(outbound.message_id.to_string(), "msg_out_1");
    assert_eq!(outbound.to.value, "a");
    let first = store.lease_jobs(&lease("w2")).await.unwrap_or_default();
    assert!(first.is_empty(), "nothing else may run yet: {first:?}");
}
