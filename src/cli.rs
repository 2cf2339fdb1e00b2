//! Command-line interface: clap types, then one function per command.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Config, ConfigErrors};
use crate::feeds;
use crate::ingest::{self, Envelope};
use crate::store::{Post, PostFilter, Status, Store};

/// tidings: a multilingual mailing-list digest and syndication daemon.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// The configuration file (default: ./lists.toml, else the embedded sample).
    #[arg(long, global = true, env = "TIDINGS_CONFIG")]
    pub config: Option<PathBuf>,

    /// Log lines for people (human) or for log collectors (json).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: LMTP and SMTP listeners, the scheduler and the HTTP side.
    Serve {
        /// LMTP listener address, over lists.toml (port 0 picks a free port).
        #[arg(long)]
        lmtp_listen: Option<std::net::SocketAddr>,
        /// SMTP listener address, over lists.toml.
        #[arg(long)]
        smtp_listen: Option<std::net::SocketAddr>,
        /// HTTP listener address, over lists.toml.
        #[arg(long)]
        http_listen: Option<std::net::SocketAddr>,
    },
    /// Check the configuration and print every problem with file:line:column.
    Check,
    /// Show each list: posts, subscribers, the next digest time, the outbox depth.
    Status,
    /// Store one message read on stdin, as an MTA pipe delivers it.
    ///
    /// Exits 0 once stored or held, 65 when the message must bounce, 75 when
    /// the MTA should retry later.
    Ingest {
        /// File the post under this list code when its subject has no tag.
        #[arg(long)]
        list: Option<String>,
        /// Envelope recipient(s); defaults to $ORIGINAL_RECIPIENT.
        recipients: Vec<String>,
    },
    /// Import mbox files, Maildir folders and message files.
    Import {
        /// File untagged posts sent to no list address under this list code
        /// (for importing one list's archive).
        #[arg(long)]
        list: Option<String>,
        /// Files or folders to import.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Write the RSS, Atom, RDF and JSON feeds of every list and of all
    /// lists now, and print the files that changed.
    Feeds {
        /// Rebuild only the feeds whose posts changed, and leave the work to a
        /// rebuild already under way: what `ingest` starts after a post.
        #[arg(long, hide = true)]
        after_ingest: bool,
    },
    /// Issue the digests that are due and deliver everything queued.
    ///
    /// A list's digest is due at each slot of its digest_schedule, or early
    /// once its pending text passes digest_size_threshold; `--now` issues
    /// one now. Deliveries queued or deferred earlier go out too.
    Digest {
        /// Only this list.
        #[arg(long)]
        list: Option<String>,
        /// Issue now, whatever the schedule says (still none without posts
        /// unless the list sets digest_send_empty).
        #[arg(long)]
        now: bool,
        /// Print the digests that would be issued, one message per format,
        /// as an mbox on stdout, and record nothing.
        #[arg(long)]
        dry_run: bool,
        /// Issue the digests but leave their delivery to a later run.
        #[arg(long)]
        no_deliver: bool,
        /// Take this time (RFC 3339) as now, for numbering and schedules.
        #[arg(long, hide = true)]
        at: Option<String>,
    },
    /// Show the outbox: deliveries per list and state, the oldest deferred,
    /// the last errors.
    Queue {
        #[command(subcommand)]
        action: Option<QueueCommand>,
    },
    /// Add, remove or list digest subscribers (for administrators: no
    /// confirmation is asked of the subscriber).
    Subscribers {
        #[command(subcommand)]
        action: SubscribersCommand,
    },
    /// List stored posts, or show one.
    Posts {
        #[command(subcommand)]
        show: Option<PostsCommand>,
        /// Only posts of this list.
        #[arg(long)]
        list: Option<String>,
        /// Only posts with this status.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Only the newest N.
        #[arg(long)]
        limit: Option<usize>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PostsCommand {
    /// Show one post, or its original bytes.
    Show {
        id: i64,
        /// Print the message exactly as it was received.
        #[arg(long)]
        raw: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Make every deferred delivery due now and deliver.
    Retry {
        /// Take this time (RFC 3339) as now.
        #[arg(long, hide = true)]
        at: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SubscribersCommand {
    /// Subscribe addresses to a list's digests (or change their format).
    Add {
        #[arg(long)]
        list: String,
        /// The digest format.
        #[arg(long, value_enum, default_value_t = ModeArg::Mime)]
        mode: ModeArg,
        /// Addresses; `-` reads one per line from stdin.
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Unsubscribe addresses; their pending deliveries are dropped.
    Remove {
        #[arg(long)]
        list: String,
        /// Addresses; `-` reads one per line from stdin.
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// List subscribers: list, address, format.
    List {
        /// Only this list.
        #[arg(long)]
        list: Option<String>,
    },
}

/// A digest format on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// RFC 2046 MIME digest.
    Mime,
    /// RFC 1153 plain text.
    Plain,
    /// HTML with a plain-text alternative.
    Html,
    /// Table of contents with first lines and links.
    Summary,
}

impl From<ModeArg> for crate::store::subscribers::DigestMode {
    fn from(mode: ModeArg) -> Self {
        use crate::store::subscribers::DigestMode;
        match mode {
            ModeArg::Mime => DigestMode::Mime,
            ModeArg::Plain => DigestMode::Plain,
            ModeArg::Html => DigestMode::Html,
            ModeArg::Summary => DigestMode::Summary,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Published,
    Held,
    Rejected,
}

impl From<StatusArg> for Status {
    fn from(status: StatusArg) -> Status {
        match status {
            StatusArg::Published => Status::Published,
            StatusArg::Held => Status::Held,
            StatusArg::Rejected => Status::Rejected,
        }
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let config_path = config::locate(cli.config.as_deref());
    match cli.command {
        Command::Serve {
            lmtp_listen,
            smtp_listen,
            http_listen,
        } => {
            let overrides = crate::serve::Overrides {
                lmtp: lmtp_listen,
                smtp: smtp_listen,
                http: http_listen,
            };
            let result = config::load(config_path.as_deref())
                .and_then(|config| crate::serve::run(config_path, config, overrides));
            report(result)
        }
        Command::Ingest { list, recipients } => ingest(config_path, list, recipients),
        Command::Check => check(config_path),
        command => match config::load(config_path.as_deref()) {
            Ok(config) => report(dispatch(&config, command)),
            Err(error) => report(Err(error)),
        },
    }
}

fn dispatch(config: &Config, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Import { list, paths } => import(config, list, &paths),
        Command::Feeds {
            after_ingest: false,
        } => write_feeds(config),
        Command::Feeds { after_ingest: true } => {
            let store = open_store(config)?;
            feeds::regenerate_after_ingest(config, &store).map(drop)
        }
        Command::Posts {
            show: Some(PostsCommand::Show { id, raw }),
            ..
        } => show_post(config, id, raw),
        Command::Posts {
            show: None,
            list,
            status,
            limit,
            json,
        } => list_posts(
            config,
            &PostFilter {
                list_code: list,
                status: status.map(Status::from),
                limit,
            },
            json,
        ),
        Command::Digest {
            list,
            now,
            dry_run,
            no_deliver,
            at,
        } => send_digests(config, list, now, dry_run, no_deliver, at.as_deref()),
        Command::Queue { action: None } => show_queue(config),
        Command::Queue {
            action: Some(QueueCommand::Retry { at }),
        } => retry_queue(config, at.as_deref()),
        Command::Subscribers { action } => subscribers(config, action),
        Command::Status => status(config),
        Command::Check | Command::Ingest { .. } | Command::Serve { .. } => {
            unreachable!("handled in run")
        }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if let Some(errors) = error.downcast_ref::<ConfigErrors>() {
                eprintln!("{errors}");
            } else {
                eprintln!("error: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn check(path: Option<PathBuf>) -> ExitCode {
    match config::load(path.as_deref()) {
        Ok(config) => {
            println!(
                "{}: ok, {} lists ({})",
                config.source,
                config.lists.len(),
                config
                    .lists
                    .iter()
                    .map(|l| l.code.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            match error.downcast_ref::<ConfigErrors>() {
                Some(errors) => {
                    eprintln!("{errors}");
                    eprintln!("{} problem(s) found", errors.0.len());
                }
                None => eprintln!("error: {error:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

fn ingest(path: Option<PathBuf>, list: Option<String>, mut recipients: Vec<String>) -> ExitCode {
    // A broken configuration is the operator's fault, not the sender's:
    // the MTA keeps the message and retries.
    let config = match config::load(path.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("tidings: configuration: {error:#}");
            return ExitCode::from(ingest::pipe::EX_TEMPFAIL);
        }
    };
    if recipients.is_empty() {
        if let Ok(recipient) = std::env::var("ORIGINAL_RECIPIENT") {
            recipients.push(recipient);
        }
    }
    let envelope = Envelope {
        list_code: list,
        recipients,
    };
    let delivery = ingest::pipe::deliver(&config, &envelope, std::io::stdin().lock());
    if delivery.published {
        start_feed_refresh(path.as_deref());
    }
    if delivery.exit_code == 0 {
        tracing::info!("{}", delivery.message);
    } else {
        // Postfix quotes this line in the bounce or the deferral reason.
        eprintln!("{}", delivery.message);
    }
    ExitCode::from(delivery.exit_code)
}

fn open_store(config: &Config) -> anyhow::Result<Store> {
    let path = config.database_path();
    Store::open(&path).with_context(|| format!("opening the store {}", path.display()))
}

fn import(config: &Config, list: Option<String>, paths: &[PathBuf]) -> anyhow::Result<()> {
    if let Some(code) = &list {
        if config.list(code).is_none() {
            anyhow::bail!("no list has the code `{code}` in {}", config.source);
        }
    }
    let mut store = open_store(config)?;
    let started = Instant::now();
    let envelope = Envelope {
        list_code: list,
        recipients: Vec::new(),
    };
    let summary = ingest::import::import(
        config,
        &mut store,
        &envelope,
        paths,
        std::io::stderr().is_terminal(),
    )?;
    print!("{}", summary.render(started.elapsed().as_secs_f64()));
    let feeds = feeds::regenerate_after_ingest(config, &store).context("writing the feeds")?;
    println!("  feeds written {:>6}", feeds.written.len());
    if !summary.unreadable.is_empty() {
        anyhow::bail!(
            "{} source(s) could not be read to the end",
            summary.unreadable.len()
        );
    }
    Ok(())
}

/// Once a post is published, its feeds are brought up to date by a
/// detached `tidings feeds --after-ingest`: the MTA has its answer as soon as
/// the post is on disk, and a burst of deliveries shares one rebuild (see
/// `feeds::regenerate_after_ingest`). A failure to start it is only logged:
/// the post is safe, and the next rebuild shows it.
fn start_feed_refresh(config_path: Option<&std::path::Path>) {
    let Ok(program) = std::env::current_exe() else {
        tracing::warn!("feeds not refreshed: cannot find the tidings binary");
        return;
    };
    let mut command = std::process::Command::new(program);
    if let Some(path) = config_path {
        command.arg("--config").arg(path);
    }
    command
        .args(["feeds", "--after-ingest"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Err(error) = command.spawn() {
        tracing::warn!(%error, "feeds not refreshed");
    }
}

fn write_feeds(config: &Config) -> anyhow::Result<()> {
    let store = open_store(config)?;
    let report =
        feeds::regenerate(config, &store, feeds::Mode::Everything).context("writing the feeds")?;
    let mut out = std::io::stdout().lock();
    for path in &report.written {
        writeln!(out, "wrote {}", path.display())?;
    }
    writeln!(
        out,
        "{} feed files written, {} unchanged in {}",
        report.written.len(),
        report.unchanged,
        config.site.feeds_dir.display()
    )?;
    Ok(())
}

fn list_posts(config: &Config, filter: &PostFilter, json: bool) -> anyhow::Result<()> {
    let store = open_store(config)?;
    let posts = store.posts(filter).context("reading posts")?;
    let mut out = std::io::stdout().lock();
    for post in &posts {
        if json {
            serde_json::to_writer(&mut out, &post_json(post))?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "{:>7}  {:<10} {:<9} {:<16} {}",
                post.id,
                post.list_code.as_deref().unwrap_or("-"),
                post.status.as_str(),
                post_date(post),
                match (&post.status, &post.reason) {
                    (Status::Published, _) | (_, None) => post.title.clone(),
                    (_, Some(reason)) => format!("{}  [{}]", post.title, reason),
                }
            )?;
        }
    }
    Ok(())
}

/// The JSON line `tidings posts --json` prints for a post.
pub fn post_json(post: &Post) -> serde_json::Value {
    serde_json::json!({
        "id": post.id,
        "key": post.key,
        "message_id": post.message_id,
        "list": post.list_code,
        "lang": post.lang,
        "status": post.status,
        "reason": post.reason,
        "filed_by": post.filed_by,
        "tag": post.tag,
        "subject": post.subject,
        "title": post.title,
        "translations": post.translations,
        "machine_translation": post.machine_translation,
        "author": post.author_name,
        "date": post.date.and_then(|d| chrono::DateTime::from_timestamp(d, 0)).map(|d| d.to_rfc3339()),
        "received_at": chrono::DateTime::from_timestamp(post.received_at, 0).map(|d| d.to_rfc3339()),
        "attachments": post.attachments,
        "size": post.size,
    })
}

fn post_date(post: &Post) -> String {
    chrono::DateTime::from_timestamp(post.date.unwrap_or(post.received_at), 0)
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

fn show_post(config: &Config, id: i64, raw: bool) -> anyhow::Result<()> {
    let store = open_store(config)?;
    let mut out = std::io::stdout().lock();
    if raw {
        let bytes = store
            .raw_message(id)?
            .with_context(|| format!("post {id} has no stored message"))?;
        out.write_all(&bytes)?;
        return Ok(());
    }
    let post = store.post(id)?.with_context(|| format!("no post {id}"))?;
    writeln!(out, "Post:        {}", post.id)?;
    writeln!(
        out,
        "Status:      {}{}",
        post.status.as_str(),
        post.reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    )?;
    writeln!(
        out,
        "List:        {} ({})",
        post.list_code.as_deref().unwrap_or("-"),
        post.lang.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "Filed by:    {}",
        post.filed_by.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "Message-ID:  {}",
        post.message_id.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "From:        {} <{}>",
        post.author_name, post.author_address
    )?;
    writeln!(
        out,
        "Date:        {}",
        post.date_header.as_deref().unwrap_or("-")
    )?;
    writeln!(out, "Subject:     {}", post.subject)?;
    writeln!(out, "Title:       {}", post.title)?;
    if !post.translations.is_empty() {
        writeln!(out, "Translations: {}", post.translations.join(", "))?;
    }
    if post.machine_translation {
        writeln!(out, "Machine translation: yes")?;
    }
    for attachment in &post.attachments {
        writeln!(
            out,
            "Attachment:  {} ({}, {} bytes)",
            attachment.filename.as_deref().unwrap_or("(unnamed)"),
            attachment.content_type,
            attachment.size
        )?;
    }
    writeln!(out)?;
    out.write_all(post.body.as_bytes())?;
    Ok(())
}

/// The clock of a command: the system's, or `--at`.
fn clock(at: Option<&str>) -> anyhow::Result<crate::clock::Clock> {
    crate::clock::Clock::from_argument(at)
}

fn send_digests(
    config: &Config,
    list: Option<String>,
    now: bool,
    dry_run: bool,
    no_deliver: bool,
    at: Option<&str>,
) -> anyhow::Result<()> {
    use crate::deliver::{self, Issue, Selection};
    let clock = clock(at)?;
    let templates = crate::digest::templates::Templates::load(&config.site.templates_dir)?;
    let selection = Selection { list, force: now };
    let mut store = open_store(config)?;
    if dry_run {
        let runs = deliver::dry_run(config, &store, &templates, clock.now(), &selection)?;
        let mut out = std::io::stdout().lock();
        for run in &runs {
            eprintln!(
                "{}: would issue Vol {}, Issue {} with {} posts",
                run.list, run.volume, run.issue, run.posts
            );
            for (mode, message) in &run.messages {
                write_mbox_message(
                    &mut out,
                    &format!("{}-{}", run.list, mode.as_str()),
                    message,
                )?;
            }
        }
        if runs.is_empty() {
            eprintln!("no digest is due");
        }
        return Ok(());
    }
    let issued =
        deliver::issue_due_digests(config, &mut store, &templates, clock.now(), &selection)?;
    for issue in &issued {
        match issue {
            Issue::Issued(digest) => println!(
                "{}: issued Vol {}, Issue {} ({} posts, {}), queued for {} subscribers",
                digest.record.list_code,
                digest.record.volume,
                digest.record.issue,
                digest.posts,
                digest.record.reason,
                digest.queued
            ),
            Issue::NothingPending { list } => println!("{list}: due, but no posts are pending"),
        }
    }
    if no_deliver {
        return Ok(());
    }
    deliver_queue(config, store, clock)
}

/// Writes one message to an mbox (mboxrd: `>` before any `>*From ` line).
fn write_mbox_message(out: &mut impl Write, sender: &str, message: &[u8]) -> anyhow::Result<()> {
    writeln!(out, "From {sender}@tidings Thu Jan  1 00:00:00 1970")?;
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let quoted = line
            .iter()
            .position(|&b| b != b'>')
            .is_some_and(|i| line[i..].starts_with(b"From "));
        if quoted {
            out.write_all(b">")?;
        }
        out.write_all(line)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Runs the outbox once, unless another run holds it.
fn deliver_queue(
    config: &Config,
    store: Store,
    clock: crate::deliver::Clock,
) -> anyhow::Result<()> {
    let Some(_lock) = crate::deliver::OutboxLock::acquire(&config.site.data_dir)? else {
        println!("another delivery run holds the outbox; the queue is left to it");
        return Ok(());
    };
    let (report, _store) = crate::deliver::run_outbox_here(
        std::sync::Arc::new(config.clone()),
        store,
        clock,
        tokio_util::sync::CancellationToken::new(),
    )?;
    let rate = if report.seconds > 0.0 {
        report.sent as f64 / report.seconds
    } else {
        0.0
    };
    println!(
        "delivered: {} sent, {} deferred, {} failed{} in {:.2} s ({:.0} messages/s, {:.1} MB)",
        report.sent,
        report.deferred,
        report.failed,
        if report.given_up > 0 {
            format!(", {} given up", report.given_up)
        } else {
            String::new()
        },
        report.seconds,
        rate,
        report.bytes as f64 / 1e6
    );
    if let Some(reason) = report.unreachable {
        anyhow::bail!("stopped: {reason}; the rest stays queued for the next run");
    }
    Ok(())
}

fn retry_queue(config: &Config, at: Option<&str>) -> anyhow::Result<()> {
    let clock = clock(at)?;
    let mut store = open_store(config)?;
    let due = store.retry_deferred(clock.now().timestamp())?;
    println!("{due} deferred deliveries are due now");
    deliver_queue(config, store, clock)
}

fn show_queue(config: &Config) -> anyhow::Result<()> {
    use crate::store::deliveries::DeliveryState;
    let store = open_store(config)?;
    let summary = store.queue_summary(10)?;
    let mut out = std::io::stdout().lock();
    let time = |seconds: i64| {
        chrono::DateTime::from_timestamp(seconds, 0)
            .map(|d| {
                d.with_timezone(&config.site.timezone)
                    .format("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_default()
    };
    writeln!(
        out,
        "{:<12} {:>9} {:>9} {:>9} {:>9}",
        "list", "queued", "deferred", "sent", "failed"
    )?;
    let mut lists: Vec<&String> = summary.counts.iter().map(|(list, _, _)| list).collect();
    lists.dedup();
    for list in lists {
        let count = |state: DeliveryState| {
            summary
                .counts
                .iter()
                .find(|(l, s, _)| l == list && *s == state)
                .map_or(0, |(_, _, n)| *n)
        };
        writeln!(
            out,
            "{:<12} {:>9} {:>9} {:>9} {:>9}",
            list,
            count(DeliveryState::Queued),
            count(DeliveryState::Deferred),
            count(DeliveryState::Sent),
            count(DeliveryState::Failed)
        )?;
    }
    match &summary.oldest_deferred {
        Some(d) => writeln!(
            out,
            "oldest deferred: {} to {} (digest of {}, {} attempts, next {}): {}",
            d.list_code,
            d.address,
            time(d.issued_at),
            d.attempts,
            time(d.next_attempt_at),
            d.last_reply.as_deref().unwrap_or("-")
        )?,
        None => writeln!(out, "oldest deferred: none")?,
    }
    if !summary.last_errors.is_empty() {
        writeln!(out, "last errors:")?;
    }
    for d in &summary.last_errors {
        writeln!(
            out,
            "  {} {} {} {}: {}",
            time(d.last_attempt_at.unwrap_or(d.next_attempt_at)),
            d.list_code,
            d.address,
            d.state.as_str(),
            d.last_reply.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

/// Addresses from the command line, `-` meaning one per line on stdin.
fn addresses_from(arguments: Vec<String>) -> anyhow::Result<Vec<String>> {
    use std::io::BufRead;
    let mut addresses = Vec::new();
    for argument in arguments {
        if argument == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line.context("reading addresses from stdin")?;
                let line = line.trim();
                if !line.is_empty() && !line.starts_with('#') {
                    addresses.push(line.to_string());
                }
            }
        } else {
            addresses.push(argument);
        }
    }
    Ok(addresses)
}

fn subscribers(config: &Config, action: SubscribersCommand) -> anyhow::Result<()> {
    use crate::store::subscribers::Added;
    use std::str::FromStr;
    let check_list = |code: &str| -> anyhow::Result<()> {
        if config.list(code).is_none() {
            anyhow::bail!("no list has the code `{code}` in {}", config.source);
        }
        Ok(())
    };
    match action {
        SubscribersCommand::Add {
            list,
            mode,
            addresses,
        } => {
            check_list(&list)?;
            let mut entries = Vec::new();
            for address in addresses_from(addresses)? {
                let parsed = lettre::Address::from_str(&address)
                    .map_err(|e| anyhow::anyhow!("`{address}` is not a mail address: {e}"))?;
                let address = format!("{}@{}", parsed.user(), parsed.domain().to_ascii_lowercase());
                entries.push((address, crate::deliver::unsubscribe_token()?));
            }
            let mut store = open_store(config)?;
            let now = crate::clock::unix_now();
            let added = store.add_subscribers(&list, &entries, mode.into(), now)?;
            let count = |kind: Added| added.iter().filter(|a| **a == kind).count();
            println!(
                "{list}: {} added, {} changed, {} already subscribed",
                count(Added::New),
                count(Added::Updated),
                count(Added::Unchanged)
            );
        }
        SubscribersCommand::Remove { list, addresses } => {
            check_list(&list)?;
            let addresses = addresses_from(addresses)?;
            let mut store = open_store(config)?;
            let removed = store.remove_subscribers(&list, &addresses, crate::clock::unix_now())?;
            println!(
                "{list}: {removed} removed, {} were not subscribed",
                addresses.len() - removed
            );
        }
        SubscribersCommand::List { list } => {
            if let Some(code) = &list {
                check_list(code)?;
            }
            let store = open_store(config)?;
            let mut out = std::io::stdout().lock();
            for subscriber in store.subscribers(list.as_deref())? {
                writeln!(
                    out,
                    "{}\t{}\t{}",
                    subscriber.list_code,
                    subscriber.address,
                    subscriber.mode.as_str()
                )?;
            }
        }
    }
    Ok(())
}

/// `tidings status`: one line per list.
fn status(config: &Config) -> anyhow::Result<()> {
    use crate::store::deliveries::DeliveryState;
    let store = open_store(config)?;
    let posts = store.count_posts().context("counting posts")?;
    let queue = store.queue_summary(0).context("reading the outbox")?;
    let count = |list: &str, status: Status| {
        posts
            .iter()
            .filter(|(code, s, _)| code.as_deref() == Some(list) && *s == status)
            .map(|(_, _, n)| n)
            .sum::<u64>()
    };
    let waiting = |list: &str| {
        queue
            .counts
            .iter()
            .filter(|(code, state, _)| {
                code == list && matches!(state, DeliveryState::Queued | DeliveryState::Deferred)
            })
            .map(|(_, _, n)| n)
            .sum::<u64>()
    };
    let timezone = config.site.timezone;
    let now = crate::clock::now().with_timezone(&timezone);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<11} {:>10} {:>6} {:>11}  {:<22} {:>7}",
        "list",
        "published",
        "held",
        "subscribers",
        format!("next digest ({timezone})"),
        "outbox"
    )?;
    for list in &config.lists {
        let subscribers = store.subscribers(Some(&list.code))?.len();
        let next = list
            .schedule
            .after(&now)
            .next()
            .map(|at| at.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|| "never".to_string());
        writeln!(
            out,
            "{:<11} {:>10} {:>6} {:>11}  {:<22} {:>7}",
            list.code,
            count(&list.code, Status::Published),
            count(&list.code, Status::Held),
            subscribers,
            next,
            waiting(&list.code)
        )?;
    }
    let unfiled: u64 = posts
        .iter()
        .filter(|(code, status, _)| code.is_none() && *status == Status::Held)
        .map(|(_, _, n)| n)
        .sum();
    let rejected: u64 = posts
        .iter()
        .filter(|(_, status, _)| *status == Status::Rejected)
        .map(|(_, _, n)| n)
        .sum();
    writeln!(out, "held without a list: {unfiled}; rejected: {rejected}")?;
    Ok(())
}
