//! The schema migrations against databases written by earlier versions.

use super::*;
use crate::model::MessageKind;

/// A database written by the version before comments (schema 6) keeps every message,
/// its seq and its search entry through the rebuild of the messages table.
#[tokio::test]
async fn the_comments_migration_keeps_every_message_its_seq_and_its_search_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let conn = Connection::open(&path).unwrap();
        for (i, sql) in MIGRATIONS[..6].iter().enumerate() {
            conn.execute_batch(&format!(
                "BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;",
                i + 1
            ))
            .unwrap();
        }
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
