//! Mail to a list's service addresses, kept with what became of it.

use rusqlite::params;

use super::{Result, Transaction};

/// Keeps a message that came to `route` (e.g. "request") of `list_code`
/// from envelope `sender`, with what tidings did about it.
pub fn keep(
    tx: &Transaction<'_>,
    route: &str,
    list_code: Option<&str>,
    sender: &str,
    message: &[u8],
    outcome: &str,
    now: i64,
) -> Result<i64> {
    tx.prepare_cached(
        "INSERT INTO mail (route, list_code, sender, received_at, outcome, message) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![route, list_code, sender, now, outcome, message])?;
    Ok(tx.last_insert_rowid())
}
