//! The SQLite store: every post, its raw bytes, and (later) digests and
//! deliveries. No other module touches SQLite.
//!
//! The connection runs in WAL mode with `synchronous = FULL`, so a committed
//! transaction survives a crash or power loss: ingest acknowledges a message
//! only after [`Store::insert_posts`] has returned. The schema is created and
//! upgraded by the numbered migrations in `migrations/`, tracked in
//! `PRAGMA user_version`.

mod feeds;
mod posts;

pub mod deliveries;
pub mod digests;
pub mod subscribers;

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

pub use feeds::ALL_SCOPE;
pub use posts::{Attachment, Inserted, NewPost, Post, PostFilter, Status};

/// Migrations in order; migration N brings the schema to user_version N.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_posts.sql"),
    include_str!("migrations/0002_feed_versions.sql"),
    include_str!("migrations/0003_digests.sql"),
];

/// How long a writer waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// An open store.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its
    /// schema up to date.
    pub fn open(path: &Path) -> rusqlite::Result<Store> {
        if let Some(dir) = path.parent() {
            // An error here shows up as a clearer one from open below.
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path)?;
        Self::prepare(conn)
    }

    /// An in-memory store, for tests and benchmarks.
    pub fn open_in_memory() -> rusqlite::Result<Store> {
        Self::prepare(Connection::open_in_memory()?)
    }

    fn prepare(conn: Connection) -> rusqlite::Result<Store> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> rusqlite::Result<()> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version >= MIGRATIONS.len() as i64 {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", index as i64 + 1)?;
        }
        tx.commit()
    }

    /// The schema version this store is at.
    pub fn schema_version(&self) -> rusqlite::Result<usize> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))?;
        Ok(version as usize)
    }
}
