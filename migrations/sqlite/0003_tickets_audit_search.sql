-- Who changed what on tickets and conversations, when and why.
CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY,
    ticket_id   TEXT NOT NULL,
    entity      TEXT NOT NULL,          -- ticket | conversation
    entity_id   TEXT NOT NULL,
    action      TEXT NOT NULL,          -- e.g. status_changed, owner_changed, deleted
    actor       TEXT NOT NULL,          -- an API token's name, or system
    changes     TEXT NOT NULL,          -- JSON {"field": {"from": …, "to": …}}
    reason      TEXT,
    at          INTEGER NOT NULL
);
CREATE INDEX audit_by_ticket ON audit(ticket_id, seq);

-- Full-text search over what messages say (text and captions); rowid = messages.seq.
CREATE VIRTUAL TABLE message_text USING fts5(body, content = '', contentless_delete = 1);
INSERT INTO message_text (rowid, body)
    SELECT m.seq, (SELECT group_concat(coalesce(json_extract(p.value, '$.text'),
                                                json_extract(p.value, '$.caption')), ' ')
                   FROM json_each(m.parts) p)
    FROM messages m;

CREATE INDEX tickets_by_status ON tickets(status);
CREATE INDEX conversations_deleted ON conversations(deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX tickets_deleted ON tickets(deleted_at) WHERE deleted_at IS NOT NULL;
