//! The `[site]` table: what every list shares (name, public URL, mail
//! domain, directories, timezone, operator).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;

use super::bounces::{BounceScoring, RawBounceScoring};
use super::errors::Errors;
use super::{is_domain, relative_to, Listen};

/// The `[site]` table: what is shared by every list.
#[derive(Debug, Clone)]
pub struct Site {
    /// Display name of the service, e.g. "A-Infos" (default `tidings`).
    pub name: String,
    /// Public URL under which feeds and archive pages are served; always
    /// ends in `/` (default the `[listen] http` address,
    /// `http://127.0.0.1:8080/`).
    pub base_url: url::Url,
    /// Mail domain of the list addresses, lowercase (default
    /// `lists.example.org`). Every list address is in it.
    pub domain: String,
    /// Where the SQLite store and the outbox live (default `data`, relative
    /// to the configuration file).
    pub data_dir: PathBuf,
    /// Where generated feeds are written (default `feeds`).
    pub feeds_dir: PathBuf,
    /// Where the archive's pages are written, and served from by the
    /// daemon (default `site`).
    pub site_dir: PathBuf,
    /// Where templates are read from (default `templates`).
    pub templates_dir: PathBuf,
    /// Timezone in which schedules run (default `UTC`).
    pub timezone: chrono_tz::Tz,
    /// Where mail to postmaster@ and abuse@ the list domain goes: the person running
    /// the service (default `root@localhost`).
    pub operator: String,
    /// Who mail to LIST-owner goes to for every list that names none of its
    /// own (default none: the operator); their posts are published directly.
    pub editors: Vec<String>,
    /// Who may post to a list that names no `posting` of its own (default
    /// moderated).
    pub posting: Posting,
    /// Who is asked about held posts of every list that names none of its
    /// own (default none: the editors, else the operator).
    pub moderators: Vec<String>,
    /// Days a held post waits for a moderator before it is refused and its
    /// sender told (default 14).
    pub hold_days: i64,
    /// Posts one sender may have published in an hour; more are held for a
    /// moderator (default 30; 0 for no limit).
    pub max_posts_per_hour: u32,
    /// When bounces disable a subscriber, for every list that does not
    /// say (`bounce_threshold`, default 5; `bounce_window_days`, default 7).
    pub bounces: BounceScoring,
    /// Whether posts to every list that does not say are checked by DKIM,
    /// SPF, DMARC and ARC on arrival (default false; see [`crate::auth`]).
    pub verify: bool,
    /// The permissions of the feeds and pages tidings writes, whatever the
    /// umask of the process (Postfix runs pipes with 077); the directories
    /// it makes for them get the same bits plus search (x) where a class
    /// may read (default `0o644`, so directories `0o755`).
    pub file_mode: u32,
    /// The first part of every newsgroup's name (`PREFIX.CODE`, and
    /// `PREFIX.all` for all lists); default: the site name in lowercase,
    /// what is not a letter, digit, `-` or `_` made a `-`.
    pub newsgroups_prefix: String,
    /// The schedules a subscriber of several lists may choose for one
    /// digest across them ([`crate::digest::combined`]), by name, in the
    /// site timezone (default `daily` at 18:00 and `weekly` on Sundays at
    /// 18:00).
    pub combined_schedules: BTreeMap<String, CombinedSchedule>,
}

/// A schedule of the digest across several lists.
#[derive(Debug, Clone)]
pub struct CombinedSchedule {
    /// As written (crontab's five fields).
    pub expression: String,
    pub schedule: cron::Schedule,
}

/// The schedules of the digest across lists when `[site]` names none.
pub const DEFAULT_COMBINED_SCHEDULES: [(&str, &str); 2] =
    [("daily", "0 18 * * *"), ("weekly", "0 18 * * 0")];

fn default_combined_schedules() -> BTreeMap<String, CombinedSchedule> {
    DEFAULT_COMBINED_SCHEDULES
        .iter()
        .map(|(name, expression)| {
            let schedule = super::list::parse_schedule(expression).expect("valid default");
            (
                name.to_string(),
                CombinedSchedule {
                    expression: expression.to_string(),
                    schedule,
                },
            )
        })
        .collect()
}

/// Feeds and pages are readable by a web server running as another user
/// unless `file_mode` says otherwise.
pub const DEFAULT_FILE_MODE: u32 = 0o644;

impl Site {
    /// The permissions of a directory tidings makes for feeds or pages:
    /// `file_mode`, and search (x) for each class that may read.
    pub fn dir_mode(&self) -> u32 {
        let readable = self.file_mode & 0o444;
        self.file_mode | (readable >> 2)
    }
}

/// Whose posts a list publishes without a moderator (editors' always).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Posting {
    /// Anyone's.
    Open,
    /// Its subscribers' only; the rest wait for a moderator.
    Members,
    /// Nobody's: every post waits for a moderator (the default, as A-Infos
    /// is run).
    #[default]
    Moderated,
}

impl super::errors::Choice for Posting {
    const WHAT: &'static str = "posting";
    const HELP: &'static str = "write open (anyone's posts are published), members (subscribers' posts are published, others held) or moderated (every post held for a moderator, editors' excepted)";
}

/// Held posts wait this many days unless `hold_days` says otherwise.
pub const DEFAULT_HOLD_DAYS: i64 = 14;

/// Posts from one sender in an hour before the rest are held.
pub const DEFAULT_MAX_POSTS_PER_HOUR: u32 = 30;

impl Default for Site {
    /// The documented defaults; directories are relative, as written in a
    /// file (the loader takes them relative to the file).
    fn default() -> Self {
        let base_url = format!("http://{}/", Listen::default().http);
        Site {
            name: "tidings".to_string(),
            base_url: url::Url::parse(&base_url).expect("the default base_url is a URL"),
            domain: "lists.example.org".to_string(),
            data_dir: PathBuf::from("data"),
            feeds_dir: PathBuf::from("feeds"),
            site_dir: PathBuf::from("site"),
            templates_dir: PathBuf::from("templates"),
            timezone: chrono_tz::UTC,
            operator: "root@localhost".to_string(),
            editors: Vec::new(),
            posting: Posting::default(),
            moderators: Vec::new(),
            hold_days: DEFAULT_HOLD_DAYS,
            max_posts_per_hour: DEFAULT_MAX_POSTS_PER_HOUR,
            bounces: BounceScoring::default(),
            verify: false,
            file_mode: DEFAULT_FILE_MODE,
            newsgroups_prefix: newsgroups_prefix("tidings"),
            combined_schedules: default_combined_schedules(),
        }
    }
}

/// The newsgroup prefix made from a site name: `A-Infos` is `a-infos`.
pub fn newsgroups_prefix(name: &str) -> String {
    let prefix: String = name
        .trim()
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let prefix = prefix.trim_matches(|c| c == '.' || c == '-').to_string();
    if prefix.is_empty() {
        "tidings".to_string()
    } else {
        prefix
    }
}

/// A newsgroup name part: lowercase letters, digits, `-`, `_`, `+` and
/// dots between components (RFC 3977 section 4.1 allows more; this is what
/// every news client takes).
fn is_newsgroup_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_+".contains(c))
        })
}

/// `[site]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSite {
    name: Option<Spanned<String>>,
    base_url: Option<Spanned<String>>,
    domain: Option<Spanned<String>>,
    data_dir: Option<String>,
    feeds_dir: Option<String>,
    site_dir: Option<String>,
    templates_dir: Option<String>,
    timezone: Option<Spanned<String>>,
    operator: Option<Spanned<String>>,
    #[serde(default)]
    editors: Vec<Spanned<String>>,
    posting: Option<super::errors::Chosen<Posting>>,
    #[serde(default)]
    moderators: Vec<Spanned<String>>,
    hold_days: Option<Spanned<i64>>,
    max_posts_per_hour: Option<Spanned<i64>>,
    bounce_threshold: Option<Spanned<f64>>,
    bounce_window_days: Option<Spanned<i64>>,
    #[serde(default)]
    verify: bool,
    file_mode: Option<Spanned<i64>>,
    newsgroups_prefix: Option<Spanned<String>>,
    combined_schedules: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
}

impl RawSite {
    /// The mail domain, lowercase: as written, or the default when absent;
    /// the written value when it is not a domain. The lists' addresses are
    /// checked against it even when another `[site]` value is wrong.
    pub(super) fn domain(&self) -> Result<String, &Spanned<String>> {
        match &self.domain {
            None => Ok(Site::default().domain),
            Some(domain) if is_domain(domain.get_ref()) => {
                Ok(domain.get_ref().to_ascii_lowercase())
            }
            Some(domain) => Err(domain),
        }
    }

    /// The checked table; a wrong value is recorded and its default kept,
    /// so that the tables that depend on `[site]` are still checked.
    pub(super) fn check(self, errors: &mut Errors<'_>, base: &Path) -> Site {
        let default = Site::default();
        let domain = match self.domain() {
            Ok(domain) => domain,
            Err(written) => {
                if errors.one_line(written, "domain") {
                    errors.at(
                        written.span(),
                        &format!("domain `{}` is not a mail domain", written.get_ref()),
                        "write a host name such as lists.example.org",
                    );
                }
                default.domain
            }
        };
        let name = match self.name {
            Some(name) => {
                errors.one_line(&name, "name");
                name.into_inner()
            }
            None => default.name,
        };
        let base_url = match self.base_url {
            Some(url) if errors.one_line(&url, "base_url") => base_url(errors, &url),
            _ => None,
        };
        let timezone = match self.timezone {
            Some(zone) => chrono_tz::Tz::from_str(zone.get_ref()).unwrap_or_else(|_| {
                errors.at(
                    zone.span(),
                    &format!("unknown timezone `{}`", zone.get_ref()),
                    "use an IANA name such as UTC or Europe/Athens",
                );
                default.timezone
            }),
            None => default.timezone,
        };
        let operator = match self.operator {
            Some(address) if errors.one_line(&address, "operator") => {
                match lettre::Address::from_str(address.get_ref()) {
                    Err(_) => errors.at(
                        address.span(),
                        &format!("operator `{}` is not a mail address", address.get_ref()),
                        "write the address of the person running the service, e.g. ops@example.org",
                    ),
                    // Everything at the list domain comes to tidings: mail
                    // to postmaster passed on there would come straight back.
                    Ok(parsed) if parsed.domain().eq_ignore_ascii_case(&domain) => errors.at(
                        address.span(),
                        &format!(
                            "operator `{}` is at the list domain {domain}, whose mail tidings itself answers",
                            address.get_ref()
                        ),
                        "give an address outside the list domain, e.g. root@localhost or ops@example.org",
                    ),
                    Ok(_) => {}
                }
                address.into_inner()
            }
            _ => default.operator,
        };
        let newsgroups_prefix = match self.newsgroups_prefix {
            Some(prefix) if is_newsgroup_name(prefix.get_ref()) => prefix.into_inner(),
            Some(prefix) => {
                errors.at(
                    prefix.span(),
                    &format!("newsgroups_prefix `{}` is not a newsgroup name", prefix.get_ref()),
                    "write lowercase letters, digits, - and _, with dots between parts, e.g. \"a-infos\"",
                );
                newsgroups_prefix(&name)
            }
            None => newsgroups_prefix(&name),
        };
        let combined_schedules = match self.combined_schedules {
            None => default_combined_schedules(),
            Some(written) => {
                let span = written.span();
                let mut schedules = BTreeMap::new();
                for (name, expression) in written.into_inner() {
                    if !is_schedule_name(&name) {
                        errors.at(
                            expression.span(),
                            &format!("combined schedule name `{name}` is not a plain word"),
                            "name each schedule with lowercase letters, digits or '-', e.g. daily = \"0 18 * * *\"",
                        );
                        continue;
                    }
                    match super::list::parse_schedule(expression.get_ref()) {
                        Ok(schedule) => {
                            schedules.insert(
                                name,
                                CombinedSchedule {
                                    expression: expression.into_inner(),
                                    schedule,
                                },
                            );
                        }
                        Err(error) => errors.at(
                            expression.span(),
                            &format!(
                                "combined schedule `{name}` = `{}`: {error}",
                                expression.get_ref()
                            ),
                            super::list::SCHEDULE_HELP,
                        ),
                    }
                }
                if schedules.is_empty() {
                    errors.at(
                        span,
                        "combined_schedules names no schedule",
                        "name at least one, e.g. combined_schedules = { daily = \"0 18 * * *\" }",
                    );
                    schedules = default_combined_schedules();
                }
                schedules
            }
        };
        let dir = |value: Option<String>, default: PathBuf| {
            relative_to(base, value.map_or(default, PathBuf::from))
        };
        let editors = super::list::editors(&self.editors, errors, Some(&domain));
        let moderators = super::list::editors(&self.moderators, errors, Some(&domain));
        let posting = self
            .posting
            .and_then(|chosen| errors.choice(chosen))
            .unwrap_or_default();
        let hold_days = errors.bounded(
            self.hold_days,
            1..=365,
            DEFAULT_HOLD_DAYS,
            "hold_days",
            "give the days a held post waits for a moderator, 1 to 365",
        );
        let max_posts_per_hour = errors.bounded(
            self.max_posts_per_hour,
            0..=100_000,
            DEFAULT_MAX_POSTS_PER_HOUR,
            "max_posts_per_hour",
            "give the posts one sender may have published in an hour, or 0 for no limit",
        );
        let bounces = RawBounceScoring {
            bounce_threshold: self.bounce_threshold,
            bounce_window_days: self.bounce_window_days,
        }
        .check(errors, BounceScoring::default());
        let file_mode = match self.file_mode {
            Some(mode)
                if (0o400..=0o777).contains(mode.get_ref()) && mode.get_ref() & 0o600 == 0o600 =>
            {
                *mode.get_ref() as u32
            }
            Some(mode) => {
                errors.at(
                    mode.span(),
                    &format!(
                        "file_mode {} (octal {:o}) is not a file mode tidings can write with",
                        mode.get_ref(),
                        mode.get_ref()
                    ),
                    "write it in octal with 0o, owner read and write included, e.g. file_mode = 0o644 (or 0o640 for a web server in tidings' group)",
                );
                default.file_mode
            }
            None => default.file_mode,
        };
        Site {
            name,
            base_url: base_url.unwrap_or(default.base_url),
            domain,
            data_dir: dir(self.data_dir, default.data_dir),
            feeds_dir: dir(self.feeds_dir, default.feeds_dir),
            site_dir: dir(self.site_dir, default.site_dir),
            templates_dir: dir(self.templates_dir, default.templates_dir),
            timezone,
            operator,
            editors,
            posting,
            moderators,
            hold_days,
            max_posts_per_hour,
            bounces,
            verify: self.verify,
            file_mode,
            newsgroups_prefix,
            combined_schedules,
        }
    }
}

/// Whether `name` may name a combined schedule (a subscriber picks it).
fn is_schedule_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// An http(s) URL ending in `/`, so that relative paths join under it.
fn base_url(errors: &mut Errors<'_>, url: &Spanned<String>) -> Option<url::Url> {
    match url::Url::parse(url.get_ref()) {
        Ok(mut parsed) if matches!(parsed.scheme(), "http" | "https") => {
            if !parsed.path().ends_with('/') {
                let path = format!("{}/", parsed.path());
                parsed.set_path(&path);
            }
            let loopback = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(name)) => name == "localhost",
                None => false,
            };
            if parsed.scheme() == "http" && !loopback {
                errors.warn(
                    url.span(),
                    &format!(
                        "base_url `{}` is not https: digests carry no one-click unsubscribe link (RFC 8058 asks for https), only the mailto, and large mailbox providers may file them as spam",
                        url.get_ref()
                    ),
                    "serve the site over https (a reverse proxy in front of tidings serve) and write base_url = \"https://...\"",
                );
            }
            Some(parsed)
        }
        Ok(_) => {
            errors.at(
                url.span(),
                &format!("base_url `{}` is not an http(s) URL", url.get_ref()),
                "write it as https://host/path/",
            );
            None
        }
        Err(error) => {
            errors.at(
                url.span(),
                &format!("base_url `{}` is not a URL: {error}", url.get_ref()),
                "write it as https://host/path/",
            );
            None
        }
    }
}
