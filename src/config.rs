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
    let mut lists = Vec::new();
    for (key, value) in document.into_inner() {
        match key.get_ref().as_ref() {
            "site" => site = errors.table::<RawSite>(value, "[site]"),
            "ingest" => ingest = errors.table::<RawIngest>(value, "[ingest]"),
            "feeds" => feeds = errors.table::<RawFeeds>(value, "[feeds]"),
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
                "the top-level tables are [site], [ingest], [feeds] and [[list]]",
            ),
        }
    }

    let site = errors.site(site.unwrap_or_default(), base);
    let ingest = errors.ingest(ingest.unwrap_or_default());
    let feeds = errors.feeds(feeds.unwrap_or_default());
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
        Some(Site {
            name: raw.name.unwrap_or_else(|| "tidings".to_string()),
            base_url: base_url?,
            domain: domain?,
            data_dir: dir(raw.data_dir, "data"),
            feeds_dir: dir(raw.feeds_dir, "feeds"),
            templates_dir: dir(raw.templates_dir, "templates"),
            timezone: timezone?,
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
                });
            }
        }
        lists
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
