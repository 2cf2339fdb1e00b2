//! Each post as it arrives: one row per published post and subscriber in
//! mode post, queued when the post is handed out ([`fan_out`]) and then
//! delivered like a digest delivery.

use rusqlite::{params, OptionalExtension};

use super::{Connection, Result, Transaction};
use crate::deliver::{Attempt, DueDelivery};

/// Queues every published post of `list_code` not handed out yet for each
/// current subscriber in mode post, and marks them handed out; returns how
/// many deliveries were queued. The list's digest calls this before it
/// applies waiting mode changes, so a post reaches each subscriber once,
/// one by one or in a digest.
pub fn fan_out(tx: &Transaction<'_>, list_code: &str, now: i64) -> Result<usize> {
    let mark: i64 = tx
        .prepare_cached("SELECT last_post_id FROM post_fanout WHERE list_code = ?1")?
        .query_row([list_code], |row| row.get(0))
        .optional()?
        .unwrap_or(0);
    let newest: Option<i64> = tx
        .prepare_cached(
            "SELECT max(id) FROM posts INDEXED BY posts_published_by_list \
             WHERE list_code = ?1 AND status = 'published' AND id > ?2",
        )?
        .query_row(params![list_code, mark], |row| row.get(0))?;
    let Some(newest) = newest else {
        return Ok(0);
    };
    let queued = tx
        .prepare_cached(
            "INSERT INTO post_deliveries (post_id, subscriber_id, address, state, next_attempt_at) \
             SELECT p.id, s.id, people.address, 'queued', ?4 \
             FROM posts p INDEXED BY posts_published_by_list \
             JOIN subscribers s INDEXED BY subscribers_active \
               ON s.list_code = ?1 AND s.mode = 'post' AND s.removed_at IS NULL \
               AND s.disabled_at IS NULL \
             JOIN people ON people.id = s.person_id \
             WHERE p.list_code = ?1 AND p.status = 'published' AND p.id > ?2 AND p.id <= ?3 \
             ORDER BY p.id, s.id \
             ON CONFLICT (post_id, subscriber_id) DO NOTHING",
        )?
        .execute(params![list_code, mark, newest, now])?;
    tx.prepare_cached(
        "INSERT INTO post_fanout (list_code, last_post_id) VALUES (?1, ?2) \
         ON CONFLICT (list_code) DO UPDATE SET last_post_id = max(last_post_id, excluded.last_post_id)",
    )?
    .execute(params![list_code, newest])?;
    Ok(queued)
}

/// Marks every published post of `list_code` handed out without queuing
/// anything: for an archive imported into a list, which its post
/// subscribers did not ask to receive again.
pub fn skip_to_newest(tx: &Transaction<'_>, list_code: &str) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO post_fanout (list_code, last_post_id) \
         SELECT ?1, max(id) FROM posts WHERE list_code = ?1 AND status = 'published' AND id IS NOT NULL \
         GROUP BY list_code \
         ON CONFLICT (list_code) DO UPDATE SET last_post_id = max(last_post_id, excluded.last_post_id)",
    )?
    .execute([list_code])?;
    Ok(())
}

/// Up to `limit` post deliveries due at `now` with an id above `after`, by
/// id, as [`DueDelivery`]s whose `digest_id` is the post's id.
pub fn due(db: &Connection, now: i64, after: i64, limit: usize) -> Result<Vec<DueDelivery>> {
    let mut statement = db.prepare_cached(
        "SELECT d.id, d.post_id, d.subscriber_id, p.list_code, d.address, d.attempts \
         FROM post_deliveries d INDEXED BY post_deliveries_pending \
         JOIN posts p ON p.id = d.post_id \
         WHERE d.state IN ('queued', 'deferred') AND d.id > ?2 AND d.next_attempt_at <= ?1 \
         ORDER BY d.id LIMIT ?3",
    )?;
    let rows = statement.query_map(params![now, after, limit as i64], |row| {
        Ok(DueDelivery {
            id: row.get(0)?,
            digest_id: row.get(1)?,
            subscriber_id: row.get(2)?,
            list_code: row.get(3)?,
            address: row.get(4)?,
            mode: crate::digest::DigestMode::Mime,
            token: String::new(),
            attempts: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Records the results of attempts made at `now` (see
/// [`super::deliveries::record_attempts`]).
pub fn record_attempts(tx: &Transaction<'_>, results: &[(i64, Attempt)], now: i64) -> Result<()> {
    super::deliveries::record_in(tx, "post_deliveries", results, now)
}

/// Makes every deferred post delivery due at `now`; returns how many.
pub fn retry_deferred(tx: &Transaction<'_>, now: i64) -> Result<usize> {
    super::deliveries::retry_in(tx, "post_deliveries", now)
}

/// Fails every pending delivery of a post received before
/// `received_before`: its retry age is over. Returns how many.
pub fn give_up(tx: &Transaction<'_>, received_before: i64, now: i64) -> Result<usize> {
    Ok(tx.execute(
        "UPDATE post_deliveries SET state = 'failed', last_attempt_at = coalesce(last_attempt_at, ?2), \
         last_reply = 'given up: not delivered in time; last reply: ' || coalesce(last_reply, 'none') \
         WHERE state IN ('queued', 'deferred') AND post_id IN \
         (SELECT id FROM posts WHERE received_at < ?1)",
        params![received_before, now],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::post::Status;
    use crate::store::{open_in_memory, posts, subscribers, transaction};
    use crate::subscribers::Mode;

    fn publish(db: &mut Connection, key: &str) {
        let post = posts::sample(key, "en", Status::Published);
        transaction(db, |tx| posts::insert(tx, &[post])).unwrap();
    }

    fn queued(db: &Connection) -> Vec<(i64, String)> {
        let mut statement = db
            .prepare("SELECT post_id, address FROM post_deliveries ORDER BY id")
            .unwrap();
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn each_post_is_handed_out_once_to_the_post_subscribers_of_the_time() {
        let mut db = open_in_memory().unwrap();
        let add = |db: &mut Connection, address: &str, mode| {
            let list = [address.to_string()];
            transaction(db, |tx| subscribers::add(tx, "en", &list, mode, 1)).unwrap();
        };
        add(&mut db, "p@x.org", Mode::Post);
        add(&mut db, "d@x.org", Mode::Mime);
        publish(&mut db, "a");
        assert_eq!(transaction(&mut db, |tx| fan_out(tx, "en", 10)).unwrap(), 1);
        // Again: nothing new.
        assert_eq!(transaction(&mut db, |tx| fan_out(tx, "en", 11)).unwrap(), 0);
        add(&mut db, "q@x.org", Mode::Post);
        publish(&mut db, "b");
        assert_eq!(transaction(&mut db, |tx| fan_out(tx, "en", 12)).unwrap(), 2);
        assert_eq!(
            queued(&db),
            [
                (1, "p@x.org".to_string()),
                (2, "p@x.org".to_string()),
                (2, "q@x.org".to_string())
            ]
        );
        let due_now = due(&db, 12, 0, 10).unwrap();
        assert_eq!(due_now.len(), 3);
        assert_eq!(due_now[0].digest_id, 1, "the post's id");
    }

    #[test]
    fn an_imported_archive_is_not_sent_one_by_one() {
        let mut db = open_in_memory().unwrap();
        let list = ["p@x.org".to_string()];
        transaction(&mut db, |tx| {
            subscribers::add(tx, "en", &list, Mode::Post, 1)
        })
        .unwrap();
        publish(&mut db, "old-1");
        publish(&mut db, "old-2");
        transaction(&mut db, |tx| skip_to_newest(tx, "en")).unwrap();
        assert_eq!(transaction(&mut db, |tx| fan_out(tx, "en", 10)).unwrap(), 0);
        publish(&mut db, "new");
        assert_eq!(transaction(&mut db, |tx| fan_out(tx, "en", 10)).unwrap(), 1);
    }
}
