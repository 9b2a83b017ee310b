//! Reads for the API and the delivery worker, run on the read-only pool.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use crate::desk::inboxes::Scope;
use crate::model::outbound::Outbound;
use crate::model::{
    ChannelIdentifier, Contact, ContactId, Conversation, ConversationId, ConversationStatus,
    Delivery, DeliveryStatus, Direction, Identifier, Message, MessageId, MessageKind, Sender,
    SenderKind, TicketId, from_millis,
};
use crate::store::{ConversationFilter, Page, StoreError};

/// The identifier a message to `contact` on `channel` goes to: the first by kind, so a
/// delivery and a HubSpot publish of the same conversation name the same one.
pub fn channel_identifier(
    conn: &Connection,
    contact: &str,
    channel: &str,
) -> Result<Identifier, StoreError> {
    conn.prepare_cached(
        "SELECT kind, value FROM contact_identifiers WHERE contact_id = ?1 AND channel_id = ?2
         ORDER BY kind LIMIT 1",
    )?
    .query_row(params![contact, channel], |r| {
        Ok(Identifier {
            kind: r.get(0)?,
            value: r.get(1)?,
        })
    })
    .optional()?
    .ok_or_else(|| crate::store::shared::no_identifier(contact, channel))
}

const CONVERSATION_COLUMNS: &str = "c.seq, c.id, c.channel_id, c.thread_key, c.platform_thread_id,
    c.status, c.owner_id, c.ticket_id, c.created_at, c.last_message_at,
    k.id, k.display_name, k.email, k.owner_id";

pub fn contact_identifiers(
    conn: &Connection,
    contact: &str,
) -> Result<Vec<ChannelIdentifier>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT channel_id, kind, value FROM contact_identifiers WHERE contact_id = ?1
         ORDER BY channel_id, kind, value",
    )?;
    let rows = statement.query_map([contact], |r| {
        Ok(ChannelIdentifier {
            channel_id: r.get(0)?,
            kind: r.get(1)?,
            value: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn conversation_row(conn: &Connection, row: &Row) -> Result<(i64, Conversation), StoreError> {
    let contact_id: String = row.get(10)?;
    let status: String = row.get(5)?;
    let conversation = Conversation {
        id: ConversationId::from_stored(row.get(1)?),
        channel_id: row.get(2)?,
        thread_key: row.get(3)?,
        platform_thread_id: row.get(4)?,
        status: ConversationStatus::parse(&status).unwrap_or(ConversationStatus::Open),
        owner_id: row.get(6)?,
        ticket_id: TicketId::from_stored(row.get(7)?),
        created_at: from_millis(row.get(8)?),
        last_message_at: from_millis(row.get(9)?),
        contact: Contact {
            identifiers: contact_identifiers(conn, &contact_id)?,
            id: ContactId::from_stored(contact_id),
            display_name: row.get(11)?,
            email: row.get(12)?,
            owner_id: row.get(13)?,
        },
    };
    Ok((row.get(0)?, conversation))
}

pub fn conversation(conn: &Connection, id: &ConversationId) -> Result<Conversation, StoreError> {
    let sql = format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c JOIN contacts k ON k.id = c.contact_id
         WHERE c.id = ?1 AND c.deleted_at IS NULL"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query([id.as_str()])?;
    match rows.next()? {
        Some(row) => Ok(conversation_row(conn, row)?.1),
        None => Err(StoreError::NotFound("conversation")),
    }
}

/// Above this many matching messages a search stops asking SQLite to map every match to
/// its conversation and walks the conversations in order instead (see [`Matches`]).
const SEARCH_WALK_ABOVE: usize = 20_000;

/// The messages a search matches, read from the index newest first and only as far as
/// the search needs: the prefix indexes (migration 0017) let FTS5 stream even a word in
/// every message without building its whole match list first.
struct Matches<'s> {
    rows: rusqlite::Rows<'s>,
    /// The seqs read so far, newest first.
    read: Vec<i64>,
    exhausted: bool,
}

impl Matches<'_> {
    /// Reads one more match; false once every match is read.
    fn read_one(&mut self) -> Result<bool, StoreError> {
        if !self.exhausted {
            match self.rows.next()? {
                Some(row) => self.read.push(row.get(0)?),
                None => self.exhausted = true,
            }
        }
        Ok(!self.exhausted)
    }

    /// Reads on until `seq` is passed (or every match is read).
    fn read_past(&mut self, seq: i64) -> Result<(), StoreError> {
        while self.read.last().is_none_or(|&last| last > seq) && self.read_one()? {}
        Ok(())
    }

    /// Reads on until `count` matches are read; false when there are not that many.
    fn read_count(&mut self, count: usize) -> Result<bool, StoreError> {
        while self.read.len() < count && self.read_one()? {}
        Ok(self.read.len() >= count)
    }

    fn contains(&mut self, seq: i64) -> Result<bool, StoreError> {
        self.read_past(seq)?;
        Ok(self.read.binary_search_by(|read| seq.cmp(read)).is_ok())
    }

    /// Whether any message of the conversation (by its id) matches. A common word is in
    /// one of a conversation's newest messages, so this reads few matches per call.
    fn in_conversation(
        &mut self,
        conn: &Connection,
        conversation: &str,
    ) -> Result<bool, StoreError> {
        let mut statement = conn.prepare_cached(
            "SELECT seq FROM messages WHERE conversation_id = ?1 ORDER BY seq DESC",
        )?;
        let mut rows = statement.query([conversation])?;
        while let Some(row) = rows.next()? {
            if self.contains(row.get(0)?)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Newest activity first; the cursor is `last_message_at:seq` of the last item.
pub fn conversations(
    conn: &Connection,
    filter: &ConversationFilter,
    cursor: Option<(i64, i64)>,
    limit: u32,
) -> Result<Page<Conversation>, StoreError> {
    conversations_walking_above(conn, filter, cursor, limit, SEARCH_WALK_ABOVE)
}

fn conversations_walking_above(
    conn: &Connection,
    filter: &ConversationFilter,
    cursor: Option<(i64, i64)>,
    limit: u32,
    walk_above: usize,
) -> Result<Page<Conversation>, StoreError> {
    let mut sql = format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c JOIN contacts k ON k.id = c.contact_id
         WHERE c.deleted_at IS NULL"
    );
    let mut args: Vec<SqlValue> = Vec::new();
    push_channels(&mut sql, &mut args, filter.channel.as_ref(), &filter.scope)?;
    if let Some(contact) = &filter.contact {
        args.push(SqlValue::Text(contact.as_str().into()));
        sql += &format!(" AND c.contact_id = ?{}", args.len());
    }
    if let Some(status) = filter.status {
        args.push(SqlValue::Text(status.as_str().into()));
        sql += &format!(" AND c.status = ?{}", args.len());
    }
    if let Some(status) = &filter.ticket_status {
        args.push(SqlValue::Text(status.clone()));
        sql += &format!(
            " AND c.ticket_id IN (SELECT id FROM tickets WHERE status = ?{})",
            args.len()
        );
    }
    if let Some(from) = filter.from {
        args.push(SqlValue::Integer(from.timestamp_millis()));
        sql += &format!(" AND c.last_message_at >= ?{}", args.len());
    }
    if let Some(to) = filter.to {
        args.push(SqlValue::Integer(to.timestamp_millis()));
        sql += &format!(" AND c.last_message_at < ?{}", args.len());
    }
    let fts = filter
        .q
        .as_deref()
        .and_then(|q| super::search::fts_query_on(conn, q));
    let mut index = match &fts {
        Some(_) => Some(conn.prepare_cached(
            "SELECT rowid FROM message_text WHERE message_text MATCH ?1 ORDER BY rowid DESC",
        )?),
        None => None,
    };
    let mut walk = None;
    if let (Some(statement), Some(fts)) = (index.as_mut(), &fts) {
        let mut matches = Matches {
            rows: statement.query([fts])?,
            read: Vec::new(),
            exhausted: false,
        };
        if matches.read_count(walk_above.saturating_add(1))? {
            walk = Some(matches);
        } else {
            args.push(SqlValue::Text(crate::store::shared::json(&matches.read)?));
            sql += &format!(
                " AND c.id IN (SELECT m.conversation_id FROM messages m
                     WHERE m.seq IN (SELECT value FROM json_each(?{})))",
                args.len()
            );
        }
    }
    match filter.owner.as_deref() {
        Some("none") => sql += " AND c.owner_id IS NULL",
        Some(owner) => {
            args.push(SqlValue::Text(owner.into()));
            sql += &format!(" AND c.owner_id = ?{}", args.len());
        }
        None => {}
    }
    if let Some((at, seq)) = cursor {
        args.push(SqlValue::Integer(at));
        args.push(SqlValue::Integer(seq));
        sql += &format!(
            " AND (c.last_message_at, c.seq) < (?{}, ?{})",
            args.len() - 1,
            args.len()
        );
    }
    sql += " ORDER BY c.last_message_at DESC, c.seq DESC";
    if walk.is_none() {
        args.push(SqlValue::Integer(limit as i64 + 1));
        sql += &format!(" LIMIT ?{}", args.len());
    }
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(params_from_iter(args))?;
    let mut items = Vec::new();
    let mut last: Option<(i64, i64)> = None;
    while let Some(row) = rows.next()? {
        if let Some(matches) = &mut walk
            && !matches.in_conversation(conn, &row.get::<_, String>(1)?)?
        {
            continue;
        }
        if items.len() == limit as usize {
            return Ok(Page {
                items,
                next_cursor: last.map(|(at, seq)| format!("{at}:{seq}")),
            });
        }
        let (seq, conversation) = conversation_row(conn, row)?;
        last = Some((conversation.last_message_at.timestamp_millis(), seq));
        items.push(conversation);
    }
    Ok(Page {
        items,
        next_cursor: None,
    })
}

const MESSAGE_COLUMNS: &str =
    "seq, id, conversation_id, channel_id, direction, platform_message_id,
    sender_type, sender_id, reply_to, parts, delivery_status, delivery_error, attempts, created_at,
    edited_at, history, retracted_at, delivery_note, kind, mentions";

fn message_row(row: &Row) -> Result<(i64, Message), StoreError> {
    let parts: String = row.get(9)?;
    let parts = crate::store::shared::parts(&parts)?;
    let direction: String = row.get(4)?;
    let sender: String = row.get(6)?;
    let status: String = row.get(10)?;
    let kind: String = row.get(18)?;
    let message = Message {
        id: MessageId::from_stored(row.get(1)?),
        kind: MessageKind::parse(&kind).unwrap_or_default(),
        conversation_id: ConversationId::from_stored(row.get(2)?),
        channel_id: row.get(3)?,
        direction: Direction::parse(&direction).unwrap_or(Direction::Inbound),
        platform_message_id: row.get(5)?,
        sender: Sender {
            kind: SenderKind::parse(&sender).unwrap_or(SenderKind::System),
            id: row.get(7)?,
        },
        reply_to: row.get::<_, Option<String>>(8)?.map(MessageId::from_stored),
        parts,
        mentions: row
            .get::<_, Option<String>>(19)?
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or_default(),
        delivery: Delivery {
            status: DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Queued),
            error: row.get(11)?,
            attempts: row.get(12)?,
            note: row.get(17)?,
        },
        created_at: from_millis(row.get(13)?),
        edited_at: row.get::<_, Option<i64>>(14)?.map(from_millis),
        history: row
            .get::<_, Option<String>>(15)?
            .and_then(|h| serde_json::from_str(&h).ok())
            .unwrap_or_default(),
        retracted_at: row.get::<_, Option<i64>>(16)?.map(from_millis),
    };
    Ok((row.get(0)?, message))
}

/// Oldest first; the cursor is the `seq` of the last item.
pub fn messages(
    conn: &Connection,
    conversation: &ConversationId,
    after: i64,
    limit: u32,
) -> Result<Page<Message>, StoreError> {
    let exists: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM conversations WHERE id = ?1 AND deleted_at IS NULL")?
        .query_row([conversation.as_str()], |r| r.get(0))
        .optional()?;
    if exists.is_none() {
        return Err(StoreError::NotFound("conversation"));
    }
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?1 AND seq > ?2
         ORDER BY seq LIMIT ?3"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(params![conversation.as_str(), after, limit as i64 + 1])?;
    let mut items = Vec::new();
    let mut last = 0;
    while let Some(row) = rows.next()? {
        if items.len() == limit as usize {
            return Ok(Page {
                items,
                next_cursor: Some(last.to_string()),
            });
        }
        let (seq, message) = message_row(row)?;
        last = seq;
        items.push(message);
    }
    Ok(Page {
        items,
        next_cursor: None,
    })
}

pub fn message(conn: &Connection, id: &MessageId) -> Result<Message, StoreError> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1");
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query([id.as_str()])?;
    match rows.next()? {
        Some(row) => Ok(message_row(row)?.1),
        None => Err(StoreError::NotFound("message")),
    }
}

/// The columns of an outbound message that a send needs.
struct OutboundRow {
    conversation: String,
    channel: String,
    parts: String,
    reply_to: Option<String>,
    platform_thread_id: Option<String>,
    contact: String,
}

pub fn outbound(conn: &Connection, id: &MessageId) -> Result<Outbound, StoreError> {
    let OutboundRow {
        conversation,
        channel,
        parts,
        reply_to,
        platform_thread_id,
        contact,
    } = conn
        .prepare_cached(
            "SELECT m.conversation_id, m.channel_id, m.parts, m.reply_to, c.platform_thread_id,
                    c.contact_id
             FROM messages m JOIN conversations c ON c.id = m.conversation_id
             WHERE m.id = ?1 AND m.direction = 'outbound'",
        )?
        .query_row([id.as_str()], |r| {
            Ok(OutboundRow {
                conversation: r.get(0)?,
                channel: r.get(1)?,
                parts: r.get(2)?,
                reply_to: r.get(3)?,
                platform_thread_id: r.get(4)?,
                contact: r.get(5)?,
            })
        })
        .optional()?
        .ok_or(StoreError::NotFound("message"))?;
    let to = channel_identifier(conn, &contact, &channel)?;
    let reply_to = match reply_to {
        Some(target) => conn
            .prepare_cached("SELECT platform_message_id FROM messages WHERE id = ?1")?
            .query_row([target], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten(),
        None => None,
    };
    Ok(Outbound {
        message_id: id.clone(),
        conversation_id: ConversationId::from_stored(conversation),
        platform_thread_id,
        to,
        reply_to,
        parts: crate::store::shared::parts(&parts)?,
    })
}

/// ` AND …` clauses keeping rows of conversations `c` on `channel` (when given) and within
/// `scope`, their values appended to `args` and numbered after them.
pub fn push_channels(
    sql: &mut String,
    args: &mut Vec<SqlValue>,
    channel: Option<&String>,
    scope: &Scope,
) -> Result<(), StoreError> {
    if let Some(channel) = channel {
        args.push(SqlValue::Text(channel.clone()));
        *sql += &format!(" AND c.channel_id = ?{}", args.len());
    }
    let (operator, channels) = match scope {
        Scope::All => ("", None),
        Scope::Only(channels) => ("IN", Some(channels)),
        Scope::Except(channels) => ("NOT IN", Some(channels)),
    };
    if let Some(channels) = channels {
        args.push(SqlValue::Text(crate::store::shared::json(channels)?));
        *sql += &format!(
            " AND c.channel_id {operator} (SELECT value FROM json_each(?{}))",
            args.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    /// Five conversations, newest activity last; "apple" is said in conversations 1, 3 and 4.
    async fn store_with_fruit() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
        let mut seed = String::from(
            "INSERT INTO contacts (id, created_at, updated_at) VALUES ('ctc_a', 1, 1);
             INSERT INTO tickets (id, pipeline, status, created_at, updated_at)
                 VALUES ('tkt_a', 'support', 'new', 1, 1);",
        );
        for c in 0..5 {
            seed += &format!(
                "INSERT INTO conversations (id, channel_id, thread_key, status, ticket_id,
                     contact_id, created_at, last_message_at)
                     VALUES ('conv_{c}', 'demo', 'k{c}', 'open', 'tkt_a', 'ctc_a', 1, {at});",
                at = 100 + c
            );
            for (m, word) in [
                (0, "banana"),
                (
                    1,
                    if [1, 3, 4].contains(&c) {
                        "apple"
                    } else {
                        "pear"
                    },
                ),
            ] {
                let seq = c * 10 + m + 1;
                seed += &format!(
                    "INSERT INTO messages (seq, id, conversation_id, channel_id, direction,
                         platform_message_id, sender_type, sender_id, parts, delivery_status,
                         created_at)
                         VALUES ({seq}, 'msg_{seq}', 'conv_{c}', 'demo', 'inbound', 'p{seq}',
                             'contact', 'ctc_a', '[]', 'received', 1);
                     INSERT INTO message_text (rowid, body) VALUES ({seq}, 'a {word}');"
                );
            }
        }
        store.execute_for_tests(&seed).await.unwrap();
        (store, dir)
    }

    /// Pages of ids and cursors for `q`, two conversations a page.
    async fn pages(
        store: &SqliteStore,
        q: &str,
        walk_above: usize,
    ) -> Vec<(Vec<String>, Option<String>)> {
        let filter = ConversationFilter {
            q: Some(q.into()),
            ..ConversationFilter::default()
        };
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let (filter, at) = (filter.clone(), cursor);
            let page = store
                .readers
                .read(move |conn| conversations_walking_above(conn, &filter, at, 2, walk_above))
                .await
                .unwrap();
            let ids = page.items.iter().map(|c| c.id.to_string()).collect();
            cursor = page.next_cursor.as_deref().map(|c| {
                let (at, seq) = c.split_once(':').unwrap();
                (at.parse().unwrap(), seq.parse().unwrap())
            });
            out.push((ids, page.next_cursor));
            if cursor.is_none() {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn a_common_word_walks_the_list_and_finds_what_the_mapped_search_finds() {
        let (store, _dir) = store_with_fruit().await;
        let mapped = pages(&store, "apple", usize::MAX).await;
        let walked = pages(&store, "apple", 0).await;
        let ids: Vec<Vec<String>> = walked.iter().map(|(ids, _)| ids.clone()).collect();
        assert_eq!(ids, [vec!["conv_4", "conv_3"], vec!["conv_1"]]);
        assert_eq!(
            walked, mapped,
            "both strategies give the same pages and cursors"
        );
        // A prefix of the last word, and a word nobody said.
        assert_eq!(
            pages(&store, "app", 0).await,
            pages(&store, "app", usize::MAX).await
        );
        assert_eq!(
            pages(&store, "kiwi", 0).await,
            [(Vec::<String>::new(), None)]
        );
    }
}
