-- An event's place in the streams (`pos`) is given after its transaction commits, by
-- whoever reads the streams next (store/postgres/events.rs `sequence`), in one short
-- transaction under the events lock. Before, every transaction that wrote an event held
-- that lock from the insert to its COMMIT, so they committed one at a time.
-- Existing events keep their ids: pos = seq.
ALTER TABLE events ADD COLUMN pos BIGINT;
UPDATE events SET pos = seq;
CREATE UNIQUE INDEX events_by_pos ON events(pos);
-- What the next sequencing picks up, in seq order.
CREATE INDEX events_unsequenced ON events(seq) WHERE pos IS NULL;
