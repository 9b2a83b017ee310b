-- An event's place in the streams (`pos`) is given after its transaction commits, by
-- whoever reads the streams next (store/postgres/events.rs `sequence`), in one short
-- transaction under the events lock. Before, every transaction that wrote an event held
-- that lock from the insert to its COMMIT, so they committed one at a time.
-- Existing events keep their ids: pos = seq.
ALTER TABLE events ADD COLUMN pos BIGINT;
UPDATE events SET pos = seq;
-- The last position handed out. Not MAX(pos): once retention has purged every event,
-- that would start again below the ids streams have already seen. Starts past every seq
-- ever handed out, as those were the ids before.
CREATE TABLE event_positions (last BIGINT NOT NULL);
INSERT INTO event_positions (last)
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_seq_seq;
CREATE UNIQUE INDEX events_by_pos ON events(pos);
-- What the next sequencing picks up, in seq order.
CREATE INDEX events_unsequenced ON events(seq) WHERE pos IS NULL;
