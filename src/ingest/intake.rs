//! Where the listener hands each complete message: the [`Intake`] trait,
//! and [`StoreIntake`], the daemon's, which files posts and commits them.
//!
//! The listener calls [`Intake::post`] once for all of a message's list
//! recipients and [`Intake::service`] once for each service address among
//! them (postmaster, -request, -owner...); the session turns the answers
//! into replies. `Ok` must mean the
//! message is on disk: only then does the client get a 250. A [`Deferred`]
//! is answered 451, so the client keeps the message and tries again.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use super::committer::Committer;
use super::forward::forward;
use super::route::Route;
use super::session::{Message, Protocol};
use super::{now, Envelope, Filer, Outcome};
use crate::auth::{self, Verifier};
use crate::config::Config;
use crate::digest::headers::ListAddresses;
use crate::metrics::Metrics;
use crate::moderation;
use crate::store::{self, outgoing, Handle};
use crate::subscribe::Service;
use crate::templates::Templates;
use crate::tokens::Secret;

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

    /// Takes `message` for one service address, `route` (postmaster,
    /// -request, -subscribe, -unsubscribe, -confirm, -owner): durably
    /// handled before `Ok`, or why it could not be taken now.
    fn service(
        &self,
        config: &Arc<Config>,
        message: &Message,
        route: &Route,
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
/// committed by the [`Committer`]; mail to the service addresses is
/// answered (subscription commands) or passed on (postmaster, -owner)
/// through the store, what it sends queued for the outbox.
pub struct StoreIntake {
    committer: Committer,
    store: Handle,
    templates: Arc<Templates>,
    secret: Arc<Secret>,
    /// Woken when a message is queued, so the outbox sends it now rather
    /// than at its next round.
    outbox: Arc<Notify>,
    /// Woken when a moderator's answer published a post, so its feeds and
    /// pages are made again.
    posts_changed: Arc<Notify>,
    metrics: Arc<Metrics>,
    on_message: Box<dyn Fn(&Received) + Send + Sync>,
    /// Checks posts to the lists with `verify = true`; made when first
    /// needed, again when the configuration names other DNS servers.
    verifier: Mutex<Option<Arc<Verifier>>>,
}

impl StoreIntake {
    /// An intake committing posts through `committer` and other mail
    /// through `store`, writing in the words of `templates` and signing
    /// links with `secret`, waking `outbox` when it queued a message to
    /// send and `posts_changed` when a moderator's answer published a post,
    /// counting automatic mail refused in `metrics`; `on_message` is called
    /// with each post's outcome, for logs and metrics.
    #[allow(
        clippy::too_many_arguments,
        reason = "each is one of the daemon's shared parts"
    )]
    pub fn new(
        committer: Committer,
        store: Handle,
        templates: Arc<Templates>,
        secret: Arc<Secret>,
        outbox: Arc<Notify>,
        posts_changed: Arc<Notify>,
        metrics: Arc<Metrics>,
        on_message: impl Fn(&Received) + Send + Sync + 'static,
    ) -> Self {
        StoreIntake {
            committer,
            store,
            templates,
            secret,
            outbox,
            posts_changed,
            metrics,
            on_message: Box::new(on_message),
            verifier: Mutex::new(None),
        }
    }

    /// The verifier for `config`.
    fn verifier(&self, config: &Config) -> Arc<Verifier> {
        let mut verifier = self.verifier.lock().unwrap_or_else(PoisonError::into_inner);
        match verifier.as_ref() {
            Some(current) if current.fits(config) => current.clone(),
            _ => verifier.insert(Arc::new(Verifier::new(config))).clone(),
        }
    }

    /// Passes `message`, which came through `via`, on to each of `to`
    /// ([`forward`]); returns once every copy is on disk. A copy that has
    /// been through `via` before (a loop) is kept, failed, and not sent.
    async fn pass_on(
        &self,
        via: String,
        to: Vec<String>,
        list: Option<String>,
        message: &Message,
    ) -> Result<(), Deferred> {
        let forwards: Vec<_> = to
            .iter()
            .map(|to| {
                let mut forward = forward(&via, to, &message.sender, &message.content);
                forward.message.list_code = list.clone();
                forward
            })
            .collect();
        let now = now();
        let queued = self
            .store
            .write(move |tx| {
                let mut queued = false;
                for forward in &forwards {
                    match &forward.looped {
                        None => {
                            outgoing::queue(tx, &forward.message, now)?;
                            queued = true;
                        }
                        Some(reason) => {
                            outgoing::keep_unsent(tx, &forward.message, now, reason)?;
                        }
                    }
                }
                Ok::<_, store::Error>(queued)
            })
            .await
            .map_err(|error| Deferred::new(format!("store unavailable: {error}")))?;
        if queued {
            self.outbox.notify_one();
        }
        Ok(())
    }

    /// Answers mail to a list's command addresses through
    /// [`Service::handle_mail`], in one transaction.
    async fn answer(
        &self,
        config: &Arc<Config>,
        message: &Message,
        route: &Route,
    ) -> Result<String, Deferred> {
        let (config, templates, secret) =
            (config.clone(), self.templates.clone(), self.secret.clone());
        let kind = route.kind();
        // The address this route came from (the first, should several
        // recipients share it).
        let recipient = message
            .recipients
            .iter()
            .find(|recipient| recipient.route == *route)
            .map(|recipient| recipient.address.clone())
            .unwrap_or_default();
        let (route, sender, content) = (
            route.clone(),
            message.sender.clone(),
            message.content.clone(),
        );
        // A grouped write, as posts are: a burst of bounces or commands
        // shares one commit, each in its own savepoint.
        let (outcome, published) = self
            .store
            .write_grouped(move |tx| {
                let service = Service {
                    config: &config,
                    templates: &templates,
                    secret: &secret,
                    now: now(),
                };
                handle_service_mail(tx, &service, &route, &recipient, &sender, &content)
            })
            .await
            .map_err(|error| {
                tracing::error!("a command message was not handled: {error:#}");
                Deferred::new("the message could not be handled now")
            })?;
        if outcome.starts_with("ignored: ") {
            self.metrics.count_loop(kind);
        }
        if published.is_some() {
            self.posts_changed.notify_one();
        }
        self.outbox.notify_one();
        Ok(outcome)
    }
}

/// Handles mail to a service address other than postmaster and -owner, in
/// the caller's transaction: a moderator's answer ([`moderation::handle_mail`]),
/// a bounce ([`crate::bounce::process`]: read and stored, never
/// published, never answered), or
/// commands for the subscribe service. Returns what was done, and the list
/// of a post a moderator published. The pipe and the listeners share it.
pub fn handle_service_mail(
    tx: &store::Transaction<'_>,
    service: &Service<'_>,
    route: &Route,
    recipient: &str,
    sender: &str,
    content: &[u8],
) -> anyhow::Result<(String, Option<String>)> {
    match route {
        Route::Moderate { .. } => moderation::handle_mail(tx, service, route, sender, content),
        Route::Bounces { list, subscriber } => {
            let outcome = crate::bounce::process(
                tx,
                service,
                list,
                subscriber.as_deref(),
                recipient,
                sender,
                content,
            )?;
            Ok((outcome, None))
        }
        _ => Ok((service.handle_mail(tx, route, sender, content)?, None)),
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
        let mut post = match filed {
            Ok(post) => post,
            Err(error) => {
                tracing::error!(%error, "filing a message failed");
                return Err(Deferred::new("the message could not be filed"));
            }
        };
        // DNS answers take their time: this connection's task waits for
        // them (bounded), the listener and every other connection go on.
        if auth::wanted(config, &post) {
            let client = auth::Client {
                ip: message.client,
                helo: message.helo.clone(),
                mail_from: message.sender.clone(),
            };
            let authentication = self
                .verifier(config)
                .verify(message.content.clone(), client)
                .await;
            auth::apply(&mut post, &authentication);
        }
        let message_id = post.message_id.clone();
        let list = post.list_code.clone();
        let outcome = self
            .committer
            .submit(config, post, Some(message.sender.clone()))
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
        let outcome = self.committer.submit(config, post, None).await;
        (self.on_message)(&Received {
            protocol,
            message_id: None,
            list: None,
            outcome: outcome.map_err(|error| error.to_string()),
        });
    }

    async fn service(
        &self,
        config: &Arc<Config>,
        message: &Message,
        route: &Route,
    ) -> Result<(), Deferred> {
        let result = match route {
            Route::Postmaster => {
                let via = format!("postmaster@{}", config.site.domain);
                self.pass_on(via, vec![config.site.operator.clone()], None, message)
                    .await
                    .map(|()| "queued for the operator".to_string())
            }
            Route::Owner { list } => {
                let Some(configured) = config.list(list) else {
                    return Err(Deferred::new("the list is being reconfigured"));
                };
                let via = ListAddresses::new(config, configured).owner;
                let editors = match configured.editors.is_empty() {
                    true => vec![config.site.operator.clone()],
                    false => configured.editors.clone(),
                };
                self.pass_on(via, editors, Some(list.clone()), message)
                    .await
                    .map(|()| "passed on to the editors".to_string())
            }
            _ => self.answer(config, message, route).await,
        };
        // A subscriber's address is theirs: logged at debug only, never
        // at the levels an operator keeps.
        tracing::debug!(route = route.kind(), sender = %message.sender, "service mail from");
        match &result {
            Ok(outcome) => tracing::info!(
                protocol = ?message.protocol,
                route = route.kind(),
                outcome,
                "service mail taken"
            ),
            Err(error) => tracing::warn!(
                protocol = ?message.protocol,
                route = route.kind(),
                %error,
                "service mail deferred"
            ),
        }
        result.map(drop)
    }
}
