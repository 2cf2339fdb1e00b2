//! The ways out, all through lettre: an SMTP relay (plain, STARTTLS or
//! implicit TLS, optional AUTH; each delivery worker keeps its own
//! connection, so `connections` workers make the pool), the sendmail
//! binary, and the file transport that writes each message with its
//! envelope into the outbox directory (the default, which works on a fresh
//! machine).
//!
//! Where the relay offers PIPELINING (RFC 2920), a transaction's MAIL,
//! RCPT and DATA go in one write and their replies are read together, so a
//! message costs two round trips instead of four; lettre's own client
//! neither records nor uses the extension ([`pipelines`]).
//!
//! Errors are sorted the way the outbox acts on them, after lettre's
//! `is_transient`/`is_permanent`: a 5xx fails the recipient, a 4xx or any
//! transport trouble defers it, and failing to reach the relay at all
//! stops the run. A 4xx is recorded with the command it answered
//! (`RCPT TO: transient error (450): ...`), so that a give-up days later
//! can tell a recipient the relay deferred from a relay in trouble
//! ([`deferred_for_recipient`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use lettre::{AsyncFileTransport, AsyncSendmailTransport, AsyncTransport, Tokio1Executor};

use crate::config::{Config, Tls, Transport};

/// One recipient's message, in the form its transport takes.
pub enum Outgoing {
    /// The message as it is.
    Bytes(Vec<u8>),
    /// For SMTP: the message as the DATA phase carries it, dot-stuffed and
    /// closed by "." CRLF ([`dot_stuff`], [`close_data`]): the recipient's
    /// own header, then the body every recipient shares, not copied.
    Data { head: String, shared: Arc<str> },
}

impl Outgoing {
    /// Its size on the way out.
    pub fn len(&self) -> usize {
        match self {
            Outgoing::Bytes(bytes) => bytes.len(),
            Outgoing::Data { head, shared } => head.len() + shared.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Appends `text` to `out` in the form of SMTP's DATA phase (RFC 5321
/// 4.5.2): a line that begins with "." gets a second one. `text` is taken
/// to begin a line; lines end in CRLF, as lettre's encoder has them.
pub fn dot_stuff(text: &str, out: &mut String) {
    for line in text.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
}

/// Closes dot-stuffed message text with the end of data, "." on a line of
/// its own; the message's own last CRLF is the first of the terminator.
pub fn close_data(out: &mut String) {
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
}

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Try again later: a 4xx reply, or trouble on the way. `unreachable`
    /// when the relay could not be reached at all.
    Transient { reply: String, unreachable: bool },
    /// Refused for good: a 5xx reply, or a message that cannot be sent.
    Permanent { reply: String },
}

/// The command of a transaction a refusal answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Mail,
    Rcpt,
    /// DATA, or the message after it: both replies answer DATA (RFC 5321
    /// 4.1.1.4).
    Data,
}

impl Command {
    /// How a deferral's reply names it.
    fn name(self) -> &'static str {
        match self {
            Command::Mail => "MAIL FROM",
            Command::Rcpt => "RCPT TO",
            Command::Data => "DATA",
        }
    }
}

/// Whether a deferral's recorded reply says the relay deferred the
/// recipient itself: a 4xx other than 421 to RCPT TO or to DATA, each of
/// tidings' transactions carrying one recipient. 421 (the relay closing
/// the session), a refused MAIL FROM, a relay not reached, a timeout, a
/// dropped connection and sendmail's or the outbox's trouble are the
/// relay's, not the recipient's.
pub fn deferred_for_recipient(reply: &str) -> bool {
    let answer = [Command::Rcpt, Command::Data]
        .into_iter()
        .find_map(|command| reply.strip_prefix(command.name())?.strip_prefix(": "));
    let Some(code) = answer.and_then(|answer| answer.strip_prefix("transient error (")) else {
        return false;
    };
    let code = code.as_bytes();
    code.len() >= 4
        && code[0] == b'4'
        && code[1..3].iter().all(u8::is_ascii_digit)
        && code[3] == b')'
        && &code[..3] != b"421"
}

/// SMTP relay settings.
#[derive(Clone)]
pub struct SmtpRelay {
    host: String,
    port: u16,
    tls: Tls,
    /// Whom to trust and how, unless `tls` is `none`.
    tls_parameters: Option<TlsParameters>,
    hello: ClientId,
    credentials: Option<Credentials>,
    timeout: Duration,
}

/// A configured way out.
pub enum Relay {
    Smtp(SmtpRelay),
    /// The sendmail command, and how long one message may take it.
    Sendmail(AsyncSendmailTransport<Tokio1Executor>, Duration),
    File(AsyncFileTransport<Tokio1Executor>),
}

impl Relay {
    /// The transport `[delivery]` configures.
    pub fn from_config(config: &Config) -> anyhow::Result<Relay> {
        let delivery = &config.delivery;
        Ok(match delivery.transport {
            Transport::Smtp => {
                let credentials = match (&delivery.username, &delivery.password_file) {
                    (Some(user), Some(file)) => {
                        let password = std::fs::read_to_string(file).with_context(|| {
                            format!("reading the relay password from {}", file.display())
                        })?;
                        Some(Credentials::new(user.clone(), password.trim().to_string()))
                    }
                    // config refuses a username without password_file.
                    _ => None,
                };
                let tls_parameters = match delivery.tls {
                    Tls::None => None,
                    _ => Some(tls_parameters(
                        &delivery.host,
                        delivery.tls_ca_file.as_deref(),
                    )?),
                };
                Relay::Smtp(SmtpRelay {
                    host: delivery.host.clone(),
                    port: delivery.port,
                    tls: delivery.tls,
                    tls_parameters,
                    hello: ClientId::Domain(delivery.helo_name.clone()),
                    credentials,
                    timeout: Duration::from_secs(delivery.timeout_seconds),
                })
            }
            Transport::Sendmail => Relay::Sendmail(
                AsyncSendmailTransport::<Tokio1Executor>::new_with_command(
                    delivery.sendmail_command.as_os_str(),
                ),
                Duration::from_secs(delivery.timeout_seconds),
            ),
            Transport::File => {
                std::fs::create_dir_all(&delivery.outbox_dir).with_context(|| {
                    format!("creating the outbox {}", delivery.outbox_dir.display())
                })?;
                Relay::File(AsyncFileTransport::<Tokio1Executor>::with_envelope(
                    &delivery.outbox_dir,
                ))
            }
        })
    }

    /// Whether messages go out by SMTP, which takes them in DATA form.
    pub fn speaks_smtp(&self) -> bool {
        matches!(self, Relay::Smtp(_))
    }

    /// A connection of its own for one delivery worker.
    pub fn connection(&self) -> Connection<'_> {
        Connection {
            relay: self,
            smtp: None,
            pipelining: false,
            opened: None,
        }
    }

    /// Says what the transport is, for reports.
    pub fn describe(&self) -> String {
        match self {
            Relay::Smtp(smtp) => format!("smtp {}:{}", smtp.host, smtp.port),
            Relay::Sendmail(..) => "sendmail".to_string(),
            Relay::File(_) => "file".to_string(),
        }
    }
}

/// One worker's way out; for SMTP, a connection kept open between messages
/// and opened again after an error.
pub struct Connection<'a> {
    relay: &'a Relay,
    smtp: Option<AsyncSmtpConnection>,
    /// Whether the open session's server offers PIPELINING.
    pipelining: bool,
    /// The next message's transaction, opened ahead: its MAIL, RCPT and
    /// DATA went with the last message's content ([`Connection::send`]'s
    /// `then`) and were answered. The envelope it is for, and how the
    /// server took it.
    opened: Option<(Envelope, Result<(), Refused>)>,
}

impl Connection<'_> {
    /// Whether this connection takes messages in DATA form.
    pub fn speaks_smtp(&self) -> bool {
        self.relay.speaks_smtp()
    }

    /// Whether [`Connection::send`] can open the next message's
    /// transaction with this one's content: an open session whose server
    /// offers PIPELINING.
    pub fn chains(&self) -> bool {
        self.smtp.is_some() && self.pipelining
    }

    /// Forgets the session, after which the next message connects again.
    fn forget(&mut self) {
        self.smtp = None;
        self.opened = None;
    }

    /// Whether the way out takes 8-bit text (RFC 6152): a relay that
    /// offers 8BITMIME (connecting to ask), sendmail and the outbox always.
    pub async fn takes_8bit(&mut self) -> Result<bool, SendError> {
        let Relay::Smtp(relay) = self.relay else {
            return Ok(true);
        };
        self.open(relay).await?;
        let connection = self.smtp.as_ref().expect("opened above");
        Ok(connection
            .server_info()
            .supports_feature(Extension::EightBitMime))
    }

    /// Connects to `relay` unless connected.
    async fn open(&mut self, relay: &SmtpRelay) -> Result<(), SendError> {
        if self.smtp.is_some() {
            return Ok(());
        }
        let reason = match tokio::time::timeout(relay.timeout, connect(relay)).await {
            Ok(Ok((connection, pipelining))) => {
                self.smtp = Some(connection);
                self.pipelining = pipelining;
                return Ok(());
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => "timed out".to_string(),
        };
        Err(SendError::Transient {
            reply: format!("cannot reach {}:{}: {reason}", relay.host, relay.port),
            unreachable: true,
        })
    }

    /// Sends one message; returns the server's reply.
    ///
    /// `then` is the message to be sent next, when the caller has it: where
    /// the server offers PIPELINING and both are in DATA form, its MAIL,
    /// RCPT and DATA go in the same write as this message's content (RFC
    /// 2920: content may begin a group, and DATA ends one), so that a
    /// message costs one round trip; the next call must then be for it.
    pub async fn send(
        &mut self,
        envelope: &Envelope,
        message: &Outgoing,
        then: Option<(&Envelope, &Outgoing)>,
    ) -> Result<String, SendError> {
        match (self.relay, message) {
            (Relay::Smtp(relay), _) => {
                let timeout = relay.timeout;
                let opened = match self.opened.take() {
                    // The session failed before the server answered: the
                    // message never went; connect again and send it.
                    Some((_, Err(Refused::Lettre { error, .. }))) if error.status().is_none() => {
                        if let Some(mut connection) = self.smtp.take() {
                            connection.abort().await;
                        }
                        None
                    }
                    Some((ahead, opened)) if ahead == *envelope => Some(opened),
                    // A transaction opened for another message leaves the
                    // session out of step: start again.
                    Some(_) => {
                        if let Some(mut connection) = self.smtp.take() {
                            connection.abort().await;
                        }
                        None
                    }
                    None => None,
                };
                self.open(relay).await?;
                let connection = self.smtp.as_mut().expect("connected above");
                let (pipelining, ahead) = (self.pipelining, &mut self.opened);
                // A whole transaction may take longer than one reply: allow
                // the timeout per 64 KiB on top.
                let limit = timeout * (2 + (message.len() / 65_536) as u32);
                let transaction = async {
                    match message {
                        Outgoing::Data { head, shared } => {
                            let content = Content([head, shared]);
                            if pipelining {
                                let then = then.and_then(|(envelope, message)| match message {
                                    Outgoing::Data { head, shared } => {
                                        Some((envelope, Content([head, shared])))
                                    }
                                    Outgoing::Bytes(_) => None,
                                });
                                let exchange = Pipelined {
                                    opened,
                                    then,
                                    ahead,
                                };
                                transact_pipelined(connection, envelope, content, exchange).await
                            } else {
                                transact(connection, envelope, content).await
                            }
                        }
                        Outgoing::Bytes(bytes) => {
                            // lettre ends DATA with CRLF "." CRLF whatever
                            // the message ends with; without this the
                            // message would gain an empty last line (RFC
                            // 5321 4.1.1.4 counts the message's own final
                            // CRLF as the first of the terminator).
                            let bytes = bytes.strip_suffix(b"\r\n").unwrap_or(bytes);
                            connection
                                .send(envelope, bytes)
                                .await
                                .map_err(Refused::from)
                        }
                    }
                };
                match tokio::time::timeout(limit, transaction).await {
                    Ok(Ok(response)) => Ok(reply_text(&response)),
                    Ok(Err(Refused::Lettre { error, command })) => {
                        // A server's refusal ends the transaction, not the
                        // session: RSET and go on with the next message
                        // (unless the next one's transaction is open
                        // already, which a refused content's final reply
                        // left clear). Anything else leaves the session in
                        // doubt.
                        let answered = error.status().is_some();
                        if connection.has_broken()
                            || !answered
                            || (self.opened.is_none() && connection.command(Rset).await.is_err())
                        {
                            connection.abort().await;
                            self.forget();
                        }
                        Err(smtp_error(&error, command))
                    }
                    // Found out before MAIL: the session is untouched.
                    Ok(Err(Refused::Unsupported(reply))) => Err(SendError::Permanent { reply }),
                    Err(_) => {
                        self.forget();
                        Err(SendError::Transient {
                            reply: "timed out during the SMTP transaction".to_string(),
                            unreachable: false,
                        })
                    }
                }
            }
            (Relay::Sendmail(sendmail, timeout), Outgoing::Bytes(message)) => {
                // A sendmail that hangs (postdrop refused by a sandbox, a
                // full queue) is given up on after timeout_seconds; the
                // message is tried again later. Dropping lettre's future
                // kills the child.
                let sent = tokio::time::timeout(*timeout, sendmail.send_raw(envelope, message));
                match sent.await {
                    Ok(Ok(())) => Ok("accepted by sendmail".to_string()),
                    Ok(Err(error)) => Err(SendError::Transient {
                        reply: format!("sendmail: {error}"),
                        unreachable: false,
                    }),
                    Err(_) => Err(SendError::Transient {
                        reply: format!(
                            "sendmail: no answer within {} s (timeout_seconds)",
                            timeout.as_secs()
                        ),
                        unreachable: true,
                    }),
                }
            }
            (Relay::File(file), Outgoing::Bytes(message)) => {
                match file.send_raw(envelope, message).await {
                    Ok(id) => Ok(format!("written to the outbox as {id}.eml")),
                    Err(error) => Err(SendError::Transient {
                        reply: format!("outbox: {error}"),
                        unreachable: true,
                    }),
                }
            }
            (_, Outgoing::Data { .. }) => {
                unreachable!("only SMTP is handed messages in DATA form")
            }
        }
    }

    /// Ends an open SMTP session politely, or, in the middle of a
    /// transaction opened ahead whose content never came, by closing the
    /// connection: the server then drops the message unfinished.
    pub async fn close(&mut self) {
        let in_data = matches!(self.opened.take(), Some((_, Ok(()))));
        if let Some(mut connection) = self.smtp.take() {
            if in_data {
                connection.abort().await;
            } else {
                let _ = connection.quit().await;
            }
        }
    }
}

/// Why [`transact`] did not get a message through.
enum Refused {
    /// What lettre reported, and the command whose reply it was, when
    /// known.
    Lettre {
        error: lettre::transport::smtp::Error,
        command: Option<Command>,
    },
    /// The message needs an extension the server does not offer.
    Unsupported(String),
}

impl Refused {
    /// `error` in answer to `command`.
    fn to(command: Command) -> impl FnOnce(lettre::transport::smtp::Error) -> Refused {
        move |error| Refused::Lettre {
            error,
            command: Some(command),
        }
    }
}

impl From<lettre::transport::smtp::Error> for Refused {
    fn from(error: lettre::transport::smtp::Error) -> Refused {
        Refused::Lettre {
            error,
            command: None,
        }
    }
}

/// One SMTP transaction for a message already in DATA form: MAIL, RCPT
/// and DATA with lettre's commands, then the content and its closing dot
/// in a single write, answered by the transaction's reply.
///
/// The same exchange as lettre's `send`, without its encoder: that one
/// dot-stuffs a byte at a time, a fifth of the CPU a digest fan-out spent,
/// where a digest body is the same for every recipient and is stuffed once
/// ([`super::message::Prepared`]).
async fn transact(
    connection: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    data: Content<'_>,
) -> Result<Response, Refused> {
    let parameters = mail_parameters(connection, envelope, &data)?;
    connection
        .command(Mail::new(envelope.from().cloned(), parameters))
        .await
        .map_err(Refused::to(Command::Mail))?;
    for recipient in envelope.to() {
        connection
            .command(Rcpt::new(recipient.clone(), Vec::new()))
            .await
            .map_err(Refused::to(Command::Rcpt))?;
    }
    connection
        .command(Data)
        .await
        .map_err(Refused::to(Command::Data))?;
    // `command` writes what it is given and reads one reply: here the
    // content with its closing dot, and the reply to the whole message.
    connection
        .command(data)
        .await
        .map_err(Refused::to(Command::Data))
}

/// What a pipelined transaction carries besides its own message.
struct Pipelined<'a, 'b> {
    /// How the server took this message's MAIL, RCPT and DATA, when they
    /// went ahead with the last message's content.
    opened: Option<Result<(), Refused>>,
    /// The next message, whose MAIL, RCPT and DATA go with this one's
    /// content.
    then: Option<(&'a Envelope, Content<'a>)>,
    /// Where the next message's transaction is left, opened.
    ahead: &'b mut Option<(Envelope, Result<(), Refused>)>,
}

/// [`transact`] for a server that offers PIPELINING: MAIL, every RCPT and
/// DATA written at once (unless they went ahead with the last message's
/// content), then their replies read in order; the content follows once
/// DATA is answered 354, DATA being where a group ends (RFC 2920, 3.1),
/// and with it the next message's MAIL, RCPT and DATA, whose replies are
/// read after the content's. The first refusal is the transaction's.
async fn transact_pipelined(
    connection: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    data: Content<'_>,
    exchange: Pipelined<'_, '_>,
) -> Result<Response, Refused> {
    let opened = match exchange.opened {
        Some(opened) => opened,
        None => {
            let parameters = mail_parameters(connection, envelope, &data)?;
            let group = opening(envelope, parameters);
            let first = connection.command(Group(&group)).await;
            read_opening(connection, envelope, first).await
        }
    };
    opened?;
    // The next message's commands, unless its MAIL needs what the server
    // does not offer (which its own transaction then reports).
    let next = exchange.then.and_then(|(envelope, data)| {
        let parameters = mail_parameters(connection, envelope, &data).ok()?;
        Some((envelope, opening(envelope, parameters)))
    });
    let Some((next, group)) = next else {
        return connection
            .command(data)
            .await
            .map_err(Refused::to(Command::Data));
    };
    let reply = connection.command(Chained(data, &group)).await;
    // The replies to the next message's commands follow the content's,
    // unless the connection failed.
    let answered = match &reply {
        Ok(_) => true,
        Err(error) => error.status().is_some() && !connection.has_broken(),
    };
    if answered {
        let first = connection.read_response().await;
        let opened = read_opening(connection, next, first).await;
        *exchange.ahead = Some((next.clone(), opened));
    }
    reply.map_err(Refused::to(Command::Data))
}

/// MAIL with `parameters`, RCPT for each recipient and DATA, as one group.
fn opening(envelope: &Envelope, parameters: Vec<MailParameter>) -> String {
    let mut group = Mail::new(envelope.from().cloned(), parameters).to_string();
    for recipient in envelope.to() {
        group.push_str(&Rcpt::new(recipient.clone(), Vec::new()).to_string());
    }
    group.push_str(&Data.to_string());
    group
}

/// Reads the replies to an [`opening`] group for `envelope` after the
/// first, MAIL's (`first`), all of them, so that the session stays in step
/// whatever they say: whether DATA may go on, or the first refusal. A DATA
/// taken although MAIL or RCPT was not gets an empty message, ended at
/// once.
async fn read_opening(
    connection: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    first: Result<Response, lettre::transport::smtp::Error>,
) -> Result<(), Refused> {
    let mut refused = first.err().map(Refused::to(Command::Mail));
    for _ in envelope.to() {
        let reply = connection.read_response().await;
        refused = refused.or(reply.err().map(Refused::to(Command::Rcpt)));
    }
    let data_reply = connection.read_response().await;
    match (refused, data_reply) {
        (None, Ok(_)) => Ok(()),
        (None, Err(error)) => Err(Refused::to(Command::Data)(error)),
        (Some(refused), Ok(_)) => {
            let _ = connection.command(Group(".\r\n")).await;
            Err(refused)
        }
        (Some(refused), Err(_)) => Err(refused),
    }
}

/// A message's content, then the next transaction's commands, in one write.
struct Chained<'a>(Content<'a>, &'a str);

impl std::fmt::Display for Chained<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)?;
        f.write_str(self.1)
    }
}

/// Commands written as they are, in one piece.
struct Group<'a>(&'a str);

impl std::fmt::Display for Group<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The MAIL parameters `data` needs of the server (SMTPUTF8, 8BITMIME), or
/// why the server cannot take it.
fn mail_parameters(
    connection: &AsyncSmtpConnection,
    envelope: &Envelope,
    data: &Content<'_>,
) -> Result<Vec<MailParameter>, Refused> {
    let offers = |extension| connection.server_info().supports_feature(extension);
    let mut parameters = Vec::new();
    let addresses_ascii = envelope
        .to()
        .iter()
        .chain(envelope.from())
        .all(|address| AsRef::<str>::as_ref(address).is_ascii());
    if !addresses_ascii {
        if !offers(Extension::SmtpUtfEight) {
            return Err(Refused::Unsupported(
                "the address is not ASCII and the relay does not offer SMTPUTF8".to_string(),
            ));
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    // A post sent as it arrived may keep its author's raw UTF-8 fields
    // (RFC 6532), byte for byte for the author's signature. SMTPUTF8 is not
    // asked for them: a relay such as Postfix would then mark the message
    // and bounce it at the first server on the way that does not offer
    // SMTPUTF8, where unmarked it goes through as 8-bit text, as such
    // fields always have.
    if !data.0.iter().all(|part| part.is_ascii()) {
        if !offers(Extension::EightBitMime) {
            return Err(Refused::Unsupported(
                "the message has 8-bit text and the relay does not offer 8BITMIME".to_string(),
            ));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    Ok(parameters)
}

/// Message content in DATA form, in pieces written one after the other as
/// they are.
struct Content<'a>([&'a str; 2]);

impl std::fmt::Display for Content<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|part| f.write_str(part))
    }
}

/// TLS towards `host`, trusting the public web PKI and the CAs of
/// `ca_file`.
fn tls_parameters(host: &str, ca_file: Option<&Path>) -> anyhow::Result<TlsParameters> {
    let mut builder = TlsParameters::builder(host.to_string());
    if let Some(ca_file) = ca_file {
        let pem = std::fs::read(ca_file)
            .with_context(|| format!("reading tls_ca_file {}", ca_file.display()))?;
        let certificates = Certificate::from_pem(&pem).with_context(|| {
            format!(
                "tls_ca_file {} holds no PEM certificate we can read",
                ca_file.display()
            )
        })?;
        builder = builder.add_root_certificate(certificates);
    }
    builder
        .build()
        .with_context(|| format!("setting up TLS towards {host}"))
}

/// A session with `relay`, and whether its server offers PIPELINING.
async fn connect(relay: &SmtpRelay) -> Result<(AsyncSmtpConnection, bool), String> {
    let text = |error: lettre::transport::smtp::Error| error.to_string();
    let tls = || {
        relay
            .tls_parameters
            .clone()
            .ok_or_else(|| "TLS is not set up".to_string())
    };
    let mut connection = match relay.tls {
        // lettre wraps the socket in TLS itself before the greeting.
        Tls::Implicit => AsyncSmtpConnection::connect_tokio1(
            (relay.host.as_str(), relay.port),
            Some(relay.timeout),
            &relay.hello,
            Some(tls()?),
            None,
        )
        .await
        .map_err(text)?,
        // Our own socket, with Nagle's algorithm off: lettre writes the
        // end of DATA as a separate small segment, which Nagle would hold
        // back until the server's delayed ACK, some 40 ms per message.
        _ => {
            let stream = tokio::net::TcpStream::connect((relay.host.as_str(), relay.port))
                .await
                .map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &relay.hello)
                .await
                .map_err(text)?
        }
    };
    match relay.tls {
        Tls::Starttls => connection
            .starttls(tls()?, &relay.hello)
            .await
            .map_err(text)?,
        Tls::Opportunistic if connection.can_starttls() => connection
            .starttls(tls()?, &relay.hello)
            .await
            .map_err(text)?,
        _ => {}
    }
    let pipelining = pipelines(&mut connection, &relay.hello)
        .await
        .map_err(text)?;
    if let Some(credentials) = &relay.credentials {
        if !connection.is_encrypted() {
            let _ = connection.quit().await;
            return Err(
                "the relay offered no TLS, and the AUTH password is never sent in the clear"
                    .to_string(),
            );
        }
        connection
            .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
            .await
            .map_err(text)?;
    }
    Ok((connection, pipelining))
}

/// Whether the server offers PIPELINING: lettre keeps only the extensions
/// it uses from its EHLO, so the EHLO is said again (RFC 5321 allows it at
/// any time; it starts no transaction and comes before AUTH) and its
/// keywords read.
async fn pipelines(
    connection: &mut AsyncSmtpConnection,
    hello: &ClientId,
) -> Result<bool, lettre::transport::smtp::Error> {
    let reply = connection.command(Ehlo::new(hello.clone())).await?;
    let offered = reply.message().skip(1).any(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|keyword| keyword.eq_ignore_ascii_case("PIPELINING"))
    });
    Ok(offered)
}

/// "250 2.0.0 Ok: queued as X" from a reply.
fn reply_text(response: &Response) -> String {
    let lines: Vec<&str> = response.message().collect();
    format!("{} {}", response.code(), lines.join(" "))
        .trim()
        .to_string()
}

/// How the outbox takes `error`, the answer to `command` if known: a
/// deferral that is a server's reply says which command it answered
/// (read back by [`deferred_for_recipient`]). A refusal is kept as lettre
/// words it, which [`crate::bounce::is_smtp_refusal`] reads.
fn smtp_error(error: &lettre::transport::smtp::Error, command: Option<Command>) -> SendError {
    let reply = error.to_string();
    if error.is_permanent() {
        return SendError::Permanent { reply };
    }
    let reply = match command {
        Some(command) if error.status().is_some() => format!("{}: {reply}", command.name()),
        _ => reply,
    };
    SendError::Transient {
        reply,
        unreachable: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a server makes of DATA (RFC 5321 4.5.2): up to the line that
    /// is a lone ".", with one leading "." taken off every other line.
    fn receive(data: &str) -> String {
        let mut message = String::new();
        for line in data.split_inclusive("\r\n") {
            if line == ".\r\n" {
                return message;
            }
            message.push_str(line.strip_prefix('.').unwrap_or(line));
        }
        panic!("no end of data in {data:?}");
    }

    fn data_form(text: &str) -> String {
        let mut data = String::new();
        dot_stuff(text, &mut data);
        close_data(&mut data);
        data
    }

    #[test]
    fn only_a_4xx_to_rcpt_or_data_is_a_deferral_of_the_recipient() {
        for reply in [
            "RCPT TO: transient error (450): 4.2.1 <a@example.net>: Mailbox busy",
            "RCPT TO: transient error (452): 4.2.2 Over quota",
            "DATA: transient error (451): 4.3.0 Temporary failure, try again later",
        ] {
            assert!(deferred_for_recipient(reply), "{reply}");
        }
        for reply in [
            "MAIL FROM: transient error (451): 4.3.0 try later",
            "RCPT TO: transient error (421): 4.3.2 Service shutting down",
            "DATA: transient error (421): 4.3.2 closing",
            "transient error (450): 4.2.1 Mailbox busy",
            "cannot reach 127.0.0.1:25: Connection refused (os error 111)",
            "cannot reach 127.0.0.1:25: timed out",
            "timed out during the SMTP transaction",
            "RCPT TO: network error: connection reset",
            "RCPT TO: permanent error (550): 5.1.1 User unknown",
            "RCPT TO: transient error (4",
            "sendmail: exited with 75",
            "",
        ] {
            assert!(!deferred_for_recipient(reply), "{reply}");
        }
    }

    #[test]
    fn lines_that_begin_with_a_dot_survive_the_data_phase() {
        let text = ".\r\n..\r\n.x\r\nplain . dot\r\n\r\n.\r\nend\r\n";
        let data = data_form(text);
        assert!(data.starts_with("..\r\n...\r\n..x\r\nplain . dot\r\n\r\n..\r\n"));
        assert!(data.ends_with("end\r\n.\r\n"));
        assert_eq!(receive(&data), text);
    }

    #[test]
    fn only_a_crlf_begins_a_line_as_lettre_has_it() {
        // A bare LF is no line break to SMTP: no dot is added after it.
        assert_eq!(data_form("a\n.b\r\n"), "a\n.b\r\n.\r\n");
    }

    #[test]
    fn text_without_a_final_line_break_gets_one_before_the_dot() {
        assert_eq!(data_form("a\r\nb"), "a\r\nb\r\n.\r\n");
        assert_eq!(receive(&data_form("a\r\nb")), "a\r\nb\r\n");
        assert_eq!(data_form(""), "\r\n.\r\n");
    }
}
