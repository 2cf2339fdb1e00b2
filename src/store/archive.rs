//! What the archive's pages and search need beyond the posts: story heads,
//! the versions of a story, the search index, posts by time.

use rusqlite::params;

use super::{Result, Transaction};
use crate::search;

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
