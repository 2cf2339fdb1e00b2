-- Moderation: who decided about a held post, and when (an approval or a
-- rejection by a moderator, or its expiry); and the posts of one sender by
-- time, for the per-sender rate limit.

ALTER TABLE posts ADD COLUMN decided_by TEXT;
ALTER TABLE posts ADD COLUMN decided_at INTEGER;

CREATE INDEX posts_by_author ON posts (author_address, received_at);

CREATE INDEX posts_held ON posts (received_at) WHERE status = 'held';
