//! Each post as it arrives: one row per published post and subscriber in
//! mode post, queued when the post is handed out ([`fan_out`]) and then
//! delivered like a digest delivery.

use rusqlite::{params, OptionalExtension};

use super::{posts, Connection, Result, Transaction};
use crate::deliver::{Attempt, DeliveryState, DueDelivery};

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
               AND NOT EXISTS (SELECT 1 FROM imported_posts i WHERE i.post_id = p.id) \
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

/// Queues a post published late (approved by a moderator) for each
/// current subscriber in mode post, when the list's fan-out has already
/// passed its id; a post it has not passed yet goes out with the next
/// [`fan_out`] like any other. A post from an imported archive goes to
/// no one.
pub fn hand_out_late(
    tx: &Transaction<'_>,
    list_code: &str,
    post_id: i64,
    now: i64,
) -> Result<usize> {
    let mark: i64 = tx
        .prepare_cached("SELECT last_post_id FROM post_fanout WHERE list_code = ?1")?
        .query_row([list_code], |row| row.get(0))
        .optional()?
        .unwrap_or(0);
    if post_id > mark || posts::is_imported(tx, post_id)? {
        return Ok(0);
    }
    let queued = tx
        .prepare_cached(
            "INSERT INTO post_deliveries (post_id, subscriber_id, address, state, next_attempt_at) \
             SELECT ?2, s.id, people.address, 'queued', ?3 \
             FROM subscribers s INDEXED BY subscribers_active \
             JOIN people ON people.id = s.person_id \
             WHERE s.list_code = ?1 AND s.mode = 'post' AND s.removed_at IS NULL \
               AND s.disabled_at IS NULL \
             ORDER BY s.id \
             ON CONFLICT (post_id, subscriber_id) DO NOTHING",
        )?
        .execute(params![list_code, post_id, now])?;
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

/// Counts per list and state, by list then state.
pub fn counts(db: &Connection) -> Result<Vec<(String, DeliveryState, u64)>> {
    let mut statement = db.prepare_cached(
        "SELECT p.list_code, d.state, count(*) FROM post_deliveries d \
         JOIN posts p ON p.id = d.post_id GROUP BY p.list_code, d.state",
    )?;
    let rows = statement.query_map([], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get::<_, i64>(2)? as u64))
    })?;
    let mut counts = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    counts.sort();
    Ok(counts)
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
    use crate::store::{digests, open_in_memory, posts, subscribers, transaction};
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

    /// Publishes a post as mail arriving does: handed out in its commit.
    fn arrive(db: &mut Connection, key: &str) -> i64 {
        let post = posts::sample(key, "en", Status::Published);
        let outcome = transaction(db, |tx| {
            crate::ingest::commit_and_hand_out(tx, &[post], 100)
        })
        .unwrap();
        match outcome[..] {
            [crate::ingest::Outcome::Stored { id }] => id,
            ref other => panic!("{other:?}"),
        }
    }

    /// Issues a digest of every pending post; returns its id and posts.
    fn issue(db: &mut Connection, number: u32) -> (i64, Vec<i64>) {
        use crate::digest::{DigestBody, DigestMode, NewDigest};
        transaction(db, |tx| {
            let pending = digests::pending_post_ids(tx, "en")?;
            let new = NewDigest {
                volume: 1,
                issue: number,
                period: "2026".into(),
                reason: "test".into(),
                issued_at: 200,
                bodies: vec![DigestBody {
                    mode: DigestMode::Mime,
                    subject: "digest".into(),
                    entity: b"Content-Type: text/plain\r\n\r\nposts\r\n".to_vec(),
                }],
            };
            let issued = digests::record(tx, "en", None, Some(new), &pending)?.unwrap();
            Ok::<_, crate::store::Error>((issued.record.id, pending))
        })
        .unwrap()
    }

    /// (posts one by one, digests) that went to `address`.
    fn got(db: &Connection, address: &str) -> (Vec<i64>, Vec<i64>) {
        let ids = |sql: &str| -> Vec<i64> {
            db.prepare(sql)
                .unwrap()
                .query_map([address], |row| row.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        (
            ids("SELECT post_id FROM post_deliveries WHERE address = ?1 ORDER BY post_id"),
            ids("SELECT digest_id FROM deliveries WHERE address = ?1 ORDER BY digest_id"),
        )
    }

    #[test]
    fn switching_between_digests_and_posts_never_repeats_or_drops_a_post() {
        let mut db = open_in_memory().unwrap();
        for (address, mode) in [("dora@x.org", Mode::Mime), ("paul@x.org", Mode::Post)] {
            let list = [address.to_string()];
            transaction(&mut db, |tx| subscribers::add(tx, "en", &list, mode, 1)).unwrap();
        }
        let id_of = |db: &Connection, address: &str| {
            subscribers::find(db, "en", address).unwrap().unwrap().id
        };
        let (dora, paul) = (id_of(&db, "dora@x.org"), id_of(&db, "paul@x.org"));

        // Dora, on digests, asks for posts; Paul, on posts, for digests.
        let a = arrive(&mut db, "a");
        transaction(&mut db, |tx| subscribers::set_mode(tx, dora, Mode::Post)).unwrap();
        transaction(&mut db, |tx| subscribers::set_mode(tx, paul, Mode::Mime)).unwrap();
        let b = arrive(&mut db, "b");
        // The change waits for the digest: a and b reach Dora there.
        let (first, in_first) = issue(&mut db, 1);
        assert_eq!(in_first, [a, b]);
        let c = arrive(&mut db, "c");
        let (second, in_second) = issue(&mut db, 2);
        assert_eq!(in_second, [c]);

        // Dora: the digest with a and b, then c alone; never a or b again.
        assert_eq!(got(&db, "dora@x.org"), (vec![c], vec![first]));
        // Paul: a and b one by one, then the digest with c, not the first.
        assert_eq!(got(&db, "paul@x.org"), (vec![a, b], vec![second]));
    }

    #[test]
    fn an_import_sends_nothing_old_and_holds_back_nothing_new() {
        let mut db = open_in_memory().unwrap();
        let list = ["p@x.org".to_string()];
        transaction(&mut db, |tx| {
            subscribers::add(tx, "en", &list, Mode::Post, 1)
        })
        .unwrap();
        let live = arrive(&mut db, "live");
        let archive = [
            posts::sample("old-1", "en", Status::Published),
            posts::sample("old-2", "en", Status::Published),
        ];
        transaction(&mut db, |tx| {
            crate::ingest::commit_archive(tx, &archive, 100)
        })
        .unwrap();
        let next = arrive(&mut db, "next");
        assert_eq!(got(&db, "p@x.org").0, [live, next]);
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
