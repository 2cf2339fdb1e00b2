//! One digest across several lists (migration 0017): who chose it, and
//! the lists' digests each of them is owed.

use rusqlite::{params, OptionalExtension, Row};

use super::sql::{from_json, to_json};
use super::{subscribers, Connection, Result, Transaction};
use crate::digest::DigestMode;
use crate::subscribers::Subscriber;

/// A person's choice of one digest across their lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub person_id: i64,
    /// A name of `[site] combined_schedules`.
    pub schedule: String,
    pub mode: DigestMode,
    /// The lists it covers, in the person's order.
    pub lists: Vec<String>,
    /// The schedule slot last decided (Unix seconds).
    pub last_slot: i64,
}

/// A list's digest a person is owed, through one of their subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owed {
    pub digest_id: i64,
    pub subscriber_id: i64,
    pub list_code: String,
    /// Whether the subscription is still active (not left, not disabled);
    /// a digest owed to one that ended is dropped, as its delivery would be.
    pub active: bool,
}

const COLUMNS: &str = "person_id, schedule, mode, lists, last_slot";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Choice> {
    Ok(Choice {
        person_id: row.get(0)?,
        schedule: row.get(1)?,
        mode: row.get(2)?,
        lists: from_json(row, 3)?,
        last_slot: row.get(4)?,
    })
}

/// Records that `person_id` wants one digest across `lists` (in that
/// order) in `mode` on `schedule`. A first choice counts its slots from
/// `now`; a changed one keeps its place in the schedule.
pub fn choose(
    tx: &Transaction<'_>,
    person_id: i64,
    schedule: &str,
    mode: DigestMode,
    lists: &[String],
    now: i64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO combined (person_id, schedule, mode, lists, last_slot) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (person_id) DO UPDATE SET \
         schedule = excluded.schedule, mode = excluded.mode, lists = excluded.lists",
    )?
    .execute(params![person_id, schedule, mode, to_json(&lists), now])?;
    Ok(())
}

/// Ends a person's choice; returns whether they had one. Digests already
/// owed are still sent, in one last digest across lists.
pub fn stop(tx: &Transaction<'_>, person_id: i64) -> Result<bool> {
    Ok(tx
        .prepare_cached("DELETE FROM combined WHERE person_id = ?1")?
        .execute([person_id])?
        > 0)
}

/// A person's choice, if any.
pub fn get(db: &Connection, person_id: i64) -> Result<Option<Choice>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM combined WHERE person_id = ?1"
    ))?;
    Ok(statement.query_row([person_id], from_row).optional()?)
}

/// Every choice, by person.
pub fn all(db: &Connection) -> Result<Vec<Choice>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM combined ORDER BY person_id"
    ))?;
    let rows = statement.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The current subscriptions a person's digest across lists covers, in
/// its order: those of their choice, or, with none any more (their last
/// digest across lists went out when it ended), those in a digest mode.
/// What its one-click link leaves.
pub fn covered(db: &Connection, person_id: i64) -> Result<Vec<Subscriber>> {
    let following = subscribers::of_person(db, person_id)?;
    Ok(match get(db, person_id)? {
        Some(choice) => choice
            .lists
            .iter()
            .filter_map(|code| following.iter().find(|s| &s.list_code == code))
            .cloned()
            .collect(),
        None => following
            .into_iter()
            .filter(|s| s.mode.digest().is_some())
            .collect(),
    })
}

/// People owed digests who no longer chose one across lists: their last
/// one is due at once.
pub fn owed_without_choice(db: &Connection) -> Result<Vec<i64>> {
    let mut statement = db.prepare_cached(
        "SELECT DISTINCT o.person_id FROM combined_owed o \
         WHERE NOT EXISTS (SELECT 1 FROM combined c WHERE c.person_id = o.person_id) \
         ORDER BY o.person_id",
    )?;
    let rows = statement.query_map([], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// In the transaction recording list `list_code`'s digest `digest_id`:
/// each subscription to it that would get it in one of `modes` (a JSON
/// array) and whose person chose one digest across lists covering it is
/// owed it instead. Returns how many.
pub fn owe(tx: &Transaction<'_>, digest_id: i64, list_code: &str, modes: &str) -> Result<usize> {
    Ok(tx
        .prepare_cached(
            "INSERT INTO combined_owed (person_id, digest_id, subscriber_id) \
             SELECT s.person_id, ?1, s.id FROM subscribers s \
             JOIN combined c ON c.person_id = s.person_id \
             WHERE s.list_code = ?2 AND s.removed_at IS NULL AND s.disabled_at IS NULL \
             AND s.mode IN (SELECT value FROM json_each(?3)) \
             AND EXISTS (SELECT 1 FROM json_each(c.lists) WHERE value = ?2) \
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![digest_id, list_code, modes])?)
}

/// The digests `person_id` is owed, oldest first.
pub fn owed(db: &Connection, person_id: i64) -> Result<Vec<Owed>> {
    let mut statement = db.prepare_cached(
        "SELECT o.digest_id, o.subscriber_id, s.list_code, \
         s.removed_at IS NULL AND s.disabled_at IS NULL \
         FROM combined_owed o JOIN subscribers s ON s.id = o.subscriber_id \
         WHERE o.person_id = ?1 ORDER BY o.digest_id",
    )?;
    let rows = statement.query_map([person_id], |row| {
        Ok(Owed {
            digest_id: row.get(0)?,
            subscriber_id: row.get(1)?,
            list_code: row.get(2)?,
            active: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Takes the digests `taken` off what `person_id` is owed, in the
/// transaction that queues their digest holding them; false (and nothing
/// taken) when the person's choice or what they are owed is no longer
/// what the digest was composed from (`choice`, `owed`): another run sent
/// it, a list issued another digest, a subscription ended or the choice
/// changed meanwhile, and the digest must be made again.
pub fn settle(
    tx: &Transaction<'_>,
    person_id: i64,
    choice: Option<&Choice>,
    owed: &[Owed],
    taken: &[i64],
) -> Result<bool> {
    let same_choice = match (get(tx, person_id)?, choice) {
        (None, None) => true,
        (Some(now), Some(then)) => {
            (&now.schedule, now.mode, &now.lists) == (&then.schedule, then.mode, &then.lists)
        }
        _ => false,
    };
    if !same_choice || self::owed(tx, person_id)? != owed {
        return Ok(false);
    }
    let mut statement =
        tx.prepare_cached("DELETE FROM combined_owed WHERE person_id = ?1 AND digest_id = ?2")?;
    for digest_id in taken {
        statement.execute(params![person_id, digest_id])?;
    }
    Ok(true)
}

/// Drops what a subscription is owed, as its pending deliveries are
/// dropped when it ends or is disabled: a subscription enabled or joined
/// again later is not sent digests of the time between.
pub fn drop_owed(tx: &Transaction<'_>, subscriber_id: i64) -> Result<()> {
    tx.prepare_cached("DELETE FROM combined_owed WHERE subscriber_id = ?1")?
        .execute([subscriber_id])?;
    Ok(())
}

/// Records that `person_id`'s schedule slot `slot` was decided.
pub fn decide_slot(tx: &Transaction<'_>, person_id: i64, slot: i64) -> Result<()> {
    tx.prepare_cached("UPDATE combined SET last_slot = max(last_slot, ?2) WHERE person_id = ?1")?
        .execute(params![person_id, slot])?;
    Ok(())
}
