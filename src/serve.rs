//! `tidings serve`: the daemon. One process takes mail over LMTP and SMTP,
//! commits it in groups, keeps the feeds fresh and serves them over HTTP,
//! and (with the digest scheduler) sends every list's digest on time.
//!
//! Signals: SIGTERM and SIGINT stop the listeners, let open transactions and
//! the current commit finish, and exit 0 within [`SHUTDOWN_GRACE`]; SIGHUP
//! reloads lists.toml, and a broken file is reported while the running
//! configuration stays.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};
use crate::deliver;
use crate::descriptors;
use crate::feeds;
use crate::health::{self, Health};
use crate::ingest::committer::Committer;
use crate::ingest::intake::{Received, StoreIntake};
use crate::ingest::listener::{self, Limits, Protocol};
use crate::ingest::Outcome;
use crate::memory;
use crate::metrics::Metrics;
use crate::post::Status;
use crate::store::{self, deliveries, Handle};
use crate::templates::Templates;
use crate::tokens::Secret;
use crate::web;

/// How long open sessions may take to finish after SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Feeds are rebuilt this long after the last post of a burst...
const FEED_DEBOUNCE: Duration = Duration::from_secs(1);
/// ...and at least this often, whatever happens.
const FEED_INTERVAL: Duration = Duration::from_secs(300);
/// The most a rebuild waits for the rest of a burst, however long the last
/// one took.
const FEED_DEBOUNCE_MAX: Duration = Duration::from_secs(10);

/// How long a rebuild lets a burst gather after a post woke it: the
/// debounce, or twice what the last rebuild took if that is longer, so that
/// under a steady stream the feeds and pages (which list the day's posts,
/// however many) take at most a third of a core from the mail they follow.
fn gather_for(last_rebuild: Duration) -> Duration {
    (last_rebuild * 2).clamp(FEED_DEBOUNCE, FEED_DEBOUNCE_MAX)
}

/// How often held posts past `hold_days` are refused (and at start): a
/// post expires within this long of its day.
const EXPIRY_TICK: Duration = Duration::from_secs(3_600);

/// How often the scheduler looks for digests that are due (by schedule or
/// by size) and for deliveries whose retry time has come. A digest thus
/// goes out within this long of its cron slot.
const DIGEST_TICK: Duration = Duration::from_secs(20);

/// Reader connections of the daemon's store: the feed refresher, the
/// scheduler and the web side read side by side.
const STORE_READERS: usize = 3;

/// Listener addresses given on the command line, over lists.toml.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub lmtp: Option<SocketAddr>,
    pub smtp: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(
    config_path: Option<PathBuf>,
    config: Config,
    overrides: Overrides,
) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tidings")
        .build()
        .context("starting the runtime")?
        .block_on(serve(config_path, config, overrides))
}

async fn serve(
    config_path: Option<PathBuf>,
    config: Config,
    overrides: Overrides,
) -> anyhow::Result<()> {
    let data_dir = &config.site.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let feeds_dir = &config.site.feeds_dir;
    crate::files::create_dirs(feeds_dir, config.site.dir_mode())
        .with_context(|| format!("creating {}", feeds_dir.display()))?;
    let database = config.database_path();
    let store = {
        let path = database.clone();
        tokio::task::spawn_blocking(move || Handle::open(&path, STORE_READERS))
            .await
            .context("opening the store")?
            .with_context(|| format!("opening the store {}", database.display()))?
    };
    let templates =
        Arc::new(Templates::load(&config.site.templates_dir).context("loading the templates")?);
    // A broken template of the operator's stops the start, not a page later.
    templates.compile_all().context("loading the templates")?;
    let secret = Arc::new(Secret::load_or_create(&config.site.data_dir)?);
    let metrics = Arc::new(Metrics::default());
    let posts_changed = Arc::new(Notify::new());
    let outbox_wakeup = Arc::new(Notify::new());

    let committer = {
        let (posts_changed, outbox_wakeup) = (posts_changed.clone(), outbox_wakeup.clone());
        Committer::new(
            store.clone(),
            templates.clone(),
            secret.clone(),
            move |post, outcome| {
                if post.status == Status::Published && matches!(outcome, Outcome::Stored { .. }) {
                    posts_changed.notify_one();
                    // Its deliveries to the post subscribers were queued with it.
                    outbox_wakeup.notify_one();
                }
                if matches!(outcome, Outcome::Held { .. }) {
                    // Its moderators' notices were queued with it.
                    outbox_wakeup.notify_one();
                }
            },
        )
    };

    // Descriptors first: HTTP's share is what the limit leaves after mail's.
    let limit = descriptors::raise_limit();
    let budget = descriptors::Budget::new(&config, limit);
    if budget.lowers(&config) {
        tracing::warn!(
            limit,
            reserve = budget.reserve,
            http_connections = budget.http_connections,
            configured = config.listen.http_max_connections,
            "the open-files limit leaves room for fewer HTTP connections than http_max_connections"
        );
    }

    let lmtp = bind(overrides.lmtp.unwrap_or(config.listen.lmtp), "LMTP").await?;
    let smtp = bind(overrides.smtp.unwrap_or(config.listen.smtp), "SMTP").await?;
    let http = bind(overrides.http.unwrap_or(config.listen.http), "HTTP").await?;
    let nntp = match config.listen.nntp {
        Some(address) => Some(bind(address, "NNTP").await?),
        None => None,
    };
    // A certificate that cannot be read stops the start, not a client later.
    let nntp_tls = match (
        &config.listen.nntp_tls_certificate,
        &config.listen.nntp_tls_key,
    ) {
        (Some(certificate), Some(key)) if nntp.is_some() => {
            Some(crate::nntp::listener::acceptor(certificate, key)?)
        }
        _ => None,
    };
    let mut addresses = serde_json::json!({
        "lmtp": lmtp.local_addr()?.to_string(),
        "smtp": smtp.local_addr()?.to_string(),
        "http": http.local_addr()?.to_string(),
        "pid": std::process::id(),
    });
    if let Some(nntp) = &nntp {
        addresses["nntp"] = nntp.local_addr()?.to_string().into();
    }
    let serve_json = config.site.data_dir.join("serve.json");
    crate::files::replace(&serve_json, addresses.to_string().as_bytes())
        .with_context(|| format!("writing {}", serve_json.display()))?;
    tracing::info!(
        lmtp = %lmtp.local_addr()?,
        smtp = %smtp.local_addr()?,
        http = %http.local_addr()?,
        config = %config.source,
        lists = config.lists.len(),
        open_files_limit = limit,
        http_connections = budget.http_connections,
        "tidings serving"
    );
    let health = Arc::new(Health {
        listeners: vec![
            Arc::new(health::Listener::new("lmtp", lmtp.local_addr()?, true)),
            Arc::new(health::Listener::new("smtp", smtp.local_addr()?, true)),
            Arc::new(health::Listener::new("http", http.local_addr()?, false)),
        ],
    });
    let mut health = health;
    if let Some(nntp) = &nntp {
        tracing::info!(nntp = %nntp.local_addr()?, starttls = nntp_tls.is_some(), "serving newsgroups");
        Arc::get_mut(&mut health)
            .expect("the health record is not shared yet")
            .listeners
            .push(Arc::new(health::Listener::new(
                "nntp",
                nntp.local_addr()?,
                true,
            )));
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }

    let limits = Limits::from(&config.listen);
    let deadlines = web::connections::Deadlines::from(&config.listen);
    let feeds_dir = config.site.feeds_dir.clone();
    let (config_tx, config_rx) = watch::channel(Arc::new(config));
    let shutdown = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();

    for (listener, protocol, state) in [
        (lmtp, Protocol::Lmtp, health.listeners[0].clone()),
        (smtp, Protocol::Smtp, health.listeners[1].clone()),
    ] {
        let metrics = metrics.clone();
        let context = Arc::new(listener::Context {
            protocol,
            config: config_rx.clone(),
            limits: limits.clone(),
            intake: StoreIntake::new(
                committer.clone(),
                store.clone(),
                templates.clone(),
                secret.clone(),
                outbox_wakeup.clone(),
                posts_changed.clone(),
                metrics.clone(),
                move |received: &Received| log_message(&metrics, received),
            ),
            stress: Arc::default(),
        });
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            listener::run_reporting(listener, context, &state, shutdown).await;
        });
    }
    if let Some(nntp) = nntp {
        let context = Arc::new(crate::nntp::listener::Context {
            config: config_rx.clone(),
            store: store.clone(),
            limits: limits.clone(),
            tls: nntp_tls,
            clock: crate::clock::Clock::System,
        });
        let state = health.listeners[3].clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            crate::nntp::listener::run(nntp, context, &state, shutdown).await;
        });
    }
    let web = Arc::new(web::Web {
        feeds_dir,
        metrics: metrics.clone(),
        store: store.clone(),
        config: config_rx.clone(),
        templates: templates.clone(),
        secret: secret.clone(),
        outbox: outbox_wakeup.clone(),
        health: health.clone(),
    });
    tasks.spawn(web::connections::serve(
        http,
        web::router(web),
        budget,
        deadlines,
        health.listeners[2].clone(),
        shutdown.clone(),
    ));
    tasks.spawn(refresh_feeds(
        store.clone(),
        config_rx.clone(),
        templates.clone(),
        posts_changed,
        metrics.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(expire_held(
        store.clone(),
        config_rx.clone(),
        templates.clone(),
        secret.clone(),
        outbox_wakeup.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(give_back_memory(shutdown.clone()));
    tasks.spawn(send_digests(
        store,
        templates.clone(),
        outbox_wakeup,
        config_rx.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));

    wait_for_signals(config_path, &config_tx).await;
    tracing::info!("shutting down: no new connections, open transactions may finish");
    shutdown.cancel();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "sessions still open after {:?}; closing them",
            SHUTDOWN_GRACE
        );
        tasks.abort_all();
    }
    // The listeners and tasks are done: the store threads stop once the
    // last handle is dropped, after their queued work.
    drop(tasks);
    tracing::info!("stopped");
    Ok(())
}

async fn bind(address: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen for {what} on {address}"))
}

/// Waits for SIGTERM or SIGINT; reloads the configuration on SIGHUP.
async fn wait_for_signals(config_path: Option<PathBuf>, config: &watch::Sender<Arc<Config>>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut hangup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    loop {
        tokio::select! {
            _ = terminate.recv() => return,
            _ = interrupt.recv() => return,
            _ = hangup.recv() => match config::load(config_path.as_deref()) {
                Ok(new) => {
                    tracing::info!(config = %new.source, lists = new.lists.len(), "configuration reloaded");
                    config.send_replace(Arc::new(new));
                }
                Err(error) => tracing::error!("configuration not reloaded, the running one stays:\n{error:#}"),
            },
        }
    }
}

fn log_message(metrics: &Metrics, received: &Received) {
    let list = received.list.as_deref();
    let message_id = received.message_id.as_deref().unwrap_or("-");
    match &received.outcome {
        Ok(outcome) => {
            metrics.count_post(list, outcome.label());
            if matches!(outcome, Outcome::Rejected { reason, .. } if reason.starts_with(crate::moderation::LOOP))
            {
                metrics.count_loop("posting");
            }
            let detail = match outcome {
                Outcome::Held { reason, .. } | Outcome::Rejected { reason, .. } => reason.as_str(),
                _ => "",
            };
            tracing::info!(
                protocol = ?received.protocol,
                message_id,
                list = list.unwrap_or("-"),
                outcome = outcome.label(),
                detail,
                "message received"
            );
        }
        Err(error) => {
            metrics.count_commit_failure();
            tracing::warn!(protocol = ?received.protocol, message_id, %error, "message deferred");
        }
    }
}

/// Rebuilds the feeds and then the archive's pages shortly after a burst
/// of posts, and every few minutes.
async fn refresh_feeds(
    store: Handle,
    config: watch::Receiver<Arc<Config>>,
    templates: Arc<Templates>,
    posts_changed: Arc<Notify>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut first = true;
    // What the last rebuild took (not the first, which may make every page).
    let mut last_rebuild = Duration::ZERO;
    loop {
        if !first {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = posts_changed.notified() => {
                    // Let the rest of the burst arrive: one rebuild for all of it.
                    tokio::time::sleep(gather_for(last_rebuild)).await;
                }
                _ = tokio::time::sleep(FEED_INTERVAL) => {}
            }
        }
        let measured = !first;
        first = false;
        let current = config.borrow().clone();
        let started = Instant::now();
        let feeds_config = current.clone();
        let report = store
            .read(move |db| feeds::regenerate_after_ingest(&feeds_config, db))
            .await;
        match report {
            Ok(report) => {
                metrics
                    .count_feed_build(started.elapsed().as_micros() as u64, report.written.len());
                if !report.written.is_empty() {
                    tracing::info!(files = report.written.len(), "feeds updated");
                }
            }
            Err(error) => tracing::error!("feeds not updated: {error:#}"),
        }
        if let Err(error) = refresh_site(&store, current, templates.clone()).await {
            tracing::error!("archive pages not updated: {error:#}");
        }
        if measured {
            last_rebuild = started.elapsed();
        }
    }
}

/// Makes the pages the posts changed since the last time touch (every page
/// when the configuration or the templates changed), then takes those
/// changes out of the store's list.
async fn refresh_site(
    store: &Handle,
    config: Arc<Config>,
    templates: Arc<Templates>,
) -> anyhow::Result<()> {
    /// Changes taken at a time: a long import is built in steps.
    const BATCH: usize = 2_000;
    loop {
        let started = Instant::now();
        let (config, templates) = (config.clone(), templates.clone());
        let (changes, report) = store
            .read(move |db| -> anyhow::Result<_> {
                let dir = config.site.site_dir.clone();
                // A full build makes every change's pages: take them all.
                let stale = crate::site::is_stale(&config, &templates, &dir);
                let changes = store::archive::changes(db, if stale { usize::MAX } else { BATCH })?;
                let now = crate::clock::now().timestamp();
                let scope = crate::site::Scope::Changed(&changes);
                let report = crate::site::build(&config, &templates, db, &dir, scope, now)?;
                Ok((changes, report))
            })
            .await?;
        let taken = changes.len();
        store
            .write(move |tx| store::archive::changes_done(tx, &changes))
            .await?;
        if report.written > 0 || report.removed > 0 {
            tracing::info!(
                full = report.full,
                pages = report.pages,
                written = report.written,
                removed = report.removed,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "archive pages updated"
            );
        }
        if report.full || taken < BATCH {
            return Ok(());
        }
    }
}

/// Every [`memory::EVERY`], gives the system back what the daemon freed
/// (glibc keeps it otherwise: a connection's page cache, a rebuild's
/// pages), so an idle daemon is as small as what it holds.
async fn give_back_memory(shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(memory::EVERY) => {}
        }
        let _ = tokio::task::spawn_blocking(memory::give_back).await;
    }
}

/// Refuses the held posts no moderator decided within `hold_days`, at
/// start and every [`EXPIRY_TICK`], telling each sender as `tidings
/// moderate expire` does; wakes the outbox to send what that queued.
async fn expire_held(
    store: Handle,
    config: watch::Receiver<Arc<Config>>,
    templates: Arc<Templates>,
    secret: Arc<Secret>,
    outbox: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        let (current, templates, secret) =
            (config.borrow().clone(), templates.clone(), secret.clone());
        let expired = store
            .write(move |tx| {
                let service = crate::subscribe::Service {
                    config: &current,
                    templates: &templates,
                    secret: &secret,
                    now: crate::clock::unix_now(),
                };
                crate::moderation::expire(tx, &service)
            })
            .await;
        match expired {
            Ok(0) => {}
            Ok(expired) => {
                tracing::info!(expired, "held posts expired");
                outbox.notify_one();
            }
            Err(error) => tracing::error!("held posts not expired: {error:#}"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EXPIRY_TICK) => {}
        }
    }
}

/// The digest scheduler: at start (a digest that fell due while the daemon
/// was down goes out once, not once per missed slot: the trigger compares
/// the latest slot with the last one served), every [`DIGEST_TICK`] and
/// whenever `wakeup` says a message was queued, issues the digests that are
/// due and runs the outbox, which also retries deferred deliveries whose
/// time has come.
async fn send_digests(
    store: Handle,
    templates: Arc<Templates>,
    wakeup: Arc<Notify>,
    config: watch::Receiver<Arc<Config>>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        let config = config.borrow().clone();
        // Composing a digest is CPU work and its store calls block: both
        // stay off the runtime's workers.
        // The templates the daemon started with, as every page, feed and
        // notice uses: loading them again for every post that wakes this
        // loop cost more than issuing.
        let issuing = {
            let (config, store, templates) = (config.clone(), store.clone(), templates.clone());
            tokio::task::spawn_blocking(move || {
                deliver::issue_due_digests(
                    &config,
                    &store,
                    &templates,
                    crate::clock::now(),
                    &deliver::Selection::default(),
                )
            })
        };
        match issuing.await {
            Ok(Ok(issued)) => {
                for issue in &issued {
                    if let deliver::Issue::Combined(queued) = issue {
                        tracing::info!(
                            lists = %queued.lists.join(","),
                            posts = queued.posts,
                            "digest across lists queued"
                        );
                    }
                    if let deliver::Issue::Issued(digest) = issue {
                        metrics.count_digest(&digest.record.list_code);
                        tracing::info!(
                            list = %digest.record.list_code,
                            volume = digest.record.volume,
                            issue = digest.record.issue,
                            posts = digest.posts,
                            subscribers = digest.queued,
                            "digest issued"
                        );
                    }
                }
            }
            Ok(Err(error)) => tracing::error!("digests not issued: {error:#}"),
            Err(error) => tracing::error!(%error, "digest task failed"),
        }
        // What is queued goes out whatever issuing did: a digest that
        // cannot be made holds up no other mail.
        deliver_queued(&config, &store, &metrics, &shutdown).await;
        match store.read(|db| deliveries::summary(db, 0)).await {
            Ok(summary) => metrics.set_outbox_depth(summary.waiting(None)),
            Err(error) => tracing::warn!(%error, "outbox depth not read"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(DIGEST_TICK) => {}
            _ = wakeup.notified() => {}
        }
    }
}

/// Runs the outbox once, unless a `tidings digest` run holds it.
async fn deliver_queued(
    config: &Arc<Config>,
    store: &Handle,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) {
    let lock = match deliver::OutboxLock::try_acquire(&config.site.data_dir) {
        Ok(Some(lock)) => lock,
        Ok(None) => return,
        Err(error) => {
            tracing::error!("outbox not run: {error:#}");
            return;
        }
    };
    if shutdown.is_cancelled() {
        return;
    }
    let run = {
        let (config, store, shutdown) = (config.clone(), store.clone(), shutdown.clone());
        tokio::task::spawn_blocking(move || {
            deliver::run_outbox_here(config, store, deliver::Clock::System, shutdown)
        })
    };
    let result = run
        .await
        .unwrap_or_else(|error| Err(anyhow::anyhow!("the outbox run failed: {error}")));
    drop(lock);
    match result {
        Ok(report) => {
            metrics.count_deliveries(report.sent as u64, (report.failed + report.given_up) as u64);
            if report.sent + report.deferred + report.failed > 0 {
                tracing::info!(
                    sent = report.sent,
                    deferred = report.deferred,
                    failed = report.failed,
                    seconds = report.seconds,
                    "outbox run"
                );
            }
        }
        Err(error) => tracing::error!("outbox run failed: {error:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A quick rebuild lets a burst gather for the debounce, a slow one for
    /// twice what it took, within the bound.
    #[test]
    fn a_burst_gathers_for_twice_the_last_rebuild_within_bounds() {
        assert_eq!(gather_for(Duration::ZERO), FEED_DEBOUNCE);
        assert_eq!(gather_for(Duration::from_millis(300)), FEED_DEBOUNCE);
        assert_eq!(gather_for(Duration::from_secs(2)), Duration::from_secs(4));
        assert_eq!(gather_for(Duration::from_secs(60)), FEED_DEBOUNCE_MAX);
    }
}
