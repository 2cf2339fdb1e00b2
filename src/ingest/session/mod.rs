//! One SMTP (RFC 5321) or LMTP (RFC 2033) conversation as a state machine,
//! without I/O: bytes in, replies and a next step out.
//!
//! [`Session::receive`] takes whatever the client sent and answers with
//! [`Output`]: the replies to write and what the driver does next, read
//! more, hand a complete [`Message`] to the intake, or close. The session
//! never touches a socket, a task or the clock: it says which deadline
//! applies ([`Session::deadline`]) and the driver enforces it, calling
//! [`Session::timed_out`] when it passes.
//!
//! smtp-proto parses each command line and un-stuffs DATA (RFC 5321 4.5.2);
//! this module frames the lines (at most [`MAX_COMMAND_LINE`] octets) and
//! keeps the limits that protect the daemon: the message size (RFC 1870),
//! recipients per message, and protocol errors per connection. The verbs
//! live in files named for them: `hello.rs` (greeting, EHLO, HELO, LHLO),
//! `mail.rs` (MAIL), `rcpt.rs` (RCPT, through [`super::route`]),
//! `data.rs` (DATA and the replies after it), `control.rs` (RSET, NOOP,
//! QUIT, VRFY, HELP and the verbs tidings does not offer).

mod control;
mod data;
mod hello;
mod mail;
mod rcpt;
mod xforward;

use std::net::IpAddr;
use std::sync::Arc;

use smtp_proto::Request;

use super::route::Route;
use crate::config::Config;

pub use data::{Delivered, Message, Recipient};
pub use hello::too_many_connections;

/// Longest command line accepted, CRLF included: smtp-proto's own bound,
/// well above RFC 5321 4.5.3.1.4's 512 octets. A longer line is answered
/// once with 500 and discarded up to its end.
pub const MAX_COMMAND_LINE: usize = smtp_proto::request::receiver::MAX_LINE_LENGTH;

/// Message bytes un-stuffed at a time, so the size limit is checked at
/// least this often and a message never grows past the limit by more.
const DATA_CHUNK: usize = 64 * 1024;

/// Which protocol a session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// RFC 2033: LHLO, one reply per accepted recipient after DATA.
    Lmtp,
    /// RFC 5321: EHLO or HELO, one reply per message.
    Smtp,
}

impl Protocol {
    /// The name given in the greeting.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Lmtp => "LMTP",
            Protocol::Smtp => "ESMTP",
        }
    }
}

/// What a session enforces by itself.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Recipients accepted per message.
    pub max_recipients: usize,
    /// Protocol errors tolerated per connection before it is closed.
    pub max_errors: u32,
}

/// Which time limit applies while the session waits for input. The number
/// changes whenever a new command or message begins, so the driver starts a
/// new deadline exactly then, not at every read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Waiting for (the rest of) one command: the command timeout.
    Command(u64),
    /// Receiving a message after 354: the data timeout, for the whole message.
    Message(u64),
}

/// What the driver does after writing [`Output::replies`].
#[derive(Debug)]
pub enum Next {
    /// Read more input, within [`Session::deadline`].
    Read,
    /// Hand the message to the intake, then pass what became of it to
    /// [`Session::delivered`] before reading again.
    Deliver(Message),
    /// A message of this many bytes was over the size limit and has been
    /// answered 552: have it recorded as rejected, then go on with
    /// [`Session::resume`].
    Oversize(usize),
    /// Close the connection.
    Close,
}

/// The session's answer to input.
#[derive(Debug)]
pub struct Output {
    /// Replies to write, in order (possibly none).
    pub replies: Vec<u8>,
    /// What to do next.
    pub next: Next,
}

/// The envelope being built between MAIL and the end of DATA.
#[derive(Default)]
struct Transaction {
    sender: Option<String>,
    recipients: Vec<Recipient>,
    /// The client an MTA in front named by XFORWARD ADDR (`Some(None)`:
    /// named as unknown).
    forwarded_client: Option<Option<IpAddr>>,
    /// The HELO it named by XFORWARD HELO (empty: unknown).
    forwarded_helo: Option<String>,
}

enum State {
    /// Reading a command line into `Session::line`.
    Command,
    /// Dropping the rest of an overlong command line, up to its LF.
    Discarding,
    /// Reading a message after 354.
    Data(Box<data::Incoming>),
    /// Waiting for [`Session::delivered`] with the routes to answer for.
    Delivering(Vec<Route>),
    /// Nothing more is read.
    Closed,
}

/// What handling one command led to.
enum Flow {
    Continue,
    Close,
}

/// One client's conversation with tidings.
pub struct Session {
    protocol: Protocol,
    config: Arc<Config>,
    rules: Rules,
    greeted: bool,
    /// The host named in the last EHLO, HELO or LHLO.
    helo: String,
    /// The peer's address, when the driver told it.
    peer: Option<IpAddr>,
    /// Whether the peer may name another client by XFORWARD.
    forwarding: bool,
    transaction: Transaction,
    errors: u32,
    state: State,
    /// The command line read so far.
    line: Vec<u8>,
    /// Input that followed a complete message, handled after delivery.
    pending: Vec<u8>,
    /// Counts commands and messages begun, for [`Deadline`].
    begun: u64,
}

impl Session {
    /// A session for one connection, under the configuration of the moment.
    pub fn new(protocol: Protocol, config: Arc<Config>, rules: Rules) -> Session {
        Session {
            protocol,
            config,
            rules,
            greeted: false,
            helo: String::new(),
            peer: None,
            forwarding: false,
            transaction: Transaction::default(),
            errors: 0,
            state: State::Command,
            line: Vec::new(),
            pending: Vec::new(),
            begun: 0,
        }
    }

    /// The 220 greeting to send first (RFC 5321 4.3.1).
    pub fn greeting(&self) -> Vec<u8> {
        hello::greeting(&self.config.site.domain, self.protocol).into_bytes()
    }

    /// Handles what the client sent. Must not be called between a
    /// [`Next::Deliver`] and the matching [`Session::delivered`].
    pub fn receive(&mut self, input: &[u8]) -> Output {
        let mut replies = Vec::new();
        if matches!(self.state, State::Delivering(_)) {
            debug_assert!(false, "receive called while a delivery is owed");
            self.pending.extend_from_slice(input);
            return Output {
                replies,
                next: Next::Read,
            };
        }
        let next = self.advance(input, &mut replies);
        Output { replies, next }
    }

    /// Answers for the message of the last [`Next::Deliver`] with what the
    /// intake made of it, then goes on with input that followed it.
    pub fn delivered(&mut self, delivered: Delivered) -> Output {
        let mut replies = Vec::new();
        let State::Delivering(routes) = std::mem::replace(&mut self.state, State::Command) else {
            debug_assert!(false, "delivered called without a delivery");
            return Output {
                replies,
                next: Next::Read,
            };
        };
        data::reply_delivered(self.protocol, &routes, &delivered, &mut replies);
        self.begun += 1;
        let pending = std::mem::take(&mut self.pending);
        let next = self.advance(&pending, &mut replies);
        Output { replies, next }
    }

    /// Goes on with the input that followed an oversize message, after
    /// [`Next::Oversize`].
    pub fn resume(&mut self) -> Output {
        let mut replies = Vec::new();
        let pending = std::mem::take(&mut self.pending);
        let next = self.advance(&pending, &mut replies);
        Output { replies, next }
    }

    /// The deadline that applies while waiting for input now.
    pub fn deadline(&self) -> Deadline {
        match self.state {
            State::Data(_) => Deadline::Message(self.begun),
            _ => Deadline::Command(self.begun),
        }
    }

    /// Whether no transaction is open: the client may be sent away at
    /// shutdown without losing a message in the middle.
    pub fn is_idle(&self) -> bool {
        self.transaction.sender.is_none()
            && matches!(self.state, State::Command | State::Discarding)
    }

    /// The 421 to send when the deadline passed; the session is over.
    pub fn timed_out(&mut self) -> Vec<u8> {
        let what = match self.state {
            State::Data(_) => "data",
            _ => "command",
        };
        self.state = State::Closed;
        format!("421 4.4.2 {} {what} timeout\r\n", self.config.site.domain).into_bytes()
    }

    /// The 421 to send when the daemon stops (RFC 5321 3.8); the session is
    /// over.
    pub fn shut_down(&mut self) -> Vec<u8> {
        self.state = State::Closed;
        format!("421 4.3.2 {} shutting down\r\n", self.config.site.domain).into_bytes()
    }

    /// Runs `input` through the state machine; input after a complete
    /// message is kept for [`Session::delivered`].
    fn advance(&mut self, input: &[u8], out: &mut Vec<u8>) -> Next {
        let (used, next) = self.run(input, out);
        if let Next::Deliver(_) | Next::Oversize(_) = next {
            self.pending.extend_from_slice(&input[used..]);
        }
        next
    }

    /// Consumes `input` until it runs out, a message is complete or the
    /// session ends; returns how much was used and what comes next.
    fn run(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, Next) {
        let mut rest = input;
        loop {
            let used = input.len() - rest.len();
            match &mut self.state {
                State::Closed => return (used, Next::Close),
                State::Delivering(_) => unreachable!("a delivery returns before this"),
                State::Discarding => match find_lf(rest) {
                    Some(end) => {
                        rest = &rest[end + 1..];
                        self.state = State::Command;
                        self.begun += 1;
                    }
                    None => return (input.len(), Next::Read),
                },
                State::Command => {
                    let (head, complete) = match find_lf(rest) {
                        Some(end) => (&rest[..end + 1], true),
                        None => (rest, false),
                    };
                    rest = &rest[head.len()..];
                    if self.line.len() + head.len() > MAX_COMMAND_LINE {
                        self.line.clear();
                        if !complete {
                            self.state = State::Discarding;
                        } else {
                            self.begun += 1;
                        }
                        self.errors += 1;
                        control::line_too_long(out);
                        if self.too_many_errors(out) {
                            return (input.len() - rest.len(), Next::Close);
                        }
                        continue;
                    }
                    self.line.extend_from_slice(head);
                    if !complete {
                        return (input.len(), Next::Read);
                    }
                    let line = std::mem::take(&mut self.line);
                    self.begun += 1;
                    let flow = self.command(&line, out);
                    // Keep the allocation for the next line.
                    self.line = line;
                    self.line.clear();
                    let used = input.len() - rest.len();
                    if let Flow::Close = flow {
                        return (used, Next::Close);
                    }
                }
                State::Data(incoming) => {
                    let limit = self.config.ingest.max_message_bytes;
                    let (taken, done) = incoming.ingest(rest, limit);
                    rest = &rest[taken..];
                    if !done {
                        return (input.len(), Next::Read);
                    }
                    self.begun += 1;
                    let used = input.len() - rest.len();
                    let finished = std::mem::replace(&mut self.state, State::Command);
                    if let State::Data(incoming) = finished {
                        return (used, self.end_of_data(*incoming, out));
                    }
                }
            }
        }
    }

    /// Parses and handles one complete command line.
    fn command(&mut self, line: &[u8], out: &mut Vec<u8>) -> Flow {
        if xforward::is_xforward(line) {
            let flow = self.xforward(line, out);
            return match flow {
                Flow::Continue if self.too_many_errors(out) => Flow::Close,
                flow => flow,
            };
        }
        let flow = match Request::parse(&mut line.iter()) {
            Err(error) => {
                self.errors += 1;
                control::syntax_error(&error, out);
                Flow::Continue
            }
            Ok(Request::Lhlo { host }) => self.hello(hello::Verb::Lhlo, &host, out),
            Ok(Request::Ehlo { host }) => self.hello(hello::Verb::Ehlo, &host, out),
            Ok(Request::Helo { host }) => self.hello(hello::Verb::Helo, &host, out),
            Ok(Request::Mail { from }) => self.mail(from, line, out),
            Ok(Request::Rcpt { to }) => self.rcpt(to, line, out),
            Ok(Request::Data) => self.data(out),
            Ok(Request::Rset) => self.reset(out),
            Ok(Request::Noop { .. }) => control::noop(out),
            Ok(Request::Vrfy { .. }) => control::verify(out),
            Ok(Request::Help { .. }) => control::help(out),
            Ok(Request::Quit) => self.quit(out),
            Ok(
                Request::StartTls
                | Request::Auth { .. }
                | Request::Bdat { .. }
                | Request::Expn { .. }
                | Request::Etrn { .. }
                | Request::Atrn { .. }
                | Request::Burl { .. },
            ) => {
                self.errors += 1;
                control::not_implemented(out)
            }
        };
        match flow {
            Flow::Continue if self.too_many_errors(out) => Flow::Close,
            flow => flow,
        }
    }

    /// Closes the session once the protocol errors reached the limit.
    fn too_many_errors(&mut self, out: &mut Vec<u8>) -> bool {
        if self.errors < self.rules.max_errors {
            return false;
        }
        reply(out, "421 4.7.0 too many errors, closing");
        self.state = State::Closed;
        true
    }
}

/// Longest reply line, CRLF included (RFC 5321 4.5.3.1.5).
const MAX_REPLY_LINE: usize = 512;

/// Appends one reply line with its CRLF. The text may quote what the
/// client sent (a HELO host, an address, a parameter): its control
/// characters become spaces, so it can neither end the line early nor
/// write one of its own, and the line is cut to [`MAX_REPLY_LINE`].
fn reply(out: &mut Vec<u8>, text: &str) {
    let mut length = 0;
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        length += c.len_utf8();
        if length > MAX_REPLY_LINE - 2 {
            break;
        }
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

fn find_lf(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&byte| byte == b'\n')
}

#[cfg(test)]
mod tests;
