//! The `[[list]]` tables, one per language edition, and their digest
//! schedules.

use std::collections::HashMap;
use std::ops::Range;
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;

use super::errors::{Choice, Chosen, Errors};
use super::feeds::{ENTRIES, ENTRIES_HELP};
use super::Feeds;

/// One `[[list]]`: a language edition of the service.
#[derive(Debug, Clone)]
pub struct List {
    /// The tag contributors put in subjects, and the suffix of the list's
    /// address; lowercase.
    pub code: String,
    /// BCP 47 language tag for everything machine-facing.
    pub lang: String,
    /// Name of the language in the language itself, e.g. "Ελληνικά".
    pub name: String,
    /// Title of the list's feeds and digests, in its language (default the
    /// name).
    pub title: String,
    /// One-line description of the list, in its language (default the name).
    pub description: String,
    /// Posting address, lowercase.
    pub address: String,
    /// Other tags contributors use for this list, lowercase (default none).
    pub aliases: Vec<String>,
    /// When the digest is sent, as written in the file (default
    /// [`DEFAULT_SCHEDULE`]).
    pub digest_schedule: String,
    /// The parsed digest schedule (see [`parse_schedule`]).
    pub schedule: cron::Schedule,
    /// Entries in this list's feeds (default `[feeds] list_entries`).
    pub feed_entries: usize,
    /// Whether posts in languages no list serves may be filed here when sent
    /// to this list's address (The Supplement; default false).
    pub catch_all: bool,
    /// How the digest volume advances (default yearly).
    pub digest_volume: VolumePeriod,
    /// Bytes of pending post text that send a digest before its scheduled
    /// time (default [`DEFAULT_DIGEST_SIZE_THRESHOLD`]; 0 never sends early).
    pub digest_size_threshold: usize,
    /// Whether a digest goes out at its scheduled time even when no post is
    /// pending (default false).
    pub digest_send_empty: bool,
}

/// How the volume number of a list's digests advances; the issue number
/// restarts at 1 with each new volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumePeriod {
    /// Calendar years (the default).
    #[default]
    Yearly,
    /// Calendar quarters: January-March, April-June, July-September, October-December.
    Quarterly,
    /// Calendar months.
    Monthly,
    /// ISO 8601 weeks (Monday first), by ISO week-year.
    Weekly,
    /// Calendar days.
    Daily,
}

impl Choice for VolumePeriod {
    const WHAT: &'static str = "digest_volume";
    const HELP: &'static str =
        "write one of yearly, quarterly, monthly, weekly (ISO weeks) or daily";
}

/// Digests go out at 18:00 every day unless a list says otherwise.
pub const DEFAULT_SCHEDULE: &str = "0 18 * * *";

/// Pending post text that sends a digest early unless a list says otherwise
/// (Mailman's 30 KB).
pub const DEFAULT_DIGEST_SIZE_THRESHOLD: usize = 30 * 1024;

/// One `[[list]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawList {
    code: Spanned<String>,
    lang: Spanned<String>,
    name: Spanned<String>,
    title: Option<Spanned<String>>,
    description: Option<Spanned<String>>,
    address: Spanned<String>,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
    digest_schedule: Option<Spanned<String>>,
    feed_entries: Option<Spanned<i64>>,
    #[serde(default)]
    catch_all: bool,
    digest_volume: Option<Chosen<VolumePeriod>>,
    digest_size_threshold: Option<Spanned<i64>>,
    #[serde(default)]
    digest_send_empty: bool,
}

/// Checks every list, alone and against the others (tags and addresses
/// are unique).
pub(super) fn check(raw: Vec<RawList>, errors: &mut Errors<'_>, feeds: &Feeds) -> Vec<List> {
    let mut seen = Seen::default();
    raw.into_iter()
        .filter_map(|list| list.check(errors, feeds, &mut seen))
        .collect()
}

/// The tags and addresses of the lists checked so far, each with the
/// offset where it was first written.
#[derive(Default)]
struct Seen {
    tags: HashMap<String, usize>,
    addresses: HashMap<String, usize>,
}

impl RawList {
    fn check(self, errors: &mut Errors<'_>, feeds: &Feeds, seen: &mut Seen) -> Option<List> {
        let code = self.code.get_ref().to_ascii_lowercase();
        if !is_code(&code) {
            errors.at(
                self.code.span(),
                &format!("list code `{}` is not a valid tag", self.code.get_ref()),
                "use 2 to 12 letters, digits or '-', as contributors type it in \"(xx)\"",
            );
        }
        unique_tag(errors, &mut seen.tags, &code, self.code.span());
        let mut aliases = Vec::with_capacity(self.aliases.len());
        for alias in &self.aliases {
            let tag = alias.get_ref().to_ascii_lowercase();
            if !is_code(&tag) {
                errors.at(
                    alias.span(),
                    &format!("alias `{}` is not a valid tag", alias.get_ref()),
                    "use 2 to 12 letters, digits or '-'",
                );
            }
            unique_tag(errors, &mut seen.tags, &tag, alias.span());
            aliases.push(tag);
        }
        if !is_language_tag(self.lang.get_ref()) {
            errors.at(
                self.lang.span(),
                &format!(
                    "lang `{}` is not a BCP 47 language tag",
                    self.lang.get_ref()
                ),
                "write a tag such as en, el, zh or pt-BR (or mul for several languages)",
            );
        }
        errors.one_line(&self.name, "name");
        let mut text = |value: Option<Spanned<String>>, key: &str| {
            let value = value?;
            errors.one_line(&value, key);
            Some(value.into_inner())
        };
        let title = text(self.title, "title");
        let description = text(self.description, "description");
        let address = address_in(&self.address, errors, seen);
        let (digest_schedule, schedule) = match self.digest_schedule {
            Some(expression) => match parse_schedule(expression.get_ref()) {
                Ok(schedule) => (expression.into_inner(), Some(schedule)),
                Err(error) => {
                    errors.at(
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
                Some(parse_schedule(DEFAULT_SCHEDULE).expect("the default schedule is valid")),
            ),
        };
        let feed_entries = errors.bounded(
            self.feed_entries,
            ENTRIES,
            feeds.list_entries,
            "feed_entries",
            ENTRIES_HELP,
        );
        let digest_volume = (self.digest_volume)
            .and_then(|chosen| errors.choice(chosen))
            .unwrap_or_default();
        let digest_size_threshold = match self.digest_size_threshold {
            None => DEFAULT_DIGEST_SIZE_THRESHOLD,
            Some(value) => usize::try_from(*value.get_ref()).unwrap_or_else(|_| {
                errors.at(
                    value.span(),
                    "digest_size_threshold cannot be negative",
                    "give the bytes of pending post text that send a digest early, e.g. 30720, or 0 for never",
                );
                DEFAULT_DIGEST_SIZE_THRESHOLD
            }),
        };
        let name = self.name.into_inner();
        Some(List {
            title: title.unwrap_or_else(|| name.clone()),
            description: description.unwrap_or_else(|| name.clone()),
            code,
            lang: self.lang.into_inner(),
            name,
            address,
            aliases,
            digest_schedule,
            schedule: schedule?,
            feed_entries,
            catch_all: self.catch_all,
            digest_volume,
            digest_size_threshold,
            digest_send_empty: self.digest_send_empty,
        })
    }
}

/// The posting address, lowercase, with its problems recorded: not an
/// address, or another list's.
fn address_in(written: &Spanned<String>, errors: &mut Errors<'_>, seen: &mut Seen) -> String {
    let address = written.get_ref().to_ascii_lowercase();
    if !errors.one_line(written, "address") {
        return address;
    }
    if lettre::Address::from_str(&address).is_err() {
        errors.at(
            written.span(),
            &format!("address `{}` is not a mail address", written.get_ref()),
            "write the list's posting address, e.g. a-infos-en@lists.example.org",
        );
    }
    if let Some(&first) = seen.addresses.get(&address) {
        let line = errors.line_of(first..first);
        errors.at(
            written.span(),
            &format!("duplicate list address `{address}` (first at line {line})"),
            "give each [[list]] its own posting address",
        );
    } else {
        seen.addresses.insert(address.clone(), written.span().start);
    }
    address
}

fn unique_tag(
    errors: &mut Errors<'_>,
    tags: &mut HashMap<String, usize>,
    tag: &str,
    span: Range<usize>,
) {
    if let Some(&first) = tags.get(tag) {
        let line = errors.line_of(first..first);
        errors.at(
            span,
            &format!("tag `{tag}` is already used by another list (line {line})"),
            "each code and alias must name exactly one list",
        );
    } else {
        tags.insert(tag.to_string(), span.start);
    }
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
