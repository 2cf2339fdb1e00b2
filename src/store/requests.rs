//! Subscriptions asked for and not yet confirmed.

use rusqlite::{params, OptionalExtension};

use super::{Connection, Result, Transaction};
use crate::subscribe::Request;
use crate::subscribers::Mode;

/// Records that `address` asked (by `via`: mail or web) to follow
/// `list_code` in `mode`; returns the request's id.
pub fn ask(
    tx: &Transaction<'_>,
    list_code: &str,
    address: &str,
    mode: Mode,
    via: &str,
    now: i64,
    expires_at: i64,
) -> Result<i64> {
    tx.prepare_cached(
        "INSERT INTO requests (list_code, address, mode, via, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![list_code, address, mode, via, now, expires_at])?;
    Ok(tx.last_insert_rowid())
}

/// How many requests for `address` were made since `since` (Unix seconds),
/// on any list: each sent a confirmation.
pub fn asked_since(db: &Connection, address: &str, since: i64) -> Result<usize> {
    let count: i64 = db
        .prepare_cached("SELECT count(*) FROM requests WHERE address = ?1 AND created_at >= ?2")?
        .query_row(params![address, since], |row| row.get(0))?;
    Ok(count as usize)
}

/// One request by id.
pub fn get(db: &Connection, id: i64) -> Result<Option<Request>> {
    let mut statement = db.prepare_cached(
        "SELECT id, list_code, address, mode, expires_at, confirmed_at FROM requests WHERE id = ?1",
    )?;
    Ok(statement
        .query_row([id], |row| {
            Ok(Request {
                id: row.get(0)?,
                list_code: row.get(1)?,
                address: row.get(2)?,
                mode: row.get(3)?,
                expires_at: row.get(4)?,
                confirmed_at: row.get(5)?,
            })
        })
        .optional()?)
}

/// Marks a request confirmed at `now`; false when it was already (a token
/// works once).
pub fn confirm(tx: &Transaction<'_>, id: i64, now: i64) -> Result<bool> {
    let changed = tx
        .prepare_cached(
            "UPDATE requests SET confirmed_at = ?2 WHERE id = ?1 AND confirmed_at IS NULL",
        )?
        .execute(params![id, now])?;
    Ok(changed == 1)
}
