//! Subscribers: who reads each list's digests by email, and in which format.

use rusqlite::types::Type;
use rusqlite::{params, OptionalExtension, Row};

use super::Store;

/// The digest format a subscriber chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestMode {
    /// RFC 2046 multipart/mixed with a multipart/digest of the posts.
    Mime,
    /// RFC 1153 plain text.
    Plain,
    /// multipart/alternative: the plain text and an HTML rendering.
    Html,
    /// The table of contents alone, with each post's first lines and link.
    Summary,
}

impl DigestMode {
    /// Every mode, in the order digests are rendered.
    pub const ALL: [DigestMode; 4] = [
        DigestMode::Mime,
        DigestMode::Plain,
        DigestMode::Html,
        DigestMode::Summary,
    ];

    /// The name used in SQL and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestMode::Mime => "mime",
            DigestMode::Plain => "plain",
            DigestMode::Html => "html",
            DigestMode::Summary => "summary",
        }
    }

    /// The mode named `text`, if any.
    pub fn parse(text: &str) -> Option<DigestMode> {
        DigestMode::ALL
            .into_iter()
            .find(|mode| mode.as_str() == text)
    }
}

/// A subscriber of one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub id: i64,
    pub list_code: String,
    pub address: String,
    pub mode: DigestMode,
    /// Personal secret of the one-click unsubscribe URL.
    pub token: String,
    pub created_at: i64,
}

/// What [`Store::add_subscriber`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// A new subscriber.
    New,
    /// Already subscribed; the mode was updated (or a removed subscriber
    /// came back).
    Updated,
    /// Already subscribed in this mode.
    Unchanged,
}

const SUBSCRIBER_COLUMNS: &str = "id, list_code, address, mode, token, created_at";

impl Store {
    /// Subscribes `address` to a list's digests in `mode`; `token` is the
    /// unsubscribe secret to use if the subscriber is new. Many addresses go
    /// in one transaction.
    pub fn add_subscribers(
        &mut self,
        list_code: &str,
        entries: &[(String, String)],
        mode: DigestMode,
        now: i64,
    ) -> rusqlite::Result<Vec<Added>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut results = Vec::with_capacity(entries.len());
        {
            let mut existing = tx.prepare_cached(
                "SELECT id, mode, removed_at FROM subscribers WHERE list_code = ?1 AND address = ?2",
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO subscribers (list_code, address, mode, token, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut update = tx.prepare_cached(
                "UPDATE subscribers SET mode = ?2, removed_at = NULL WHERE id = ?1",
            )?;
            for (address, token) in entries {
                let found = existing
                    .query_row(params![list_code, address], |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, Option<i64>>(2)?,
                        ))
                    })
                    .optional()?;
                let added = match found {
                    None => {
                        insert.execute(params![list_code, address, mode.as_str(), token, now])?;
                        Added::New
                    }
                    Some((_, old_mode, None)) if old_mode == mode.as_str() => Added::Unchanged,
                    Some((id, _, _)) => {
                        update.execute(params![id, mode.as_str()])?;
                        Added::Updated
                    }
                };
                results.push(added);
            }
        }
        tx.commit()?;
        Ok(results)
    }

    /// Unsubscribes addresses from a list; their pending deliveries are
    /// dropped. Returns how many were subscribed.
    pub fn remove_subscribers(
        &mut self,
        list_code: &str,
        addresses: &[String],
        now: i64,
    ) -> rusqlite::Result<usize> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut removed = 0;
        {
            let mut remove = tx.prepare_cached(
                "UPDATE subscribers SET removed_at = ?3 \
                 WHERE list_code = ?1 AND address = ?2 AND removed_at IS NULL RETURNING id",
            )?;
            let mut drop_pending = tx.prepare_cached(
                "DELETE FROM deliveries WHERE subscriber_id = ?1 AND state IN ('queued', 'deferred')",
            )?;
            for address in addresses {
                let id: Option<i64> = remove
                    .query_row(params![list_code, address, now], |row| row.get(0))
                    .optional()?;
                if let Some(id) = id {
                    drop_pending.execute([id])?;
                    removed += 1;
                }
            }
        }
        tx.commit()?;
        Ok(removed)
    }

    /// The current subscribers of a list (or of every list), in order of
    /// subscription.
    pub fn subscribers(&self, list_code: Option<&str>) -> rusqlite::Result<Vec<Subscriber>> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers \
             WHERE removed_at IS NULL AND (?1 IS NULL OR list_code = ?1) ORDER BY list_code, id"
        ))?;
        let rows = statement.query_map([list_code], subscriber_from_row)?;
        rows.collect()
    }
}

pub(super) fn mode_from(row: &Row<'_>, index: usize) -> rusqlite::Result<DigestMode> {
    let text: String = row.get(index)?;
    DigestMode::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            Type::Text,
            format!("unknown digest mode {text}").into(),
        )
    })
}

fn subscriber_from_row(row: &Row<'_>) -> rusqlite::Result<Subscriber> {
    Ok(Subscriber {
        id: row.get(0)?,
        list_code: row.get(1)?,
        address: row.get(2)?,
        mode: mode_from(row, 3)?,
        token: row.get(4)?,
        created_at: row.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(addresses: &[&str]) -> Vec<(String, String)> {
        addresses
            .iter()
            .map(|a| (a.to_string(), format!("token-{a}")))
            .collect()
    }

    #[test]
    fn adding_twice_updates_the_mode_and_removal_hides_the_subscriber() {
        let mut store = Store::open_in_memory().unwrap();
        let added = store
            .add_subscribers("en", &entries(&["a@x.org", "b@x.org"]), DigestMode::Mime, 1)
            .unwrap();
        assert_eq!(added, vec![Added::New, Added::New]);
        let again = store
            .add_subscribers("en", &entries(&["A@x.org", "b@x.org"]), DigestMode::Mime, 2)
            .unwrap();
        assert_eq!(again, vec![Added::Unchanged, Added::Unchanged]);
        let changed = store
            .add_subscribers("en", &entries(&["b@x.org"]), DigestMode::Plain, 3)
            .unwrap();
        assert_eq!(changed, vec![Added::Updated]);
        assert_eq!(
            store
                .remove_subscribers("en", &["a@X.org".to_string()], 4)
                .unwrap(),
            1
        );
        let left = store.subscribers(Some("en")).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].mode, DigestMode::Plain);
        assert_eq!(left[0].token, "token-b@x.org");
        let back = store
            .add_subscribers("en", &entries(&["a@x.org"]), DigestMode::Html, 5)
            .unwrap();
        assert_eq!(back, vec![Added::Updated]);
        assert_eq!(store.subscribers(None).unwrap().len(), 2);
    }
}
