-- channel-bridge schema, version 1 (SQLite).
-- Times are unix milliseconds (INTEGER). Ids are prefixed ULIDs (TEXT); `seq` columns give
-- insertion order for paging.

CREATE TABLE contacts (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    display_name TEXT,
    email        TEXT,
    owner_id     TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- How a contact is reached on each channel; the key an inbound message is matched by.
CREATE TABLE contact_identifiers (
    channel_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    contact_id TEXT NOT NULL REFERENCES contacts(id),
    PRIMARY KEY (channel_id, kind, value)
) WITHOUT ROWID;
CREATE INDEX contact_identifiers_by_contact ON contact_identifiers(contact_id);

CREATE TABLE tickets (
    seq        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    pipeline   TEXT NOT NULL,
    status     TEXT NOT NULL,
    priority   TEXT,
    owner_id   TEXT,
    properties TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    closed_at  INTEGER,
    deleted_at INTEGER
);

CREATE TABLE conversations (
    seq                INTEGER PRIMARY KEY,
    id                 TEXT NOT NULL UNIQUE,
    channel_id         TEXT NOT NULL,
    thread_key         TEXT NOT NULL,
    platform_thread_id TEXT,
    status             TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    owner_id           TEXT,
    ticket_id          TEXT NOT NULL REFERENCES tickets(id),
    contact_id         TEXT NOT NULL REFERENCES contacts(id),
    created_at         INTEGER NOT NULL,
    last_message_at    INTEGER NOT NULL,
    closed_at          INTEGER,
    deleted_at         INTEGER
);
-- At most one open conversation per thread: the database enforces what threading decides.
CREATE UNIQUE INDEX conversations_one_open_per_thread
    ON conversations(channel_id, thread_key) WHERE status = 'open' AND deleted_at IS NULL;
CREATE INDEX conversations_by_thread ON conversations(channel_id, thread_key, seq);
CREATE INDEX conversations_by_activity ON conversations(last_message_at, seq);
CREATE INDEX conversations_by_ticket ON conversations(ticket_id);

CREATE TABLE messages (
    seq                 INTEGER PRIMARY KEY,
    id                  TEXT NOT NULL UNIQUE,
    conversation_id     TEXT NOT NULL REFERENCES conversations(id),
    channel_id          TEXT NOT NULL,
    direction           TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
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
    created_at          INTEGER NOT NULL
);
-- The deduplication key of inbound messages: a redelivered webhook stores nothing.
CREATE UNIQUE INDEX messages_inbound_once
    ON messages(channel_id, platform_message_id) WHERE direction = 'inbound';
CREATE INDEX messages_outbound_by_platform_id
    ON messages(channel_id, platform_message_id) WHERE direction = 'outbound';
CREATE INDEX messages_by_conversation ON messages(conversation_id, seq);

-- Every status report a platform sent, applied or not: a report that arrives before the
-- send that gives the message its platform id is applied when that send completes.
CREATE TABLE status_reports (
    seq                 INTEGER PRIMARY KEY,
    channel_id          TEXT NOT NULL,
    platform_message_id TEXT NOT NULL,
    status              TEXT NOT NULL,
    error               TEXT,
    received_at         INTEGER NOT NULL
);
CREATE INDEX status_reports_by_message ON status_reports(channel_id, platform_message_id);

-- The outbox. A job is pending until it succeeds (deleted) or runs out of tries (dead).
-- Jobs with the same ordering_key run one at a time, oldest first.
CREATE TABLE jobs (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    channel_id   TEXT NOT NULL,
    ordering_key TEXT,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'dead')),
    run_at       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_until  INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX jobs_due ON jobs(run_at, seq) WHERE state = 'pending';
CREATE INDEX jobs_by_order ON jobs(ordering_key, seq) WHERE state = 'pending';
CREATE INDEX jobs_dead ON jobs(seq) WHERE state = 'dead';
