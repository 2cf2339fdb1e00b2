//! The HTTP listener's accept loop: HTTP/1.1 by hyper on connections this
//! module bounds, so that no number of web clients can take mail down.
//!
//! - At most [`Budget::http_connections`] connections are held; past it the
//!   loop stops accepting and new clients wait in the kernel's queue, which
//!   costs the process no descriptor.
//! - Before each accept the loop checks that the descriptors still free
//!   leave mail's reserve ([`Budget::room_for_http`]); when they do not, it
//!   waits and says so in `/healthz`.
//! - A request's head must arrive within `http_header_timeout_secs` of the
//!   server starting to wait for it (hyper's header timer, which runs on a
//!   new connection and after each answer on a kept-alive one), so a client
//!   sending its head a byte at a time is dropped.
//! - A connection on which no byte moves either way for
//!   `http_idle_timeout_secs` is closed ([`Watched`]): idle keep-alive, a
//!   client that never sends, a stalled upload, a reader that stopped
//!   reading.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Listen;
use crate::descriptors::{self, Budget};
use crate::health::{self, State};

/// How long the loop waits before looking again when an accept failed or
/// descriptors are short.
const RETRY: Duration = Duration::from_millis(100);

/// How long a count of the open descriptors is trusted; between counts,
/// each accepted connection is taken to use [`descriptors::PER_HTTP_CONNECTION`].
/// Counting lists /proc/self/fd, a fraction of a millisecond for a few
/// thousand descriptors: ten times a second at most under a flood.
const RECOUNT: Duration = Duration::from_millis(100);

/// The HTTP deadlines, from `[listen]`.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// For a request's head (`http_header_timeout_secs`).
    pub header: Duration,
    /// Without traffic (`http_idle_timeout_secs`).
    pub idle: Duration,
}

impl From<&Listen> for Deadlines {
    fn from(listen: &Listen) -> Self {
        Deadlines {
            header: listen.http_header_timeout(),
            idle: listen.http_idle_timeout(),
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, within `budget` and
/// `deadlines`, recording its state in `health`; then lets open requests
/// finish (the daemon's grace period bounds how long).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    budget: Budget,
    deadlines: Deadlines,
    health: Arc<health::Listener>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(budget.http_connections));
    health.set_capacity(budget.http_connections);
    let mut descriptors = Count::new();
    let mut connections = tokio::task::JoinSet::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(deadlines.header)
        .keep_alive(true);
    let builder = Arc::new(builder);
    loop {
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                health.set(State::Paused("every connection it may hold is open"));
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                }
            }
        };
        if !budget.room_for_http(descriptors.open()) {
            health.set(State::Paused("descriptors kept for mail"));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(RETRY) => continue,
            }
        }
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    health.set(State::Failing(error.to_string(), std::time::Instant::now()));
                    tracing::warn!(%error, "HTTP accept failed");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            },
        };
        health.set(State::Listening);
        descriptors.accepted();
        let _ = stream.set_nodelay(true);
        let (builder, router, health, shutdown) = (
            builder.clone(),
            router.clone(),
            health.clone(),
            shutdown.clone(),
        );
        health.opened();
        connections.spawn(async move {
            if let Err(error) = converse(stream, &builder, router, deadlines.idle, &shutdown).await
            {
                tracing::debug!(%peer, %error, "HTTP connection ended");
            }
            health.closed();
            drop(slot);
        });
    }
    health.set(State::Stopped);
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Serves one connection until the client closes it, hyper does (an
/// error, the header deadline), no byte moves for `idle`, or a graceful
/// shutdown that began at `shutdown` has answered the request in hand.
async fn converse(
    stream: tokio::net::TcpStream,
    builder: &hyper::server::conn::http1::Builder,
    router: Router,
    idle: Duration,
    shutdown: &CancellationToken,
) -> Result<(), hyper::Error> {
    let started = Instant::now();
    let activity = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Watched {
        inner: stream,
        started,
        activity: activity.clone(),
    });
    let connection = builder.serve_connection(io, TowerToHyperService::new(router));
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        let last = started + Duration::from_millis(activity.load(Ordering::Relaxed));
        tokio::select! {
            served = connection.as_mut() => return served,
            _ = shutdown.cancelled(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(last + idle) => {
                let now = started + Duration::from_millis(activity.load(Ordering::Relaxed));
                if now == last {
                    // Dropping the connection closes the socket.
                    tracing::debug!("HTTP connection idle: closed");
                    return Ok(());
                }
            }
        }
    }
}

/// A stream that records when a byte last moved either way, in
/// milliseconds since `started`.
struct Watched<S> {
    inner: S,
    started: Instant,
    activity: Arc<AtomicU64>,
}

impl<S> Watched<S> {
    fn touch(&self) {
        let elapsed = self.started.elapsed().as_millis() as u64;
        self.activity.store(elapsed, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buffer.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(context, buffer);
        if buffer.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(context, bytes);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(context, buffers);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }
}

/// The descriptors open in the process, counted at most every
/// [`RECOUNT`] and estimated in between.
struct Count {
    counted: u64,
    at: Instant,
    since: u64,
}

impl Count {
    fn new() -> Count {
        Count {
            counted: descriptors::open_now().unwrap_or(0),
            at: Instant::now(),
            since: 0,
        }
    }

    fn open(&mut self) -> u64 {
        if self.at.elapsed() >= RECOUNT {
            if let Some(open) = descriptors::open_now() {
                self.counted = open;
                self.since = 0;
            }
            self.at = Instant::now();
        }
        self.counted + self.since * descriptors::PER_HTTP_CONNECTION
    }

    fn accepted(&mut self) {
        self.since += 1;
    }
}
