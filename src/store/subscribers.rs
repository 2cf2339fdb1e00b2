//! People and subscribers: add, change, remove, look up.

use rusqlite::{params, OptionalExtension, Row};

use super::{Connection, Result, Transaction};
use crate::subscribers::{Added, Mode, Person, Subscriber};

const COLUMNS: &str =
    "s.id, s.list_code, s.person_id, p.address, s.mode, s.next_mode, s.created_at";

/// The id of the person with `address`, made when there is none.
pub fn person_id(tx: &Transaction<'_>, address: &str, now: i64) -> Result<i64> {
    let mut find = tx.prepare_cached("SELECT id FROM people WHERE address = ?1")?;
    if let Some(id) = find.query_row([address], |row| row.get(0)).optional()? {
        return Ok(id);
    }
    tx.prepare_cached("INSERT INTO people (address, created_at) VALUES (?1, ?2)")?
        .execute(params![address, now])?;
    Ok(tx.last_insert_rowid())
}

/// The person with `id`; none once forgotten ([`super::people::forget`]).
pub fn person_by_id(db: &Connection, id: i64) -> Result<Option<Person>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT id, address, name, created_at FROM people \
         WHERE id = ?1 AND address NOT LIKE '{}%'",
        super::people::FORGOTTEN
    ))?;
    Ok(statement
        .query_row([id], |row| {
            Ok(Person {
                id: row.get(0)?,
                address: row.get(1)?,
                name: row.get(2)?,
                created_at: row.get(3)?,
            })
        })
        .optional()?)
}

/// The person with `address`.
pub fn person(db: &Connection, address: &str) -> Result<Option<Person>> {
    let mut statement =
        db.prepare_cached("SELECT id, address, name, created_at FROM people WHERE address = ?1")?;
    Ok(statement
        .query_row([address], |row| {
            Ok(Person {
                id: row.get(0)?,
                address: row.get(1)?,
                name: row.get(2)?,
                created_at: row.get(3)?,
            })
        })
        .optional()?)
}

/// Gives the person with `id` the name `name`.
pub fn set_name(tx: &Transaction<'_>, id: i64, name: &str) -> Result<()> {
    tx.prepare_cached("UPDATE people SET name = ?2 WHERE id = ?1")?
        .execute(params![id, name])?;
    Ok(())
}

/// Subscribes each address to a list in `mode`, confirmed at `now` (the
/// operator's command, or a confirmed request). A current subscriber's mode
/// changes as [`set_mode`] changes it; a removed one comes back.
pub fn add(
    tx: &Transaction<'_>,
    list_code: &str,
    addresses: &[String],
    mode: Mode,
    now: i64,
) -> Result<Vec<Added>> {
    let mut results = Vec::with_capacity(addresses.len());
    let mut insert = tx.prepare_cached(
        "INSERT INTO subscribers (list_code, person_id, mode, created_at, confirmed_at) \
         VALUES (?1, ?2, ?3, ?4, ?4)",
    )?;
    let mut existing = tx.prepare_cached(
        "SELECT id, removed_at FROM subscribers WHERE list_code = ?1 AND person_id = ?2",
    )?;
    let mut restore = tx.prepare_cached(
        "UPDATE subscribers SET mode = ?2, next_mode = NULL, removed_at = NULL, confirmed_at = ?3 \
         WHERE id = ?1",
    )?;
    for address in addresses {
        let person = person_id(tx, address, now)?;
        let found: Option<(i64, Option<i64>)> = existing
            .query_row(params![list_code, person], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        let added = match found {
            None => {
                insert.execute(params![list_code, person, mode, now])?;
                Added::New
            }
            Some((id, Some(_))) => {
                restore.execute(params![id, mode, now])?;
                Added::Updated
            }
            Some((id, None)) => match set_mode(tx, id, mode)? {
                true => Added::Updated,
                false => Added::Unchanged,
            },
        };
        results.push(added);
    }
    Ok(results)
}

/// Changes a current subscriber's mode; says whether anything changed. A
/// change between digests, posts and no mail waits for the list's next
/// digest ([`Mode::waits_for_digest`]); going back to the current mode
/// cancels a waiting change. Deliveries of posts queued for someone who
/// stops taking posts are dropped.
pub fn set_mode(tx: &Transaction<'_>, subscriber_id: i64, mode: Mode) -> Result<bool> {
    let current: Option<(Mode, Option<Mode>)> = tx
        .prepare_cached(
            "SELECT mode, next_mode FROM subscribers WHERE id = ?1 AND removed_at IS NULL",
        )?
        .query_row([subscriber_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((now_mode, waiting)) = current else {
        return Ok(false);
    };
    let (mode_after, next_after) = if mode == now_mode {
        (now_mode, None)
    } else if now_mode.waits_for_digest(mode) {
        (now_mode, Some(mode))
    } else {
        (mode, None)
    };
    if (mode_after, next_after) == (now_mode, waiting) {
        return Ok(false);
    }
    tx.prepare_cached("UPDATE subscribers SET mode = ?2, next_mode = ?3 WHERE id = ?1")?
        .execute(params![subscriber_id, mode_after, next_after])?;
    if now_mode == Mode::Post && mode_after != Mode::Post {
        drop_pending_posts(tx, subscriber_id)?;
    }
    Ok(true)
}

/// Applies the changes waiting for `list_code`'s digest: called when it is
/// issued, after its deliveries were queued.
pub fn apply_waiting_modes(tx: &Transaction<'_>, list_code: &str) -> Result<usize> {
    let changed = tx
        .prepare_cached(
            "UPDATE subscribers SET mode = next_mode, next_mode = NULL \
             WHERE list_code = ?1 AND next_mode IS NOT NULL AND removed_at IS NULL \
             RETURNING id, mode",
        )?
        .query_map([list_code], |row| row.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(changed.len())
}

/// Unsubscribes addresses from a list; their pending deliveries are
/// dropped. Returns how many were subscribed.
pub fn remove(
    tx: &Transaction<'_>,
    list_code: &str,
    addresses: &[String],
    now: i64,
) -> Result<usize> {
    let mut find = tx.prepare_cached(
        "SELECT s.id FROM subscribers s JOIN people p ON p.id = s.person_id \
         WHERE s.list_code = ?1 AND p.address = ?2 AND s.removed_at IS NULL",
    )?;
    let mut removed = 0;
    for address in addresses {
        let id: Option<i64> = find
            .query_row(params![list_code, address], |row| row.get(0))
            .optional()?;
        if let Some(id) = id {
            removed += usize::from(unsubscribe(tx, id, now)?);
        }
    }
    Ok(removed)
}

/// Drops a subscriber's queued and deferred digests (found through the
/// partial index `deliveries_pending_by_subscriber`, migration 0009).
const DROP_PENDING_DIGESTS: &str =
    "DELETE FROM deliveries WHERE subscriber_id = ?1 AND state IN ('queued', 'deferred')";

/// Drops a subscriber's queued and deferred posts (through
/// `post_deliveries_pending_by_subscriber`).
const DROP_PENDING_POSTS: &str =
    "DELETE FROM post_deliveries WHERE subscriber_id = ?1 AND state IN ('queued', 'deferred')";

/// Ends a subscription; its pending deliveries (digests and posts) are
/// dropped. Returns whether it was current.
pub fn unsubscribe(tx: &Transaction<'_>, subscriber_id: i64, now: i64) -> Result<bool> {
    let changed = tx
        .prepare_cached(
            "UPDATE subscribers SET removed_at = ?2, next_mode = NULL \
             WHERE id = ?1 AND removed_at IS NULL",
        )?
        .execute(params![subscriber_id, now])?;
    if changed == 0 {
        return Ok(false);
    }
    tx.prepare_cached(DROP_PENDING_DIGESTS)?
        .execute([subscriber_id])?;
    drop_pending_posts(tx, subscriber_id)?;
    super::combined::drop_owed(tx, subscriber_id)?;
    Ok(true)
}

fn drop_pending_posts(tx: &Transaction<'_>, subscriber_id: i64) -> Result<()> {
    tx.prepare_cached(DROP_PENDING_POSTS)?
        .execute([subscriber_id])?;
    Ok(())
}

/// The current subscribers of a list (or of every list), in order of
/// subscription.
pub fn list(db: &Connection, list_code: Option<&str>) -> Result<Vec<Subscriber>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM subscribers s JOIN people p ON p.id = s.person_id \
         WHERE s.removed_at IS NULL AND (?1 IS NULL OR s.list_code = ?1) ORDER BY s.list_code, s.id"
    ))?;
    let rows = statement.query_map([list_code], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One current subscriber by id.
pub fn get(db: &Connection, id: i64) -> Result<Option<Subscriber>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM subscribers s JOIN people p ON p.id = s.person_id \
         WHERE s.id = ?1 AND s.removed_at IS NULL"
    ))?;
    Ok(statement.query_row([id], from_row).optional()?)
}

/// The current subscriber of `list_code` with `address`.
pub fn find(db: &Connection, list_code: &str, address: &str) -> Result<Option<Subscriber>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM subscribers s JOIN people p ON p.id = s.person_id \
         WHERE s.list_code = ?1 AND p.address = ?2 AND s.removed_at IS NULL"
    ))?;
    Ok(statement
        .query_row(params![list_code, address], from_row)
        .optional()?)
}

/// Every current subscription of a person, by list.
pub fn of_person(db: &Connection, person_id: i64) -> Result<Vec<Subscriber>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM subscribers s JOIN people p ON p.id = s.person_id \
         WHERE s.person_id = ?1 AND s.removed_at IS NULL ORDER BY s.list_code"
    ))?;
    let rows = statement.query_map([person_id], from_row)?;
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
        person_id: row.get(2)?,
        address: row.get(3)?,
        mode: row.get(4)?,
        next_mode: row.get(5)?,
        created_at: row.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open_in_memory, transaction};

    fn addresses(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| a.to_string()).collect()
    }

    /// Regression (issue 10's one-click benchmark): with one digest to
    /// 100,000 readers deferred, each one-click unsubscribe looked through
    /// every pending delivery of every subscriber (6 a second, the writer
    /// thread busy with nothing else meanwhile). Leaving must find the subscriber's
    /// own pending rows through an index on the subscriber, not by state.
    #[test]
    fn leaving_finds_only_the_subscribers_own_pending_deliveries() {
        let db = open_in_memory().unwrap();
        for (sql, table, index) in [
            (
                DROP_PENDING_DIGESTS,
                "deliveries",
                "deliveries_pending_by_subscriber",
            ),
            (
                DROP_PENDING_POSTS,
                "post_deliveries",
                "post_deliveries_pending_by_subscriber",
            ),
        ] {
            let plan: Vec<String> = db
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map([1], |row| row.get(3))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert_eq!(
                plan,
                [format!(
                    "SEARCH {table} USING INDEX {index} (subscriber_id=?)"
                )],
                "{sql}"
            );
        }
    }

    #[test]
    fn adding_twice_updates_the_mode_and_removal_hides_the_subscriber() {
        let mut db = open_in_memory().unwrap();
        let mut subscribe = |list: &[&str], mode, now| {
            let list = addresses(list);
            transaction(&mut db, |tx| add(tx, "en", &list, mode, now)).unwrap()
        };
        assert_eq!(
            subscribe(&["a@x.org", "b@x.org"], Mode::Mime, 1),
            vec![Added::New, Added::New]
        );
        assert_eq!(
            subscribe(&["A@x.org", "b@x.org"], Mode::Mime, 2),
            vec![Added::Unchanged, Added::Unchanged]
        );
        assert_eq!(
            subscribe(&["b@x.org"], Mode::Plain, 3),
            vec![Added::Updated]
        );
        let removed =
            transaction(&mut db, |tx| remove(tx, "en", &addresses(&["a@X.org"]), 4)).unwrap();
        assert_eq!(removed, 1);
        let left = list(&db, Some("en")).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].mode, Mode::Plain);
        let back = transaction(&mut db, |tx| {
            add(tx, "en", &addresses(&["a@x.org"]), Mode::Html, 5)
        })
        .unwrap();
        assert_eq!(back, vec![Added::Updated]);
        assert_eq!(list(&db, None).unwrap().len(), 2);
        assert_eq!(count_by_list(&db).unwrap(), vec![("en".to_string(), 2)]);
    }

    #[test]
    fn a_person_is_kept_once_whatever_lists_they_follow() {
        let mut db = open_in_memory().unwrap();
        for list in ["en", "ca"] {
            transaction(&mut db, |tx| {
                add(tx, list, &addresses(&["Ana@x.org"]), Mode::Post, 1)
            })
            .unwrap();
        }
        let person = person(&db, "ana@x.org").unwrap().unwrap();
        let lists: Vec<String> = of_person(&db, person.id)
            .unwrap()
            .into_iter()
            .map(|s| s.list_code)
            .collect();
        assert_eq!(lists, ["ca", "en"]);
        let people: i64 = db
            .query_row("SELECT count(*) FROM people", [], |row| row.get(0))
            .unwrap();
        assert_eq!(people, 1);
    }

    #[test]
    fn leaving_digests_waits_for_the_next_one_other_changes_do_not() {
        let mut db = open_in_memory().unwrap();
        transaction(&mut db, |tx| {
            add(tx, "en", &addresses(&["a@x.org"]), Mode::Mime, 1)
        })
        .unwrap();
        let id = find(&db, "en", "a@x.org").unwrap().unwrap().id;
        let mode = |db: &Connection| {
            let s = get(db, id).unwrap().unwrap();
            (s.mode, s.next_mode)
        };
        assert!(transaction(&mut db, |tx| set_mode(tx, id, Mode::Plain)).unwrap());
        assert_eq!(mode(&db), (Mode::Plain, None));
        assert!(transaction(&mut db, |tx| set_mode(tx, id, Mode::Post)).unwrap());
        assert_eq!(mode(&db), (Mode::Plain, Some(Mode::Post)));
        // Changing one's mind back cancels the change.
        assert!(transaction(&mut db, |tx| set_mode(tx, id, Mode::Plain)).unwrap());
        assert_eq!(mode(&db), (Mode::Plain, None));
        assert!(!transaction(&mut db, |tx| set_mode(tx, id, Mode::Plain)).unwrap());
        transaction(&mut db, |tx| set_mode(tx, id, Mode::NoMail)).unwrap();
        assert_eq!(mode(&db), (Mode::Plain, Some(Mode::NoMail)));
        assert_eq!(
            transaction(&mut db, |tx| apply_waiting_modes(tx, "en")).unwrap(),
            1
        );
        assert_eq!(mode(&db), (Mode::NoMail, None));
        // From no mail, at once.
        transaction(&mut db, |tx| set_mode(tx, id, Mode::Post)).unwrap();
        assert_eq!(mode(&db), (Mode::Post, None));
    }
}
