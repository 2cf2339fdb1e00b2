//! The SQLite store: posts and their raw bytes, feed change counters,
//! subscribers, digests and their deliveries, and single outgoing messages. No other module touches SQLite.
//!
//! Queries are plain functions over a [`Connection`] (reads) or a
//! [`Transaction`] (writes), one file per table group, so a caller composes
//! several steps in one transaction. Synchronous callers (the one-shot
//! commands, the MTA pipe, the importer) [`open`] a connection and call them
//! directly, writing through [`transaction`]; async code holds a [`Handle`],
//! which runs them on threads that own the connections, so SQLite never
//! blocks the runtime.
//!
//! Connections run in WAL mode with `synchronous = FULL`, so a committed
//! transaction survives a crash or power loss: ingest acknowledges a message
//! only after its transaction has committed. The schema is created and
//! upgraded by the numbered migrations in `migrations/`, tracked in
//! `PRAGMA user_version`.

mod handle;
mod sql;

pub mod archive;
pub mod bounces;
pub mod combined;

pub mod deliveries;
pub mod digests;
pub mod feeds;
pub mod mail;
pub mod newsgroups;
pub mod outgoing;
pub mod people;
pub mod post_deliveries;
pub mod posts;
pub mod requests;
pub mod subscribers;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use handle::Handle;
pub use rusqlite::{Connection, Transaction};

/// A step of a migration written in Rust: what SQL alone cannot compute.
type Step = fn(&Transaction<'_>) -> Result<()>;

/// Migrations in order; migration N brings the schema to user_version N:
/// its SQL, then its Rust step if it has one, in the same transaction.
const MIGRATIONS: &[(&str, Option<Step>)] = &[
    (include_str!("migrations/0001_posts.sql"), None),
    (include_str!("migrations/0002_feed_versions.sql"), None),
    (include_str!("migrations/0003_digests.sql"), None),
    (include_str!("migrations/0004_outgoing.sql"), None),
    (include_str!("migrations/0005_people.sql"), None),
    (include_str!("migrations/0006_mail.sql"), None),
    (
        include_str!("migrations/0007_archive.sql"),
        Some(archive::backfill),
    ),
    (
        include_str!("migrations/0008_archive_changes.sql"),
        Some(archive::reindex),
    ),
    (include_str!("migrations/0009_moderation.sql"), None),
    (
        include_str!("migrations/0010_pending_by_subscriber.sql"),
        None,
    ),
    (include_str!("migrations/0011_bounces.sql"), None),
    (include_str!("migrations/0012_digest_nonce.sql"), None),
    (include_str!("migrations/0013_auth.sql"), None),
    (
        include_str!("migrations/0014_first_lines.sql"),
        Some(archive::backfill_first_lines),
    ),
    (include_str!("migrations/0015_nntp_articles.sql"), None),
    (include_str!("migrations/0016_imported_posts.sql"), None),
    (include_str!("migrations/0017_combined.sql"), None),
    (
        include_str!("migrations/0018_html_bodies.sql"),
        Some(archive::refile_html_bodies),
    ),
    // The list's order, not a file's number, is the schema version: a new
    // migration goes at the end.
];

/// Writes a consistent copy of the store `db` to `target`, which must not
/// exist, while other connections go on writing: `VACUUM INTO` reads one
/// snapshot in a single read transaction, which in WAL mode holds up no
/// writer (only checkpoints wait for it), and writes a compact database.
/// The copy is made under a temporary name beside `target` and renamed
/// into place, so `target` is never a partial copy.
pub fn backup(db: &Connection, target: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let file_name = target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".to_string());
    let partial = target.with_file_name(format!(".{file_name}.partial"));
    let _ = std::fs::remove_file(&partial);
    let copied = std::thread::scope(|scope| {
        let (stop, stopped) = std::sync::mpsc::channel();
        scope.spawn(|| flush_while_written(&partial, stopped));
        let copied = db.execute("VACUUM INTO ?1", [partial.to_string_lossy()]);
        drop(stop);
        copied
    });
    let result = copied
        .with_context(|| format!("copying the store into {}", partial.display()))
        .and_then(|_| {
            std::fs::File::open(&partial)
                .and_then(|file| file.sync_all())
                .and_then(|()| std::fs::rename(&partial, target))
                .with_context(|| format!("writing {}", target.display()))
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// How often a backup's copy is flushed while it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Flushes the file at `path` every [`FLUSH_EVERY`] until `stop` is
/// dropped: a backup's dirty pages then go to the disk a little at a time,
/// rather than in the bursts the kernel starts when too many have piled
/// up, behind which every commit of the running daemon (synced to the same
/// disk) would wait.
fn flush_while_written(path: &Path, stop: std::sync::mpsc::Receiver<()>) {
    let mut file = None;
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(FLUSH_EVERY) {
        if file.is_none() {
            file = std::fs::File::open(path).ok();
        }
        if let Some(file) = &file {
            let _ = file.sync_data();
        }
    }
}

/// How long a writer waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite refused: busy past the timeout, disk full, read-only, corrupt...
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value did not read back as what it should be.
    #[error("column {column}: {message}")]
    Corrupt { column: usize, message: String },
    /// The thread that owns the connection is gone: the daemon is stopping.
    #[error("the store connection is closed")]
    Closed,
    /// A query panicked (a bug); its transaction was rolled back.
    #[error("a store query failed unexpectedly and was rolled back")]
    Panicked,
    /// The group transaction a write was part of could not begin or commit.
    #[error("the transaction failed: {0}")]
    Group(String),
    /// A file of the database (itself, its `-wal` or its `-shm`) is there
    /// but this user may not write it: SQLite alone would say "attempt to
    /// write a readonly database" without naming it.
    #[error(
        "{} is not writable by this user (uid {uid}): the store, its -wal and -shm files and \
         their directory must belong to the user tidings runs as (chown that user, chmod u+rw)",
        path.display()
    )]
    NotWritable { path: PathBuf, uid: u32 },
    /// The database was made by a newer tidings, whose schema this one does
    /// not know.
    #[error(
        "the store {} is at schema version {found}, and this tidings knows versions up to \
         {known}: a newer tidings has upgraded it; run that one, or restore the backup copy \
         written before the upgrade (see docs/upgrading.md)",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    /// The copy of an older database made before upgrading it failed, so
    /// it was not upgraded.
    #[error("copying the store before upgrading it to {}: {message}", backup.display())]
    Backup { backup: PathBuf, message: String },
}

impl Error {
    /// Whether the same call may succeed later unchanged: another
    /// connection held the write lock past the busy timeout, or the disk
    /// was full.
    pub fn is_temporary(&self) -> bool {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked, DiskFull};
        matches!(
            self,
            Error::Sqlite(rusqlite::Error::SqliteFailure(failure, _))
                if matches!(failure.code, DatabaseBusy | DatabaseLocked | DiskFull)
        )
    }
}

/// What store calls return.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Opens (creating if needed) the database at `path` and brings its schema
/// up to date.
pub fn open(path: &Path) -> Result<Connection> {
    if let Some(dir) = path.parent() {
        // An error here shows up as a clearer one from open below.
        let _ = std::fs::create_dir_all(dir);
    }
    check_writable(path)?;
    #[expect(
        clippy::disallowed_methods,
        reason = "the one place connections are opened and set up"
    )]
    let connection = Connection::open(path)?;
    prepare(connection)
}

/// Refuses a database whose file, `-wal` or `-shm` exists and cannot be
/// written by this user, naming that file. A store once opened read-only
/// keeps the `-wal` and `-shm` SQLite made then (0444) after the database
/// itself is made writable again.
///
/// Asked with access(2), never by opening the file: closing any descriptor
/// of a database file drops the POSIX locks every other connection of this
/// process holds on it, and the next writer corrupts the store (SQLite's
/// "How To Corrupt", 2.2).
fn check_writable(path: &Path) -> Result<()> {
    use rustix::fs::{accessat, Access, AtFlags, CWD};
    let name = path.as_os_str().to_owned();
    for suffix in ["", "-wal", "-shm"] {
        let mut file = name.clone();
        file.push(suffix);
        let file = PathBuf::from(file);
        // Effective ids, as an open would use. Missing (SQLite makes it)
        // or another problem: SQLite reports it.
        if let Err(rustix::io::Errno::ACCESS | rustix::io::Errno::ROFS) =
            accessat(CWD, &file, Access::WRITE_OK, AtFlags::EACCESS)
        {
            return Err(Error::NotWritable {
                path: file,
                uid: rustix::process::geteuid().as_raw(),
            });
        }
    }
    Ok(())
}

/// Another connection to the database file `db` is open on, for a reader
/// on another thread; `None` for an in-memory database, which no other
/// connection can see.
pub fn open_another(db: &Connection) -> Option<Result<Connection>> {
    let path = db.path().filter(|path| !path.is_empty())?;
    Some(open(Path::new(path)))
}

/// An in-memory database, for tests and benchmarks.
pub fn open_in_memory() -> Result<Connection> {
    #[expect(
        clippy::disallowed_methods,
        reason = "the one place connections are opened and set up"
    )]
    let connection = Connection::open_in_memory()?;
    prepare(connection)
}

fn prepare(mut connection: Connection) -> Result<Connection> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    // Up to 32 MiB of pages kept per connection (SQLite's default is
    // 2 MiB): the pages of a month's posts, which the site builder reads
    // after every post, stay in memory instead of being read again.
    connection.pragma_update(None, "cache_size", -32_768)?;
    migrate(&mut connection)?;
    Ok(connection)
}

/// Brings the schema up to date. Foreign keys are off while migrations run
/// (SQLite's procedure for changing a table: a migration may rebuild one
/// that others refer to) and checked before the commit.
fn migrate(connection: &mut Connection) -> Result<()> {
    let found = schema_version(connection)?;
    if found > MIGRATIONS.len() {
        return Err(Error::TooNew {
            path: PathBuf::from(connection.path().unwrap_or("")),
            found,
            known: MIGRATIONS.len(),
        });
    }
    if found == MIGRATIONS.len() {
        return Ok(());
    }
    if found > 0 {
        back_up_before_upgrading(connection, found)?;
    }
    connection.pragma_update(None, "foreign_keys", "OFF")?;
    let migrated = transaction(connection, |tx| {
        // Another process may have migrated while we waited for the lock.
        for (index, (sql, step)) in MIGRATIONS.iter().enumerate().skip(schema_version(tx)?) {
            tx.execute_batch(sql)?;
            if let Some(step) = step {
                step(tx)?;
            }
            tx.pragma_update(None, "user_version", index as i64 + 1)?;
        }
        let broken: i64 =
            tx.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| {
                row.get(0)
            })?;
        if broken > 0 {
            return Err(Error::Corrupt {
                column: 0,
                message: format!("{broken} rows refer to rows that do not exist after migrating"),
            });
        }
        Ok(())
    });
    connection.pragma_update(None, "foreign_keys", "ON")?;
    migrated
}

/// Where the copy of a store at schema version `found` is written before
/// it is upgraded: beside it, `tidings.db.v13.backup` for a store
/// `tidings.db` at version 13.
pub fn upgrade_backup_path(db: &Path, found: usize) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(format!(".v{found}.backup"));
    PathBuf::from(name)
}

/// Copies an existing database at schema version `found` (older than this
/// tidings) beside itself before the migrations change it, so an upgrade
/// gone wrong, or a return to the older tidings, can start from that copy.
/// An in-memory database has nothing to keep.
fn back_up_before_upgrading(connection: &Connection, found: usize) -> Result<()> {
    let Some(path) = connection.path().filter(|path| !path.is_empty()) else {
        return Ok(());
    };
    let target = upgrade_backup_path(Path::new(path), found);
    backup(connection, &target).map_err(|error| Error::Backup {
        backup: target.clone(),
        message: format!("{error:#}"),
    })?;
    tracing::warn!(
        "upgrading the store {path} from schema version {found} to {}; its copy as it was is {}",
        MIGRATIONS.len(),
        target.display()
    );
    Ok(())
}

/// The schema version the database is at.
pub fn schema_version(connection: &Connection) -> Result<usize> {
    let version: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    Ok(version as usize)
}

/// Runs `write` in one immediate transaction (the write lock is taken at
/// once, so it cannot fail half-way for want of it) and commits when it
/// returns `Ok`; on `Err` nothing it did is kept. When this returns `Ok`,
/// the transaction is on disk.
pub fn transaction<T, E: From<Error>>(
    connection: &mut Connection,
    write: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
) -> Result<T, E> {
    let tx = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(Error::from)?;
    let value = write(&tx)?;
    tx.commit().map_err(Error::from)?;
    Ok(value)
}

/// Runs `write` in a transaction and takes it all back: what it would do,
/// done and undone (a dry run).
pub fn rehearse<T, E: From<Error>>(
    connection: &mut Connection,
    write: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
) -> Result<T, E> {
    let tx = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(Error::from)?;
    let value = write(&tx)?;
    tx.rollback().map_err(Error::from)?;
    Ok(value)
}

/// [`transaction`], committed without waiting for the disk: it survives
/// the process being killed, but a power failure may take it back until the
/// next synced commit or [`checkpoint`]. For what may be lost at the price
/// of a repeat, never of a loss (delivery results: a result rolled back
/// leaves its delivery queued).
pub fn transaction_unsynced<T, E: From<Error>>(
    connection: &mut Connection,
    write: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
) -> Result<T, E> {
    // In WAL mode a commit under synchronous = NORMAL only writes the log;
    // a later FULL commit flushes it with everything before it.
    connection
        .pragma_update(None, "synchronous", "NORMAL")
        .map_err(Error::from)?;
    let result = transaction(connection, write);
    connection
        .pragma_update(None, "synchronous", "FULL")
        .map_err(Error::from)?;
    result
}

/// Flushes to the disk what unsynced transactions wrote, by a checkpoint:
/// it flushes the log before copying it into the database, and the
/// database after. Frames a reader still holds are not copied and so not
/// flushed here, but by the next synced commit.
pub fn checkpoint(connection: &Connection) -> Result<()> {
    connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
    Ok(())
}

/// Sets `connection` up for a bulk load, an import of an archive, until
/// [`end_bulk_load`]: checkpoints wait for 64 MB of log rather than 4
/// (each copies the log's pages into the database, so fewer, larger ones
/// write each page fewer times), and statement journals stay in memory
/// (each insert into `posts` opens one for its triggers, and written to a
/// temporary file they were a sixth of an import's time). A statement
/// journal holds the pages one statement changed: a post's.
pub fn begin_bulk_load(connection: &Connection) -> Result<()> {
    connection.pragma_update(None, "wal_autocheckpoint", 16_000)?;
    connection.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Ends [`begin_bulk_load`]: SQLite's defaults again, and a checkpoint of
/// what the load left in the log.
pub fn end_bulk_load(connection: &Connection) -> Result<()> {
    connection.pragma_update(None, "wal_autocheckpoint", 1_000)?;
    connection.pragma_update(None, "temp_store", "DEFAULT")?;
    checkpoint(connection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_applied_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        drop(open(&path).unwrap());
        let connection = open(&path).unwrap();
        assert_eq!(schema_version(&connection).unwrap(), MIGRATIONS.len());
    }

    #[test]
    fn subscribers_of_a_version_4_store_become_people_with_subscriptions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        {
            #[expect(clippy::disallowed_methods, reason = "building an old store by hand")]
            let old = Connection::open(&path).unwrap();
            for (sql, _) in &MIGRATIONS[..4] {
                old.execute_batch(sql).unwrap();
            }
            old.pragma_update(None, "user_version", 4).unwrap();
            old.execute_batch(
                "INSERT INTO subscribers (id, list_code, address, mode, token, created_at) VALUES \
                   (7, 'en', 'Ana@x.org', 'plain', 't1', 10), (8, 'ca', 'ana@x.org', 'mime', 't2', 20), \
                   (9, 'en', 'bo@x.org', 'html', 't3', 30); \
                 INSERT INTO digests (id, list_code, volume, issue, period, reason, issued_at) \
                   VALUES (1, 'en', 1, 1, '2026', 'forced', 40); \
                 INSERT INTO deliveries (digest_id, subscriber_id, address, mode, state, next_attempt_at) \
                   VALUES (1, 9, 'bo@x.org', 'html', 'queued', 40);",
            )
            .unwrap();
        }
        let db = open(&path).unwrap();
        assert_eq!(schema_version(&db).unwrap(), MIGRATIONS.len());
        let people: i64 = db
            .query_row("SELECT count(*) FROM people", [], |row| row.get(0))
            .unwrap();
        assert_eq!(people, 2, "Ana is one person on two lists");
        let ana = subscribers::find(&db, "ca", "ANA@x.org").unwrap().unwrap();
        assert_eq!((ana.id, ana.mode), (8, crate::subscribers::Mode::Mime));
        // The delivery still refers to its subscriber, with foreign keys on.
        let fk: i64 = db
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(fk, 0);
        let due = deliveries::due(&db, 100, 0, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].subscriber_id, 9);
    }

    /// Opening another connection (as the daemon does for each reader)
    /// must not drop the locks a writer holds: another process (Debian's
    /// sqlite3) still finds the store locked. Opening the file to test it
    /// for writing, then closing it, dropped them, and stores were
    /// corrupted under concurrent writers.
    #[test]
    fn opening_another_connection_keeps_the_writers_locks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let writer = open(&path).unwrap();
        writer.execute_batch("BEGIN IMMEDIATE").unwrap();
        let _reader = open(&path).unwrap();
        let other = std::process::Command::new("sqlite3")
            .arg(&path)
            .arg("PRAGMA busy_timeout = 0; BEGIN IMMEDIATE; COMMIT;")
            .output()
            .expect("sqlite3 (Debian's sqlite3 package; .ci/run installs it)");
        let said = String::from_utf8_lossy(&other.stderr);
        assert!(
            !other.status.success() && said.contains("locked"),
            "another process took the write lock this one holds: {said}"
        );
        writer.execute_batch("COMMIT").unwrap();
    }

    #[test]
    fn connections_are_durable_and_keep_their_references() {
        let dir = tempfile::tempdir().unwrap();
        let connection = open(&dir.path().join("t.sqlite3")).unwrap();
        let pragma = |name: &str| -> String {
            connection
                .pragma_query_value(None, name, |row| row.get::<_, rusqlite::types::Value>(0))
                .map(|value| match value {
                    rusqlite::types::Value::Integer(n) => n.to_string(),
                    rusqlite::types::Value::Text(text) => text,
                    other => format!("{other:?}"),
                })
                .unwrap()
        };
        assert_eq!(pragma("journal_mode"), "wal");
        // 2 is FULL: a commit is on disk when it returns.
        assert_eq!(pragma("synchronous"), "2");
        assert_eq!(pragma("foreign_keys"), "1");
    }

    /// Only `store` names rusqlite: every other module reaches SQLite
    /// through the functions here (ARCHITECTURE.md, first invariant).
    #[test]
    fn only_the_store_names_rusqlite() {
        fn walk(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    found.push(path);
                }
            }
        }
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        walk(&src, &mut files);
        assert!(files.len() > 40, "the source tree was read");
        let outside: Vec<_> = files
            .iter()
            .filter(|path| !path.starts_with(src.join("store")))
            .filter(|path| std::fs::read_to_string(path).unwrap().contains("rusqlite"))
            .collect();
        assert!(
            outside.is_empty(),
            "rusqlite named outside store: {outside:?}"
        );
    }

    #[test]
    fn a_store_locked_by_another_writer_is_a_temporary_failure_and_a_bad_query_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let holder = open(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let mut other = open(&path).unwrap();
        other.busy_timeout(Duration::ZERO).unwrap();
        let locked: Result<()> = transaction(&mut other, |_| Ok(()));
        assert!(locked.unwrap_err().is_temporary());
        holder.execute_batch("ROLLBACK").unwrap();
        let bad: Result<()> = transaction(&mut other, |tx| {
            tx.execute("INSERT INTO no_such_table VALUES (1)", [])?;
            Ok(())
        });
        assert!(!bad.unwrap_err().is_temporary());
    }

    #[test]
    fn a_bulk_load_keeps_statement_journals_in_memory_and_its_end_restores_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let connection = open(&dir.path().join("t.sqlite3")).unwrap();
        let pragma = |name: &str| -> i64 {
            connection
                .pragma_query_value(None, name, |row| row.get(0))
                .unwrap()
        };
        let defaults = (pragma("temp_store"), pragma("wal_autocheckpoint"));
        begin_bulk_load(&connection).unwrap();
        // 2 is MEMORY.
        assert_eq!(
            (pragma("temp_store"), pragma("wal_autocheckpoint")),
            (2, 16_000)
        );
        end_bulk_load(&connection).unwrap();
        assert_eq!(
            (pragma("temp_store"), pragma("wal_autocheckpoint")),
            defaults
        );
    }

    #[test]
    fn a_failed_transaction_leaves_nothing() {
        let mut connection = open_in_memory().unwrap();
        let result: Result<()> = transaction(&mut connection, |tx| {
            tx.execute(
                "INSERT INTO digest_slots (list_code, last_slot) VALUES ('en', 1)",
                [],
            )?;
            Err(Error::Closed)
        });
        assert!(result.is_err());
        let rows: i64 = connection
            .query_row("SELECT count(*) FROM digest_slots", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 0);
    }
}
