//! Deliveries: one row per (digest, subscriber), from queued to sent or
//! failed. A row is marked sent only once the server accepted the message,
//! so a restart resumes exactly the rows still queued or deferred.

use rusqlite::types::Type;
use rusqlite::{params, Row};

use super::subscribers::{mode_from, DigestMode};
use super::Store;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliveryState {
    /// Not tried yet.
    Queued,
    /// Refused for now (4xx) or not reached; tried again at its next attempt.
    Deferred,
    /// Accepted by the server.
    Sent,
    /// Refused for good (5xx), or given up.
    Failed,
}

impl DeliveryState {
    /// Every state, in the order a delivery goes through them.
    pub const ALL: [DeliveryState; 4] = [
        DeliveryState::Queued,
        DeliveryState::Deferred,
        DeliveryState::Sent,
        DeliveryState::Failed,
    ];

    /// The name used in SQL and in `tidings queue`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Deferred => "deferred",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<DeliveryState> {
        DeliveryState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
    }
}

/// A delivery due now, with what its personal headers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub id: i64,
    pub digest_id: i64,
    pub subscriber_id: i64,
    pub list_code: String,
    pub address: String,
    pub mode: DigestMode,
    /// The subscriber's unsubscribe secret.
    pub token: String,
    /// Attempts made so far.
    pub attempts: u32,
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The server accepted the message with this reply.
    Sent { reply: String },
    /// Try again at `next_attempt_at` (Unix seconds).
    Deferred { reply: String, next_attempt_at: i64 },
    /// Refused for good.
    Failed { reply: String },
}

/// Counts and recent problems of the outbox, for `tidings queue`.
#[derive(Debug, Clone, Default)]
pub struct QueueSummary {
    /// (list, state, count), by list then state.
    pub counts: Vec<(String, DeliveryState, u64)>,
    /// The deferred delivery waiting longest: (list, address, issued_at,
    /// attempts, next attempt, last reply).
    pub oldest_deferred: Option<ProblemDelivery>,
    /// The latest deferred or failed deliveries, newest first.
    pub last_errors: Vec<ProblemDelivery>,
}

/// A deferred or failed delivery, as `tidings queue` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemDelivery {
    pub id: i64,
    pub list_code: String,
    pub address: String,
    pub state: DeliveryState,
    pub issued_at: i64,
    pub attempts: u32,
    pub last_attempt_at: Option<i64>,
    pub next_attempt_at: i64,
    pub last_reply: Option<String>,
}

/// A delivery of one digest, for tests and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: i64,
    pub subscriber_id: i64,
    pub address: String,
    pub mode: DigestMode,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_reply: Option<String>,
}

impl Store {
    /// Up to `limit` deliveries due at `now` (queued, or deferred until no
    /// later than `now`) with an id above `after`, by id.
    pub fn due_deliveries(
        &self,
        now: i64,
        after: i64,
        limit: usize,
    ) -> rusqlite::Result<Vec<DueDelivery>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT d.id, d.digest_id, d.subscriber_id, g.list_code, d.address, d.mode, s.token, d.attempts \
             FROM deliveries d INDEXED BY deliveries_pending \
             JOIN digests g ON g.id = d.digest_id \
             JOIN subscribers s ON s.id = d.subscriber_id \
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
                mode: mode_from(row, 5)?,
                token: row.get(6)?,
                attempts: row.get(7)?,
            })
        })?;
        rows.collect()
    }

    /// Records the results of attempts made at `now`, all in one
    /// transaction. Only rows still queued or deferred change, so a result
    /// recorded twice counts once.
    ///
    /// With `sync` false the commit is not flushed to the disk: it survives
    /// the process being killed, but a power failure may take it back. For
    /// delivery results that is a duplicate at worst, never a loss (a
    /// result rolled back leaves its delivery queued), which is why the
    /// outbox flushes only every so often; see [`crate::deliver::outbox`].
    pub fn record_attempts(
        &mut self,
        results: &[(i64, Attempt)],
        now: i64,
        sync: bool,
    ) -> rusqlite::Result<()> {
        // In WAL mode a commit under synchronous = NORMAL only writes the
        // log; a later FULL commit flushes it with everything before it.
        if !sync {
            self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        let result = self.record_attempts_now(results, now);
        if !sync {
            self.conn.pragma_update(None, "synchronous", "FULL")?;
        }
        result
    }

    /// Flushes to the disk the results recorded without `sync`, by a
    /// checkpoint: it flushes the log before copying it into the database,
    /// and the database after. Frames a reader still holds are not copied
    /// and so not flushed here, but by the next synced commit.
    pub fn sync_attempts(&mut self) -> rusqlite::Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
    }

    fn record_attempts_now(
        &mut self,
        results: &[(i64, Attempt)],
        now: i64,
    ) -> rusqlite::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut update = tx.prepare_cached(
                "UPDATE deliveries SET state = ?2, attempts = attempts + 1, last_attempt_at = ?3, \
                 next_attempt_at = ?4, last_reply = ?5 \
                 WHERE id = ?1 AND state IN ('queued', 'deferred')",
            )?;
            for (id, attempt) in results {
                let (state, next, reply) = match attempt {
                    Attempt::Sent { reply } => (DeliveryState::Sent, now, reply),
                    Attempt::Deferred {
                        reply,
                        next_attempt_at,
                    } => (DeliveryState::Deferred, *next_attempt_at, reply),
                    Attempt::Failed { reply } => (DeliveryState::Failed, now, reply),
                };
                update.execute(params![id, state.as_str(), now, next, reply])?;
            }
        }
        tx.commit()
    }

    /// Fails every pending delivery of a digest issued before `issued_before`
    /// (Unix seconds): the retry age is over. Returns how many.
    pub fn give_up_deliveries(&mut self, issued_before: i64, now: i64) -> rusqlite::Result<usize> {
        self.conn.execute(
            "UPDATE deliveries SET state = 'failed', last_attempt_at = coalesce(last_attempt_at, ?2), \
             last_reply = 'given up: not delivered in time; last reply: ' || coalesce(last_reply, 'none') \
             WHERE state IN ('queued', 'deferred') AND digest_id IN \
             (SELECT id FROM digests WHERE issued_at < ?1)",
            params![issued_before, now],
        )
    }

    /// Makes every deferred delivery due at `now`; returns how many.
    pub fn retry_deferred(&mut self, now: i64) -> rusqlite::Result<usize> {
        self.conn.execute(
            "UPDATE deliveries SET next_attempt_at = ?1 WHERE state = 'deferred' AND next_attempt_at > ?1",
            [now],
        )
    }

    /// Every delivery of a digest, by id.
    pub fn deliveries(&self, digest_id: i64) -> rusqlite::Result<Vec<DeliveryRow>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, subscriber_id, address, mode, state, attempts, last_reply \
             FROM deliveries WHERE digest_id = ?1 ORDER BY id",
        )?;
        let rows = statement.query_map([digest_id], |row| {
            Ok(DeliveryRow {
                id: row.get(0)?,
                subscriber_id: row.get(1)?,
                address: row.get(2)?,
                mode: mode_from(row, 3)?,
                state: state_from(row, 4)?,
                attempts: row.get(5)?,
                last_reply: row.get(6)?,
            })
        })?;
        rows.collect()
    }

    /// Counts per list and state, the oldest deferred delivery and the
    /// latest `errors` problems.
    pub fn queue_summary(&self, errors: usize) -> rusqlite::Result<QueueSummary> {
        let mut counts = Vec::new();
        {
            let mut statement = self.conn.prepare(
                "SELECT g.list_code, d.state, count(*) FROM deliveries d \
                 JOIN digests g ON g.id = d.digest_id GROUP BY g.list_code, d.state",
            )?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    state_from(row, 1)?,
                    row.get::<_, i64>(2)? as u64,
                ))
            })?;
            for row in rows {
                counts.push(row?);
            }
            counts.sort();
        }
        let problem = |sql: &str, limit: usize| -> rusqlite::Result<Vec<ProblemDelivery>> {
            let mut statement = self.conn.prepare(&format!(
                "SELECT d.id, g.list_code, d.address, d.state, g.issued_at, d.attempts, \
                 d.last_attempt_at, d.next_attempt_at, d.last_reply \
                 FROM deliveries d JOIN digests g ON g.id = d.digest_id {sql} LIMIT ?1"
            ))?;
            let rows = statement.query_map([limit as i64], |row| {
                Ok(ProblemDelivery {
                    id: row.get(0)?,
                    list_code: row.get(1)?,
                    address: row.get(2)?,
                    state: state_from(row, 3)?,
                    issued_at: row.get(4)?,
                    attempts: row.get(5)?,
                    last_attempt_at: row.get(6)?,
                    next_attempt_at: row.get(7)?,
                    last_reply: row.get(8)?,
                })
            })?;
            rows.collect()
        };
        let oldest_deferred =
            problem("WHERE d.state = 'deferred' ORDER BY g.issued_at, d.id", 1)?.pop();
        let last_errors = problem(
            "WHERE d.state IN ('deferred', 'failed') AND d.last_attempt_at IS NOT NULL \
             ORDER BY d.last_attempt_at DESC, d.id DESC",
            errors,
        )?;
        Ok(QueueSummary {
            counts,
            oldest_deferred,
            last_errors,
        })
    }
}

fn state_from(row: &Row<'_>, index: usize) -> rusqlite::Result<DeliveryState> {
    let text: String = row.get(index)?;
    DeliveryState::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            Type::Text,
            format!("unknown delivery state {text}").into(),
        )
    })
}
