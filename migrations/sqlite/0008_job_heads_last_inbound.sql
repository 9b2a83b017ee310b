-- Only the oldest pending job of an ordering key may run. Keeping that fact on the row
-- (head = 1) lets a lease read the heads alone, instead of probing every pending job for
-- an older one of its conversation: with a backlog, that probe ran over the whole queue
-- on every lease.
ALTER TABLE jobs ADD COLUMN head INTEGER NOT NULL DEFAULT 1;
UPDATE jobs SET head = 0
 WHERE state = 'pending' AND ordering_key IS NOT NULL
   AND EXISTS (SELECT 1 FROM jobs p
               WHERE p.ordering_key = jobs.ordering_key AND p.state = 'pending'
                 AND p.seq < jobs.seq);
CREATE INDEX jobs_ready ON jobs(run_at, seq) WHERE state = 'pending' AND head = 1;
-- The head of one ordering key, found without reading its queue.
CREATE INDEX jobs_heads ON jobs(ordering_key) WHERE state = 'pending' AND head = 1;

-- A reply quotes the conversation's latest inbound message by default. Finding it by
-- walking the conversation back from its newest message read every reply queued since;
-- the conversation keeps it instead.
ALTER TABLE conversations ADD COLUMN last_inbound_id TEXT;
UPDATE conversations SET last_inbound_id = (
    SELECT m.id FROM messages m
    WHERE m.conversation_id = conversations.id AND m.direction = 'inbound'
    ORDER BY m.seq DESC LIMIT 1);
