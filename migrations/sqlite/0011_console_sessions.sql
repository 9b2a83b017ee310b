-- Web console sessions (src/console). Only a hash of the cookie's secret is kept, so a
-- copy of the database signs no one in. Every replica reads the same rows, so a session
-- signed in on one works on all and signing out ends it everywhere.
CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- The operations page asks each channel for its most recently active conversation, and
-- the inbox filters by channel newest first: both walk this index instead of the whole
-- activity index.
CREATE INDEX conversations_by_channel_activity ON conversations (channel_id, last_message_at, seq);
