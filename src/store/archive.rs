//! What the archive's pages and search need beyond the posts: story heads,
//! the versions of a story, the search index, posts by time.

use rusqlite::{params, OptionalExtension};

use super::posts::{from_row, COLUMNS};
use super::{Connection, Result, Transaction};
use crate::post::{Post, StoredPost};
use crate::search;
use crate::site::{FirstLines, Listed};

/// Puts a published post into the search index.
pub fn index(tx: &Transaction<'_>, id: i64, title: &str, body: &str) -> Result<()> {
    tx.prepare_cached("INSERT INTO search (rowid, title, body) VALUES (?1, ?2, ?3)")?
        .execute(params![id, search::indexed(title), search::indexed(body)])?;
    Ok(())
}

/// Takes a post out of the search index (it is no longer published).
pub fn unindex(tx: &Transaction<'_>, id: i64) -> Result<()> {
    tx.prepare_cached("DELETE FROM search WHERE rowid = ?1")?
        .execute([id])?;
    Ok(())
}

/// The Rust step of migration 0007: heads for every post, the index for
/// every published one.
pub(super) fn backfill(tx: &Transaction<'_>) -> Result<()> {
    let rows: Vec<(i64, String, String, bool)> = {
        let mut statement =
            tx.prepare("SELECT id, title, body, status = 'published' FROM posts ORDER BY id")?;
        let rows = statement.query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut head = tx.prepare("UPDATE posts SET head = ?2 WHERE id = ?1")?;
    for (id, title, body, published) in rows {
        if let Some(story) = crate::lang::story_head(&title) {
            head.execute(params![id, story])?;
        }
        if published {
            index(tx, id, &title, &body)?;
        }
    }
    Ok(())
}

/// The Rust step of migration 0008: the search index made again, since
/// [`search::indexed`] now folds Greek accents.
pub(super) fn reindex(tx: &Transaction<'_>) -> Result<()> {
    tx.execute("INSERT INTO search (search) VALUES ('delete-all')", [])?;
    let mut select = tx.prepare(
        "SELECT id, title, body FROM posts INDEXED BY posts_published \
         WHERE status = 'published' ORDER BY id",
    )?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        let (id, title, body): (i64, String, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
        index(tx, id, &title, &body)?;
    }
    Ok(())
}

/// Keeps a post's [`FirstLines`] (`?1` its id, `?2` the title, `?3` the
/// lines).
pub(super) const INSERT_FIRST_LINES: &str =
    "INSERT OR REPLACE INTO first_lines (post_id, title, lines) VALUES (?1, ?2, ?3)";

/// The Rust step of migration 0012: the first lines of every post stored.
pub(super) fn backfill_first_lines(tx: &Transaction<'_>) -> Result<()> {
    let mut select = tx.prepare("SELECT id, key, title, body FROM posts ORDER BY id")?;
    let mut insert = tx.prepare(INSERT_FIRST_LINES)?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        let (id, key, title, body): (i64, Option<String>, String, String) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        let lines = FirstLines::of(&title, &body, key.as_deref().unwrap_or(""));
        insert.execute(params![id, lines.title, lines.lines])?;
    }
    Ok(())
}

/// The Rust step of migration 0018: every post only in HTML filed again
/// from its raw message ([`crate::ingest::html_only_body`]), since an
/// earlier conversion ran its paragraphs together; its first lines and
/// search entry with it. The posts table's trigger marks its pages to be
/// made again.
pub(super) fn refile_html_bodies(tx: &Transaction<'_>) -> Result<()> {
    /// Posts read at a time: what is held at once, whatever the store's size.
    const BATCH: i64 = 500;
    let mut select = tx.prepare(
        "SELECT posts.id, posts.key, posts.title, posts.body, posts.status = 'published', \
         raw_messages.bytes FROM posts JOIN raw_messages ON raw_messages.post_id = posts.id \
         WHERE posts.id > ?1 ORDER BY posts.id LIMIT ?2",
    )?;
    let mut update = tx.prepare("UPDATE posts SET body = ?2 WHERE id = ?1")?;
    let mut first_lines = tx.prepare(INSERT_FIRST_LINES)?;
    let mut after = i64::MIN;
    loop {
        type Refiled = (i64, Option<String>, String, String, bool);
        let mut refiled: Vec<Refiled> = Vec::new();
        let mut read = 0;
        let mut rows = select.query(params![after, BATCH])?;
        while let Some(row) = rows.next()? {
            read += 1;
            after = row.get(0)?;
            let raw: Vec<u8> = row.get(5)?;
            let Some(body) = crate::ingest::html_only_body(&raw) else {
                continue;
            };
            if body != row.get::<_, String>(3)? {
                refiled.push((after, row.get(1)?, row.get(2)?, body, row.get(4)?));
            }
        }
        drop(rows);
        for (id, key, title, body, published) in refiled {
            update.execute(params![id, body])?;
            let lines = FirstLines::of(&title, &body, key.as_deref().unwrap_or(""));
            first_lines.execute(params![id, lines.title, lines.lines])?;
            if published {
                unindex(tx, id)?;
                index(tx, id, &title, &body)?;
            }
        }
        if read < BATCH {
            return Ok(());
        }
    }
}

/// The columns a [`Listed`] post is read with, from `posts` joined with
/// `first_lines`: what a line of a page shows (key, list, language, dates,
/// author) and the first lines; the other columns are left empty, the
/// attachments and size too (they come after the body in the row, whose
/// overflow pages a read would walk), and the body but for a post without
/// first lines kept, whose body they are made from ([`listed_from_row`]).
const LISTED_COLUMNS: &str = "posts.id, posts.key, NULL, posts.list_code, posts.lang, \
     'published', NULL, NULL, NULL, '', posts.title, '[]', 0, posts.author_name, '', NULL, \
     posts.date, posts.received_at, \
     CASE WHEN first_lines.post_id IS NULL THEN posts.body ELSE '' END, '[]', 0, \
     first_lines.title, first_lines.lines";

fn listed_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Listed> {
    let mut post = from_row(row)?;
    let kept: (Option<String>, Option<String>) = (row.get(21)?, row.get(22)?);
    let first_lines = match kept {
        (Some(title), Some(lines)) => FirstLines { title, lines },
        _ => {
            let key = post.key.as_deref().unwrap_or("");
            let made = FirstLines::of(&post.title, &post.body, key);
            post.post.body = String::new();
            made
        }
    };
    Ok(Listed { post, first_lines })
}

/// A post whose pages must be made again, and which change of it that is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub post_id: i64,
    pub seq: i64,
}

/// Up to `limit` posts whose pages must be made again, by id.
pub fn changes(db: &Connection, limit: usize) -> Result<Vec<Change>> {
    let mut statement =
        db.prepare_cached("SELECT post_id, seq FROM archive_changes ORDER BY post_id LIMIT ?1")?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement.query_map([limit], |row| {
        Ok(Change {
            post_id: row.get(0)?,
            seq: row.get(1)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Takes the changes whose pages were made out; a post changed again since
/// (a later `seq`) stays in.
pub fn changes_done(tx: &Transaction<'_>, changes: &[Change]) -> Result<()> {
    let mut delete =
        tx.prepare_cached("DELETE FROM archive_changes WHERE post_id = ?1 AND seq = ?2")?;
    for change in changes {
        delete.execute([change.post_id, change.seq])?;
    }
    Ok(())
}

/// The newest published posts of `list_code`, newest first, as the pages
/// of titles show them.
pub fn latest_of_list(db: &Connection, list_code: &str, limit: usize) -> Result<Vec<Listed>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT {LISTED_COLUMNS} FROM posts INDEXED BY posts_published_by_list \
         LEFT JOIN first_lines ON first_lines.post_id = posts.id \
         WHERE posts.list_code = ?1 AND posts.status = 'published' ORDER BY posts.id DESC LIMIT ?2"
    ))?;
    let rows = statement.query_map(params![list_code, limit as i64], listed_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A candidate for a story's versions as [`with_head`] and [`heads`] read
/// it: what [`crate::site::story`] and a page's links to it need (id, key,
/// list, language, translations, status, arrival), without its subject,
/// title, author, body or attachments. The columns before `body` are in
/// the row's first page: reading them leaves a long body's overflow pages
/// alone.
const CANDIDATE_COLUMNS: &str = "id, key, message_id, list_code, lang, status, reason, filed_by, \
     tag, '', '', translations, machine_translation, '', '', date_header, date, received_at, \
     '', '[]', 0";

/// The published posts with `head` that arrived between `from` and `to`
/// (Unix seconds, inclusive), by id: the candidates for one story's
/// versions, without their text ([`CANDIDATE_COLUMNS`]).
pub fn with_head(db: &Connection, head: &str, from: i64, to: i64) -> Result<Vec<StoredPost>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT {CANDIDATE_COLUMNS} FROM posts INDEXED BY posts_by_head \
         WHERE head = ?1 AND status = 'published' AND received_at BETWEEN ?2 AND ?3 ORDER BY id"
    ))?;
    let rows = statement.query_map(params![head, from, to], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every published post with a head, as [`with_head`] reads them, by head
/// and then by id: the candidates of a whole build at once.
pub fn heads(db: &Connection) -> Result<Vec<(String, StoredPost)>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT {CANDIDATE_COLUMNS}, head FROM posts INDEXED BY posts_by_head \
         WHERE head IS NOT NULL AND status = 'published' ORDER BY head, id"
    ))?;
    let rows = statement.query_map([], |row| Ok((row.get(21)?, from_row(row)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The story head stored with a post.
pub fn head(db: &Connection, id: i64) -> Result<Option<String>> {
    let mut statement = db.prepare_cached("SELECT head FROM posts WHERE id = ?1")?;
    Ok(statement
        .query_row([id], |row| row.get(0))
        .optional()?
        .flatten())
}

/// When a post was published, in SQL: its Date, unless that is after its
/// arrival ([`crate::feeds::entry_date`]); indexed by
/// `posts_published_by_date`, which must spell it the same.
const PUBLISHED_AT: &str = "min(coalesce(date, received_at), received_at)";

/// When `post` was published, as [`PUBLISHED_AT`] says in SQL.
pub fn published_at(post: &Post) -> i64 {
    post.date.unwrap_or(post.received_at).min(post.received_at)
}

/// The published posts published in `[from, to)` (Unix seconds), newest
/// first, at most `limit`, as the pages of titles show them.
pub fn published_between(db: &Connection, from: i64, to: i64, limit: usize) -> Result<Vec<Listed>> {
    let published_at = "min(coalesce(posts.date, posts.received_at), posts.received_at)";
    let mut statement = db.prepare_cached(&format!(
        "SELECT {LISTED_COLUMNS} FROM posts INDEXED BY posts_published_by_date \
         LEFT JOIN first_lines ON first_lines.post_id = posts.id \
         WHERE posts.status = 'published' AND {published_at} >= ?1 AND {published_at} < ?2 \
         ORDER BY {published_at} DESC, posts.id DESC LIMIT ?3"
    ))?;
    let rows = statement.query_map(params![from, to, limit as i64], listed_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How many published posts were published in `[from, to)`.
pub fn count_between(db: &Connection, from: i64, to: i64) -> Result<u64> {
    let count: i64 = db
        .prepare_cached(&format!(
            "SELECT count(*) FROM posts INDEXED BY posts_published_by_date \
             WHERE status = 'published' AND {PUBLISHED_AT} >= ?1 AND {PUBLISHED_AT} < ?2"
        ))?
        .query_row(params![from, to], |row| row.get(0))?;
    Ok(count as u64)
}

/// Whether any published post was published in `[from, to)`: one step
/// into the index, where a count walks every post of the period.
pub fn any_between(db: &Connection, from: i64, to: i64) -> Result<bool> {
    let found: Option<i64> = db
        .prepare_cached(&format!(
            "SELECT 1 FROM posts INDEXED BY posts_published_by_date \
             WHERE status = 'published' AND {PUBLISHED_AT} >= ?1 AND {PUBLISHED_AT} < ?2 LIMIT 1"
        ))?
        .query_row(params![from, to], |row| row.get(0))
        .optional()?;
    Ok(found.is_some())
}

/// When the first and the last published post were published (Unix
/// seconds): one step into each end of the index (a query asking for both
/// the min and the max walks all of it).
pub fn span(db: &Connection) -> Result<Option<(i64, i64)>> {
    let end = |order: &str| -> Result<Option<i64>> {
        Ok(db
            .prepare_cached(&format!(
                "SELECT {PUBLISHED_AT} FROM posts INDEXED BY posts_published_by_date \
                 WHERE status = 'published' ORDER BY {PUBLISHED_AT} {order} LIMIT 1"
            ))?
            .query_row([], |row| row.get(0))
            .optional()?)
    };
    Ok(end("ASC")?.zip(end("DESC")?))
}

/// Every published post, oldest first, in pages of `limit` after id
/// `after`: for a full build.
pub fn published_after(db: &Connection, after: i64, limit: usize) -> Result<Vec<StoredPost>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM posts INDEXED BY posts_published \
         WHERE status = 'published' AND id > ?1 ORDER BY id LIMIT ?2"
    ))?;
    let rows = statement.query_map(params![after, limit as i64], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// What a search asks for besides its words.
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    /// A language (BCP 47) or list code.
    pub lang: Option<String>,
    /// Published in `[from, to)` (Unix seconds).
    pub between: Option<(i64, i64)>,
}

/// The most matches a search ranks: a word found in more posts (a common
/// word of a language, in an archive of a million posts) is ranked among
/// its newest matches, so a search costs what a page of results needs,
/// not what the whole archive holds. A language or a year narrows the
/// matches to older posts.
pub const RANKED: usize = 2_000;

/// What a search found: a page of results, and whether there were more
/// matches than [`RANKED`], the newest of which were ranked.
#[derive(Debug, Default)]
pub struct Found {
    pub results: Vec<Listed>,
    pub newest_only: bool,
}

/// The published posts matching `fts_query` (an FTS5 query as
/// [`crate::search::query`] makes them), best first (bm25, a title match
/// weighing five times a body match) among the newest [`RANKED`] matches,
/// `limit` after `offset`, as the pages of titles show them.
pub fn search(
    db: &Connection,
    fts_query: &str,
    filter: &SearchFilter,
    limit: usize,
    offset: usize,
) -> Result<Found> {
    // FTS5 walks the matches newest first (rowid is the post's id) and
    // stops after RANKED + 1; bm25 is computed for those alone, and only
    // the page's posts are read. The index holds published posts alone
    // (posts::insert, posts::decide); the posts are joined for a filter.
    let found = if filter.lang.is_none() && filter.between.is_none() {
        "SELECT rowid AS id, bm25(search, 5.0, 1.0) AS score FROM search \
         WHERE search MATCH ?1 ORDER BY rowid DESC LIMIT ?7"
            .to_string()
    } else {
        let published_at = "min(coalesce(posts.date, posts.received_at), posts.received_at)";
        format!(
            "SELECT search.rowid AS id, bm25(search, 5.0, 1.0) AS score \
             FROM search JOIN posts ON posts.id = search.rowid \
             WHERE search MATCH ?1 \
               AND (?2 IS NULL OR posts.lang = ?2 OR posts.list_code = ?2) \
               AND (?3 IS NULL OR {published_at} >= ?3) AND (?4 IS NULL OR {published_at} < ?4) \
             ORDER BY search.rowid DESC LIMIT ?7"
        )
    };
    let mut statement = db.prepare_cached(&format!(
        "WITH found AS MATERIALIZED ({found}), \
         page AS MATERIALIZED ( \
           SELECT id, score FROM (SELECT * FROM found ORDER BY id DESC LIMIT ?7 - 1) \
           ORDER BY score, id DESC LIMIT ?5 OFFSET ?6) \
         SELECT {LISTED_COLUMNS}, (SELECT count(*) FROM found) FROM page \
         JOIN posts ON posts.id = page.id \
         LEFT JOIN first_lines ON first_lines.post_id = posts.id \
         WHERE posts.status = 'published' \
         ORDER BY page.score, page.id DESC"
    ))?;
    let (from, to) = filter.between.unzip();
    let mut matched = 0;
    let rows = statement.query_map(
        params![
            fts_query,
            filter.lang,
            from,
            to,
            limit as i64,
            offset as i64,
            RANKED as i64 + 1
        ],
        |row| {
            matched = row.get::<_, i64>(23)?;
            listed_from_row(row)
        },
    )?;
    let results = rows.collect::<rusqlite::Result<_>>()?;
    Ok(Found {
        results,
        newest_only: matched > RANKED as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::post::Status;
    use crate::store::{open_in_memory, posts, transaction};

    fn listed(db: &Connection) -> Vec<(i64, FirstLines, String)> {
        published_between(db, i64::MIN, i64::MAX, 10)
            .unwrap()
            .into_iter()
            .map(|listed| (listed.post.id, listed.first_lines, listed.post.body.clone()))
            .collect()
    }

    /// A word found in more posts than are ranked is ranked among its
    /// newest matches, and the search says so: the oldest post, the best
    /// match of all, is left out until a filter narrows the matches to it;
    /// a word found in fewer is ranked over all of them.
    #[test]
    fn a_common_word_is_ranked_among_its_newest_matches_and_a_filter_reaches_older_ones() {
        let mut db = open_in_memory().unwrap();
        let mut posts = Vec::new();
        let mut oldest = posts::sample("old", "de", Status::Published);
        oldest.post.title = "Streik Streik Streik".into();
        oldest.post.body = "Streik Streik Streik Streik".into();
        oldest.post.date = Some(1_500_000_000);
        posts.push(oldest);
        for n in 0..RANKED {
            let mut post = posts::sample(&format!("p{n}"), "en", Status::Published);
            post.post.body = format!(
                "A long text about the Streik, number {n}, {}",
                "words ".repeat(40)
            );
            posts.push(post);
        }
        let mut rare = posts::sample("rare", "en", Status::Published);
        rare.post.body = "Once: zebra.".into();
        posts.push(rare);
        transaction(&mut db, |tx| posts::insert(tx, &posts)).unwrap();
        let keys = |found: &Found| -> Vec<String> {
            found
                .results
                .iter()
                .map(|l| l.post.key.clone().unwrap())
                .collect()
        };

        let word = search::query("streik").unwrap();
        let found = search(&db, &word, &SearchFilter::default(), 20, 0).unwrap();
        assert!(found.newest_only);
        assert_eq!(found.results.len(), 20);
        assert!(
            !keys(&found).contains(&"old".to_string()),
            "{:?}",
            keys(&found)
        );
        let last = search(&db, &word, &SearchFilter::default(), 20, RANKED - 5).unwrap();
        assert_eq!(last.results.len(), 5, "the ranked matches end at RANKED");

        let german = SearchFilter {
            lang: Some("de".into()),
            between: None,
        };
        let found = search(&db, &word, &german, 20, 0).unwrap();
        assert!(!found.newest_only);
        assert_eq!(keys(&found), ["old"]);
        let back_then = SearchFilter {
            lang: None,
            between: Some((1_400_000_000, 1_600_000_000)),
        };
        assert_eq!(
            keys(&search(&db, &word, &back_then, 20, 0).unwrap()),
            ["old"]
        );

        let found = search(
            &db,
            &search::query("zebra").unwrap(),
            &SearchFilter::default(),
            20,
            0,
        )
        .unwrap();
        assert!(!found.newest_only);
        assert_eq!(keys(&found), ["rare"]);
    }

    /// The pages of titles read a post's first lines as kept at insert,
    /// without its text; when the text changes, or a post has no first
    /// lines kept, they are made from the text as it is.
    #[test]
    fn first_lines_are_kept_at_insert_and_made_from_the_text_when_missing() {
        let mut db = open_in_memory().unwrap();
        let mut first = posts::sample("a", "en", Status::Published);
        first.post.body = "Words of the first post. ".repeat(40);
        let mut second = posts::sample("b", "en", Status::Published);
        second.post.title = " \u{1} ".into();
        second.post.body = "Untitled text.\n-- \nsig\n".into();
        transaction(&mut db, |tx| {
            posts::insert(tx, &[first.clone(), second.clone()])
        })
        .unwrap();
        let kept: i64 = db
            .query_row("SELECT count(*) FROM first_lines", [], |row| row.get(0))
            .unwrap();
        assert_eq!(kept, 2);
        let expected = |post: &crate::post::NewPost| {
            FirstLines::of(
                &post.post.title,
                &post.post.body,
                post.post.key.as_deref().unwrap(),
            )
        };
        let read = listed(&db);
        assert_eq!(read[1].1, expected(&first));
        assert!(read[1].1.lines.ends_with('…'), "{:?}", read[1].1);
        assert_eq!(read[0].1.title, "Untitled text.");
        assert_eq!(read[0].1, expected(&second));
        assert!(read.iter().all(|(_, _, body)| body.is_empty()));

        db.execute("UPDATE posts SET body = 'Edited.' WHERE key = 'a'", [])
            .unwrap();
        let read = listed(&db);
        assert_eq!(read[1].1.lines, "Edited.");
        db.execute("DELETE FROM first_lines", []).unwrap();
        let made = listed(&db);
        assert_eq!(made[0].1, expected(&second));

        transaction(&mut db, backfill_first_lines).unwrap();
        let kept: i64 = db
            .query_row("SELECT count(*) FROM first_lines", [], |row| row.get(0))
            .unwrap();
        assert_eq!(kept, 2);
        assert_eq!(listed(&db), made);
    }

    #[test]
    fn posts_only_in_html_are_filed_again_with_their_paragraphs_and_nothing_else_changes() {
        let mut db = open_in_memory().unwrap();
        let html = "Subject: (en) Strike\r\nMIME-Version: 1.0\r\n\
                    Content-Type: text/html; charset=utf-8\r\n\r\n\
                    <p>The dockers walk out.</p><p>Assembly on Sunday with the zebra crews.</p>";
        let mut old = posts::sample("html", "en", Status::Published);
        // As an earlier conversion stored it: the paragraphs run together,
        // the search index without the second one's last words.
        old.post.body = "The dockers walk out.Assembly on Sunday".into();
        old.raw = Some(html.as_bytes().to_vec());
        let mut plain = posts::sample("plain", "en", Status::Published);
        plain.raw = Some(b"Subject: x\r\nContent-Type: text/plain\r\n\r\nSee <p>this</p>".to_vec());
        plain.post.body = "Stored as it was.".into();
        // Read in batches: the post to file again comes after two of them.
        let mut all: Vec<_> = (0..1_000)
            .map(|n| posts::sample(&format!("p{n}"), "en", Status::Published))
            .collect();
        all.extend([plain, old]);
        transaction(&mut db, |tx| posts::insert(tx, &all)).unwrap();
        db.execute("DELETE FROM archive_changes", []).unwrap();

        transaction(&mut db, refile_html_bodies).unwrap();
        let body = |key: &str| -> String {
            db.query_row("SELECT body FROM posts WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .unwrap()
        };
        assert_eq!(
            body("html"),
            "The dockers walk out.\n\nAssembly on Sunday with the zebra crews.\n"
        );
        assert_eq!(
            body("plain"),
            "Stored as it was.",
            "a plain post is left alone"
        );
        let read = listed(&db);
        assert!(
            read.iter().any(
                |(_, first, _)| first.lines.starts_with("The dockers walk out.")
                    && !first.lines.contains("out.Assembly")
            ),
            "{read:?}"
        );
        // Its pages are to be made again, and search finds its words.
        let changed: i64 = db
            .query_row("SELECT count(*) FROM archive_changes", [], |row| row.get(0))
            .unwrap();
        assert_eq!(changed, 1);
        let zebra = search::query("zebra").unwrap();
        let found = search(&db, &zebra, &SearchFilter::default(), 10, 0).unwrap();
        assert_eq!(found.results.len(), 1);
        // Filed again, it is filed as it is: a second run changes nothing.
        transaction(&mut db, refile_html_bodies).unwrap();
        let changed: i64 = db
            .query_row("SELECT count(*) FROM archive_changes", [], |row| row.get(0))
            .unwrap();
        assert_eq!(changed, 1);
    }
}
