-- The archive: each post's story head, to find the versions of one story in
-- other languages (lang::story_head), and the full-text index of published
-- posts (search.rs says how text goes in). Both are filled for the posts
-- already stored by the Rust step of this migration (store/archive.rs).

ALTER TABLE posts ADD COLUMN head TEXT;

CREATE INDEX posts_by_head ON posts (head, received_at)
    WHERE head IS NOT NULL AND status = 'published';

-- Published posts by date of arrival, for the pages of a day, a month, a year.
CREATE INDEX posts_published_by_time ON posts (received_at, id) WHERE status = 'published';

-- Contentless: it holds the index alone, the text stays in posts. rowid is
-- the post's id.
CREATE VIRTUAL TABLE search USING fts5 (
    title,
    body,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);
