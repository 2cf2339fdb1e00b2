//! Single outgoing messages: queued in the transaction that decided to
//! send them, handed to the outbox when due, marked sent only once the
//! server accepted them.

use rusqlite::{params, Row};

use super::{Connection, Result, Transaction};
use crate::deliver::{Attempt, DeliveryState, DueMessage, MessageKind, NewMessage};

/// Queues `message` for delivery at `now`; returns its id.
pub fn queue(tx: &Transaction<'_>, message: &NewMessage, now: i64) -> Result<i64> {
    insert(tx, message, now, None)
}

/// Keeps `message` without sending it, failed at `now` for `reason` (a
/// loop, say): recorded for the operator, never handed to the outbox.
pub fn keep_unsent(
    tx: &Transaction<'_>,
    message: &NewMessage,
    now: i64,
    reason: &str,
) -> Result<i64> {
    insert(tx, message, now, Some(reason))
}

/// Inserts `message` at `now`: queued, or failed for the reason given.
fn insert(
    tx: &Transaction<'_>,
    message: &NewMessage,
    now: i64,
    failed: Option<&str>,
) -> Result<i64> {
    let state = match failed {
        None => DeliveryState::Queued,
        Some(_) => DeliveryState::Failed,
    };
    let last_attempt_at = failed.map(|_| now);
    tx.prepare_cached(
        "INSERT INTO outgoing (kind, list_code, sender, recipient, message, sign, state, \
         created_at, next_attempt_at, last_attempt_at, last_reply) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10)",
    )?
    .execute(params![
        message.kind,
        message.list_code,
        message.sender,
        message.recipient,
        message.message,
        message.sign,
        state,
        now,
        last_attempt_at,
        failed
    ])?;
    Ok(tx.last_insert_rowid())
}

/// Up to `limit` messages due at `now` with an id above `after`, by id.
/// Each carries its whole message, so pages are small.
pub fn due(db: &Connection, now: i64, after: i64, limit: usize) -> Result<Vec<DueMessage>> {
    let mut statement = db.prepare_cached(
        "SELECT id, kind, list_code, sender, recipient, message, sign, attempts \
         FROM outgoing INDEXED BY outgoing_pending \
         WHERE state IN ('queued', 'deferred') AND id > ?2 AND next_attempt_at <= ?1 \
         ORDER BY id LIMIT ?3",
    )?;
    let rows = statement.query_map(params![now, after, limit as i64], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Records the results of attempts made at `now`. Only messages still
/// queued or deferred change, so a result recorded twice counts once.
pub fn record_attempts(tx: &Transaction<'_>, results: &[(i64, Attempt)], now: i64) -> Result<()> {
    super::deliveries::record_in(tx, "outgoing", results, now)
}

/// Fails every message still pending that was queued before
/// `created_before`: its retry age is over. Returns how many.
pub fn give_up(tx: &Transaction<'_>, created_before: i64, now: i64) -> Result<usize> {
    Ok(tx.execute(
        "UPDATE outgoing SET state = 'failed', last_attempt_at = coalesce(last_attempt_at, ?2), \
         last_reply = 'given up: not delivered in time; last reply: ' || coalesce(last_reply, 'none') \
         WHERE state IN ('queued', 'deferred') AND created_at < ?1",
        params![created_before, now],
    )?)
}

/// Drops the bytes of the digests across lists that were sent or failed,
/// keeping their records: each is one person's own, so kept whole they
/// would grow the store by a digest per person per issue (a list's digest
/// bodies go the same way, [`super::digests::prune_bodies`]). Returns how
/// many.
pub fn prune_combined(tx: &Transaction<'_>) -> Result<usize> {
    Ok(tx.execute(
        "UPDATE outgoing INDEXED BY outgoing_combined_to_prune SET message = x'' \
         WHERE kind = 'combined' AND state IN ('sent', 'failed') AND length(message) > 0",
        [],
    )?)
}

/// Takes back the digests across lists still waiting to go to
/// `recipient`, who left the lists they cover; returns how many.
pub fn cancel_combined(tx: &Transaction<'_>, recipient: &str) -> Result<usize> {
    Ok(tx
        .prepare_cached(
            "DELETE FROM outgoing WHERE kind = 'combined' AND recipient = ?1 \
             AND state IN ('queued', 'deferred')",
        )?
        .execute([recipient])?)
}

/// Makes every deferred message due at `now`; returns how many.
pub fn retry_deferred(tx: &Transaction<'_>, now: i64) -> Result<usize> {
    super::deliveries::retry_in(tx, "outgoing", now)
}

/// How many messages of `kind` were queued for `recipient` since `since`
/// (Unix seconds), sent or not.
pub fn count_to(db: &Connection, recipient: &str, kind: MessageKind, since: i64) -> Result<usize> {
    let count: i64 = db
        .prepare_cached(
            "SELECT count(*) FROM outgoing INDEXED BY outgoing_to \
             WHERE recipient = ?1 AND kind = ?2 AND created_at >= ?3",
        )?
        .query_row(params![recipient, kind, since], |row| row.get(0))?;
    Ok(count as usize)
}

/// How many messages of each kind are in each state, by kind then state.
pub fn counts(db: &Connection) -> Result<Vec<(MessageKind, DeliveryState, u64)>> {
    let mut statement = db.prepare_cached(
        "SELECT kind, state, count(*) FROM outgoing INDEXED BY outgoing_by_state \
         GROUP BY kind, state",
    )?;
    let rows = statement.query_map([], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get::<_, i64>(2)? as u64))
    })?;
    let mut counts = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    counts.sort();
    Ok(counts)
}

/// One message by id, whatever its state: (message, state, last reply).
pub fn get(
    db: &Connection,
    id: i64,
) -> Result<Option<(NewMessage, DeliveryState, Option<String>)>> {
    use rusqlite::OptionalExtension;
    let mut statement = db.prepare_cached(
        "SELECT id, kind, list_code, sender, recipient, message, sign, attempts, state, last_reply \
         FROM outgoing WHERE id = ?1",
    )?;
    Ok(statement
        .query_row([id], |row| {
            Ok((from_row(row)?.message, row.get(8)?, row.get(9)?))
        })
        .optional()?)
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<DueMessage> {
    Ok(DueMessage {
        id: row.get(0)?,
        message: NewMessage {
            kind: row.get(1)?,
            list_code: row.get(2)?,
            sender: row.get(3)?,
            recipient: row.get(4)?,
            message: row.get(5)?,
            sign: row.get(6)?,
        },
        attempts: row.get(7)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open_in_memory, transaction};

    fn forward(to: &str) -> NewMessage {
        NewMessage {
            kind: MessageKind::Forward,
            list_code: None,
            sender: String::new(),
            recipient: to.to_string(),
            message: b"Subject: hello\r\n\r\nbody\r\n".to_vec(),
            sign: false,
        }
    }

    #[test]
    fn a_message_is_due_until_a_result_ends_it() {
        let mut db = open_in_memory().unwrap();
        let id = transaction(&mut db, |tx| queue(tx, &forward("ops@example.org"), 100)).unwrap();
        assert!(
            due(&db, 99, 0, 10).unwrap().is_empty(),
            "not due before it was queued"
        );
        let found = due(&db, 100, 0, 10).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].message, forward("ops@example.org"));
        let deferred = Attempt::Deferred {
            reply: "451 later".into(),
            next_attempt_at: 400,
        };
        transaction(&mut db, |tx| record_attempts(tx, &[(id, deferred)], 100)).unwrap();
        assert!(due(&db, 399, 0, 10).unwrap().is_empty());
        assert_eq!(due(&db, 400, 0, 10).unwrap()[0].attempts, 1);
        let retried = transaction(&mut db, |tx| retry_deferred(tx, 200)).unwrap();
        assert_eq!(retried, 1);
        assert_eq!(due(&db, 200, 0, 10).unwrap().len(), 1);
        let sent = Attempt::Sent {
            reply: "250 ok".into(),
        };
        transaction(&mut db, |tx| {
            record_attempts(tx, &[(id, sent.clone())], 201)
        })
        .unwrap();
        // Recorded twice, it counts once, and a sent message stays sent.
        transaction(&mut db, |tx| {
            record_attempts(
                tx,
                &[(
                    id,
                    Attempt::Failed {
                        reply: "550 late".into(),
                    },
                )],
                202,
            )
        })
        .unwrap();
        assert!(due(&db, 1000, 0, 10).unwrap().is_empty());
        let (_, state, reply) = get(&db, id).unwrap().unwrap();
        assert_eq!(
            (state, reply.as_deref()),
            (DeliveryState::Sent, Some("250 ok"))
        );
        assert_eq!(
            counts(&db).unwrap(),
            vec![(MessageKind::Forward, DeliveryState::Sent, 1)]
        );
    }

    #[test]
    fn a_message_kept_unsent_is_never_due() {
        let mut db = open_in_memory().unwrap();
        let id = transaction(&mut db, |tx| {
            keep_unsent(tx, &forward("ops@example.org"), 100, "a mail loop")
        })
        .unwrap();
        assert!(due(&db, 1000, 0, 10).unwrap().is_empty());
        let (message, state, reply) = get(&db, id).unwrap().unwrap();
        assert_eq!(message, forward("ops@example.org"));
        assert_eq!(
            (state, reply.as_deref()),
            (DeliveryState::Failed, Some("a mail loop"))
        );
    }

    #[test]
    fn old_messages_are_given_up() {
        let mut db = open_in_memory().unwrap();
        transaction(&mut db, |tx| queue(tx, &forward("a@example.org"), 100)).unwrap();
        transaction(&mut db, |tx| queue(tx, &forward("b@example.org"), 500)).unwrap();
        let given_up = transaction(&mut db, |tx| give_up(tx, 300, 600)).unwrap();
        assert_eq!(given_up, 1);
        let left: Vec<String> = due(&db, 1000, 0, 10)
            .unwrap()
            .into_iter()
            .map(|m| m.message.recipient)
            .collect();
        assert_eq!(left, vec!["b@example.org"]);
    }
}
