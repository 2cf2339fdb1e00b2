-- What the pages of titles and first lines show of a post besides its
-- list, date and author: its title as pages show it and its first few
-- lines (site::FirstLines), kept when the post is stored, so that a page of
-- a busy month reads no post's text. Filled for the posts already stored
-- by the Rust step of this migration (store/archive.rs). A row is a copy:
-- when its post's key, subject or text changes the row goes, and a post
-- without one is summarised from its text when read.

CREATE TABLE first_lines (
    post_id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    lines TEXT NOT NULL
);

CREATE TRIGGER first_lines_changed AFTER UPDATE OF key, title, body ON posts
BEGIN
    DELETE FROM first_lines WHERE post_id = NEW.id;
END;

CREATE TRIGGER first_lines_deleted AFTER DELETE ON posts
BEGIN
    DELETE FROM first_lines WHERE post_id = OLD.id;
END;
