//! Group commit for the daemon: a post is handed to the store's writer as
//! a grouped write ([`Handle::write_grouped`]), so the posts that arrive
//! while the previous transaction is being written all go into the next
//! one.
//!
//! A listener awaits [`Committer::submit`] and answers 250 only once it
//! returned `Ok`: the post is then on disk. Under load one fsync covers
//! many posts, so throughput grows with concurrency while every
//! acknowledgement still follows its own commit. A published post's
//! deliveries to the list's post subscribers are queued in its own
//! transaction ([`super::commit_and_hand_out`]).

use std::sync::Arc;

use super::{now, Outcome};
use crate::config::Config;
use crate::post::NewPost;
use crate::store::Handle;
use crate::subscribe::Service;
use crate::templates::Templates;
use crate::tokens::Secret;

/// Why a post was not committed; the sender should try again later.
#[derive(Debug, Clone, thiserror::Error)]
#[error("store unavailable: {0}")]
pub struct CommitError(String);

/// What is called after each post's transaction committed.
type OnCommit = dyn Fn(&NewPost, &Outcome) + Send + Sync;

/// Commits posts through the store; cheap to clone.
#[derive(Clone)]
pub struct Committer {
    store: Handle,
    templates: Arc<Templates>,
    secret: Arc<Secret>,
    committed: Arc<OnCommit>,
}

impl Committer {
    /// A committer writing through `store`, writing the moderators'
    /// notices in the words of `templates` with links signed by `secret`;
    /// `committed` is called after each post's transaction committed, with
    /// the post and what became of it (for metrics and feed refresh).
    pub fn new(
        store: Handle,
        templates: Arc<Templates>,
        secret: Arc<Secret>,
        committed: impl Fn(&NewPost, &Outcome) + Send + Sync + 'static,
    ) -> Self {
        Committer {
            store,
            templates,
            secret,
            committed: Arc::new(committed),
        }
    }

    /// Commits one post from envelope `sender` through
    /// [`crate::moderation::take`] (loops refused, the posting policy
    /// applied, moderators told); returns once it is durable (or could not
    /// be).
    pub async fn submit(
        &self,
        config: &Arc<Config>,
        post: NewPost,
        sender: Option<String>,
    ) -> Result<Outcome, CommitError> {
        let (config, templates, secret) =
            (config.clone(), self.templates.clone(), self.secret.clone());
        let result = self
            .store
            .write_grouped(move |tx| {
                let service = Service {
                    config: &config,
                    templates: &templates,
                    secret: &secret,
                    now: now(),
                };
                let (outcome, post) =
                    crate::moderation::take(tx, &service, post, sender.as_deref())?;
                Ok::<_, anyhow::Error>((Some(outcome), post))
            })
            .await;
        match result {
            Ok((Some(outcome), post)) => {
                (self.committed)(&post, &outcome);
                Ok(outcome)
            }
            Ok((None, _)) => Err(CommitError("the store gave no outcome".into())),
            Err(error) => {
                tracing::error!("commit failed: {error:#}");
                Err(CommitError(error.to_string()))
            }
        }
    }
}
