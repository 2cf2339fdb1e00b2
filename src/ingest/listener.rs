//! The LMTP (RFC 2033) and SMTP (RFC 5321) listeners: how Postfix, Exim or
//! a smarthost hand mail to tidings.
//!
//! smtp-proto parses commands and un-stuffs DATA; this module holds the
//! session: which recipients are ours (a list's posting address; its
//! -request, -bounces and -confirm addresses are refused as not yet
//! supported; anything else is refused, so tidings is never a relay), the
//! limits (size, recipients, connections, command and data time, errors),
//! and the replies. A message is acknowledged with 250 only after the
//! [`Committer`] has it on disk; if the store fails the answer is 451 and
//! the sender keeps the message. LMTP answers once per accepted recipient.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver, RequestReceiver};
use smtp_proto::{EhloResponse, Error as ProtoError, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;

use super::committer::Committer;
use super::{now, Envelope, Filer, Outcome};
use crate::config::Config;

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// RFC 2033: LHLO, one reply per recipient after DATA.
    Lmtp,
    /// RFC 5321: EHLO/HELO, one reply per message.
    Smtp,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Lmtp => "LMTP",
            Protocol::Smtp => "ESMTP",
        }
    }
}

/// Limits that keep one client from holding the daemon.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Recipients accepted per message.
    pub max_recipients: usize,
    /// How long a client may take to send one command.
    pub command_timeout: Duration,
    /// How long a client may take to send a whole message.
    pub data_timeout: Duration,
    /// Protocol errors tolerated per connection before it is closed.
    pub max_errors: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            max_recipients: 50,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            max_errors: 10,
        }
    }
}

/// What every session of a listener shares.
pub struct Context {
    pub protocol: Protocol,
    pub config: watch::Receiver<Arc<Config>>,
    pub committer: Committer,
    pub limits: Limits,
    /// Called with each message's outcome and list, for logs and metrics.
    pub on_message: Box<dyn Fn(&Received) + Send + Sync>,
}

/// One received message, as logged.
#[derive(Debug)]
pub struct Received {
    pub protocol: Protocol,
    pub message_id: Option<String>,
    pub list: Option<String>,
    pub outcome: Result<Outcome, String>,
}

/// Accepts connections until `shutdown`, then waits for open sessions to
/// finish their transaction.
pub async fn run(listener: TcpListener, context: Arc<Context>, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(context.limits.max_connections));
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.expect("semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let context = context.clone();
        let shutdown = shutdown.clone();
        sessions.spawn(async move {
            let (reader, writer) = stream.into_split();
            if let Err(error) = session(reader, writer, peer, &context, &shutdown).await {
                tracing::debug!(%peer, %error, "session ended");
            }
            drop(permit);
        });
        // Reap finished sessions so the set does not grow without bound.
        while sessions.try_join_next().is_some() {}
    }
    drop(listener);
    while sessions.join_next().await.is_some() {}
}

/// What a session is in the middle of.
#[derive(Default)]
struct Transaction {
    sender: Option<String>,
    recipients: Vec<String>,
}

async fn session(
    mut reader: impl AsyncRead + Unpin,
    mut writer: impl AsyncWrite + Unpin,
    peer: SocketAddr,
    context: &Context,
    shutdown: &CancellationToken,
) -> std::io::Result<()> {
    let config = context.config.borrow().clone();
    let protocol = context.protocol;
    let domain = config.site.domain.clone();
    let limit = config.ingest.max_message_bytes;
    let filer = Filer::new(&config);
    let mut out: Vec<u8> =
        format!("220 {domain} tidings {} ready\r\n", protocol.name()).into_bytes();
    let mut greeted = false;
    let mut transaction = Transaction::default();
    let mut errors = 0u32;
    let mut commands = RequestReceiver::default();
    let mut input = vec![0u8; 16 * 1024];
    // Bytes read but not yet processed (pipelined commands after a message).
    let mut pending: Vec<u8> = Vec::new();

    loop {
        writer.write_all(&out).await?;
        writer.flush().await?;
        out.clear();
        if pending.is_empty() {
            // A client between transactions is told to come back later at
            // shutdown; one in the middle of a transaction is let finish.
            let idle = transaction.sender.is_none();
            let read = tokio::select! {
                _ = shutdown.cancelled(), if idle => {
                    writer.write_all(format!("421 4.3.2 {domain} shutting down\r\n").as_bytes()).await?;
                    return Ok(());
                }
                read = tokio::time::timeout(context.limits.command_timeout, reader.read(&mut input)) => read,
            };
            let n = match read {
                Ok(result) => result?,
                Err(_) => {
                    writer
                        .write_all(format!("421 4.4.2 {domain} command timeout\r\n").as_bytes())
                        .await?;
                    return Ok(());
                }
            };
            if n == 0 {
                return Ok(());
            }
            pending.extend_from_slice(&input[..n]);
        }
        let chunk = std::mem::take(&mut pending);
        let mut bytes = chunk.iter();
        loop {
            let request = match commands.ingest(&mut bytes) {
                Ok(request) => request,
                Err(ProtoError::NeedsMoreData { .. }) => break,
                Err(error) => {
                    errors += 1;
                    out.extend_from_slice(syntax_reply(&error).as_bytes());
                    if errors >= context.limits.max_errors {
                        out.extend_from_slice(b"421 4.7.0 too many errors, closing\r\n");
                        writer.write_all(&out).await?;
                        return Ok(());
                    }
                    continue;
                }
            };
            match request {
                Request::Lhlo { host } if protocol == Protocol::Lmtp => {
                    greeted = true;
                    transaction = Transaction::default();
                    ehlo(&mut out, &domain, &host, limit);
                }
                Request::Ehlo { host } if protocol == Protocol::Smtp => {
                    greeted = true;
                    transaction = Transaction::default();
                    ehlo(&mut out, &domain, &host, limit);
                }
                Request::Helo { host } if protocol == Protocol::Smtp => {
                    greeted = true;
                    transaction = Transaction::default();
                    out.extend_from_slice(format!("250 {domain} hello {host}\r\n").as_bytes());
                }
                Request::Lhlo { .. } | Request::Ehlo { .. } | Request::Helo { .. } => {
                    errors += 1;
                    let expected = if protocol == Protocol::Lmtp { "LHLO" } else { "EHLO or HELO" };
                    out.extend_from_slice(format!("500 5.5.1 this is {}: say {expected}\r\n", protocol.name()).as_bytes());
                }
                Request::Mail { from } => {
                    if !greeted {
                        out.extend_from_slice(b"503 5.5.1 say hello first\r\n");
                    } else if transaction.sender.is_some() {
                        out.extend_from_slice(b"503 5.5.1 sender already given\r\n");
                    } else if from.size > limit {
                        out.extend_from_slice(
                            format!("552 5.3.4 message size {} exceeds the limit of {limit} bytes\r\n", from.size).as_bytes(),
                        );
                    } else {
                        transaction.sender = Some(from.address.into_owned());
                        out.extend_from_slice(b"250 2.1.0 sender ok\r\n");
                    }
                }
                Request::Rcpt { to } => {
                    if transaction.sender.is_none() {
                        out.extend_from_slice(b"503 5.5.1 need MAIL before RCPT\r\n");
                    } else if transaction.recipients.len() >= context.limits.max_recipients {
                        out.extend_from_slice(b"452 4.5.3 too many recipients\r\n");
                    } else {
                        let (reply, accepted) = recipient_reply(&config, &to.address);
                        if accepted {
                            transaction.recipients.push(to.address.to_ascii_lowercase());
                        }
                        out.extend_from_slice(reply.as_bytes());
                    }
                }
                Request::Data => {
                    if transaction.sender.is_none() {
                        out.extend_from_slice(b"503 5.5.1 need MAIL before DATA\r\n");
                        continue;
                    }
                    if transaction.recipients.is_empty() {
                        out.extend_from_slice(b"554 5.5.1 no valid recipients\r\n");
                        continue;
                    }
                    out.extend_from_slice(b"354 end data with <CR><LF>.<CR><LF>\r\n");
                    writer.write_all(&out).await?;
                    writer.flush().await?;
                    out.clear();
                    let started = bytes.as_slice().to_vec();
                    let (message, after) =
                        match receive_data(&mut reader, started, limit, context.limits.data_timeout).await? {
                            Some(received) => received,
                            None => {
                                writer.write_all(format!("421 4.4.2 {domain} data timeout\r\n").as_bytes()).await?;
                                return Ok(());
                            }
                        };
                    // Commands pipelined after the message are handled next.
                    pending = after;
                    let recipients = std::mem::take(&mut transaction.recipients);
                    transaction = Transaction::default();
                    let reply = match message {
                        Data::TooLarge(size) => {
                            format!("552 5.3.4 message is {size} bytes, over the limit of {limit} bytes\r\n")
                        }
                        Data::Complete(raw) => deliver(context, &filer, raw, &recipients).await,
                    };
                    let replies = if protocol == Protocol::Lmtp { recipients.len() } else { 1 };
                    for _ in 0..replies {
                        out.extend_from_slice(reply.as_bytes());
                    }
                    break;
                }
                Request::Rset => {
                    transaction = Transaction::default();
                    out.extend_from_slice(b"250 2.0.0 reset\r\n");
                }
                Request::Noop { .. } => out.extend_from_slice(b"250 2.0.0 ok\r\n"),
                Request::Quit => {
                    out.extend_from_slice(format!("221 2.0.0 {domain} bye\r\n").as_bytes());
                    writer.write_all(&out).await?;
                    writer.flush().await?;
                    return Ok(());
                }
                Request::Vrfy { .. } => out.extend_from_slice(b"252 2.5.0 cannot verify, send a message and see\r\n"),
                Request::Help { .. } => {
                    out.extend_from_slice(b"214 2.0.0 tidings accepts posts for its lists; see the list's help address\r\n")
                }
                Request::StartTls | Request::Auth { .. } | Request::Bdat { .. } | Request::Expn { .. }
                | Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                    errors += 1;
                    out.extend_from_slice(b"502 5.5.1 command not implemented\r\n");
                }
            }
            if errors >= context.limits.max_errors {
                out.extend_from_slice(b"421 4.7.0 too many errors, closing\r\n");
                writer.write_all(&out).await?;
                tracing::info!(%peer, "closed after too many errors");
                return Ok(());
            }
        }
    }
}

fn ehlo(out: &mut Vec<u8>, domain: &str, _client: &str, limit: usize) {
    let mut response = EhloResponse::new(Cow::Borrowed(domain));
    response.capabilities = smtp_proto::EXT_PIPELINING
        | smtp_proto::EXT_8BIT_MIME
        | smtp_proto::EXT_SMTP_UTF8
        | smtp_proto::EXT_SIZE
        | smtp_proto::EXT_ENHANCED_STATUS_CODES;
    response.size = limit;
    response
        .write(&mut *out)
        .expect("writing to a Vec cannot fail");
}

fn syntax_reply(error: &ProtoError) -> String {
    match error {
        ProtoError::UnknownCommand => "500 5.5.2 unknown command\r\n".into(),
        ProtoError::ResponseTooLong => "500 5.5.2 line too long\r\n".into(),
        ProtoError::InvalidSenderAddress => "501 5.1.7 bad sender address syntax\r\n".into(),
        ProtoError::InvalidRecipientAddress => "501 5.1.3 bad recipient address syntax\r\n".into(),
        ProtoError::SyntaxError { syntax } => format!("501 5.5.4 syntax: {syntax}\r\n"),
        ProtoError::InvalidParameter { param } => {
            format!("501 5.5.4 invalid parameter {param}\r\n")
        }
        ProtoError::UnsupportedParameter { param } => {
            format!("555 5.5.4 unsupported parameter {param}\r\n")
        }
        ProtoError::NeedsMoreData { .. } | ProtoError::InvalidResponse { .. } => {
            "500 5.5.2 syntax error\r\n".into()
        }
    }
}

/// The reply to `RCPT TO:<address>` and whether the recipient is accepted.
pub fn recipient_reply(config: &Config, address: &str) -> (String, bool) {
    let lower = address.trim().to_ascii_lowercase();
    let Some((local, domain)) = lower.rsplit_once('@') else {
        return (
            format!("550 5.1.3 <{address}>: not a mail address\r\n"),
            false,
        );
    };
    if domain != config.site.domain {
        return (
            format!("550 5.7.1 <{address}>: relay access denied\r\n"),
            false,
        );
    }
    if config.list_by_address(&lower).is_some() {
        return ("250 2.1.5 recipient ok\r\n".into(), true);
    }
    for suffix in ["-request", "-bounces", "-confirm"] {
        let Some(list_local) = local.split('+').next().and_then(|l| l.strip_suffix(suffix)) else {
            continue;
        };
        if config
            .list_by_address(&format!("{list_local}@{domain}"))
            .is_some()
        {
            return (
                format!("550 5.1.1 <{address}>: {suffix} addresses are not yet supported by tidings\r\n"),
                false,
            );
        }
    }
    (
        format!("550 5.1.1 <{address}>: no such list here\r\n"),
        false,
    )
}

enum Data {
    Complete(Vec<u8>),
    TooLarge(usize),
}

/// Reads a message up to the lone dot, starting with the bytes already
/// read; past `limit` bytes the rest is read and thrown away. Returns the
/// message and the bytes that followed the dot, or `None` when the client
/// took longer than `timeout`.
async fn receive_data(
    reader: &mut (impl AsyncRead + Unpin),
    mut chunk: Vec<u8>,
    limit: usize,
    timeout: Duration,
) -> std::io::Result<Option<(Data, Vec<u8>)>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut receiver = DataReceiver::new();
    let mut message = Vec::new();
    let mut discard: Option<(DummyDataReceiver, usize)> = None;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let mut bytes = chunk.iter();
        let done = match &mut discard {
            Some((dummy, size)) => {
                let before = bytes.len();
                let done = dummy.ingest(&mut bytes);
                *size += before - bytes.len();
                done
            }
            None => {
                let done = receiver.ingest(&mut bytes, &mut message);
                if !done && message.len() > limit {
                    discard = Some((DummyDataReceiver::new_data(&receiver), message.len()));
                    message = Vec::new();
                }
                done
            }
        };
        if done {
            let after = bytes.as_slice().to_vec();
            let data = match discard {
                Some((_, size)) => Data::TooLarge(size),
                None if message.len() > limit => Data::TooLarge(message.len()),
                None => Data::Complete(message),
            };
            return Ok(Some((data, after)));
        }
        let n = match tokio::time::timeout_at(deadline, reader.read(&mut buffer)).await {
            Ok(result) => result?,
            Err(_) => return Ok(None),
        };
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        chunk.clear();
        chunk.extend_from_slice(&buffer[..n]);
    }
}

/// Files and commits one message; the reply to send for it.
async fn deliver(
    context: &Context,
    filer: &Filer<'_>,
    raw: Vec<u8>,
    recipients: &[String],
) -> String {
    let envelope = Envelope {
        list_code: None,
        recipients: recipients.to_vec(),
    };
    let post = filer.file_message(&raw, &envelope, now());
    let message_id = post.message_id.clone();
    let list = post.list_code.clone();
    let outcome = context.committer.submit(post).await;
    let reply = match &outcome {
        Ok(Outcome::Stored { id }) => format!("250 2.0.0 stored as post {id}\r\n"),
        Ok(Outcome::Held { id, reason }) => {
            format!("250 2.0.0 held as post {id} for a moderator: {reason}\r\n")
        }
        Ok(Outcome::Duplicate { id }) => format!("250 2.0.0 already stored as post {id}\r\n"),
        Ok(Outcome::Rejected { reason, .. }) => format!("550 5.6.0 {reason}\r\n"),
        Err(error) => format!("451 4.3.0 {error}; try again later\r\n"),
    };
    (context.on_message)(&Received {
        protocol: context.protocol,
        message_id,
        list,
        outcome: outcome.map_err(|e| e.to_string()),
    });
    reply
}
