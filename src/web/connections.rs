//! The HTTP listener's accept loop: HTTP/1.1 by hyper on connections this
//! module bounds, so that no number of web clients can take mail down.
//!
//! - At most [`Budget::http_connections`] connections are held. When every
//!   one is open and a new client comes, the connection that has waited
//!   longest for a request is closed to make room ([`Held::make_room`]): a
//!   kept-alive one between requests, a client that never sent its head or
//!   sends it a byte at a time. One with a request in hand is never closed
//!   for room; when every one has, new clients wait in the kernel's queue,
//!   which costs the process no descriptor. So idle and slow clients,
//!   however many, delay nobody: a new client is served at once.
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

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

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

/// The most a connection buffers of a request head (hyper's read
/// buffer; a longer head is refused with 431). Heads are a kilobyte or
/// two; hyper's default, about 400 KB, let each of up to
/// `http_max_connections` clients hold that much memory until the header
/// deadline: 512 of them took the daemon past 200 MB.
const MAX_HEAD_BYTES: usize = 64 * 1024;

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
    let held = Arc::new(Held::new());
    let mut descriptors = Count::new();
    let mut connections = tokio::task::JoinSet::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(deadlines.header)
        .max_buf_size(MAX_HEAD_BYTES)
        // A client may end its sending side once its request is written
        // (`nc -N`, `printf ... | socat`, some proxies): the request is
        // still answered. Without this, hyper drops a connection whose
        // client closed while the handler runs, so such a request was
        // answered or not, by a race.
        .half_close(true)
        .keep_alive(true);
    let builder = Arc::new(builder);
    loop {
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
        if !budget.room_for_http(descriptors.open()) {
            health.set(State::Paused("descriptors kept for mail"));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(RETRY) => continue,
            }
        }
        // Every slot taken: wait for one, or for a new client, for whom
        // the connection waiting longest for a request makes room (it is
        // accepted at once, and served when the slot is free).
        let (slot, accepted) = match slots.clone().try_acquire_owned() {
            Ok(slot) => (Some(slot), None),
            Err(_) => {
                health.set(State::Paused("every connection it may hold is open"));
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    slot = slots.clone().acquire_owned() => (Some(slot.expect("the semaphore is never closed")), None),
                    accepted = listener.accept() => {
                        held.make_room();
                        (None, Some(accepted))
                    }
                }
            }
        };
        let accepted = match accepted {
            Some(accepted) => accepted,
            None => tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            },
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                health.set(State::Failing(error.to_string(), std::time::Instant::now()));
                tracing::warn!(%error, "HTTP accept failed");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let slot = match slot {
            Some(slot) => slot,
            None => tokio::select! {
                _ = shutdown.cancelled() => break,
                slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
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
        let connection = held.open();
        let held = held.clone();
        health.opened();
        connections.spawn(async move {
            let served = converse(
                stream,
                &builder,
                router,
                &connection,
                deadlines.idle,
                &shutdown,
            );
            if let Err(error) = served.await {
                tracing::debug!(%peer, %error, "HTTP connection ended");
            }
            held.close(&connection);
            health.closed();
            drop(slot);
        });
    }
    health.set(State::Stopped);
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Serves one connection until the client closes it, hyper does (an
/// error, the header deadline), no byte moves for `idle`, it is closed to
/// make room for a new client, or a graceful shutdown that began at
/// `shutdown` has answered the request in hand.
async fn converse(
    stream: tokio::net::TcpStream,
    builder: &hyper::server::conn::http1::Builder,
    router: Router,
    held: &Arc<Connection>,
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
    let service = {
        let held = held.clone();
        tower::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let in_request = InRequest::enter(&held);
            let answered = router.clone().oneshot(request);
            async move {
                let response = answered.await?;
                // The request is in hand until its answer's last byte is
                // written, when hyper drops the body (and with it this).
                Ok::<_, Infallible>(response.map(|body| {
                    Body::new(body.map_frame(move |frame| {
                        let _ = &in_request;
                        frame
                    }))
                }))
            }
        })
    };
    let connection = builder.serve_connection(io, TowerToHyperService::new(service));
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
            _ = held.evicted.cancelled() => {
                tracing::debug!("HTTP connection closed to make room");
                return Ok(());
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

/// The connections open, for making room for a new client.
struct Held {
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    next: AtomicU64,
    /// What the times of [`Connection::waiting_since`] count from.
    epoch: Instant,
}

/// One connection, as [`Held`] sees it.
struct Connection {
    id: u64,
    /// Requests in hand: read and not yet answered to their last byte.
    /// [`CLOSING`] once chosen to make room, which no request then enters.
    requests: AtomicUsize,
    /// When it last began to wait for a request (milliseconds from
    /// [`Held::epoch`]).
    waiting_since: AtomicU64,
    /// Cancelled to close it for room.
    evicted: CancellationToken,
    epoch: Instant,
}

/// [`Connection::requests`] of a connection being closed for room: far
/// above any count of requests in hand.
const CLOSING: usize = usize::MAX / 2;

impl Held {
    fn new() -> Held {
        Held {
            open: Mutex::default(),
            next: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Records a connection just accepted, waiting for its first request.
    fn open(&self) -> Arc<Connection> {
        let connection = Arc::new(Connection {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            requests: AtomicUsize::new(0),
            waiting_since: AtomicU64::new(millis_since(self.epoch)),
            evicted: CancellationToken::new(),
            epoch: self.epoch,
        });
        self.lock().insert(connection.id, connection.clone());
        connection
    }

    fn close(&self, connection: &Connection) {
        self.lock().remove(&connection.id);
    }

    /// Closes the connection that has waited longest for a request, if one
    /// is waiting; whether one was.
    fn make_room(&self) -> bool {
        let open = self.lock();
        // A request may enter between the look and the closing: the
        // exchange fails and the next longest waiting is looked for.
        loop {
            let longest = open
                .values()
                .filter(|connection| connection.requests.load(Ordering::Acquire) == 0)
                .min_by_key(|connection| connection.waiting_since.load(Ordering::Relaxed));
            let Some(connection) = longest else {
                return false;
            };
            let closing = connection.requests.compare_exchange(
                0,
                CLOSING,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            if closing.is_ok() {
                connection.evicted.cancel();
                return true;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn millis_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

/// A request in hand on a connection, from when hyper has read its head
/// until its answer is written (or abandoned).
struct InRequest(Arc<Connection>);

impl InRequest {
    fn enter(connection: &Arc<Connection>) -> InRequest {
        connection.requests.fetch_add(1, Ordering::AcqRel);
        InRequest(connection.clone())
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        let connection = &self.0;
        if connection.requests.fetch_sub(1, Ordering::AcqRel) == 1 {
            let now = millis_since(connection.epoch);
            connection.waiting_since.store(now, Ordering::Relaxed);
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
