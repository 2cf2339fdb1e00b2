//! The `[delivery]` table: what carries digests out (a file per message, an
//! SMTP relay or sendmail), and how failures are retried.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::errors::{Choice, Chosen, Errors};
use super::{relative_to, Site};

/// The `[delivery]` table: how digests leave, and how failures are retried.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// What carries outgoing mail (default `file`: into `outbox_dir`).
    pub transport: Transport,
    /// Where the file transport writes each message with its envelope
    /// (default `data_dir/outbox`).
    pub outbox_dir: PathBuf,
    /// Host of the SMTP relay (default `127.0.0.1`).
    pub host: String,
    /// Port of the SMTP relay (default [`Tls::default_port`]: 25, or 465
    /// with `tls = "implicit"`).
    pub port: u16,
    /// TLS towards the relay (default `opportunistic`).
    pub tls: Tls,
    /// PEM file of CA certificates to trust for the relay's certificate,
    /// besides the public web PKI ones (default none), e.g. a site's own CA.
    pub tls_ca_file: Option<PathBuf>,
    /// AUTH user name for the relay (default none: no AUTH).
    pub username: Option<String>,
    /// File holding the AUTH password, trimmed (default none).
    pub password_file: Option<PathBuf>,
    /// Connections to the relay at once (default 4); four times this bounds the
    /// messages in flight (see [`crate::deliver::outbox::WINDOW`]).
    pub connections: usize,
    /// Seconds to wait for the relay or the sendmail binary (default 60).
    pub timeout_seconds: u64,
    /// The sendmail binary for `transport = "sendmail"` (default `/usr/sbin/sendmail`).
    pub sendmail_command: PathBuf,
    /// Seconds before the first retry after a 4xx or a connection failure;
    /// each further retry waits twice as long (default 300).
    pub retry_initial_seconds: i64,
    /// Longest wait between two retries, in seconds (default 14400: 4
    /// hours); never below `retry_initial_seconds`.
    pub retry_max_seconds: i64,
    /// Hours after the digest was issued when a delivery still not accepted
    /// is given up as failed (default 120: 5 days).
    pub give_up_after_hours: i64,
    /// Name tidings gives in EHLO (default the site domain).
    pub helo_name: String,
}

impl Delivery {
    /// The documented defaults for `site`: the outbox under its data
    /// directory, EHLO with its domain.
    pub fn for_site(site: &Site) -> Delivery {
        let tls = Tls::default();
        Delivery {
            transport: Transport::default(),
            outbox_dir: site.data_dir.join("outbox"),
            host: "127.0.0.1".to_string(),
            port: tls.default_port(),
            tls,
            tls_ca_file: None,
            username: None,
            password_file: None,
            connections: 4,
            timeout_seconds: 60,
            sendmail_command: PathBuf::from("/usr/sbin/sendmail"),
            retry_initial_seconds: 300,
            retry_max_seconds: 14_400,
            give_up_after_hours: 120,
            helo_name: site.domain.clone(),
        }
    }
}

impl Default for Delivery {
    /// The defaults for the default [`Site`].
    fn default() -> Self {
        Delivery::for_site(&Site::default())
    }
}

/// What carries outgoing mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Each message and its envelope written as files into `outbox_dir`
    /// (the default: works on a fresh machine).
    #[default]
    File,
    /// An SMTP relay.
    Smtp,
    /// The local sendmail binary.
    Sendmail,
}

impl Choice for Transport {
    const WHAT: &'static str = "transport";
    const HELP: &'static str =
        "write file (messages written to outbox_dir), smtp (a relay) or sendmail";
}

/// TLS towards the SMTP relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    /// Plain SMTP.
    None,
    /// STARTTLS when the relay offers it, plain otherwise (the default).
    #[default]
    Opportunistic,
    /// STARTTLS, or no delivery.
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
}

impl Tls {
    /// The relay port when the file gives none: 465 for implicit TLS, 25
    /// otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            Tls::Implicit => 465,
            Tls::None | Tls::Opportunistic | Tls::Starttls => 25,
        }
    }
}

impl Choice for Tls {
    const WHAT: &'static str = "tls";
    const HELP: &'static str =
        "write none, opportunistic (STARTTLS when offered), starttls (required) or implicit (port 465)";
}

/// `[delivery]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDelivery {
    transport: Option<Chosen<Transport>>,
    outbox_dir: Option<String>,
    host: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    tls: Option<Chosen<Tls>>,
    tls_ca_file: Option<String>,
    username: Option<Spanned<String>>,
    password_file: Option<String>,
    connections: Option<Spanned<i64>>,
    timeout_seconds: Option<Spanned<i64>>,
    sendmail_command: Option<String>,
    retry_initial_seconds: Option<Spanned<i64>>,
    retry_max_seconds: Option<Spanned<i64>>,
    give_up_after_hours: Option<Spanned<i64>>,
    helo_name: Option<Spanned<String>>,
}

impl RawDelivery {
    /// The checked table for `site`; a wrong value is recorded and its
    /// default kept.
    pub(super) fn check(self, errors: &mut Errors<'_>, site: &Site, base: &Path) -> Delivery {
        let default = Delivery::for_site(site);
        let path = |value: String| relative_to(base, PathBuf::from(value));
        let transport = (self.transport)
            .and_then(|chosen| errors.choice(chosen))
            .unwrap_or(default.transport);
        let tls = (self.tls)
            .and_then(|chosen| errors.choice(chosen))
            .unwrap_or(default.tls);
        if let Some(username) = &self.username {
            errors.one_line(username, "username");
            if tls == Tls::None {
                errors.at(
                    username.span(),
                    "username is set but tls is none: the password would cross in the clear",
                    "set tls = \"starttls\" (or \"implicit\" for port 465), or remove username",
                );
            } else if self.password_file.is_none() {
                errors.at(
                    username.span(),
                    "username is set but password_file is not",
                    "add password_file = \"relay-password\", a file holding the relay password",
                );
            }
        }
        let mut one_line = |value: Option<Spanned<String>>, key: &str, default: String| match value
        {
            Some(value) => {
                errors.one_line(&value, key);
                value.into_inner()
            }
            None => default,
        };
        let host = one_line(self.host, "host", default.host);
        let helo_name = one_line(self.helo_name, "helo_name", default.helo_name);
        let port = errors.bounded(
            self.port,
            1..=65535,
            tls.default_port(),
            "port",
            "give the relay's TCP port, e.g. 25, 587 or 465",
        );
        let connections = errors.bounded(
            self.connections,
            1..=256,
            default.connections,
            "connections",
            "a handful of connections (4 to 16) keeps a relay busy without flooding it",
        );
        let timeout_seconds = errors.bounded(
            self.timeout_seconds,
            1..=3600,
            default.timeout_seconds,
            "timeout_seconds",
            "give the seconds to wait for the relay, e.g. 60",
        );
        let retry_initial_seconds = errors.bounded(
            self.retry_initial_seconds,
            1..=86_400,
            default.retry_initial_seconds,
            "retry_initial_seconds",
            "give the seconds before the first retry, e.g. 300",
        );
        let retry_max_seconds = errors.bounded(
            self.retry_max_seconds,
            1..=604_800,
            default.retry_max_seconds,
            "retry_max_seconds",
            "give the longest wait between retries in seconds, e.g. 14400 for 4 hours",
        );
        let give_up_after_hours = errors.bounded(
            self.give_up_after_hours,
            0..=2_400,
            default.give_up_after_hours,
            "give_up_after_hours",
            "give the hours after which an undelivered digest is given up, e.g. 120 for 5 days",
        );
        Delivery {
            transport,
            outbox_dir: self.outbox_dir.map_or(default.outbox_dir, path),
            host,
            port,
            tls,
            tls_ca_file: self.tls_ca_file.map(path),
            username: self.username.map(Spanned::into_inner),
            password_file: self.password_file.map(path),
            connections,
            timeout_seconds,
            sendmail_command: self
                .sendmail_command
                .map_or(default.sendmail_command, PathBuf::from),
            retry_initial_seconds,
            retry_max_seconds: retry_max_seconds.max(retry_initial_seconds),
            give_up_after_hours,
            helo_name,
        }
    }
}
