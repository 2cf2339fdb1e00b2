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
pub mod pipe;
pub mod route;
pub mod session;

pub use filing::{Envelope, Filer};

use crate::post::{NewPost, Status};
use crate::store::posts::{self, Inserted};
use crate::store::{self, Transaction};

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

/// The current time in Unix seconds, as recorded in `received_at`.
pub fn now() -> i64 {
    crate::clock::unix_now()
}
