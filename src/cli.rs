//! Command-line interface: clap types, then one function per command.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Config, ConfigErrors};
use crate::ingest::{self, Envelope};
use crate::store::{Post, PostFilter, Status, Store};

/// tidings: a multilingual mailing-list digest and syndication daemon.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// The configuration file (default: ./lists.toml, else the embedded sample).
    #[arg(long, global = true, env = "TIDINGS_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration and print every problem with file:line:column.
    Check,
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
        Command::Check | Command::Ingest { .. } => unreachable!("handled in run"),
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
    if !summary.unreadable.is_empty() {
        anyhow::bail!(
            "{} source(s) could not be read to the end",
            summary.unreadable.len()
        );
    }
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
