//! The newsgroups' article numbers (migration 0015, kept by triggers on
//! `posts`) and what the NNTP session reads of them: a group's range, its
//! numbers, an article's raw message and its place in every group. Only
//! published posts are shown; a number, once given, is never given again.

use rusqlite::{params, Connection, OptionalExtension};

use super::Result;

/// The group of all lists is stored under this code.
pub const ALL: &str = "";

/// What GROUP and LIST ACTIVE say of a group (RFC 3977 section 6.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Articles shown.
    pub count: u64,
    /// The lowest number shown; `high + 1` when none is.
    pub low: i64,
    /// The highest number shown; when none is, the highest ever given
    /// (0 for a group never written to), so it never goes down.
    pub high: i64,
}

/// One article: its number in the group asked, and what it is made of.
#[derive(Debug, Clone)]
pub struct Article {
    /// Its number in the group it was asked in (0 when asked by Message-ID
    /// outside a group holding it).
    pub number: i64,
    /// The Message-ID with its angle brackets, when the post had one.
    pub message_id: Option<String>,
    /// The post's key, from which a Message-ID is made when it had none.
    pub key: Option<String>,
    /// The list it is published in.
    pub list_code: String,
    /// The message exactly as stored.
    pub raw: Vec<u8>,
    /// Each group holding it, with its number there: `(code, number)`.
    pub places: Vec<(String, i64)>,
}

const SHOWN: &str = "JOIN posts ON posts.id = nntp_articles.post_id AND posts.status = 'published'";

/// The range of articles `group` shows.
pub fn range(db: &Connection, group: &str) -> Result<Range> {
    let (count, low, high): (i64, Option<i64>, Option<i64>) = db
        .prepare_cached(&format!(
            "SELECT count(*), min(number), max(number) FROM nntp_articles {SHOWN} WHERE grp = ?1"
        ))?
        .query_row([group], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    match (low, high) {
        (Some(low), Some(high)) => Ok(Range {
            count: count as u64,
            low,
            high,
        }),
        _ => {
            let given: Option<i64> = db
                .prepare_cached("SELECT max(number) FROM nntp_articles WHERE grp = ?1")?
                .query_row([group], |row| row.get(0))?;
            let high = given.unwrap_or(0);
            Ok(Range {
                count: 0,
                low: high + 1,
                high,
            })
        }
    }
}

/// The numbers `group` shows from `low` to `high`, in order.
pub fn numbers(db: &Connection, group: &str, low: i64, high: i64) -> Result<Vec<i64>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT number FROM nntp_articles {SHOWN}
         WHERE grp = ?1 AND number BETWEEN ?2 AND ?3 ORDER BY number"
    ))?;
    let rows = statement.query_map(params![group, low, high], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The number `group` shows next after `number` (NEXT), or before it
/// (LAST, `forward` false).
pub fn neighbour(db: &Connection, group: &str, number: i64, forward: bool) -> Result<Option<i64>> {
    let sql = if forward {
        format!("SELECT min(number) FROM nntp_articles {SHOWN} WHERE grp = ?1 AND number > ?2")
    } else {
        format!("SELECT max(number) FROM nntp_articles {SHOWN} WHERE grp = ?1 AND number < ?2")
    };
    Ok(db
        .prepare_cached(&sql)?
        .query_row(params![group, number], |row| row.get(0))?)
}

/// The article numbered `number` in `group`, if it is shown.
pub fn by_number(db: &Connection, group: &str, number: i64) -> Result<Option<Article>> {
    let post: Option<i64> = db
        .prepare_cached(&format!(
            "SELECT post_id FROM nntp_articles {SHOWN} WHERE grp = ?1 AND number = ?2"
        ))?
        .query_row(params![group, number], |row| row.get(0))
        .optional()?;
    match post {
        Some(post) => article(db, post, number),
        None => Ok(None),
    }
}

/// The shown article whose Message-ID is `message_id` (with its angle
/// brackets, as stored), numbered as in `group` when it is there.
pub fn by_message_id(
    db: &Connection,
    message_id: &str,
    group: Option<&str>,
) -> Result<Option<Article>> {
    let post: Option<i64> = db
        .prepare_cached(&format!(
            "SELECT post_id FROM nntp_articles {SHOWN}
             WHERE posts.message_id = ?1 ORDER BY post_id LIMIT 1"
        ))?
        .query_row([message_id], |row| row.get(0))
        .optional()?;
    let Some(post) = post else { return Ok(None) };
    let number: Option<i64> = match group {
        Some(group) => db
            .prepare_cached("SELECT number FROM nntp_articles WHERE grp = ?1 AND post_id = ?2")?
            .query_row(params![group, post], |row| row.get(0))
            .optional()?,
        None => None,
    };
    article(db, post, number.unwrap_or(0))
}

fn article(db: &Connection, post: i64, number: i64) -> Result<Option<Article>> {
    let found = db
        .prepare_cached(
            "SELECT posts.message_id, posts.key, posts.list_code, raw_messages.bytes
             FROM posts JOIN raw_messages ON raw_messages.post_id = posts.id
             WHERE posts.id = ?1 AND posts.status = 'published'",
        )?
        .query_row([post], |row| {
            Ok((
                row.get::<_, Option<String>>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, Vec<u8>>(3)?,
            ))
        })
        .optional()?;
    let Some((message_id, key, list_code, raw)) = found else {
        return Ok(None);
    };
    let mut statement = db.prepare_cached(
        "SELECT grp, number FROM nntp_articles WHERE post_id = ?1 ORDER BY grp = '', grp",
    )?;
    let places = statement
        .query_map([post], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(Article {
        number,
        message_id,
        key,
        list_code: list_code.unwrap_or_default(),
        raw,
        places,
    }))
}

/// One article as OVER and HDR read it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its number in the group asked (0 when asked by Message-ID outside it).
    pub number: i64,
    /// The Message-ID with its angle brackets, when the post had one.
    pub message_id: Option<String>,
    /// The post's key.
    pub key: Option<String>,
    /// The message exactly as stored.
    pub raw: Vec<u8>,
}

/// The shown articles of `group` from `low` to `high` with their raw
/// messages, for OVER and HDR.
pub fn overview(db: &Connection, group: &str, low: i64, high: i64) -> Result<Vec<Entry>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT number, posts.message_id, posts.key, raw_messages.bytes FROM nntp_articles {SHOWN}
         JOIN raw_messages ON raw_messages.post_id = nntp_articles.post_id
         WHERE grp = ?1 AND number BETWEEN ?2 AND ?3 ORDER BY number"
    ))?;
    let rows = statement.query_map(params![group, low, high], |row| {
        Ok(Entry {
            number: row.get(0)?,
            message_id: row.get(1)?,
            key: row.get(2)?,
            raw: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// When `group` began: when its first article was published (it arrived,
/// or a held one was approved); `None` for a group that has had none, which
/// is not yet new to anyone. A group's first number is its first article
/// for ever, so the date never changes.
pub fn began(db: &Connection, group: &str) -> Result<Option<i64>> {
    let began = db
        .prepare_cached(
            "SELECT max(posts.received_at, coalesce(posts.decided_at, 0))
             FROM nntp_articles JOIN posts ON posts.id = nntp_articles.post_id
             WHERE grp = ?1 ORDER BY number LIMIT 1",
        )?
        .query_row([group], |row| row.get(0))
        .optional()?;
    Ok(began)
}

/// The Message-IDs of the articles shown in `groups` (codes) that arrived,
/// or were approved, at or after `since` (Unix seconds), for NEWNEWS.
pub fn new_since(db: &Connection, groups: &[String], since: i64) -> Result<Vec<String>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT DISTINCT posts.message_id FROM nntp_articles {SHOWN}
         WHERE grp = ?1 AND posts.message_id IS NOT NULL
           AND max(posts.received_at, coalesce(posts.decided_at, 0)) >= ?2
         ORDER BY posts.id"
    ))?;
    let mut found = Vec::new();
    for group in groups {
        let rows = statement.query_map(params![group, since], |row| row.get::<_, String>(0))?;
        for row in rows {
            let id = row?;
            if !found.contains(&id) {
                found.push(id);
            }
        }
    }
    Ok(found)
}
