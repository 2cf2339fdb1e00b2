-- (Its Rust step makes the search index again: Greek is now indexed
-- without accents, store/archive.rs reindex.)

-- Posts whose archive pages must be made again: published, or no longer
-- published, since the pages were last built. Triggers keep it, whatever
-- code writes posts; the site builder takes out what it built. `seq` says
-- which change a row stands for, so a change made while a build ran
-- (after it read the row) is not taken out with the one it built.

CREATE TABLE archive_changes (
    post_id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE archive_sequence (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO archive_sequence (id, seq) VALUES (1, 0);

CREATE TRIGGER posts_archive_insert AFTER INSERT ON posts
WHEN NEW.status = 'published'
BEGIN
    UPDATE archive_sequence SET seq = seq + 1;
    INSERT INTO archive_changes (post_id, seq) VALUES (NEW.id, (SELECT seq FROM archive_sequence))
        ON CONFLICT (post_id) DO UPDATE SET seq = excluded.seq;
END;

CREATE TRIGGER posts_archive_update
AFTER UPDATE OF key, list_code, lang, status, title, author_name, date, received_at, body, head ON posts
WHEN OLD.status = 'published' OR NEW.status = 'published'
BEGIN
    UPDATE archive_sequence SET seq = seq + 1;
    INSERT INTO archive_changes (post_id, seq) VALUES (NEW.id, (SELECT seq FROM archive_sequence))
        ON CONFLICT (post_id) DO UPDATE SET seq = excluded.seq;
END;

CREATE TRIGGER posts_archive_delete AFTER DELETE ON posts
WHEN OLD.status = 'published'
BEGIN
    UPDATE archive_sequence SET seq = seq + 1;
    INSERT INTO archive_changes (post_id, seq) VALUES (OLD.id, (SELECT seq FROM archive_sequence))
        ON CONFLICT (post_id) DO UPDATE SET seq = excluded.seq;
END;

-- Published posts by when they were published: their Date, unless it is
-- after their arrival (feeds::entry_date). An imported archive files its
-- posts by their dates, not by the day of the import.
CREATE INDEX posts_published_by_date ON posts (min(coalesce(date, received_at), received_at), id)
    WHERE status = 'published';

-- Arrival time alone files no page: the index above replaces it.
DROP INDEX posts_published_by_time;
