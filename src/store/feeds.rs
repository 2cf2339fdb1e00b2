//! What the feeds need from the store besides the posts themselves: the
//! change counters kept by the triggers of migration 0002.

use std::collections::BTreeMap;

use super::Store;

/// The scope under which changes to the feeds of all lists are counted.
pub const ALL_SCOPE: &str = "";

impl Store {
    /// The change counter of every feed scope that has ever changed: a list
    /// code, or [`ALL_SCOPE`] for the feeds of all lists. A scope missing from
    /// the map has never had a published post. Every insert, update or delete
    /// touching a published post bumps the counters of its list and of
    /// [`ALL_SCOPE`] in the same transaction, so reading these before the
    /// posts tells whether a feed built earlier may be stale.
    pub fn feed_versions(&self) -> rusqlite::Result<BTreeMap<String, i64>> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT scope, version FROM feed_versions")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewPost, Status};

    fn post(key: &str, list: &str, status: Status) -> NewPost {
        NewPost {
            key: Some(key.to_string()),
            message_id: None,
            list_code: Some(list.to_string()),
            lang: Some(list.to_string()),
            status,
            reason: None,
            filed_by: Some("tag"),
            tag: Some(list.to_string()),
            subject: format!("({list}) {key}"),
            title: key.to_string(),
            translations: vec![],
            machine_translation: false,
            author_name: String::new(),
            author_address: "a@example.org".into(),
            date_header: None,
            date: None,
            received_at: 1_700_000_000,
            body: "text".into(),
            attachments: vec![],
            size: 4,
            raw: None,
        }
    }

    fn version(store: &Store, scope: &str) -> i64 {
        store
            .feed_versions()
            .unwrap()
            .get(scope)
            .copied()
            .unwrap_or(0)
    }

    #[test]
    fn only_published_posts_bump_their_list_and_all() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .insert_posts(&[post("a", "en", Status::Published)])
            .unwrap();
        assert_eq!((version(&store, "en"), version(&store, ALL_SCOPE)), (1, 1));
        store
            .insert_posts(&[
                post("b", "fr", Status::Held),
                post("c", "en", Status::Rejected),
            ])
            .unwrap();
        assert_eq!(version(&store, "fr"), 0);
        assert_eq!((version(&store, "en"), version(&store, ALL_SCOPE)), (1, 1));
        store
            .insert_posts(&[post("d", "fr", Status::Published)])
            .unwrap();
        assert_eq!((version(&store, "en"), version(&store, "fr")), (1, 1));
        assert_eq!(version(&store, ALL_SCOPE), 2);
    }

    #[test]
    fn publishing_moving_and_deleting_bump_every_list_concerned() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .insert_posts(&[
                post("a", "en", Status::Held),
                post("b", "fr", Status::Published),
            ])
            .unwrap();
        let mut before = store.feed_versions().unwrap();
        let mut change = |sql: &str, bumped: &[&str]| {
            store.conn.execute(sql, []).unwrap();
            let after = store.feed_versions().unwrap();
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
