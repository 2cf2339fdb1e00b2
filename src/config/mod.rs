//! lists.toml -> a validated [`Config`].
//!
//! Loading happens in two steps: the TOML is parsed into a spanned document,
//! each table is deserialised on its own into a `Raw*` struct (so one bad
//! table does not hide the errors of the next), then every value is checked.
//! Each problem becomes a [`ConfigError`] naming the file, line and column and
//! how to fix it; [`load`] returns all of them at once.
//!
//! Each table has its file, with its type, its documented defaults (one
//! `Default` per table) and its checks: [`site`], [`ingest`], [`feeds`],
//! [`listen`], [`delivery`], [`dkim`] and [`list`]; [`errors`] locates and
//! collects the problems; [`keys`] lists the keys each table takes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

pub mod bounces;
pub mod delivery;
pub mod dkim;
pub mod errors;
pub mod feeds;
pub mod ingest;
pub mod keys;
pub mod list;
pub mod listen;
pub mod site;

pub use delivery::{Delivery, Tls, Transport};
pub use dkim::{DkimAlgorithm, DkimKey};
pub use errors::{ConfigError, ConfigErrors};
pub use feeds::Feeds;
pub use ingest::Ingest;
pub use list::{
    parse_schedule, List, VolumePeriod, DEFAULT_DIGEST_SIZE_THRESHOLD, DEFAULT_SCHEDULE,
};
pub use listen::Listen;
pub use site::{Posting, Site};

use errors::Errors;

/// The sample configuration shipped with tidings, used when no file is given
/// and none is found in the working directory.
pub const EMBEDDED_LISTS_TOML: &str = include_str!("../../lists.toml");

/// Name under which the embedded configuration is reported in errors.
pub const EMBEDDED_NAME: &str = "<embedded lists.toml>";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from (or [`EMBEDDED_NAME`]).
    pub source: String,
    /// `[site]`.
    pub site: Site,
    /// `[ingest]`.
    pub ingest: Ingest,
    /// `[feeds]`.
    pub feeds: Feeds,
    /// `[listen]`.
    pub listen: Listen,
    /// `[delivery]`.
    pub delivery: Delivery,
    /// DKIM keys every outgoing message is signed with (default none).
    pub dkim: Vec<DkimKey>,
    /// The lists, in the file's order. Read-only once loaded: the lookups
    /// below go through an index built with them.
    pub lists: Vec<List>,
    /// What works but is likely not meant (`tidings check` prints them,
    /// `serve` logs them).
    pub warnings: Vec<ConfigError>,
    index: Index,
}

/// Where each list is in [`Config::lists`], by what mail and posts name
/// it; lookups answer in constant time however many lists there are.
#[derive(Debug, Clone, Default)]
struct Index {
    /// Codes and aliases (unique across lists, lowercase).
    tags: HashMap<String, usize>,
    /// Posting addresses (lowercase).
    addresses: HashMap<String, usize>,
    /// Primary language subtags (lowercase), to the first list with it.
    languages: HashMap<String, usize>,
}

impl Index {
    fn new(lists: &[List]) -> Index {
        let mut index = Index::default();
        for (position, list) in lists.iter().enumerate() {
            for tag in std::iter::once(&list.code).chain(&list.aliases) {
                index.tags.entry(tag.clone()).or_insert(position);
            }
            index
                .addresses
                .entry(list.address.clone())
                .or_insert(position);
            index
                .languages
                .entry(primary_subtag(&list.lang))
                .or_insert(position);
        }
        index
    }
}

fn primary_subtag(lang: &str) -> String {
    lang.split('-').next().unwrap_or("").to_ascii_lowercase()
}

impl Config {
    /// The list with this code, if any.
    pub fn list(&self, code: &str) -> Option<&List> {
        self.at(self.index.tags.get(code))
            .filter(|list| list.code == code)
    }

    /// The list whose code or alias is `tag` (case-insensitive).
    pub fn list_by_tag(&self, tag: &str) -> Option<&List> {
        self.at(self.index.tags.get(&tag.to_ascii_lowercase()))
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
        self.at(self.index.addresses.get(&address))
    }

    /// The list serving the BCP 47 language `lang` (primary subtag match).
    pub fn list_by_lang(&self, lang: &str) -> Option<&List> {
        self.at(self.index.languages.get(&primary_subtag(lang)))
    }

    fn at(&self, position: Option<&usize>) -> Option<&List> {
        self.lists.get(*position?)
    }

    /// Path of the SQLite database.
    pub fn database_path(&self) -> PathBuf {
        self.site.data_dir.join("tidings.sqlite3")
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

/// The shipped configuration as tidings reads it, for tests.
#[cfg(test)]
pub fn shipped() -> Config {
    parse(EMBEDDED_LISTS_TOML, EMBEDDED_NAME, Path::new("."))
        .expect("the shipped lists.toml is valid")
}

/// Reads and validates the configuration at `path`, or the embedded one.
/// A file that is not UTF-8 is refused at its first bad byte.
pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("cannot read configuration {}: {e}", path.display())
            })?;
            let file = path.display().to_string();
            let text = errors::decode(&bytes, &file)?;
            let base = path.parent().unwrap_or(Path::new("."));
            Ok(parse(text, &file, base)?)
        }
        None => Ok(parse(EMBEDDED_LISTS_TOML, EMBEDDED_NAME, Path::new("."))?),
    }
}

/// Parses and validates configuration text. Relative directories are taken
/// relative to `base` (the directory of the file).
pub fn parse(text: &str, file: &str, base: &Path) -> Result<Config, ConfigErrors> {
    let mut errors = Errors::new(file, text);
    let document = match DeTable::parse(text) {
        Ok(document) => document,
        Err(error) => {
            errors.toml(&error, 0..0, "fix the TOML syntax at this point");
            return Err(errors.into_errors());
        }
    };

    let mut raw_site = None;
    let mut raw_ingest = None;
    let mut raw_feeds = None;
    let mut raw_listen = None;
    let mut raw_delivery = None;
    let mut raw_dkim = Vec::new();
    let mut raw_lists = Vec::new();
    for (key, value) in document.into_inner() {
        match key.get_ref().as_ref() {
            "site" => raw_site = errors.table::<site::RawSite>(value, "[site]"),
            "ingest" => raw_ingest = errors.table::<ingest::RawIngest>(value, "[ingest]"),
            "feeds" => raw_feeds = errors.table::<feeds::RawFeeds>(value, "[feeds]"),
            "listen" => raw_listen = errors.table::<listen::RawListen>(value, "[listen]"),
            "delivery" => {
                raw_delivery = errors.table::<delivery::RawDelivery>(value, "[delivery]")
            }
            "dkim" => match value.into_inner() {
                DeValue::Array(items) => {
                    for item in items {
                        raw_dkim.extend(errors.table::<dkim::RawDkim>(item, "[[dkim]]"));
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
                        raw_lists.extend(errors.table::<list::RawList>(item, "[[list]]"));
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

    let raw_site = raw_site.unwrap_or_default();
    let domain = raw_site.domain().ok();
    let site = raw_site.check(&mut errors, base);
    let ingest = raw_ingest.unwrap_or_default().check(&mut errors);
    let feeds = raw_feeds.unwrap_or_default().check(&mut errors);
    let listen = raw_listen.unwrap_or_default().check(&mut errors, base);
    let delivery = raw_delivery
        .unwrap_or_default()
        .check(&mut errors, &site, base);
    let dkim = raw_dkim
        .into_iter()
        .filter_map(|raw| raw.check(&mut errors, &site, base))
        .collect();
    let lists = list::check(raw_lists, &mut errors, &feeds, domain.as_deref(), &site);
    if lists.is_empty() && errors.is_empty() {
        errors.at(
            0..0,
            "no [[list]] is configured",
            "add at least one [[list]] table with code, lang, name and address",
        );
    }
    if !errors.is_empty() {
        return Err(errors.into_errors());
    }
    Ok(Config {
        source: file.to_string(),
        site,
        ingest,
        feeds,
        listen,
        delivery,
        dkim,
        warnings: errors.take_warnings(),
        index: Index::new(&lists),
        lists,
    })
}

/// `path` taken relative to `base` (the directory of the file) unless it
/// is absolute.
fn relative_to(base: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

/// Whether `domain` is a DNS host name (letters, digits, '-', dots).
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
        let text = "[site]\nname = \"x\"\nbogus = 1\n\n[[list]]\ncode = \"en\"\nlang = \"en\"\nname = \"English\"\naddress = \"en@lists.example.org\"\n";
        let found = errors(text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].line, found[0].column), (3, 1));
        assert!(found[0].message.contains("bogus"), "{}", found[0].message);
    }

    #[test]
    fn a_bad_combined_schedule_is_named_at_its_line_and_a_good_one_kept() {
        let list = "\n[[list]]\ncode = \"en\"\nlang = \"en\"\nname = \"English\"\naddress = \"en@lists.example.org\"\n";
        let text = format!(
            "[site]\nname = \"x\"\ncombined_schedules = {{ daily = \"0 7 * * *\", Weekly = \"0 7 * * 1\", monthly = \"at noon\" }}\n{list}"
        );
        let found = errors(&text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|e| e.line == 3), "{found:?}");
        assert!(
            found[0].message.contains("`Weekly`"),
            "{}",
            found[0].message
        );
        assert!(
            found[1].message.contains("`monthly`"),
            "{}",
            found[1].message
        );
        let config = parse(
            &format!("[site]\ncombined_schedules = {{ early = \"0 6 * * *\" }}\n{list}"),
            "lists.toml",
            Path::new("."),
        )
        .unwrap();
        let names: Vec<&String> = config.site.combined_schedules.keys().collect();
        assert_eq!(names, ["early"]);
        assert_eq!(shipped().site.combined_schedules.len(), 2);
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
address = "en@lists.example.org"
digest_schedule = "every day"

[[list]]
code = "EN"
lang = "english language"
name = "Again"
address = "en@lists.example.org"
"#;
        let found = errors(text);
        let lines: Vec<usize> = found.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 11, 14, 15, 17], "{found:#?}");
        assert!(found.iter().all(|e| !e.help.is_empty()));
    }

    #[test]
    fn delivery_and_dkim_errors_are_located() {
        let text = "[delivery]\ntransport = \"pigeon\"\nconnections = 0\n\n[[dkim]]\nselector = \"s1\"\nkey_file = \"/nonexistent/key.pem\"\n\n[[list]]\ncode = \"en\"\nlang = \"en\"\nname = \"English\"\naddress = \"en@lists.example.org\"\ndigest_volume = \"fortnightly\"\n";
        let found = errors(text);
        let lines: Vec<usize> = found.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 7, 14], "{found:#?}");
        assert!(found[0].message.contains("pigeon"));
        assert!(found[2].help.contains("openssl genpkey"));
    }

    #[test]
    fn verify_is_the_site_s_unless_a_list_says_and_its_dns_servers_are_checked() {
        let list = |code: &str, verify: &str| {
            format!("\n[[list]]\ncode = \"{code}\"\nlang = \"{code}\"\nname = \"{code}\"\naddress = \"{code}@lists.example.org\"\n{verify}")
        };
        let text = format!(
            "[site]\nverify = true\n\n[ingest]\ndns_servers = [\"127.0.0.1:5353\", \"::1\"]\ndns_timeout_seconds = 2\n{}{}",
            list("en", ""),
            list("fr", "verify = false\n")
        );
        let config = parse(&text, "lists.toml", Path::new(".")).unwrap();
        assert!(config.site.verify);
        assert!(config.list("en").unwrap().verify);
        assert!(!config.list("fr").unwrap().verify);
        let servers: Vec<String> = config
            .ingest
            .dns_servers
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(servers, ["127.0.0.1:5353", "[::1]:53"]);
        assert_eq!(config.ingest.dns_timeout, std::time::Duration::from_secs(2));

        let wrong = format!(
            "[ingest]\ndns_servers = [\"ns.example.org\"]\ndns_timeout_seconds = 0\n{}",
            list("en", "verify = \"yes\"\n")
        );
        let found = errors(&wrong);
        let lines: Vec<usize> = found.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 10], "{found:#?}");
        assert!(found[0].message.contains("ns.example.org"), "{found:#?}");
        assert!(found[0].help.contains("127.0.0.1:5353"), "{found:#?}");
    }

    #[test]
    fn newsgroup_settings_are_checked_where_written() {
        let list = "\n[[list]]\ncode = \"en\"\nlang = \"en\"\nname = \"English\"\naddress = \"en@lists.example.org\"\n";
        let found = errors(&format!("[site]\nnewsgroups_prefix = \"A Infos\"\n{list}"));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].line, 2);
        assert!(found[0].help.contains("a-infos"));
        let found = errors(&format!(
            "[listen]\nnntp = \"127.0.0.1:0\"\nnntp_tls_key = \"key.pem\"\n{list}"
        ));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].line, 3);
        assert!(found[0].help.contains("both"));
        let found = errors(&format!("[listen]\nnntp = \"nowhere\"\n{list}"));
        assert_eq!(found[0].line, 2, "{found:#?}");
        let config = parse(EMBEDDED_LISTS_TOML, "lists.toml", Path::new(".")).unwrap();
        assert_eq!(config.site.newsgroups_prefix, "a-infos");
        assert_eq!(config.listen.nntp, None);
    }

    #[test]
    fn a_relay_password_never_goes_without_tls_or_a_file() {
        let list = "\n[[list]]\ncode = \"en\"\nlang = \"en\"\nname = \"English\"\naddress = \"en@lists.example.org\"\n";
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
        assert_eq!(list.digest_html_budget, 92160);
        assert!(!list.digest_send_empty);
    }

    #[test]
    fn an_html_budget_too_small_for_a_footer_is_named_with_its_line_and_fix() {
        let list = "\n[[list]]\ncode = \"en\"\nlang = \"en\"\nname = \"English\"\naddress = \"en@lists.example.org\"\n";
        let found = errors(&format!("{list}digest_html_budget = 1000\n"));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].line, 7, "{found:#?}");
        assert!(
            found[0].message.contains("digest_html_budget"),
            "{found:#?}"
        );
        assert!(found[0].help.contains("92160"), "{found:#?}");
        let config = parse(
            &format!("{list}digest_html_budget = 65536\n"),
            "lists.toml",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(config.list("en").unwrap().digest_html_budget, 65536);
    }

    #[test]
    fn a_schedule_is_five_fields() {
        assert!(parse_schedule("0 18 * * *").is_ok());
        assert!(parse_schedule("0 0 18 * * *").is_err());
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

    /// A minimal file: one list, everything else left to its default.
    const ONE_LIST: &str = "[[list]]\ncode = \"en\"\nlang = \"en\"\nname = \"English\"\naddress = \"en@lists.example.org\"\n";

    #[test]
    fn the_shipped_file_states_the_defaults() {
        let shipped = parse(EMBEDDED_LISTS_TOML, EMBEDDED_NAME, Path::new(".")).unwrap();
        let minimal = parse(ONE_LIST, "lists.toml", Path::new(".")).unwrap();
        assert_eq!(shipped.listen, Listen::default());
        assert_eq!(minimal.listen, Listen::default());
        for config in [&shipped, &minimal] {
            let (ingest, feeds) = (Ingest::default(), Feeds::default());
            assert_eq!(config.ingest.max_message_bytes, ingest.max_message_bytes);
            assert_eq!(config.ingest.detect_confidence, ingest.detect_confidence);
            assert_eq!(config.ingest.dns_servers, ingest.dns_servers);
            assert_eq!(config.ingest.dns_timeout, ingest.dns_timeout);
            assert_eq!(config.site.verify, Site::default().verify);
            assert!(config.lists.iter().all(|list| !list.verify));
            assert_eq!(config.feeds.all_entries, feeds.all_entries);
            assert_eq!(config.feeds.list_entries, feeds.list_entries);
            let (delivery, default) = (&config.delivery, Delivery::for_site(&config.site));
            assert_eq!(delivery.transport, default.transport);
            assert_eq!(delivery.outbox_dir, default.outbox_dir);
            assert_eq!(delivery.host, default.host);
            assert_eq!(delivery.port, default.port);
            assert_eq!(delivery.tls, default.tls);
            assert_eq!(delivery.connections, default.connections);
            assert_eq!(delivery.timeout_seconds, default.timeout_seconds);
            assert_eq!(delivery.sendmail_command, default.sendmail_command);
            assert_eq!(
                delivery.retry_initial_seconds,
                default.retry_initial_seconds
            );
            assert_eq!(delivery.retry_max_seconds, default.retry_max_seconds);
            assert_eq!(delivery.give_up_after_hours, default.give_up_after_hours);
            assert_eq!(delivery.helo_name, config.site.domain);
        }
        let site = Site::default();
        assert_eq!(minimal.site.domain, site.domain);
        assert_eq!(minimal.site.operator, shipped.site.operator);
        assert_eq!(minimal.site.base_url, shipped.site.base_url);
        assert_eq!(minimal.site.data_dir, Path::new(".").join(site.data_dir));
        assert_eq!(minimal.site.timezone, site.timezone);
        assert_eq!(
            minimal.list("en").unwrap().digest_schedule,
            DEFAULT_SCHEDULE
        );
    }

    #[test]
    fn listen_defaults_are_the_listeners_limits() {
        let listen = Listen::default();
        assert_eq!(listen.lmtp.to_string(), "127.0.0.1:8024");
        assert_eq!(listen.smtp.to_string(), "127.0.0.1:8025");
        assert_eq!(listen.http.to_string(), "127.0.0.1:8080");
        assert_eq!(listen.max_connections, 64);
        assert_eq!(listen.max_connections_per_ip, 8);
        assert_eq!(listen.max_recipients, 50);
        assert_eq!(
            listen.command_timeout(),
            std::time::Duration::from_secs(300)
        );
        assert_eq!(listen.data_timeout(), std::time::Duration::from_secs(600));
        assert_eq!(listen.http_max_connections, 1024);
        assert_eq!(
            listen.http_header_timeout(),
            std::time::Duration::from_secs(30)
        );
        assert_eq!(
            listen.http_idle_timeout(),
            std::time::Duration::from_secs(15)
        );
        let shipped = shipped();
        assert_eq!(shipped.listen, listen, "lists.toml states the defaults");
    }

    #[test]
    fn http_limits_are_read_and_their_errors_located() {
        let text = format!("[listen]\nhttp_max_connections = 50\nhttp_header_timeout_secs = 3\nhttp_idle_timeout_secs = 2\n{ONE_LIST}");
        let listen = parse(&text, "lists.toml", Path::new(".")).unwrap().listen;
        assert_eq!(
            (
                listen.http_max_connections,
                listen.http_header_timeout_secs,
                listen.http_idle_timeout_secs
            ),
            (50, 3, 2)
        );
        let text = format!("[listen]\nhttp_max_connections = 0\nhttp_header_timeout_secs = -1\nhttp_idle_timeout_secs = 2\n{ONE_LIST}");
        let found = errors(&text);
        let places: Vec<(usize, usize)> = found.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(places, vec![(2, 24), (3, 28)], "{found:#?}");
        assert!(found[0].message.contains("http_max_connections"));
        assert!(found[0].help.contains("1024"), "{}", found[0].help);
        assert!(found[1].message.contains("http_header_timeout_secs"));
    }

    #[test]
    fn serde_reads_every_spelling_of_the_enums() {
        let with = |table: &str, lines: &str| {
            let text = format!("[{table}]\n{lines}\n{ONE_LIST}");
            parse(&text, "lists.toml", Path::new("."))
        };
        for (spelling, transport) in [
            ("file", Transport::File),
            ("smtp", Transport::Smtp),
            ("sendmail", Transport::Sendmail),
        ] {
            let config = with("delivery", &format!("transport = \"{spelling}\"")).unwrap();
            assert_eq!(config.delivery.transport, transport);
        }
        for (spelling, tls, port) in [
            ("none", Tls::None, 25),
            ("opportunistic", Tls::Opportunistic, 25),
            ("starttls", Tls::Starttls, 25),
            ("implicit", Tls::Implicit, 465),
        ] {
            let config = with("delivery", &format!("tls = \"{spelling}\"")).unwrap();
            assert_eq!((config.delivery.tls, config.delivery.port), (tls, port));
        }
        for (spelling, period) in [
            ("yearly", VolumePeriod::Yearly),
            ("quarterly", VolumePeriod::Quarterly),
            ("monthly", VolumePeriod::Monthly),
            ("weekly", VolumePeriod::Weekly),
            ("daily", VolumePeriod::Daily),
        ] {
            let text = format!("{ONE_LIST}digest_volume = \"{spelling}\"\n");
            let config = parse(&text, "lists.toml", Path::new(".")).unwrap();
            assert_eq!(config.list("en").unwrap().digest_volume, period);
        }
        let key = std::env::temp_dir().join(format!("tidings-dkim-{}.pem", std::process::id()));
        std::fs::write(&key, "not read while loading").unwrap();
        for (spelling, algorithm) in [
            ("ed25519-sha256", DkimAlgorithm::Ed25519Sha256),
            ("ed25519", DkimAlgorithm::Ed25519Sha256),
            ("rsa-sha256", DkimAlgorithm::RsaSha256),
            ("rsa", DkimAlgorithm::RsaSha256),
        ] {
            let text = format!(
                "[[dkim]]\nselector = \"s\"\nkey_file = \"{}\"\nalgorithm = \"{spelling}\"\n\n{ONE_LIST}",
                key.display()
            );
            let config = parse(&text, "lists.toml", Path::new(".")).unwrap();
            assert_eq!(config.dkim[0].algorithm, algorithm, "{spelling}");
        }
        std::fs::remove_file(&key).unwrap();
    }

    #[test]
    fn a_bad_spelling_names_the_allowed_ones_and_the_rest_is_still_checked() {
        let text = format!(
            "[delivery]\ntls = \"TLS\"\ntransport = \"smtp \"\nport = 0\n\n[[dkim]]\nselector = \"s\"\nkey_file = \"k.pem\"\nalgorithm = \"ed448\"\n\n{ONE_LIST}digest_volume = \"Yearly\"\n"
        );
        let found = errors(&text);
        let places: Vec<(usize, usize)> = found.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(
            places,
            [(2, 7), (3, 13), (4, 8), (9, 13), (16, 17)],
            "{found:#?}"
        );
        assert_eq!(found[0].message, "tls `TLS` is not known");
        assert!(
            found[0].help.contains("none, opportunistic"),
            "{}",
            found[0].help
        );
        assert_eq!(found[1].message, "transport `smtp ` is not known");
        assert!(found[1].help.contains("file") && found[1].help.contains("sendmail"));
        assert_eq!(found[3].message, "DKIM algorithm `ed448` is not known");
        assert!(found[3].help.contains("ed25519-sha256 or rsa-sha256"));
        assert!(found[4].help.contains("yearly, quarterly, monthly, weekly"));
    }

    #[test]
    fn the_operator_is_outside_the_list_domain() {
        let list = "\n[[list]]\ncode = \"en\"\nlang = \"en\"\nname = \"English\"\naddress = \"en@lists.example.org\"\n";
        let found = errors(&format!(
            "[site]\ndomain = \"lists.example.org\"\noperator = \"postmaster@Lists.Example.org\"\n{list}"
        ));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!((found[0].line, found[0].column), (3, 12));
        assert!(
            found[0].message.contains("list domain"),
            "{}",
            found[0].message
        );
        let fine = format!(
            "[site]\ndomain = \"lists.example.org\"\noperator = \"ops@example.org\"\n{list}"
        );
        assert!(parse(&fine, "lists.toml", Path::new(".")).is_ok());
    }

    #[test]
    fn line_breaks_never_reach_a_header() {
        let cases = [
            (
                "[site]\nname = \"A\\r\\nBcc: victim@example.com\"\n",
                "name",
                (2, 8),
            ),
            (
                "[site]\noperator = \"ops@example.org\\nBcc: v@x\"\n",
                "operator",
                (2, 12),
            ),
            (
                "[site]\nbase_url = \"http://x.org/\\n\"\n",
                "base_url",
                (2, 12),
            ),
            (
                "[site]\ndomain = \"lists.example.org\\r\"\n",
                "domain",
                (2, 10),
            ),
            (
                "[delivery]\nhelo_name = \"mx\\r\\nX: y\"\n",
                "helo_name",
                (2, 13),
            ),
            ("[delivery]\nhost = \"relay\\n\"\n", "host", (2, 8)),
            (
                "[[dkim]]\nselector = \"s\\n\"\nkey_file = \"k\"\n",
                "DKIM selector",
                (2, 12),
            ),
            (
                "[[dkim]]\nselector = \"s\"\nkey_file = \"k\"\ndomain = \"x.org\\n\"\n",
                "DKIM domain",
                (4, 10),
            ),
        ];
        for (table, key, place) in cases {
            let found = errors(&format!("{table}\n{ONE_LIST}"));
            assert_eq!(found.len(), 1, "{key}: {found:#?}");
            assert_eq!((found[0].line, found[0].column), place, "{key}");
            assert!(
                found[0].message.starts_with(&format!("{key} contains")),
                "{found:#?}"
            );
            assert!(found[0].help.contains("one line"), "{}", found[0].help);
        }
        for (key, value) in [
            ("name", "\"English\\u0000\""),
            ("title", "\"A-Infos\\r\\nBcc: victim@example.com\""),
            ("description", "\"\"\"two\nlines\"\"\""),
            ("address", "\"en@lists.example.org\\n\""),
        ] {
            let text = ONE_LIST.replace("name = \"English\"\n", "") + &format!("{key} = {value}\n");
            let text = if key == "name" {
                text
            } else {
                format!("{text}name = \"English\"\n")
            };
            let text = if key == "address" {
                text.replace("address = \"en@lists.example.org\"\n", "")
            } else {
                text
            };
            let found = errors(&text);
            assert_eq!(found.len(), 1, "{key}: {found:#?}");
            assert!(
                found[0].message.starts_with(&format!("{key} contains")),
                "{found:#?}"
            );
            let line = text.lines().position(|l| l.starts_with(key)).unwrap() + 1;
            assert_eq!(
                (found[0].line, found[0].column),
                (line, key.len() + 4),
                "{key}"
            );
        }
        let found = errors(&format!("{ONE_LIST}aliases = [\"ok\", \"x\\ny\"]\n"));
        assert!(
            found.iter().any(|e| e.line == 6 && e.column == 18),
            "{found:#?}"
        );
    }

    #[test]
    fn a_list_address_outside_the_site_domain_is_refused() {
        let text = ONE_LIST.replace("en@lists.example.org", "en@example.com");
        let found = errors(&text);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!((found[0].line, found[0].column), (5, 11));
        assert!(found[0]
            .message
            .contains("outside the [site] domain `lists.example.org`"));
        assert!(
            found[0].help.contains("en@lists.example.org"),
            "{}",
            found[0].help
        );
        // The domain compares without regard to case, in either place.
        let config = parse(
            &format!(
                "[site]\ndomain = \"Lists.Example.ORG\"\n{}",
                ONE_LIST.replace("@lists", "@LISTS")
            ),
            "lists.toml",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(config.site.domain, "lists.example.org");
        assert_eq!(config.lists[0].address, "en@lists.example.org");
        // Another wrong [site] value does not keep the addresses unchecked.
        let found = errors(&format!("[site]\ntimezone = \"Mars\"\n{text}"));
        assert_eq!(found.len(), 2, "{found:#?}");
    }

    #[test]
    fn postmaster_and_abuse_are_no_list_s_address() {
        for local in ["postmaster", "Abuse"] {
            let text = ONE_LIST.replace(
                "en@lists.example.org",
                &format!("{local}@lists.example.org"),
            );
            let found = errors(&text);
            assert_eq!(found.len(), 1, "{found:#?}");
            assert_eq!((found[0].line, found[0].column), (5, 11));
            assert!(
                found[0].message.contains("is the operator's"),
                "{}",
                found[0].message
            );
        }
    }

    #[test]
    fn a_schedule_error_says_what_was_written_and_what_is_allowed() {
        let found = errors(&format!("{ONE_LIST}digest_schedule = \"0 24 * * *\"\n"));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!((found[0].line, found[0].column), (6, 19));
        assert_eq!(
            found[0].message,
            "digest_schedule `0 24 * * *`: hour 24 is out of range (hour takes 0-23)"
        );
        assert!(found[0].help.contains("hour (0-23)"), "{}", found[0].help);
        assert!(found[0].help.contains("weekday (0-7 or SUN-SAT"));
        let found = errors(&format!("{ONE_LIST}digest_schedule = \"0 0 18 * * *\"\n"));
        assert!(
            found[0]
                .message
                .contains("it has 6 fields; tidings takes 5"),
            "{}",
            found[0].message
        );
        let found = errors(&format!("{ONE_LIST}digest_schedule = \"0 0 30 2 *\"\n"));
        assert!(
            found[0].message.contains("never fires"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn a_file_that_is_not_utf8_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lists.toml");
        let mut bytes = ONE_LIST.as_bytes().to_vec();
        let at = bytes.windows(7).position(|w| w == b"English").unwrap();
        bytes[at + 1] = 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let error = load(Some(&path)).unwrap_err();
        let errors = error
            .downcast_ref::<ConfigErrors>()
            .expect("located errors");
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].file, path.display().to_string());
        assert_eq!((errors.0[0].line, errors.0[0].column), (4, 10));
        assert!(
            errors.0[0].message.contains("0xFF"),
            "{}",
            errors.0[0].message
        );
    }

    /// A file of `lists` lists, each with an alias and a schedule.
    fn many_lists(lists: usize) -> String {
        let mut text = String::from("[site]\ndomain = \"lists.example.org\"\n");
        for n in 0..lists {
            text.push_str(&format!(
                "\n[[list]]\ncode = \"l{n}\"\nlang = \"en\"\nname = \"List {n}\"\naddress = \"list-{n}@lists.example.org\"\naliases = [\"a{n}\"]\ndigest_schedule = \"{} 18 * * 1-5\"\n",
                n % 60
            ));
        }
        text
    }

    #[test]
    fn twenty_thousand_lists_load_and_are_found() {
        let config = parse(&many_lists(20_000), "lists.toml", Path::new(".")).unwrap();
        assert_eq!(config.lists.len(), 20_000);
        assert_eq!(
            config.list("l19999").unwrap().address,
            "list-19999@lists.example.org"
        );
        assert_eq!(config.list_by_tag("A12345").unwrap().code, "l12345");
        let list = config
            .list_by_address("<List-7+x@lists.example.org>")
            .unwrap();
        assert_eq!(list.code, "l7");
        assert_eq!(config.list_by_lang("en-GB").unwrap().code, "l0");
        assert!(config.list("a1").is_none(), "an alias is not a code");
        // The last of many problems is still located by its own line.
        let text = many_lists(20_000).replace("code = \"l19999\"", "code = \"l0\"");
        let found = errors(&text);
        assert_eq!(found.len(), 1, "{found:#?}");
        let line = text.lines().position(|l| l == "code = \"l0\"").unwrap() + 1;
        assert!(
            found[0].message.contains(&format!("(line {line})")),
            "{}",
            found[0].message
        );
        let lines: Vec<&str> = text.lines().collect();
        let last = lines.iter().rposition(|&l| l == "code = \"l0\"").unwrap() + 1;
        assert_eq!((found[0].line, found[0].column), (last, 8));
    }
}
