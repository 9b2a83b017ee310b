-- Internal comments live in the thread as messages with direction 'internal' and kind
-- 'comment'. SQLite cannot change a CHECK constraint, so the messages table is rebuilt
-- with the same rows; `seq` is kept, since it is the full-text rowid and the page cursor.
CREATE TABLE messages_new (
    seq                 INTEGER PRIMARY KEY,
    id                  TEXT NOT NULL UNIQUE,
    conversation_id     TEXT NOT NULL REFERENCES conversations(id),
    channel_id          TEXT NOT NULL,
    direction           TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    kind                TEXT NOT NULL DEFAULT 'message' CHECK (kind IN ('message', 'comment')),
    platform_message_id TEXT,
    sender_type         TEXT NOT NULL,
    sender_id           TEXT NOT NULL,
    reply_to            TEXT,
    parts               TEXT NOT NULL,
    raw                 TEXT,
    delivery_status     TEXT NOT NULL,
    delivery_error      TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    platform_sent_at    INTEGER,
    created_at          INTEGER NOT NULL,
    edited_at           INTEGER,
    retracted_at        INTEGER,
    history             TEXT,
    delivery_note       TEXT,
    -- JSON list of the rep ids a comment mentions.
    mentions            TEXT
);
INSERT INTO messages_new (seq, id, conversation_id, channel_id, direction, platform_message_id,
        sender_type, sender_id, reply_to, parts, raw, delivery_status, delivery_error, attempts,
        platform_sent_at, created_at, edited_at, retracted_at, history, delivery_note)
    SELECT seq, id, conversation_id, channel_id, direction, platform_message_id,
        sender_type, sender_id, reply_to, parts, raw, delivery_status, delivery_error, attempts,
        platform_sent_at, created_at, edited_at, retracted_at, history, delivery_note
    FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE UNIQUE INDEX messages_inbound_once
    ON messages(channel_id, platform_message_id) WHERE direction = 'inbound';
CREATE INDEX messages_outbound_by_platform_id
    ON messages(channel_id, platform_message_id) WHERE direction = 'outbound';
CREATE INDEX messages_by_conversation ON messages(conversation_id, seq);
CREATE INDEX messages_outbound_by_conversation_time
    ON messages(conversation_id, created_at) WHERE direction = 'outbound';

-- A merged contact stays as a tombstone pointing at the contact it was merged into.
ALTER TABLE contacts ADD COLUMN merged_into TEXT;
CREATE INDEX contacts_merged ON contacts(merged_into) WHERE merged_into IS NOT NULL;

-- What happened to a contact outside its tickets: created through the API, merged.
CREATE TABLE contact_audit (
    seq        INTEGER PRIMARY KEY,
    contact_id TEXT NOT NULL,
    action     TEXT NOT NULL,          -- created | merged
    actor      TEXT NOT NULL,
    changes    TEXT NOT NULL,          -- JSON
    at         INTEGER NOT NULL
);
CREATE INDEX contact_audit_by_contact ON contact_audit(contact_id, seq);

-- Reply snippets created through the API (those in the config are not stored).
CREATE TABLE snippets (
    id         TEXT PRIMARY KEY,
    text       TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
