-- A change counter per feed scope, so feeds can tell cheaply whether they
-- need rebuilding: every insert, update or delete that can change what a
-- published feed shows bumps the counter of the post's list and of '' (the
-- feeds of all lists). Triggers keep it true whatever code writes posts.

CREATE TABLE feed_versions (
    -- A list code, or '' for the feeds of all lists.
    scope TEXT PRIMARY KEY,
    version INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER posts_feed_insert AFTER INSERT ON posts
WHEN NEW.status = 'published'
BEGIN
    INSERT INTO feed_versions (scope, version)
    VALUES (COALESCE(NEW.list_code, ''), 1), ('', 1)
    ON CONFLICT (scope) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER posts_feed_update
AFTER UPDATE OF key, list_code, lang, status, title, author_name, date, received_at, body ON posts
WHEN OLD.status = 'published' OR NEW.status = 'published'
BEGIN
    INSERT INTO feed_versions (scope, version)
    VALUES (COALESCE(OLD.list_code, ''), 1), (COALESCE(NEW.list_code, ''), 1), ('', 1)
    ON CONFLICT (scope) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER posts_feed_delete AFTER DELETE ON posts
WHEN OLD.status = 'published'
BEGIN
    INSERT INTO feed_versions (scope, version)
    VALUES (COALESCE(OLD.list_code, ''), 1), ('', 1)
    ON CONFLICT (scope) DO UPDATE SET version = version + 1;
END;
