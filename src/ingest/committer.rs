//! Group commit for the daemon: one thread owns a store connection and
//! commits the posts that arrive while the previous transaction was being
//! written, all in one transaction.
//!
//! A listener awaits [`Committer::submit`] and answers 250 only once it
//! returned `Ok`: the post is then on disk. Under load, one fsync covers
//! many posts, so throughput grows with concurrency while every
//! acknowledgement still follows its own commit.

use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::{commit, Outcome};
use crate::store::{NewPost, Store};

/// Most posts committed in one transaction.
const MAX_BATCH: usize = 256;

/// Submissions that may wait for the committer before senders wait too.
const QUEUE: usize = 1024;

/// Why a post was not committed; the sender should try again later.
#[derive(Debug, Clone, thiserror::Error)]
#[error("store unavailable: {0}")]
pub struct CommitError(String);

struct Job {
    post: NewPost,
    reply: oneshot::Sender<Result<Outcome, CommitError>>,
}

/// A handle to the committer thread; cheap to clone.
#[derive(Clone)]
pub struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    /// Starts the committer thread with its own store connection.
    /// `committed` is called on that thread after each transaction, with
    /// the posts and what became of them (for metrics and feed refresh).
    pub fn spawn(
        mut store: Store,
        committed: impl Fn(&[NewPost], &[Outcome]) + Send + 'static,
    ) -> (Committer, JoinHandle<()>) {
        let (jobs, mut queue) = mpsc::channel::<Job>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("tidings-committer".into())
            .spawn(move || {
                while let Some(first) = queue.blocking_recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match queue.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    let (posts, replies): (Vec<NewPost>, Vec<_>) =
                        batch.into_iter().map(|job| (job.post, job.reply)).unzip();
                    match commit(&mut store, &posts) {
                        Ok(outcomes) => {
                            committed(&posts, &outcomes);
                            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                                let _ = reply.send(Ok(outcome));
                            }
                        }
                        Err(error) => {
                            tracing::error!(%error, posts = posts.len(), "commit failed");
                            let error = CommitError(error.to_string());
                            for reply in replies {
                                let _ = reply.send(Err(error.clone()));
                            }
                        }
                    }
                }
            })
            .expect("spawn the committer thread");
        (Committer { jobs }, thread)
    }

    /// Commits one post; returns once it is durable (or could not be).
    pub async fn submit(&self, post: NewPost) -> Result<Outcome, CommitError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { post, reply })
            .await
            .map_err(|_| CommitError("the committer has stopped".into()))?;
        answer
            .await
            .map_err(|_| CommitError("the committer has stopped".into()))?
    }
}
