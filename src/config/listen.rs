//! The `[listen]` table: where `tidings serve` listens, and the limits that
//! keep one mail client from holding the daemon. [`Listen::default`] is
//! where those limits are stated; the listener takes them from here.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::errors::Errors;

/// The `[listen]` table: where `tidings serve` listens and how much it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// LMTP listener (default 127.0.0.1:8024).
    pub lmtp: SocketAddr,
    /// SMTP listener (default 127.0.0.1:8025).
    pub smtp: SocketAddr,
    /// HTTP listener for feeds, health and metrics (default 127.0.0.1:8080).
    pub http: SocketAddr,
    /// Mail connections served at once (default 64).
    pub max_connections: usize,
    /// SMTP connections served at once for one client IP address (default
    /// 8); LMTP's, all from the MTA next door, are held to
    /// `max_connections` alone.
    pub max_connections_per_ip: usize,
    /// Recipients accepted per message (default 50).
    pub max_recipients: usize,
    /// Seconds a mail client may take to send one command (default 300).
    pub command_timeout_secs: u64,
    /// Seconds a mail client may take to send a whole message (default 600).
    pub data_timeout_secs: u64,
    /// Seconds a mail session may wait for each read while its listener is
    /// full and turning clients away (default 10, Postfix's stress value of
    /// `smtpd_timeout`): clients holding slots without sending make room.
    pub stress_timeout_secs: u64,
    /// HTTP connections held at once (default 1024); past it a new client
    /// closes the connection that has waited longest for a request, and
    /// waits in the kernel's queue only when every one has a request in
    /// hand. Fewer when the descriptor limit leaves less room (see
    /// `web::connections`).
    pub http_max_connections: usize,
    /// Seconds an HTTP client may take to send a request's head, counted
    /// from when the server starts waiting for it: on a new connection and
    /// after each answer on a kept-alive one (default 30).
    pub http_header_timeout_secs: u64,
    /// Seconds an HTTP connection may go without a byte moving either way
    /// before it is closed: an idle kept-alive connection, one that never
    /// sends, a stalled upload, a client that stopped reading (default 15).
    pub http_idle_timeout_secs: u64,
    /// Read-only NNTP listener for news clients (RFC 3977); off when unset.
    /// Its connections share `max_connections`, `max_connections_per_ip`
    /// and `command_timeout_secs` with mail's limits, in a count of their own.
    pub nntp: Option<SocketAddr>,
    /// PEM certificate chain the NNTP listener offers with STARTTLS
    /// (RFC 4642); with `nntp_tls_key`, else no STARTTLS.
    pub nntp_tls_certificate: Option<std::path::PathBuf>,
    /// PEM private key of `nntp_tls_certificate`.
    pub nntp_tls_key: Option<std::path::PathBuf>,
}

impl Default for Listen {
    fn default() -> Self {
        let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        Listen {
            lmtp: loopback(8024),
            smtp: loopback(8025),
            http: loopback(8080),
            max_connections: 64,
            max_connections_per_ip: 8,
            max_recipients: 50,
            command_timeout_secs: 300,
            data_timeout_secs: 600,
            stress_timeout_secs: 10,
            http_max_connections: 1024,
            http_header_timeout_secs: 30,
            http_idle_timeout_secs: 15,
            nntp: None,
            nntp_tls_certificate: None,
            nntp_tls_key: None,
        }
    }
}

impl Listen {
    /// How long a mail client may take to send one command
    /// (`command_timeout_secs`; default 5 minutes).
    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.command_timeout_secs)
    }

    /// How long a mail client may take to send a whole message
    /// (`data_timeout_secs`; default 10 minutes).
    pub fn data_timeout(&self) -> Duration {
        Duration::from_secs(self.data_timeout_secs)
    }

    /// How long an HTTP client may take to send a request's head
    /// (`http_header_timeout_secs`; default 30 seconds).
    pub fn http_header_timeout(&self) -> Duration {
        Duration::from_secs(self.http_header_timeout_secs)
    }

    /// How long an HTTP connection may stay without traffic
    /// (`http_idle_timeout_secs`; default 15 seconds).
    pub fn http_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.http_idle_timeout_secs)
    }
}

/// `[listen]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListen {
    lmtp: Option<Spanned<String>>,
    smtp: Option<Spanned<String>>,
    http: Option<Spanned<String>>,
    max_connections: Option<Spanned<i64>>,
    max_connections_per_ip: Option<Spanned<i64>>,
    max_recipients: Option<Spanned<i64>>,
    command_timeout_secs: Option<Spanned<i64>>,
    data_timeout_secs: Option<Spanned<i64>>,
    stress_timeout_secs: Option<Spanned<i64>>,
    http_max_connections: Option<Spanned<i64>>,
    http_header_timeout_secs: Option<Spanned<i64>>,
    http_idle_timeout_secs: Option<Spanned<i64>>,
    nntp: Option<Spanned<String>>,
    nntp_tls_certificate: Option<Spanned<String>>,
    nntp_tls_key: Option<Spanned<String>>,
}

impl RawListen {
    /// The checked table; a wrong value is recorded and its default kept.
    pub(super) fn check(self, errors: &mut Errors<'_>, base: &std::path::Path) -> Listen {
        let default = Listen::default();
        let mut address = |value: Option<Spanned<String>>, default: SocketAddr| {
            match value {
            None => default,
            Some(text) => text.get_ref().parse().unwrap_or_else(|_| {
                errors.at(
                    text.span(),
                    &format!("`{}` is not an address:port", text.get_ref()),
                    "write an IP address and a port, e.g. \"127.0.0.1:8024\" (port 0 picks a free one)",
                );
                default
            }),
        }
        };
        let lmtp = address(self.lmtp, default.lmtp);
        let smtp = address(self.smtp, default.smtp);
        let http = address(self.http, default.http);
        let nntp = self.nntp.map(|nntp| {
            let default = SocketAddr::from((Ipv4Addr::LOCALHOST, 8119));
            address(Some(nntp), default)
        });
        let (nntp_tls_certificate, nntp_tls_key) = match (
            self.nntp_tls_certificate,
            self.nntp_tls_key,
        ) {
            (Some(certificate), Some(key)) => (
                Some(base.join(certificate.get_ref())),
                Some(base.join(key.get_ref())),
            ),
            (Some(one), None) | (None, Some(one)) => {
                errors.at(
                    one.span(),
                    "nntp_tls_certificate and nntp_tls_key go together",
                    "give both PEM files (the certificate chain and its key), or neither for no STARTTLS",
                );
                (None, None)
            }
            (None, None) => (None, None),
        };
        Listen {
            lmtp,
            smtp,
            http,
            max_connections: errors.positive(
                self.max_connections,
                default.max_connections,
                "max_connections",
            ),
            max_connections_per_ip: errors.positive(
                self.max_connections_per_ip,
                default.max_connections_per_ip,
                "max_connections_per_ip",
            ),
            max_recipients: errors.positive(
                self.max_recipients,
                default.max_recipients,
                "max_recipients",
            ),
            command_timeout_secs: errors.positive(
                self.command_timeout_secs,
                default.command_timeout_secs,
                "command_timeout_secs",
            ),
            data_timeout_secs: errors.positive(
                self.data_timeout_secs,
                default.data_timeout_secs,
                "data_timeout_secs",
            ),
            stress_timeout_secs: errors.positive(
                self.stress_timeout_secs,
                default.stress_timeout_secs,
                "stress_timeout_secs",
            ),
            http_max_connections: errors.positive(
                self.http_max_connections,
                default.http_max_connections,
                "http_max_connections",
            ),
            http_header_timeout_secs: errors.positive(
                self.http_header_timeout_secs,
                default.http_header_timeout_secs,
                "http_header_timeout_secs",
            ),
            http_idle_timeout_secs: errors.positive(
                self.http_idle_timeout_secs,
                default.http_idle_timeout_secs,
                "http_idle_timeout_secs",
            ),
            nntp,
            nntp_tls_certificate,
            nntp_tls_key,
        }
    }
}
