-- Mail to the service addresses of a list (-request, -subscribe,
-- -unsubscribe, -confirm, -owner): kept as it came with what tidings did
-- about it, so every message received ends as a row, posts or not.
CREATE TABLE mail (
    id INTEGER PRIMARY KEY,
    -- The address it came to: request, subscribe, unsubscribe, confirm, owner.
    route TEXT NOT NULL,
    list_code TEXT,
    -- Envelope sender; '' for the null sender.
    sender TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    -- What became of it, for the operator: answered, ignored and why, passed on.
    outcome TEXT NOT NULL,
    message BLOB NOT NULL
);

CREATE INDEX mail_by_time ON mail (received_at);

-- Notices to one address in a day are counted (subscribe::MAX_NOTICES).
CREATE INDEX outgoing_to ON outgoing (recipient, kind, created_at);
