//! `tidings ingest`: one message on stdin, as an MTA pipe transport delivers
//! it (Postfix `pipe`, an alias `|tidings ingest`).
//!
//! The envelope recipient (the argument, else `$ORIGINAL_RECIPIENT`) is
//! routed by the same table as the listeners' ([`super::route`]): a posting
//! address takes a post, the command addresses go to the subscribe service,
//! a moderator's answer to [`crate::moderation`], -owner and postmaster
//! are passed on, a bounce is kept unpublished, and anything else at the
//! domain is refused with 67 (EX_NOUSER, "5.1.1"). Without a recipient the
//! message is filed as a post (by `--list CODE`, else by its content).
//!
//! The exit status is what the MTA acts on (sysexits.h): 0 once the post is
//! durably stored or held, 65 (EX_DATAERR) with a one-line reason for a
//! message that must bounce, 75 (EX_TEMPFAIL) when the store is busy, the
//! disk full or anything else went wrong on our side, so the MTA keeps the
//! message and retries: nothing is lost.

use std::io::Read;
use std::net::IpAddr;

use super::forward::forward;
use super::route::{route, Route};
use super::{commit, now, Envelope, Filer, Outcome};
use crate::config::Config;
use crate::digest::headers::ListAddresses;
use crate::store::{self, outgoing, Transaction};
use crate::subscribe::Service;
use crate::templates::Templates;
use crate::tokens::Secret;

/// sysexits.h: the message is at fault; the MTA bounces it.
pub const EX_DATAERR: u8 = 65;
/// sysexits.h: no such user; the MTA bounces "5.1.1 unknown address".
pub const EX_NOUSER: u8 = 67;
/// sysexits.h: try again later; the MTA keeps the message queued.
pub const EX_TEMPFAIL: u8 = 75;

/// How a pipe delivery ended: the exit status and the line to print.
#[derive(Debug)]
pub struct Delivery {
    pub exit_code: u8,
    pub message: String,
    /// Whether a new post was published, so its feeds need a rebuild.
    pub published: bool,
}

impl Delivery {
    fn tempfail(message: String) -> Self {
        Delivery {
            exit_code: EX_TEMPFAIL,
            message,
            published: false,
        }
    }
}

/// Reads one message from `input`, sent from envelope `sender` (`None`
/// when the MTA did not say), and routes it by its envelope recipients.
pub fn deliver(
    config: &Config,
    envelope: &Envelope,
    sender: Option<&str>,
    input: impl Read,
) -> Delivery {
    deliver_from(config, envelope, sender, None, "", input)
}

/// [`deliver`] for a message the MTA received from the client at `client`
/// which said HELO/EHLO `helo` (Postfix pipe: `${client_address}`,
/// `${client_helo}`): what SPF checks when the post's list verifies
/// ([`crate::auth`]). Without a client address SPF is `none`.
pub fn deliver_from(
    config: &Config,
    envelope: &Envelope,
    sender: Option<&str>,
    client: Option<IpAddr>,
    helo: &str,
    input: impl Read,
) -> Delivery {
    let mut routes = Vec::with_capacity(envelope.recipients.len());
    for recipient in &envelope.recipients {
        match route(config, recipient) {
            Ok(route) => routes.push(route),
            Err(refusal) => {
                return Delivery {
                    exit_code: EX_NOUSER,
                    message: format!("5.1.1 <{recipient}>: no such address here ({refusal:?})"),
                    published: false,
                }
            }
        }
    }
    let limit = config.ingest.max_message_bytes;
    let raw = match read_limited(input, limit) {
        Ok(Input::Whole(raw)) => raw,
        Ok(Input::TooLarge(size)) => {
            // Recorded for the operator like any rejection; the bounce does
            // not wait for the record (a store that is down would only
            // make the MTA retry a message that can never be taken).
            let post = Filer::new(config).oversize(size, now());
            let recorded = store::open(&config.database_path()).and_then(|mut db| {
                store::transaction(&mut db, |tx| commit(tx, std::slice::from_ref(&post)))
            });
            if let Err(error) = recorded {
                tracing::warn!(%error, "oversize message not recorded");
            }
            return Delivery {
                exit_code: EX_DATAERR,
                message: post.reason.clone().unwrap_or_default(),
                published: false,
            };
        }
        Err(error) => return Delivery::tempfail(format!("cannot read the message: {error}")),
    };
    let (templates, secret) = match (
        Templates::load(&config.site.templates_dir),
        Secret::load_or_create(&config.site.data_dir),
    ) {
        (Ok(templates), Ok(secret)) => (templates, secret),
        (Err(error), _) | (_, Err(error)) => {
            return Delivery::tempfail(format!("cannot start: {error:#}"))
        }
    };
    let mut db = match store::open(&config.database_path()) {
        Ok(db) => db,
        Err(error) => return Delivery::tempfail(format!("store unavailable: {error}")),
    };
    let service = Service {
        config,
        templates: &templates,
        secret: &secret,
        now: now(),
    };
    // The routes are in the order of the recipients they came from.
    let services: Vec<(&String, &Route)> = envelope
        .recipients
        .iter()
        .zip(&routes)
        .filter(|(_, route)| route.is_service())
        .collect();
    let mut published = false;
    if !services.is_empty() {
        let done = store::transaction(&mut db, |tx| {
            let mut done = Vec::new();
            for &(recipient, route) in &services {
                let envelope = (recipient.as_str(), sender.unwrap_or(""));
                let (outcome, changed) = take_service_mail(tx, &service, route, envelope, &raw)?;
                published |= changed;
                done.push(format!("{}: {outcome}", route.kind()));
            }
            Ok::<_, anyhow::Error>(done)
        });
        match done {
            Ok(done) if routes.len() == services.len() => {
                return Delivery {
                    exit_code: 0,
                    message: done.join("; "),
                    published,
                }
            }
            Ok(_) => {}
            Err(error) => return Delivery::tempfail(format!("store unavailable: {error:#}")),
        }
    }
    let mut post = Filer::new(config).file_message(&raw, envelope, service.now);
    if crate::auth::wanted(config, &post) {
        let client = crate::auth::Client {
            ip: client,
            helo: helo.to_string(),
            mail_from: sender.unwrap_or("").to_string(),
        };
        let authentication = crate::auth::verify_now(config, raw, client);
        crate::auth::apply(&mut post, &authentication);
    }
    let taken = store::transaction(&mut db, |tx| {
        let (outcome, _) = crate::moderation::take(tx, &service, post.clone(), sender)?;
        Ok::<_, anyhow::Error>(vec![outcome])
    });
    match taken {
        Ok(outcomes) => match outcomes.into_iter().next() {
            // A loop is kept and answered with nothing: a bounce would
            // only feed it.
            Some(Outcome::Rejected { reason, .. })
                if reason.starts_with(crate::moderation::LOOP) =>
            {
                Delivery {
                    exit_code: 0,
                    message: reason,
                    published: false,
                }
            }
            Some(Outcome::Rejected { reason, .. }) => Delivery {
                exit_code: EX_DATAERR,
                message: reason,
                published: false,
            },
            Some(outcome) => Delivery {
                exit_code: 0,
                message: describe(&outcome, &post.list_code),
                published: published || matches!(outcome, Outcome::Stored { .. }),
            },
            None => Delivery::tempfail("store returned no outcome".to_string()),
        },
        Err(error) => Delivery::tempfail(format!("store unavailable: {error:#}")),
    }
}

/// Takes mail for one service address in `tx`, as the listeners do
/// ([`super::intake`]): postmaster and -owner passed on, the rest handled
/// by [`super::intake::handle_service_mail`]. `envelope` is the recipient
/// the route came from and the sender. Says what was done and whether a
/// post was published.
fn take_service_mail(
    tx: &Transaction<'_>,
    service: &Service<'_>,
    route: &Route,
    envelope: (&str, &str),
    raw: &[u8],
) -> anyhow::Result<(String, bool)> {
    let (recipient, sender) = envelope;
    let config = service.config;
    let (via, to, list) = match route {
        Route::Postmaster => (
            format!("postmaster@{}", config.site.domain),
            vec![config.site.operator.clone()],
            None,
        ),
        Route::Owner { list } => {
            let Some(configured) = config.list(list) else {
                anyhow::bail!("the list {list} is being reconfigured");
            };
            let editors = match configured.editors.is_empty() {
                true => vec![config.site.operator.clone()],
                false => configured.editors.clone(),
            };
            (
                ListAddresses::new(config, configured).owner,
                editors,
                Some(list.clone()),
            )
        }
        _ => {
            let (outcome, published) =
                super::intake::handle_service_mail(tx, service, route, recipient, sender, raw)?;
            return Ok((outcome, published.is_some()));
        }
    };
    for to in &to {
        let mut passed = forward(&via, to, sender, raw);
        passed.message.list_code = list.clone();
        match &passed.looped {
            None => outgoing::queue(tx, &passed.message, service.now)?,
            Some(reason) => outgoing::keep_unsent(tx, &passed.message, service.now, reason)?,
        };
    }
    Ok(("passed on".to_string(), false))
}

fn describe(outcome: &Outcome, list: &Option<String>) -> String {
    match outcome {
        Outcome::Stored { id } => {
            format!("stored as post {id} in {}", list.as_deref().unwrap_or("-"))
        }
        Outcome::Held { id, reason } => format!("held as post {id}: {reason}"),
        Outcome::Duplicate { id } => format!("duplicate of post {id}"),
        Outcome::Rejected { reason, .. } => reason.clone(),
    }
}

enum Input {
    Whole(Vec<u8>),
    TooLarge(usize),
}

/// Reads all of `input`, keeping at most `limit` bytes; past the limit the
/// rest is drained (so the MTA sees the whole message taken) and counted.
fn read_limited(input: impl Read, limit: usize) -> std::io::Result<Input> {
    let mut raw = Vec::new();
    let mut input = input.take(limit as u64 + 1);
    input.read_to_end(&mut raw)?;
    if raw.len() <= limit {
        return Ok(Input::Whole(raw));
    }
    let rest = std::io::copy(&mut input.into_inner(), &mut std::io::sink())?;
    Ok(Input::TooLarge(raw.len() + rest as usize))
}
