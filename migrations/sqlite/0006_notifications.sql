-- Reps' own notification choice (overrides [[reps]].notify) and when their last digest went.
CREATE TABLE rep_settings (
    rep_id         TEXT PRIMARY KEY,
    notify         INTEGER,
    last_digest_at INTEGER
) WITHOUT ROWID;
