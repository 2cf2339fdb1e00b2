-- Bounces: what came back to LIST-bounces[+VERP], what was read in it, and
-- each failure that counts towards a subscriber's score; and the
-- subscribers bounces disabled.
--
-- A disabled subscriber is kept, in their mode, and gets nothing (no
-- digest, no post) until re-enabled from their preferences page or by
-- `tidings subscribers enable`: disabled_at is when bounces disabled them.
ALTER TABLE subscribers ADD COLUMN disabled_at INTEGER;

-- Every message to a -bounces address, as received: never published,
-- never answered.
CREATE TABLE bounce_messages (
    id INTEGER PRIMARY KEY,
    list_code TEXT NOT NULL,
    -- The envelope recipient, LIST-bounces or LIST-bounces+user=host.
    recipient TEXT NOT NULL,
    -- The envelope sender; '' for the null sender.
    sender TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    -- How the failures were read: 'dsn' (RFC 3464), 'text', or NULL when
    -- none could be.
    format TEXT,
    -- JSON: [{"address": ..., "permanent": true|false}, ...].
    found TEXT NOT NULL,
    message BLOB NOT NULL
);

-- One failure of one address: read in a bounce message, or a 5xx reply in
-- tidings' own SMTP session (source 'smtp', with the reply).
CREATE TABLE bounces (
    id INTEGER PRIMARY KEY,
    list_code TEXT NOT NULL,
    -- The subscriber it names, if the address is one of the list's.
    subscriber_id INTEGER REFERENCES subscribers (id),
    address TEXT NOT NULL COLLATE NOCASE,
    permanent INTEGER NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('dsn', 'text', 'smtp')),
    bounce_message_id INTEGER REFERENCES bounce_messages (id),
    reply TEXT,
    at INTEGER NOT NULL,
    -- Set when the subscriber was re-enabled: older bounces no longer count.
    cleared INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX bounces_of_subscriber ON bounces (subscriber_id, at);
CREATE INDEX bounces_by_time ON bounces (at);
