//! lists.toml -> a validated [`Config`].
//!
//! Loading happens in two steps: the TOML is parsed into a spanned document,
//! each table is deserialised on its own into a `Raw*` struct (so one bad
//! table does not hide the errors of the next), then every value is checked.
//! Each problem becomes a [`ConfigError`] naming the file, line and column and
//! how to fix it; [`load`] returns all of them at once.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

/// The sample configuration shipped with tidings, used when no file is given
/// and none is found in the working directory.
pub const EMBEDDED_LISTS_TOML: &str = include_str!("../lists.toml");

/// Name under which the embedded configuration is reported in errors.
pub const EMBEDDED_NAME: &str = "<embedded lists.toml>";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from (or [`EMBEDDED_NAME`]).
    pub source: String,
    pub site: Site,
    pub ingest: Ingest,
    pub feeds: Feeds,
    pub listen: Listen,
    pub delivery: Delivery,
    /// DKIM keys every outgoing message is signed with (default none).
    pub dkim: Vec<DkimKey>,
    pub lists: Vec<List>,
}

/// The `[site]` table: what is shared by every list.
#[derive(Debug, Clone)]
pub struct Site {
    /// Display name of the service, e.g. "A-Infos".
    pub name: String,
    /// Public URL under which feeds and archive pages are served; always ends in `/`.
    pub base_url: url::Url,
    /// Mail domain of the list addresses, e.g. "lists.example.org".
    pub domain: String,
    /// Where the SQLite store and the outbox live (default `data`).
    pub data_dir: PathBuf,
    /// Where generated feeds are written (default `feeds`).
    pub feeds_dir: PathBuf,
    /// Where templates are read from (default `templates`).
    pub templates_dir: PathBuf,
    /// Timezone in which schedules run (default `UTC`).
    pub timezone: chrono_tz::Tz,
    /// Where mail to postmaster@ the list domain goes: the person running
    /// the service (default `root@localhost`).
    pub operator: String,
}

/// The `[ingest]` table.
#[derive(Debug, Clone)]
pub struct Ingest {
    /// Largest message accepted, in bytes (default 10 MiB).
    pub max_message_bytes: usize,
    /// Minimum confidence (0..1) for filing an untagged post by detected
    /// language (default 0.5).
    pub detect_confidence: f64,
}

/// The `[feeds]` table.
#[derive(Debug, Clone)]
pub struct Feeds {
    /// Entries in the feeds of all lists together (default 40, like the A-Infos home page).
    pub all_entries: usize,
    /// Entries in each list's feeds unless the list sets its own (default 100).
    pub list_entries: usize,
}

/// The `[listen]` table: where `tidings serve` listens and how much it takes.
#[derive(Debug, Clone)]
pub struct Listen {
    /// LMTP listener (default 127.0.0.1:8024).
    pub lmtp: std::net::SocketAddr,
    /// SMTP listener (default 127.0.0.1:8025).
    pub smtp: std::net::SocketAddr,
    /// HTTP listener for feeds, health and metrics (default 127.0.0.1:8080).
    pub http: std::net::SocketAddr,
    /// Mail connections served at once (default 64).
    pub max_connections: usize,
    /// Mail connections served at once for one client IP address (default 8).
    pub max_connections_per_ip: usize,
    /// Recipients accepted per message (default 50).
    pub max_recipients: usize,
    /// Seconds a mail client may take to send one command (default 300).
    pub command_timeout_secs: u64,
    /// Seconds a mail client may take to send a whole message (default 600).
    pub data_timeout_secs: u64,
}

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
    /// Port of the SMTP relay (default 25, or 465 with `tls = "implicit"`).
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
    /// Longest wait between two retries, in seconds (default 14400: 4 hours).
    pub retry_max_seconds: i64,
    /// Hours after the digest was issued when a delivery still not accepted
    /// is given up as failed (default 120: 5 days).
    pub give_up_after_hours: i64,
    /// Name tidings gives in EHLO (default the site domain).
    pub helo_name: String,
}

/// What carries outgoing mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Each message and its envelope written as files into `outbox_dir`.
    File,
    /// An SMTP relay.
    Smtp,
    /// The local sendmail binary.
    Sendmail,
}

/// TLS towards the SMTP relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Plain SMTP.
    None,
    /// STARTTLS when the relay offers it, plain otherwise.
    Opportunistic,
    /// STARTTLS, or no delivery.
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
}

/// One `[[dkim]]` key: outgoing messages carry one DKIM-Signature per key.
#[derive(Debug, Clone)]
pub struct DkimKey {
    /// The signing domain, `d=` (default the site domain).
    pub domain: String,
    /// The selector, `s=`: the key is published at `SELECTOR._domainkey.DOMAIN`.
    pub selector: String,
    /// The algorithm (default `ed25519-sha256`).
    pub algorithm: DkimAlgorithm,
    /// PEM file with the private key (PKCS#8; PKCS#1 is also read for RSA).
    pub key_file: PathBuf,
}

/// A DKIM signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimAlgorithm {
    /// RFC 8463.
    Ed25519Sha256,
    /// RFC 6376.
    RsaSha256,
}

/// How the volume number of a list's digests advances; the issue number
/// restarts at 1 with each new volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumePeriod {
    Yearly,
    /// Calendar quarters: January-March, April-June, July-September, October-December.
    Quarterly,
    Monthly,
    /// ISO 8601 weeks (Monday first), by ISO week-year.
    Weekly,
    Daily,
}

/// One `[[list]]`: a language edition of the service.
#[derive(Debug, Clone)]
pub struct List {
    /// The tag contributors put in subjects, and the suffix of the list's address.
    pub code: String,
    /// BCP 47 language tag for everything machine-facing.
    pub lang: String,
    /// Name of the language in the language itself, e.g. "Ελληνικά".
    pub name: String,
    /// Title of the list's feeds and digests, in its language.
    pub title: String,
    /// One-line description of the list, in its language.
    pub description: String,
    /// Posting address, lowercase.
    pub address: String,
    /// Other tags contributors use for this list, lowercase.
    pub aliases: Vec<String>,
    /// When the digest is sent, as written in the file.
    pub digest_schedule: String,
    /// The parsed digest schedule.
    pub schedule: cron::Schedule,
    /// Entries in this list's feeds.
    pub feed_entries: usize,
    /// Whether posts in languages no list serves may be filed here when sent
    /// to this list's address (The Supplement).
    pub catch_all: bool,
    /// How the digest volume advances (default yearly).
    pub digest_volume: VolumePeriod,
    /// Bytes of pending post text that send a digest before its scheduled
    /// time (default 30720; 0 never sends early).
    pub digest_size_threshold: usize,
    /// Whether a digest goes out at its scheduled time even when no post is
    /// pending (default false).
    pub digest_send_empty: bool,
}

impl Config {
    /// The list with this code, if any.
    pub fn list(&self, code: &str) -> Option<&List> {
        self.lists.iter().find(|list| list.code == code)
    }

    /// The list whose code or alias is `tag` (case-insensitive).
    pub fn list_by_tag(&self, tag: &str) -> Option<&List> {
        let tag = tag.to_ascii_lowercase();
        self.lists
            .iter()
            .find(|list| list.code == tag)
            .or_else(|| self.lists.iter().find(|l| l.aliases.contains(&tag)))
    }

    /// The list whose posting address is `address` (case-insensitive,
    /// ignoring a `+detail` in the local part).
    pub fn list_by_address(&self, address: &str) -> Option<&List> {
        let address = address.trim().trim_matches(['<', '>']).to_ascii_lowercase();
        let address = match (address.split_once('+'), address.rsplit_once('@')) {
            (Some((local, _)), Some((_, domain))) if !local.contains('@') => {
                format!("{local}@{domain}")
            }
            _ => address,
        };
        self.lists.iter().find(|list| list.address == address)
    }

    /// The list serving the BCP 47 language `lang` (primary subtag match).
    pub fn list_by_lang(&self, lang: &str) -> Option<&List> {
        let primary = |tag: &str| tag.split('-').next().unwrap_or("").to_ascii_lowercase();
        let wanted = primary(lang);
        self.lists.iter().find(|list| primary(&list.lang) == wanted)
    }

    /// Path of the SQLite database.
    pub fn database_path(&self) -> PathBuf {
        self.site.data_dir.join("tidings.sqlite3")
    }
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub help: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}\n  help: {}",
            self.file, self.line, self.column, self.message, self.help
        )
    }
}

/// Every problem found in a configuration file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Where the configuration comes from: `--config`/`TIDINGS_CONFIG`, else
/// `./lists.toml` when present, else the embedded sample.
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    let local = PathBuf::from("lists.toml");
    local.exists().then_some(local)
}

/// Reads and validates the configuration at `path`, or the embedded one.
pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("cannot read configuration {}: {e}", path.display())
            })?;
            let base = path.parent().unwrap_or(Path::new("."));
            Ok(parse(&text, &path.display().to_string(), base)?)
        }
        None => Ok(parse(EMBEDDED_LISTS_TOML, EMBEDDED_NAME, Path::new("."))?),
    }
}

/// Parses and validates configuration text. Relative directories are taken
/// relative to `base` (the directory of the file).
pub fn parse(text: &str, file: &str, base: &Path) -> Result<Config, ConfigErrors> {
    let mut errors = Errors {
        file,
        text,
        found: Vec::new(),
    };
    let document = match DeTable::parse(text) {
        Ok(document) => document,
        Err(error) => {
            errors.toml(&error, 0..0, "fix the TOML syntax at this point");
            return Err(ConfigErrors(errors.found));
        }
    };

    let mut site = None;
    let mut ingest = None;
    let mut feeds = None;
    let mut listen = None;
    let mut delivery = None;
    let mut dkim = Vec::new();
    let mut lists = Vec::new();
    for (key, value) in document.into_inner() {
        match key.get_ref().as_ref() {
            "site" => site = errors.table::<RawSite>(value, "[site]"),
            "ingest" => ingest = errors.table::<RawIngest>(value, "[ingest]"),
            "feeds" => feeds = errors.table::<RawFeeds>(value, "[feeds]"),
            "listen" => listen = errors.table::<RawListen>(value, "[listen]"),
            "delivery" => delivery = errors.table::<RawDelivery>(value, "[delivery]"),
            "dkim" => match value.into_inner() {
                DeValue::Array(items) => {
                    for item in items {
                        dkim.extend(errors.table::<RawDkim>(item, "[[dkim]]"));
                    }
                }
                _ => errors.at(
                    key.span(),
                    "`dkim` must be an array of tables",
                    "write each key as its own [[dkim]] table with selector and key_file",
                ),
            },
            "list" => match value.into_inner() {
                DeValue::Array(items) => {
                    for item in items {
                        if let Some(list) = errors.table::<RawList>(item, "[[list]]") {
                            lists.push(list);
                        }
                    }
                }
                _ => errors.at(
                    key.span(),
                    "`list` must be an array of tables",
                    "write each list as its own [[list]] table",
                ),
            },
            other => errors.at(
                key.span(),
                &format!("unknown table `{other}`"),
                "the top-level tables are [site], [ingest], [feeds], [listen], [delivery], [[dkim]] and [[list]]",
            ),
        }
    }

    let site = errors.site(site.unwrap_or_default(), base);
    let ingest = errors.ingest(ingest.unwrap_or_default());
    let feeds = errors.feeds(feeds.unwrap_or_default());
    let listen = errors.listen(listen.unwrap_or_default());
    let delivery = site
        .as_ref()
        .map(|site| errors.delivery(delivery.unwrap_or_default(), site, base));
    let dkim = site
        .as_ref()
        .map(|site| errors.dkim(dkim, site, base))
        .unwrap_or_default();
    let lists = errors.lists(lists, &feeds);
    if lists.is_empty() && errors.found.is_empty() {
        errors.at(
            0..0,
            "no [[list]] is configured",
            "add at least one [[list]] table with code, lang, name and address",
        );
    }

    match (site, errors.found.is_empty()) {
        (Some(site), true) => Ok(Config {
            source: file.to_string(),
            site,
            ingest,
            feeds,
            listen,
            delivery: delivery.expect("delivery is read whenever site is"),
            dkim,
            lists,
        }),
        _ => Err(ConfigErrors(errors.found)),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSite {
    name: Option<String>,
    base_url: Option<Spanned<String>>,
    domain: Option<Spanned<String>>,
    data_dir: Option<String>,
    feeds_dir: Option<String>,
    templates_dir: Option<String>,
    timezone: Option<Spanned<String>>,
    operator: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIngest {
    max_message_bytes: Option<Spanned<i64>>,
    detect_confidence: Option<Spanned<f64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFeeds {
    all_entries: Option<Spanned<i64>>,
    list_entries: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawListen {
    lmtp: Option<Spanned<String>>,
    smtp: Option<Spanned<String>>,
    http: Option<Spanned<String>>,
    max_connections: Option<Spanned<i64>>,
    max_connections_per_ip: Option<Spanned<i64>>,
    max_recipients: Option<Spanned<i64>>,
    command_timeout_secs: Option<Spanned<i64>>,
    data_timeout_secs: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawList {
    code: Spanned<String>,
    lang: Spanned<String>,
    name: String,
    title: Option<String>,
    description: Option<String>,
    address: Spanned<String>,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
    digest_schedule: Option<Spanned<String>>,
    feed_entries: Option<Spanned<i64>>,
    #[serde(default)]
    catch_all: bool,
    digest_volume: Option<Spanned<String>>,
    digest_size_threshold: Option<Spanned<i64>>,
    #[serde(default)]
    digest_send_empty: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    transport: Option<Spanned<String>>,
    outbox_dir: Option<String>,
    host: Option<String>,
    port: Option<Spanned<i64>>,
    tls: Option<Spanned<String>>,
    tls_ca_file: Option<String>,
    username: Option<Spanned<String>>,
    password_file: Option<String>,
    connections: Option<Spanned<i64>>,
    timeout_seconds: Option<Spanned<i64>>,
    sendmail_command: Option<String>,
    retry_initial_seconds: Option<Spanned<i64>>,
    retry_max_seconds: Option<Spanned<i64>>,
    give_up_after_hours: Option<Spanned<i64>>,
    helo_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDkim {
    selector: Spanned<String>,
    key_file: Spanned<String>,
    algorithm: Option<Spanned<String>>,
    domain: Option<Spanned<String>>,
}

/// Collects errors while validating one file.
struct Errors<'a> {
    file: &'a str,
    text: &'a str,
    found: Vec<ConfigError>,
}

impl Errors<'_> {
    fn at(&mut self, span: Range<usize>, message: &str, help: &str) {
        let (line, column) = line_column(self.text, span.start);
        self.found.push(ConfigError {
            file: self.file.to_string(),
            line,
            column,
            message: message.to_string(),
            help: help.to_string(),
        });
    }

    /// Records a TOML error; `fallback` locates errors that carry no span.
    fn toml(&mut self, error: &toml::de::Error, fallback: Range<usize>, help: &str) {
        let span = error.span().unwrap_or(fallback);
        let message = error.message().trim().to_string();
        let help = if message.starts_with("unknown field") {
            "remove the key or correct its spelling (see the shipped lists.toml)"
        } else if message.starts_with("missing field") {
            "add the key to this table"
        } else {
            help
        };
        self.at(span, &message, help);
    }

    fn table<T: DeserializeOwned>(&mut self, value: Spanned<DeValue<'_>>, name: &str) -> Option<T> {
        let span = value.span();
        if !matches!(value.get_ref(), DeValue::Table(_)) {
            self.at(
                span,
                &format!("{name} must be a table"),
                "see the shipped lists.toml for its layout",
            );
            return None;
        }
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(table) => Some(table),
            Err(error) => {
                self.toml(&error, span, &format!("correct this value in {name}"));
                None
            }
        }
    }

    fn site(&mut self, raw: RawSite, base: &Path) -> Option<Site> {
        let dir = |value: Option<String>, default: &str| {
            let path = PathBuf::from(value.unwrap_or_else(|| default.to_string()));
            if path.is_absolute() {
                path
            } else {
                base.join(path)
            }
        };
        let base_url = match raw.base_url {
            Some(url) => match url::Url::parse(url.get_ref()) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {
                    let mut parsed = parsed;
                    if !parsed.path().ends_with('/') {
                        let path = format!("{}/", parsed.path());
                        parsed.set_path(&path);
                    }
                    Some(parsed)
                }
                Ok(_) => {
                    self.at(
                        url.span(),
                        &format!("base_url `{}` is not an http(s) URL", url.get_ref()),
                        "write it as https://host/path/",
                    );
                    None
                }
                Err(error) => {
                    self.at(
                        url.span(),
                        &format!("base_url `{}` is not a URL: {error}", url.get_ref()),
                        "write it as https://host/path/",
                    );
                    None
                }
            },
            None => Some(url::Url::parse("http://127.0.0.1:8080/").expect("valid default")),
        };
        let domain = match raw.domain {
            Some(domain) if is_domain(domain.get_ref()) => Some(domain.into_inner()),
            Some(domain) => {
                self.at(
                    domain.span(),
                    &format!("domain `{}` is not a mail domain", domain.get_ref()),
                    "write a host name such as lists.example.org",
                );
                None
            }
            None => Some("lists.example.org".to_string()),
        };
        let timezone = match raw.timezone {
            Some(zone) => match chrono_tz::Tz::from_str(zone.get_ref()) {
                Ok(tz) => Some(tz),
                Err(_) => {
                    self.at(
                        zone.span(),
                        &format!("unknown timezone `{}`", zone.get_ref()),
                        "use an IANA name such as UTC or Europe/Athens",
                    );
                    None
                }
            },
            None => Some(chrono_tz::UTC),
        };
        let operator = match raw.operator {
            Some(address) if lettre::Address::from_str(address.get_ref()).is_ok() => {
                Some(address.into_inner())
            }
            Some(address) => {
                self.at(
                    address.span(),
                    &format!("operator `{}` is not a mail address", address.get_ref()),
                    "write the address of the person running the service, e.g. ops@example.org",
                );
                None
            }
            None => Some("root@localhost".to_string()),
        };
        Some(Site {
            name: raw.name.unwrap_or_else(|| "tidings".to_string()),
            base_url: base_url?,
            domain: domain?,
            data_dir: dir(raw.data_dir, "data"),
            feeds_dir: dir(raw.feeds_dir, "feeds"),
            templates_dir: dir(raw.templates_dir, "templates"),
            timezone: timezone?,
            operator: operator?,
        })
    }

    fn ingest(&mut self, raw: RawIngest) -> Ingest {
        let mut ingest = Ingest {
            max_message_bytes: 10 * 1024 * 1024,
            detect_confidence: 0.5,
        };
        if let Some(limit) = raw.max_message_bytes {
            match usize::try_from(*limit.get_ref()) {
                Ok(bytes) if bytes >= 1024 => ingest.max_message_bytes = bytes,
                _ => self.at(
                    limit.span(),
                    "max_message_bytes must be at least 1024",
                    "give the largest message size in bytes, e.g. 10485760 for 10 MiB",
                ),
            }
        }
        if let Some(confidence) = raw.detect_confidence {
            if (0.0..=1.0).contains(confidence.get_ref()) {
                ingest.detect_confidence = *confidence.get_ref();
            } else {
                self.at(
                    confidence.span(),
                    "detect_confidence must be between 0 and 1",
                    "0.5 files a post when the detector is fairly sure; 1.0 never files by detection",
                );
            }
        }
        ingest
    }

    fn entries(&mut self, value: Option<Spanned<i64>>, default: usize) -> usize {
        match value {
            None => default,
            Some(value) => match usize::try_from(*value.get_ref()) {
                Ok(n) if (1..=10_000).contains(&n) => n,
                _ => {
                    self.at(
                        value.span(),
                        "a number of feed entries must be between 1 and 10000",
                        "A-Infos shows 40 posts on its home page and 100 per language",
                    );
                    default
                }
            },
        }
    }

    fn feeds(&mut self, raw: RawFeeds) -> Feeds {
        Feeds {
            all_entries: self.entries(raw.all_entries, 40),
            list_entries: self.entries(raw.list_entries, 100),
        }
    }

    fn listen(&mut self, raw: RawListen) -> Listen {
        let mut address = |value: Option<Spanned<String>>, default: &str| {
            let fallback = default.parse().expect("valid default address");
            match value {
                None => fallback,
                Some(text) => text.get_ref().parse().unwrap_or_else(|_| {
                    self.at(
                        text.span(),
                        &format!("`{}` is not an address:port", text.get_ref()),
                        "write an IP address and a port, e.g. \"127.0.0.1:8024\" (port 0 picks a free one)",
                    );
                    fallback
                }),
            }
        };
        let lmtp = address(raw.lmtp, "127.0.0.1:8024");
        let smtp = address(raw.smtp, "127.0.0.1:8025");
        let http = address(raw.http, "127.0.0.1:8080");
        Listen {
            lmtp,
            smtp,
            http,
            max_connections: self.positive(raw.max_connections, 64, "max_connections"),
            max_connections_per_ip: self.positive(
                raw.max_connections_per_ip,
                8,
                "max_connections_per_ip",
            ),
            max_recipients: self.positive(raw.max_recipients, 50, "max_recipients"),
            command_timeout_secs: self.positive(
                raw.command_timeout_secs,
                300,
                "command_timeout_secs",
            ) as u64,
            data_timeout_secs: self.positive(raw.data_timeout_secs, 600, "data_timeout_secs")
                as u64,
        }
    }

    fn positive(&mut self, value: Option<Spanned<i64>>, default: usize, name: &str) -> usize {
        match value {
            None => default,
            Some(value) => match usize::try_from(*value.get_ref()) {
                Ok(n) if n > 0 => n,
                _ => {
                    self.at(
                        value.span(),
                        &format!("{name} must be a positive whole number"),
                        &format!("the default is {default}"),
                    );
                    default
                }
            },
        }
    }

    fn lists(&mut self, raw: Vec<RawList>, feeds: &Feeds) -> Vec<List> {
        let mut tags: HashMap<String, usize> = HashMap::new();
        let mut addresses: HashMap<String, usize> = HashMap::new();
        let mut lists = Vec::new();
        for raw in raw {
            let code = raw.code.get_ref().to_ascii_lowercase();
            if !is_code(&code) {
                self.at(
                    raw.code.span(),
                    &format!("list code `{}` is not a valid tag", raw.code.get_ref()),
                    "use 2 to 12 letters, digits or '-', as contributors type it in \"(xx)\"",
                );
            }
            self.unique_tag(&mut tags, &code, raw.code.span());
            let mut aliases = Vec::new();
            for alias in &raw.aliases {
                let tag = alias.get_ref().to_ascii_lowercase();
                if !is_code(&tag) {
                    self.at(
                        alias.span(),
                        &format!("alias `{}` is not a valid tag", alias.get_ref()),
                        "use 2 to 12 letters, digits or '-'",
                    );
                }
                self.unique_tag(&mut tags, &tag, alias.span());
                aliases.push(tag);
            }
            if !is_language_tag(raw.lang.get_ref()) {
                self.at(
                    raw.lang.span(),
                    &format!("lang `{}` is not a BCP 47 language tag", raw.lang.get_ref()),
                    "write a tag such as en, el, zh or pt-BR (or mul for several languages)",
                );
            }
            let address = raw.address.get_ref().to_ascii_lowercase();
            if lettre::Address::from_str(&address).is_err() {
                self.at(
                    raw.address.span(),
                    &format!("address `{}` is not a mail address", raw.address.get_ref()),
                    "write the list's posting address, e.g. a-infos-en@lists.example.org",
                );
            }
            let line = self.line_of(raw.address.span());
            if let Some(first) = addresses.insert(address.clone(), line) {
                self.at(
                    raw.address.span(),
                    &format!("duplicate list address `{address}` (first at line {first})"),
                    "give each [[list]] its own posting address",
                );
            }
            let (digest_schedule, schedule) = match raw.digest_schedule {
                Some(expression) => match parse_schedule(expression.get_ref()) {
                    Ok(schedule) => (expression.into_inner(), Some(schedule)),
                    Err(error) => {
                        self.at(
                            expression.span(),
                            &format!(
                                "digest_schedule `{}` is not a cron expression: {error}",
                                expression.get_ref()
                            ),
                            "write 5 fields (minute hour day month weekday), e.g. \"0 18 * * *\" for 18:00 daily",
                        );
                        (expression.into_inner(), None)
                    }
                },
                None => (
                    DEFAULT_SCHEDULE.to_string(),
                    Some(parse_schedule(DEFAULT_SCHEDULE).expect("valid default")),
                ),
            };
            let feed_entries = self.entries(raw.feed_entries, feeds.list_entries);
            let digest_volume = self.volume_period(raw.digest_volume);
            let digest_size_threshold = match raw.digest_size_threshold {
                None => DEFAULT_DIGEST_SIZE_THRESHOLD,
                Some(value) => match usize::try_from(*value.get_ref()) {
                    Ok(bytes) => bytes,
                    Err(_) => {
                        self.at(
                            value.span(),
                            "digest_size_threshold cannot be negative",
                            "give the bytes of pending post text that send a digest early, e.g. 30720, or 0 for never",
                        );
                        DEFAULT_DIGEST_SIZE_THRESHOLD
                    }
                },
            };
            let name = raw.name;
            if let Some(schedule) = schedule {
                lists.push(List {
                    title: raw.title.unwrap_or_else(|| name.clone()),
                    description: raw.description.unwrap_or_else(|| name.clone()),
                    code,
                    lang: raw.lang.into_inner(),
                    name,
                    address,
                    aliases,
                    digest_schedule,
                    schedule,
                    feed_entries,
                    catch_all: raw.catch_all,
                    digest_volume,
                    digest_size_threshold,
                    digest_send_empty: raw.digest_send_empty,
                });
            }
        }
        lists
    }

    fn volume_period(&mut self, value: Option<Spanned<String>>) -> VolumePeriod {
        let Some(value) = value else {
            return VolumePeriod::Yearly;
        };
        match value.get_ref().as_str() {
            "yearly" => VolumePeriod::Yearly,
            "quarterly" => VolumePeriod::Quarterly,
            "monthly" => VolumePeriod::Monthly,
            "weekly" => VolumePeriod::Weekly,
            "daily" => VolumePeriod::Daily,
            other => {
                self.at(
                    value.span(),
                    &format!("digest_volume `{other}` is not a period"),
                    "write one of yearly, quarterly, monthly, weekly (ISO weeks) or daily",
                );
                VolumePeriod::Yearly
            }
        }
    }

    /// A whole number in `range`, or `default` when absent; `what` and
    /// `help` explain a value out of range.
    fn bounded(
        &mut self,
        value: Option<Spanned<i64>>,
        range: std::ops::RangeInclusive<i64>,
        default: i64,
        what: &str,
        help: &str,
    ) -> i64 {
        match value {
            None => default,
            Some(value) if range.contains(value.get_ref()) => *value.get_ref(),
            Some(value) => {
                self.at(
                    value.span(),
                    &format!(
                        "{what} must be between {} and {}",
                        range.start(),
                        range.end()
                    ),
                    help,
                );
                default
            }
        }
    }

    fn delivery(&mut self, raw: RawDelivery, site: &Site, base: &Path) -> Delivery {
        let path = |value: String| {
            let path = PathBuf::from(value);
            if path.is_absolute() {
                path
            } else {
                base.join(path)
            }
        };
        let transport = match raw.transport {
            None => Transport::File,
            Some(value) => match value.get_ref().as_str() {
                "file" => Transport::File,
                "smtp" => Transport::Smtp,
                "sendmail" => Transport::Sendmail,
                other => {
                    self.at(
                        value.span(),
                        &format!("transport `{other}` is not known"),
                        "write file (messages written to outbox_dir), smtp (a relay) or sendmail",
                    );
                    Transport::File
                }
            },
        };
        let tls = match raw.tls {
            None => Tls::Opportunistic,
            Some(value) => match value.get_ref().as_str() {
                "none" => Tls::None,
                "opportunistic" => Tls::Opportunistic,
                "starttls" => Tls::Starttls,
                "implicit" => Tls::Implicit,
                other => {
                    self.at(
                        value.span(),
                        &format!("tls `{other}` is not known"),
                        "write none, opportunistic (STARTTLS when offered), starttls (required) or implicit (port 465)",
                    );
                    Tls::Opportunistic
                }
            },
        };
        if let Some(username) = &raw.username {
            if tls == Tls::None {
                self.at(
                    username.span(),
                    "username is set but tls is none: the password would cross in the clear",
                    "set tls = \"starttls\" (or \"implicit\" for port 465), or remove username",
                );
            } else if raw.password_file.is_none() {
                self.at(
                    username.span(),
                    "username is set but password_file is not",
                    "add password_file = \"relay-password\", a file holding the relay password",
                );
            }
        }
        let default_port = if tls == Tls::Implicit { 465 } else { 25 };
        let port = self.bounded(
            raw.port,
            1..=65535,
            default_port,
            "port",
            "give the relay's TCP port, e.g. 25, 587 or 465",
        ) as u16;
        let connections = self.bounded(
            raw.connections,
            1..=256,
            4,
            "connections",
            "a handful of connections (4 to 16) keeps a relay busy without flooding it",
        ) as usize;
        let timeout_seconds = self.bounded(
            raw.timeout_seconds,
            1..=3600,
            60,
            "timeout_seconds",
            "give the seconds to wait for the relay, e.g. 60",
        ) as u64;
        let retry_initial_seconds = self.bounded(
            raw.retry_initial_seconds,
            1..=86_400,
            300,
            "retry_initial_seconds",
            "give the seconds before the first retry, e.g. 300",
        );
        let retry_max_seconds = self.bounded(
            raw.retry_max_seconds,
            1..=604_800,
            14_400,
            "retry_max_seconds",
            "give the longest wait between retries in seconds, e.g. 14400 for 4 hours",
        );
        let give_up_after_hours = self.bounded(
            raw.give_up_after_hours,
            0..=2_400,
            120,
            "give_up_after_hours",
            "give the hours after which an undelivered digest is given up, e.g. 120 for 5 days",
        );
        Delivery {
            transport,
            outbox_dir: raw
                .outbox_dir
                .map(path)
                .unwrap_or_else(|| site.data_dir.join("outbox")),
            host: raw.host.unwrap_or_else(|| "127.0.0.1".to_string()),
            port,
            tls,
            tls_ca_file: raw.tls_ca_file.map(path),
            username: raw.username.map(Spanned::into_inner),
            password_file: raw.password_file.map(path),
            connections,
            timeout_seconds,
            sendmail_command: PathBuf::from(
                raw.sendmail_command
                    .unwrap_or_else(|| "/usr/sbin/sendmail".to_string()),
            ),
            retry_initial_seconds,
            retry_max_seconds: retry_max_seconds.max(retry_initial_seconds),
            give_up_after_hours,
            helo_name: raw.helo_name.unwrap_or_else(|| site.domain.clone()),
        }
    }

    fn dkim(&mut self, raw: Vec<RawDkim>, site: &Site, base: &Path) -> Vec<DkimKey> {
        let mut keys = Vec::new();
        for raw in raw {
            let algorithm = match &raw.algorithm {
                None => DkimAlgorithm::Ed25519Sha256,
                Some(value) => match value.get_ref().as_str() {
                    "ed25519-sha256" | "ed25519" => DkimAlgorithm::Ed25519Sha256,
                    "rsa-sha256" | "rsa" => DkimAlgorithm::RsaSha256,
                    other => {
                        self.at(
                            value.span(),
                            &format!("DKIM algorithm `{other}` is not supported"),
                            "write ed25519-sha256 or rsa-sha256",
                        );
                        continue;
                    }
                },
            };
            let domain = match raw.domain {
                Some(domain) if is_domain(domain.get_ref()) => domain.into_inner(),
                Some(domain) => {
                    self.at(
                        domain.span(),
                        &format!("DKIM domain `{}` is not a domain", domain.get_ref()),
                        "write the signing domain, e.g. lists.example.org",
                    );
                    continue;
                }
                None => site.domain.clone(),
            };
            let selector = raw.selector.get_ref();
            if selector.is_empty()
                || !selector.split('.').all(|label| {
                    !label.is_empty()
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
            {
                self.at(
                    raw.selector.span(),
                    &format!("DKIM selector `{selector}` is not a DNS label"),
                    "use letters, digits and '-', e.g. \"tidings2026\"",
                );
                continue;
            }
            let key_file = {
                let path = PathBuf::from(raw.key_file.get_ref());
                if path.is_absolute() {
                    path
                } else {
                    base.join(path)
                }
            };
            if !key_file.is_file() {
                self.at(
                    raw.key_file.span(),
                    &format!("DKIM key file {} does not exist", key_file.display()),
                    "give the path of a PEM private key, relative to this file; `openssl genpkey -algorithm ed25519` makes one",
                );
                continue;
            }
            keys.push(DkimKey {
                domain,
                selector: raw.selector.into_inner(),
                algorithm,
                key_file,
            });
        }
        keys
    }

    fn unique_tag(&mut self, tags: &mut HashMap<String, usize>, tag: &str, span: Range<usize>) {
        let line = self.line_of(span.clone());
        if let Some(first) = tags.insert(tag.to_string(), line) {
            self.at(
                span,
                &format!("tag `{tag}` is already used by another list (line {first})"),
                "each code and alias must name exactly one list",
            );
        }
    }

    fn line_of(&self, span: Range<usize>) -> usize {
        line_column(self.text, span.start).0
    }
}

/// Pending post text that sends a digest early unless a list says otherwise
/// (Mailman's 30 KB).
const DEFAULT_DIGEST_SIZE_THRESHOLD: usize = 30 * 1024;

/// Digests go out at 18:00 every day unless a list says otherwise.
const DEFAULT_SCHEDULE: &str = "0 18 * * *";

/// Parses a cron expression of 5 fields (minute first, as in crontab), or
/// of 6 or 7 (seconds first, year last) as the `cron` crate reads them.
pub fn parse_schedule(expression: &str) -> Result<cron::Schedule, String> {
    let fields = expression.split_whitespace().count();
    let full = match fields {
        5 => format!("0 {expression}"),
        6 | 7 => expression.to_string(),
        _ => return Err(format!("it has {fields} fields, not 5")),
    };
    cron::Schedule::from_str(&full).map_err(|e| e.to_string())
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

fn is_code(tag: &str) -> bool {
    (2..=12).contains(&tag.len()) && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or("");
    (2..=3).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

fn is_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<ConfigError> {
        parse(text, "lists.toml", Path::new("."))
            .expect_err("configuration should be refused")
            .0
    }

    #[test]
    fn shipped_configuration_is_valid() {
        let config = parse(EMBEDDED_LISTS_TOML, EMBEDDED_NAME, Path::new(".")).unwrap();
        assert!(config.lists.len() >= 16);
        assert_eq!(config.list_by_tag("gr").unwrap().lang, "el");
        assert_eq!(config.list_by_tag("EL").unwrap().code, "gr");
        assert_eq!(config.list_by_tag("ca").unwrap().lang, "es");
        assert_eq!(config.list_by_tag("ct").unwrap().lang, "ca");
        assert!(config.lists.iter().any(|l| l.catch_all));
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let text = "[site]\nname = \"x\"\nbogus = 1\n\n[[list]]\ncode = \"en\"\nlang = \"en\"\nname = \"English\"\naddress = \"en@x.org\"\n";
        let found = errors(text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].line, found[0].column), (3, 1));
        assert!(found[0].message.contains("bogus"), "{}", found[0].message);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
[site]
base_url = "not a url"
timezone = "Mars/Olympus"

[[list]]
code = "en"
lang = "en"
name = "English"
address = "en@x.org"
digest_schedule = "every day"

[[list]]
code = "EN"
lang = "english language"
name = "Again"
address = "en@x.org"
"#;
        let found = errors(text);
        let lines: Vec<usize> = found.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 11, 14, 15, 17], "{found:#?}");
        assert!(found.iter().all(|e| !e.help.is_empty()));
    }

    #[test]
    fn delivery_and_dkim_errors_are_located() {
        let text = "[delivery]\ntransport = \"pigeon\"\nconnections = 0\n\n[[dkim]]\nselector = \"s1\"\nkey_file = \"/nonexistent/key.pem\"\n\n[[list]]\ncode = \"en\"\nlang = \"en\"\nname = \"English\"\naddress = \"en@x.org\"\ndigest_volume = \"fortnightly\"\n";
        let found = errors(text);
        let lines: Vec<usize> = found.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 7, 14], "{found:#?}");
        assert!(found[0].message.contains("pigeon"));
        assert!(found[2].help.contains("openssl genpkey"));
    }

    #[test]
    fn a_relay_password_never_goes_without_tls_or_a_file() {
        let list = "\n[[list]]\ncode = \"en\"\nlang = \"en\"\nname = \"English\"\naddress = \"en@x.org\"\n";
        let clear = format!(
            "[delivery]\ntls = \"none\"\nusername = \"tidings\"\npassword_file = \"pw\"\n{list}"
        );
        let found = errors(&clear);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!((found[0].line, found[0].column), (3, 12));
        assert!(found[0].message.contains("in the clear"));
        assert!(found[0].help.contains("starttls"));
        let no_file = format!("[delivery]\ntls = \"starttls\"\nusername = \"tidings\"\n{list}");
        let found = errors(&no_file);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].message.contains("password_file"));
    }

    #[test]
    fn delivery_defaults_to_the_file_transport_under_data_dir() {
        let config = parse(EMBEDDED_LISTS_TOML, EMBEDDED_NAME, Path::new(".")).unwrap();
        assert_eq!(config.delivery.transport, Transport::File);
        assert_eq!(config.delivery.outbox_dir, Path::new("./data/outbox"));
        assert!(config.dkim.is_empty());
        let list = config.list("en").unwrap();
        assert_eq!(list.digest_volume, VolumePeriod::Yearly);
        assert_eq!(list.digest_size_threshold, 30 * 1024);
        assert!(!list.digest_send_empty);
    }

    #[test]
    fn five_field_cron_is_accepted() {
        assert!(parse_schedule("0 18 * * *").is_ok());
        assert!(parse_schedule("0 0 18 * * *").is_ok());
        assert!(parse_schedule("18 * *").is_err());
    }

    #[test]
    fn address_lookup_ignores_case_and_detail() {
        let config = parse(EMBEDDED_LISTS_TOML, EMBEDDED_NAME, Path::new(".")).unwrap();
        let domain = &config.site.domain;
        let list = config
            .list_by_address(&format!("<A-Infos-FR+x@{}>", domain.to_uppercase()))
            .unwrap();
        assert_eq!(list.code, "fr");
    }
}
