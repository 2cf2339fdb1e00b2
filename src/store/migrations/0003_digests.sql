-- Digests and their delivery: who reads each list by email, which posts
-- went into which digest, the rendered bodies, and one delivery row per
-- (digest, subscriber) so a digest reaches each subscriber once.

-- A subscriber of one list's digests (RFC-less admin entry for now; the
-- subscription flows come later).
CREATE TABLE subscribers (
    id INTEGER PRIMARY KEY,
    list_code TEXT NOT NULL,
    address TEXT NOT NULL COLLATE NOCASE,
    -- The digest format chosen: mime, plain, html or summary.
    mode TEXT NOT NULL CHECK (mode IN ('mime', 'plain', 'html', 'summary')),
    -- Personal secret of the one-click unsubscribe URL (RFC 8058).
    token TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    -- Set when the subscriber left; queued deliveries to them are dropped.
    removed_at INTEGER,
    UNIQUE (list_code, address)
);

CREATE INDEX subscribers_active ON subscribers (list_code, id) WHERE removed_at IS NULL;

-- One digest of a list: its number and when it was issued.
CREATE TABLE digests (
    id INTEGER PRIMARY KEY,
    list_code TEXT NOT NULL,
    volume INTEGER NOT NULL,
    issue INTEGER NOT NULL,
    -- The volume period this digest falls in, e.g. 2026, 2026-Q2, 2026-W05.
    period TEXT NOT NULL,
    -- Why it was issued: schedule, size, forced.
    reason TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    UNIQUE (list_code, volume, issue)
);

-- Which posts each digest holds, in order. The primary key puts a post in
-- at most one digest of its list.
CREATE TABLE digest_posts (
    list_code TEXT NOT NULL,
    post_id INTEGER NOT NULL REFERENCES posts (id),
    digest_id INTEGER NOT NULL REFERENCES digests (id),
    position INTEGER NOT NULL,
    PRIMARY KEY (list_code, post_id)
) WITHOUT ROWID;

CREATE INDEX digest_posts_by_digest ON digest_posts (digest_id, position);

-- Each format of a digest rendered once: the MIME entity (its own header
-- fields, a blank line, the body) that every recipient's message shares.
-- Dropped once no delivery of the digest is pending.
CREATE TABLE digest_bodies (
    digest_id INTEGER NOT NULL REFERENCES digests (id),
    mode TEXT NOT NULL,
    subject TEXT NOT NULL,
    entity BLOB NOT NULL,
    PRIMARY KEY (digest_id, mode)
) WITHOUT ROWID;

-- One digest to one subscriber. state: queued (not tried yet), deferred
-- (a 4xx or a connection failure; tried again at next_attempt_at), sent
-- (the server accepted it), failed (a 5xx, or given up).
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY,
    digest_id INTEGER NOT NULL REFERENCES digests (id),
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id),
    -- Address and mode as they were when the digest was issued.
    address TEXT NOT NULL,
    mode TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'deferred', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_attempt_at INTEGER,
    -- The server's last reply (or the connection error), for the operator
    -- and for bounce handling.
    last_reply TEXT,
    UNIQUE (digest_id, subscriber_id)
);

CREATE INDEX deliveries_pending ON deliveries (id, next_attempt_at) WHERE state IN ('queued', 'deferred');
CREATE INDEX deliveries_by_state ON deliveries (state, digest_id);

-- The last schedule slot each list's digest was decided at, so a slot
-- sends at most one digest and a slot with nothing pending is not
-- revisited when a post arrives later.
CREATE TABLE digest_slots (
    list_code TEXT PRIMARY KEY,
    last_slot INTEGER NOT NULL
) WITHOUT ROWID;
