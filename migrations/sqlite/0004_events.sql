-- Live events for GET /api/v1/events, written in the same transaction as the change they
-- report; `seq` is the SSE event id clients resume from (Last-Event-ID).
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,
    channel_id      TEXT,
    conversation_id TEXT,
    owner_id        TEXT,
    data            TEXT NOT NULL,
    at              INTEGER NOT NULL
);
CREATE INDEX events_by_time ON events(at);
