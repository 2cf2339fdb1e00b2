//! File descriptors: the one resource HTTP clients could take from mail.
//!
//! Every connection holds a descriptor and the process may have only
//! RLIMIT_NOFILE of them. Mail takes a bounded number (each mail listener
//! serves `max_connections` at once and turns at most
//! [`MAX_REFUSALS`](crate::ingest::listener::MAX_REFUSALS) more away with a
//! 421); HTTP clients are many and anonymous. So the daemon raises its
//! soft limit to the hard one at start ([`raise_limit`]), keeps what mail
//! and the rest of the daemon need ([`Budget`]), caps HTTP connections to
//! what is left, and before each HTTP accept looks at what is actually
//! free, so that descriptors taken by anything else still never come out
//! of mail's share.

use std::path::Path;

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

use crate::config::Config;
use crate::ingest::listener::MAX_REFUSALS;

/// Descriptors for everything that is neither a connection nor a
/// delivery: stdio (3), the runtime's epoll, eventfd and signal pipe
/// (about 6), the store's connections (a writer and three readers, each
/// with its database, WAL and shared-memory file: 16), the log, the
/// outbox lock, the configuration and templates read on SIGHUP, and the
/// files the feed and page writers have open at once (a few each). That
/// is about 40; twice that leaves room for what this count forgets.
pub const FIXED: u64 = 80;

/// Descriptors one HTTP connection may hold: its socket and a file it
/// streams.
pub const PER_HTTP_CONNECTION: u64 = 2;

/// Descriptors one outgoing delivery connection may hold: a socket, or a
/// sendmail child's three pipes.
const PER_DELIVERY: u64 = 3;

/// Highest soft limit asked for when the hard one is unlimited (Linux
/// refuses more than fs.nr_open, 1,048,576 by default).
const UNLIMITED: u64 = 1 << 20;

/// How the descriptors of the process are shared out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The soft limit in effect.
    pub limit: u64,
    /// Kept for mail and deliveries: never taken by HTTP.
    pub reserve: u64,
    /// HTTP connections held at once: the configured cap, or fewer when
    /// the limit leaves less room.
    pub http_connections: usize,
}

impl Budget {
    /// The budget for `config` under a soft limit of `limit`.
    ///
    /// The reserve is what mail may hold at its busiest: for each of the
    /// two mail listeners (and the NNTP one, when on) its socket,
    /// `max_connections` sessions and [`MAX_REFUSALS`] refusals in flight;
    /// plus the relay connections of the outbox. HTTP gets what is left after the reserve and
    /// [`FIXED`], [`PER_HTTP_CONNECTION`] each, at least one connection
    /// (the check before each accept still keeps the reserve).
    pub fn new(config: &Config, limit: u64) -> Budget {
        let listen = &config.listen;
        let mail_listener = 1 + listen.max_connections as u64 + MAX_REFUSALS as u64;
        // SMTP and LMTP, and NNTP when it is on: its listener keeps the
        // same limits, counted apart.
        let listeners = 2 + u64::from(listen.nntp.is_some());
        let reserve = listeners * mail_listener + PER_DELIVERY * config.delivery.connections as u64;
        let room = limit.saturating_sub(FIXED + reserve + 1) / PER_HTTP_CONNECTION;
        let http_connections = (listen.http_max_connections as u64).min(room).max(1);
        Budget {
            limit,
            reserve,
            http_connections: http_connections as usize,
        }
    }

    /// Whether the configured HTTP cap had to be lowered.
    pub fn lowers(&self, config: &Config) -> bool {
        self.http_connections < config.listen.http_max_connections
    }

    /// Whether, with `open` descriptors open, one more HTTP connection
    /// still leaves the reserve free.
    pub fn room_for_http(&self, open: u64) -> bool {
        open + PER_HTTP_CONNECTION + self.reserve <= self.limit
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; the soft limit in
/// effect afterwards. A limit that cannot be raised stays as it is.
pub fn raise_limit() -> u64 {
    let limits = getrlimit(Resource::Nofile);
    let current = limits.current.unwrap_or(UNLIMITED);
    let wanted = limits.maximum.unwrap_or(UNLIMITED);
    if wanted > current {
        let raised = Rlimit {
            current: Some(wanted),
            maximum: limits.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => return wanted,
            Err(error) => {
                tracing::warn!(%error, current, wanted, "open-files limit not raised");
            }
        }
    }
    current
}

/// Descriptors open in this process now (the entries of /proc/self/fd),
/// or `None` where that cannot be read.
pub fn open_now() -> Option<u64> {
    let entries = std::fs::read_dir(Path::new("/proc/self/fd")).ok()?;
    // The directory being read is itself one of them.
    Some((entries.count() as u64).saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_gets_what_mail_and_the_daemon_leave() {
        let mut config = crate::config::shipped();
        config.listen.max_connections = 4;
        config.listen.http_max_connections = 100_000;
        config.delivery.connections = 4;
        // Mail: 2 * (1 + 4 + 64) = 138; deliveries 12; fixed 80; HTTP's
        // listener 1; HTTP gets (320 - 231) / 2 = 44.
        let budget = Budget::new(&config, 320);
        assert_eq!(budget.reserve, 150);
        assert_eq!(budget.http_connections, 44);
        assert!(budget.lowers(&config));
        assert!(budget.room_for_http(320 - 150 - 2));
        // Newsgroups on: a third listener's worth (69) is kept from HTTP,
        // which gets (320 - 80 - 219 - 1) / 2 = 10.
        let mut news = config.clone();
        news.listen.nntp = Some("127.0.0.1:0".parse().unwrap());
        let budget = Budget::new(&news, 320);
        assert_eq!(budget.reserve, 150 + 69);
        assert_eq!(budget.http_connections, 10);
        assert!(!budget.room_for_http(320 - 150 - 1));
        // A roomy limit leaves the configured cap as it is.
        config.listen.http_max_connections = 50;
        let budget = Budget::new(&config, 20_000);
        assert_eq!(budget.http_connections, 50);
        assert!(!budget.lowers(&config));
        // A limit that fits no HTTP connection still serves one.
        assert_eq!(Budget::new(&config, 100).http_connections, 1);
    }

    #[test]
    fn the_limit_is_raised_to_the_hard_one() {
        let limit = raise_limit();
        let limits = getrlimit(Resource::Nofile);
        assert_eq!(Some(limit), limits.current);
        assert_eq!(limits.current, limits.maximum.or(Some(UNLIMITED)));
        let open = open_now().expect("/proc/self/fd");
        assert!(open >= 3, "stdio at least: {open}");
    }
}
