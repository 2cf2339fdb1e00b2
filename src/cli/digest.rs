//! `tidings digest`, `tidings queue` and `tidings queue retry`: issuing
//! digests and running the outbox by hand.

use std::io::Write;

use super::{open_handle, open_store};
use crate::clock::Clock;
use crate::config::Config;
use crate::deliver::{self, DeliveryState, Issue, MessageKind, Selection};
use crate::store::{self, deliveries, outgoing, post_deliveries, Handle};
use crate::templates::Templates;

/// What `tidings digest` was asked to do.
#[derive(Debug, Clone)]
pub struct Run {
    /// Only this list.
    pub list: Option<String>,
    /// Issue now, whatever the schedule says.
    pub force: bool,
    /// Print what would be issued and record nothing.
    pub dry_run: bool,
    /// Deliver what is queued after issuing.
    pub deliver: bool,
}

/// `tidings digest`: issues the digests that are due (or prints them with
/// `--dry-run`) and delivers everything queued.
pub fn digest(config: &Config, run: Run, at: Option<&str>) -> anyhow::Result<()> {
    let clock = Clock::from_argument(at)?;
    let templates = Templates::load(&config.site.templates_dir)?;
    let selection = Selection {
        list: run.list,
        force: run.force,
    };
    let store = open_handle(config)?;
    if run.dry_run {
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
    let issued = deliver::issue_due_digests(config, &store, &templates, clock.now(), &selection)?;
    // What was issued is delivered even when the reader of this output
    // has gone (`tidings digest | head -1`).
    let said = say_issued(&mut std::io::stdout().lock(), &issued);
    if run.deliver {
        deliver_queue(config, store, clock)?;
    }
    Ok(said?)
}

/// One line for each digest issued, or due with nothing to issue.
fn say_issued(out: &mut impl Write, issued: &[Issue]) -> std::io::Result<()> {
    for issue in issued {
        match issue {
            Issue::Issued(digest) => writeln!(
                out,
                "{}: issued Vol {}, Issue {} ({} posts, {}), queued for {} subscribers",
                digest.record.list_code,
                digest.record.volume,
                digest.record.issue,
                digest.posts,
                digest.record.reason,
                digest.queued
            )?,
            Issue::NothingPending { list } => {
                writeln!(out, "{list}: due, but no posts are pending")?
            }
            Issue::Combined(queued) => writeln!(
                out,
                "{}: queued one digest across {} ({} posts)",
                queued.address,
                queued.lists.join(", "),
                queued.posts
            )?,
        }
    }
    Ok(())
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
fn deliver_queue(config: &Config, store: Handle, clock: Clock) -> anyhow::Result<()> {
    let Some(_lock) = deliver::OutboxLock::try_acquire(&config.site.data_dir)? else {
        writeln!(
            std::io::stdout().lock(),
            "another delivery run holds the outbox; the queue is left to it"
        )?;
        return Ok(());
    };
    let report = deliver::run_outbox_here(
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
    // A relay out of reach fails the command even when nobody reads the
    // report.
    let printed = writeln!(
        std::io::stdout().lock(),
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
    Ok(printed?)
}

/// `tidings queue retry`: makes every deferred delivery and message due
/// now and delivers.
pub fn retry_queue(config: &Config, at: Option<&str>) -> anyhow::Result<()> {
    let clock = Clock::from_argument(at)?;
    let store = open_handle(config)?;
    let now = clock.now().timestamp();
    let (digests, messages) = store.blocking_write(move |tx| {
        Ok::<_, store::Error>((
            deliveries::retry_deferred(tx, now)? + post_deliveries::retry_deferred(tx, now)?,
            outgoing::retry_deferred(tx, now)?,
        ))
    })?;
    let said = say_due(&mut std::io::stdout().lock(), digests, messages);
    // Delivered even when the reader of this output has gone.
    deliver_queue(config, store, clock)?;
    Ok(said?)
}

/// How many deferred deliveries and messages were made due.
fn say_due(out: &mut impl Write, digests: usize, messages: usize) -> std::io::Result<()> {
    writeln!(out, "{digests} deferred deliveries are due now")?;
    if messages > 0 {
        writeln!(out, "{messages} deferred messages are due now")?;
    }
    Ok(())
}

/// `tidings queue`: deliveries per list and state, the oldest deferred,
/// the last errors.
pub fn show_queue(config: &Config) -> anyhow::Result<()> {
    let db = open_store(config)?;
    let summary = deliveries::summary(&db, 10)?;
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
        let count = |state: DeliveryState| summary.count(list, state);
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
    let mut lists: Vec<&String> = summary.posts.iter().map(|(list, _, _)| list).collect();
    lists.dedup();
    for list in lists {
        let count = |state: DeliveryState| summary.post_count(list, state);
        writeln!(
            out,
            "{:<12} {:>9} {:>9} {:>9} {:>9}",
            format!("{list} (posts)"),
            count(DeliveryState::Queued),
            count(DeliveryState::Deferred),
            count(DeliveryState::Sent),
            count(DeliveryState::Failed)
        )?;
    }
    let mut kinds: Vec<MessageKind> = summary.messages.iter().map(|(kind, _, _)| *kind).collect();
    kinds.dedup();
    for kind in kinds {
        let count = |state: DeliveryState| {
            summary
                .messages
                .iter()
                .find(|(k, s, _)| *k == kind && *s == state)
                .map_or(0, |(_, _, count)| *count)
        };
        writeln!(
            out,
            "{:<12} {:>9} {:>9} {:>9} {:>9}",
            format!("({kind})"),
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
