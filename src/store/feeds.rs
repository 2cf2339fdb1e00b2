//! What the feeds need from the store besides the posts themselves: the
//! change counters kept by the triggers of migration 0002.

use std::collections::BTreeMap;

use super::{Connection, Result};

/// The scope under which changes to the feeds of all lists are counted.
pub const ALL_SCOPE: &str = "";

/// The change counter of every feed scope that has ever changed: a list
/// code, or [`ALL_SCOPE`] for the feeds of all lists. A scope missing from
/// the map has never had a published post. Every insert, update or delete
/// touching a published post bumps the counters of its list and of
/// [`ALL_SCOPE`] in the same transaction, so reading these before the
/// posts tells whether a feed built earlier may be stale.
pub fn versions(db: &Connection) -> Result<BTreeMap<String, i64>> {
    let mut statement = db.prepare_cached("SELECT scope, version FROM feed_versions")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::post::Status;
    use crate::store::posts::{self, sample};
    use crate::store::{open_in_memory, transaction};

    fn add(db: &mut Connection, posts: &[(&str, &str, Status)]) {
        let posts: Vec<_> = posts
            .iter()
            .map(|(key, list, status)| sample(key, list, *status))
            .collect();
        transaction(db, |tx| posts::insert(tx, &posts)).unwrap();
    }

    fn version(db: &Connection, scope: &str) -> i64 {
        versions(db).unwrap().get(scope).copied().unwrap_or(0)
    }

    #[test]
    fn only_published_posts_bump_their_list_and_all() {
        let mut db = open_in_memory().unwrap();
        add(&mut db, &[("a", "en", Status::Published)]);
        assert_eq!((version(&db, "en"), version(&db, ALL_SCOPE)), (1, 1));
        add(
            &mut db,
            &[("b", "fr", Status::Held), ("c", "en", Status::Rejected)],
        );
        assert_eq!(version(&db, "fr"), 0);
        assert_eq!((version(&db, "en"), version(&db, ALL_SCOPE)), (1, 1));
        add(&mut db, &[("d", "fr", Status::Published)]);
        assert_eq!((version(&db, "en"), version(&db, "fr")), (1, 1));
        assert_eq!(version(&db, ALL_SCOPE), 2);
    }

    #[test]
    fn publishing_moving_and_deleting_bump_every_list_concerned() {
        let mut db = open_in_memory().unwrap();
        add(
            &mut db,
            &[("a", "en", Status::Held), ("b", "fr", Status::Published)],
        );
        let mut before = versions(&db).unwrap();
        let mut change = |sql: &str, bumped: &[&str]| {
            db.execute(sql, []).unwrap();
            let after = versions(&db).unwrap();
            for scope in ["en", "de", "fr", ALL_SCOPE] {
                let was = before.get(scope).copied().unwrap_or(0);
                let is = after.get(scope).copied().unwrap_or(0);
                assert_eq!(is > was, bumped.contains(&scope), "{sql}: scope {scope:?}");
            }
            before = after;
        };
        change(
            "UPDATE posts SET status = 'published' WHERE key = 'a'",
            &["en", ALL_SCOPE],
        );
        change(
            "UPDATE posts SET list_code = 'de' WHERE key = 'a'",
            &["en", "de", ALL_SCOPE],
        );
        change(
            "UPDATE posts SET body = 'edited' WHERE key = 'a'",
            &["de", ALL_SCOPE],
        );
        // A column the feeds do not show changes nothing.
        change("UPDATE posts SET size = 5 WHERE key = 'a'", &[]);
        change(
            "UPDATE posts SET status = 'held' WHERE key = 'a'",
            &["de", ALL_SCOPE],
        );
        change("UPDATE posts SET body = 'again' WHERE key = 'a'", &[]);
        change("DELETE FROM posts WHERE key = 'b'", &["fr", ALL_SCOPE]);
    }
}
