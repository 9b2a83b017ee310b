//! The reads the API needs: conversations (filtered, searched, paged), messages, and what
//! an adapter needs to send a reply.

use std::collections::HashMap;

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::get;
use crate::desk::inboxes::Scope;
use crate::model::outbound::Outbound;
use crate::model::{
    ChannelIdentifier, Contact, ContactId, Conversation, ConversationId, ConversationStatus,
    Delivery, DeliveryStatus, Direction, Identifier, Message, MessageId, MessageKind, Part, Sender,
    SenderKind, TicketId, from_millis,
};
use crate::store::{ConversationFilter, Page, StoreError};

/// The contact's columns are renamed so every column of a row has its own name.
const CONVERSATION_COLUMNS: &str = "c.seq, c.id, c.channel_id, c.thread_key, c.platform_thread_id,
    c.status, c.owner_id, c.ticket_id, c.created_at, c.last_message_at,
    k.id AS contact_id, k.display_name AS contact_display_name, k.email AS contact_email,
    k.owner_id AS contact_owner_id";

/// A contact's identifiers, in the byte order SQLite sorts them in (whatever the
/// database's collation).
pub async fn contact_identifiers(
    c: &mut PgConnection,
    contact: &str,
) -> Result<Vec<ChannelIdentifier>, StoreError> {
    let mut all = identifiers_of(c, &[contact.to_owned()]).await?;
    Ok(all.remove(contact).unwrap_or_default())
}

/// The identifiers of several contacts in one round trip.
async fn identifiers_of(
    c: &mut PgConnection,
    contacts: &[String],
) -> Result<HashMap<String, Vec<ChannelIdentifier>>, StoreError> {
    let rows = sqlx::query(
        r#"SELECT contact_id, channel_id, kind, value FROM contact_identifiers
         WHERE contact_id = ANY($1)
         ORDER BY channel_id COLLATE "C", kind COLLATE "C", value COLLATE "C""#,
    )
    .bind(contacts)
    .fetch_all(&mut *c)
    .await?;
    let mut by_contact: HashMap<String, Vec<ChannelIdentifier>> = HashMap::new();
    for r in &rows {
        by_contact
            .entry(get(r, "contact_id")?)
            .or_default()
            .push(ChannelIdentifier {
                channel_id: get(r, "channel_id")?,
                kind: get(r, "kind")?,
                value: get(r, "value")?,
            });
    }
    Ok(by_contact)
}

/// A conversation row (identifiers still empty) and its seq.
fn conversation_row(row: &PgRow) -> Result<(i64, Conversation), StoreError> {
    let status: String = get(row, "status")?;
    let conversation = Conversation {
        id: ConversationId::from_stored(get(row, "id")?),
        channel_id: get(row, "channel_id")?,
        thread_key: get(row, "thread_key")?,
        platform_thread_id: get(row, "platform_thread_id")?,
        status: ConversationStatus::parse(&status).unwrap_or(ConversationStatus::Open),
        owner_id: get(row, "owner_id")?,
        ticket_id: TicketId::from_stored(get(row, "ticket_id")?),
        created_at: from_millis(get(row, "created_at")?),
        last_message_at: from_millis(get(row, "last_message_at")?),
        contact: Contact {
            id: ContactId::from_stored(get(row, "contact_id")?),
            display_name: get(row, "contact_display_name")?,
            email: get(row, "contact_email")?,
            owner_id: get(row, "contact_owner_id")?,
            identifiers: Vec::new(),
        },
    };
    Ok((get(row, "seq")?, conversation))
}

/// Decodes conversation rows and fills in their contacts' identifiers.
async fn conversations_of(
    c: &mut PgConnection,
    rows: &[PgRow],
) -> Result<Vec<(i64, Conversation)>, StoreError> {
    let mut conversations = rows
        .iter()
        .map(conversation_row)
        .collect::<Result<Vec<_>, _>>()?;
    if conversations.is_empty() {
        return Ok(conversations);
    }
    let contacts: Vec<String> = conversations
        .iter()
        .map(|(_, conversation)| conversation.contact.id.as_str().to_owned())
        .collect();
    let identifiers = identifiers_of(c, &contacts).await?;
    for (_, conversation) in &mut conversations {
        if let Some(list) = identifiers.get(conversation.contact.id.as_str()) {
            conversation.contact.identifiers = list.clone();
        }
    }
    Ok(conversations)
}

/// A conversation that is not in the trash, with its contact.
pub async fn conversation(
    c: &mut PgConnection,
    id: &ConversationId,
) -> Result<Conversation, StoreError> {
    let sql = format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c JOIN contacts k ON k.id = c.contact_id
         WHERE c.id = $1 AND c.deleted_at IS NULL"
    );
    let row = sqlx::query(&sql)
        .bind(id.as_str())
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NotFound("conversation"))?;
    let mut found = conversations_of(c, &[row]).await?;
    found
        .pop()
        .map(|(_, conversation)| conversation)
        .ok_or(StoreError::NotFound("conversation"))
}

/// Newest activity first; the cursor is `last_message_at:seq` of the last item.
pub async fn conversations(
    c: &mut PgConnection,
    filter: &ConversationFilter,
    cursor: Option<(i64, i64)>,
    limit: u32,
) -> Result<Page<Conversation>, StoreError> {
    // Only fixed SQL is pushed; every value the caller gave is bound.
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c JOIN contacts k ON k.id = c.contact_id
         WHERE c.deleted_at IS NULL"
    ));
    push_channels(&mut sql, filter.channel.as_ref(), &filter.scope);
    if let Some(contact) = &filter.contact {
        sql.push(" AND c.contact_id = ")
            .push_bind(contact.as_str().to_owned());
    }
    if let Some(status) = filter.status {
        sql.push(" AND c.status = ").push_bind(status.as_str());
    }
    if let Some(status) = &filter.ticket_status {
        sql.push(" AND c.ticket_id IN (SELECT id FROM tickets WHERE status = ")
            .push_bind(status.clone())
            .push(")");
    }
    if let Some(from) = filter.from {
        sql.push(" AND c.last_message_at >= ")
            .push_bind(from.timestamp_millis());
    }
    if let Some(to) = filter.to {
        sql.push(" AND c.last_message_at < ")
            .push_bind(to.timestamp_millis());
    }
    match filter.q.as_deref().and_then(ts_query) {
        None => {}
        // Typed words, none of them with a lexeme: nothing can match.
        Some(q) if q.is_empty() => {
            sql.push(" AND FALSE");
        }
        Some(q) => {
            sql.push(
                " AND c.id IN (SELECT m.conversation_id FROM messages m
                     WHERE m.search @@ to_tsquery('simple', ",
            )
            .push_bind(q)
            .push("))");
        }
    }
    match filter.owner.as_deref() {
        Some("none") => {
            sql.push(" AND c.owner_id IS NULL");
        }
        Some(owner) => {
            sql.push(" AND c.owner_id = ").push_bind(owner.to_owned());
        }
        None => {}
    }
    if let Some((at, seq)) = cursor {
        sql.push(" AND (c.last_message_at, c.seq) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(seq)
            .push(")");
    }
    sql.push(" ORDER BY c.last_message_at DESC, c.seq DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
    let rows = sql.build().fetch_all(&mut *c).await?;
    let more = rows.len() > limit as usize;
    let mut items = conversations_of(c, &rows[..rows.len().min(limit as usize)]).await?;
    let next_cursor = match items.last() {
        Some((seq, last)) if more => {
            Some(format!("{}:{seq}", last.last_message_at.timestamp_millis()))
        }
        _ => None,
    };
    Ok(Page {
        items: items
            .drain(..)
            .map(|(_, conversation)| conversation)
            .collect(),
        next_cursor,
    })
}

/// Turns what a rep typed into tsquery text for the 'simple' configuration: every word
/// must appear (as a prefix for the last one), and nothing typed is read as tsquery
/// syntax. Each word becomes one quoted lexeme, which `to_tsquery` splits the way the
/// `search` column was split ("don't" must match `don <-> t`). A word without a letter or
/// digit has no lexeme, as in an FTS5 phrase: it drops out here already (`to_tsquery`
/// would drop it with a notice in the log), and a query of nothing else is empty, which
/// matches nothing. `None` when nothing was typed: no search at all.
///
/// A last word of one character is a whole word, as in FTS5 (see
/// [`crate::desk::search::searched_as_prefix`]).
///
/// One difference from FTS5: a last word that splits into several lexemes gets `:*` on
/// each of them, not only on the last.
fn ts_query(q: &str) -> Option<String> {
    let words: Vec<&str> = q
        // PostgreSQL text cannot hold NUL, and it is no part of a word anyway.
        .split(|ch: char| ch.is_whitespace() || ch == '\0')
        .filter(|w| !w.is_empty())
        .collect();
    let last = words.len().checked_sub(1)?;
    let lexemes: Vec<String> = words
        .iter()
        .enumerate()
        .filter(|(_, w)| w.chars().any(char::is_alphanumeric))
        .map(|(n, w)| {
            // Inside a quoted lexeme a backslash escapes and a quote is doubled.
            let quoted = format!("'{}'", w.replace('\\', "\\\\").replace('\'', "''"));
            if n == last && crate::desk::search::searched_as_prefix(w) {
                quoted + ":*"
            } else {
                quoted
            }
        })
        .collect();
    Some(lexemes.join(" & "))
}

const MESSAGE_COLUMNS: &str =
    "seq, id, conversation_id, channel_id, direction, platform_message_id,
    sender_type, sender_id, reply_to, parts, delivery_status, delivery_error, attempts, created_at,
    edited_at, history, retracted_at, delivery_note, kind, mentions";

fn message_row(row: &PgRow) -> Result<(i64, Message), StoreError> {
    let parts: String = get(row, "parts")?;
    let parts: Vec<Part> = serde_json::from_str(&parts).map_err(|e| {
        StoreError::Internal(crate::store::Detail::caused_by(
            "stored parts are not valid",
            e,
        ))
    })?;
    let direction: String = get(row, "direction")?;
    let sender: String = get(row, "sender_type")?;
    let status: String = get(row, "delivery_status")?;
    let attempts: i32 = get(row, "attempts")?;
    let kind: String = get(row, "kind")?;
    let message = Message {
        kind: MessageKind::parse(&kind).unwrap_or_default(),
        mentions: get::<Option<String>>(row, "mentions")?
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or_default(),
        id: MessageId::from_stored(get(row, "id")?),
        conversation_id: ConversationId::from_stored(get(row, "conversation_id")?),
        channel_id: get(row, "channel_id")?,
        direction: Direction::parse(&direction).unwrap_or(Direction::Inbound),
        platform_message_id: get(row, "platform_message_id")?,
        sender: Sender {
            kind: SenderKind::parse(&sender).unwrap_or(SenderKind::System),
            id: get(row, "sender_id")?,
        },
        reply_to: get::<Option<String>>(row, "reply_to")?.map(MessageId::from_stored),
        parts,
        delivery: Delivery {
            status: DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Queued),
            error: get(row, "delivery_error")?,
            attempts: u32::try_from(attempts).unwrap_or(0),
            note: get(row, "delivery_note")?,
        },
        created_at: from_millis(get(row, "created_at")?),
        edited_at: get::<Option<i64>>(row, "edited_at")?.map(from_millis),
        history: get::<Option<String>>(row, "history")?
            .and_then(|h| serde_json::from_str(&h).ok())
            .unwrap_or_default(),
        retracted_at: get::<Option<i64>>(row, "retracted_at")?.map(from_millis),
    };
    Ok((get(row, "seq")?, message))
}

/// A conversation's messages after `after` (a seq), oldest first.
pub async fn messages(
    c: &mut PgConnection,
    conversation: &ConversationId,
    after: i64,
    limit: u32,
) -> Result<Page<Message>, StoreError> {
    let exists: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM conversations WHERE id = $1 AND deleted_at IS NULL")
            .bind(conversation.as_str())
            .fetch_optional(&mut *c)
            .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound("conversation"));
    }
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq > $2
         ORDER BY seq LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(conversation.as_str())
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut *c)
        .await?;
    let more = rows.len() > limit as usize;
    let items = rows
        .iter()
        .take(limit as usize)
        .map(message_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = match items.last() {
        Some((seq, _)) if more => Some(seq.to_string()),
        _ => None,
    };
    Ok(Page {
        items: items.into_iter().map(|(_, message)| message).collect(),
        next_cursor,
    })
}

/// One message, whatever its conversation.
pub async fn message(c: &mut PgConnection, id: &MessageId) -> Result<Message, StoreError> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(id.as_str())
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NotFound("message"))?;
    Ok(message_row(&row)?.1)
}

/// What an adapter needs to send an outbound message: its parts, the contact's
/// identifier on the message's channel, and the platform ids it threads or quotes by.
pub async fn outbound(c: &mut PgConnection, id: &MessageId) -> Result<Outbound, StoreError> {
    // The quoted message's platform id comes along (NULL when it has none or is gone).
    let row = sqlx::query(
        "SELECT m.conversation_id, m.channel_id, m.parts, c.platform_thread_id, c.contact_id,
                (SELECT q.platform_message_id FROM messages q WHERE q.id = m.reply_to) AS reply_to
         FROM messages m JOIN conversations c ON c.id = m.conversation_id
         WHERE m.id = $1 AND m.direction = 'outbound'",
    )
    .bind(id.as_str())
    .fetch_optional(&mut *c)
    .await?
    .ok_or(StoreError::NotFound("message"))?;
    let contact: String = get(&row, "contact_id")?;
    let channel: String = get(&row, "channel_id")?;
    let parts: String = get(&row, "parts")?;
    let to = sqlx::query(
        r#"SELECT kind, value FROM contact_identifiers WHERE contact_id = $1 AND channel_id = $2
         ORDER BY kind COLLATE "C" LIMIT 1"#,
    )
    .bind(&contact)
    .bind(&channel)
    .fetch_optional(&mut *c)
    .await?
    .ok_or_else(|| {
        StoreError::Invalid(format!(
            "contact {contact} has no identifier on channel {channel}"
        ))
    })?;
    Ok(Outbound {
        message_id: id.clone(),
        conversation_id: ConversationId::from_stored(get(&row, "conversation_id")?),
        platform_thread_id: get(&row, "platform_thread_id")?,
        to: Identifier {
            kind: get(&to, "kind")?,
            value: get(&to, "value")?,
        },
        reply_to: get(&row, "reply_to")?,
        parts: serde_json::from_str(&parts).map_err(|e| {
            StoreError::Internal(crate::store::Detail::caused_by(
                "stored parts are not valid",
                e,
            ))
        })?,
    })
}

/// ` AND …` clauses keeping rows of conversations `c` on `channel` (when given) and within
/// `scope`. Values are bound, never pushed as SQL.
pub fn push_channels(sql: &mut QueryBuilder<Postgres>, channel: Option<&String>, scope: &Scope) {
    if let Some(channel) = channel {
        sql.push(" AND c.channel_id = ").push_bind(channel.clone());
    }
    match scope {
        Scope::All => {}
        Scope::Only(channels) => {
            sql.push(" AND c.channel_id = ANY(")
                .push_bind(channels.iter().cloned().collect::<Vec<String>>())
                .push(")");
        }
        Scope::Except(channels) => {
            sql.push(" AND NOT (c.channel_id = ANY(")
                .push_bind(channels.iter().cloned().collect::<Vec<String>>())
                .push("))");
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    //! Both stores side by side: the same rows seeded into a SQLite file and a PostgreSQL
    //! schema, the same calls made on each, and the answers compared (the SQLite store is
    //! the reference this one must match), besides what each test expects outright.

    use std::path::PathBuf;

    use chrono::{DateTime, Utc};
    use serde::Serialize;
    use serde_json::{Value, json};

    use super::*;
    use crate::model::TextPart;
    use crate::secret::Secret;
    use crate::store::postgres::PgStore;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{PageRequest, Store};

    /// Unix ms of the seeded rows: long before any "now" a change stamps.
    pub const BASE: i64 = 1_600_000_000_000;

    /// A value bound to a seeding statement.
    #[derive(Clone, Debug)]
    pub enum Val {
        T(Option<String>),
        I(Option<i64>),
    }

    pub fn t(s: &str) -> Val {
        Val::T(Some(s.to_owned()))
    }

    pub fn i(n: i64) -> Val {
        Val::I(Some(n))
    }

    pub fn opt(s: Option<&str>) -> Val {
        Val::T(s.map(str::to_owned))
    }

    pub fn opt_i(n: Option<i64>) -> Val {
        Val::I(n)
    }

    /// A SQLite store and a PostgreSQL store (in a schema of its own) with the same data.
    pub struct Twin {
        pub sqlite: SqliteStore,
        pub pg: PgStore,
        sqlite_path: PathBuf,
        _dir: tempfile::TempDir,
        url: String,
        schema: String,
        /// Times from here on are "now" (stamped by a change), not seeded.
        since: DateTime<Utc>,
    }

    /// Runs `$body` with `$s: &dyn Store` on the SQLite store, then on the PostgreSQL one.
    macro_rules! both {
        ($twin:expr, |$s:ident| $body:expr) => {{
            let sqlite = {
                let $s: &dyn crate::store::Store = &$twin.sqlite;
                $body
            };
            let pg = {
                let $s: &dyn crate::store::Store = &$twin.pg;
                $body
            };
            (sqlite, pg)
        }};
    }
    pub(in crate::store::postgres) use both;

    impl Twin {
        /// Both stores. Only tests ignored without `cfg(pg_tests)` call it, so a missing
        /// `CHANNEL_BRIDGE_TEST_PG` here (an ignored test run anyway) is a failure, not a pass.
        pub async fn new() -> Twin {
            let url = std::env::var("CHANNEL_BRIDGE_TEST_PG")
                .expect("CHANNEL_BRIDGE_TEST_PG=postgres://… names the test database");
            let schema = format!("t_pgq_{:016x}", fastrand::u64(..));
            let pg = PgStore::open(&Secret::new(url.clone()), Some(&schema), 4)
                .await
                .expect("open the PostgreSQL store");
            let dir = tempfile::tempdir().expect("temp dir");
            let sqlite_path = dir.path().join("t.db");
            let sqlite = SqliteStore::open(&sqlite_path)
                .await
                .expect("open the SQLite store");
            Twin {
                sqlite,
                pg,
                sqlite_path,
                _dir: dir,
                url,
                schema,
                since: Utc::now() - chrono::Duration::seconds(1),
            }
        }

        /// Runs one statement on each database (`$1`… placeholders; `?1`… on SQLite).
        pub async fn run(&self, sqlite_sql: &str, pg_sql: &str, args: &[Val]) {
            let conn = rusqlite::Connection::open(&self.sqlite_path).expect("open SQLite");
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .expect("busy timeout");
            let values = args.iter().map(|v| match v {
                Val::T(Some(s)) => rusqlite::types::Value::Text(s.clone()),
                Val::I(Some(n)) => rusqlite::types::Value::Integer(*n),
                Val::T(None) | Val::I(None) => rusqlite::types::Value::Null,
            });
            conn.execute(
                &sqlite_sql.replace('$', "?"),
                rusqlite::params_from_iter(values),
            )
            .unwrap_or_else(|e| panic!("SQLite: {sqlite_sql}: {e}"));
            let mut query = sqlx::query(pg_sql);
            for v in args {
                query = match v {
                    Val::T(s) => query.bind(s.clone()),
                    Val::I(n) => query.bind(*n),
                };
            }
            query
                .execute(self.pg.pool())
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL: {pg_sql}: {e}"));
        }

        pub async fn exec(&self, sql: &str, args: &[Val]) {
            self.run(sql, sql, args).await;
        }

        /// How many rows `sql` (a `SELECT count(*)`) counts on each database.
        pub async fn count(&self, sql: &str, args: &[Val]) -> (i64, i64) {
            let conn = rusqlite::Connection::open(&self.sqlite_path).expect("open SQLite");
            let values = args.iter().map(|v| match v {
                Val::T(Some(s)) => rusqlite::types::Value::Text(s.clone()),
                Val::I(Some(n)) => rusqlite::types::Value::Integer(*n),
                Val::T(None) | Val::I(None) => rusqlite::types::Value::Null,
            });
            let sqlite: i64 = conn
                .query_row(
                    &sql.replace('$', "?"),
                    rusqlite::params_from_iter(values),
                    |r| r.get(0),
                )
                .expect("SQLite count");
            let mut query = sqlx::query_scalar::<_, i64>(sql);
            for v in args {
                query = match v {
                    Val::T(s) => query.bind(s.clone()),
                    Val::I(n) => query.bind(*n),
                };
            }
            let pg = query.fetch_one(self.pg.pool()).await.expect("PG count");
            (sqlite, pg)
        }

        pub async fn contact(&self, id: &str, name: Option<&str>, owner: Option<&str>) {
            self.exec(
                "INSERT INTO contacts (id, display_name, email, owner_id, created_at, updated_at)
                 VALUES ($1, $2, NULL, $3, $4, $4)",
                &[t(id), opt(name), opt(owner), i(BASE)],
            )
            .await;
        }

        pub async fn identifier(&self, contact: &str, channel: &str, kind: &str, value: &str) {
            self.exec(
                "INSERT INTO contact_identifiers (channel_id, kind, value, contact_id)
                 VALUES ($1, $2, $3, $4)",
                &[t(channel), t(kind), t(value), t(contact)],
            )
            .await;
        }

        /// A ticket of the "support" pipeline.
        pub async fn ticket(
            &self,
            id: &str,
            status: &str,
            owner: Option<&str>,
            closed: Option<i64>,
        ) {
            self.exec(
                "INSERT INTO tickets (id, pipeline, status, owner_id, properties, created_at,
                     updated_at, closed_at)
                 VALUES ($1, 'support', $2, $3, '{}', $4, $4, $5)",
                &[t(id), t(status), opt(owner), i(BASE), opt_i(closed)],
            )
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
            self.exec(
                "INSERT INTO conversations (id, channel_id, thread_key, platform_thread_id, status,
                     owner_id, ticket_id, contact_id, created_at, last_message_at, closed_at)
                 VALUES ($1, $2, $3, NULL, $4, $5, $6, $3, $7, $8, $9)",
                &[
                    t(id),
                    t(channel),
                    t(contact),
                    t(status),
                    opt(owner),
                    t(ticket),
                    i(BASE),
                    i(last),
                    opt_i(closed),
                ],
            )
            .await;
        }

        /// A text message, indexed for search on both sides.
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
            let parts = serde_json::to_string(&vec![Part::Text(TextPart { text: text.into() })])
                .expect("parts");
            let status = if direction == "inbound" {
                "received"
            } else {
                "queued"
            };
            let columns = "id, conversation_id, channel_id, direction, platform_message_id,
                sender_type, sender_id, parts, delivery_status, created_at";
            let args = [
                t(id),
                t(conversation),
                t(channel),
                t(direction),
                t(&format!("p-{id}")),
                t(sender.0),
                t(sender.1),
                t(&parts),
                t(status),
                i(at),
            ];
            self.exec(
                &format!(
                    "INSERT INTO messages ({columns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                ),
                &args,
            )
            .await;
            // What ingest writes besides the row: SQLite's index table, PostgreSQL's column.
            let conn = rusqlite::Connection::open(&self.sqlite_path).expect("open SQLite");
            conn.execute(
                "INSERT INTO message_text (rowid, body)
                 SELECT seq, ?2 FROM messages WHERE id = ?1",
                rusqlite::params![id, text],
            )
            .expect("index the SQLite message");
            sqlx::query("UPDATE messages SET body_text = $2 WHERE id = $1")
                .bind(id)
                .bind(text)
                .execute(self.pg.pool())
                .await
                .expect("PG body_text");
        }

        /// A value both stores' answers are compared as: times stamped by a change read
        /// `<now>` (they differ by the milliseconds between the two calls), errors their
        /// variant and message.
        pub fn view<T: Serialize>(&self, result: &Result<T, StoreError>) -> Value {
            match result {
                Ok(value) => json!({
                    "ok": normalized(serde_json::to_value(value).expect("serialise"), self.since)
                }),
                Err(e) => json!({"err": format!("{e:?}")}),
            }
        }

        /// Asserts both stores answered alike; returns the PostgreSQL answer.
        #[track_caller]
        pub fn agree<T: Serialize>(
            &self,
            (sqlite, pg): (Result<T, StoreError>, Result<T, StoreError>),
        ) -> Result<T, StoreError> {
            assert_eq!(self.view(&pg), self.view(&sqlite), "PostgreSQL vs SQLite");
            pg
        }

        /// Every event so far, on both stores alike.
        pub async fn events(&self) -> Vec<crate::store::Event> {
            let filter = crate::store::EventFilter::default();
            self.agree(both!(self, |s| s.events_after(0, &filter, 1000).await))
                .expect("events")
        }
    }

    impl Drop for Twin {
        /// Drops the schema (also when the test failed), from a thread of its own because
        /// dropping is not async. Tests run on a multi-threaded runtime so that, while this
        /// thread waits, the pool can still roll back what a failed call left open (sqlx
        /// does that in a task when the connection comes back), which the drop waits for.
        fn drop(&mut self) {
            let (url, schema) = (self.url.clone(), self.schema.clone());
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime
                    .block_on(async {
                        use sqlx::Connection;
                        let mut conn = sqlx::PgConnection::connect(&url).await?;
                        sqlx::query("SET lock_timeout = '20s'")
                            .execute(&mut conn)
                            .await?;
                        sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                            .execute(&mut conn)
                            .await?;
                        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                    })
                    .map_err(|e| std::io::Error::other(e.to_string()))
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("could not drop test schema {}: {dropped:?}", self.schema);
            }
        }
    }

    fn normalized(value: Value, since: DateTime<Utc>) -> Value {
        match value {
            Value::String(s) => match DateTime::parse_from_rfc3339(&s) {
                Ok(at) if at >= since => Value::String("<now>".into()),
                _ => Value::String(s),
            },
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| normalized(v, since)).collect())
            }
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, normalized(v, since)))
                    .collect(),
            ),
            other => other,
        }
    }

    pub fn page(limit: u32, cursor: Option<&str>) -> PageRequest {
        PageRequest {
            limit,
            cursor: cursor.map(str::to_owned),
        }
    }

    fn ids<T>(page: &Page<T>, id: impl Fn(&T) -> &str) -> Vec<String> {
        page.items.iter().map(|item| id(item).to_owned()).collect()
    }

    /// Six conversations on two channels, one in the trash:
    ///
    /// | id   | channel | contact | ticket (status) | status | owner | last message |
    /// |------|---------|---------|-----------------|--------|-------|--------------|
    /// | c1   | chat    | ana     | t1 (new)        | open   | alice | BASE+1000    |
    /// | c2   | chat    | bo      | t2 (closed)     | closed | -     | BASE+3000    |
    /// | c3   | mail    | ana     | t3 (new)        | open   | bob   | BASE+3000    |
    /// | c4   | mail    | cy      | t4 (pending)    | open   | -     | BASE+2000    |
    /// | c5   | chat    | cy      | t5 (new)        | closed | alice | BASE+4000    |
    /// | c6   | chat    | dee     | t6 (new), trash | open   | -     | BASE+5000    |
    async fn seeded() -> Twin {
        let twin = Twin::new().await;
        for (contact, name) in [("ana", "Ana"), ("bo", "Bo"), ("cy", "Cy"), ("dee", "Dee")] {
            twin.contact(contact, Some(name), None).await;
        }
        twin.identifier("ana", "chat", "app_user", "ana-1").await;
        twin.identifier("ana", "mail", "email", "ana@example.com")
            .await;
        twin.identifier("ana", "chat", "App_user", "ana-0").await;
        twin.identifier("bo", "chat", "app_user", "bo-1").await;
        twin.identifier("cy", "chat", "app_user", "cy-1").await;
        for (ticket, status, closed) in [
            ("t1", "new", None),
            ("t2", "closed", Some(BASE + 3000)),
            ("t3", "new", None),
            ("t4", "pending", None),
            ("t5", "new", None),
            ("t6", "new", None),
        ] {
            twin.ticket(ticket, status, None, closed).await;
        }
        for (id, channel, contact, ticket, status, owner, last) in [
            ("c1", "chat", "ana", "t1", "open", Some("alice"), 1000),
            ("c2", "chat", "bo", "t2", "closed", None, 3000),
            ("c3", "mail", "ana", "t3", "open", Some("bob"), 3000),
            ("c4", "mail", "cy", "t4", "open", None, 2000),
            ("c5", "chat", "cy", "t5", "closed", Some("alice"), 4000),
            ("c6", "chat", "dee", "t6", "open", None, 5000),
        ] {
            twin.conversation(id, channel, contact, ticket, status, owner, BASE + last)
                .await;
        }
        twin.exec(
            "UPDATE tickets SET deleted_at = $1 WHERE id = 't6'",
            &[i(BASE + 6000)],
        )
        .await;
        twin.exec(
            "UPDATE conversations SET deleted_at = $1 WHERE id = 'c6'",
            &[i(BASE + 6000)],
        )
        .await;
        let texts = [
            ("m1", "c1", "chat", "Hello world, my order #42 is late"),
            (
                "m2",
                "c2",
                "chat",
                "Don't panic: the refund (50%) is on its way",
            ),
            (
                "m3",
                "c3",
                "mail",
                r#"see C:\temp\x and a&b | c! 'quoted' "dq" x:y"#,
            ),
            ("m4", "c4", "mail", "donald trump"),
            ("m5", "c5", "chat", "hello there"),
            ("m6", "c6", "chat", "hello from the trash"),
        ];
        for (n, (id, conversation, channel, text)) in texts.into_iter().enumerate() {
            twin.message(
                id,
                conversation,
                channel,
                "inbound",
                ("contact", "someone"),
                text,
                BASE + n as i64,
            )
            .await;
        }
        twin
    }

    fn conversation_ids(page: &Page<Conversation>) -> Vec<String> {
        ids(page, |c| c.id.as_str())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(pg_tests),
        ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
    )]
    async fn conversations_filter_by_every_field_newest_activity_first() {
        let twin = seeded().await;
        let cases: Vec<(ConversationFilter, &[&str])> = vec![
            // Ties on last activity: the later conversation first. The trashed one never.
            (
                ConversationFilter::default(),
                &["c5", "c3", "c2", "c4", "c1"],
            ),
            (
                ConversationFilter {
                    channel: Some("chat".into()),
                    ..Default::default()
                },
                &["c5", "c2", "c1"],
            ),
            (
                ConversationFilter {
                    status: Some(ConversationStatus::Closed),
                    ..Default::default()
                },
                &["c5", "c2"],
            ),
            (
                ConversationFilter {
                    ticket_status: Some("pending".into()),
                    ..Default::default()
                },
                &["c4"],
            ),
            (
                ConversationFilter {
                    owner: Some("none".into()),
                    ..Default::default()
                },
                &["c2", "c4"],
            ),
            (
                ConversationFilter {
                    owner: Some("alice".into()),
                    ..Default::default()
                },
                &["c5", "c1"],
            ),
            // From is inclusive, to exclusive.
            (
                ConversationFilter {
                    from: Some(from_millis(BASE + 2000)),
                    to: Some(from_millis(BASE + 4000)),
                    ..Default::default()
                },
                &["c3", "c2", "c4"],
            ),
            (
                ConversationFilter {
                    channel: Some("mail".into()),
                    status: Some(ConversationStatus::Open),
                    owner: Some("bob".into()),
                    q: Some("quoted".into()),
                    ..Default::default()
                },
                &["c3"],
            ),
            (
                ConversationFilter {
                    channel: Some("nowhere".into()),
                    ..Default::default()
                },
                &[],
            ),
        ];
        for (filter, expected) in cases {
            let page = twin
                .agree(both!(twin, |s| s
                    .conversations(&filter, &page(10, None))
                    .await))
                .unwrap();
            assert_eq!(conversation_ids(&page), expected, "{filter:?}");
            assert_eq!(page.next_cursor, None);
        }
    }

    #[test]
    fn typed_words_become_quoted_lexemes() {
        assert_eq!(ts_query(""), None);
        assert_eq!(ts_query(" \t\n"), None);
        assert_eq!(ts_query("hello"), Some("'hello':*".into()));
        assert_eq!(
            ts_query(r"it's a\b  x:*"),
            Some(r"'it''s' & 'a\\b' & 'x:*':*".into())
        );
        assert_eq!(ts_query("a\0bc"), Some("'a' & 'bc':*".into()));
        // One character typed last is a whole word, as in FTS5.
        assert_eq!(ts_query("a\0b"), Some("'a' & 'b'".into()));
        // Only the word typed last is a prefix, even when it drops out.
        assert_eq!(ts_query("? hello !"), Some("'hello'".into()));
        assert_eq!(ts_query("&|! :*"), Some(String::new()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(pg_tests),
        ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
    )]
    async fn a_search_with_a_nul_is_answered_not_refused() {
        let twin = seeded().await;
        let filter = ConversationFilter {
            q: Some("hello\0wor".into()),
            ..Default::default()
        };
        let page = twin
            .pg
            .conversations(&filter, &page(10, None))
            .await
            .unwrap();
        assert_eq!(conversation_ids(&page), ["c1"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(pg_tests),
        ignore = "needs PostgreSQL: set CHANNEL_BRIDGE_TEST_PG=postgres://postgres@127.0.0.1:5432/test"
    )]
    async fn messages_page_oldest_first_and_outbound_has_what_a_send_needs() {
        let twin = seeded().await;
        for (n, id) in ["r1", "r2", "r3"].into_iter().enumerate() {
            twin.message(
                id,
                "c1",
                "chat",
                "outbound",
                ("rep", "alice"),
                &format!("reply {n}"),
                BASE + 100 + n as i64,
            )
            .await;
        }
        twin.exec(
            "UPDATE messages SET reply_to = 'm1', attempts = 2, delivery_note = 'sent as a link',
                 edited_at = $1, history = '[]'
             WHERE id = 'r1'",
            &[i(BASE + 500)],
        )
        .await;
        let c1 = ConversationId::from_stored("c1".into());
        let first = twin
            .agree(both!(twin, |s| s.messages(&c1, &page(2, None)).await))
            .unwrap();
        assert_eq!(ids(&first, |m| m.id.as_str()), ["m1", "r1"]);
        assert_eq!(
            first.items[1].reply_to.as_ref().map(|m| m.as_str()),
            Some("m1")
        );
        assert_eq!(first.items[1].delivery.attempts, 2);
        assert_eq!(first.items[1].edited_at, Some(from_millis(BASE + 500)));
        let cursor = first.next_cursor.clone().expect("a second page");
        let second = twin
            .agree(both!(twin, |s| s
                .messages(&c1, &page(2, Some(&cursor)))
                .await))
            .unwrap();
        assert_eq!(ids(&second, |m| m.id.as_str()), ["r2", "r3"]);
        assert_eq!(second.next_cursor, None);
        for (conversation, request) in [("c6", page(2, None)), ("nope", page(2, None))] {
            let id = ConversationId::from_stored(conversation.into());
            let result = twin.agree(both!(twin, |s| s.messages(&id, &request).await));
            assert!(matches!(result, Err(StoreError::NotFound("conversation"))));
        }
        let bad = page(2, Some("x"));
        let result = twin.agree(both!(twin, |s| s.messages(&c1, &bad).await));
        assert!(matches!(result, Err(StoreError::Invalid(_))));

        let r1 = MessageId::from_stored("r1".into());
        let message = twin.agree(both!(twin, |s| s.message(&r1).await)).unwrap();
        assert_eq!(message.delivery.note.as_deref(), Some("sent as a link"));
        let missing = MessageId::from_stored("nope".into());
        let result = twin.agree(both!(twin, |s| s.message(&missing).await));
        assert!(matches!(result, Err(StoreError::NotFound("message"))));

        let (sqlite, pg) = both!(twin, |s| s.outbound(&r1).await);
        let outbound = pg.unwrap();
        assert_eq!(outbound, sqlite.unwrap());
        assert_eq!(outbound.conversation_id.as_str(), "c1");
        // The first identifier by kind, in byte order; the quoted message's platform id.
        assert_eq!(
            (outbound.to.kind.as_str(), outbound.to.value.as_str()),
            ("App_user", "ana-0")
        );
        assert_eq!(outbound.reply_to.as_deref(), Some("p-m1"));
        assert_eq!(
            outbound.parts,
            [Part::Text(TextPart {
                text: "reply 0".into()
            })]
        );
        let r2 = twin
            .agree(both!(twin, |s| s
                .outbound(&MessageId::from_stored("r2".into()))
                .await
                .map(|o| o.reply_to)))
            .unwrap();
        assert_eq!(r2, None);
        // Inbound messages are not sent; a contact without an identifier there cannot be.
        let m1 = MessageId::from_stored("m1".into());
        let result = twin.agree(both!(twin, |s| s.outbound(&m1).await.map(|_| ())));
        assert!(matches!(result, Err(StoreError::NotFound("message"))));
        twin.message(
            "r4",
            "c4",
            "mail",
            "outbound",
            ("rep", "bob"),
            "hi",
            BASE + 9,
        )
        .await;
        let r4 = MessageId::from_stored("r4".into());
        let result = twin.agree(both!(twin, |s| s.outbound(&r4).await.map(|_| ())));
        assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    }
}
