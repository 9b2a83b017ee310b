-- HubSpot replies out (issue #18). Every event HubSpot posts to /hubspot/webhook, stored
-- before the 200 answer: `event_key` (`message:{id}` for a rep's message, else the
-- eventId) makes a delivery HubSpot retries (for up to 24 h) store nothing new.
CREATE TABLE hubspot_events (
    event_key   TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    -- What the bridge did with it: reply, unroutable, account, ignored.
    outcome     TEXT NOT NULL,
    -- Our reply, when the event became one.
    message_id  TEXT,
    received_at BIGINT NOT NULL
);

-- Channel accounts as HubSpot's CHANNEL_ACCOUNT_* events last described them. An account
-- that is not authorized (or was deleted) parks its publish jobs until it is again.
CREATE TABLE hubspot_accounts (
    channel_account_id TEXT PRIMARY KEY,
    authorized         BOOLEAN NOT NULL,
    deleted            BOOLEAN NOT NULL,
    name               TEXT,
    last_event         TEXT NOT NULL,
    updated_at         BIGINT NOT NULL
);

-- A reply names its HubSpot thread; the thread leads back to our conversation.
CREATE INDEX hubspot_messages_thread ON hubspot_messages (hubspot_thread_id, published_at);
