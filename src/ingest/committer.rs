//! Group commit for the daemon: the posts that arrive while the previous
//! transaction is being written all go into the next one.
//!
//! A listener awaits [`Committer::submit`] and answers 250 only once it
//! returned `Ok`: the post is then on disk. One task gathers submissions
//! and hands each batch to the store's writer thread ([`Handle::write`]);
//! while a batch commits, the next gathers, so under load one fsync covers
//! many posts and throughput grows with concurrency while every
//! acknowledgement still follows its own commit.

use tokio::sync::{mpsc, oneshot};

use super::{commit, Outcome};
use crate::post::NewPost;
use crate::store::{self, Handle};

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

/// A handle to the committer task; cheap to clone. The task ends once every
/// clone is dropped and the last batch is committed.
#[derive(Clone)]
pub struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    /// Starts the committer on the current runtime. `committed` is called
    /// after each transaction, with the posts and what became of them (for
    /// metrics and feed refresh). Await the returned task to know the last
    /// batch is in.
    pub fn spawn(
        store: Handle,
        committed: impl Fn(&[NewPost], &[Outcome]) + Send + Sync + 'static,
    ) -> (Committer, tokio::task::JoinHandle<()>) {
        let (jobs, mut queue) = mpsc::channel::<Job>(QUEUE);
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (posts, replies): (Vec<NewPost>, Vec<_>) = batch
                    .drain(..)
                    .map(|job: Job| (job.post, job.reply))
                    .unzip();
                let result = store
                    .write(move |tx| Ok::<_, store::Error>((commit(tx, &posts)?, posts)))
                    .await;
                match result {
                    Ok((outcomes, posts)) => {
                        committed(&posts, &outcomes);
                        for (reply, outcome) in replies.into_iter().zip(outcomes) {
                            let _ = reply.send(Ok(outcome));
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, posts = replies.len(), "commit failed");
                        let error = CommitError(error.to_string());
                        for reply in replies {
                            let _ = reply.send(Err(error.clone()));
                        }
                    }
                }
            }
        });
        (Committer { jobs }, task)
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
