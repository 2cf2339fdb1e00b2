//! The `[[list]]` tables, one per language edition, and their digest
//! schedules: crontab's five fields, checked in the operator's terms and
//! handed to the `cron` crate in its own.

use std::collections::{BTreeSet, HashMap};
use std::ops::{Range, RangeInclusive};
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;

use super::bounces::{BounceScoring, RawBounceScoring};
use super::errors::{Choice, Chosen, Errors};
use super::feeds::{ENTRIES, ENTRIES_HELP};
use super::Feeds;
use crate::subscribers::Mode;

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
    /// Posting address, lowercase, in the `[site]` domain.
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
    /// Bytes the HTML part of an HTML digest may take, footer included
    /// (default [`DEFAULT_DIGEST_HTML_BUDGET`], under Gmail's clip at about
    /// 102 KB); past it the last posts show only their titles.
    pub digest_html_budget: usize,
    /// Whether a digest goes out at its scheduled time even when no post is
    /// pending (default false).
    pub digest_send_empty: bool,
    /// How a subscriber who names no mode receives the list (default
    /// `post`: each post as it arrives, as A-Infos readers mostly do).
    pub default_mode: Mode,
    /// Who mail to LIST-owner is passed on to: the list's `editors`, else
    /// `[site] editors`, else `[site] operator`.
    pub editors: Vec<String>,
    /// Whose posts are published without a moderator (default `[site]
    /// posting`).
    pub posting: super::site::Posting,
    /// Who is asked about held posts: the list's `moderators`, else `[site]
    /// moderators`, else the editors.
    pub moderators: Vec<String>,
    /// When bounces disable a subscriber (default `[site]`'s).
    pub bounces: BounceScoring,
    /// Whether posts are checked by DKIM, SPF, DMARC and ARC on arrival
    /// (default `[site] verify`; see [`crate::auth`]).
    pub verify: bool,
}

impl Choice for Mode {
    const WHAT: &'static str = "default_mode";
    const HELP: &'static str =
        "write mime, plain, html or summary (a digest), post (each post as it arrives) or nomail";
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

/// The HTML part of an HTML digest stays within 90 KB unless a list says
/// otherwise: Gmail hides what follows about 102 KB of HTML, the footer with
/// its unsubscribe link included.
pub const DEFAULT_DIGEST_HTML_BUDGET: usize = 90 * 1024;

/// The smallest HTML budget a list may set: room for the page, the masthead,
/// the footer and a line per post of a busy day.
pub const MIN_DIGEST_HTML_BUDGET: usize = 16 * 1024;

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
    digest_html_budget: Option<Spanned<i64>>,
    #[serde(default)]
    digest_send_empty: bool,
    default_mode: Option<Chosen<Mode>>,
    editors: Option<Vec<Spanned<String>>>,
    posting: Option<Chosen<super::site::Posting>>,
    moderators: Option<Vec<Spanned<String>>>,
    bounce_threshold: Option<Spanned<f64>>,
    bounce_window_days: Option<Spanned<i64>>,
    verify: Option<bool>,
}

/// Checks every list, alone and against the others (tags and addresses
/// are unique); `domain` is the `[site]` domain when it is valid.
pub(super) fn check(
    raw: Vec<RawList>,
    errors: &mut Errors<'_>,
    feeds: &Feeds,
    domain: Option<&str>,
    site: &super::Site,
) -> Vec<List> {
    let mut seen = Seen::default();
    raw.into_iter()
        .filter_map(|list| list.check(errors, feeds, domain, site, &mut seen))
        .collect()
}

/// Editors' addresses as written: each a mail address outside the list
/// domain (whose mail comes to tidings itself), lowercase.
pub(super) fn editors(
    written: &[Spanned<String>],
    errors: &mut Errors<'_>,
    domain: Option<&str>,
) -> Vec<String> {
    let mut editors = Vec::with_capacity(written.len());
    for address in written {
        if !errors.one_line(address, "editors") {
            continue;
        }
        match lettre::Address::from_str(address.get_ref()) {
            Err(_) => errors.at(
                address.span(),
                &format!("editor `{}` is not a mail address", address.get_ref()),
                "write each editor's own address, e.g. \"maria@example.net\"",
            ),
            Ok(parsed) if domain.is_some_and(|d| parsed.domain().eq_ignore_ascii_case(d)) => errors
                .at(
                    address.span(),
                    &format!(
                        "editor `{}` is at the list domain, whose mail tidings itself answers",
                        address.get_ref()
                    ),
                    "give an address outside the list domain",
                ),
            Ok(_) => editors.push(address.get_ref().to_ascii_lowercase()),
        }
    }
    editors
}

/// What the lists checked so far have written: tags and addresses, each
/// with the offset where it was first written, and schedules, parsed once
/// for all the lists that share one (most lists do).
#[derive(Default)]
struct Seen {
    tags: HashMap<String, usize>,
    addresses: HashMap<String, usize>,
    schedules: HashMap<String, cron::Schedule>,
}

impl Seen {
    /// `expression` parsed by [`parse_schedule`], or the copy of an
    /// earlier list's.
    fn schedule(&mut self, expression: &str) -> Result<cron::Schedule, String> {
        if let Some(schedule) = self.schedules.get(expression) {
            return Ok(schedule.clone());
        }
        let schedule = parse_schedule(expression)?;
        self.schedules
            .insert(expression.to_string(), schedule.clone());
        Ok(schedule)
    }
}

impl RawList {
    fn check(
        self,
        errors: &mut Errors<'_>,
        feeds: &Feeds,
        domain: Option<&str>,
        site: &super::Site,
        seen: &mut Seen,
    ) -> Option<List> {
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
        let address = address_in(&self.address, errors, domain, seen);
        let (digest_schedule, schedule) = match self.digest_schedule {
            Some(expression) => match seen.schedule(expression.get_ref()) {
                Ok(schedule) => (expression.into_inner(), Some(schedule)),
                Err(error) => {
                    errors.at(
                        expression.span(),
                        &format!("digest_schedule `{}`: {error}", expression.get_ref()),
                        SCHEDULE_HELP,
                    );
                    (expression.into_inner(), None)
                }
            },
            None => (
                DEFAULT_SCHEDULE.to_string(),
                Some(
                    seen.schedule(DEFAULT_SCHEDULE)
                        .expect("the default schedule is valid"),
                ),
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
        let digest_html_budget = match self.digest_html_budget {
            None => DEFAULT_DIGEST_HTML_BUDGET,
            Some(value) => match usize::try_from(*value.get_ref()) {
                Ok(bytes) if bytes >= MIN_DIGEST_HTML_BUDGET => bytes,
                _ => {
                    errors.at(
                        value.span(),
                        &format!("digest_html_budget must be at least {MIN_DIGEST_HTML_BUDGET} bytes"),
                        "give the bytes the HTML part of an HTML digest may take, e.g. 92160 (Gmail clips past about 102 KB)",
                    );
                    DEFAULT_DIGEST_HTML_BUDGET
                }
            },
        };
        let default_mode = (self.default_mode)
            .and_then(|chosen| errors.choice(chosen))
            .unwrap_or(Mode::Post);
        let list_editors = match &self.editors {
            Some(written) => editors(written, errors, domain),
            None => site.editors.clone(),
        };
        let posting = (self.posting)
            .and_then(|chosen| errors.choice(chosen))
            .unwrap_or(site.posting);
        let moderators = match &self.moderators {
            Some(written) => editors(written, errors, domain),
            None if site.moderators.is_empty() => list_editors.clone(),
            None => site.moderators.clone(),
        };
        let bounces = RawBounceScoring {
            bounce_threshold: self.bounce_threshold,
            bounce_window_days: self.bounce_window_days,
        }
        .check(errors, site.bounces);
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
            digest_html_budget,
            digest_send_empty: self.digest_send_empty,
            default_mode,
            editors: list_editors,
            posting,
            moderators,
            bounces,
            verify: self.verify.unwrap_or(site.verify),
        })
    }
}

/// The posting address, lowercase, with its problems recorded: not an
/// address, outside the site's domain, or another list's.
fn address_in(
    written: &Spanned<String>,
    errors: &mut Errors<'_>,
    domain: Option<&str>,
    seen: &mut Seen,
) -> String {
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
    } else if let Some(domain) = domain {
        let (local, in_domain) = address.rsplit_once('@').unwrap_or((&address, ""));
        if in_domain == domain && matches!(local, "postmaster" | "abuse") {
            errors.at(
                written.span(),
                &format!(
                    "address `{}` is the operator's: mail to postmaster@ and abuse@ the domain goes to [site] operator, never to a list",
                    written.get_ref()
                ),
                &format!("give the list an address of its own, e.g. a-infos-xx@{domain}"),
            );
        } else if in_domain != domain {
            errors.at(
                written.span(),
                &format!(
                    "address `{}` is outside the [site] domain `{domain}`, so the listener would refuse its mail as relaying",
                    written.get_ref()
                ),
                &format!(
                    "write the address in the site's domain, e.g. {local}@{domain}, or set [site] domain to `{in_domain}`"
                ),
            );
        }
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

/// What a schedule error tells the operator to write.
pub(super) const SCHEDULE_HELP: &str =
    "write 5 fields: minute (0-59), hour (0-23), day of month (1-31), \
     month (1-12 or JAN-DEC), weekday (0-7 or SUN-SAT; 0 and 7 are Sunday), \
     e.g. \"0 18 * * *\" for 18:00 daily or \"30 7 * * 1-5\" for 7:30 on weekdays";

/// One of crontab's five fields.
struct Field {
    /// Its name in errors.
    name: &'static str,
    /// The numbers it takes.
    range: RangeInclusive<u32>,
    /// Three-letter names of its numbers, from the start of `range`.
    names: &'static [&'static str],
    /// What it takes, as an error says it.
    takes: &'static str,
}

const MINUTE: Field = Field {
    name: "minute",
    range: 0..=59,
    names: &[],
    takes: "0-59",
};
const HOUR: Field = Field {
    name: "hour",
    range: 0..=23,
    names: &[],
    takes: "0-23",
};
const DAY: Field = Field {
    name: "day of month",
    range: 1..=31,
    names: &[],
    takes: "1-31",
};
const MONTH: Field = Field {
    name: "month",
    range: 1..=12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
    takes: "1-12 or JAN-DEC",
};
/// Crontab's weekdays: 0 (and 7) is Sunday, 1 Monday, ... 6 Saturday.
const WEEKDAY: Field = Field {
    name: "weekday",
    range: 0..=7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    takes: "0-7 or SUN-SAT, 0 and 7 being Sunday",
};

/// The longest each month gets, February in leap years.
const MONTH_DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// Parses a digest schedule as crontab writes it: 5 fields, minute (0-59),
/// hour (0-23), day of month (1-31), month (1-12 or JAN-DEC) and weekday
/// (0-7 or SUN-SAT, 0 and 7 both Sunday). Each field is `*`, a number or
/// name, or a range `a-b`, optionally with a step (`*/15`, `8-18/2`), or a
/// comma-separated list of those. When both day of month and weekday are
/// restricted, a digest goes out on days that match both (crontab takes
/// either): `0 9 1-7 * 1` is the first Monday of each month.
///
/// The error says what is wrong in those terms: the field, what it takes,
/// a count of fields other than 5, or that the schedule never fires.
pub fn parse_schedule(expression: &str) -> Result<cron::Schedule, String> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let [minute, hour, day, month, weekday] = fields[..] else {
        let count = fields.len();
        let plural = if count == 1 { "" } else { "s" };
        return Err(format!(
            "it has {count} field{plural}; tidings takes 5: minute hour day-of-month month weekday (no seconds, no year)"
        ));
    };
    let minutes = values(&MINUTE, minute)?;
    let hours = values(&HOUR, hour)?;
    let days = values(&DAY, day)?;
    let months = values(&MONTH, month)?;
    // 7 is Sunday again; the set keeps 0-6.
    let weekdays: BTreeSet<u32> = values(&WEEKDAY, weekday)?
        .into_iter()
        .map(|day| day % 7)
        .collect();
    let fires = months.iter().any(|&month| {
        days.iter()
            .any(|&day| day <= MONTH_DAYS[month as usize - 1])
    });
    if !fires {
        return Err(format!(
            "it never fires: month `{month}` has no day `{day}`"
        ));
    }
    // The cron crate takes seconds first and numbers weekdays from 1 for
    // Sunday to 7 for Saturday.
    let crate_weekdays: BTreeSet<u32> = weekdays.iter().map(|day| day + 1).collect();
    let expression = format!(
        "0 {} {} {} {} {}",
        crate_list(&minutes, 60),
        crate_list(&hours, 24),
        crate_list(&days, 31),
        crate_list(&months, 12),
        crate_list(&crate_weekdays, 7),
    );
    cron::Schedule::from_str(&expression)
        .map_err(|error| format!("cannot be read as `{expression}`: {error}"))
}

/// A set of numbers as the cron crate reads it: `*` when it is all of a
/// field's `count` values, else a list.
fn crate_list(values: &BTreeSet<u32>, count: usize) -> String {
    if values.len() == count {
        return "*".to_string();
    }
    let numbers: Vec<String> = values.iter().map(u32::to_string).collect();
    numbers.join(",")
}

/// The numbers one field names, in the field's own numbering.
fn values(field: &Field, text: &str) -> Result<BTreeSet<u32>, String> {
    let name = field.name;
    let takes = field.takes;
    let mut values = BTreeSet::new();
    for item in text.split(',') {
        let (span, step) = match item.split_once('/') {
            Some((span, step)) => match step.parse::<u32>() {
                Ok(step) if step > 0 => (span, Some(step)),
                _ => {
                    return Err(format!(
                    "{name} `{text}` has step `{step}`; a step is a whole number from 1, e.g. */15"
                ))
                }
            },
            None => (item, None),
        };
        let (first, last) = match span.split_once('-') {
            _ if span == "*" => (*field.range.start(), *field.range.end()),
            Some((first, last)) => {
                let (first, last) = (value(field, first)?, value(field, last)?);
                if first > last {
                    return Err(format!(
                        "{name} range `{span}` runs backwards; write the lower end first ({name} takes {takes})"
                    ));
                }
                (first, last)
            }
            // `5/15` is 5, 20, 35, 50: from the value to the field's end.
            None if step.is_some() => (value(field, span)?, *field.range.end()),
            None => {
                let value = value(field, span)?;
                (value, value)
            }
        };
        values.extend((first..=last).step_by(step.unwrap_or(1) as usize));
    }
    Ok(values)
}

/// One number or name of a field.
fn value(field: &Field, text: &str) -> Result<u32, String> {
    let name = field.name;
    let takes = field.takes;
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(number) if field.range.contains(&number) => Ok(number),
            _ => Err(format!(
                "{name} {text} is out of range ({name} takes {takes})"
            )),
        };
    }
    let lower = text.to_ascii_lowercase();
    match field.names.iter().position(|&known| known == lower) {
        Some(index) => Ok(field.range.start() + index as u32),
        None if text.is_empty() => Err(format!("{name} has an empty value ({name} takes {takes})")),
        None => Err(format!(
            "{name} `{text}` is not understood ({name} takes {takes})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Datelike, TimeZone, Utc, Weekday};

    use super::*;

    /// The next `count` times `expression` fires after `start`.
    fn fires(expression: &str, start: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let schedule = parse_schedule(expression).unwrap();
        schedule.after(&start).take(count).collect()
    }

    /// Monday 5 January 2026, 00:00 UTC.
    fn monday() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap()
    }

    #[test]
    fn five_fields_fire_as_crontab_says() {
        let at = fires("0 18 * * *", monday(), 2);
        assert_eq!(at[0], Utc.with_ymd_and_hms(2026, 1, 5, 18, 0, 0).unwrap());
        assert_eq!(at[1], Utc.with_ymd_and_hms(2026, 1, 6, 18, 0, 0).unwrap());
        let at = fires("*/20 8-9 * * *", monday(), 7);
        let minutes: Vec<(u32, u32)> = at
            .iter()
            .map(|t| (chrono::Timelike::hour(t), chrono::Timelike::minute(t)))
            .collect();
        assert_eq!(
            minutes,
            [(8, 0), (8, 20), (8, 40), (9, 0), (9, 20), (9, 40), (8, 0)]
        );
        let at = fires("15 6 1 JAN,jul *", monday(), 2);
        assert_eq!(at[0], Utc.with_ymd_and_hms(2026, 7, 1, 6, 15, 0).unwrap());
        assert_eq!(at[1], Utc.with_ymd_and_hms(2027, 1, 1, 6, 15, 0).unwrap());
    }

    #[test]
    fn weekday_0_and_7_are_both_sunday() {
        let sunday = Utc.with_ymd_and_hms(2026, 1, 11, 18, 0, 0).unwrap();
        for expression in ["0 18 * * 0", "0 18 * * 7", "0 18 * * SUN", "0 18 * * sun"] {
            let at = fires(expression, monday(), 2);
            assert_eq!(at[0], sunday, "{expression}");
            assert!(
                at.iter().all(|t| t.weekday() == Weekday::Sun),
                "{expression}"
            );
        }
    }

    #[test]
    fn weekday_1_to_5_is_monday_to_friday() {
        // Every minute from Saturday: the first is Monday's midnight.
        let saturday = Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap();
        let at = fires("* * * * 1-5", saturday, 1);
        assert_eq!(at[0], Utc.with_ymd_and_hms(2026, 1, 12, 0, 0, 0).unwrap());
        // Once a day for two weeks: exactly the weekdays, each twice.
        for expression in ["0 9 * * 1-5", "0 9 * * MON-FRI", "0 9 * * 1,2,3,4,5"] {
            let days: Vec<Weekday> = fires(expression, saturday, 10)
                .iter()
                .map(|t| t.weekday())
                .collect();
            use Weekday::*;
            assert_eq!(
                days,
                [Mon, Tue, Wed, Thu, Fri, Mon, Tue, Wed, Thu, Fri],
                "{expression}"
            );
        }
        // A range through 7 ends on Sunday.
        let days: Vec<Weekday> = fires("0 9 * * 5-7", monday(), 3)
            .iter()
            .map(|t| t.weekday())
            .collect();
        assert_eq!(days, [Weekday::Fri, Weekday::Sat, Weekday::Sun]);
    }

    #[test]
    fn day_of_month_and_weekday_both_restricted_must_both_match() {
        // The first Monday of each month.
        let at = fires("0 9 1-7 * 1", monday(), 3);
        assert!(at
            .iter()
            .all(|t| t.weekday() == Weekday::Mon && t.day() <= 7));
        assert_eq!(at[0], Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap());
        assert_eq!(at[1], Utc.with_ymd_and_hms(2026, 2, 2, 9, 0, 0).unwrap());
        assert_eq!(at[2], Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap());
    }

    #[test]
    fn six_or_seven_fields_are_refused() {
        let six = parse_schedule("0 0 18 * * *").unwrap_err();
        assert!(six.starts_with("it has 6 fields; tidings takes 5"), "{six}");
        let seven = parse_schedule("0 0 18 * * * 2026").unwrap_err();
        assert!(seven.starts_with("it has 7 fields"), "{seven}");
        let three = parse_schedule("18 * *").unwrap_err();
        assert!(three.starts_with("it has 3 fields"), "{three}");
        assert!(parse_schedule("@daily")
            .unwrap_err()
            .starts_with("it has 1 field;"));
    }

    #[test]
    fn out_of_range_names_the_field_and_what_it_takes() {
        let cases = [
            ("0 24 * * *", "hour 24 is out of range (hour takes 0-23)"),
            ("60 * * * *", "minute 60 is out of range (minute takes 0-59)"),
            (
                "0 0 0 * *",
                "day of month 0 is out of range (day of month takes 1-31)",
            ),
            ("0 0 * 13 *", "month 13 is out of range (month takes 1-12 or JAN-DEC)"),
            (
                "0 0 * * 8",
                "weekday 8 is out of range (weekday takes 0-7 or SUN-SAT, 0 and 7 being Sunday)",
            ),
            (
                "0 0 * * FRY",
                "weekday `FRY` is not understood (weekday takes 0-7 or SUN-SAT, 0 and 7 being Sunday)",
            ),
            ("0 0 * * ?", "weekday `?` is not understood"),
            ("0 18-9 * * *", "hour range `18-9` runs backwards"),
            ("*/0 * * * *", "minute `*/0` has step `0`"),
            ("0 1,,2 * * *", "hour has an empty value (hour takes 0-23)"),
            ("0 1- * * *", "hour has an empty value"),
            ("0 99999999999 * * *", "hour 99999999999 is out of range"),
        ];
        for (expression, expected) in cases {
            let error = parse_schedule(expression).unwrap_err();
            assert!(error.starts_with(expected), "{expression}: {error}");
        }
    }

    #[test]
    fn a_schedule_that_never_fires_is_refused() {
        let error = parse_schedule("0 0 30 2 *").unwrap_err();
        assert_eq!(error, "it never fires: month `2` has no day `30`");
        let error = parse_schedule("0 0 31 4,6,9,11 *").unwrap_err();
        assert!(error.starts_with("it never fires"), "{error}");
        // February 29 comes every four years: it fires.
        let at = fires("0 0 29 2 *", monday(), 1);
        assert_eq!(at[0], Utc.with_ymd_and_hms(2028, 2, 29, 0, 0, 0).unwrap());
        let at = fires("0 0 30,31 2,3 *", monday(), 1);
        assert_eq!(at[0], Utc.with_ymd_and_hms(2026, 3, 30, 0, 0, 0).unwrap());
    }
}
