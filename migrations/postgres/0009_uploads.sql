-- Files a rep uploaded to attach to a reply (POST /api/v1/uploads). The platforms fetch a
-- reply's media by URL without credentials, so each file is served at
-- /media/uploads/{token}: `token` is 32 random bytes (hex), the only thing that opens it.
-- `after_seq` is the newest message when the file was stored: a reply that uses it comes
-- later, so retention looks for the token only in messages after that one.
CREATE TABLE uploads (
    id           TEXT PRIMARY KEY,
    token        TEXT NOT NULL UNIQUE,
    filename     TEXT,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    bytes        BYTEA NOT NULL,
    uploaded_by  TEXT NOT NULL,
    after_seq    BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
-- Retention walks the old ones.
CREATE INDEX uploads_by_age ON uploads (created_at);
