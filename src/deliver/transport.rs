//! The ways out, all through lettre: an SMTP relay (plain, STARTTLS or
//! implicit TLS, optional AUTH; each delivery worker keeps its own
//! connection, so `connections` workers make the pool), the sendmail
//! binary, and the file transport that writes each message with its
//! envelope into the outbox directory (the default, which works on a fresh
//! machine).
//!
//! Errors are sorted the way the outbox acts on them, after lettre's
//! `is_transient`/`is_permanent`: a 5xx fails the recipient, a 4xx or any
//! transport trouble defers it, and failing to reach the relay at all
//! stops the run.

use std::time::Duration;

use anyhow::Context;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use lettre::{AsyncFileTransport, AsyncSendmailTransport, AsyncTransport, Tokio1Executor};

use crate::config::{Config, Tls, Transport};

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Try again later: a 4xx reply, or trouble on the way. `unreachable`
    /// when the relay could not be reached at all.
    Transient { reply: String, unreachable: bool },
    /// Refused for good: a 5xx reply, or a message that cannot be sent.
    Permanent { reply: String },
}

/// SMTP relay settings.
#[derive(Debug, Clone)]
pub struct SmtpRelay {
    host: String,
    port: u16,
    tls: Tls,
    hello: ClientId,
    credentials: Option<Credentials>,
    timeout: Duration,
}

/// A configured way out.
pub enum Relay {
    Smtp(SmtpRelay),
    Sendmail(AsyncSendmailTransport<Tokio1Executor>),
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
                    (Some(_), None) => {
                        anyhow::bail!("[delivery] username is set but password_file is not")
                    }
                    _ => None,
                };
                Relay::Smtp(SmtpRelay {
                    host: delivery.host.clone(),
                    port: delivery.port,
                    tls: delivery.tls,
                    hello: ClientId::Domain(delivery.helo_name.clone()),
                    credentials,
                    timeout: Duration::from_secs(delivery.timeout_seconds),
                })
            }
            Transport::Sendmail => {
                Relay::Sendmail(AsyncSendmailTransport::<Tokio1Executor>::new_with_command(
                    delivery.sendmail_command.as_os_str(),
                ))
            }
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

    /// A connection of its own for one delivery worker.
    pub fn connection(&self) -> Connection<'_> {
        Connection {
            relay: self,
            smtp: None,
        }
    }

    /// Says what the transport is, for reports.
    pub fn describe(&self) -> String {
        match self {
            Relay::Smtp(smtp) => format!("smtp {}:{}", smtp.host, smtp.port),
            Relay::Sendmail(_) => "sendmail".to_string(),
            Relay::File(_) => "file".to_string(),
        }
    }
}

/// One worker's way out; for SMTP, a connection kept open between messages
/// and opened again after an error.
pub struct Connection<'a> {
    relay: &'a Relay,
    smtp: Option<AsyncSmtpConnection>,
}

impl Connection<'_> {
    /// Sends one message; returns the server's reply.
    pub async fn send(&mut self, envelope: &Envelope, message: &[u8]) -> Result<String, SendError> {
        match self.relay {
            Relay::Smtp(relay) => {
                let timeout = relay.timeout;
                if self.smtp.is_none() {
                    match tokio::time::timeout(timeout, connect(relay)).await {
                        Ok(Ok(connection)) => self.smtp = Some(connection),
                        Ok(Err(error)) => {
                            return Err(SendError::Transient {
                                reply: format!(
                                    "cannot reach {}:{}: {error}",
                                    relay.host, relay.port
                                ),
                                unreachable: true,
                            })
                        }
                        Err(_) => {
                            return Err(SendError::Transient {
                                reply: format!(
                                    "cannot reach {}:{}: timed out",
                                    relay.host, relay.port
                                ),
                                unreachable: true,
                            })
                        }
                    }
                }
                let connection = self.smtp.as_mut().expect("connected above");
                // lettre ends DATA with CRLF "." CRLF whatever the message
                // ends with; without this the message would gain an empty
                // last line (RFC 5321 4.1.1.4 counts the message's own
                // final CRLF as the first of the terminator).
                let message = message.strip_suffix(b"\r\n").unwrap_or(message);
                // A whole transaction may take longer than one reply: allow
                // the timeout per 64 KiB on top.
                let limit = timeout * (2 + (message.len() / 65_536) as u32);
                let result = tokio::time::timeout(limit, connection.send(envelope, message)).await;
                match result {
                    Ok(Ok(response)) => Ok(reply_text(&response)),
                    Ok(Err(error)) => {
                        if connection.has_broken() {
                            self.smtp = None;
                        }
                        Err(smtp_error(&error))
                    }
                    Err(_) => {
                        self.smtp = None;
                        Err(SendError::Transient {
                            reply: "timed out during the SMTP transaction".to_string(),
                            unreachable: false,
                        })
                    }
                }
            }
            Relay::Sendmail(sendmail) => match sendmail.send_raw(envelope, message).await {
                Ok(()) => Ok("accepted by sendmail".to_string()),
                Err(error) => Err(SendError::Transient {
                    reply: format!("sendmail: {error}"),
                    unreachable: false,
                }),
            },
            Relay::File(file) => match file.send_raw(envelope, message).await {
                Ok(id) => Ok(format!("written to the outbox as {id}.eml")),
                Err(error) => Err(SendError::Transient {
                    reply: format!("outbox: {error}"),
                    unreachable: true,
                }),
            },
        }
    }

    /// Ends an open SMTP session politely.
    pub async fn close(&mut self) {
        if let Some(mut connection) = self.smtp.take() {
            let _ = connection.quit().await;
        }
    }
}

async fn connect(relay: &SmtpRelay) -> Result<AsyncSmtpConnection, String> {
    let text = |error: lettre::transport::smtp::Error| error.to_string();
    let tls = || TlsParameters::new(relay.host.clone()).map_err(text);
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
    if let Some(credentials) = &relay.credentials {
        connection
            .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
            .await
            .map_err(text)?;
    }
    Ok(connection)
}

/// "250 2.0.0 Ok: queued as X" from a reply.
fn reply_text(response: &Response) -> String {
    let lines: Vec<&str> = response.message().collect();
    format!("{} {}", response.code(), lines.join(" "))
        .trim()
        .to_string()
}

fn smtp_error(error: &lettre::transport::smtp::Error) -> SendError {
    let reply = error.to_string();
    if error.is_permanent() {
        SendError::Permanent { reply }
    } else {
        SendError::Transient {
            reply,
            unreachable: false,
        }
    }
}
