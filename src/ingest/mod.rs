//! Raw mail -> filed posts in the store: the one path every way in shares.
//!
//! [`Filer::file_message`] decides what a message is (pure); [`commit`]
//! stores a batch of filed posts in one transaction and says what became of
//! each. The MTA pipe (`tidings ingest`), the importer (`tidings import`)
//! and the daemon's LMTP/SMTP listener all go through these two. The
//! listener is a sans-IO [`session`] driven by [`listener`], with the
//! recipient table in [`route`] and the hand-over to the store in
//! [`intake`].

pub mod committer;
mod filing;
pub mod forward;
mod headers;
pub mod import;
pub mod intake;
pub mod listener;
mod mbox;
pub mod pipe;
pub mod route;
pub mod session;

pub use filing::{html_only_body, Envelope, Filer};

use crate::post::{NewPost, Status};
use crate::store::posts::{self, Inserted};
use crate::store::{self, post_deliveries, Transaction};

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored and published under a list.
    Stored { id: i64 },
    /// Stored and held for a moderator.
    Held { id: i64, reason: String },
    /// Already stored under this id; nothing new was written.
    Duplicate { id: i64 },
    /// Refused; recorded under this id so the operator can see it.
    Rejected { id: i64, reason: String },
}

impl Outcome {
    /// A short word for logs and summaries.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Stored { .. } => "stored",
            Outcome::Held { .. } => "held",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::Rejected { .. } => "rejected",
        }
    }
}

/// Stores filed posts in the caller's transaction and says what became of
/// each. Once that transaction has committed, every post is durable; on
/// `Err` the caller drops it, nothing of the batch is stored, and the
/// sender must be told "try again later".
pub fn commit(tx: &Transaction<'_>, batch: &[NewPost]) -> store::Result<Vec<Outcome>> {
    let inserted = posts::insert(tx, batch)?;
    Ok(batch
        .iter()
        .zip(inserted)
        .map(|(post, inserted)| match inserted {
            Inserted::Duplicate(id) => Outcome::Duplicate { id },
            Inserted::New(id) => {
                let reason = post.reason.clone().unwrap_or_default();
                match post.status {
                    Status::Published => Outcome::Stored { id },
                    Status::Held => Outcome::Held { id, reason },
                    Status::Rejected => Outcome::Rejected { id, reason },
                }
            }
        })
        .collect())
}

/// [`commit`], then each post published goes to its list's subscribers in
/// mode post: their deliveries are queued in the same transaction
/// ([`post_deliveries::fan_out`]), so a post is never durable without them
/// and the outbox can send it as soon as the transaction committed. For
/// mail as it arrives: the daemon's listeners and the MTA pipe.
pub fn commit_and_hand_out(
    tx: &Transaction<'_>,
    batch: &[NewPost],
    now: i64,
) -> store::Result<Vec<Outcome>> {
    let outcomes = commit(tx, batch)?;
    for list in published_lists(batch, &outcomes) {
        post_deliveries::fan_out(tx, list, now)?;
    }
    Ok(outcomes)
}

/// [`commit`] for an archive: its posts are old news, so none of them goes
/// to the post subscribers ([`post_deliveries::skip_to_newest`]) or into a
/// digest, even once approved ([`posts::mark_imported`]). Posts
/// that arrived live before the batch and are not handed out yet are
/// handed out first, in the same transaction, so none of them is skipped.
pub fn commit_archive(
    tx: &Transaction<'_>,
    batch: &[NewPost],
    now: i64,
) -> store::Result<Vec<Outcome>> {
    let mut lists: Vec<&str> = batch
        .iter()
        .filter(|post| post.status == Status::Published)
        .filter_map(|post| post.list_code.as_deref())
        .collect();
    lists.sort_unstable();
    lists.dedup();
    for list in &lists {
        post_deliveries::fan_out(tx, list, now)?;
    }
    let outcomes = commit(tx, batch)?;
    for list in &lists {
        post_deliveries::skip_to_newest(tx, list)?;
    }
    let filed = outcomes.iter().filter_map(|outcome| match outcome {
        Outcome::Stored { id } | Outcome::Held { id, .. } => Some(*id),
        Outcome::Duplicate { .. } | Outcome::Rejected { .. } => None,
    });
    posts::mark_imported(tx, filed)?;
    Ok(outcomes)
}

/// The lists under which `batch` published a new post, each once.
fn published_lists<'a>(batch: &'a [NewPost], outcomes: &[Outcome]) -> Vec<&'a str> {
    let mut lists: Vec<&str> = batch
        .iter()
        .zip(outcomes)
        .filter(|(_, outcome)| matches!(outcome, Outcome::Stored { .. }))
        .filter_map(|(post, _)| post.list_code.as_deref())
        .collect();
    lists.sort_unstable();
    lists.dedup();
    lists
}

/// The current time in Unix seconds, as recorded in `received_at`.
pub fn now() -> i64 {
    crate::clock::unix_now()
}
