//! The NNTP listener's I/O: the accept loop, a task per connection, lines
//! of at most [`MAX_LINE`] bytes, the command deadline, STARTTLS, and
//! shutdown. It takes the mail listeners' limits (`[listen]`
//! `max_connections`, `max_connections_per_ip`, `command_timeout_secs`)
//! with slots of its own, and answers a client over them with a 400.
//! Each command is answered by the [`Session`] on a store reader thread.

use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::command::MAX_LINE;
use super::session::{self, After, Session};
use super::Newsroom;
use crate::clock::Clock;
use crate::config::Config;
use crate::health;
use crate::ingest::listener::{close, serve_connections, Limits};
use crate::store::Handle;

/// What every connection of the listener shares.
pub struct Context {
    /// The configuration; each connection takes its groups from the one
    /// current when it began (a reload shows new lists to new connections).
    pub config: watch::Receiver<Arc<Config>>,
    /// The store the articles are read from.
    pub store: Handle,
    /// Connection and time limits (the mail listeners').
    pub limits: Limits,
    /// STARTTLS, when a certificate is configured.
    pub tls: Option<TlsAcceptor>,
    /// The clock DATE reads.
    pub clock: Clock,
}

/// The TLS acceptor of a PEM certificate chain and key (RFC 4642 STARTTLS).
pub fn acceptor(certificate: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading nntp_tls_certificate {}", certificate.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading nntp_tls_key {}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("setting up TLS")?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("nntp_tls_certificate and nntp_tls_key do not make a certificate")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections until `shutdown`, recording in `health` whether
/// accepting works; then tells open sessions 400 and waits for them.
pub async fn run(
    listener: TcpListener,
    context: Arc<Context>,
    health: &health::Listener,
    shutdown: CancellationToken,
) {
    let limits = (
        context.limits.max_connections,
        context.limits.max_connections_per_ip,
    );
    let refusal = session::TOO_MANY_CONNECTIONS.to_vec();
    let sessions_shutdown = shutdown.clone();
    // News readers are not held to the mail listeners' stress timeout.
    // Nor do they make room: a reader is not closed for another.
    serve_connections(
        listener,
        (limits, None),
        Arc::default(),
        health,
        &shutdown,
        refusal,
        move |stream, peer, _standing| {
            let (context, shutdown) = (context.clone(), sessions_shutdown.clone());
            async move {
                if let Err(error) = converse(stream, Some(peer.ip()), &context, &shutdown).await {
                    tracing::debug!(%peer, %error, "nntp: session ended");
                }
            }
        },
    )
    .await;
}

/// Serves one connection: the greeting, then commands until QUIT, an
/// error, the deadline or shutdown; STARTTLS goes on in a new session
/// over TLS.
pub async fn converse<S>(
    stream: S,
    client: Option<IpAddr>,
    context: &Context,
    shutdown: &CancellationToken,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let newsroom = Arc::new(Newsroom::new(
        &context.config.borrow(),
        context.tls.is_some(),
    ));
    let mut reader = BufReader::new(stream);
    reader
        .get_mut()
        .write_all(&session::greeting(&newsroom))
        .await?;
    let served = serve(
        &mut reader,
        Session::default(),
        &newsroom,
        context,
        shutdown,
    )
    .await;
    let mut stream = reader.into_inner();
    match served {
        Ok(After::StartTls) => {
            let Some(acceptor) = &context.tls else {
                return Ok(());
            };
            // What the client sent after STARTTLS, before the handshake, is
            // dropped with the buffer (RFC 4642 section 2.2.2).
            let tls = tokio::time::timeout(context.limits.command_timeout, acceptor.accept(stream))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake"))??;
            tracing::debug!(?client, "nntp: TLS started");
            let mut reader = BufReader::new(tls);
            let session = Session::under_tls();
            let served = serve(&mut reader, session, &newsroom, context, shutdown).await;
            close(reader.get_mut()).await;
            served.map(|_| ())
        }
        other => {
            close(&mut stream).await;
            other.map(|_| ())
        }
    }
}

/// Reads and answers commands until one ends the session.
async fn serve<S>(
    reader: &mut BufReader<S>,
    mut session: Session,
    newsroom: &Arc<Newsroom>,
    context: &Context,
    shutdown: &CancellationToken,
) -> io::Result<After>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut line = Vec::with_capacity(128);
    loop {
        line.clear();
        let read = tokio::select! {
            _ = shutdown.cancelled() => {
                reader.get_mut().write_all(session::SHUTTING_DOWN).await?;
                return Ok(After::Close);
            }
            read = tokio::time::timeout(context.limits.command_timeout, read_line(reader, &mut line)) => read,
        };
        match read {
            Err(_) => {
                reader.get_mut().write_all(session::TIMEOUT).await?;
                return Ok(After::Close);
            }
            Ok(Err(error)) => return Err(error),
            Ok(Ok(Line::Closed)) => return Ok(After::Close),
            Ok(Ok(Line::TooLong)) => {
                reader.get_mut().write_all(session::LINE_TOO_LONG).await?;
                return Ok(After::Close);
            }
            Ok(Ok(Line::Complete)) => {}
        }
        let input = std::mem::take(&mut line);
        let newsroom = newsroom.clone();
        let now = context.clock.now();
        let (answer, back, input) = context
            .store
            .read(move |db| {
                let answer = session.answer(&input, db, &newsroom, now);
                Ok::<_, crate::store::Error>((answer, session, input))
            })
            .await
            .map_err(|error| io::Error::other(error.to_string()))?;
        session = back;
        line = input;
        reader.get_mut().write_all(&answer.bytes).await?;
        if answer.after != After::Read {
            reader.get_mut().flush().await?;
            return Ok(answer.after);
        }
    }
}

enum Line {
    Complete,
    Closed,
    TooLong,
}

/// One line into `line`, its CRLF (or LF) taken off, at most [`MAX_LINE`]
/// bytes with it.
async fn read_line<S: AsyncRead + Unpin>(
    reader: &mut BufReader<S>,
    line: &mut Vec<u8>,
) -> io::Result<Line> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Closed);
        }
        match memchr::memchr(b'\n', available) {
            Some(at) => {
                if line.len() + at + 1 > MAX_LINE {
                    return Ok(Line::TooLong);
                }
                line.extend_from_slice(&available[..at]);
                reader.consume(at + 1);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Line::Complete);
            }
            None => {
                let taken = available.len();
                if line.len() + taken >= MAX_LINE {
                    return Ok(Line::TooLong);
                }
                line.extend_from_slice(available);
                reader.consume(taken);
            }
        }
    }
}
