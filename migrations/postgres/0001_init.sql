-- channel-bridge schema, version 1 (PostgreSQL): the SQLite schema (migrations/sqlite,
-- versions 1-6) in one step. Times are unix milliseconds (BIGINT). Ids are prefixed ULIDs
-- (TEXT); `seq` columns give insertion order for paging. JSON columns are TEXT, written
-- and read by the same serde code as on SQLite.

CREATE TABLE contacts (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    display_name TEXT,
    email        TEXT,
    owner_id     TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- How a contact is reached on each channel; the key an inbound message is matched by.
CREATE TABLE contact_identifiers (
    channel_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    contact_id TEXT NOT NULL REFERENCES contacts(id),
    PRIMARY KEY (channel_id, kind, value)
);
CREATE INDEX contact_identifiers_by_contact ON contact_identifiers(contact_id);

CREATE TABLE tickets (
    seq        BIGSERIAL PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    pipeline   TEXT NOT NULL,
    status     TEXT NOT NULL,
    priority   TEXT,
    owner_id   TEXT,
    properties TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    closed_at  BIGINT,
    deleted_at BIGINT
);
CREATE INDEX tickets_by_status ON tickets(status);
CREATE INDEX tickets_deleted ON tickets(deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE conversations (
    seq                BIGSERIAL PRIMARY KEY,
    id                 TEXT NOT NULL UNIQUE,
    channel_id         TEXT NOT NULL,
    thread_key         TEXT NOT NULL,
    platform_thread_id TEXT,
    status             TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    owner_id           TEXT,
    ticket_id          TEXT NOT NULL REFERENCES tickets(id),
    contact_id         TEXT NOT NULL REFERENCES contacts(id),
    created_at         BIGINT NOT NULL,
    last_message_at    BIGINT NOT NULL,
    closed_at          BIGINT,
    deleted_at         BIGINT
);
-- At most one open conversation per thread, across every replica.
CREATE UNIQUE INDEX conversations_one_open_per_thread
    ON conversations(channel_id, thread_key) WHERE status = 'open' AND deleted_at IS NULL;
CREATE INDEX conversations_by_thread ON conversations(channel_id, thread_key, seq);
CREATE INDEX conversations_by_activity ON conversations(last_message_at, seq);
CREATE INDEX conversations_by_ticket ON conversations(ticket_id);
CREATE INDEX conversations_deleted ON conversations(deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX conversations_open_by_owner ON conversations(owner_id)
    WHERE status = 'open' AND deleted_at IS NULL;
CREATE INDEX conversations_waiting ON conversations(channel_id, created_at)
    WHERE status = 'open' AND owner_id IS NULL AND deleted_at IS NULL;

CREATE TABLE messages (
    seq                 BIGSERIAL PRIMARY KEY,
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
    platform_sent_at    BIGINT,
    created_at          BIGINT NOT NULL,
    edited_at           BIGINT,
    retracted_at        BIGINT,
    -- JSON list of {"parts": [...], "replaced_at": "…"}: what the message said before each edit.
    history             TEXT,
    delivery_note       TEXT,
    -- What the message says (texts and captions), for full-text search.
    body_text           TEXT,
    search              tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(body_text, ''))) STORED
);
-- The deduplication key of inbound messages: a redelivered webhook stores nothing.
CREATE UNIQUE INDEX messages_inbound_once
    ON messages(channel_id, platform_message_id) WHERE direction = 'inbound';
CREATE INDEX messages_outbound_by_platform_id
    ON messages(channel_id, platform_message_id) WHERE direction = 'outbound';
CREATE INDEX messages_by_conversation ON messages(conversation_id, seq);
CREATE INDEX messages_outbound_by_conversation_time
    ON messages(conversation_id, created_at) WHERE direction = 'outbound';
CREATE INDEX messages_search ON messages USING GIN (search);

-- Every status report a platform sent, applied or not.
CREATE TABLE status_reports (
    seq                 BIGSERIAL PRIMARY KEY,
    channel_id          TEXT NOT NULL,
    platform_message_id TEXT NOT NULL,
    status              TEXT NOT NULL,
    error               TEXT,
    received_at         BIGINT NOT NULL
);
CREATE INDEX status_reports_by_message ON status_reports(channel_id, platform_message_id);

-- The outbox, shared by every replica: jobs are leased with FOR UPDATE SKIP LOCKED and a
-- lease expiry. Jobs with the same ordering_key run one at a time, oldest first.
CREATE TABLE jobs (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    channel_id   TEXT NOT NULL,
    ordering_key TEXT,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'dead')),
    run_at       BIGINT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_until  BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs(run_at, seq) WHERE state = 'pending';
CREATE INDEX jobs_by_order ON jobs(ordering_key, seq) WHERE state = 'pending';
CREATE INDEX jobs_dead ON jobs(seq) WHERE state = 'dead';

-- Who changed what on tickets and conversations, when and why.
CREATE TABLE audit (
    seq         BIGSERIAL PRIMARY KEY,
    ticket_id   TEXT NOT NULL,
    entity      TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    changes     TEXT NOT NULL,
    reason      TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX audit_by_ticket ON audit(ticket_id, seq);

-- Live events for GET /api/v1/events. Writers take an advisory lock before inserting one
-- and hold it to commit, so `seq` order is commit order and a stream never skips one.
CREATE TABLE events (
    seq             BIGSERIAL PRIMARY KEY,
    kind            TEXT NOT NULL,
    channel_id      TEXT,
    conversation_id TEXT,
    owner_id        TEXT,
    data            TEXT NOT NULL,
    at              BIGINT NOT NULL
);
CREATE INDEX events_by_time ON events(at);

-- Reps' presence as last reported; effective presence also expires (presence.timeout_s).
CREATE TABLE presence (
    rep_id     TEXT PRIMARY KEY,
    status     TEXT NOT NULL CHECK (status IN ('online', 'away', 'offline')),
    updated_at BIGINT NOT NULL
);

-- The round-robin cursor per channel, shared by every replica.
CREATE TABLE routing_state (
    channel_id TEXT PRIMARY KEY,
    last_rep   TEXT NOT NULL
);

-- Reps' own notification choice (overrides [[reps]].notify) and when their last digest went.
CREATE TABLE rep_settings (
    rep_id         TEXT PRIMARY KEY,
    notify         BOOLEAN,
    last_digest_at BIGINT
);

-- Wake-ups for every replica: a new event wakes event streams; a job that may have become
-- leasable (queued, given back, retried, finished so the next in order is free) wakes
-- delivery workers. Leasing itself notifies nobody. Channels are per schema.
CREATE FUNCTION channel_bridge_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0] || substr(md5(current_schema()), 1, 16), '');
    RETURN NULL;
END $$;
CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION channel_bridge_notify('cb_events_');
CREATE TRIGGER jobs_notify_insert_delete AFTER INSERT OR DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION channel_bridge_notify('cb_jobs_');
CREATE TRIGGER jobs_notify_release AFTER UPDATE ON jobs
    FOR EACH ROW WHEN (NEW.lease_owner IS NULL) EXECUTE FUNCTION channel_bridge_notify('cb_jobs_');
