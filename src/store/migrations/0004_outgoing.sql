-- Single messages tidings sends besides digests, each to one recipient:
-- mail to postmaster passed on to the operator, and what the subscriber
-- and editor flows send (confirmations, replies, forwards to editors). The
-- outbox delivers them like digest deliveries: queued until the server
-- accepts (sent) or refuses for good (failed), deferred with backoff in
-- between.
CREATE TABLE outgoing (
    id INTEGER PRIMARY KEY,
    -- What it is: forward, reply, ...
    kind TEXT NOT NULL,
    -- The list it concerns, if any.
    list_code TEXT,
    -- Envelope sender; '' for the null sender <>.
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    -- The whole message, CRLF line ends.
    message BLOB NOT NULL,
    -- Whether the outbox signs it with the configured DKIM keys (what
    -- tidings writes) or sends it as it is (mail passed on).
    sign INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'deferred', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_attempt_at INTEGER,
    last_reply TEXT
);

CREATE INDEX outgoing_pending ON outgoing (id, next_attempt_at) WHERE state IN ('queued', 'deferred');
CREATE INDEX outgoing_by_state ON outgoing (state, kind);
