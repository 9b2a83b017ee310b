-- Edits (with the replaced versions kept), retractions, and a note on how a reply went out.
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
ALTER TABLE messages ADD COLUMN retracted_at INTEGER;
-- JSON list of {"parts": [...], "replaced_at": "…"}: what the message said before each edit.
ALTER TABLE messages ADD COLUMN history TEXT;
ALTER TABLE messages ADD COLUMN delivery_note TEXT;
-- Watermarks find our replies to one contact on one channel.
CREATE INDEX messages_outbound_by_conversation_time
    ON messages(conversation_id, created_at) WHERE direction = 'outbound';
