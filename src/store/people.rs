//! A person as a whole: what each list's subscription of theirs is, all that
//! is stored about them (a data request), and erasing it (GDPR article 17).
//!
//! Erasing keeps the rows that links name (the person, their subscriptions,
//! their requests) as tombstones without anything personal in them: their
//! ids are signed into confirmation, unsubscribe and preference links
//! (`tokens.rs`), and a deleted row's id would be given again to the next
//! one, so an old link would reach a stranger's subscription. A tombstone
//! keeps the id taken and every flow finds nothing behind it.

use rusqlite::types::ValueRef;
use rusqlite::{params, OptionalExtension};
use serde_json::{Map, Value};

use super::{Connection, Result, Transaction};
use crate::subscribers::roster::Row;
use crate::subscribers::Mode;

/// What a forgotten person's address becomes: `forgotten:ID`, no address.
pub const FORGOTTEN: &str = "forgotten:";

/// The current subscribers of a list (or of every list) as the rows of a
/// roster: a person, a mode (the one chosen, should a change wait) and the
/// lists they follow in it.
pub fn roster(db: &Connection, list_code: Option<&str>) -> Result<Vec<Row>> {
    let mut statement = db.prepare_cached(
        "SELECT p.id, p.address, p.name, coalesce(s.next_mode, s.mode) AS chosen, s.list_code \
         FROM subscribers s JOIN people p ON p.id = s.person_id \
         WHERE s.removed_at IS NULL AND (?1 IS NULL OR s.list_code = ?1) \
         ORDER BY p.id, chosen, s.list_code",
    )?;
    let mut rows = statement.query([list_code])?;
    let mut roster: Vec<Row> = Vec::new();
    let mut last = (0, None);
    while let Some(row) = rows.next()? {
        let person: i64 = row.get(0)?;
        let mode: Mode = row.get(3)?;
        let list: String = row.get(4)?;
        match roster.last_mut() {
            Some(previous) if last == (person, Some(mode)) => previous.lists.push(list),
            _ => roster.push(Row {
                address: row.get(1)?,
                name: row.get(2)?,
                mode,
                lists: vec![list],
            }),
        }
        last = (person, Some(mode));
    }
    Ok(roster)
}

/// One of a person's subscriptions, in whatever state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Following {
    pub list_code: String,
    pub mode: Mode,
    /// A change waiting for the list's next digest.
    pub next_mode: Option<Mode>,
    /// Unix seconds, each.
    pub created_at: i64,
    pub confirmed_at: i64,
    /// Set once they left.
    pub removed_at: Option<i64>,
    /// Set while bounces have them disabled (sent nothing).
    pub disabled_at: Option<i64>,
}

/// A subscription asked for and not (yet) confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub list_code: String,
    pub mode: Mode,
    /// How it was asked: mail, web, import.
    pub via: String,
    /// Unix seconds, each.
    pub created_at: i64,
    pub expires_at: i64,
}

/// Every subscription of the person with `person_id`, current or ended, by
/// list.
pub fn following(db: &Connection, person_id: i64) -> Result<Vec<Following>> {
    let mut statement = db.prepare_cached(
        "SELECT list_code, mode, next_mode, created_at, confirmed_at, removed_at, disabled_at \
         FROM subscribers WHERE person_id = ?1 ORDER BY list_code",
    )?;
    let rows = statement.query_map([person_id], |row| {
        Ok(Following {
            list_code: row.get(0)?,
            mode: row.get(1)?,
            next_mode: row.get(2)?,
            created_at: row.get(3)?,
            confirmed_at: row.get(4)?,
            removed_at: row.get(5)?,
            disabled_at: row.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The requests of `address` not confirmed and not expired at `now`.
pub fn unconfirmed(db: &Connection, address: &str, now: i64) -> Result<Vec<Asked>> {
    let mut statement = db.prepare_cached(
        "SELECT list_code, mode, via, created_at, expires_at FROM requests \
         WHERE address = ?1 AND confirmed_at IS NULL AND expires_at >= ?2 ORDER BY id",
    )?;
    let rows = statement.query_map(params![address, now], |row| {
        Ok(Asked {
            list_code: row.get(0)?,
            mode: row.get(1)?,
            via: row.get(2)?,
            created_at: row.get(3)?,
            expires_at: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Everything stored about `address`, table by table, each row as its
/// columns say (bytes as text): for a data request (GDPR article 15). The
/// posts they wrote are listed by id and subject, not copied.
pub fn data_of(db: &Connection, address: &str) -> Result<Map<String, Value>> {
    let queries: [(&str, &str); 10] = [
        ("people", "SELECT * FROM people WHERE address = ?1"),
        (
            "subscribers",
            "SELECT * FROM subscribers WHERE person_id = (SELECT id FROM people WHERE address = ?1) \
             ORDER BY id",
        ),
        (
            "requests",
            "SELECT * FROM requests WHERE address = ?1 ORDER BY id",
        ),
        (
            "deliveries",
            "SELECT * FROM deliveries WHERE address = ?1 COLLATE NOCASE \
             OR subscriber_id IN (SELECT s.id FROM subscribers s JOIN people p ON p.id = s.person_id \
             WHERE p.address = ?1) ORDER BY id",
        ),
        (
            "post_deliveries",
            "SELECT * FROM post_deliveries WHERE address = ?1 COLLATE NOCASE \
             OR subscriber_id IN (SELECT s.id FROM subscribers s JOIN people p ON p.id = s.person_id \
             WHERE p.address = ?1) ORDER BY id",
        ),
        (
            "outgoing",
            "SELECT * FROM outgoing WHERE recipient = ?1 COLLATE NOCASE ORDER BY id",
        ),
        (
            "mail",
            "SELECT * FROM mail WHERE sender = ?1 COLLATE NOCASE ORDER BY id",
        ),
        (
            "combined",
            "SELECT * FROM combined WHERE person_id = (SELECT id FROM people WHERE address = ?1)",
        ),
        (
            "combined_owed",
            "SELECT * FROM combined_owed \
             WHERE person_id = (SELECT id FROM people WHERE address = ?1) ORDER BY digest_id",
        ),
        (
            "posts",
            "SELECT id, list_code, status, subject, author_name, author_address, received_at \
             FROM posts WHERE author_address = ?1 COLLATE NOCASE ORDER BY id",
        ),
    ];
    let mut data = Map::new();
    for (table, sql) in queries {
        let mut statement = db.prepare(sql)?;
        let names: Vec<String> = statement.column_names().map(str::to_string).collect();
        let mut rows = statement.query([address])?;
        let mut found = Vec::new();
        while let Some(row) = rows.next()? {
            let mut object = Map::new();
            for (index, name) in names.iter().enumerate() {
                let value = match row.get_ref(index)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(number) => Value::from(number),
                    ValueRef::Real(number) => Value::from(number),
                    ValueRef::Text(text) | ValueRef::Blob(text) => {
                        Value::from(String::from_utf8_lossy(text).into_owned())
                    }
                };
                object.insert(name.clone(), value);
            }
            found.push(Value::Object(object));
        }
        data.insert(table.to_string(), Value::Array(found));
    }
    Ok(data)
}

/// What erasing a person took away, table by table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forgotten {
    pub people: usize,
    pub subscriptions: usize,
    pub requests: usize,
    pub deliveries: usize,
    pub post_deliveries: usize,
    pub outgoing: usize,
    pub mail: usize,
    /// Their choice of one digest across lists, and the lists' digests it
    /// was owed.
    pub combined: usize,
    /// Posts they wrote: kept, as published writing is (the archive's
    /// business, not the subscriber list's).
    pub posts_kept: usize,
}

impl Forgotten {
    /// Whether anything at all was stored about them.
    pub fn anything(&self) -> bool {
        self.people
            + self.subscriptions
            + self.requests
            + self.deliveries
            + self.post_deliveries
            + self.outgoing
            + self.mail
            + self.combined
            > 0
    }
}

/// [`forget`] in a transaction of its own, with what it erases overwritten
/// in the database file (SQLite's `secure_delete`), and the write-ahead log
/// emptied after it: nothing of the person is left for a look at the bytes.
pub fn erase(connection: &mut Connection, address: &str, now: i64) -> Result<Forgotten> {
    connection.pragma_update(None, "secure_delete", true)?;
    let forgotten = super::transaction(connection, |tx| forget(tx, address, now));
    connection.pragma_update(None, "secure_delete", false)?;
    let forgotten = forgotten?;
    connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(forgotten)
}

/// Erases everything stored about `address` but the posts they wrote: the
/// person's name and address, their subscriptions, their requests, the
/// deliveries and single messages to them (sent or not: each holds the
/// address), and the mail they sent to the lists' service addresses. The
/// rows links name are left as tombstones (see the module's note).
pub fn forget(tx: &Transaction<'_>, address: &str, now: i64) -> Result<Forgotten> {
    let person: Option<i64> = tx
        .prepare_cached("SELECT id FROM people WHERE address = ?1")?
        .query_row([address], |row| row.get(0))
        .optional()?;
    let person = person.unwrap_or(-1);
    let mut forgotten = Forgotten {
        deliveries: tx.execute(
            "DELETE FROM deliveries WHERE address = ?1 COLLATE NOCASE \
             OR subscriber_id IN (SELECT id FROM subscribers WHERE person_id = ?2)",
            params![address, person],
        )?,
        post_deliveries: tx.execute(
            "DELETE FROM post_deliveries WHERE address = ?1 COLLATE NOCASE \
             OR subscriber_id IN (SELECT id FROM subscribers WHERE person_id = ?2)",
            params![address, person],
        )?,
        outgoing: tx.execute(
            "DELETE FROM outgoing WHERE recipient = ?1 COLLATE NOCASE",
            [address],
        )?,
        mail: tx.execute(
            "DELETE FROM mail WHERE sender = ?1 COLLATE NOCASE",
            [address],
        )?,
        ..Forgotten::default()
    };
    // Their choice of one digest across lists, and what it was owed.
    forgotten.combined = tx.execute("DELETE FROM combined WHERE person_id = ?1", [person])?
        + tx.execute("DELETE FROM combined_owed WHERE person_id = ?1", [person])?;
    // Their bounces name them too.
    tx.execute(
        "DELETE FROM bounces WHERE address = ?1 COLLATE NOCASE \
         OR subscriber_id IN (SELECT id FROM subscribers WHERE person_id = ?2)",
        params![address, person],
    )?;
    forgotten.subscriptions = tx.execute(
        "UPDATE subscribers SET mode = 'nomail', next_mode = NULL, created_at = 0, \
         confirmed_at = 0, removed_at = coalesce(removed_at, ?2) WHERE person_id = ?1",
        params![person, now],
    )?;
    forgotten.requests = tx.execute(
        &format!(
            "UPDATE requests SET address = '{FORGOTTEN}' || id, via = '', created_at = 0, \
             expires_at = 0, confirmed_at = coalesce(confirmed_at, 0) WHERE address = ?1"
        ),
        [address],
    )?;
    forgotten.people = tx.execute(
        &format!(
            "UPDATE people SET address = '{FORGOTTEN}' || id, name = '', created_at = 0 \
             WHERE id = ?1"
        ),
        [person],
    )?;
    forgotten.posts_kept = tx.query_row(
        "SELECT count(*) FROM posts WHERE author_address = ?1 COLLATE NOCASE",
        [address],
        |row| row.get::<_, i64>(0),
    )? as usize;
    Ok(forgotten)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open_in_memory, requests, subscribers, transaction};

    #[test]
    fn a_forgotten_person_leaves_no_trace_and_their_ids_are_never_given_again() {
        let mut db = open_in_memory().unwrap();
        let (person, request) = transaction(&mut db, |tx| {
            subscribers::add(tx, "en", &["ana@example.net".into()], Mode::Plain, 10)?;
            let request = requests::ask(tx, "ca", "ana@example.net", Mode::Mime, "web", 10, 1_000)?;
            tx.execute(
                "INSERT INTO mail (route, list_code, sender, received_at, outcome, message) \
                 VALUES ('request', 'en', 'ana@example.net', 10, 'answered', x'00')",
                [],
            )?;
            let person = subscribers::person(tx, "ana@example.net")?.unwrap();
            subscribers::set_name(tx, person.id, "Ana")?;
            Ok::<_, crate::store::Error>((person.id, request))
        })
        .unwrap();
        let before = data_of(&db, "ANA@example.net").unwrap();
        assert_eq!(before["people"][0]["name"], "Ana");
        assert_eq!(before["requests"].as_array().unwrap().len(), 1);
        assert_eq!(before["mail"].as_array().unwrap().len(), 1);

        let forgotten = transaction(&mut db, |tx| forget(tx, "Ana@example.net", 20)).unwrap();
        assert_eq!(
            (
                forgotten.people,
                forgotten.subscriptions,
                forgotten.requests,
                forgotten.mail
            ),
            (1, 1, 1, 1)
        );
        let after = data_of(&db, "ana@example.net").unwrap();
        for (table, rows) in &after {
            assert_eq!(rows.as_array().unwrap().len(), 0, "{table}: {rows}");
        }
        let everything: String = db
            .query_row(
                "SELECT group_concat(address || name) FROM people",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert!(!everything.contains("ana") && !everything.contains("Ana"));
        // The links of old lead nowhere...
        assert_eq!(subscribers::person_by_id(&db, person).unwrap(), None);
        assert!(requests::get(&db, request).unwrap().unwrap().expires_at < 20);
        assert!(subscribers::list(&db, None).unwrap().is_empty());
        // ...and the next person is not given the forgotten one's id.
        transaction(&mut db, |tx| {
            subscribers::add(tx, "en", &["bob@example.org".into()], Mode::Mime, 30)
        })
        .unwrap();
        let bob = subscribers::person(&db, "bob@example.org")
            .unwrap()
            .unwrap();
        assert_ne!(bob.id, person);
        // Coming back is a new beginning.
        transaction(&mut db, |tx| {
            subscribers::add(tx, "en", &["ana@example.net".into()], Mode::Mime, 40)
        })
        .unwrap();
        assert_eq!(subscribers::list(&db, Some("en")).unwrap().len(), 2);
    }
}
