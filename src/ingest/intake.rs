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

use tokio::sync::Notify;

use super::committer::Committer;
use super::forward::forward;
use super::session::{Message, Protocol};
use super::{now, Envelope, Filer, Outcome};
use crate::config::Config;
use crate::store::{self, outgoing, Handle};

/// Messages up to this size are filed on the async worker that received
/// them; larger ones on the blocking pool (see [`StoreIntake::post`]).
const FILE_IN_PLACE: usize = 64 * 1024;

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

    /// Records that a message of `size` bytes was refused for its size
    /// (already answered 552; the record does not change the answer).
    fn oversize(
        &self,
        config: &Arc<Config>,
        protocol: Protocol,
        size: usize,
    ) -> impl Future<Output = ()> + Send;
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
/// committed by the [`Committer`]; postmaster mail is queued in the store
/// for the outbox to pass on to the operator.
pub struct StoreIntake {
    committer: Committer,
    store: Handle,
    /// Woken when a message is queued, so the outbox sends it now rather
    /// than at its next round.
    outbox: Arc<Notify>,
    on_message: Box<dyn Fn(&Received) + Send + Sync>,
}

impl StoreIntake {
    /// An intake committing posts through `committer` and other mail
    /// through `store`, waking `outbox` when it queued a message to send;
    /// `on_message` is called with each post's outcome, for logs and
    /// metrics.
    pub fn new(
        committer: Committer,
        store: Handle,
        outbox: Arc<Notify>,
        on_message: impl Fn(&Received) + Send + Sync + 'static,
    ) -> Self {
        StoreIntake {
            committer,
            store,
            outbox,
            on_message: Box::new(on_message),
        }
    }

    /// Queues a postmaster message for the operator ([`forward`]); returns
    /// once it is on disk. One that has been through postmaster before (a
    /// loop) is kept, failed, and not sent.
    async fn queue_for_operator(&self, config: &Config, message: &Message) -> Result<(), Deferred> {
        let via = format!("postmaster@{}", config.site.domain);
        let forward = forward(
            &via,
            &config.site.operator,
            &message.sender,
            &message.content,
        );
        let now = now();
        let queued = self
            .store
            .write(move |tx| {
                match &forward.looped {
                    None => outgoing::queue(tx, &forward.message, now)?,
                    Some(reason) => outgoing::keep_unsent(tx, &forward.message, now, reason)?,
                };
                Ok::<_, store::Error>(forward.looped.is_none())
            })
            .await
            .map_err(|error| Deferred::new(format!("store unavailable: {error}")))?;
        if queued {
            self.outbox.notify_one();
        }
        Ok(())
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
        // Parsing and language detection grow with the message, up to
        // max_message_bytes: a large message is filed on the blocking pool,
        // so no async worker is held for long. A small one (most posts) takes
        // well under a millisecond and is filed here, which spares two
        // thread hand-overs per message.
        let filed = if message.content.len() <= FILE_IN_PLACE {
            Ok(Filer::new(config).file_message(&message.content, &envelope, now()))
        } else {
            let (config, content) = (config.clone(), message.content.clone());
            tokio::task::spawn_blocking(move || {
                Filer::new(&config).file_message(&content, &envelope, now())
            })
            .await
        };
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

    async fn oversize(&self, config: &Arc<Config>, protocol: Protocol, size: usize) {
        let post = Filer::new(config).oversize(size, now());
        let outcome = self.committer.submit(post).await;
        (self.on_message)(&Received {
            protocol,
            message_id: None,
            list: None,
            outcome: outcome.map_err(|error| error.to_string()),
        });
    }

    async fn postmaster(&self, config: &Arc<Config>, message: &Message) -> Result<(), Deferred> {
        let queued = self.queue_for_operator(config, message).await;
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
