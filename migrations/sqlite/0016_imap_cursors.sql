-- Where IMAP inbound stands in each (email channel, folder): every message up to
-- `last_uid` of `uidvalidity` is stored (src/imap/). A message's UID means something only
-- with its folder's UIDVALIDITY; when that changes, the folder is read from the start
-- again and Message-ID dedupe keeps what was stored from being stored twice.
-- `uidvalidity` is NULL until the folder was first read. The lease says which replica
-- reads the mailbox now: one at a time, taken over when it expires (owner gone).
CREATE TABLE imap_cursors (
    channel_id  TEXT NOT NULL,
    folder      TEXT NOT NULL,
    uidvalidity INTEGER,
    last_uid    INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until INTEGER,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (channel_id, folder)
);
