//! The `[ingest]` table: what incoming mail may be, how sure language
//! detection must be to file a post, and the DNS servers incoming
//! authentication asks (`verify = true`, see [`crate::auth`]).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::errors::Errors;

/// The `[ingest]` table.
#[derive(Debug, Clone)]
pub struct Ingest {
    /// Largest message accepted, in bytes (default 10 MiB: 10485760).
    pub max_message_bytes: usize,
    /// Minimum confidence (0..1) for filing an untagged post by detected
    /// language (default 0.5).
    pub detect_confidence: f64,
    /// The DNS servers that incoming authentication asks, each an IP
    /// address with an optional port (default none: those of
    /// /etc/resolv.conf).
    pub dns_servers: Vec<SocketAddr>,
    /// How long one DNS query may take before it counts as failed
    /// (`dns_timeout_seconds`, default 5); a whole verification is bounded
    /// by [`crate::auth::QUERIES_PER_VERIFICATION`] of them.
    pub dns_timeout: Duration,
    /// Longest title and subject a post is stored with, in characters
    /// (`max_title_chars`, default 500); a longer one is cut at a grapheme
    /// boundary and ended with "…". The raw message keeps what was sent.
    pub max_title_chars: usize,
}

/// Titles are cut past this many characters unless `max_title_chars` says.
pub const DEFAULT_MAX_TITLE_CHARS: usize = 500;

/// DNS queries wait this many seconds unless `dns_timeout_seconds` says.
pub const DEFAULT_DNS_TIMEOUT_SECONDS: u64 = 5;

impl Default for Ingest {
    fn default() -> Self {
        Ingest {
            max_message_bytes: 10 * 1024 * 1024,
            detect_confidence: 0.5,
            dns_servers: Vec::new(),
            dns_timeout: Duration::from_secs(DEFAULT_DNS_TIMEOUT_SECONDS),
            max_title_chars: DEFAULT_MAX_TITLE_CHARS,
        }
    }
}

/// `[ingest]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIngest {
    max_message_bytes: Option<Spanned<i64>>,
    detect_confidence: Option<Spanned<f64>>,
    #[serde(default)]
    dns_servers: Vec<Spanned<String>>,
    dns_timeout_seconds: Option<Spanned<i64>>,
    max_title_chars: Option<Spanned<i64>>,
}

impl RawIngest {
    /// The checked table; a wrong value is recorded and its default kept.
    pub(super) fn check(self, errors: &mut Errors<'_>) -> Ingest {
        let mut ingest = Ingest::default();
        if let Some(limit) = self.max_message_bytes {
            match usize::try_from(*limit.get_ref()) {
                Ok(bytes) if bytes >= 1024 => ingest.max_message_bytes = bytes,
                _ => errors.at(
                    limit.span(),
                    "max_message_bytes must be at least 1024",
                    "give the largest message size in bytes, e.g. 10485760 for 10 MiB",
                ),
            }
        }
        if let Some(confidence) = self.detect_confidence {
            if (0.0..=1.0).contains(confidence.get_ref()) {
                ingest.detect_confidence = *confidence.get_ref();
            } else {
                errors.at(
                    confidence.span(),
                    "detect_confidence must be between 0 and 1",
                    "0.5 files a post when the detector is fairly sure; 1.0 never files by detection",
                );
            }
        }
        for written in &self.dns_servers {
            match dns_server(written.get_ref()) {
                Some(server) => ingest.dns_servers.push(server),
                None => errors.at(
                    written.span(),
                    &format!("dns_servers: `{}` is not an IP address", written.get_ref()),
                    "write an IP address, with a port if not 53: \"127.0.0.1\", \"127.0.0.1:5353\" or \"[::1]:53\"",
                ),
            }
        }
        ingest.dns_timeout = Duration::from_secs(errors.bounded(
            self.dns_timeout_seconds,
            1..=60,
            DEFAULT_DNS_TIMEOUT_SECONDS,
            "dns_timeout_seconds",
            "give the seconds one DNS query may take, e.g. 5",
        ));
        ingest.max_title_chars = errors.bounded(
            self.max_title_chars,
            20..=10_000,
            DEFAULT_MAX_TITLE_CHARS,
            "max_title_chars",
            "give the characters a title may have, e.g. 500 (A-Infos titles rarely pass 200)",
        );
        ingest
    }
}

/// A DNS server as written: an IP address (port 53) or a socket address.
fn dns_server(written: &str) -> Option<SocketAddr> {
    let written = written.trim();
    written
        .parse::<SocketAddr>()
        .ok()
        .or_else(|| Some(SocketAddr::new(written.parse::<IpAddr>().ok()?, 53)))
}
