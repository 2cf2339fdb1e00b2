//! The outbox: issuing the digests that are due and delivering them once
//! to every subscriber.
//!
//! [`issue_due_digests`] decides which lists' digests are due
//! ([`crate::digest::trigger`]), numbers and renders each
//! ([`crate::digest`]) and records it with one queued delivery per
//! subscriber in a single transaction ([`crate::store::digests::record`]).
//! [`outbox::run_outbox`] then sends every due delivery through the
//! configured [`transport`], signs with [`dkim`], personalises with
//! [`message`], and records each result: sent only once the server
//! accepted it; a 4xx or a connection failure deferred with exponential
//! backoff until `give_up_after_hours`, then failed as given up
//! (`give_up.rs`: a bounce of the subscriber when the relay was deferring
//! that recipient, of nobody when the relay was down); a 5xx failed at
//! once (kept for bounce handling). A restart resumes exactly the
//! deliveries still queued or deferred.

pub mod combined;
pub mod dkim;
mod give_up;
pub mod message;
pub mod outbox;
mod queue;
pub mod transport;

use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::config::{Config, List};
use crate::digest::numbering::{next_number, period_key};
use crate::digest::trigger::{self, Due};
use crate::digest::{compose_digest, Composition};
use crate::digest::{DigestMode, DigestRecord, IssuedDigest, NewDigest, PendingPost};
use crate::store::{self, digests, Handle};
use crate::templates::Templates;

pub use crate::clock::Clock;
pub use outbox::{run_outbox, run_outbox_here, OutboxReport};
pub use queue::{
    Attempt, DeliveryRow, DeliveryState, DueDelivery, DueMessage, MessageKind, NewMessage,
    ProblemDelivery, QueueSummary,
};

/// Which digests to consider.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only this list.
    pub list: Option<String>,
    /// Issue now whatever the schedule says (still none without posts,
    /// unless the list sends empty digests).
    pub force: bool,
}

/// One list's decision in a run.
#[derive(Debug, Clone)]
pub enum Issue {
    /// A digest was recorded and its deliveries queued.
    Issued(IssuedDigest),
    /// It was due but nothing was pending.
    NothingPending { list: String },
    /// A person's digest across lists was queued.
    Combined(combined::Queued),
}

/// The lists `selection` names, in configuration order.
fn selected<'a>(config: &'a Config, selection: &Selection) -> anyhow::Result<Vec<&'a List>> {
    match &selection.list {
        Some(code) => Ok(vec![config.list(code).with_context(|| {
            format!("no list has the code `{code}` in {}", config.source)
        })?]),
        None => Ok(config.lists.iter().collect()),
    }
}

/// Whether `list`'s digest is due at `now`, and why.
fn due_now(
    config: &Config,
    store: &Handle,
    list: &List,
    now: DateTime<Utc>,
    selection: &Selection,
) -> anyhow::Result<Option<Due>> {
    let code = list.code.clone();
    let (pending, last_slot) = store.blocking_read(move |db| {
        Ok::<_, store::Error>((digests::pending_size(db, &code)?, digests::slot(db, &code)?))
    })?;
    Ok(trigger::due(
        list,
        &config.site.timezone,
        now,
        last_slot,
        pending,
        selection.force,
    ))
}

/// Issues every digest due at `now`: each is numbered, rendered in every
/// format and recorded with its posts and one queued delivery per
/// subscriber, in one transaction per digest. Blocks on the store and
/// composes on the calling thread: call it outside the runtime.
pub fn issue_due_digests(
    config: &Config,
    store: &Handle,
    templates: &Templates,
    now: DateTime<Utc>,
    selection: &Selection,
) -> anyhow::Result<Vec<Issue>> {
    let mut issued = Vec::new();
    for list in selected(config, selection)? {
        let Some(due) = due_now(config, store, list, now, selection)? else {
            continue;
        };
        let result = issue_digest(config, store, list, templates, now, due)
            .with_context(|| format!("issuing the digest of {}", list.code))?;
        issued.push(match result {
            Some(digest) => Issue::Issued(digest),
            None => Issue::NothingPending {
                list: list.code.clone(),
            },
        });
    }
    // After the lists': what they just issued is owed in them.
    if selection.list.is_none() {
        let queued = combined::issue_due(config, store, templates, now, selection.force)
            .context("issuing the digests across lists")?;
        issued.extend(queued.into_iter().map(Issue::Combined));
    }
    Ok(issued)
}

/// Issues `list`'s next digest, or records only that its slot was
/// decided when nothing is worth sending. Composition runs outside the
/// write lock, on what a reader saw; if another process issued a digest or
/// took one of its posts back meanwhile, it runs again on the new state
/// (posts published meanwhile go in the next digest:
/// [`digests::unchanged`]).
fn issue_digest(
    config: &Config,
    store: &Handle,
    list: &List,
    templates: &Templates,
    now: DateTime<Utc>,
    due: Due,
) -> anyhow::Result<Option<IssuedDigest>> {
    loop {
        let (previous, pending) = read_pending(store, &list.code)?;
        let composed = compose_if_worth_it(
            config,
            list,
            templates,
            now,
            due,
            previous.as_ref(),
            &pending,
        )?;
        let previous = previous.map(|digest| digest.id);
        let pending: Vec<i64> = pending.iter().map(|p| p.post.id).collect();
        let code = list.code.clone();
        let recorded = store.blocking_write(move |tx| {
            if !digests::unchanged(tx, &code, previous, &pending)? {
                return Ok::<_, store::Error>(None);
            }
            digests::record(tx, &code, due.slot, composed, &pending).map(Some)
        })?;
        if let Some(issued) = recorded {
            return Ok(issued);
        }
    }
}

/// A list's newest digest and the posts pending for its next one.
fn read_pending(
    store: &Handle,
    list_code: &str,
) -> store::Result<(Option<DigestRecord>, Vec<PendingPost>)> {
    let code = list_code.to_string();
    store.blocking_read(move |db| {
        Ok((
            digests::last(db, &code)?,
            digests::pending_posts(db, &code)?,
        ))
    })
}

fn compose_if_worth_it(
    config: &Config,
    list: &List,
    templates: &Templates,
    now: DateTime<Utc>,
    due: Due,
    previous: Option<&DigestRecord>,
    posts: &[PendingPost],
) -> anyhow::Result<Option<NewDigest>> {
    if posts.is_empty() && !due.send_empty {
        return Ok(None);
    }
    let local = now.with_timezone(&config.site.timezone).date_naive();
    let period = period_key(list.digest_volume, local);
    let number = next_number(
        previous.map(|d| (d.volume, d.issue, d.period.as_str())),
        &period,
    );
    let bodies = compose_digest(&Composition {
        config,
        list,
        templates,
        number: &number,
        issued_at: now,
        posts,
    })?;
    Ok(Some(NewDigest {
        volume: number.volume,
        issue: number.issue,
        period: number.period,
        reason: due.reason.as_str().to_string(),
        issued_at: now.timestamp(),
        bodies,
    }))
}

/// A digest `issue_due_digests` would issue, rendered but not recorded.
pub struct DryRun {
    pub list: String,
    pub volume: u32,
    pub issue: u32,
    pub posts: usize,
    /// One complete message per format, addressed to a placeholder.
    pub messages: Vec<(DigestMode, Vec<u8>)>,
}

/// The address dry-run messages are addressed to.
pub const DRY_RUN_RECIPIENT: &str = "subscriber@example.invalid";

/// What [`issue_due_digests`] would issue at `now`, each format as a whole
/// message (signed when keys are configured), without recording anything.
pub fn dry_run(
    config: &Config,
    store: &Handle,
    templates: &Templates,
    now: DateTime<Utc>,
    selection: &Selection,
) -> anyhow::Result<Vec<DryRun>> {
    let signers = dkim::Signer::load_all(&config.dkim)?;
    let mut runs = Vec::new();
    for list in selected(config, selection)? {
        let Some(due) = due_now(config, store, list, now, selection)? else {
            continue;
        };
        let (previous, posts) = read_pending(store, &list.code)?;
        let Some(new) =
            compose_if_worth_it(config, list, templates, now, due, previous.as_ref(), &posts)?
        else {
            continue;
        };
        let record = DigestRecord {
            id: 0,
            list_code: list.code.clone(),
            volume: new.volume,
            issue: new.issue,
            period: new.period.clone(),
            reason: new.reason.clone(),
            issued_at: new.issued_at,
            // A dry run's stand-in, as its token is "TOKEN".
            nonce: Some("NONCE".to_string()),
        };
        let mut messages = Vec::new();
        for body in new.bodies {
            let prepared = message::Prepared::new(
                config,
                list,
                &record,
                body.mode,
                &body.subject,
                body.entity,
                !signers.is_empty(),
            );
            let delivery = DueDelivery {
                id: 0,
                digest_id: 0,
                subscriber_id: 0,
                list_code: list.code.clone(),
                address: DRY_RUN_RECIPIENT.to_string(),
                mode: body.mode,
                token: "TOKEN".to_string(),
                attempts: 0,
            };
            messages.push((body.mode, prepared.message_bytes(&delivery, &signers)?));
        }
        runs.push(DryRun {
            list: list.code.clone(),
            volume: new.volume,
            issue: new.issue,
            posts: posts.len(),
            messages,
        });
    }
    Ok(runs)
}

/// Holds the outbox lock of `data_dir` (`outbox.lock`) while alive, so two
/// delivery runs never hand out the same queued deliveries.
pub struct OutboxLock {
    _lock: crate::files::LockFile,
}

impl OutboxLock {
    /// Takes the lock if it is free; `None` when another run holds it.
    pub fn try_acquire(data_dir: &Path) -> anyhow::Result<Option<OutboxLock>> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let path = data_dir.join("outbox.lock");
        let lock = crate::files::LockFile::try_acquire(&path)
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(lock.map(|lock| OutboxLock { _lock: lock }))
    }
}
