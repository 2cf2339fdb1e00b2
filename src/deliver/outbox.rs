//! The outbox run: every due delivery (a digest to a subscriber, or a post
//! as it arrived to a subscriber in mode post: `store::post_deliveries`)
//! and every due single message (`store::outgoing`) goes out once, through
//! `connections` workers, and its result is recorded as soon as the server
//! has answered. Single messages go first: they are few, and a reader waits
//! for them (a confirmation, a reply); then posts, which are news, then
//! digests.
//!
//! One thread talks to the store (SQLite never blocks the runtime): it hands
//! out due deliveries page by page and records results in group commits
//! (one transaction for whatever results arrived together), through the
//! store [`Handle`]'s blocking calls. A worker goes
//! on sending while its last result commits, but never has more than
//! [`WINDOW`] results waiting for their commit, so at any moment at most
//! `WINDOW` messages per connection have been accepted by the server
//! without being recorded as sent: after a crash, at most `WINDOW *
//! connections` subscribers can get the digest a second time, and every
//! delivery not recorded as sent is still queued or deferred. A store that
//! cannot record results for the time being (another process holds its
//! write lock past the busy timeout, the disk is full) holds the run up
//! instead: the results are tried again every [`RECORD_RETRY`] for up to
//! [`RECORD_PATIENCE`], and the workers wait for them, so nobody gets a
//! message twice for it.
//!
//! Results are committed without waiting for the disk, and flushed every
//! [`SYNC_EVERY`] and by a checkpoint at the end of the run: a commit
//! survives the process being killed, and a power failure can only take
//! back results not flushed yet (those of the last [`SYNC_EVERY`], or of
//! the run's end when a reader kept the checkpoint from them), whose
//! deliveries are then sent again. Losing a
//! result repeats a message and never loses one, so it need not cost a
//! disk flush per message (as Postfix marks a recipient done without one).
//!
//! [`run_outbox_here`] gives a run a thread and a single-threaded runtime
//! of its own: one thread drives every connection, which costs fewer
//! wake-ups between threads than a multi-threaded runtime (the fan-out
//! benchmark in BENCHMARKS.md measured a third less CPU per message).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use lettre::address::Envelope;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::dkim::Signer;
use super::message::{Prepared, PreparedPost};
use super::transport::{Outgoing, Relay, SendError};
use super::{Attempt, Clock, DueDelivery, DueMessage};
use crate::config::Config;
use crate::digest::DigestMode;
use crate::store::{self, deliveries, digests, outgoing, post_deliveries, posts, Handle};
use crate::tokens::{Purpose, Secret};

/// Deliveries read from the store at once.
const PAGE: usize = 512;

/// Single messages read from the store at once: each carries its whole
/// message (up to the size limit), so few.
const MESSAGE_PAGE: usize = 16;

/// Results a worker may have waiting for their commit while it sends on:
/// the bound, per connection, on messages sent twice after a crash.
pub const WINDOW: usize = 4;

/// How long the store thread waits for more results to commit together.
const GATHER: Duration = Duration::from_millis(1);

/// How often recorded results are flushed to the disk.
const SYNC_EVERY: Duration = Duration::from_millis(200);

/// How long a run keeps trying to record results the store refuses for
/// the time being before it gives up (their messages are then sent again
/// by a later run)...
const RECORD_PATIENCE: Duration = Duration::from_secs(300);
/// ...trying again this long after each refusal (a lock is waited for
/// besides, up to the store's busy timeout).
const RECORD_RETRY: Duration = Duration::from_secs(1);

/// What an outbox run did.
#[derive(Debug, Clone, Default)]
pub struct OutboxReport {
    pub sent: usize,
    pub deferred: usize,
    pub failed: usize,
    /// Pending deliveries failed because their retry age was over.
    pub given_up: usize,
    /// Set when the run stopped early because the relay could not be reached.
    pub unreachable: Option<String>,
    /// Bytes of messages accepted.
    pub bytes: u64,
    pub seconds: f64,
}

/// What a worker is handed.
enum Job {
    /// A digest delivery, with what it shares with its digest.
    Digest {
        delivery: DueDelivery,
        prepared: Arc<Prepared>,
    },
    /// A post to a subscriber in mode post, with what it shares with the
    /// post's other deliveries.
    Post {
        delivery: DueDelivery,
        prepared: Arc<PreparedPost>,
    },
    /// A single message.
    Message(DueMessage),
}

impl Job {
    /// How often it was tried before.
    fn attempts(&self) -> u32 {
        match self {
            Job::Digest { delivery, .. } | Job::Post { delivery, .. } => delivery.attempts,
            Job::Message(due) => due.attempts,
        }
    }

    fn target(&self) -> Target {
        match self {
            Job::Digest { delivery, .. } => Target::Delivery(delivery.id),
            Job::Post { delivery, .. } => Target::Post(delivery.id),
            Job::Message(message) => Target::Message(message.id),
        }
    }
}

/// The row a result is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A row of `deliveries`.
    Delivery(i64),
    /// A row of `post_deliveries`.
    Post(i64),
    /// A row of `outgoing`.
    Message(i64),
}

/// A worker's result; the reply comes once it is committed.
struct Done {
    target: Target,
    attempt: Attempt,
    bytes: usize,
    unreachable: bool,
    committed: oneshot::Sender<()>,
}

/// Delivers every delivery and message due now. When `stop` is cancelled
/// (the daemon is shutting down), no new message is started: those in flight are finished and recorded, the rest stay
/// queued for the next run.
pub async fn run_outbox(
    config: Arc<Config>,
    store: Handle,
    clock: Clock,
    stop: CancellationToken,
) -> anyhow::Result<OutboxReport> {
    let started = Instant::now();
    let signers = Arc::new(Signer::load_all(&config.dkim)?);
    let secret = Secret::load_or_create(&config.site.data_dir)?;
    let relay = Arc::new(Relay::from_config(&config)?);
    let connections = config.delivery.connections;
    // Results go to the store thread; jobs come back through a queue it
    // keeps topped up, so a worker rarely waits for its next delivery.
    let (results, inbox) = std::sync::mpsc::channel::<Done>();
    let (jobs, job_queue) = mpsc::channel::<Job>(connections * 4);
    let job_queue = Arc::new(tokio::sync::Mutex::new(job_queue));

    let store_thread = {
        let config = Arc::clone(&config);
        let sign = !signers.is_empty();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("outbox-store".into())
            .spawn(move || serve_store(store, &config, &secret, &inbox, jobs, clock, sign, &stop))
            .context("starting the outbox store thread")?
    };

    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let results = results.clone();
        let job_queue = Arc::clone(&job_queue);
        let relay = Arc::clone(&relay);
        let signers = Arc::clone(&signers);
        let config = Arc::clone(&config);
        let stop = stop.clone();
        workers.spawn(async move {
            work(&relay, &signers, &config, clock, &job_queue, results, &stop).await
        });
    }
    drop(results);
    while let Some(joined) = workers.join_next().await {
        joined.context("a delivery worker failed")?;
    }
    let mut report = tokio::task::spawn_blocking(move || store_thread.join())
        .await
        .context("waiting for the outbox store thread")?
        .map_err(|_| anyhow::anyhow!("the outbox store thread panicked"))??;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// [`run_outbox`] on the calling thread, with a runtime of its own, to
/// the end; for the `digest` command, and for the daemon through
/// `spawn_blocking`.
pub fn run_outbox_here(
    config: Arc<Config>,
    store: Handle,
    clock: Clock,
    stop: CancellationToken,
) -> anyhow::Result<OutboxReport> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the delivery runtime")?
        .block_on(run_outbox(config, store, clock, stop))
}

/// One connection's loop: take a delivery, send it, hand the result over
/// for its commit, repeat; wait for the oldest commit when [`WINDOW`]
/// results are waiting. Where the relay pipelines, the job after is taken
/// before a message is sent, when one is waiting, so that its transaction
/// opens with the message's content ([`Connection::send`]'s `then`).
///
/// [`Connection::send`]: super::transport::Connection::send
async fn work(
    relay: &Relay,
    signers: &[Signer],
    config: &Config,
    clock: Clock,
    job_queue: &tokio::sync::Mutex<mpsc::Receiver<Job>>,
    results: std::sync::mpsc::Sender<Done>,
    stop: &CancellationToken,
) {
    let mut connection = relay.connection();
    let mut uncommitted: VecDeque<oneshot::Receiver<()>> = VecDeque::new();
    // The job taken ahead, its message made.
    let mut next: Option<Ready> = None;
    loop {
        while uncommitted.len() >= WINDOW {
            if uncommitted.pop_front().expect("not empty").await.is_err() {
                return;
            }
        }
        let Ready { job, made } = match next.take() {
            Some(ready) => ready,
            None => {
                let job = tokio::select! {
                    biased;
                    _ = stop.cancelled() => None,
                    job = async { job_queue.lock().await.recv().await } => job,
                };
                let Some(job) = job else {
                    break;
                };
                ready(&mut connection, signers, config, clock, job).await
            }
        };
        let (attempt, bytes, unreachable) = match made {
            Err(outcome) => outcome,
            Ok((envelope, message)) => {
                let chains = connection.chains() && matches!(message, Outgoing::Data { .. });
                if chains && !stop.is_cancelled() {
                    // Only a job already waiting: none is waited for.
                    let waiting = job_queue
                        .try_lock()
                        .ok()
                        .and_then(|mut q| q.try_recv().ok());
                    if let Some(job) = waiting {
                        next = Some(ready(&mut connection, signers, config, clock, job).await);
                    }
                }
                let then = next
                    .as_ref()
                    .and_then(|ready| ready.made.as_ref().ok())
                    .map(|(envelope, message)| (envelope, message));
                match connection.send(&envelope, &message, then).await {
                    Ok(reply) => (Attempt::Sent { reply }, message.len(), false),
                    Err(error) => failed_attempt(config, clock, job.attempts(), error),
                }
            }
        };
        let (committed, done) = oneshot::channel();
        let result = Done {
            target: job.target(),
            attempt,
            bytes,
            unreachable,
            committed,
        };
        if results.send(result).is_err() || unreachable {
            break;
        }
        uncommitted.push_back(done);
    }
    // A job taken ahead and not sent stays due in the store, like those
    // still in the queue.
    connection.close().await;
    for done in uncommitted {
        let _ = done.await;
    }
}

/// A job with its message made, or what to record of it if it could not
/// be: the attempt, the bytes sent (none) and whether the relay is
/// unreachable.
struct Ready {
    job: Job,
    made: Result<(Envelope, Outgoing), (Attempt, usize, bool)>,
}

/// Makes `job`'s envelope and message for `connection`.
async fn ready(
    connection: &mut super::transport::Connection<'_>,
    signers: &[Signer],
    config: &Config,
    clock: Clock,
    job: Job,
) -> Ready {
    let smtp = connection.speaks_smtp();
    // A digest or a single message of 8-bit text goes quoted-printable
    // where the relay does not take 8-bit text; asking may connect, and
    // fail as a send would.
    let eight_bit = match &job {
        Job::Digest { .. } => connection.takes_8bit().await,
        Job::Message(due) if !due.message.message.is_ascii() => connection.takes_8bit().await,
        _ => Ok(true),
    };
    let eight_bit = match eight_bit {
        Ok(eight_bit) => eight_bit,
        Err(error) => {
            let outcome = failed_attempt(config, clock, job.attempts(), error);
            return Ready {
                job,
                made: Err(outcome),
            };
        }
    };
    let made = match &job {
        Job::Digest { delivery, prepared } => prepared.envelope(delivery).and_then(|envelope| {
            Ok((
                envelope,
                prepared.message(delivery, signers, smtp, eight_bit)?,
            ))
        }),
        Job::Post { delivery, prepared } => prepared
            .envelope(delivery)
            .and_then(|envelope| Ok((envelope, prepared.message(delivery, signers, smtp)?))),
        Job::Message(due) => super::message::single(&due.message, signers, eight_bit)
            .map(|(envelope, bytes)| (envelope, Outgoing::Bytes(bytes))),
    };
    let made = made.map_err(|error| {
        let reply = format!("{error:#}");
        (Attempt::Failed { reply }, 0, false)
    });
    Ready { job, made }
}

/// What to record of a send that did not get through.
fn failed_attempt(
    config: &Config,
    clock: Clock,
    attempts: u32,
    error: SendError,
) -> (Attempt, usize, bool) {
    match error {
        SendError::Permanent { reply } => (Attempt::Failed { reply }, 0, false),
        SendError::Transient { reply, unreachable } => {
            let next_attempt_at = clock.now().timestamp() + retry_delay(config, attempts);
            (
                Attempt::Deferred {
                    reply,
                    next_attempt_at,
                },
                0,
                unreachable,
            )
        }
    }
}

/// Seconds before the next try after `attempts` tries: the initial delay,
/// doubling, at most the configured maximum.
pub fn retry_delay(config: &Config, attempts: u32) -> i64 {
    let delivery = &config.delivery;
    let factor = 1i64 << attempts.min(30);
    delivery
        .retry_initial_seconds
        .saturating_mul(factor)
        .min(delivery.retry_max_seconds)
}

/// The store thread: keeps the job queue topped up with due deliveries and
/// commits results as they come, one transaction for all that arrived
/// together, acknowledging each once it is committed. Once `stop` is
/// cancelled it no longer waits for a store that refuses results.
#[expect(
    clippy::too_many_arguments,
    reason = "the run's parts, each used here; a struct would only carry them across"
)]
fn serve_store(
    store: Handle,
    config: &Config,
    secret: &Secret,
    inbox: &std::sync::mpsc::Receiver<Done>,
    jobs: mpsc::Sender<Job>,
    clock: Clock,
    sign: bool,
    stop: &CancellationToken,
) -> anyhow::Result<OutboxReport> {
    let mut report = OutboxReport::default();
    let refusals = Refusals::new(config);
    report.given_up = refusals
        .give_up(&store, clock.now().timestamp())
        .context("giving up old deliveries")?;
    let mut queue = Queue {
        messages: Page::default(),
        posts: Page::default(),
        page: Page::default(),
        prepared_posts: HashMap::new(),
        prepared: HashMap::new(),
        stopping: false,
        sign,
        held: None,
        jobs: Some(jobs),
    };
    let mut results = Vec::new();
    let mut synced = Instant::now();
    queue.top_up(&store, config, secret, clock, &mut results)?;
    record(
        &store,
        &mut report,
        &mut results,
        clock,
        true,
        &refusals,
        stop,
    )?;
    while let Ok(first) = inbox.recv() {
        let mut acks = Vec::new();
        let done = gather(inbox, first, config.delivery.connections);
        for Done {
            target,
            attempt,
            bytes,
            unreachable,
            committed,
        } in done
        {
            if let Attempt::Sent { .. } = attempt {
                report.bytes += bytes as u64;
            }
            if unreachable {
                queue.stopping = true;
                if let Attempt::Deferred { reply, .. } = &attempt {
                    report.unreachable.get_or_insert_with(|| reply.clone());
                }
            }
            results.push((target, attempt));
            acks.push(committed);
        }
        queue.top_up(&store, config, secret, clock, &mut results)?;
        let sync = synced.elapsed() >= SYNC_EVERY;
        record(
            &store,
            &mut report,
            &mut results,
            clock,
            sync,
            &refusals,
            stop,
        )?;
        if sync {
            synced = Instant::now();
        }
        for ack in acks {
            // A worker that went away needs no answer.
            let _ = ack.send(());
        }
    }
    store
        .blocking_checkpoint()
        .context("flushing delivery results")?;
    store
        .blocking_write(|tx| {
            digests::prune_bodies(tx)?;
            outgoing::prune_combined(tx)
        })
        .context("dropping delivered digest bodies")?;
    Ok(report)
}

/// The results that have come with `first`, and, when they are fewer than
/// one per connection, those that come within [`GATHER`] more: a commit of
/// many results costs little more than a commit of one. One wait, not one
/// per result, so the thread wakes once per commit.
fn gather(inbox: &std::sync::mpsc::Receiver<Done>, first: Done, connections: usize) -> Vec<Done> {
    let mut done = vec![first];
    done.extend(inbox.try_iter());
    if done.len() < connections {
        std::thread::sleep(GATHER);
        done.extend(inbox.try_iter());
    }
    done
}

/// Commits `results` (emptying it) and counts them in `report`; with
/// `sync` false, without waiting for the disk (see the module
/// documentation). A store that refuses them for the time being is asked
/// again until [`RECORD_PATIENCE`] has passed or `stop` is cancelled: the
/// server has accepted these messages, and a result lost is a message sent
/// twice.
fn record(
    store: &Handle,
    report: &mut OutboxReport,
    results: &mut Vec<(Target, Attempt)>,
    clock: Clock,
    sync: bool,
    refusals: &Refusals,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    if results.is_empty() {
        return Ok(());
    }
    let now = clock.now().timestamp();
    let batch = std::mem::take(results);
    let started = Instant::now();
    let mut warned = false;
    let recorded = loop {
        let attempts = batch.clone();
        let write = move |tx: &store::Transaction<'_>| {
            let (mut digests, mut posts, mut messages) = (Vec::new(), Vec::new(), Vec::new());
            for (target, attempt) in &attempts {
                match *target {
                    Target::Delivery(id) => digests.push((id, attempt.clone())),
                    Target::Post(id) => posts.push((id, attempt.clone())),
                    Target::Message(id) => messages.push((id, attempt.clone())),
                }
            }
            deliveries::record_attempts(tx, &digests, now)?;
            post_deliveries::record_attempts(tx, &posts, now)?;
            outgoing::record_attempts(tx, &messages, now)?;
            Ok::<_, store::Error>(attempts)
        };
        let written = if sync {
            store.blocking_write(write)
        } else {
            store.blocking_write_unsynced(write)
        };
        match written {
            Ok(recorded) => break recorded,
            Err(error)
                if error.is_temporary()
                    && started.elapsed() < RECORD_PATIENCE
                    && !stop.is_cancelled() =>
            {
                if !warned {
                    tracing::warn!(
                        results = batch.len(),
                        "delivery results not recorded yet, trying again: {error}"
                    );
                    warned = true;
                }
                std::thread::sleep(RECORD_RETRY);
            }
            Err(error) => return Err(error).context("recording delivery results"),
        }
    };
    let refused: Vec<(Target, String)> = recorded
        .iter()
        .filter_map(|(target, attempt)| match attempt {
            Attempt::Failed { reply } if crate::bounce::is_smtp_refusal(reply) => {
                Some((*target, reply.clone()))
            }
            _ => None,
        })
        .collect();
    if !refused.is_empty() {
        // Rare, and a count lost only delays a disable: its own transaction.
        if let Err(error) = refusals.record(store, refused, now) {
            tracing::warn!("5xx replies not counted as bounces: {error:#}");
        }
    }
    for (_, attempt) in recorded {
        match attempt {
            Attempt::Sent { .. } => report.sent += 1,
            Attempt::Deferred { .. } => report.deferred += 1,
            Attempt::Failed { .. } => report.failed += 1,
        }
    }
    Ok(())
}

/// What counting a 5xx reply or a give-up as a bounce needs on the store
/// thread: the configuration, and the templates and secret of the final
/// notice.
struct Refusals {
    config: Arc<Config>,
    notice: Option<Arc<(crate::templates::Templates, Secret)>>,
}

/// The service a final notice is composed with at `now`, when the notice's
/// templates and secret could be loaded.
fn notice_service<'a>(
    config: &'a Config,
    notice: Option<&'a (crate::templates::Templates, Secret)>,
    now: i64,
) -> Option<crate::subscribe::Service<'a>> {
    notice.map(|(templates, secret)| crate::subscribe::Service {
        config,
        templates,
        secret,
        now,
    })
}

impl Refusals {
    fn new(config: &Config) -> Self {
        let notice = crate::templates::Templates::load(&config.site.templates_dir)
            .and_then(|templates| Ok((templates, Secret::load_or_create(&config.site.data_dir)?)))
            .map_err(|error| tracing::warn!("no final notices from the outbox: {error:#}"))
            .ok()
            .map(Arc::new);
        Refusals {
            config: Arc::new(config.clone()),
            notice,
        }
    }

    /// Gives up what is too old to send at `now`, counting the recipients
    /// the relay deferred as bounces ([`super::give_up::give_up_old`]), in
    /// one transaction; returns how many were given up.
    fn give_up(&self, store: &Handle, now: i64) -> anyhow::Result<usize> {
        let (config, notice) = (self.config.clone(), self.notice.clone());
        store.blocking_write(move |tx| {
            let service = notice_service(&config, notice.as_deref(), now);
            super::give_up::give_up_old(tx, &config, service.as_ref(), now)
        })
    }

    /// Counts each refused delivery or message of a list as a bounce of
    /// its recipient ([`crate::bounce::record_smtp_refusal`]).
    fn record(
        &self,
        store: &Handle,
        refused: Vec<(Target, String)>,
        now: i64,
    ) -> anyhow::Result<()> {
        let (config, notice) = (self.config.clone(), self.notice.clone());
        store.blocking_write(move |tx| {
            let service = notice_service(&config, notice.as_deref(), now);
            for (target, reply) in &refused {
                let recipient = match *target {
                    Target::Delivery(id) => store::bounces::delivery_recipient(tx, id)?,
                    Target::Post(id) => store::bounces::post_delivery_recipient(tx, id)?,
                    Target::Message(id) => store::bounces::message_recipient(tx, id)?,
                };
                if let Some((list, address)) = recipient {
                    crate::bounce::record_smtp_refusal(
                        tx,
                        &config,
                        service.as_ref(),
                        &list,
                        &address,
                        reply,
                        now,
                    )?;
                }
            }
            Ok::<_, anyhow::Error>(())
        })
    }
}

/// Rows read a page at a time, by id.
struct Page<T> {
    rows: VecDeque<T>,
    /// The id of the last row read.
    after: i64,
    /// The last read found fewer rows than a page: none are left.
    exhausted: bool,
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Page {
            rows: VecDeque::new(),
            after: 0,
            exhausted: false,
        }
    }
}

impl<T> Page<T> {
    /// The next row, reading a page with `read(after)` when none is left
    /// in memory; `id` tells a row's id.
    fn next(
        &mut self,
        size: usize,
        id: impl Fn(&T) -> i64,
        read: impl FnOnce(i64) -> anyhow::Result<Vec<T>>,
    ) -> anyhow::Result<Option<T>> {
        if self.rows.is_empty() && !self.exhausted {
            let rows = read(self.after)?;
            self.exhausted = rows.len() < size;
            if let Some(last) = rows.last() {
                self.after = id(last);
            }
            self.rows.extend(rows);
        }
        Ok(self.rows.pop_front())
    }
}

/// The deliveries and messages still to hand out in this run.
struct Queue {
    messages: Page<DueMessage>,
    /// Post deliveries.
    posts: Page<DueDelivery>,
    /// Digest deliveries.
    page: Page<DueDelivery>,
    /// By post id.
    prepared_posts: HashMap<i64, Arc<PreparedPost>>,
    prepared: HashMap<(i64, DigestMode), Arc<Prepared>>,
    /// The relay is unreachable: hand out nothing more.
    stopping: bool,
    sign: bool,
    /// A job the full job queue did not take yet.
    held: Option<Job>,
    /// The job queue; dropped (closing it) once nothing is left.
    jobs: Option<mpsc::Sender<Job>>,
}

impl Queue {
    /// Fills the job queue; closes it when no delivery is left.
    fn top_up(
        &mut self,
        store: &Handle,
        config: &Config,
        secret: &Secret,
        clock: Clock,
        results: &mut Vec<(Target, Attempt)>,
    ) -> anyhow::Result<()> {
        while self.jobs.is_some() {
            let job = match self.held.take() {
                Some(job) => Some(job),
                None => self.next(store, config, secret, clock, results)?,
            };
            let Some(job) = job else {
                self.jobs = None;
                break;
            };
            let sender = self.jobs.as_ref().expect("checked above");
            match sender.try_send(job) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(job)) => {
                    self.held = Some(job);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.jobs = None;
                }
            }
        }
        Ok(())
    }

    /// The next delivery to send. Deliveries that cannot be sent at all
    /// (their list is gone) are failed into `results` on the way.
    fn next(
        &mut self,
        store: &Handle,
        config: &Config,
        secret: &Secret,
        clock: Clock,
        results: &mut Vec<(Target, Attempt)>,
    ) -> anyhow::Result<Option<Job>> {
        loop {
            if self.stopping {
                return Ok(None);
            }
            let now = clock.now().timestamp();
            let message = self.messages.next(
                MESSAGE_PAGE,
                |m| m.id,
                |after| {
                    store
                        .blocking_read(move |db| outgoing::due(db, now, after, MESSAGE_PAGE))
                        .context("reading due messages")
                },
            )?;
            if let Some(message) = message {
                return Ok(Some(Job::Message(message)));
            }
            let post = self.posts.next(
                PAGE,
                |d| d.id,
                |after| {
                    store
                        .blocking_read(move |db| post_deliveries::due(db, now, after, PAGE))
                        .context("reading due post deliveries")
                },
            )?;
            if let Some(mut delivery) = post {
                delivery.token = secret.sign(Purpose::Unsubscribe, delivery.subscriber_id, None);
                let post_id = delivery.digest_id;
                let prepared = match self.prepared_posts.get(&post_id) {
                    Some(prepared) => Some(Arc::clone(prepared)),
                    None => {
                        let prepared =
                            prepare_post(store, config, &delivery, self.sign)?.map(Arc::new);
                        if let Some(prepared) = &prepared {
                            self.prepared_posts.insert(post_id, Arc::clone(prepared));
                        }
                        prepared
                    }
                };
                match prepared {
                    Some(prepared) => return Ok(Some(Job::Post { delivery, prepared })),
                    None => results.push((
                        Target::Post(delivery.id),
                        Attempt::Failed {
                            reply: format!(
                                "list {} is no longer configured or post {post_id} has no raw message",
                                delivery.list_code
                            ),
                        },
                    )),
                }
                continue;
            }
            let delivery = self.page.next(
                PAGE,
                |d| d.id,
                |after| {
                    store
                        .blocking_read(move |db| deliveries::due(db, now, after, PAGE))
                        .context("reading due deliveries")
                },
            )?;
            let Some(mut delivery) = delivery else {
                return Ok(None);
            };
            delivery.token = secret.sign(Purpose::Unsubscribe, delivery.subscriber_id, None);
            let key = (delivery.digest_id, delivery.mode);
            let prepared = match self.prepared.get(&key) {
                Some(prepared) => Some(Arc::clone(prepared)),
                None => {
                    let prepared = prepare(store, config, &delivery, self.sign)?.map(Arc::new);
                    if let Some(prepared) = &prepared {
                        self.prepared.insert(key, Arc::clone(prepared));
                    }
                    prepared
                }
            };
            match prepared {
                Some(prepared) => return Ok(Some(Job::Digest { delivery, prepared })),
                None => results.push((
                    Target::Delivery(delivery.id),
                    Attempt::Failed {
                        reply: format!(
                            "list {} is no longer configured or the digest body is gone",
                            delivery.list_code
                        ),
                    },
                )),
            }
        }
    }
}

fn prepare(
    store: &Handle,
    config: &Config,
    delivery: &DueDelivery,
    sign: bool,
) -> anyhow::Result<Option<Prepared>> {
    let Some(list) = config.list(&delivery.list_code) else {
        return Ok(None);
    };
    let (digest_id, mode) = (delivery.digest_id, delivery.mode);
    let found = store.blocking_read(move |db| {
        let Some(digest) = digests::get(db, digest_id)? else {
            return Ok::<_, store::Error>(None);
        };
        Ok(digests::body(db, digest_id, mode)?.map(|body| (digest, body)))
    })?;
    let Some((digest, (subject, entity))) = found else {
        return Ok(None);
    };
    Ok(Some(Prepared::new(
        config,
        list,
        &digest,
        delivery.mode,
        &subject,
        entity,
        sign,
    )))
}

/// What the deliveries of one post share, or `None` when its list is no
/// longer configured or its raw message is gone.
fn prepare_post(
    store: &Handle,
    config: &Config,
    delivery: &DueDelivery,
    sign: bool,
) -> anyhow::Result<Option<PreparedPost>> {
    let Some(list) = config.list(&delivery.list_code) else {
        return Ok(None);
    };
    let post_id = delivery.digest_id;
    let raw = store
        .blocking_read(move |db| posts::raw(db, post_id))
        .context("reading a post's raw message")?;
    Ok(raw.map(|raw| PreparedPost::new(config, list, post_id, &raw, sign)))
}
