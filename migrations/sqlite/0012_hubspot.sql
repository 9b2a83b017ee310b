-- HubSpot custom-channel mode (issue #18). Which of our messages HubSpot has, under which
-- id and thread: a publish that finds its message here is not sent again, and a reply
-- from HubSpot finds our message by HubSpot's id.
CREATE TABLE hubspot_messages (
    message_id         TEXT PRIMARY KEY,
    hubspot_message_id TEXT NOT NULL UNIQUE,
    hubspot_thread_id  TEXT,
    direction          TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    published_at       INTEGER NOT NULL
);

-- Files a publish uploaded to HubSpot's File Manager, per part: a publish retried after
-- an upload does not upload the file again.
CREATE TABLE hubspot_files (
    message_id TEXT NOT NULL,
    part       INTEGER NOT NULL,
    file_id    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (message_id, part)
);
