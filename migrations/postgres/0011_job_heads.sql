-- Only the oldest pending job of an ordering key may run. Keeping that fact on the row
-- (head) lets a lease read the heads alone, instead of probing every pending job for an
-- older one of its key: with a backlog, that probe ran over the whole queue on every
-- lease. A key's head is decided under a per-key advisory lock (store/postgres/outbox.rs).
ALTER TABLE jobs ADD COLUMN head BOOLEAN NOT NULL DEFAULT TRUE;
UPDATE jobs SET head = FALSE
 WHERE state = 'pending' AND ordering_key IS NOT NULL
   AND EXISTS (SELECT 1 FROM jobs p
               WHERE p.ordering_key = jobs.ordering_key AND p.state = 'pending'
                 AND p.seq < jobs.seq);
CREATE INDEX jobs_ready ON jobs(run_at, seq) WHERE state = 'pending' AND head;
-- The head of one ordering key, found without reading its queue.
CREATE INDEX jobs_heads ON jobs(ordering_key) WHERE state = 'pending' AND head;
