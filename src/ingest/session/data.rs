//! DATA (RFC 5321 4.1.1.4): the message itself, un-stuffed by smtp-proto
//! (RFC 5321 4.5.2), held to the size limit, and the replies once the
//! intake has it: one per message for SMTP, one per accepted recipient for
//! LMTP (RFC 2033 4.2).

use std::net::IpAddr;
use std::sync::Arc;

use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver};

use super::{reply, Flow, Next, Protocol, Session, State, DATA_CHUNK};
use crate::ingest::intake::Deferred;
use crate::ingest::route::Route;
use crate::ingest::Outcome;

/// One accepted recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address as given in RCPT TO (`postmaster` for a bare postmaster).
    pub address: String,
    /// Where its mail goes.
    pub route: Route,
}

/// A message received in full, with its envelope.
#[derive(Debug, Clone)]
pub struct Message {
    /// The protocol it arrived by.
    pub protocol: Protocol,
    /// The MAIL FROM reverse-path; empty for a bounce (`<>`).
    pub sender: String,
    /// The host the client named in its EHLO, HELO or LHLO, or the one an
    /// MTA in front named by XFORWARD (what SPF checks of a null sender,
    /// RFC 7208 2.3).
    pub helo: String,
    /// The client's IP address: the peer's, as the driver told the
    /// session, or the one an MTA in front named by XFORWARD.
    pub client: Option<IpAddr>,
    /// The accepted recipients in RCPT order; at least one.
    pub recipients: Vec<Recipient>,
    /// The message as sent, dot-unstuffed, ending in the CRLF before the
    /// final dot (empty for an empty message).
    pub content: Arc<Vec<u8>>,
}

impl Message {
    /// The recipients that are list posting addresses.
    pub fn post_recipients(&self) -> impl Iterator<Item = &Recipient> {
        self.recipients
            .iter()
            .filter(|recipient| matches!(recipient.route, Route::Post { .. }))
    }

    /// The service addresses among the recipients (postmaster, -request,
    /// -owner...), each once, in RCPT order.
    pub fn service_routes(&self) -> Vec<Route> {
        let mut routes: Vec<Route> = Vec::new();
        for recipient in &self.recipients {
            if recipient.route.is_service() && !routes.contains(&recipient.route) {
                routes.push(recipient.route.clone());
            }
        }
        routes
    }
}

/// What the intake made of a [`Message`], for [`Session::delivered`].
#[derive(Debug, Clone, Default)]
pub struct Delivered {
    /// The post filed for the list recipients, if there were any.
    pub post: Option<Result<Outcome, Deferred>>,
    /// What became of the message at each service address among the
    /// recipients.
    pub services: Vec<(Route, Result<(), Deferred>)>,
}

/// A message being received.
pub(super) struct Incoming {
    receiver: DataReceiver,
    content: Vec<u8>,
    /// Once over the limit: the rest is read and counted, not kept.
    discarding: Option<(DummyDataReceiver, usize)>,
}

/// A message at its final dot.
enum Received {
    Complete(Vec<u8>),
    TooLarge(usize),
}

impl Incoming {
    fn new() -> Self {
        let mut receiver = DataReceiver::new();
        // The receiver finds the end and dot-stuffing only after a CRLF it
        // has seen; the CRLF that ended the DATA command is that one, so a
        // message starts at a line start.
        let mut scratch = Vec::new();
        receiver.ingest(&mut b"\r\n".iter(), &mut scratch);
        Incoming {
            receiver,
            content: Vec::new(),
            discarding: None,
        }
    }

    /// Takes message bytes from `input` up to the final dot; returns how
    /// many it used and whether the message is complete.
    pub(super) fn ingest(&mut self, input: &[u8], limit: usize) -> (usize, bool) {
        let mut rest = input;
        while !rest.is_empty() {
            let chunk = &rest[..rest.len().min(DATA_CHUNK)];
            let mut bytes = chunk.iter();
            let done = match &mut self.discarding {
                Some((discard, size)) => {
                    let done = discard.ingest(&mut bytes);
                    *size += chunk.len() - bytes.len();
                    done
                }
                None => {
                    let done = self.receiver.ingest(&mut bytes, &mut self.content);
                    if !done && self.content.len() > limit {
                        let discard = DummyDataReceiver::new_data(&self.receiver);
                        self.discarding = Some((discard, self.content.len()));
                        self.content = Vec::new();
                    }
                    done
                }
            };
            rest = &rest[chunk.len() - bytes.len()..];
            if done {
                return (input.len() - rest.len(), true);
            }
        }
        (input.len(), false)
    }

    /// Message bytes kept so far.
    #[cfg(test)]
    pub(super) fn kept(&self) -> usize {
        self.content.len()
    }

    fn finish(self, limit: usize) -> Received {
        match self.discarding {
            Some((_, size)) => Received::TooLarge(size),
            None if self.content.len() > limit => Received::TooLarge(self.content.len()),
            None => Received::Complete(self.content),
        }
    }
}

impl Session {
    /// DATA: 354 and the message follows, if the envelope is complete.
    pub(super) fn data(&mut self, out: &mut Vec<u8>) -> Flow {
        if self.transaction.sender.is_none() {
            reply(out, "503 5.5.1 need MAIL before DATA");
        } else if self.transaction.recipients.is_empty() {
            reply(out, "554 5.5.1 no valid recipients");
        } else {
            reply(out, "354 end data with <CR><LF>.<CR><LF>");
            self.state = State::Data(Box::new(Incoming::new()));
        }
        Flow::Continue
    }

    /// At the final dot: a message for the intake, or the 552 for one over
    /// the limit (to be recorded). The transaction is over either way.
    pub(super) fn end_of_data(&mut self, incoming: Incoming, out: &mut Vec<u8>) -> Next {
        self.state = State::Command;
        let transaction = std::mem::take(&mut self.transaction);
        let limit = self.config.ingest.max_message_bytes;
        match incoming.finish(limit) {
            Received::TooLarge(size) => {
                let text =
                    format!("552 5.3.4 message is {size} bytes, over the limit of {limit} bytes");
                let routes: Vec<Route> = transaction
                    .recipients
                    .iter()
                    .map(|recipient| recipient.route.clone())
                    .collect();
                answer(self.protocol, &routes, |_| text.clone(), out);
                Next::Oversize(size)
            }
            Received::Complete(content) => {
                let routes = transaction
                    .recipients
                    .iter()
                    .map(|recipient| recipient.route.clone())
                    .collect();
                self.state = State::Delivering(routes);
                Next::Deliver(Message {
                    protocol: self.protocol,
                    sender: transaction.sender.unwrap_or_default(),
                    helo: transaction
                        .forwarded_helo
                        .unwrap_or_else(|| self.helo.clone()),
                    client: transaction.forwarded_client.unwrap_or(self.peer),
                    recipients: transaction.recipients,
                    content: Arc::new(content),
                })
            }
        }
    }
}

/// The replies for a delivered message.
pub(super) fn reply_delivered(
    protocol: Protocol,
    routes: &[Route],
    delivered: &Delivered,
    out: &mut Vec<u8>,
) {
    answer(
        protocol,
        routes,
        |route| match route {
            Route::Post { .. } => post_reply(delivered.post.as_ref()),
            service => service_reply(
                service,
                delivered
                    .services
                    .iter()
                    .find(|(route, _)| route == service)
                    .map(|(_, result)| result),
            ),
        },
        out,
    );
}

/// LMTP: one reply per recipient. SMTP: one for the message, the first
/// temporary failure if any (the client retries the whole message), else
/// the first permanent one, else the first success.
fn answer(
    protocol: Protocol,
    routes: &[Route],
    reply_for: impl Fn(&Route) -> String,
    out: &mut Vec<u8>,
) {
    let replies: Vec<String> = routes.iter().map(reply_for).collect();
    match protocol {
        Protocol::Lmtp => replies.iter().for_each(|text| reply(out, text)),
        Protocol::Smtp => {
            let chosen = ["4", "5", ""]
                .iter()
                .find_map(|class| replies.iter().find(|text| text.starts_with(class)));
            if let Some(text) = chosen {
                reply(out, text);
            }
        }
    }
}

fn post_reply(post: Option<&Result<Outcome, Deferred>>) -> String {
    match post {
        Some(Ok(Outcome::Stored { id })) => format!("250 2.0.0 stored as post {id}"),
        Some(Ok(Outcome::Held { id, reason })) => {
            format!(
                "250 2.0.0 held as post {id} for a moderator: {}",
                one_line(reason)
            )
        }
        Some(Ok(Outcome::Duplicate { id })) => format!("250 2.0.0 already stored as post {id}"),
        // A loop is kept and answered with nothing: a bounce would only
        // feed it (as the pipe exits 0).
        Some(Ok(Outcome::Rejected { id, reason }))
            if reason.starts_with(crate::moderation::LOOP) =>
        {
            format!(
                "250 2.0.0 kept as post {id}, not published: {}",
                one_line(reason)
            )
        }
        Some(Ok(Outcome::Rejected { reason, .. })) => format!("550 5.6.0 {}", one_line(reason)),
        Some(Err(deferred)) => format!(
            "451 4.3.0 {}; try again later",
            one_line(&deferred.to_string())
        ),
        None => "451 4.3.0 the post was not filed; try again later".into(),
    }
}

fn service_reply(route: &Route, result: Option<&Result<(), Deferred>>) -> String {
    match result {
        Some(Ok(())) if *route == Route::Postmaster => "250 2.0.0 queued for the postmaster".into(),
        Some(Ok(())) => format!("250 2.0.0 received by the {} address", route.kind()),
        Some(Err(deferred)) => format!(
            "451 4.3.0 {}; try again later",
            one_line(&deferred.to_string())
        ),
        None => format!(
            "451 4.3.0 the message was not taken by the {} address; try again later",
            route.kind()
        ),
    }
}

/// A reason as one reply line: control characters become spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
