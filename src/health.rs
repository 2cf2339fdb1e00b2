//! What `/healthz` reports: the state of each listener, as its accept loop
//! last saw it. A process that answers HTTP is not thereby taking mail: an
//! accept loop failing ("Too many open files") or ended is reported, and
//! any mail listener not listening makes the answer a 503.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// What an accept loop is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Accepting connections.
    Listening,
    /// Not accepting for now, on purpose: every connection it may hold is
    /// open, or descriptors are kept for mail; new clients wait in the
    /// kernel's queue. Says which.
    Paused(&'static str),
    /// The last accept failed with this error (since the instant given).
    Failing(String, Instant),
    /// The loop has ended.
    Stopped,
}

/// One listener's state, updated by its accept loop, read by `/healthz`.
#[derive(Debug)]
pub struct Listener {
    /// `lmtp`, `smtp` or `http`.
    pub name: &'static str,
    /// Where it listens.
    pub address: SocketAddr,
    /// Whether it takes mail: a mail listener that is not listening makes
    /// the daemon unhealthy.
    pub mail: bool,
    state: Mutex<State>,
    /// Connections open now, and the most ever open at once (HTTP only;
    /// the mail listeners count theirs in their own slots).
    connections: AtomicUsize,
    peak: AtomicUsize,
    /// Connections it may hold at once (0: not reported).
    capacity: AtomicUsize,
}

impl Listener {
    /// A listener about to accept.
    pub fn new(name: &'static str, address: SocketAddr, mail: bool) -> Listener {
        Listener {
            name,
            address,
            mail,
            state: Mutex::new(State::Listening),
            connections: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            capacity: AtomicUsize::new(0),
        }
    }

    /// Records what the loop does now; a failure keeps the instant it began.
    pub fn set(&self, state: State) {
        let mut current = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let unchanged = match (&*current, &state) {
            (State::Failing(old, _), State::Failing(new, _)) => old == new,
            (old, new) => old == new,
        };
        if !unchanged {
            *current = state;
        }
    }

    /// The state as last recorded.
    pub fn state(&self) -> State {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records the connections it may hold at once.
    pub fn set_capacity(&self, capacity: usize) {
        self.capacity.store(capacity, Ordering::Relaxed);
    }

    /// Counts a connection opened (and the peak).
    pub fn opened(&self) {
        let now = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    /// Counts a connection closed.
    pub fn closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether it does what it is for: listening, or holding all it may.
    fn is_up(&self) -> bool {
        matches!(self.state(), State::Listening | State::Paused(_))
    }

    /// One line: name, address, state, and for HTTP the connections.
    fn line(&self) -> String {
        let state = match self.state() {
            State::Listening => "listening".to_string(),
            State::Paused(why) => format!("paused: {why}"),
            State::Failing(error, since) => {
                format!("failing for {}s: {error}", since.elapsed().as_secs())
            }
            State::Stopped => "stopped".to_string(),
        };
        let capacity = self.capacity.load(Ordering::Relaxed);
        let connections = if capacity > 0 {
            format!(
                ", {} of {capacity} connections open (peak {})",
                self.connections.load(Ordering::Relaxed),
                self.peak.load(Ordering::Relaxed)
            )
        } else {
            String::new()
        };
        format!("{} {} {state}{connections}", self.name, self.address)
    }
}

/// Every listener of the daemon, for `/healthz`.
#[derive(Debug, Default)]
pub struct Health {
    /// In the order they are reported.
    pub listeners: Vec<std::sync::Arc<Listener>>,
}

impl Health {
    /// Whether every mail listener is up, and a line for each listener.
    pub fn report(&self) -> (bool, String) {
        let up = self
            .listeners
            .iter()
            .all(|listener| !listener.mail || listener.is_up());
        let mut text = String::new();
        for listener in &self.listeners {
            text.push_str(&listener.line());
            text.push('\n');
        }
        (up, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_failing_mail_listener_makes_the_daemon_down_and_http_does_not() {
        let address: SocketAddr = "127.0.0.1:25".parse().unwrap();
        let smtp = Arc::new(Listener::new("smtp", address, true));
        let http = Arc::new(Listener::new("http", address, false));
        let health = Health {
            listeners: vec![smtp.clone(), http.clone()],
        };
        assert!(health.report().0);
        http.set(State::Stopped);
        assert!(health.report().0, "HTTP down is answered by HTTP itself");
        smtp.set(State::Failing("Too many open files".into(), Instant::now()));
        let (up, text) = health.report();
        assert!(!up);
        assert!(
            text.contains("smtp 127.0.0.1:25 failing for 0s: Too many open files"),
            "{text}"
        );
        smtp.set(State::Listening);
        http.set_capacity(50);
        http.opened();
        http.opened();
        http.closed();
        let (up, text) = health.report();
        assert!(up);
        assert!(
            text.contains("http 127.0.0.1:25 stopped, 1 of 50 connections open (peak 2)"),
            "{text}"
        );
    }
}
