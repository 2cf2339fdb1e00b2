-- Newsgroup article numbers (RFC 3977 section 6): one group per list
-- (`grp` is its code) and one of all lists (`grp` is ''). A published post
-- gets the next number of each of its groups once, when it is first
-- published (at insert, or when a held post is approved), and keeps it
-- forever: rows are never updated or taken out, so a number is never given
-- twice, and a post no longer published keeps its number while its article
-- is not shown. Held and rejected posts get none. Triggers keep it, whatever
-- code writes posts.

CREATE TABLE nntp_articles (
    grp TEXT NOT NULL,
    number INTEGER NOT NULL,
    post_id INTEGER NOT NULL,
    PRIMARY KEY (grp, number),
    UNIQUE (grp, post_id)
) WITHOUT ROWID;

CREATE INDEX nntp_articles_by_post ON nntp_articles (post_id);

-- Posts published before this migration, numbered in the order they came.
INSERT INTO nntp_articles (grp, number, post_id)
SELECT list_code, row_number() OVER (PARTITION BY list_code ORDER BY id), id
FROM posts WHERE status = 'published' AND list_code IS NOT NULL;
INSERT INTO nntp_articles (grp, number, post_id)
SELECT '', row_number() OVER (ORDER BY id), id
FROM posts WHERE status = 'published' AND list_code IS NOT NULL;

CREATE TRIGGER posts_nntp_insert AFTER INSERT ON posts
WHEN NEW.status = 'published' AND NEW.list_code IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO nntp_articles (grp, number, post_id) VALUES (NEW.list_code,
        coalesce((SELECT max(number) FROM nntp_articles WHERE grp = NEW.list_code), 0) + 1, NEW.id);
    INSERT OR IGNORE INTO nntp_articles (grp, number, post_id) VALUES ('',
        coalesce((SELECT max(number) FROM nntp_articles WHERE grp = ''), 0) + 1, NEW.id);
END;

CREATE TRIGGER posts_nntp_update AFTER UPDATE OF status, list_code ON posts
WHEN NEW.status = 'published' AND NEW.list_code IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO nntp_articles (grp, number, post_id) VALUES (NEW.list_code,
        coalesce((SELECT max(number) FROM nntp_articles WHERE grp = NEW.list_code), 0) + 1, NEW.id);
    INSERT OR IGNORE INTO nntp_articles (grp, number, post_id) VALUES ('',
        coalesce((SELECT max(number) FROM nntp_articles WHERE grp = ''), 0) + 1, NEW.id);
END;
