-- What each person has read, for the console's unread markers (src/console/inbox.rs).
-- `reader` is the rep, or the token's name for a token bound to no rep; `read_seq` is the
-- newest message of the conversation when they last opened it, so a message stored after
-- that (a higher seq) makes the conversation unread again. Sequence numbers, not clocks:
-- a message and a read in the same millisecond are still ordered.
CREATE TABLE conversation_reads (
    reader          TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    read_seq        BIGINT NOT NULL,
    PRIMARY KEY (reader, conversation_id)
);
-- Purging a conversation from the trash drops its reads.
CREATE INDEX conversation_reads_by_conversation ON conversation_reads (conversation_id);

-- The last inbound message of each channel (the operations page and
-- `GET /api/v1/channels`' `last_inbound_at`), found at the end of this index instead of
-- by reading every inbound message of the channel.
CREATE INDEX messages_inbound_by_channel ON messages (channel_id, seq) WHERE direction = 'inbound';
