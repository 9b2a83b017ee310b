-- Full-text search is indexed off the ingest path (src/store/sqlite/search.rs): writes
-- queue a message's seq here, and the indexer indexes the queue in large batches.
-- `fresh`: a new message, with no index entry to replace.
CREATE TABLE search_pending (
    seq INTEGER PRIMARY KEY,
    fresh INTEGER NOT NULL
);

-- Prefix indexes for the lengths a rep types, so that a search as you type for a common
-- word streams its newest matches instead of building the prefix's whole match list
-- (BENCHMARKS.md, Search). The index is contentless, so it is rebuilt from the messages:
-- every message is queued, and the indexer works through them newest first.
DROP TABLE message_text;
CREATE VIRTUAL TABLE message_text USING fts5(
    body,
    content = '',
    contentless_delete = 1,
    prefix = '2 3 4 5 6 7 8'
);
-- Merge up to 16 segments a level instead of 4: a quarter of the rewriting as the index
-- grows, for slightly more segments to read per search (BENCHMARKS.md, Search).
INSERT INTO message_text (message_text, rank) VALUES ('automerge', 16);
INSERT INTO search_pending (seq, fresh) SELECT seq, 1 FROM messages;
