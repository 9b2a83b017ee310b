-- Reps' presence as last reported; effective presence also expires (presence.timeout_s).
CREATE TABLE presence (
    rep_id     TEXT PRIMARY KEY,
    status     TEXT NOT NULL CHECK (status IN ('online', 'away', 'offline')),
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- The round-robin cursor per channel, so rotation stays fair across restarts.
CREATE TABLE routing_state (
    channel_id TEXT PRIMARY KEY,
    last_rep   TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX conversations_open_by_owner ON conversations(owner_id) WHERE status = 'open' AND deleted_at IS NULL;
CREATE INDEX conversations_waiting ON conversations(channel_id, created_at)
    WHERE status = 'open' AND owner_id IS NULL AND deleted_at IS NULL;
