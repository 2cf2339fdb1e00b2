//! Digests: the posts pending for each list's next digest, and issuing a
//! digest, which records it, its posts, its rendered bodies and one queued
//! delivery per subscriber in one transaction.

use rusqlite::{params, OptionalExtension, Row};

use super::posts::Post;
use super::subscribers::{mode_from, DigestMode};
use super::Store;

/// A digest as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestRecord {
    pub id: i64,
    pub list_code: String,
    pub volume: u32,
    pub issue: u32,
    /// The volume period it falls in, e.g. `2026` or `2026-W05`.
    pub period: String,
    /// Why it was issued: `schedule`, `size` or `forced`.
    pub reason: String,
    /// Unix seconds.
    pub issued_at: i64,
}

/// A published post not yet in any digest of its list, with its original
/// bytes for the MIME digest.
#[derive(Debug, Clone)]
pub struct PendingPost {
    pub post: Post,
    pub raw: Option<Vec<u8>>,
}

/// A digest ready to be recorded: its number and its rendered bodies.
#[derive(Debug, Clone)]
pub struct NewDigest {
    pub volume: u32,
    pub issue: u32,
    pub period: String,
    pub reason: String,
    pub issued_at: i64,
    pub bodies: Vec<DigestBody>,
}

/// One format of a digest, rendered once for every recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestBody {
    pub mode: DigestMode,
    /// The Subject header value, already encoded (RFC 2047) as needed.
    pub subject: String,
    /// The MIME entity: its header fields, a blank line, the body (CRLF).
    pub entity: Vec<u8>,
}

/// What [`Store::issue_digest`] recorded.
#[derive(Debug, Clone)]
pub struct IssuedDigest {
    pub record: DigestRecord,
    pub posts: usize,
    /// Deliveries queued, one per subscriber.
    pub queued: usize,
}

/// How many posts are pending and how many bytes of text they hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    pub posts: usize,
    pub bytes: usize,
}

const DIGEST_COLUMNS: &str = "id, list_code, volume, issue, period, reason, issued_at";

/// Published posts of list ?1 that no digest of the list holds yet.
const PENDING_WHERE: &str = "list_code = ?1 AND status = 'published' AND NOT EXISTS \
     (SELECT 1 FROM digest_posts d WHERE d.list_code = ?1 AND d.post_id = posts.id)";

impl Store {
    /// The newest digest of a list.
    pub fn last_digest(&self, list_code: &str) -> rusqlite::Result<Option<DigestRecord>> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {DIGEST_COLUMNS} FROM digests WHERE list_code = ?1 ORDER BY id DESC LIMIT 1"
                ),
                [list_code],
                digest_from_row,
            )
            .optional()
    }

    /// One digest by id.
    pub fn digest(&self, id: i64) -> rusqlite::Result<Option<DigestRecord>> {
        self.conn
            .query_row(
                &format!("SELECT {DIGEST_COLUMNS} FROM digests WHERE id = ?1"),
                [id],
                digest_from_row,
            )
            .optional()
    }

    /// Every digest of a list, oldest first.
    pub fn digests(&self, list_code: &str) -> rusqlite::Result<Vec<DigestRecord>> {
        let mut statement = self.conn.prepare(&format!(
            "SELECT {DIGEST_COLUMNS} FROM digests WHERE list_code = ?1 ORDER BY id"
        ))?;
        let rows = statement.query_map([list_code], digest_from_row)?;
        rows.collect()
    }

    /// The ids of the posts a digest holds, in digest order.
    pub fn digest_post_ids(&self, digest_id: i64) -> rusqlite::Result<Vec<i64>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT post_id FROM digest_posts WHERE digest_id = ?1 ORDER BY position",
        )?;
        let rows = statement.query_map([digest_id], |row| row.get(0))?;
        rows.collect()
    }

    /// Posts and bytes of body text pending for a list's next digest.
    pub fn pending_digest_size(&self, list_code: &str) -> rusqlite::Result<Pending> {
        self.conn.query_row(
            &format!(
                "SELECT count(*), coalesce(sum(length(CAST(body AS BLOB))), 0) FROM posts \
                 INDEXED BY posts_published_by_list WHERE {PENDING_WHERE}"
            ),
            [list_code],
            |row| {
                Ok(Pending {
                    posts: row.get::<_, i64>(0)? as usize,
                    bytes: row.get::<_, i64>(1)? as usize,
                })
            },
        )
    }

    fn pending_post_ids(&self, list_code: &str) -> rusqlite::Result<Vec<i64>> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT id FROM posts INDEXED BY posts_published_by_list WHERE {PENDING_WHERE} ORDER BY id"
        ))?;
        let rows = statement.query_map([list_code], |row| row.get(0))?;
        rows.collect()
    }

    /// The posts pending for a list's next digest, oldest first, with their
    /// original bytes.
    pub fn pending_posts(&self, list_code: &str) -> rusqlite::Result<Vec<PendingPost>> {
        let mut pending = Vec::new();
        for id in self.pending_post_ids(list_code)? {
            if let Some(post) = self.post(id)? {
                let raw = self.raw_message(id)?;
                pending.push(PendingPost { post, raw });
            }
        }
        Ok(pending)
    }

    /// The schedule slot (Unix seconds) a list's digest was last decided at.
    pub fn digest_slot(&self, list_code: &str) -> rusqlite::Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT last_slot FROM digest_slots WHERE list_code = ?1",
                [list_code],
                |row| row.get(0),
            )
            .optional()
    }

    /// Issues a list's next digest. `compose` is given the previous digest
    /// and the pending posts and returns the digest to record, or `None` to
    /// record none (nothing worth sending). The digest, the posts it holds,
    /// its bodies, one queued delivery per current subscriber and the
    /// schedule `slot` it answers are committed in one transaction, so a
    /// crash leaves either all of them or none, and a post is never in two
    /// digests of its list (the primary key of `digest_posts` says so too).
    ///
    /// Composition runs outside the write lock; if another process issued a
    /// digest or a post was published meanwhile, it runs again on the new
    /// state.
    pub fn issue_digest<E: From<rusqlite::Error>>(
        &mut self,
        list_code: &str,
        slot: Option<i64>,
        mut compose: impl FnMut(Option<&DigestRecord>, &[PendingPost]) -> Result<Option<NewDigest>, E>,
    ) -> Result<Option<IssuedDigest>, E> {
        loop {
            let previous = self.last_digest(list_code)?;
            let pending = self.pending_posts(list_code)?;
            let composed = compose(previous.as_ref(), &pending)?;
            let pending_ids: Vec<i64> = pending.iter().map(|p| p.post.id).collect();

            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let previous_now: Option<i64> = tx
                .query_row(
                    "SELECT id FROM digests WHERE list_code = ?1 ORDER BY id DESC LIMIT 1",
                    [list_code],
                    |row| row.get(0),
                )
                .optional()?;
            let pending_now: Vec<i64> = {
                let mut statement = tx.prepare_cached(&format!(
                    "SELECT id FROM posts INDEXED BY posts_published_by_list WHERE {PENDING_WHERE} ORDER BY id"
                ))?;
                let rows = statement.query_map([list_code], |row| row.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            if previous_now != previous.as_ref().map(|d| d.id) || pending_now != pending_ids {
                drop(tx);
                continue;
            }

            if let Some(slot) = slot {
                tx.execute(
                    "INSERT INTO digest_slots (list_code, last_slot) VALUES (?1, ?2) \
                     ON CONFLICT (list_code) DO UPDATE SET last_slot = max(last_slot, excluded.last_slot)",
                    params![list_code, slot],
                )?;
            }
            let Some(new) = composed else {
                tx.commit()?;
                return Ok(None);
            };
            tx.execute(
                "INSERT INTO digests (list_code, volume, issue, period, reason, issued_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    list_code,
                    new.volume,
                    new.issue,
                    new.period,
                    new.reason,
                    new.issued_at
                ],
            )?;
            let digest_id = tx.last_insert_rowid();
            {
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
                        rendered.mode.as_str(),
                        rendered.subject,
                        rendered.entity
                    ])?;
                }
            }
            let modes: Vec<&str> = new.bodies.iter().map(|b| b.mode.as_str()).collect();
            let modes = serde_json::to_string(&modes).expect("strings serialise");
            let queued = tx.execute(
                "INSERT INTO deliveries (digest_id, subscriber_id, address, mode, state, next_attempt_at) \
                 SELECT ?1, id, address, mode, 'queued', ?3 FROM subscribers \
                 WHERE list_code = ?2 AND removed_at IS NULL \
                 AND mode IN (SELECT value FROM json_each(?4)) ORDER BY id",
                params![digest_id, list_code, new.issued_at, modes],
            )?;
            tx.commit()?;
            return Ok(Some(IssuedDigest {
                record: DigestRecord {
                    id: digest_id,
                    list_code: list_code.to_string(),
                    volume: new.volume,
                    issue: new.issue,
                    period: new.period,
                    reason: new.reason,
                    issued_at: new.issued_at,
                },
                posts: pending_ids.len(),
                queued,
            }));
        }
    }

    /// The rendered body of one format of a digest: (subject, entity).
    pub fn digest_body(
        &self,
        digest_id: i64,
        mode: DigestMode,
    ) -> rusqlite::Result<Option<(String, Vec<u8>)>> {
        self.conn
            .query_row(
                "SELECT subject, entity FROM digest_bodies WHERE digest_id = ?1 AND mode = ?2",
                params![digest_id, mode.as_str()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
    }

    /// Which formats of a digest have a stored body.
    pub fn digest_body_modes(&self, digest_id: i64) -> rusqlite::Result<Vec<DigestMode>> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT mode FROM digest_bodies WHERE digest_id = ?1 ORDER BY mode")?;
        let rows = statement.query_map([digest_id], |row| mode_from(row, 0))?;
        rows.collect()
    }

    /// Drops the rendered bodies of digests no delivery is pending for;
    /// returns how many bodies went.
    pub fn prune_digest_bodies(&mut self) -> rusqlite::Result<usize> {
        self.conn.execute(
            "DELETE FROM digest_bodies WHERE NOT EXISTS (SELECT 1 FROM deliveries \
             WHERE deliveries.digest_id = digest_bodies.digest_id AND state IN ('queued', 'deferred'))",
            [],
        )
    }
}

fn digest_from_row(row: &Row<'_>) -> rusqlite::Result<DigestRecord> {
    Ok(DigestRecord {
        id: row.get(0)?,
        list_code: row.get(1)?,
        volume: row.get(2)?,
        issue: row.get(3)?,
        period: row.get(4)?,
        reason: row.get(5)?,
        issued_at: row.get(6)?,
    })
}
