//! Rows written straight into a store's tables: a data set the trait cannot make (fixed
//! ids, times long past, a ticket in any status), the same on both stores. Values are
//! quoted into portable SQL, which `Backend::execute` runs on the store's own database.

use crate::support::Backend;

/// Unix ms of the seeded rows: long before any "now" a change stamps.
pub const BASE: i64 = 1_600_000_000_000;

/// A SQL string literal.
pub fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A SQL string literal or NULL.
pub fn q_opt(s: Option<&str>) -> String {
    s.map_or_else(|| "NULL".to_owned(), q)
}

/// A SQL integer or NULL.
pub fn n_opt(n: Option<i64>) -> String {
    n.map_or_else(|| "NULL".to_owned(), |n| n.to_string())
}

/// Seeds rows into one backend's database.
pub struct Seed<'a>(pub &'a Backend);

impl Seed<'_> {
    pub async fn exec(&self, sql: &str) {
        self.0.execute(sql).await;
    }

    pub async fn contact(&self, id: &str, name: Option<&str>, owner: Option<&str>) {
        self.exec(&format!(
            "INSERT INTO contacts (id, display_name, email, owner_id, created_at, updated_at)
             VALUES ({}, {}, NULL, {}, {BASE}, {BASE})",
            q(id),
            q_opt(name),
            q_opt(owner)
        ))
        .await;
    }

    pub async fn identifier(&self, contact: &str, channel: &str, kind: &str, value: &str) {
        self.exec(&format!(
            "INSERT INTO contact_identifiers (channel_id, kind, value, contact_id)
             VALUES ({}, {}, {}, {})",
            q(channel),
            q(kind),
            q(value),
            q(contact)
        ))
        .await;
    }

    /// A ticket of the "support" pipeline.
    pub async fn ticket(&self, id: &str, status: &str, owner: Option<&str>, closed: Option<i64>) {
        self.exec(&format!(
            "INSERT INTO tickets (id, pipeline, status, owner_id, properties, created_at,
                 updated_at, closed_at)
             VALUES ({}, 'support', {}, {}, '{{}}', {BASE}, {BASE}, {})",
            q(id),
            q(status),
            q_opt(owner),
            n_opt(closed)
        ))
        .await;
    }

    /// A conversation (thread key = its contact) whose last message is at `last`.
    #[allow(clippy::too_many_arguments)]
    pub async fn conversation(
        &self,
        id: &str,
        channel: &str,
        contact: &str,
        ticket: &str,
        status: &str,
        owner: Option<&str>,
        last: i64,
    ) {
        let closed = (status == "closed").then_some(last);
        self.exec(&format!(
            "INSERT INTO conversations (id, channel_id, thread_key, platform_thread_id, status,
                 owner_id, ticket_id, contact_id, created_at, last_message_at, closed_at)
             VALUES ({}, {}, {}, NULL, {}, {}, {}, {}, {BASE}, {last}, {})",
            q(id),
            q(channel),
            q(contact),
            q(status),
            q_opt(owner),
            q(ticket),
            q(contact),
            n_opt(closed)
        ))
        .await;
    }

    /// A text message, indexed for search as ingest indexes it on each store.
    #[allow(clippy::too_many_arguments)]
    pub async fn message(
        &self,
        id: &str,
        conversation: &str,
        channel: &str,
        direction: &str,
        sender: (&str, &str),
        text: &str,
        at: i64,
    ) {
        let parts = serde_json::to_string(&crate::support::text(text)).expect("parts");
        let status = if direction == "inbound" {
            "received"
        } else {
            "queued"
        };
        self.exec(&format!(
            "INSERT INTO messages (id, conversation_id, channel_id, direction, platform_message_id,
                 sender_type, sender_id, parts, delivery_status, created_at)
             VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {at})",
            q(id),
            q(conversation),
            q(channel),
            q(direction),
            q(&format!("p-{id}")),
            q(sender.0),
            q(sender.1),
            q(&parts),
            q(status)
        ))
        .await;
        // What ingest writes besides the row: SQLite's index table, PostgreSQL's column.
        let index = match self.0 {
            Backend::Sqlite { .. } => format!(
                "INSERT INTO message_text (rowid, body) SELECT seq, {} FROM messages WHERE id = {}",
                q(text),
                q(id)
            ),
            Backend::Postgres { .. } => format!(
                "UPDATE messages SET body_text = {} WHERE id = {}",
                q(text),
                q(id)
            ),
        };
        self.exec(&index).await;
    }
}
