//! Digests: the posts pending for each list's next digest, and recording a
//! digest with its posts, its rendered bodies and one queued delivery per
//! subscriber.

use rusqlite::{params, OptionalExtension, Row};

use super::{posts, Connection, Result, Transaction};
use crate::digest::{DigestMode, DigestRecord, IssuedDigest, NewDigest, Pending, PendingPost};

const COLUMNS: &str = "id, list_code, volume, issue, period, reason, issued_at, nonce";

/// Published posts of list ?1 that no digest of the list holds yet, and
/// that did not come from an imported archive.
const PENDING_WHERE: &str = "list_code = ?1 AND status = 'published' AND NOT EXISTS \
     (SELECT 1 FROM digest_posts d WHERE d.list_code = ?1 AND d.post_id = posts.id) \
     AND NOT EXISTS (SELECT 1 FROM imported_posts i WHERE i.post_id = posts.id)";

/// The newest digest of a list.
pub fn last(db: &Connection, list_code: &str) -> Result<Option<DigestRecord>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM digests WHERE list_code = ?1 ORDER BY id DESC LIMIT 1"
    ))?;
    Ok(statement.query_row([list_code], from_row).optional()?)
}

/// One digest by id.
pub fn get(db: &Connection, id: i64) -> Result<Option<DigestRecord>> {
    let mut statement =
        db.prepare_cached(&format!("SELECT {COLUMNS} FROM digests WHERE id = ?1"))?;
    Ok(statement.query_row([id], from_row).optional()?)
}

/// Every digest of a list, oldest first.
pub fn of_list(db: &Connection, list_code: &str) -> Result<Vec<DigestRecord>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM digests WHERE list_code = ?1 ORDER BY id"
    ))?;
    let rows = statement.query_map([list_code], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The ids of the posts a digest holds, in digest order.
pub fn post_ids(db: &Connection, digest_id: i64) -> Result<Vec<i64>> {
    let mut statement = db.prepare_cached(
        "SELECT post_id FROM digest_posts WHERE digest_id = ?1 ORDER BY position",
    )?;
    let rows = statement.query_map([digest_id], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Posts and bytes of body text pending for a list's next digest.
pub fn pending_size(db: &Connection, list_code: &str) -> Result<Pending> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT count(*), coalesce(sum(length(CAST(body AS BLOB))), 0) FROM posts \
         INDEXED BY posts_published_by_list WHERE {PENDING_WHERE}"
    ))?;
    Ok(statement.query_row([list_code], |row| {
        Ok(Pending {
            posts: row.get::<_, i64>(0)? as usize,
            bytes: row.get::<_, i64>(1)? as usize,
        })
    })?)
}

/// The ids of the posts pending for a list's next digest, oldest first.
pub fn pending_post_ids(db: &Connection, list_code: &str) -> Result<Vec<i64>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT id FROM posts INDEXED BY posts_published_by_list WHERE {PENDING_WHERE} ORDER BY id"
    ))?;
    let rows = statement.query_map([list_code], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The posts pending for a list's next digest, oldest first, with their
/// original bytes.
pub fn pending_posts(db: &Connection, list_code: &str) -> Result<Vec<PendingPost>> {
    let mut pending = Vec::new();
    for id in pending_post_ids(db, list_code)? {
        if let Some(post) = posts::get(db, id)? {
            let raw = posts::raw(db, id)?;
            pending.push(PendingPost { post, raw });
        }
    }
    Ok(pending)
}

/// The schedule slot (Unix seconds) a list's digest was last decided at.
pub fn slot(db: &Connection, list_code: &str) -> Result<Option<i64>> {
    let mut statement =
        db.prepare_cached("SELECT last_slot FROM digest_slots WHERE list_code = ?1")?;
    Ok(statement
        .query_row([list_code], |row| row.get(0))
        .optional()?)
}

/// Whether a digest composed from `pending_ids` after the digest
/// `previous` may still be recorded: composition runs outside the write
/// lock, and another process may have issued a digest (its number would be
/// given twice) or taken one of those posts back (it would be sent)
/// meanwhile. Posts published since come after those composed, in the
/// order posts are pending, and wait for the next digest: under a steady
/// stream of posts a digest is composed once, not again for every post
/// that arrived while it was.
pub fn unchanged(
    tx: &Transaction<'_>,
    list_code: &str,
    previous: Option<i64>,
    pending_ids: &[i64],
) -> Result<bool> {
    Ok(last(tx, list_code)?.map(|d| d.id) == previous
        && pending_post_ids(tx, list_code)?.starts_with(pending_ids))
}

/// Records the decision of a list's schedule `slot` and, when `digest` is
/// given, the digest holding `pending_ids` (in that order), its bodies and
/// one queued delivery per current subscriber of a format it was rendered
/// in. In the caller's transaction, a crash leaves either all of them or
/// none, and the primary key of `digest_posts` keeps a post out of two
/// digests of its list.
pub fn record(
    tx: &Transaction<'_>,
    list_code: &str,
    slot: Option<i64>,
    digest: Option<NewDigest>,
    pending_ids: &[i64],
) -> Result<Option<IssuedDigest>> {
    if let Some(slot) = slot {
        tx.execute(
            "INSERT INTO digest_slots (list_code, last_slot) VALUES (?1, ?2) \
             ON CONFLICT (list_code) DO UPDATE SET last_slot = max(last_slot, excluded.last_slot)",
            params![list_code, slot],
        )?;
    }
    let Some(new) = digest else {
        return Ok(None);
    };
    // SQLite's randomness is seeded by the operating system's.
    let (digest_id, nonce): (i64, String) = tx.query_row(
        "INSERT INTO digests (list_code, volume, issue, period, reason, issued_at, nonce) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, lower(hex(randomblob(8)))) RETURNING id, nonce",
        params![
            list_code,
            new.volume,
            new.issue,
            new.period,
            new.reason,
            new.issued_at
        ],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let mut link = tx.prepare_cached(
        "INSERT INTO digest_posts (list_code, post_id, digest_id, position) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (position, id) in pending_ids.iter().enumerate() {
        link.execute(params![list_code, id, digest_id, position as i64 + 1])?;
    }
    let mut body = tx.prepare_cached(
        "INSERT INTO digest_bodies (digest_id, mode, subject, entity) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for rendered in &new.bodies {
        body.execute(params![
            digest_id,
            rendered.mode,
            rendered.subject,
            rendered.entity
        ])?;
    }
    // Posts not yet handed out to the list's post subscribers go out first,
    // before waiting mode changes apply: a subscriber leaving digests for
    // posts gets this digest and then each later post, one leaving posts
    // for digests each post so far and then the next digest.
    super::post_deliveries::fan_out(tx, list_code, new.issued_at)?;
    let modes: Vec<&str> = new.bodies.iter().map(|b| b.mode.as_str()).collect();
    let modes = super::sql::to_json(&modes);
    // Those who chose one digest across their lists are owed this one
    // instead (migration 0017).
    super::combined::owe(tx, digest_id, list_code, &modes)?;
    let queued = tx.execute(
        "INSERT INTO deliveries (digest_id, subscriber_id, address, mode, state, next_attempt_at) \
         SELECT ?1, s.id, p.address, s.mode, 'queued', ?3 FROM subscribers s \
         JOIN people p ON p.id = s.person_id \
         WHERE s.list_code = ?2 AND s.removed_at IS NULL AND s.disabled_at IS NULL \
         AND s.mode IN (SELECT value FROM json_each(?4)) \
         AND NOT EXISTS (SELECT 1 FROM combined_owed o \
                         WHERE o.person_id = s.person_id AND o.digest_id = ?1) \
         ORDER BY s.id",
        params![digest_id, list_code, new.issued_at, modes],
    )?;
    super::subscribers::apply_waiting_modes(tx, list_code)?;
    Ok(Some(IssuedDigest {
        record: DigestRecord {
            id: digest_id,
            list_code: list_code.to_string(),
            volume: new.volume,
            issue: new.issue,
            period: new.period,
            reason: new.reason,
            issued_at: new.issued_at,
            nonce: Some(nonce),
        },
        posts: pending_ids.len(),
        queued,
    }))
}

/// The rendered body of one format of a digest: (subject, entity).
pub fn body(
    db: &Connection,
    digest_id: i64,
    mode: DigestMode,
) -> Result<Option<(String, Vec<u8>)>> {
    let mut statement = db.prepare_cached(
        "SELECT subject, entity FROM digest_bodies WHERE digest_id = ?1 AND mode = ?2",
    )?;
    Ok(statement
        .query_row(params![digest_id, mode], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?)
}

/// Which formats of a digest have a stored body.
pub fn body_modes(db: &Connection, digest_id: i64) -> Result<Vec<DigestMode>> {
    let mut statement =
        db.prepare_cached("SELECT mode FROM digest_bodies WHERE digest_id = ?1 ORDER BY mode")?;
    let rows = statement.query_map([digest_id], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Drops the rendered bodies of digests no delivery is pending for;
/// returns how many bodies went.
pub fn prune_bodies(tx: &Transaction<'_>) -> Result<usize> {
    Ok(tx.execute(
        "DELETE FROM digest_bodies WHERE NOT EXISTS (SELECT 1 FROM deliveries \
         WHERE deliveries.digest_id = digest_bodies.digest_id AND state IN ('queued', 'deferred'))",
        [],
    )?)
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<DigestRecord> {
    Ok(DigestRecord {
        id: row.get(0)?,
        list_code: row.get(1)?,
        volume: row.get(2)?,
        issue: row.get(3)?,
        period: row.get(4)?,
        reason: row.get(5)?,
        issued_at: row.get(6)?,
        nonce: row.get(7)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::post::Status;
    use crate::store::{open_in_memory, posts, transaction};

    fn arrive(db: &mut Connection, key: &str) -> i64 {
        transaction(db, |tx| {
            posts::insert(tx, &[posts::sample(key, "en", Status::Published)])
        })
        .unwrap();
        db.query_row("SELECT max(id) FROM posts", [], |row| row.get(0))
            .unwrap()
    }

    /// A digest composed from the posts pending then may be recorded after
    /// more arrived (they wait for the next one), not after one of its
    /// posts was taken back or another digest was issued.
    #[test]
    fn a_digest_is_recorded_over_posts_that_came_after_it_was_composed() {
        let mut db = open_in_memory().unwrap();
        let first = arrive(&mut db, "a");
        let second = arrive(&mut db, "b");
        let composed = pending_post_ids(&db, "en").unwrap();
        assert_eq!(composed, [first, second]);
        let check = |db: &mut Connection, previous| {
            transaction(db, |tx| unchanged(tx, "en", previous, &composed)).unwrap()
        };
        assert!(check(&mut db, None));
        arrive(&mut db, "c");
        assert!(
            check(&mut db, None),
            "a post published since waits for the next digest"
        );
        db.execute("UPDATE posts SET status = 'held' WHERE id = ?1", [second])
            .unwrap();
        assert!(!check(&mut db, None), "a post taken back must not be sent");
        db.execute(
            "UPDATE posts SET status = 'published' WHERE id = ?1",
            [second],
        )
        .unwrap();
        assert!(!check(&mut db, Some(7)), "another digest came first");
    }
}
