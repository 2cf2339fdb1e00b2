//! Subscribers: add, remove, list.

use rusqlite::{params, OptionalExtension, Row};

use super::{Connection, Result, Transaction};
use crate::digest::DigestMode;
use crate::subscribers::{Added, Subscriber};

const COLUMNS: &str = "id, list_code, address, mode, token, created_at";

/// Subscribes each `(address, token)` to a list's digests in `mode`;
/// `token` is the unsubscribe secret to use if the subscriber is new.
pub fn add(
    tx: &Transaction<'_>,
    list_code: &str,
    entries: &[(String, String)],
    mode: DigestMode,
    now: i64,
) -> Result<Vec<Added>> {
    let mut existing = tx.prepare_cached(
        "SELECT id, mode, removed_at FROM subscribers WHERE list_code = ?1 AND address = ?2",
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO subscribers (list_code, address, mode, token, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut update =
        tx.prepare_cached("UPDATE subscribers SET mode = ?2, removed_at = NULL WHERE id = ?1")?;
    let mut results = Vec::with_capacity(entries.len());
    for (address, token) in entries {
        let found = existing
            .query_row(params![list_code, address], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, DigestMode>(1)?,
                    row.get::<_, Option<i64>>(2)?,
                ))
            })
            .optional()?;
        let added = match found {
            None => {
                insert.execute(params![list_code, address, mode, token, now])?;
                Added::New
            }
            Some((_, old_mode, None)) if old_mode == mode => Added::Unchanged,
            Some((id, _, _)) => {
                update.execute(params![id, mode])?;
                Added::Updated
            }
        };
        results.push(added);
    }
    Ok(results)
}

/// Unsubscribes addresses from a list; their pending deliveries are
/// dropped. Returns how many were subscribed.
pub fn remove(
    tx: &Transaction<'_>,
    list_code: &str,
    addresses: &[String],
    now: i64,
) -> Result<usize> {
    let mut remove = tx.prepare_cached(
        "UPDATE subscribers SET removed_at = ?3 \
         WHERE list_code = ?1 AND address = ?2 AND removed_at IS NULL RETURNING id",
    )?;
    let mut drop_pending = tx.prepare_cached(
        "DELETE FROM deliveries WHERE subscriber_id = ?1 AND state IN ('queued', 'deferred')",
    )?;
    let mut removed = 0;
    for address in addresses {
        let id: Option<i64> = remove
            .query_row(params![list_code, address, now], |row| row.get(0))
            .optional()?;
        if let Some(id) = id {
            drop_pending.execute([id])?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The current subscribers of a list (or of every list), in order of
/// subscription.
pub fn list(db: &Connection, list_code: Option<&str>) -> Result<Vec<Subscriber>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM subscribers \
         WHERE removed_at IS NULL AND (?1 IS NULL OR list_code = ?1) ORDER BY list_code, id"
    ))?;
    let rows = statement.query_map([list_code], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How many current subscribers each list has, by list code.
pub fn count_by_list(db: &Connection) -> Result<Vec<(String, u64)>> {
    let mut statement = db.prepare_cached(
        "SELECT list_code, count(*) FROM subscribers WHERE removed_at IS NULL \
         GROUP BY list_code ORDER BY list_code",
    )?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Subscriber> {
    Ok(Subscriber {
        id: row.get(0)?,
        list_code: row.get(1)?,
        address: row.get(2)?,
        mode: row.get(3)?,
        token: row.get(4)?,
        created_at: row.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open_in_memory, transaction};

    fn entries(addresses: &[&str]) -> Vec<(String, String)> {
        addresses
            .iter()
            .map(|a| (a.to_string(), format!("token-{a}")))
            .collect()
    }

    #[test]
    fn adding_twice_updates_the_mode_and_removal_hides_the_subscriber() {
        let mut db = open_in_memory().unwrap();
        let mut subscribe = |addresses: &[&str], mode, now| {
            let entries = entries(addresses);
            transaction(&mut db, |tx| add(tx, "en", &entries, mode, now)).unwrap()
        };
        assert_eq!(
            subscribe(&["a@x.org", "b@x.org"], DigestMode::Mime, 1),
            vec![Added::New, Added::New]
        );
        assert_eq!(
            subscribe(&["A@x.org", "b@x.org"], DigestMode::Mime, 2),
            vec![Added::Unchanged, Added::Unchanged]
        );
        assert_eq!(
            subscribe(&["b@x.org"], DigestMode::Plain, 3),
            vec![Added::Updated]
        );
        let removed =
            transaction(&mut db, |tx| remove(tx, "en", &["a@X.org".to_string()], 4)).unwrap();
        assert_eq!(removed, 1);
        let left = list(&db, Some("en")).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].mode, DigestMode::Plain);
        assert_eq!(left[0].token, "token-b@x.org");
        let entries = entries(&["a@x.org"]);
        let back = transaction(&mut db, |tx| add(tx, "en", &entries, DigestMode::Html, 5)).unwrap();
        assert_eq!(back, vec![Added::Updated]);
        assert_eq!(list(&db, None).unwrap().len(), 2);
        assert_eq!(count_by_list(&db).unwrap(), vec![("en".to_string(), 2)]);
    }
}
