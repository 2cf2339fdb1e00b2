//! [`Handle`]: the store as async code holds it.
//!
//! A handle owns one writer connection on a thread of its own and a few
//! reader connections on theirs (WAL lets readers read while the writer
//! writes), and runs closures on them: `handle.read(|db| ...)` on a reader,
//! `handle.write(|tx| ...)` on the writer, in one transaction. Async code
//! awaits the answer, so SQLite never blocks the runtime; threads outside
//! the runtime (the outbox's store thread, `spawn_blocking`, one-shot
//! commands) use the `blocking_` forms. Writes queue on the writer thread
//! in the order they were asked for.
//!
//! [`Handle::write_grouped`] is the group commit: the writes of that kind
//! that are waiting when the writer gets to them run in one transaction,
//! each in a savepoint of its own (one that fails takes back only its own
//! changes), and are answered once that transaction has committed. Under
//! load one disk flush then covers many callers, while each answer still
//! follows the commit of its own write: what a listener needs to answer 250
//! only for a post on disk.
//!
//! Clones share the threads; the threads stop once the last clone is gone
//! and their queues are empty.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};

use tokio::sync::oneshot;

use super::{Connection, Error, Result, Transaction};

/// Work for a connection's thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A grouped write: run in the group's transaction (or told it could not
/// begin), it returns what to do once the transaction has committed or
/// failed to.
type GroupedJob = Box<dyn FnOnce(Result<&Transaction<'_>, &str>) -> Finish + Send>;

/// Answers a grouped write with the fate of its transaction.
type Finish = Box<dyn FnOnce(Result<(), &str>) + Send>;

/// Most grouped writes in one transaction.
const MAX_GROUP: usize = 256;

/// What the writer thread is handed.
enum Work {
    /// Runs alone with the connection.
    Alone(Job),
    /// Runs in a transaction shared with the grouped writes waiting with it.
    Grouped(GroupedJob),
}

/// A cloneable door to the store; see the module documentation.
#[derive(Clone)]
pub struct Handle {
    writer: mpsc::Sender<Work>,
    /// The readers' shared queue; `None` when reads run on the writer
    /// (an in-memory store, whose connections cannot share a database).
    readers: Option<mpsc::Sender<Work>>,
}

impl Handle {
    /// Opens the database at `path` with one writer and `readers` reader
    /// connections (0: reads run on the writer), each on its own thread.
    /// Blocks until every connection is open and the schema up to date:
    /// call it from a blocking context (`spawn_blocking`, or before the
    /// runtime starts).
    pub fn open(path: &Path, readers: usize) -> Result<Handle> {
        let writer = spawn("tidings-store-writer", {
            let path = path.to_path_buf();
            move || super::open(&path)
        })?;
        let readers = match readers {
            0 => None,
            count => {
                let (queue, jobs) = mpsc::channel::<Work>();
                let jobs = Arc::new(Mutex::new(jobs));
                for _ in 0..count {
                    let path = path.to_path_buf();
                    spawn_reader(&path, Arc::clone(&jobs))?;
                }
                Some(queue)
            }
        };
        Ok(Handle { writer, readers })
    }

    /// An in-memory store on one thread, for tests and benchmarks.
    pub fn open_in_memory() -> Result<Handle> {
        let writer = spawn("tidings-store-writer", super::open_in_memory)?;
        Ok(Handle {
            writer,
            readers: None,
        })
    }

    /// Runs `read` on a reader connection.
    pub async fn read<T, E>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let answer = self.submit(self.reader_queue(), move |db| read(db));
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Runs `write` in one transaction on the writer connection, committed
    /// when it returns `Ok` (see [`super::transaction`]).
    pub async fn write<T, E>(
        &self,
        write: impl FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let answer = self.submit(&self.writer, move |db| super::transaction(db, write));
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Runs `write` in the writer's next group transaction, in a savepoint
    /// of its own, and answers once that transaction has committed (see the
    /// module documentation). An `Err` from `write` takes back only its own
    /// changes; a failed commit fails every write of the group.
    pub async fn write_grouped<T, E>(
        &self,
        write: impl FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<Result<T, E>>();
        let job: GroupedJob = Box::new(move |tx| {
            let tx = match tx {
                Ok(tx) => tx,
                Err(reason) => {
                    let _ = answer.send(Err(Error::Group(reason.to_string()).into()));
                    return Box::new(|_| {});
                }
            };
            match in_savepoint(tx, write) {
                Ok(value) => Box::new(move |committed: Result<(), &str>| {
                    let _ = answer.send(match committed {
                        Ok(()) => Ok(value),
                        Err(reason) => Err(Error::Group(reason.to_string()).into()),
                    });
                }),
                Err(error) => {
                    let _ = answer.send(Err(error));
                    Box::new(|_| {})
                }
            }
        });
        let _ = self.writer.send(Work::Grouped(job));
        answered.await.map_err(|_| Error::Closed)?
    }

    /// [`Handle::read`] from a thread outside the runtime.
    pub fn blocking_read<T, E>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let answer = self.submit(self.reader_queue(), move |db| read(db));
        answer.blocking_recv().map_err(|_| Error::Closed)?
    }

    /// [`Handle::write`] from a thread outside the runtime.
    pub fn blocking_write<T, E>(
        &self,
        write: impl FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let answer = self.submit(&self.writer, move |db| super::transaction(db, write));
        answer.blocking_recv().map_err(|_| Error::Closed)?
    }

    /// [`Handle::blocking_write`] committed without waiting for the disk
    /// (see [`super::transaction_unsynced`]).
    pub fn blocking_write_unsynced<T, E>(
        &self,
        write: impl FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let answer = self.submit(&self.writer, move |db| {
            super::transaction_unsynced(db, write)
        });
        answer.blocking_recv().map_err(|_| Error::Closed)?
    }

    /// [`super::checkpoint`] on the writer, from a thread outside the
    /// runtime.
    pub fn blocking_checkpoint(&self) -> Result<()> {
        let answer = self.submit(&self.writer, |db| super::checkpoint(db));
        answer.blocking_recv().map_err(|_| Error::Closed)?
    }

    fn reader_queue(&self) -> &mpsc::Sender<Work> {
        self.readers.as_ref().unwrap_or(&self.writer)
    }

    /// Queues `work` for a connection; the answer comes once it has run.
    /// A panic in `work` is caught on the connection's thread, which lives
    /// on: the caller sees [`Error::Panicked`], and the open transaction, if
    /// any, is rolled back as it is dropped.
    fn submit<T, E>(
        &self,
        queue: &mpsc::Sender<Work>,
        work: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> oneshot::Receiver<Result<T, E>>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |db| {
            let result = catch_unwind(AssertUnwindSafe(|| work(db))).unwrap_or_else(|_| {
                tracing::error!("a store query panicked; its transaction was rolled back");
                Err(Error::Panicked.into())
            });
            // A caller that went away needs no answer.
            let _ = answer.send(result);
        });
        // A send fails only once the thread is gone; the dropped answer
        // then says so.
        let _ = queue.send(Work::Alone(job));
        answered
    }
}

/// Runs `write` in a savepoint of `tx`: released when it succeeds, rolled
/// back when it fails or panics, so the group's other writes stand either
/// way.
fn in_savepoint<T, E: From<Error>>(
    tx: &Transaction<'_>,
    write: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
) -> Result<T, E> {
    tx.execute_batch("SAVEPOINT grouped").map_err(Error::from)?;
    let result = catch_unwind(AssertUnwindSafe(|| write(tx))).unwrap_or_else(|_| {
        tracing::error!("a store query panicked; its changes were rolled back");
        Err(Error::Panicked.into())
    });
    let end = match result {
        Ok(_) => "RELEASE grouped",
        Err(_) => "ROLLBACK TO grouped; RELEASE grouped",
    };
    tx.execute_batch(end).map_err(Error::from)?;
    result
}

/// The writer thread's loop: each job alone, and the grouped writes that
/// wait together in one transaction.
fn run_writer(connection: &mut Connection, jobs: mpsc::Receiver<Work>) {
    let mut held: Option<Work> = None;
    loop {
        let work = match held.take() {
            Some(work) => work,
            None => match next(connection, &jobs) {
                Some(work) => work,
                None => return,
            },
        };
        match work {
            Work::Alone(job) => job(connection),
            Work::Grouped(first) => {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match jobs.try_recv() {
                        Ok(Work::Grouped(job)) => group.push(job),
                        Ok(alone) => {
                            held = Some(alone);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                run_group(connection, group);
            }
        }
    }
}

/// The next job of `jobs`, `None` once every sender is gone. A connection
/// that finds nothing waiting gives its page cache back before it sleeps
/// (`PRAGMA shrink_memory`): up to 32 MiB a connection, kept while work
/// follows work, is not held by an idle daemon. Another connection's write
/// makes a reader check its cache anyway, and the pages are in the
/// kernel's cache still.
fn next(connection: &mut Connection, jobs: &mpsc::Receiver<Work>) -> Option<Work> {
    match jobs.try_recv() {
        Ok(work) => return Some(work),
        Err(mpsc::TryRecvError::Disconnected) => return None,
        Err(mpsc::TryRecvError::Empty) => {}
    }
    // A failure only keeps the cache.
    let _ = connection.execute_batch("PRAGMA shrink_memory");
    jobs.recv().ok()
}

/// Runs `group` in one immediate transaction, commits, and answers each.
fn run_group(connection: &mut Connection, group: Vec<GroupedJob>) {
    let tx = match connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(error) => {
            let reason = error.to_string();
            for job in group {
                job(Err(&reason))(Err(&reason));
            }
            return;
        }
    };
    let finishes: Vec<Finish> = group.into_iter().map(|job| job(Ok(&tx))).collect();
    let committed = tx.commit().map_err(|error| error.to_string());
    for finish in finishes {
        finish(committed.as_ref().map(|_| ()).map_err(String::as_str));
    }
}

/// Starts a thread that opens a connection with `open` and runs the jobs
/// sent to it; returns once the connection is open.
fn spawn(
    name: &str,
    open: impl FnOnce() -> Result<Connection> + Send + 'static,
) -> Result<mpsc::Sender<Work>> {
    let (queue, jobs) = mpsc::channel::<Work>();
    let (opened, opening) = mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || match open() {
            Ok(mut connection) => {
                let _ = opened.send(Ok(()));
                run_writer(&mut connection, jobs);
            }
            Err(error) => {
                let _ = opened.send(Err(error));
            }
        })
        .map_err(|_| Error::Closed)?;
    opening.recv().map_err(|_| Error::Closed)??;
    Ok(queue)
}

/// Starts a reader thread that takes jobs from the readers' shared queue.
fn spawn_reader(path: &Path, jobs: Arc<Mutex<mpsc::Receiver<Work>>>) -> Result<()> {
    let path = path.to_path_buf();
    let (opened, opening) = mpsc::channel();
    std::thread::Builder::new()
        .name("tidings-store-reader".into())
        .spawn(move || match super::open(&path) {
            Ok(mut connection) => {
                let _ = opened.send(Ok(()));
                loop {
                    // The lock is held only while waiting for a job, so the
                    // readers take turns at the queue and run side by side.
                    let job = match jobs.lock() {
                        Ok(jobs) => next(&mut connection, &jobs),
                        Err(_) => return,
                    };
                    match job {
                        Some(Work::Alone(job)) => job(&mut connection),
                        // Reads are never grouped; a stray group write would
                        // have no transaction of its own here.
                        Some(Work::Grouped(job)) => {
                            job(Err("a grouped write reached a reader"))(Err("not run"))
                        }
                        None => return,
                    }
                }
            }
            Err(error) => {
                let _ = opened.send(Err(error));
            }
        })
        .map_err(|_| Error::Closed)?;
    opening.recv().map_err(|_| Error::Closed)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(db: &Connection) -> Result<i64> {
        Ok(db.query_row("SELECT count(*) FROM digest_slots", [], |row| row.get(0))?)
    }

    #[tokio::test]
    async fn readers_see_what_the_writer_committed() {
        let dir = tempfile::tempdir().unwrap();
        let handle = Handle::open(&dir.path().join("t.sqlite3"), 2).unwrap();
        assert_eq!(handle.read(slots).await.unwrap(), 0);
        handle
            .write(|tx| {
                tx.execute(
                    "INSERT INTO digest_slots (list_code, last_slot) VALUES ('en', 1)",
                    [],
                )?;
                Ok::<_, Error>(())
            })
            .await
            .unwrap();
        assert_eq!(handle.read(slots).await.unwrap(), 1);
        // A failed write keeps nothing.
        let failed: Result<()> = handle
            .write(|tx| {
                tx.execute(
                    "INSERT INTO digest_slots (list_code, last_slot) VALUES ('fr', 1)",
                    [],
                )?;
                Err(Error::Closed)
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(handle.read(slots).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn queries_run_on_the_store_threads_never_on_the_callers() {
        let dir = tempfile::tempdir().unwrap();
        let handle = Handle::open(&dir.path().join("t.sqlite3"), 1).unwrap();
        let thread = || std::thread::current().name().map(str::to_string);
        let read = handle
            .read(move |_| Ok::<_, Error>(thread()))
            .await
            .unwrap();
        let written = handle
            .write(move |_| Ok::<_, Error>(thread()))
            .await
            .unwrap();
        assert_eq!(read.as_deref(), Some("tidings-store-reader"));
        assert_eq!(written.as_deref(), Some("tidings-store-writer"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grouped_writes_commit_together_and_a_failing_one_takes_back_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let handle = Handle::open(&dir.path().join("t.sqlite3"), 1).unwrap();
        let mut writes = tokio::task::JoinSet::new();
        for n in 0..50i64 {
            let handle = handle.clone();
            writes.spawn(async move {
                let result = handle
                    .write_grouped(move |tx| {
                        tx.execute(
                            "INSERT INTO digest_slots (list_code, last_slot) VALUES (?1, ?2)",
                            rusqlite::params![format!("l{n}"), n],
                        )?;
                        if n % 10 == 3 {
                            return Err(Error::Closed);
                        }
                        Ok(n)
                    })
                    .await;
                (n, result)
            });
        }
        while let Some(joined) = writes.join_next().await {
            let (n, result) = joined.unwrap();
            assert_eq!(result.is_ok(), n % 10 != 3, "write {n}: {result:?}");
        }
        // Each write's answer came after its commit: every good one is
        // there, no failed one is.
        assert_eq!(handle.read(slots).await.unwrap(), 45);
        let failed: i64 = handle
            .read(|db| {
                Ok::<_, Error>(db.query_row(
                    "SELECT count(*) FROM digest_slots WHERE last_slot % 10 = 3",
                    [],
                    |row| row.get(0),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(failed, 0);
    }

    #[tokio::test]
    async fn a_panicking_query_leaves_the_store_usable() {
        let handle = Handle::open_in_memory().unwrap();
        let panicked: Result<()> = handle.read(|_| panic!("a bug in a query")).await;
        assert!(matches!(panicked, Err(Error::Panicked)));
        assert_eq!(handle.read(slots).await.unwrap(), 0);
    }

    #[test]
    fn blocking_calls_work_outside_a_runtime() {
        let handle = Handle::open_in_memory().unwrap();
        handle
            .blocking_write_unsynced(|tx| {
                tx.execute(
                    "INSERT INTO digest_slots (list_code, last_slot) VALUES ('en', 1)",
                    [],
                )?;
                Ok::<_, Error>(())
            })
            .unwrap();
        handle.blocking_checkpoint().unwrap();
        assert_eq!(handle.blocking_read(slots).unwrap(), 1);
    }

    #[test]
    fn a_store_that_cannot_open_says_why() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the database file should be.
        let path = dir.path().join("db");
        std::fs::create_dir(&path).unwrap();
        assert!(matches!(Handle::open(&path, 1), Err(Error::Sqlite(_))));
    }
}
