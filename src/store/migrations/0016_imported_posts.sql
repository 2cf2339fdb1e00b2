-- Posts filed by `tidings import`. An archive is old news: its posts are
-- in the pages, feeds and newsgroups like any other, but pending for no
-- digest and sent to no post subscriber, even once approved. Keyed by post
-- alone, since a held post may be approved into another list.

CREATE TABLE imported_posts (
    post_id INTEGER PRIMARY KEY REFERENCES posts (id)
);
