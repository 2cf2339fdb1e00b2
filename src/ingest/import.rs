//! `tidings import PATH...`: mbox files, Maildir folders, folders of
//! messages and single message files.
//!
//! Messages stream from disk (one message in memory at a time per reader), are
//! filed on a reader thread and committed in batches on this one, so parsing
//! and SQLite writes overlap. Importing the same thing twice stores nothing
//! new: duplicates are recognised by key. An archive is old news: its
//! posts are sent to no subscriber, neither one by one nor in a digest
//! ([`super::commit_archive`]), unless the import says the messages are
//! new mail ([`Arrival::New`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{commit_and_hand_out, commit_archive, now, Envelope, Filer, Outcome};
use crate::config::Config;
use crate::post::NewPost;
use crate::store::{self, Connection};

/// Posts committed per transaction.
const BATCH: usize = 1000;

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub messages: u64,
    pub stored: u64,
    pub duplicates: u64,
    /// Held posts by reason.
    pub held: BTreeMap<String, u64>,
    /// Rejected messages by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Sources that could not be read to the end, with the error.
    pub unreadable: Vec<String>,
}

impl Summary {
    fn count(&mut self, outcome: &Outcome) {
        self.messages += 1;
        match outcome {
            Outcome::Stored { .. } => self.stored += 1,
            Outcome::Duplicate { .. } => self.duplicates += 1,
            Outcome::Held { reason, .. } => *self.held.entry(reason.clone()).or_default() += 1,
            Outcome::Rejected { reason, .. } => {
                *self.rejected.entry(reason.clone()).or_default() += 1
            }
        }
    }

    /// Held posts in all.
    pub fn held_total(&self) -> u64 {
        self.held.values().sum()
    }

    /// Rejected messages in all.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// The summary as printed at the end of an import.
    pub fn render(&self, seconds: f64) -> String {
        let mut out = format!(
            "imported {} messages in {:.2} s ({:.0} messages/s)\n",
            self.messages,
            seconds,
            self.messages as f64 / seconds.max(1e-9)
        );
        out += &format!("  stored      {:>8}\n", self.stored);
        out += &format!("  duplicates  {:>8}\n", self.duplicates);
        out += &format!("  held        {:>8}\n", self.held_total());
        for (reason, count) in &self.held {
            out += &format!("    {count:>8}  {reason}\n");
        }
        out += &format!("  rejected    {:>8}\n", self.rejected_total());
        for (reason, count) in &self.rejected {
            out += &format!("    {count:>8}  {reason}\n");
        }
        for source in &self.unreadable {
            out += &format!("  unreadable: {source}\n");
        }
        out
    }
}

/// One thing to import.
#[derive(Debug, Clone)]
enum Source {
    /// An mbox file (mboxrd or mboxo ">From " escaping).
    Mbox(PathBuf),
    /// One RFC 5322 message in a file; from a Maildir, with the delivery
    /// time its name begins with.
    Message {
        path: PathBuf,
        delivered: Option<i64>,
    },
}

impl Source {
    fn path(&self) -> &Path {
        match self {
            Source::Mbox(path) | Source::Message { path, .. } => path,
        }
    }
}

/// What the messages of an import are to their lists' subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// An archive: old news, sent to nobody ([`commit_archive`]).
    Archive,
    /// Mail just arrived, handed out as the listeners hand it out
    /// ([`commit_and_hand_out`]).
    New,
}

/// Imports every message under `paths` into the store.
pub fn import(
    config: &Config,
    db: &mut Connection,
    envelope: &Envelope,
    paths: &[PathBuf],
    arrival: Arrival,
    show_progress: bool,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let mut sources = Vec::new();
    for path in paths {
        collect_sources(path, &mut sources)
            .with_context(|| format!("reading {}", path.display()))?;
    }
    let total_bytes = sources
        .iter()
        .map(|source| std::fs::metadata(source.path()).map_or(0, |m| m.len()))
        .sum();
    let progress = if show_progress {
        ProgressBar::new(total_bytes)
    } else {
        ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::hidden())
    };
    progress.set_style(
        ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {msg} [{elapsed_precise}, eta {eta}]",
        )
        .expect("valid template"),
    );

    let mut summary = Summary::default();
    store::begin_bulk_load(db)?;
    let (sender, receiver) = mpsc::sync_channel::<Batch>(4);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let reader_progress = progress.clone();
        let reader =
            scope.spawn(move || read_sources(config, envelope, &sources, sender, &reader_progress));
        for batch in receiver {
            let outcomes = store::transaction(db, |tx| match arrival {
                Arrival::Archive => commit_archive(tx, &batch.posts, now()),
                Arrival::New => commit_and_hand_out(tx, &batch.posts, now()),
            })
            .context("writing to the store")?;
            for outcome in &outcomes {
                summary.count(outcome);
            }
            progress.set_message(format!("{} messages", summary.messages));
        }
        summary.unreadable = reader.join().expect("reader thread does not panic");
        Ok(())
    })?;
    progress.finish_and_clear();
    store::end_bulk_load(db)?;
    tracing::info!(
        messages = summary.messages,
        stored = summary.stored,
        seconds = started.elapsed().as_secs_f64(),
        "import finished"
    );
    Ok(summary)
}

struct Batch {
    posts: Vec<NewPost>,
}

/// Reads and files every source, sending batches of filed posts. Returns the
/// sources that could not be read to the end.
fn read_sources(
    config: &Config,
    envelope: &Envelope,
    sources: &[Source],
    sender: mpsc::SyncSender<Batch>,
    progress: &ProgressBar,
) -> Vec<String> {
    let filer = Filer::new(config);
    let mut unreadable = Vec::new();
    let mut posts = Vec::with_capacity(BATCH);
    let push = |post: NewPost, posts: &mut Vec<NewPost>| -> bool {
        progress.inc(post.size as u64);
        posts.push(post);
        if posts.len() < BATCH {
            return true;
        }
        let batch = Batch {
            posts: std::mem::replace(posts, Vec::with_capacity(BATCH)),
        };
        sender.send(batch).is_ok()
    };
    for source in sources {
        let result = match source {
            Source::Message { path, delivered } => {
                std::fs::metadata(path).and_then(|metadata| {
                    // A file over the limit is refused without reading it in.
                    let size = metadata.len() as usize;
                    let post = if size > config.ingest.max_message_bytes {
                        filer.oversize(size, now())
                    } else {
                        let raw = std::fs::read(path)?;
                        dated(filer.file_message(&raw, envelope, now()), *delivered)
                    };
                    push(post, &mut posts);
                    Ok(())
                })
            }
            Source::Mbox(path) => read_mbox(path, |raw, delivered| {
                let post = dated(filer.file_message(raw, envelope, now()), delivered);
                push(post, &mut posts)
            }),
        };
        if let Err(error) = result {
            unreadable.push(format!("{}: {error}", source.path().display()));
        }
    }
    if !posts.is_empty() {
        let _ = sender.send(Batch { posts });
    }
    unreadable
}

/// A post whose message has no date of its own (no Date field, or one
/// that does not parse) dated by its delivery as the mailbox recorded it,
/// when that is known and not in the future: an archive's undated posts
/// belong to their time, not to the day of the import.
fn dated(mut post: NewPost, delivered: Option<i64>) -> NewPost {
    if post.post.date.is_none() {
        post.post.date = delivered.filter(|&time| time > 0 && time <= post.post.received_at);
    }
    post
}

/// Calls `each` with every message of an mbox file, and the time of its
/// "From " line when it has one, until it returns false.
fn read_mbox(path: &Path, mut each: impl FnMut(&[u8], Option<i64>) -> bool) -> std::io::Result<()> {
    let reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    for message in
        mail_parser::mailbox::mbox::MessageIterator::new(super::mbox::FromLines::new(reader))
    {
        let message = message?;
        let delivered = i64::try_from(message.internal_date()).ok();
        if !each(message.contents(), delivered) {
            break;
        }
    }
    Ok(())
}

/// The delivery time a Maildir file name begins with (`1700000000.M…`).
fn maildir_time(path: &Path) -> Option<i64> {
    let name = path.file_name()?.to_str()?;
    let (seconds, _) = name.split_once('.')?;
    seconds.parse().ok()
}

/// Finds what to import under `path`: a Maildir (its cur/ and new/), a
/// folder of message files, an mbox file or a single message file.
fn collect_sources(path: &Path, sources: &mut Vec<Source>) -> std::io::Result<()> {
    let metadata = std::fs::metadata(path)?;
    if metadata.is_file() {
        sources.push(if starts_with_from_line(path)? {
            Source::Mbox(path.to_path_buf())
        } else {
            Source::Message {
                path: path.to_path_buf(),
                delivered: None,
            }
        });
        return Ok(());
    }
    let is_maildir = ["cur", "new"].iter().any(|d| path.join(d).is_dir());
    let folders: Vec<PathBuf> = if is_maildir {
        ["cur", "new"]
            .iter()
            .map(|d| path.join(d))
            .filter(|d| d.is_dir())
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    for folder in folders {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&folder)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_file() || (!is_maildir && p.is_dir()))
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        // Maildir names begin with the delivery time: sorting keeps arrival order.
        entries.sort();
        for entry in entries {
            if is_maildir && !starts_with_from_line(&entry)? {
                let delivered = maildir_time(&entry);
                sources.push(Source::Message {
                    path: entry,
                    delivered,
                });
            } else if !is_side_file(&entry) {
                collect_sources(&entry, sources)?;
            }
        }
    }
    Ok(())
}

/// Files that sit beside messages in a folder but are not messages.
fn is_side_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.ends_with(".jsonl") || name.ends_with(".md") || name.ends_with(".upstream")
}

fn starts_with_from_line(path: &Path) -> std::io::Result<bool> {
    let mut head = [0u8; 5];
    let mut file = File::open(path)?;
    let mut read = 0;
    while read < head.len() {
        match file.read(&mut head[read..])? {
            0 => break,
            n => read += n,
        }
    }
    Ok(&head[..read] == b"From ")
}
