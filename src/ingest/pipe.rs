//! `tidings ingest`: one message on stdin, as an MTA pipe transport delivers
//! it (Postfix `pipe`, an alias `|tidings ingest`).
//!
//! The exit status is what the MTA acts on (sysexits.h): 0 once the post is
//! durably stored or held, 65 (EX_DATAERR) with a one-line reason for a
//! message that must bounce, 75 (EX_TEMPFAIL) when the store is busy, the
//! disk full or anything else went wrong on our side, so the MTA keeps the
//! message and retries: nothing is lost.

use std::io::Read;

use super::route::Route;
use super::{commit, now, Envelope, Filer, Outcome};
use crate::config::Config;
use crate::store;
use crate::subscribe::Service;
use crate::templates::Templates;
use crate::tokens::Secret;

/// sysexits.h: the message is at fault; the MTA bounces it.
pub const EX_DATAERR: u8 = 65;
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

/// Reads one message from `input` and stores it.
pub fn deliver(config: &Config, envelope: &Envelope, input: impl Read) -> Delivery {
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
    // Mail to a -bounces address is a bounce, whatever it looks like: read
    // and stored, never filed as a post.
    let bounces = envelope.recipients.iter().find_map(|recipient| {
        match super::route::route(config, recipient) {
            Ok(Route::Bounces { list, subscriber }) => Some((recipient, list, subscriber)),
            _ => None,
        }
    });
    if let Some((recipient, list, verp)) = bounces {
        return deliver_bounce(config, recipient, &list, verp.as_deref(), &raw);
    }
    let post = Filer::new(config).file_message(&raw, envelope, now());
    let mut db = match store::open(&config.database_path()) {
        Ok(db) => db,
        Err(error) => return Delivery::tempfail(format!("store unavailable: {error}")),
    };
    match store::transaction(&mut db, |tx| commit(tx, std::slice::from_ref(&post))) {
        Ok(outcomes) => match outcomes.into_iter().next() {
            Some(Outcome::Rejected { reason, .. }) => Delivery {
                exit_code: EX_DATAERR,
                message: reason,
                published: false,
            },
            Some(outcome) => Delivery {
                exit_code: 0,
                message: describe(&outcome, &post.list_code),
                published: matches!(outcome, Outcome::Stored { .. }),
            },
            None => Delivery::tempfail("store returned no outcome".to_string()),
        },
        Err(error) => Delivery::tempfail(format!("store unavailable: {error}")),
    }
}

/// Stores a bounce ([`crate::bounce::process`]): 0 once it is on disk,
/// 75 when it cannot be now; never 65, which would bounce a bounce.
fn deliver_bounce(
    config: &Config,
    recipient: &str,
    list: &str,
    verp: Option<&str>,
    raw: &[u8],
) -> Delivery {
    let sender = std::env::var("SENDER").unwrap_or_default();
    let prepared = Templates::load(&config.site.templates_dir)
        .and_then(|templates| Ok((templates, Secret::load_or_create(&config.site.data_dir)?)));
    let (templates, secret) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => return Delivery::tempfail(format!("cannot read bounces now: {error:#}")),
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
    match store::transaction(&mut db, |tx| {
        crate::bounce::process(tx, &service, list, verp, recipient, &sender, raw)
    }) {
        Ok(outcome) => Delivery {
            exit_code: 0,
            message: outcome,
            published: false,
        },
        Err(error) => Delivery::tempfail(format!("bounce not stored: {error:#}")),
    }
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
