-- Posts only in HTML are filed again from their raw message (the Rust
-- step, store/archive.rs refile_html_bodies): html2text now keeps their
-- paragraphs, headings, lists and links, which an earlier conversion ran
-- together. No table changes.
SELECT 1;
