//! The LMTP (RFC 2033) and SMTP (RFC 5321) listeners: how Postfix, Exim or
//! a smarthost hand mail to tidings.
//!
//! This is the I/O around [`Session`], which decides every reply: the
//! accept loop, a task per connection, reads and writes, the deadlines the
//! session names, and shutdown. Connections are limited in all and, for
//! SMTP, per client IP address; a client over either limit still gets an
//! answer, a 421, rather than waiting without a greeting. A full mail
//! listener makes room for a new client by closing the session that has
//! waited longest for its client, with no transaction open, if that wait
//! is past [`MAKE_ROOM_AFTER`] ([`Slots::make_room`]): clients that hold a
//! slot without sending, or send a byte now and then, cannot keep a new
//! one out, and one in the middle of a message is never closed for room.
//! A complete message goes to the [`Intake`]; the session answers 250
//! only for what the intake has on disk, and 451 when it could not take
//! it, so the sender keeps it.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::intake::Intake;
use super::session::{self, Deadline, Delivered, Message, Next, Rules, Session};
use crate::config::{Config, Listen};
use crate::health::{self, State};

pub use super::session::Protocol;

/// Protocol errors tolerated per connection before it is closed.
pub const MAX_ERRORS: u32 = 10;

/// Bytes read from a client at a time; also bounds what a session keeps of
/// the input that followed a message while the message is being stored.
const READ_BUFFER: usize = 16 * 1024;

/// Clients turned away with a 421 at once (with the sessions closing to
/// make room); past this a client over the limits is closed without one,
/// so a flood costs no more than this. Once half are in flight, a
/// network (an IPv4 /24, an IPv6 /64) with one in flight already gets no
/// other, so that a flood from some networks cannot take them all from
/// the rest.
pub const MAX_REFUSALS: usize = 64;

/// How long a session with no transaction open must have waited for its
/// client before a full mail listener closes it to make room for a new
/// one: a client that is sending waits for its server, not the other way
/// round, for a round trip at most.
pub const MAKE_ROOM_AFTER: Duration = Duration::from_secs(1);

/// How long writing the 421 to a client turned away may take.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a closing connection waits for the client to close its side.
const LINGER: Duration = Duration::from_secs(1);

/// [`LINGER`] for a client turned away: its 421 is the first and only
/// thing it is sent, and a client that has not closed by then is holding
/// one of the [`MAX_REFUSALS`] for nothing.
const REFUSAL_LINGER: Duration = Duration::from_millis(100);

/// Limits that keep one client, or one host, from holding the daemon.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections served at once for one client IP address.
    pub max_connections_per_ip: usize,
    /// Recipients accepted per message.
    pub max_recipients: usize,
    /// How long a client may take to send one command.
    pub command_timeout: Duration,
    /// How long a client may take to send a whole message.
    pub data_timeout: Duration,
    /// How long each read may take while the listener is under [`Stress`].
    pub stress_timeout: Duration,
    /// Protocol errors tolerated per connection (default [`MAX_ERRORS`]).
    pub max_errors: u32,
    /// How long a session waits for its client before a full listener may
    /// close it to make room (default [`MAKE_ROOM_AFTER`]).
    pub make_room_after: Duration,
}

impl From<&Listen> for Limits {
    fn from(listen: &Listen) -> Self {
        Limits {
            max_connections: listen.max_connections,
            max_connections_per_ip: listen.max_connections_per_ip,
            max_recipients: listen.max_recipients,
            command_timeout: Duration::from_secs(listen.command_timeout_secs),
            data_timeout: Duration::from_secs(listen.data_timeout_secs),
            stress_timeout: Duration::from_secs(listen.stress_timeout_secs),
            max_errors: MAX_ERRORS,
            make_room_after: MAKE_ROOM_AFTER,
        }
    }
}

impl Limits {
    fn rules(&self) -> Rules {
        Rules {
            max_recipients: self.max_recipients,
            max_errors: self.max_errors,
        }
    }

    fn timeout(&self, deadline: Deadline) -> Duration {
        match deadline {
            Deadline::Command(_) => self.command_timeout,
            Deadline::Message(_) => self.data_timeout,
        }
    }
}

/// What every session of a listener shares.
pub struct Context<I> {
    /// The protocol the listener speaks.
    pub protocol: Protocol,
    /// The configuration; each session keeps the one current when it began.
    pub config: watch::Receiver<Arc<Config>>,
    /// Connection, recipient, time and error limits.
    pub limits: Limits,
    /// Where complete messages go.
    pub intake: I,
    /// Whether the listener is full and turning clients away.
    pub stress: Arc<Stress>,
}

/// Whether a listener is under stress: every slot taken and clients turned
/// away. It begins when a client is refused because the listener is full
/// and ends when a quarter of the slots are free again. While it lasts,
/// each read a session waits for must come within
/// [`Limits::stress_timeout`] (10 s by default, where it is 300 s a
/// command otherwise), so clients holding slots without sending, or
/// sending a byte now and then, make room within seconds, as Postfix's
/// stress-dependent `smtpd_timeout` does.
#[derive(Debug)]
pub struct Stress(watch::Sender<bool>);

impl Default for Stress {
    fn default() -> Self {
        Stress(watch::channel(false).0)
    }
}

impl Stress {
    fn begin(&self) {
        self.0.send_if_modified(|on| !std::mem::replace(on, true));
    }

    fn end(&self) {
        self.0.send_if_modified(|on| std::mem::replace(on, false));
    }

    /// Whether the listener is under stress now.
    pub fn is_on(&self) -> bool {
        *self.0.borrow()
    }

    fn watch(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }
}

/// Accepts connections until `shutdown`, then waits for open sessions to
/// finish their transaction (idle ones are told 421 and closed).
pub async fn run<I: Intake>(
    listener: TcpListener,
    context: Arc<Context<I>>,
    shutdown: CancellationToken,
) {
    let address = listener
        .local_addr()
        .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
    let health = health::Listener::new("mail", address, true);
    run_reporting(listener, context, &health, shutdown).await;
}

/// [`run`], recording in `health` whether accepting works, for `/healthz`.
pub async fn run_reporting<I: Intake>(
    listener: TcpListener,
    context: Arc<Context<I>>,
    health: &health::Listener,
    shutdown: CancellationToken,
) {
    let refusal = session::too_many_connections(&context.config.borrow().site.domain);
    // LMTP's clients are the MTA's delivery agents next door (RFC 2033
    // keeps LMTP off wide-area networks), all from one address: held to
    // the total alone, so that the MTA's concurrency is not cut to the
    // per-address limit, as Postfix exempts its own networks from its
    // per-client limits.
    let per_ip = match context.protocol {
        Protocol::Lmtp => context.limits.max_connections,
        Protocol::Smtp => context.limits.max_connections_per_ip,
    };
    let limits = (context.limits.max_connections, per_ip);
    let sessions_shutdown = shutdown.clone();
    let stress = context.stress.clone();
    let make_room_after = Some(context.limits.make_room_after);
    serve_connections(
        listener,
        (limits, make_room_after),
        stress,
        health,
        &shutdown,
        refusal,
        move |stream, peer, standing| {
            let (context, shutdown) = (context.clone(), sessions_shutdown.clone());
            async move {
                let client = Some(peer.ip());
                let served = converse(stream, client, &context, &standing, &shutdown).await;
                if let Err(error) = served {
                    tracing::debug!(%peer, %error, "session ended");
                }
            }
        },
    )
    .await;
}

/// The accept loop every listener shares (mail and news): until
/// `shutdown`, each connection within `limits` (in all, per client IP) is
/// served by `serve` on a task of its own, with its [`Standing`]. When the
/// listener is full in all and `limits` has a wait after which it makes
/// room, a session waiting that long is closed for the new client
/// ([`Slots::make_room`]). Otherwise a client over the limits is sent
/// `refusal` and closed, at most [`MAX_REFUSALS`] at once (with the
/// sessions closing for room), past which it is closed unanswered, so a
/// flood holds no more descriptors than the budget counts; `stress` says
/// when the listener is full. `health` records whether accepting works.
/// Then waits for the open sessions to end.
pub async fn serve_connections<F, S>(
    listener: TcpListener,
    limits: ((usize, usize), Option<Duration>),
    stress: Arc<Stress>,
    health: &health::Listener,
    shutdown: &CancellationToken,
    refusal: Vec<u8>,
    serve: F,
) where
    F: Fn(tokio::net::TcpStream, std::net::SocketAddr, Arc<Standing>) -> S,
    S: std::future::Future<Output = ()> + Send + 'static,
{
    let ((total, per_ip), make_room_after) = limits;
    let slots = Arc::new(Slots::new(total, per_ip, stress));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let refusing = Arc::new(Mutex::new(HashMap::new()));
    let refusal: Arc<[u8]> = refusal.into();
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        let (mut stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    health.set(State::Listening);
                    accepted
                }
                Err(error) => {
                    health.set(State::Failing(error.to_string(), std::time::Instant::now()));
                    tracing::warn!(listener = health.name, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let slot = slots.take(peer.ip()).ok_or(()).or_else(|()| {
            // Full: room is made with a refusal's permit, held until the
            // session closed for it has ended.
            let permit = refusals.clone().try_acquire_owned().ok();
            match (make_room_after, permit) {
                (Some(after), Some(permit)) => {
                    slots.make_room(peer.ip(), after, permit).map_err(Some)
                }
                (_, permit) => Err(permit),
            }
        });
        match slot {
            Ok(slot) => {
                let session = serve(stream, peer, slot.standing());
                sessions.spawn(async move {
                    session.await;
                    drop(slot);
                });
            }
            Err(permit) => {
                tracing::debug!(%peer, "connection refused: too many connections");
                // Over MAX_REFUSALS, or past half of them while this
                // network is being told already, the stream is dropped
                // here: closed.
                let told = permit
                    .and_then(|permit| Refusing::new(&refusing, peer.ip(), permit, MAX_REFUSALS));
                if let Some(told) = told {
                    let refusal = refusal.clone();
                    sessions.spawn(async move {
                        let written =
                            tokio::time::timeout(REFUSAL_TIMEOUT, stream.write_all(&refusal)).await;
                        if let Ok(Ok(())) = written {
                            close_within(&mut stream, REFUSAL_LINGER).await;
                        }
                        drop(told);
                    });
                }
            }
        }
        // Reap finished sessions so the set does not grow without bound.
        while sessions.try_join_next().is_some() {}
    }
    health.set(State::Stopped);
    drop(listener);
    while sessions.join_next().await.is_some() {}
}

/// Refusals in flight, by client network ([`network`]).
type InFlight = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// The network a client address is counted in when refusals are scarce:
/// its IPv4 /24 or its IPv6 /64 (an IPv4 address mapped into IPv6 being
/// IPv4), where one host's neighbours, or one flooder's addresses, are.
fn network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & 0xffff_ff00).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
    }
}

/// A refusal in flight: its permit, and its count for its client's
/// network, until dropped.
struct Refusing {
    addresses: InFlight,
    ip: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Refusing {
    /// A refusal for `ip` with `permit`, one of `total`: none while more
    /// than half of them are taken and `ip`'s network has one in flight
    /// already.
    fn new(
        addresses: &InFlight,
        ip: IpAddr,
        permit: OwnedSemaphorePermit,
        total: usize,
    ) -> Option<Refusing> {
        let ip = network(ip);
        let scarce = permit.semaphore().available_permits() < total / 2;
        let mut in_flight = addresses.lock().unwrap_or_else(PoisonError::into_inner);
        let count = in_flight.entry(ip).or_default();
        if scarce && *count > 0 {
            return None;
        }
        *count += 1;
        Some(Refusing {
            addresses: addresses.clone(),
            ip,
            _permit: permit,
        })
    }
}

impl Drop for Refusing {
    fn drop(&mut self) {
        let mut in_flight = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = in_flight.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                in_flight.remove(&self.ip);
            }
        }
    }
}

/// Serves one connection until the client quits, the session closes it,
/// a deadline passes or, while no transaction is open, `shutdown` fires or
/// the listener closes it to make room (`standing`, where it also says
/// since when it has waited for the client); then closes it without
/// losing the last reply. `client` is the peer's address, given with each
/// message to the intake (SPF checks it).
pub async fn converse<I: Intake>(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    client: Option<IpAddr>,
    context: &Context<I>,
    standing: &Standing,
    shutdown: &CancellationToken,
) -> io::Result<()> {
    let served = serve(&mut stream, client, context, standing, shutdown).await;
    close(&mut stream).await;
    served
}

async fn serve<I: Intake>(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    client: Option<IpAddr>,
    context: &Context<I>,
    standing: &Standing,
    shutdown: &CancellationToken,
) -> io::Result<()> {
    let config = context.config.borrow().clone();
    let limits = &context.limits;
    let mut session = Session::new(context.protocol, config.clone(), limits.rules());
    if let Some(client) = client {
        session.set_peer(client);
    }
    send(stream, &session.greeting(), limits.command_timeout).await?;
    let mut input = vec![0u8; READ_BUFFER];
    let mut deadline = session.deadline();
    let mut until = Instant::now() + limits.timeout(deadline);
    let mut stressed = context.stress.watch();
    loop {
        // Under stress, this read has the stress timeout at most.
        let read_until = match *stressed.borrow_and_update() {
            true => until.min(Instant::now() + limits.stress_timeout),
            false => until,
        };
        let idle = session.is_idle();
        if idle {
            standing.wait();
        }
        let read = tokio::select! {
            _ = shutdown.cancelled(), if idle => {
                return send(stream, &session.shut_down(), limits.command_timeout).await;
            }
            _ = standing.closed_for_room(), if idle => {
                let refusal = session::too_many_connections(&config.site.domain);
                return send(stream, &refusal, limits.command_timeout).await;
            }
            // The context holds the sender: this never fails while it runs.
            Ok(()) = stressed.changed() => continue,
            read = tokio::time::timeout_at(read_until, stream.read(&mut input)) => read,
        };
        standing.work();
        let n = match read {
            Ok(read) => read?,
            Err(_) => return send(stream, &session.timed_out(), limits.command_timeout).await,
        };
        if n == 0 {
            return Ok(());
        }
        let mut output = session.receive(&input[..n]);
        loop {
            send(stream, &output.replies, limits.command_timeout).await?;
            match output.next {
                Next::Read => break,
                Next::Close => return Ok(()),
                Next::Deliver(message) => {
                    let delivered = deliver(&context.intake, &config, &message).await;
                    output = session.delivered(delivered);
                }
                Next::Oversize(size) => {
                    context
                        .intake
                        .oversize(&config, context.protocol, size)
                        .await;
                    output = session.resume();
                }
            }
        }
        // A new command or message has begun: its own deadline starts now.
        if session.deadline() != deadline {
            deadline = session.deadline();
            until = Instant::now() + limits.timeout(deadline);
        }
    }
}

/// Hands `message` to the intake: once as a post if it has list
/// recipients, once for each service address among them.
async fn deliver<I: Intake>(intake: &I, config: &Arc<Config>, message: &Message) -> Delivered {
    let post = match message.post_recipients().next() {
        Some(_) => Some(intake.post(config, message).await),
        None => None,
    };
    let mut services = Vec::new();
    for route in message.service_routes() {
        let result = intake.service(config, message, &route).await;
        services.push((route, result));
    }
    Delivered { post, services }
}

/// Writes replies; a client that does not read them within `timeout` is
/// given up.
async fn send(
    stream: &mut (impl AsyncWrite + Unpin),
    bytes: &[u8],
    timeout: Duration,
) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    tokio::time::timeout(timeout, async {
        stream.write_all(bytes).await?;
        stream.flush().await
    })
    .await
    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// Ends the connection: FIN first, then what the client still sends is
/// read and dropped for a moment. Closing a socket with unread input sends
/// a reset, which can destroy the final reply (a 421, or the reply to a
/// pipelined QUIT) before the client has read it.
pub(crate) async fn close(stream: &mut (impl AsyncRead + AsyncWrite + Unpin)) {
    close_within(stream, LINGER).await
}

/// [`close`], waiting `linger` at most for the client to close.
async fn close_within(stream: &mut (impl AsyncRead + AsyncWrite + Unpin), linger: Duration) {
    let _ = tokio::time::timeout(linger, async {
        stream.shutdown().await?;
        let mut discard = [0u8; 4096];
        while stream.read(&mut discard).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}

/// Connection slots, in all and per client IP address (the NNTP listener
/// keeps a count of its own with the same limits).
pub(crate) struct Slots {
    total: usize,
    per_ip: usize,
    taken: Mutex<Taken>,
    stress: Arc<Stress>,
}

#[derive(Default)]
struct Taken {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
    /// Each open session's standing, by its slot's number.
    sessions: HashMap<u64, Arc<Standing>>,
    /// The next slot's number.
    next: u64,
}

/// A taken slot, given back when dropped.
pub(crate) struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
    id: u64,
    standing: Arc<Standing>,
}

impl Slot {
    /// What its session tells the listener, and is told.
    pub(crate) fn standing(&self) -> Arc<Standing> {
        self.standing.clone()
    }
}

/// A session as its listener sees it when it makes room: since when it
/// has waited for its client with no transaction open, and whether it was
/// picked to close.
#[derive(Default)]
pub struct Standing {
    waiting_since: Mutex<Option<Instant>>,
    closing: CancellationToken,
    /// The permit of the client that took its place, given back when the
    /// session has ended and its slot with it.
    room: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Standing {
    /// The session waits for its client (from the first call on).
    fn wait(&self) {
        let mut since = self
            .waiting_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        since.get_or_insert_with(Instant::now);
    }

    /// The session has heard from its client and works.
    fn work(&self) {
        *self
            .waiting_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn waiting_since(&self) -> Option<Instant> {
        *self
            .waiting_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Resolves once the listener closes the session to make room.
    async fn closed_for_room(&self) {
        self.closing.cancelled().await
    }
}

impl Slots {
    pub(crate) fn new(total: usize, per_ip: usize, stress: Arc<Stress>) -> Self {
        Slots {
            total,
            per_ip,
            taken: Mutex::new(Taken::default()),
            stress,
        }
    }

    /// A slot for a client at `ip`, unless the listener is full in all or
    /// for that address.
    pub(crate) fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        // An IPv4 client reaching an IPv6 socket counts as its IPv4 address.
        let ip = ip.to_canonical();
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        let for_ip = taken.by_ip.get(&ip).copied().unwrap_or(0);
        if taken.total >= self.total {
            self.stress.begin();
            return None;
        }
        if for_ip >= self.per_ip {
            return None;
        }
        Some(self.give(&mut taken, ip))
    }

    /// A slot for a client at `ip` when the listener is full in all (not
    /// for that address): the session that has waited longest for its
    /// client with no transaction open, at least `after`, is told to close
    /// and keeps `permit` until it has, and the new client is given a slot
    /// over the limit meanwhile. `permit` back when no session has waited
    /// that long.
    pub(crate) fn make_room(
        self: &Arc<Self>,
        ip: IpAddr,
        after: Duration,
        permit: OwnedSemaphorePermit,
    ) -> Result<Slot, OwnedSemaphorePermit> {
        let ip = ip.to_canonical();
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        if taken.by_ip.get(&ip).copied().unwrap_or(0) >= self.per_ip {
            return Err(permit);
        }
        let now = Instant::now();
        let longest = taken
            .sessions
            .values()
            .filter(|standing| !standing.closing.is_cancelled())
            .filter_map(|standing| Some((standing.waiting_since()?, standing)))
            .filter(|(since, _)| now.duration_since(*since) >= after)
            .min_by_key(|(since, _)| *since)
            .map(|(_, standing)| standing.clone());
        let Some(longest) = longest else {
            return Err(permit);
        };
        *longest.room.lock().unwrap_or_else(PoisonError::into_inner) = Some(permit);
        longest.closing.cancel();
        Ok(self.give(&mut taken, ip))
    }

    fn give(self: &Arc<Self>, taken: &mut Taken, ip: IpAddr) -> Slot {
        taken.total += 1;
        *taken.by_ip.entry(ip).or_default() += 1;
        let (id, standing) = (taken.next, Arc::new(Standing::default()));
        taken.next += 1;
        taken.sessions.insert(id, standing.clone());
        Slot {
            slots: self.clone(),
            ip,
            id,
            standing,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut taken = self
            .slots
            .taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        taken.total -= 1;
        taken.sessions.remove(&self.id);
        if taken.total <= self.slots.total * 3 / 4 {
            self.slots.stress.end();
        }
        if let Some(count) = taken.by_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                taken.by_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

    use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream, ReadHalf, WriteHalf};
    use tokio::net::TcpStream;

    use super::*;
    use crate::ingest::intake::Deferred;
    use crate::ingest::route::Route;
    use crate::ingest::Outcome;

    /// An intake that keeps what it is given and answers as told.
    #[derive(Default)]
    struct Recording {
        posts: Mutex<Vec<Message>>,
        postmaster: Mutex<Vec<Message>>,
        oversize: Mutex<Vec<usize>>,
        defer_posts: bool,
    }

    impl Intake for Recording {
        async fn post(&self, _: &Arc<Config>, message: &Message) -> Result<Outcome, Deferred> {
            let mut posts = self.posts.lock().unwrap();
            posts.push(message.clone());
            if self.defer_posts {
                return Err(Deferred::new("store unavailable: disk full"));
            }
            Ok(Outcome::Stored {
                id: posts.len() as i64,
            })
        }

        async fn service(
            &self,
            _: &Arc<Config>,
            message: &Message,
            route: &Route,
        ) -> Result<(), Deferred> {
            if *route == Route::Postmaster {
                self.postmaster.lock().unwrap().push(message.clone());
            }
            Ok(())
        }

        async fn oversize(&self, _: &Arc<Config>, _: Protocol, size: usize) {
            self.oversize.lock().unwrap().push(size);
        }
    }

    fn config() -> Config {
        crate::config::shipped()
    }

    fn context(
        protocol: Protocol,
        intake: Recording,
        limits: impl FnOnce(&mut Limits),
    ) -> Arc<Context<Recording>> {
        let config = Arc::new(config());
        let mut chosen = Limits::from(&config.listen);
        limits(&mut chosen);
        // The receiver keeps the last value after the sender is gone.
        let (_, receiver) = watch::channel(config);
        Arc::new(Context {
            protocol,
            config: receiver,
            limits: chosen,
            intake,
            stress: Arc::default(),
        })
    }

    /// The client's end of a session served over an in-memory pipe.
    struct Client {
        read: BufReader<ReadHalf<DuplexStream>>,
        write: Option<WriteHalf<DuplexStream>>,
    }

    impl Client {
        /// Starts `converse` on one end of a pipe; the other is the client.
        fn start(
            context: &Arc<Context<Recording>>,
            shutdown: &CancellationToken,
        ) -> (Client, tokio::task::JoinHandle<io::Result<()>>) {
            let (client, server) = tokio::io::duplex(64 * 1024);
            let (context, shutdown) = (context.clone(), shutdown.clone());
            let session = tokio::spawn(async move {
                converse(server, None, &context, &Standing::default(), &shutdown).await
            });
            let (read, write) = tokio::io::split(client);
            let client = Client {
                read: BufReader::new(read),
                write: Some(write),
            };
            (client, session)
        }

        /// The last line of the next reply, or "<closed>".
        async fn reply(&mut self) -> String {
            loop {
                let mut line = String::new();
                if self.read.read_line(&mut line).await.unwrap() == 0 {
                    return "<closed>".into();
                }
                if line.as_bytes().get(3) != Some(&b'-') {
                    return line.trim_end().to_string();
                }
            }
        }

        async fn send(&mut self, bytes: &[u8]) {
            self.write.as_mut().unwrap().write_all(bytes).await.unwrap();
        }

        async fn say(&mut self, line: &str) -> String {
            self.send(format!("{line}\r\n").as_bytes()).await;
            self.reply().await
        }

        /// Sends `bytes` one at a time, `gap` apart, from a task of its own;
        /// it returns how many got through before the pipe closed.
        fn trickle(
            &mut self,
            bytes: &'static [u8],
            gap: Duration,
        ) -> tokio::task::JoinHandle<usize> {
            let mut write = self.write.take().unwrap();
            tokio::spawn(async move {
                for (sent, byte) in bytes.iter().enumerate() {
                    tokio::time::sleep(gap).await;
                    if write.write_all(&[*byte]).await.is_err() {
                        return sent;
                    }
                }
                bytes.len()
            })
        }
    }

    const LIST: &str = "a-infos-en@lists.example.org";

    #[tokio::test]
    async fn a_message_goes_to_the_intake_with_its_routes_and_lmtp_answers_each_recipient() {
        let context = context(Protocol::Lmtp, Recording::default(), |_| {});
        let (mut client, session) = Client::start(&context, &CancellationToken::new());
        assert_eq!(
            client.reply().await,
            "220 lists.example.org tidings LMTP ready"
        );
        assert!(client.say("LHLO c").await.starts_with("250 "));
        client
            .send(format!("MAIL FROM:<a@example.org>\r\nRCPT TO:<{LIST}>\r\nRCPT TO:<postmaster>\r\nDATA\r\n").as_bytes())
            .await;
        for expected in ["250 2.1.0", "250 2.1.5", "250 2.1.5", "354 "] {
            assert!(client.reply().await.starts_with(expected), "{expected}");
        }
        client.send(b"Subject: (en) hi\r\n\r\nbody\r\n.\r\n").await;
        assert_eq!(client.reply().await, "250 2.0.0 stored as post 1");
        assert_eq!(client.reply().await, "250 2.0.0 queued for the postmaster");
        assert_eq!(client.say("QUIT").await, "221 2.0.0 lists.example.org bye");
        assert_eq!(client.reply().await, "<closed>");
        drop(client);
        session.await.unwrap().unwrap();

        let posts = context.intake.posts.lock().unwrap();
        let postmaster = context.intake.postmaster.lock().unwrap();
        assert_eq!(posts.len(), 1);
        assert_eq!(postmaster.len(), 1);
        let routes: Vec<&Route> = posts[0].recipients.iter().map(|r| &r.route).collect();
        assert_eq!(
            routes,
            [&Route::Post { list: "en".into() }, &Route::Postmaster]
        );
        assert_eq!(
            posts[0].content.as_slice(),
            b"Subject: (en) hi\r\n\r\nbody\r\n"
        );
    }

    #[tokio::test]
    async fn a_store_failure_is_451_and_the_session_goes_on() {
        let intake = Recording {
            defer_posts: true,
            ..Recording::default()
        };
        let context = context(Protocol::Smtp, intake, |_| {});
        let (mut client, _session) = Client::start(&context, &CancellationToken::new());
        client.reply().await;
        client.say("EHLO c").await;
        client.say("MAIL FROM:<a@example.org>").await;
        client.say(&format!("RCPT TO:<{LIST}>")).await;
        client.say("DATA").await;
        assert_eq!(
            client.say("x: y\r\n\r\nz\r\n.").await,
            "451 4.3.0 store unavailable: disk full; try again later"
        );
        assert_eq!(client.say("NOOP").await, "250 2.0.0 ok");
    }

    #[tokio::test(start_paused = true)]
    async fn the_command_timeout_is_a_deadline_per_command_not_per_read() {
        let context = context(Protocol::Smtp, Recording::default(), |limits| {
            limits.command_timeout = Duration::from_secs(10);
        });
        let (mut client, session) = Client::start(&context, &CancellationToken::new());
        client.reply().await;
        // Each byte comes well within the timeout; the command never does.
        const LINE: &[u8] = b"NOOP one byte at a time\r\n";
        let trickle = client.trickle(LINE, Duration::from_secs(3));
        assert_eq!(
            client.reply().await,
            "421 4.4.2 lists.example.org command timeout"
        );
        assert_eq!(client.reply().await, "<closed>");
        session.await.unwrap().unwrap();
        assert!(trickle.await.unwrap() < LINE.len(), "dropped mid-line");
    }

    #[tokio::test(start_paused = true)]
    async fn each_command_has_a_deadline_of_its_own() {
        let context = context(Protocol::Smtp, Recording::default(), |limits| {
            limits.command_timeout = Duration::from_secs(10);
        });
        let (mut client, _session) = Client::start(&context, &CancellationToken::new());
        client.reply().await;
        // Five commands, 6 s apart: longer in all than one timeout.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            assert_eq!(client.say("NOOP").await, "250 2.0.0 ok");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_data_timeout_is_a_deadline_per_message() {
        let context = context(Protocol::Smtp, Recording::default(), |limits| {
            limits.command_timeout = Duration::from_secs(10);
            limits.data_timeout = Duration::from_secs(30);
        });
        let (mut client, session) = Client::start(&context, &CancellationToken::new());
        client.reply().await;
        client.say("EHLO c").await;
        client.say("MAIL FROM:<a@example.org>").await;
        client.say(&format!("RCPT TO:<{LIST}>")).await;
        assert!(client.say("DATA").await.starts_with("354 "));
        const MESSAGE: &[u8] = b"Subject: slow\r\n\r\none byte every few seconds\r\n.\r\n";
        let trickle = client.trickle(MESSAGE, Duration::from_secs(3));
        assert_eq!(
            client.reply().await,
            "421 4.4.2 lists.example.org data timeout"
        );
        assert_eq!(client.reply().await, "<closed>");
        session.await.unwrap().unwrap();
        assert!(trickle.await.unwrap() < MESSAGE.len());
        assert!(context.intake.posts.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn shutdown_sends_an_idle_client_421() {
        let context = context(Protocol::Lmtp, Recording::default(), |_| {});
        let shutdown = CancellationToken::new();
        let (mut client, session) = Client::start(&context, &shutdown);
        client.reply().await;
        assert!(client.say("LHLO c").await.starts_with("250 "));
        shutdown.cancel();
        assert_eq!(
            client.reply().await,
            "421 4.3.2 lists.example.org shutting down"
        );
        assert_eq!(client.reply().await, "<closed>");
        drop(client);
        session.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn shutdown_lets_an_open_transaction_finish_first() {
        let context = context(Protocol::Smtp, Recording::default(), |_| {});
        let shutdown = CancellationToken::new();
        let (mut client, session) = Client::start(&context, &shutdown);
        client.reply().await;
        client.say("EHLO c").await;
        client.say("MAIL FROM:<a@example.org>").await;
        shutdown.cancel();
        assert_eq!(
            client.say(&format!("RCPT TO:<{LIST}>")).await,
            "250 2.1.5 recipient ok"
        );
        client.say("DATA").await;
        assert_eq!(
            client.say("x: y\r\n\r\nz\r\n.").await,
            "250 2.0.0 stored as post 1"
        );
        assert_eq!(
            client.reply().await,
            "421 4.3.2 lists.example.org shutting down"
        );
        drop(client);
        session.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn the_last_reply_survives_input_the_client_sends_after_it() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let context = context(Protocol::Smtp, Recording::default(), |_| {});
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(run(listener, context, shutdown.clone()));
        let mut client = connect(address).await;
        banner(&mut client).await;
        client.get_mut().write_all(b"QUIT\r\n").await.unwrap();
        assert_eq!(banner(&mut client).await, "221 2.0.0 lists.example.org bye");
        // A client that has not seen the end yet sends more. Had the
        // listener closed at once, the first write would draw a reset and
        // a later one fail: the listener reads until the client closes.
        for _ in 0..20 {
            client.get_mut().write_all(b"NOOP\r\n").await.unwrap();
        }
        assert!(closed(&mut client).await, "an orderly end, not a reset");
        drop(client);
        shutdown.cancel();
        server.await.unwrap();
    }

    #[test]
    fn limits_come_from_the_listen_section() {
        let limits = Limits::from(&config().listen);
        assert_eq!(limits.max_connections, 64);
        assert_eq!(limits.max_connections_per_ip, 8);
        assert_eq!(limits.max_recipients, 50);
        assert_eq!(limits.command_timeout, Duration::from_secs(300));
        assert_eq!(limits.data_timeout, Duration::from_secs(600));
        assert_eq!(limits.max_errors, MAX_ERRORS);
    }

    #[test]
    fn slots_are_limited_per_address_and_in_all() {
        let slots = Arc::new(Slots::new(3, 2, Arc::default()));
        let one = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        let other = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let first = slots.take(one).unwrap();
        let second = slots.take(mapped).unwrap();
        assert!(slots.take(one).is_none(), "the same host, mapped or not");
        let third = slots.take(other).unwrap();
        assert!(slots.take(other).is_none(), "full in all");
        drop(first);
        let again = slots.take(one);
        assert!(again.is_some(), "a slot given back is free again");
        drop((again, second, third));
        let taken = slots.taken.lock().unwrap();
        assert_eq!(taken.total, 0);
        assert!(taken.by_ip.is_empty(), "no address is remembered");
    }

    async fn connect(address: SocketAddr) -> BufReader<TcpStream> {
        BufReader::new(TcpStream::connect(address).await.unwrap())
    }

    async fn banner(stream: &mut BufReader<TcpStream>) -> String {
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        line.trim_end().to_string()
    }

    async fn closed(stream: &mut BufReader<TcpStream>) -> bool {
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.is_ok() && rest.is_empty()
    }

    /// Connects until the listener greets (a freed slot is seen a moment
    /// after the client saw its connection close).
    async fn connect_until_greeted(address: SocketAddr) -> BufReader<TcpStream> {
        for _ in 0..500 {
            let mut stream = connect(address).await;
            if banner(&mut stream).await.starts_with("220 ") {
                return stream;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no slot came free");
    }

    #[tokio::test]
    async fn a_full_listener_answers_421_and_keeps_accepting() {
        for (total, per_ip) in [(8, 2), (2, 8)] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let context = context(Protocol::Smtp, Recording::default(), |limits| {
                limits.max_connections = total;
                limits.max_connections_per_ip = per_ip;
                // Nobody waits long enough to be closed for room.
                limits.make_room_after = Duration::from_secs(3_600);
            });
            let shutdown = CancellationToken::new();
            let server = tokio::spawn(run(listener, context, shutdown.clone()));
            let mut first = connect(address).await;
            assert!(banner(&mut first).await.starts_with("220 "));
            let mut second = connect(address).await;
            assert!(banner(&mut second).await.starts_with("220 "));
            for _ in 0..3 {
                let mut refused = connect(address).await;
                assert_eq!(
                    banner(&mut refused).await,
                    "421 4.7.0 lists.example.org too many connections, try again later",
                    "total {total}, per address {per_ip}"
                );
                assert!(closed(&mut refused).await);
            }
            first.get_mut().write_all(b"QUIT\r\n").await.unwrap();
            assert!(banner(&mut first).await.starts_with("221 "));
            assert!(closed(&mut first).await);
            drop(first);
            let mut third = connect_until_greeted(address).await;
            third.get_mut().write_all(b"NOOP\r\n").await.unwrap();
            assert_eq!(banner(&mut third).await, "250 2.0.0 ok");
            drop((second, third));
            shutdown.cancel();
            server.await.unwrap();
        }
    }

    /// A full listener turning a client away is under stress: sessions
    /// waiting for a command then have the stress timeout (here 1 s, where
    /// the command timeout is 300 s) and make room; once slots are free
    /// again, a session waits its whole command timeout.
    #[tokio::test]
    async fn a_full_listener_gives_waiting_sessions_the_stress_timeout_until_room_comes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let context = context(Protocol::Smtp, Recording::default(), |limits| {
            limits.max_connections = 2;
            limits.stress_timeout = Duration::from_secs(1);
            limits.make_room_after = Duration::from_secs(3_600);
        });
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(run(listener, context.clone(), shutdown.clone()));
        let mut first = connect(address).await;
        assert!(banner(&mut first).await.starts_with("220 "));
        let mut second = connect(address).await;
        assert!(banner(&mut second).await.starts_with("220 "));
        // Full, but nobody turned away: no stress, and a session waits
        // past the stress timeout.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert!(!context.stress.is_on());
        second.get_mut().write_all(b"NOOP\r\n").await.unwrap();
        assert_eq!(banner(&mut second).await, "250 2.0.0 ok");

        let mut refused = connect(address).await;
        assert!(banner(&mut refused).await.starts_with("421 4.7.0 "));
        assert!(context.stress.is_on());
        // Both sessions, waiting for a command, are timed out within the
        // stress timeout (the bound only stops a failing test).
        for stream in [&mut first, &mut second] {
            let told = tokio::time::timeout(Duration::from_secs(30), banner(stream))
                .await
                .expect("timed out under stress");
            assert_eq!(told, "421 4.4.2 lists.example.org command timeout");
            assert!(closed(stream).await);
        }
        let mut third = connect_until_greeted(address).await;
        assert!(!context.stress.is_on(), "room again");
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        third.get_mut().write_all(b"NOOP\r\n").await.unwrap();
        assert_eq!(banner(&mut third).await, "250 2.0.0 ok");
        drop(third);
        shutdown.cancel();
        server.await.unwrap();
    }

    /// Once half the refusals are in flight, one at a time per client
    /// network (an IPv4 /24, an IPv6 /64; an IPv4 address mapped into IPv6
    /// being IPv4), so that a flood from some networks cannot take every
    /// permit and leave other clients unanswered; before that, as many as
    /// come.
    #[test]
    fn past_half_the_refusals_one_is_in_flight_per_network() {
        let refusals = Arc::new(Semaphore::new(4));
        let in_flight: InFlight = Arc::default();
        let refuse = |ip| {
            let permit = refusals.clone().try_acquire_owned().unwrap();
            Refusing::new(&in_flight, ip, permit, 4)
        };
        let one: IpAddr = Ipv4Addr::new(127, 4, 0, 1).into();
        let neighbour: IpAddr = Ipv4Addr::new(127, 4, 0, 200).to_ipv6_mapped().into();
        let other: IpAddr = Ipv4Addr::new(127, 4, 1, 1).into();
        let first = refuse(one).expect("plenty left");
        let second = refuse(neighbour).expect("plenty left, the same network");
        assert!(
            refuse(one).is_none(),
            "scarce, and one in flight for its network"
        );
        assert_eq!(
            refusals.available_permits(),
            2,
            "the refused permit came back"
        );
        let third = refuse(other).expect("scarce, none in flight for its network");
        drop((first, second));
        let again = refuse(one).expect("none in flight for it now");
        drop((third, again));
        assert!(in_flight.lock().unwrap().is_empty());
        assert_eq!(refusals.available_permits(), 4);
        let v6 = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(network(v6("2001:db8:1:2:3:4:5:6")), v6("2001:db8:1:2::"));
    }

    /// A full listener makes room for a new client, who is greeted at
    /// once: the session closed for it, told 421, is the one that has
    /// waited longest for its client; one with a transaction open, or that
    /// has waited less than `make_room_after`, is never closed for room,
    /// and when none is left to close the next client is turned away.
    #[tokio::test]
    async fn a_full_listener_closes_the_session_waiting_longest_for_its_client_to_greet_a_new_one()
    {
        const AFTER: Duration = Duration::from_secs(2);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let context = context(Protocol::Smtp, Recording::default(), |limits| {
            limits.max_connections = 3;
            limits.make_room_after = AFTER;
        });
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(run(listener, context.clone(), shutdown.clone()));
        let mut sending = connect(address).await;
        assert!(banner(&mut sending).await.starts_with("220 "));
        let mut oldest = connect(address).await;
        assert!(banner(&mut oldest).await.starts_with("220 "));
        sending
            .get_mut()
            .write_all(b"HELO client.example.org\r\nMAIL FROM:<a@example.org>\r\n")
            .await
            .unwrap();
        assert!(banner(&mut sending).await.starts_with("250 "));
        assert!(banner(&mut sending).await.starts_with("250 "));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut newer = connect(address).await;
        assert!(banner(&mut newer).await.starts_with("220 "));
        // All three have waited past AFTER; one has a transaction open.
        tokio::time::sleep(AFTER + Duration::from_millis(300)).await;

        let mut new = connect(address).await;
        assert!(banner(&mut new).await.starts_with("220 "), "room made");
        assert_eq!(
            banner(&mut oldest).await,
            "421 4.7.0 lists.example.org too many connections, try again later"
        );
        assert!(closed(&mut oldest).await);
        newer.get_mut().write_all(b"NOOP\r\n").await.unwrap();
        assert_eq!(banner(&mut newer).await, "250 2.0.0 ok");
        sending
            .get_mut()
            .write_all(format!("RCPT TO:<{LIST}>\r\n").as_bytes())
            .await
            .unwrap();
        assert!(banner(&mut sending).await.starts_with("250 "), "kept");

        // Nobody has waited long enough now: the next one is turned away.
        let mut refused = connect(address).await;
        assert!(banner(&mut refused).await.starts_with("421 4.7.0 "));
        assert!(closed(&mut refused).await);
        new.get_mut().write_all(b"NOOP\r\n").await.unwrap();
        assert_eq!(banner(&mut new).await, "250 2.0.0 ok");
        drop((sending, newer, new));
        shutdown.cancel();
        server.await.unwrap();
    }
}
