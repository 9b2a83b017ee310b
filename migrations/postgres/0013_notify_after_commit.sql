-- Other replicas are woken by a NOTIFY the daemon sends after its commits
-- (store/postgres/mod.rs `notify_in_background`), no longer by triggers inside the
-- writing transaction: PostgreSQL serialises the commits of transactions that notify,
-- which made every event and job write commit one at a time.
DROP TRIGGER events_notify ON events;
DROP TRIGGER jobs_notify_insert_delete ON jobs;
DROP TRIGGER jobs_notify_release ON jobs;
DROP FUNCTION channel_bridge_notify();
