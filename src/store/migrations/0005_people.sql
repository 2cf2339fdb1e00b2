-- People and their subscriptions, confirmations asked for, and each post as
-- it arrives.
--
-- A person is one address, kept once whatever lists they follow; a
-- subscriber is one person's subscription to one list, in a mode: a digest
-- format (mime, plain, html, summary), post (each post as it arrives) or
-- nomail (suspended). Unsubscribe and preference links are HMAC tokens over
-- a subscriber's or a person's id (see tokens.rs), so no secret is stored
-- per row: the random token column goes.

CREATE TABLE people (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);

INSERT INTO people (address, created_at)
SELECT address, min(created_at) FROM subscribers GROUP BY address;

CREATE TABLE subscribers_new (
    id INTEGER PRIMARY KEY,
    list_code TEXT NOT NULL,
    person_id INTEGER NOT NULL REFERENCES people (id),
    mode TEXT NOT NULL
        CHECK (mode IN ('mime', 'plain', 'html', 'summary', 'post', 'nomail')),
    -- A change between digests, posts and no mail that waits for the list's
    -- next digest, so the posts pending for it reach the subscriber once:
    -- in that last digest, or one by one, never both, never neither.
    next_mode TEXT
        CHECK (next_mode IN ('mime', 'plain', 'html', 'summary', 'post', 'nomail')),
    created_at INTEGER NOT NULL,
    -- When the subscriber confirmed (or the operator added them).
    confirmed_at INTEGER NOT NULL,
    -- Set when the subscriber left; queued deliveries to them are dropped.
    removed_at INTEGER,
    UNIQUE (list_code, person_id)
);

INSERT INTO subscribers_new (id, list_code, person_id, mode, created_at, confirmed_at, removed_at)
SELECT s.id, s.list_code, p.id, s.mode, s.created_at, s.created_at, s.removed_at
FROM subscribers s JOIN people p ON p.address = s.address;

DROP TABLE subscribers;
ALTER TABLE subscribers_new RENAME TO subscribers;

CREATE INDEX subscribers_active ON subscribers (list_code, mode, id) WHERE removed_at IS NULL;
CREATE INDEX subscribers_of_person ON subscribers (person_id);

-- Subscriptions asked for and not yet confirmed (double opt-in): nothing but
-- the one confirmation is sent until the link or the reply confirms it.
CREATE TABLE requests (
    id INTEGER PRIMARY KEY,
    list_code TEXT NOT NULL,
    address TEXT NOT NULL COLLATE NOCASE,
    mode TEXT NOT NULL
        CHECK (mode IN ('mime', 'plain', 'html', 'summary', 'post', 'nomail')),
    -- How it was asked: mail or web.
    via TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    -- Set once confirmed: a token works once.
    confirmed_at INTEGER
);

CREATE INDEX requests_by_address ON requests (address, created_at);

-- Each published post to each subscriber in mode post, with the states of
-- digest deliveries.
CREATE TABLE post_deliveries (
    id INTEGER PRIMARY KEY,
    post_id INTEGER NOT NULL REFERENCES posts (id),
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id),
    address TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'deferred', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_attempt_at INTEGER,
    last_reply TEXT,
    UNIQUE (post_id, subscriber_id)
);

CREATE INDEX post_deliveries_pending ON post_deliveries (id, next_attempt_at)
    WHERE state IN ('queued', 'deferred');
CREATE INDEX post_deliveries_by_state ON post_deliveries (state, post_id);

-- The newest post of each list already handed out to its post subscribers.
CREATE TABLE post_fanout (
    list_code TEXT PRIMARY KEY,
    last_post_id INTEGER NOT NULL
) WITHOUT ROWID;

-- A list's existing posts were never meant to go out one by one.
INSERT INTO post_fanout (list_code, last_post_id)
SELECT list_code, max(id) FROM posts WHERE status = 'published' AND list_code IS NOT NULL
GROUP BY list_code;
