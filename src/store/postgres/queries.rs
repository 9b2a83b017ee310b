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
    Delivery, DeliveryStatus, Direction, Identifier, Message, MessageId, MessageKind, Sender,
    SenderKind, TicketId, from_millis,
};
use crate::store::{ConversationFilter, Page, StoreError};

/// The contact's columns are renamed so every column of a row has its own name.
const CONVERSATION_COLUMNS: &str = "c.seq, c.id, c.channel_id, c.thread_key, c.platform_thread_id,
    c.status, c.owner_id, c.ticket_id, c.created_at, c.last_message_at,
    k.id AS contact_id, k.display_name AS contact_display_name, k.email AS contact_email,
    k.owner_id AS contact_owner_id";

/// The identifier a message to `contact` on `channel` goes to: the first by kind in byte
/// order (as SQLite sorts), so a delivery and a HubSpot publish of the same conversation name
/// the same one whatever the database's collation.
pub async fn channel_identifier(
    c: &mut PgConnection,
    contact: &str,
    channel: &str,
) -> Result<Identifier, StoreError> {
    let (kind, value) = sqlx::query_as(
        r#"SELECT kind, value FROM contact_identifiers WHERE contact_id = $1 AND channel_id = $2
         ORDER BY kind COLLATE "C" LIMIT 1"#,
    )
    .bind(contact)
    .bind(channel)
    .fetch_optional(&mut *c)
    .await?
    .ok_or_else(|| crate::store::shared::no_identifier(contact, channel))?;
    Ok(Identifier { kind, value })
}

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
    let parts = crate::store::shared::parts(&parts)?;
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
    let to = channel_identifier(c, &contact, &channel).await?;
    Ok(Outbound {
        message_id: id.clone(),
        conversation_id: ConversationId::from_stored(get(&row, "conversation_id")?),
        platform_thread_id: get(&row, "platform_thread_id")?,
        to,
        reply_to: get(&row, "reply_to")?,
        parts: crate::store::shared::parts(&parts)?,
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
mod tests {
    use super::*;

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
}
