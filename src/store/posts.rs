//! Posts and their raw messages: insert in batches, list, fetch one, fetch
//! its bytes, count.

use rusqlite::{named_params, params, OptionalExtension, Row};

use super::sql::{from_json, to_json};
use super::{Connection, Result, Transaction};
use crate::post::{NewPost, Post, Status, StoredPost};
use crate::site::FirstLines;

/// What became of one post of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Stored under this id.
    New(i64),
    /// A post with the same key was already stored under this id.
    Duplicate(i64),
}

/// Which posts to list.
#[derive(Debug, Clone, Default)]
pub struct PostFilter {
    pub list_code: Option<String>,
    pub status: Option<Status>,
    /// At most this many, the newest (by arrival).
    pub limit: Option<usize>,
}

pub(super) const COLUMNS: &str =
    "id, key, message_id, list_code, lang, status, reason, filed_by, tag, \
     subject, title, translations, machine_translation, author_name, author_address, \
     date_header, date, received_at, body, attachments, size";

/// [`COLUMNS`] with only the first `:chars` characters of the body, which
/// SQLite cuts before the row is copied out: a feed of 9 MB posts reads no
/// more of each than it shows.
const CUT_COLUMNS: &str = "id, key, message_id, list_code, lang, status, reason, filed_by, tag, \
     subject, title, translations, machine_translation, author_name, author_address, \
     date_header, date, received_at, substr(body, 1, :chars), attachments, size";

/// Stores a batch of posts. A post whose key is already stored (in the
/// store or earlier in the batch) is not stored again. The caller's
/// transaction makes the batch durable at once.
pub fn insert(tx: &Transaction<'_>, posts: &[NewPost]) -> Result<Vec<Inserted>> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO posts (key, message_id, list_code, lang, status, reason, filed_by, tag, \
         subject, title, translations, machine_translation, author_name, author_address, \
         date_header, date, received_at, body, attachments, size, head, auth_results) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22) \
         ON CONFLICT (key) DO NOTHING",
    )?;
    let mut insert_raw =
        tx.prepare_cached("INSERT INTO raw_messages (post_id, bytes) VALUES (?1, ?2)")?;
    let mut existing = tx.prepare_cached("SELECT id FROM posts WHERE key = ?1")?;
    let mut insert_lines = tx.prepare_cached(super::archive::INSERT_FIRST_LINES)?;
    let mut results = Vec::with_capacity(posts.len());
    // The search index takes the batch's published posts last: FTS5 writes
    // what it holds to disk at every statement savepoint, and each insert
    // into posts opens one (its triggers), so indexing each post as it is
    // inserted made a tiny index segment per post, merged over and over.
    let mut to_index = Vec::new();
    for NewPost {
        post,
        raw,
        auth_results,
    } in posts
    {
        let changed = insert.execute(params![
            post.key,
            post.message_id,
            post.list_code,
            post.lang,
            post.status,
            post.reason,
            post.filed_by,
            post.tag,
            post.subject,
            post.title,
            to_json(&post.translations),
            post.machine_translation,
            post.author_name,
            post.author_address,
            post.date_header,
            post.date,
            post.received_at,
            post.body,
            to_json(&post.attachments),
            post.size as i64,
            crate::lang::story_head(&post.title),
            auth_results,
        ])?;
        if changed == 0 {
            let id = existing.query_row([&post.key], |row| row.get(0))?;
            results.push(Inserted::Duplicate(id));
            continue;
        }
        let id = tx.last_insert_rowid();
        if let Some(raw) = raw {
            insert_raw.execute(params![id, raw])?;
        }
        let lines = FirstLines::of(&post.title, &post.body, post.key.as_deref().unwrap_or(""));
        insert_lines.execute(params![id, lines.title, lines.lines])?;
        if post.status == Status::Published {
            to_index.push((id, post));
        }
        results.push(Inserted::New(id));
    }
    for (id, post) in to_index {
        super::archive::index(tx, id, &post.title, &post.body)?;
    }
    Ok(results)
}

/// Posts matching `filter`, oldest first.
pub fn list(db: &Connection, filter: &PostFilter) -> Result<Vec<StoredPost>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM posts \
         WHERE (:list IS NULL OR list_code = :list) AND (:status IS NULL OR status = :status) \
         ORDER BY id DESC LIMIT :limit"
    ))?;
    let limit = filter.limit.map_or(-1, |n| n as i64);
    let rows = statement.query_map(
        named_params! {":list": filter.list_code, ":status": filter.status, ":limit": limit},
        from_row,
    )?;
    let mut posts = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    posts.reverse();
    Ok(posts)
}

/// The newest `limit` published posts of a list (or of all lists), newest
/// first, each body cut to its first `body_chars` characters. Walks the
/// partial index, so the cost follows `limit`, not the size of the archive.
pub fn latest_published(
    db: &Connection,
    list_code: Option<&str>,
    limit: usize,
    body_chars: usize,
) -> Result<Vec<StoredPost>> {
    let limit = limit as i64;
    let chars = i64::try_from(body_chars).unwrap_or(i64::MAX);
    let posts = match list_code {
        Some(code) => {
            let mut statement = db.prepare_cached(&format!(
                "SELECT {CUT_COLUMNS} FROM posts INDEXED BY posts_published_by_list \
                 WHERE list_code = :list AND status = 'published' ORDER BY id DESC LIMIT :limit"
            ))?;
            let rows = statement.query_map(
                named_params! {":list": code, ":limit": limit, ":chars": chars},
                from_row,
            )?;
            rows.collect::<rusqlite::Result<_>>()?
        }
        None => {
            let mut statement = db.prepare_cached(&format!(
                "SELECT {CUT_COLUMNS} FROM posts INDEXED BY posts_published \
                 WHERE status = 'published' ORDER BY id DESC LIMIT :limit"
            ))?;
            let rows =
                statement.query_map(named_params! {":limit": limit, ":chars": chars}, from_row)?;
            rows.collect::<rusqlite::Result<_>>()?
        }
    };
    Ok(posts)
}

/// One post by id.
pub fn get(db: &Connection, id: i64) -> Result<Option<StoredPost>> {
    let mut statement = db.prepare_cached(&format!("SELECT {COLUMNS} FROM posts WHERE id = ?1"))?;
    Ok(statement.query_row([id], from_row).optional()?)
}

/// One published post by its public key.
pub fn published_by_key(db: &Connection, key: &str) -> Result<Option<StoredPost>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM posts WHERE key = ?1 AND status = 'published'"
    ))?;
    Ok(statement.query_row([key], from_row).optional()?)
}

/// Records posts as filed from an imported archive (migration 0016).
pub fn mark_imported(tx: &Transaction<'_>, ids: impl IntoIterator<Item = i64>) -> Result<()> {
    let mut statement = tx.prepare_cached(
        "INSERT INTO imported_posts (post_id) VALUES (?1) ON CONFLICT DO NOTHING",
    )?;
    for id in ids {
        statement.execute([id])?;
    }
    Ok(())
}

/// Whether a post was filed from an imported archive.
pub fn is_imported(db: &Connection, id: i64) -> Result<bool> {
    let mut statement = db.prepare_cached("SELECT 1 FROM imported_posts WHERE post_id = ?1")?;
    Ok(statement.exists([id])?)
}

/// The bytes of a post exactly as they were received.
pub fn raw(db: &Connection, id: i64) -> Result<Option<Vec<u8>>> {
    let mut statement = db.prepare_cached("SELECT bytes FROM raw_messages WHERE post_id = ?1")?;
    Ok(statement.query_row([id], |row| row.get(0)).optional()?)
}

/// One archived message as an export writes it.
pub struct Archived {
    /// The author's address, empty when unknown.
    pub sender: String,
    /// Unix seconds.
    pub received_at: i64,
    pub raw: Vec<u8>,
}

/// Calls `each` with every published post of `list_code` (every list when
/// `None`) that has its raw bytes, oldest first, one at a time: an archive
/// of a million posts is never in memory at once.
pub fn each_published_raw(
    db: &Connection,
    list_code: Option<&str>,
    mut each: impl FnMut(Archived) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    let mut statement = db.prepare(
        "SELECT p.author_address, p.received_at, r.bytes FROM posts p \
         JOIN raw_messages r ON r.post_id = p.id \
         WHERE p.status = 'published' AND (?1 IS NULL OR p.list_code = ?1) ORDER BY p.id",
    )?;
    let mut rows = statement.query([list_code])?;
    let mut count = 0;
    while let Some(row) = rows.next()? {
        each(Archived {
            sender: row.get(0)?,
            received_at: row.get(1)?,
            raw: row.get(2)?,
        })?;
        count += 1;
    }
    Ok(count)
}

/// Decides about a held post: publishes it (into the search index and,
/// when its list's per-post fan-out has passed it, to the per-post
/// subscribers too) or refuses it with `reason`, recording who decided and
/// when. False when the post is not held (decided before, or never held):
/// nothing changes then, so a decision is taken once.
pub fn decide(
    tx: &Transaction<'_>,
    id: i64,
    status: Status,
    reason: Option<&str>,
    by: &str,
    now: i64,
) -> Result<bool> {
    let changed = tx
        .prepare_cached(
            "UPDATE posts SET status = ?2, reason = ?3, decided_by = ?4, decided_at = ?5 \
             WHERE id = ?1 AND status = 'held' AND (?2 <> 'published' OR list_code IS NOT NULL)",
        )?
        .execute(params![id, status, reason, by, now])?;
    if changed == 0 {
        return Ok(false);
    }
    if status == Status::Published {
        let (title, body, list): (String, String, String) = tx
            .prepare_cached("SELECT title, body, list_code FROM posts WHERE id = ?1")?
            .query_row([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        super::archive::index(tx, id, &title, &body)?;
        super::post_deliveries::hand_out_late(tx, &list, id, now)?;
    }
    Ok(true)
}

/// Files held post `id` under `list_code` in language `lang`, as a
/// moderator chose; false when it is not held (nothing changes then).
pub fn refile(tx: &Transaction<'_>, id: i64, list_code: &str, lang: &str) -> Result<bool> {
    let changed = tx
        .prepare_cached(
            "UPDATE posts SET list_code = ?2, lang = ?3, filed_by = ?4 \
             WHERE id = ?1 AND status = 'held'",
        )?
        .execute(params![
            id,
            list_code,
            lang,
            crate::post::FiledBy::Moderator
        ])?;
    Ok(changed > 0)
}

/// What incoming authentication found when post `id` arrived (the value
/// of its Authentication-Results field); `None` when it was not verified.
pub fn auth_results(db: &Connection, id: i64) -> Result<Option<String>> {
    let found: Option<Option<String>> = db
        .prepare_cached("SELECT auth_results FROM posts WHERE id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()?;
    Ok(found.flatten())
}

/// Who decided about a post and when, if anyone did.
pub fn decision(db: &Connection, id: i64) -> Result<Option<(String, i64)>> {
    let found: Option<(Option<String>, Option<i64>)> = db
        .prepare_cached("SELECT decided_by, decided_at FROM posts WHERE id = ?1")?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(found.and_then(|(by, at)| Some((by?, at?))))
}

/// Posts from `author` that arrived at or after `since` and were not
/// refused: what the per-sender rate limit counts.
pub fn count_from(db: &Connection, author: &str, since: i64) -> Result<u64> {
    let count: i64 = db
        .prepare_cached(
            "SELECT count(*) FROM posts INDEXED BY posts_by_author \
             WHERE author_address = ?1 AND received_at >= ?2 AND status <> 'rejected'",
        )?
        .query_row(params![author, since], |row| row.get(0))?;
    Ok(count as u64)
}

/// The ids of held posts that arrived before `before`, oldest first.
pub fn held_before(db: &Connection, before: i64) -> Result<Vec<i64>> {
    let mut statement = db.prepare_cached(
        "SELECT id FROM posts INDEXED BY posts_held WHERE status = 'held' AND received_at < ?1 \
         ORDER BY received_at, id",
    )?;
    let rows = statement.query_map([before], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Number of posts in each (list, status), for summaries.
pub fn count_by_list(db: &Connection) -> Result<Vec<(Option<String>, Status, u64)>> {
    let mut statement = db.prepare_cached(
        "SELECT list_code, status, count(*) FROM posts GROUP BY list_code, status \
         ORDER BY list_code, status",
    )?;
    let rows = statement.query_map([], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get::<_, i64>(2)? as u64))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<StoredPost> {
    Ok(StoredPost {
        id: row.get(0)?,
        post: Post {
            key: row.get(1)?,
            message_id: row.get(2)?,
            list_code: row.get(3)?,
            lang: row.get(4)?,
            status: row.get(5)?,
            reason: row.get(6)?,
            filed_by: row.get(7)?,
            tag: row.get(8)?,
            subject: row.get(9)?,
            title: row.get(10)?,
            translations: from_json(row, 11)?,
            machine_translation: row.get(12)?,
            author_name: row.get(13)?,
            author_address: row.get(14)?,
            date_header: row.get(15)?,
            date: row.get(16)?,
            received_at: row.get(17)?,
            body: row.get(18)?,
            attachments: from_json(row, 19)?,
            size: row.get::<_, i64>(20)? as usize,
        },
    })
}

/// A post for the store's tests.
#[cfg(test)]
pub(crate) fn sample(key: &str, list: &str, status: Status) -> NewPost {
    NewPost {
        post: Post {
            key: Some(key.to_string()),
            message_id: Some(format!("<{key}@example.org>")),
            list_code: Some(list.to_string()),
            lang: Some(list.to_string()),
            status,
            reason: None,
            filed_by: Some(crate::post::FiledBy::Tag),
            tag: Some(list.to_string()),
            subject: format!("({list}) Title {key}"),
            title: format!("Title {key}"),
            translations: vec!["de".into(), "fr".into()],
            machine_translation: true,
            author_name: "A. Writer".into(),
            author_address: "writer@example.org".into(),
            date_header: None,
            date: Some(1_700_000_000),
            received_at: 1_700_000_100,
            body: "Body text".into(),
            attachments: vec![],
            size: 9,
        },
        raw: Some(b"Subject: x\r\n\r\nBody text".to_vec()),
        auth_results: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open_in_memory, transaction};

    fn post(key: &str, list: &str) -> NewPost {
        sample(key, list, Status::Published)
    }

    fn store(db: &mut Connection, posts: &[NewPost]) -> Vec<Inserted> {
        transaction(db, |tx| insert(tx, posts)).unwrap()
    }

    #[test]
    fn duplicates_are_stored_once_even_within_a_batch() {
        let mut db = open_in_memory().unwrap();
        let first = store(
            &mut db,
            &[post("a", "en"), post("b", "en"), post("a", "en")],
        );
        assert_eq!(
            first,
            vec![Inserted::New(1), Inserted::New(2), Inserted::Duplicate(1)]
        );
        assert_eq!(
            store(&mut db, &[post("b", "en")]),
            vec![Inserted::Duplicate(2)]
        );
        assert_eq!(list(&db, &PostFilter::default()).unwrap().len(), 2);
    }

    #[test]
    fn the_authentication_results_are_kept_with_the_post() {
        let mut db = open_in_memory().unwrap();
        let mut verified = post("v", "en");
        verified.auth_results = Some("lists.example.org; dkim=pass header.d=a.example".into());
        store(&mut db, &[verified.clone(), post("n", "en")]);
        assert_eq!(auth_results(&db, 1).unwrap(), verified.auth_results);
        assert_eq!(auth_results(&db, 2).unwrap(), None, "not verified");
        assert_eq!(auth_results(&db, 3).unwrap(), None, "no such post");
    }

    #[test]
    fn a_post_round_trips_with_its_raw_bytes() {
        let mut db = open_in_memory().unwrap();
        let new = post("a", "gr");
        store(&mut db, std::slice::from_ref(&new));
        let stored = get(&db, 1).unwrap().unwrap();
        assert_eq!(stored.post, new.post);
        assert_eq!(raw(&db, 1).unwrap(), new.raw);
    }

    #[test]
    fn listing_filters_by_list_status_and_limit_oldest_first() {
        let mut db = open_in_memory().unwrap();
        let held = sample("h", "en", Status::Held);
        store(
            &mut db,
            &[post("1", "en"), post("2", "fr"), post("3", "en"), held],
        );
        let ids = |filter: PostFilter| -> Vec<i64> {
            list(&db, &filter).unwrap().iter().map(|p| p.id).collect()
        };
        let en = |status, limit| PostFilter {
            list_code: Some("en".into()),
            status,
            limit,
        };
        assert_eq!(ids(en(None, None)), vec![1, 3, 4]);
        assert_eq!(ids(en(Some(Status::Published), None)), vec![1, 3]);
        assert_eq!(ids(en(None, Some(2))), vec![3, 4]);
        assert_eq!(
            count_by_list(&db).unwrap(),
            vec![
                (Some("en".into()), Status::Held, 1),
                (Some("en".into()), Status::Published, 2),
                (Some("fr".into()), Status::Published, 1),
            ]
        );
    }

    #[test]
    fn latest_published_is_per_list_and_newest_first() {
        let mut db = open_in_memory().unwrap();
        let held = sample("h", "en", Status::Held);
        store(
            &mut db,
            &[post("1", "en"), post("2", "fr"), post("3", "en"), held],
        );
        let ids = |list: Option<&str>, limit| -> Vec<i64> {
            latest_published(&db, list, limit, 1_000)
                .unwrap()
                .iter()
                .map(|p| p.id)
                .collect()
        };
        assert_eq!(ids(Some("en"), 10), vec![3, 1]);
        assert_eq!(ids(None, 2), vec![3, 2]);
        // Bodies come cut to the characters asked, whole when shorter.
        let whole = get(&db, 3).unwrap().unwrap().body.clone();
        let cut = &latest_published(&db, None, 1, 3).unwrap()[0].body;
        assert_eq!(cut, &whole.chars().take(3).collect::<String>());
        assert!(whole.chars().count() > 3, "{whole:?}");
        let long = &latest_published(&db, None, 1, 100_000).unwrap()[0].body;
        assert_eq!(long, &whole);
    }
}
