-- Posts as contributors sent them: what was parsed, and the raw bytes apart.

CREATE TABLE posts (
    id INTEGER PRIMARY KEY,
    -- Stable public key of the post (hex), derived from its Message-ID or,
    -- without one, from its normalised content; NULL for rejected messages.
    key TEXT UNIQUE,
    message_id TEXT,
    list_code TEXT,
    lang TEXT,
    status TEXT NOT NULL CHECK (status IN ('published', 'held', 'rejected')),
    reason TEXT,
    -- How the language was decided: tag, address, detection, or NULL.
    filed_by TEXT,
    tag TEXT,
    subject TEXT NOT NULL,
    title TEXT NOT NULL,
    translations TEXT NOT NULL DEFAULT '[]',
    machine_translation INTEGER NOT NULL DEFAULT 0,
    author_name TEXT NOT NULL DEFAULT '',
    author_address TEXT NOT NULL DEFAULT '',
    date_header TEXT,
    -- Unix seconds of the Date header, when it parsed.
    date INTEGER,
    received_at INTEGER NOT NULL,
    body TEXT NOT NULL DEFAULT '',
    attachments TEXT NOT NULL DEFAULT '[]',
    size INTEGER NOT NULL
);

CREATE INDEX posts_published_by_list ON posts (list_code, id) WHERE status = 'published';
CREATE INDEX posts_published ON posts (id) WHERE status = 'published';
CREATE INDEX posts_by_status ON posts (status, id);

-- The bytes of every message accepted or held, exactly as received.
CREATE TABLE raw_messages (
    post_id INTEGER PRIMARY KEY REFERENCES posts (id) ON DELETE CASCADE,
    bytes BLOB NOT NULL
);
