-- Internal comments live in the thread as messages with direction 'internal' and kind
-- 'comment' (SQLite migration 0007).
ALTER TABLE messages DROP CONSTRAINT messages_direction_check;
ALTER TABLE messages ADD CONSTRAINT messages_direction_check
    CHECK (direction IN ('inbound', 'outbound', 'internal'));
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'message'
    CHECK (kind IN ('message', 'comment'));
-- JSON list of the rep ids a comment mentions.
ALTER TABLE messages ADD COLUMN mentions TEXT;

-- A merged contact stays as a tombstone pointing at the contact it was merged into.
ALTER TABLE contacts ADD COLUMN merged_into TEXT;
CREATE INDEX contacts_merged ON contacts(merged_into) WHERE merged_into IS NOT NULL;

-- What happened to a contact outside its tickets: created through the API, merged.
CREATE TABLE contact_audit (
    seq        BIGSERIAL PRIMARY KEY,
    contact_id TEXT NOT NULL,
    action     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    changes    TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX contact_audit_by_contact ON contact_audit(contact_id, seq);

-- Reply snippets created through the API (those in the config are not stored).
CREATE TABLE snippets (
    id         TEXT PRIMARY KEY,
    text       TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
