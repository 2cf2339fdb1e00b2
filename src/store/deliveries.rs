//! Deliveries: one row per (digest, subscriber), from queued to sent or
//! failed. A row is marked sent only once the server accepted the message,
//! so a restart resumes exactly the rows still queued or deferred.

use rusqlite::{params, Row};

use super::{Connection, Result, Transaction};
use crate::deliver::{Attempt, DeliveryRow, DueDelivery, ProblemDelivery, QueueSummary};

/// Up to `limit` deliveries due at `now` (queued, or deferred until no
/// later than `now`) with an id above `after`, by id.
pub fn due(db: &Connection, now: i64, after: i64, limit: usize) -> Result<Vec<DueDelivery>> {
    let mut statement = db.prepare_cached(
        "SELECT d.id, d.digest_id, d.subscriber_id, g.list_code, d.address, d.mode, d.attempts \
         FROM deliveries d INDEXED BY deliveries_pending \
         JOIN digests g ON g.id = d.digest_id \
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
            mode: row.get(5)?,
            // Made by the outbox, which holds the secret (tokens.rs).
            token: String::new(),
            attempts: row.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Records the results of attempts made at `now`. Only rows still queued
/// or deferred change, so a result recorded twice counts once.
pub fn record_attempts(tx: &Transaction<'_>, results: &[(i64, Attempt)], now: i64) -> Result<()> {
    record_in(tx, "deliveries", results, now)
}

/// [`record_attempts`] in `table`, which has the state columns of
/// `deliveries` (as `outgoing` has).
pub(super) fn record_in(
    tx: &Transaction<'_>,
    table: &'static str,
    results: &[(i64, Attempt)],
    now: i64,
) -> Result<()> {
    let mut update = tx.prepare_cached(&format!(
        "UPDATE {table} SET state = ?2, attempts = attempts + 1, last_attempt_at = ?3, \
         next_attempt_at = ?4, last_reply = ?5 \
         WHERE id = ?1 AND state IN ('queued', 'deferred')"
    ))?;
    for (id, attempt) in results {
        let next = match attempt {
            Attempt::Deferred {
                next_attempt_at, ..
            } => *next_attempt_at,
            Attempt::Sent { .. } | Attempt::Failed { .. } => now,
        };
        update.execute(params![id, attempt.state(), now, next, attempt.reply()])?;
    }
    Ok(())
}

/// Fails every pending delivery of a digest issued before `issued_before`
/// (Unix seconds): the retry age is over. Returns how many.
pub fn give_up(tx: &Transaction<'_>, issued_before: i64, now: i64) -> Result<usize> {
    Ok(tx.execute(
        "UPDATE deliveries SET state = 'failed', last_attempt_at = coalesce(last_attempt_at, ?2), \
         last_reply = 'given up: not delivered in time; last reply: ' || coalesce(last_reply, 'none') \
         WHERE state IN ('queued', 'deferred') AND digest_id IN \
         (SELECT id FROM digests WHERE issued_at < ?1)",
        params![issued_before, now],
    )?)
}

/// Makes every deferred delivery due at `now`; returns how many.
pub fn retry_deferred(tx: &Transaction<'_>, now: i64) -> Result<usize> {
    retry_in(tx, "deliveries", now)
}

/// [`retry_deferred`] in `table`.
pub(super) fn retry_in(tx: &Transaction<'_>, table: &'static str, now: i64) -> Result<usize> {
    Ok(tx.execute(
        &format!(
            "UPDATE {table} SET next_attempt_at = ?1 WHERE state = 'deferred' AND next_attempt_at > ?1"
        ),
        [now],
    )?)
}

/// Every delivery of a digest, by id.
pub fn of_digest(db: &Connection, digest_id: i64) -> Result<Vec<DeliveryRow>> {
    let mut statement = db.prepare_cached(
        "SELECT id, subscriber_id, address, mode, state, attempts, last_reply \
         FROM deliveries WHERE digest_id = ?1 ORDER BY id",
    )?;
    let rows = statement.query_map([digest_id], |row| {
        Ok(DeliveryRow {
            id: row.get(0)?,
            subscriber_id: row.get(1)?,
            address: row.get(2)?,
            mode: row.get(3)?,
            state: row.get(4)?,
            attempts: row.get(5)?,
            last_reply: row.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Counts per list and state (and of single messages per kind and state),
/// the oldest deferred delivery and the latest `errors` problems.
pub fn summary(db: &Connection, errors: usize) -> Result<QueueSummary> {
    let mut statement = db.prepare_cached(
        "SELECT g.list_code, d.state, count(*) FROM deliveries d \
         JOIN digests g ON g.id = d.digest_id GROUP BY g.list_code, d.state",
    )?;
    let rows = statement.query_map([], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get::<_, i64>(2)? as u64))
    })?;
    let mut counts = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    counts.sort();
    let oldest_deferred = problems(
        db,
        "WHERE d.state = 'deferred' ORDER BY g.issued_at, d.id",
        1,
    )?
    .pop();
    let last_errors = problems(
        db,
        "WHERE d.state IN ('deferred', 'failed') AND d.last_attempt_at IS NOT NULL \
         ORDER BY d.last_attempt_at DESC, d.id DESC",
        errors,
    )?;
    Ok(QueueSummary {
        counts,
        posts: super::post_deliveries::counts(db)?,
        messages: super::outgoing::counts(db)?,
        oldest_deferred,
        last_errors,
    })
}

/// Deliveries picked and ordered by `condition`, at most `limit`.
fn problems(db: &Connection, condition: &str, limit: usize) -> Result<Vec<ProblemDelivery>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT d.id, g.list_code, d.address, d.state, g.issued_at, d.attempts, \
         d.last_attempt_at, d.next_attempt_at, d.last_reply \
         FROM deliveries d JOIN digests g ON g.id = d.digest_id {condition} LIMIT ?1"
    ))?;
    let rows = statement.query_map([limit as i64], problem_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn problem_from_row(row: &Row<'_>) -> rusqlite::Result<ProblemDelivery> {
    Ok(ProblemDelivery {
        id: row.get(0)?,
        list_code: row.get(1)?,
        address: row.get(2)?,
        state: row.get(3)?,
        issued_at: row.get(4)?,
        attempts: row.get(5)?,
        last_attempt_at: row.get(6)?,
        next_attempt_at: row.get(7)?,
        last_reply: row.get(8)?,
    })
}
