//! Where the listener hands each complete message: the [`Intake`] trait,
//! and [`StoreIntake`], the daemon's, which files posts and commits them.
//!
//! The listener calls [`Intake::post`] once for all of a message's list
//! recipients and [`Intake::postmaster`] once when postmaster is among
//! them; the session turns the answers into replies. `Ok` must mean the
//! message is on disk: only then does the client get a 250. A [`Deferred`]
//! is answered 451, so the client keeps the message and tries again.

use std::future::Future;
use std::sync::Arc;

use super::committer::Committer;
use super::session::{Message, Protocol};
use super::{now, Envelope, Filer, Outcome};
use crate::config::Config;

/// Takes the messages a listener received.
pub trait Intake: Send + Sync + 'static {
    /// Files `message` as a post for its list recipients and stores it;
    /// returns once the post is durable, or why it could not be taken now.
    fn post(
        &self,
        config: &Arc<Config>,
        message: &Message,
    ) -> impl Future<Output = Result<Outcome, Deferred>> + Send;

    /// Durably queues `message` for `[site] operator`, the person behind
    /// postmaster@ the site domain (RFC 5321 4.5.1).
    fn postmaster(
        &self,
        config: &Arc<Config>,
        message: &Message,
    ) -> impl Future<Output = Result<(), Deferred>> + Send;
}

/// Why a message could not be taken now; the sender should try again later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Deferred(String);

impl Deferred {
    /// A deferral for `reason` (lowercase, no trailing period).
    pub fn new(reason: impl Into<String>) -> Self {
        Deferred(reason.into())
    }
}

/// One received post, as logged.
#[derive(Debug)]
pub struct Received {
    /// The protocol it arrived by.
    pub protocol: Protocol,
    /// Its Message-ID, if it has one.
    pub message_id: Option<String>,
    /// The list it was filed under, if any.
    pub list: Option<String>,
    /// What became of it, or why it was deferred.
    pub outcome: Result<Outcome, String>,
}

/// The daemon's intake: posts are filed off the async workers and
/// committed by the [`Committer`]; postmaster mail is queued for the
/// operator.
pub struct StoreIntake {
    committer: Committer,
    on_message: Box<dyn Fn(&Received) + Send + Sync>,
}

impl StoreIntake {
    /// An intake committing through `committer`; `on_message` is called with
    /// each post's outcome, for logs and metrics.
    pub fn new(
        committer: Committer,
        on_message: impl Fn(&Received) + Send + Sync + 'static,
    ) -> Self {
        StoreIntake {
            committer,
            on_message: Box::new(on_message),
        }
    }

    /// Durably queues a postmaster message for `operator`.
    ///
    /// TO BE FILLED BY THE STORE LAYER: write `message` (its sender,
    /// recipients and content) through the store so that it is on disk
    /// before this returns `Ok`, for the outbox to pass on to `operator`.
    /// Until then postmaster mail is answered 451, so senders keep it and no
    /// mail is lost.
    async fn queue_for_operator(&self, operator: &str, message: &Message) -> Result<(), Deferred> {
        let _ = (operator, message);
        Err(Deferred::new("postmaster mail cannot be queued yet"))
    }
}

impl Intake for StoreIntake {
    async fn post(&self, config: &Arc<Config>, message: &Message) -> Result<Outcome, Deferred> {
        let envelope = Envelope {
            list_code: None,
            recipients: message
                .post_recipients()
                .map(|recipient| recipient.address.clone())
                .collect(),
        };
        // Parsing and language detection of up to max_message_bytes is CPU
        // work: it runs on the blocking pool, not on an async worker.
        let (config, content) = (config.clone(), message.content.clone());
        let filed = tokio::task::spawn_blocking(move || {
            Filer::new(&config).file_message(&content, &envelope, now())
        })
        .await;
        let post = match filed {
            Ok(post) => post,
            Err(error) => {
                tracing::error!(%error, "filing a message failed");
                return Err(Deferred::new("the message could not be filed"));
            }
        };
        let message_id = post.message_id.clone();
        let list = post.list_code.clone();
        let outcome = self
            .committer
            .submit(post)
            .await
            .map_err(|error| Deferred::new(error.to_string()));
        (self.on_message)(&Received {
            protocol: message.protocol,
            message_id,
            list,
            outcome: outcome.clone().map_err(|deferred| deferred.to_string()),
        });
        outcome
    }

    async fn postmaster(&self, config: &Arc<Config>, message: &Message) -> Result<(), Deferred> {
        let queued = self
            .queue_for_operator(&config.site.operator, message)
            .await;
        match &queued {
            Ok(()) => {
                tracing::info!(protocol = ?message.protocol, sender = %message.sender, "postmaster mail queued")
            }
            Err(error) => {
                tracing::warn!(protocol = ?message.protocol, sender = %message.sender, %error, "postmaster mail deferred")
            }
        }
        queued
    }
}
