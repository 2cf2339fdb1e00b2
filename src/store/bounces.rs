//! Bounces: the messages to -bounces addresses, each failure they (or an
//! SMTP session's 5xx) report, subscribers' scores, disabling and
//! re-enabling.

use rusqlite::{params, OptionalExtension};

use super::{Connection, Result, Transaction};
use crate::bounce::detect::Found;
use crate::bounce::score::{self, Event};
use crate::config::bounces::BounceScoring;

/// A message to a -bounces address, as stored.
pub struct NewBounceMessage<'a> {
    pub list_code: &'a str,
    pub recipient: &'a str,
    pub sender: &'a str,
    pub found: &'a Found,
    pub message: &'a [u8],
}

/// Stores a message to a -bounces address; returns its id.
pub fn store_message(
    tx: &Transaction<'_>,
    message: &NewBounceMessage<'_>,
    now: i64,
) -> Result<i64> {
    let found: Vec<serde_json::Value> = message
        .found
        .failures
        .iter()
        .map(|f| serde_json::json!({"address": f.address, "permanent": f.permanent}))
        .collect();
    tx.prepare_cached(
        "INSERT INTO bounce_messages (list_code, recipient, sender, received_at, format, found, message) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        message.list_code,
        message.recipient,
        message.sender,
        now,
        message.found.format,
        serde_json::Value::Array(found).to_string(),
        message.message
    ])?;
    Ok(tx.last_insert_rowid())
}

/// One failure of one address of a list.
pub struct NewBounce<'a> {
    pub list_code: &'a str,
    pub address: &'a str,
    pub permanent: bool,
    /// "dsn", "text" or "smtp".
    pub source: &'a str,
    pub message_id: Option<i64>,
    pub reply: Option<&'a str>,
}

/// What recording a bounce did.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The subscriber it names, if any: (id, person id, address).
    pub subscriber: Option<(i64, i64, String)>,
    /// Their score now.
    pub score: f64,
    /// Whether this bounce disabled them.
    pub disabled: bool,
}

/// Records `bounce` at `now`, scores its subscriber, and disables them
/// (their pending deliveries dropped) when the score reaches the threshold.
pub fn record(
    tx: &Transaction<'_>,
    bounce: &NewBounce<'_>,
    scoring: BounceScoring,
    now: i64,
) -> Result<Recorded> {
    let subscriber: Option<(i64, i64, String, Option<i64>)> = tx
        .prepare_cached(
            "SELECT s.id, s.person_id, p.address, s.disabled_at FROM subscribers s \
             JOIN people p ON p.id = s.person_id \
             WHERE s.list_code = ?1 AND p.address = ?2 COLLATE NOCASE AND s.removed_at IS NULL",
        )?
        .query_row(params![bounce.list_code, bounce.address], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?;
    tx.prepare_cached(
        "INSERT INTO bounces (list_code, subscriber_id, address, permanent, source, \
         bounce_message_id, reply, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        bounce.list_code,
        subscriber.as_ref().map(|s| s.0),
        bounce.address,
        bounce.permanent,
        bounce.source,
        bounce.message_id,
        bounce.reply,
        now
    ])?;
    let Some((id, person_id, address, disabled_at)) = subscriber else {
        return Ok(Recorded {
            subscriber: None,
            score: 0.0,
            disabled: false,
        });
    };
    let events = events(tx, id, now - i64::from(scoring.window_days) * 86_400)?;
    let score = score::score(&events, scoring, now);
    let disabled = disabled_at.is_none() && score >= scoring.threshold;
    if disabled {
        disable(tx, id, now)?;
    }
    Ok(Recorded {
        subscriber: Some((id, person_id, address)),
        score,
        disabled,
    })
}

/// The bounces of a subscriber since `since` that count.
fn events(db: &Connection, subscriber_id: i64, since: i64) -> Result<Vec<Event>> {
    let mut statement = db.prepare_cached(
        "SELECT at, permanent FROM bounces INDEXED BY bounces_of_subscriber \
         WHERE subscriber_id = ?1 AND at > ?2 AND cleared = 0",
    )?;
    let rows = statement.query_map(params![subscriber_id, since], |row| {
        Ok(Event {
            at: row.get(0)?,
            permanent: row.get(1)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Disables a subscriber: kept, in their mode, sent nothing; their
/// pending deliveries are dropped.
pub fn disable(tx: &Transaction<'_>, subscriber_id: i64, now: i64) -> Result<()> {
    tx.prepare_cached(
        "UPDATE subscribers SET disabled_at = ?2 WHERE id = ?1 AND disabled_at IS NULL",
    )?
    .execute(params![subscriber_id, now])?;
    tx.prepare_cached(
        "DELETE FROM deliveries WHERE subscriber_id = ?1 AND state IN ('queued', 'deferred')",
    )?
    .execute([subscriber_id])?;
    tx.prepare_cached(
        "DELETE FROM post_deliveries WHERE subscriber_id = ?1 AND state IN ('queued', 'deferred')",
    )?
    .execute([subscriber_id])?;
    super::combined::drop_owed(tx, subscriber_id)?;
    Ok(())
}

/// Re-enables a subscriber disabled by bounces; their bounces so far no
/// longer count. Returns whether they were disabled.
pub fn enable(tx: &Transaction<'_>, subscriber_id: i64) -> Result<bool> {
    let changed = tx
        .prepare_cached(
            "UPDATE subscribers SET disabled_at = NULL WHERE id = ?1 AND disabled_at IS NOT NULL",
        )?
        .execute([subscriber_id])?;
    tx.prepare_cached("UPDATE bounces SET cleared = 1 WHERE subscriber_id = ?1")?
        .execute([subscriber_id])?;
    Ok(changed > 0)
}

/// When bounces disabled a subscriber, if they did.
pub fn disabled_at(db: &Connection, subscriber_id: i64) -> Result<Option<i64>> {
    Ok(db
        .prepare_cached("SELECT disabled_at FROM subscribers WHERE id = ?1")?
        .query_row([subscriber_id], |row| row.get(0))
        .optional()?
        .flatten())
}

/// One bounce as `tidings bounces` shows it.
#[derive(Debug, Clone)]
pub struct BounceRow {
    pub at: i64,
    pub list_code: String,
    pub address: String,
    pub permanent: bool,
    pub source: String,
    pub subscriber_id: Option<i64>,
}

/// The bounces since `since`, newest first, at most `limit`.
pub fn recent(db: &Connection, since: i64, limit: usize) -> Result<Vec<BounceRow>> {
    let mut statement = db.prepare_cached(
        "SELECT at, list_code, address, permanent, source, subscriber_id FROM bounces \
         WHERE at >= ?1 ORDER BY at DESC, id DESC LIMIT ?2",
    )?;
    let rows = statement.query_map(params![since, limit as i64], |row| {
        Ok(BounceRow {
            at: row.get(0)?,
            list_code: row.get(1)?,
            address: row.get(2)?,
            permanent: row.get(3)?,
            source: row.get(4)?,
            subscriber_id: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A subscriber's score: (list, address, score, disabled_at).
pub type Score = (String, String, f64, Option<i64>);

/// The current score of each subscriber with bounces that count, highest
/// first.
pub fn scores(
    db: &Connection,
    scoring: impl Fn(&str) -> BounceScoring,
    now: i64,
) -> Result<Vec<Score>> {
    let mut statement = db.prepare_cached(
        "SELECT DISTINCT s.id, s.list_code, p.address, s.disabled_at FROM bounces b \
         JOIN subscribers s ON s.id = b.subscriber_id JOIN people p ON p.id = s.person_id \
         WHERE b.cleared = 0 AND s.removed_at IS NULL AND b.at > ?1 ORDER BY s.list_code, p.address",
    )?;
    let longest = 366 * 86_400;
    let rows: Vec<(i64, String, String, Option<i64>)> = statement
        .query_map([now - longest], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut scores = Vec::with_capacity(rows.len());
    for (id, list, address, disabled_at) in rows {
        let scoring = scoring(&list);
        let events = events(db, id, now - i64::from(scoring.window_days) * 86_400)?;
        scores.push((
            list,
            address,
            score::score(&events, scoring, now),
            disabled_at,
        ));
    }
    scores.sort_by(|a, b| b.2.total_cmp(&a.2));
    Ok(scores)
}

/// The subscribers bounces disabled: (list, address, disabled_at).
pub fn disabled(db: &Connection) -> Result<Vec<(String, String, i64)>> {
    let mut statement = db.prepare_cached(
        "SELECT s.list_code, p.address, s.disabled_at FROM subscribers s \
         JOIN people p ON p.id = s.person_id \
         WHERE s.disabled_at IS NOT NULL AND s.removed_at IS NULL ORDER BY s.list_code, p.address",
    )?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The list and recipient of a digest delivery, for a 5xx reply to it.
pub fn delivery_recipient(db: &Connection, delivery_id: i64) -> Result<Option<(String, String)>> {
    Ok(db
        .prepare_cached(
            "SELECT d.list_code, dl.address FROM deliveries dl JOIN digests d ON d.id = dl.digest_id \
             WHERE dl.id = ?1",
        )?
        .query_row([delivery_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?)
}

/// The list and recipient of a post sent as it arrived, for a 5xx reply
/// to it.
pub fn post_delivery_recipient(
    db: &Connection,
    delivery_id: i64,
) -> Result<Option<(String, String)>> {
    Ok(db
        .prepare_cached(
            "SELECT p.list_code, d.address FROM post_deliveries d JOIN posts p ON p.id = d.post_id \
             WHERE d.id = ?1 AND p.list_code IS NOT NULL",
        )?
        .query_row([delivery_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?)
}

/// The list and recipient of a single message, for a 5xx reply to it.
pub fn message_recipient(db: &Connection, message_id: i64) -> Result<Option<(String, String)>> {
    Ok(db
        .prepare_cached(
            "SELECT list_code, recipient FROM outgoing WHERE id = ?1 AND list_code IS NOT NULL",
        )?
        .query_row([message_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?)
}

/// A pending delivery to a subscriber that a give-up is about to fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivingUp {
    pub list_code: String,
    pub address: String,
    /// The reply to its last try.
    pub last_reply: String,
}

/// The deliveries [`super::deliveries::give_up`] and
/// [`super::post_deliveries::give_up`] fail for `before` (digests issued,
/// posts received before it), that were tried and whose digest or post
/// the relay accepted for another subscriber: it was working. Called in
/// the give-up's transaction, before it.
pub fn giving_up(db: &Connection, before: i64) -> Result<Vec<GivingUp>> {
    // From the digests (few) to their pending deliveries, as the give-up
    // goes (CROSS JOIN keeps that order); from the pending post
    // deliveries to their posts. Whether the relay took the digest or
    // post for someone is asked last, of what is given up alone.
    let mut statement = db.prepare_cached(
        "SELECT g.list_code, d.address, d.last_reply FROM digests g \
         CROSS JOIN deliveries d INDEXED BY deliveries_by_state ON d.digest_id = g.id \
         WHERE g.issued_at < ?1 AND d.state IN ('queued', 'deferred') \
         AND d.last_reply IS NOT NULL AND EXISTS (SELECT 1 FROM deliveries o \
         WHERE o.state = 'sent' AND o.digest_id = d.digest_id) \
         UNION ALL \
         SELECT p.list_code, d.address, d.last_reply FROM post_deliveries d \
         JOIN posts p ON p.id = d.post_id \
         WHERE d.state IN ('queued', 'deferred') AND p.received_at < ?1 \
         AND p.list_code IS NOT NULL AND d.last_reply IS NOT NULL \
         AND EXISTS (SELECT 1 FROM post_deliveries o \
         WHERE o.state = 'sent' AND o.post_id = p.id)",
    )?;
    let rows = statement.query_map([before], |row| {
        Ok(GivingUp {
            list_code: row.get(0)?,
            address: row.get(1)?,
            last_reply: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open_in_memory, subscribers, transaction};
    use crate::subscribers::Mode;

    const DAY: i64 = 86_400;

    fn bounce<'a>(address: &'a str, permanent: bool) -> NewBounce<'a> {
        NewBounce {
            list_code: "en",
            address,
            permanent,
            source: "dsn",
            message_id: None,
            reply: None,
        }
    }

    /// What a give-up at `before` may count: deliveries tried (a reply
    /// kept) of a digest or post older than `before` that the relay took
    /// for someone else; never one sent, failed, not tried, newer, or of a
    /// digest or post the relay took for nobody.
    #[test]
    fn giving_up_names_the_tried_deliveries_of_what_the_relay_took_for_someone_else() {
        use crate::deliver::Attempt;
        use crate::digest::{DigestBody, DigestMode, NewDigest};
        use crate::post::Status;
        use crate::store::{deliveries, digests, post_deliveries, posts};
        let mut db = open_in_memory().unwrap();
        let deferred = |reply: &str| Attempt::Deferred {
            reply: reply.to_string(),
            next_attempt_at: 0,
        };
        let sent = Attempt::Sent {
            reply: "250 ok".into(),
        };
        transaction(&mut db, |tx| {
            let digest_readers: Vec<String> = ["ana", "bo", "cy", "di", "ed"]
                .iter()
                .map(|name| format!("{name}@example.net"))
                .collect();
            subscribers::add(tx, "en", &digest_readers, Mode::Mime, 1)?;
            let post_readers = ["pia@example.net".to_string(), "pol@example.net".into()];
            subscribers::add(tx, "en", &post_readers, Mode::Post, 1)?;
            let issue = |issued_at: i64| {
                let new = NewDigest {
                    volume: 1,
                    issue: issued_at as u32,
                    period: "2030".into(),
                    reason: "test".into(),
                    issued_at,
                    bodies: vec![DigestBody {
                        mode: DigestMode::Mime,
                        subject: "digest".into(),
                        entity: b"Content-Type: text/plain\r\n\r\nposts\r\n".to_vec(),
                    }],
                };
                let issued = digests::record(tx, "en", None, Some(new), &[])?.unwrap();
                let ids: Vec<i64> = deliveries::of_digest(tx, issued.record.id)?
                    .iter()
                    .map(|d| d.id)
                    .collect();
                Ok::<_, crate::store::Error>(ids)
            };
            // Ana got it; Bo and Cy were deferred; Di was refused; Ed
            // was not tried.
            let first = issue(100)?;
            let failed = Attempt::Failed {
                reply: "permanent error (550): unknown".into(),
            };
            deliveries::record_attempts(
                tx,
                &[
                    (first[0], sent.clone()),
                    (first[1], deferred("RCPT TO: transient error (450): busy")),
                    (first[2], deferred("cannot reach 127.0.0.1:25: refused")),
                    (first[3], failed),
                ],
                150,
            )?;
            // Nobody got the second: the relay took it for no one.
            let second = issue(110)?;
            let everyone: Vec<(i64, Attempt)> = second
                .iter()
                .map(|id| (*id, deferred("DATA: transient error (451): later")))
                .collect();
            deliveries::record_attempts(tx, &everyone, 150)?;

            posts::insert(tx, &[posts::sample("k", "en", Status::Published)])?;
            post_deliveries::fan_out(tx, "en", 100)?;
            let handed: Vec<i64> = post_deliveries::due(tx, 100, 0, 10)?
                .iter()
                .map(|d| d.id)
                .collect();
            assert_eq!(handed.len(), 2);
            post_deliveries::record_attempts(
                tx,
                &[
                    (handed[0], deferred("RCPT TO: transient error (452): full")),
                    (handed[1], sent.clone()),
                ],
                150,
            )?;

            let named = |before| -> crate::store::Result<Vec<(String, String)>> {
                Ok(giving_up(tx, before)?
                    .into_iter()
                    .map(|g| (g.address, g.last_reply))
                    .collect())
            };
            assert_eq!(named(100)?, [], "nothing older than 100");
            assert_eq!(
                named(101)?,
                [
                    (
                        "bo@example.net".to_string(),
                        "RCPT TO: transient error (450): busy".to_string()
                    ),
                    (
                        "cy@example.net".to_string(),
                        "cannot reach 127.0.0.1:25: refused".to_string()
                    ),
                ]
            );
            let mut all = named(2_000_000_000)?;
            all.sort();
            assert_eq!(all.len(), 3, "{all:?}");
            assert_eq!(all[2].0, "pia@example.net");
            // The give-up fails what was named, and what was not tried.
            assert_eq!(deliveries::give_up(tx, 101, 200)?, 3);
            assert_eq!(named(101)?, []);
            Ok::<_, crate::store::Error>(())
        })
        .unwrap();
    }

    #[test]
    fn five_days_of_permanent_bounces_disable_just_that_subscriber_and_enable_clears_them() {
        let mut db = open_in_memory().unwrap();
        let scoring = BounceScoring::default();
        let now = 1_780_000_000;
        transaction(&mut db, |tx| {
            let addresses = ["ana@example.net".to_string(), "bo@example.net".to_string()];
            subscribers::add(tx, "en", &addresses, Mode::Mime, now)?;
            // Many bounces in one day count once.
            for _ in 0..10 {
                let recorded = record(tx, &bounce("Ana@example.net", true), scoring, now)?;
                assert!(!recorded.disabled);
                assert_eq!(recorded.score, 1.0);
            }
            for day in 1..4 {
                assert!(
                    !record(
                        tx,
                        &bounce("ana@example.net", true),
                        scoring,
                        now + day * DAY
                    )?
                    .disabled
                );
            }
            record(tx, &bounce("bo@example.net", false), scoring, now + 4 * DAY)?;
            let fifth = record(tx, &bounce("ana@example.net", true), scoring, now + 4 * DAY)?;
            assert!(fifth.disabled);
            assert_eq!(fifth.score, 5.0);
            // Disabled once: the next bounce does not disable again.
            assert!(
                !record(tx, &bounce("ana@example.net", true), scoring, now + 5 * DAY)?.disabled
            );
            let ana = subscribers::find(tx, "en", "ana@example.net")?.unwrap();
            let bo = subscribers::find(tx, "en", "bo@example.net")?.unwrap();
            assert!(disabled_at(tx, ana.id)?.is_some());
            assert!(disabled_at(tx, bo.id)?.is_none());
            assert_eq!(disabled(tx)?.len(), 1);
            assert!(enable(tx, ana.id)?);
            assert!(disabled_at(tx, ana.id)?.is_none());
            let after = record(tx, &bounce("ana@example.net", true), scoring, now + 6 * DAY)?;
            assert_eq!(
                after.score, 1.0,
                "bounces before the re-enable no longer count"
            );
            // Strangers' bounces are kept, and score nobody.
            let stranger = record(tx, &bounce("cy@example.net", true), scoring, now)?;
            assert_eq!(stranger.subscriber, None);
            Ok::<_, crate::store::Error>(())
        })
        .unwrap();
    }
}
