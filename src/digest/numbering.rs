//! Volume and issue numbers (RFC 1153: "the volume number ... and an issue
//! number starting at one" for each volume).
//!
//! The period of a digest is decided first, from the time it is issued in
//! the site timezone; a digest in a new period opens the next volume with
//! issue 1. So the first digest of a new year (quarter, month, ISO week,
//! day) already carries the new volume, unlike Mailman, which bumps the
//! volume one digest late and counts quarters as four-month spans.

use chrono::{Datelike, NaiveDate};

use crate::config::VolumePeriod;

/// The number of a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number {
    pub volume: u32,
    pub issue: u32,
    /// The period key the volume stands for, e.g. `2026-Q2`.
    pub period: String,
}

/// The key of the period `date` falls in: `2026`, `2026-Q2` (calendar
/// quarters of three months), `2026-04`, `2026-W05` (ISO 8601 week of the
/// ISO week-year, so 2027-01-01 is in `2026-W53`), or `2026-04-30`.
pub fn period_key(period: VolumePeriod, date: NaiveDate) -> String {
    match period {
        VolumePeriod::Yearly => format!("{:04}", date.year()),
        VolumePeriod::Quarterly => format!("{:04}-Q{}", date.year(), date.month0() / 3 + 1),
        VolumePeriod::Monthly => format!("{:04}-{:02}", date.year(), date.month()),
        VolumePeriod::Weekly => {
            let week = date.iso_week();
            format!("{:04}-W{:02}", week.year(), week.week())
        }
        VolumePeriod::Daily => date.format("%Y-%m-%d").to_string(),
    }
}

/// The number of the digest after `previous` (volume, issue, period) when
/// the new one falls in `period`: the same volume and the next issue within
/// a period, the next volume and issue 1 in a new one, and 1/1 for a list's
/// first digest.
pub fn next_number(previous: Option<(u32, u32, &str)>, period: &str) -> Number {
    let (volume, issue) = match previous {
        None => (1, 1),
        Some((volume, issue, previous_period)) if previous_period == period => (volume, issue + 1),
        Some((volume, _, _)) => (volume + 1, 1),
    };
    Number {
        volume,
        issue,
        period: period.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn quarters_are_three_months() {
        let keys: Vec<String> = [
            "2026-01-01",
            "2026-03-31",
            "2026-04-01",
            "2026-06-30",
            "2026-07-01",
            "2026-10-01",
            "2026-12-31",
        ]
        .iter()
        .map(|d| period_key(VolumePeriod::Quarterly, date(d)))
        .collect();
        assert_eq!(
            keys,
            ["2026-Q1", "2026-Q1", "2026-Q2", "2026-Q2", "2026-Q3", "2026-Q4", "2026-Q4"]
        );
    }

    #[test]
    fn weeks_follow_the_iso_week_year() {
        // 2027-01-01 is a Friday: ISO week 53 of 2026.
        assert_eq!(
            period_key(VolumePeriod::Weekly, date("2027-01-01")),
            "2026-W53"
        );
        assert_eq!(
            period_key(VolumePeriod::Weekly, date("2027-01-04")),
            "2027-W01"
        );
        // 2024-12-30 is a Monday: ISO week 1 of 2025.
        assert_eq!(
            period_key(VolumePeriod::Weekly, date("2024-12-30")),
            "2025-W01"
        );
    }

    #[test]
    fn the_first_digest_of_a_new_period_opens_the_next_volume() {
        let first = next_number(None, "2026");
        assert_eq!((first.volume, first.issue), (1, 1));
        let second = next_number(Some((1, 1, "2026")), "2026");
        assert_eq!((second.volume, second.issue), (1, 2));
        let new_year = next_number(Some((1, 2, "2026")), "2027");
        assert_eq!((new_year.volume, new_year.issue), (2, 1));
        assert_eq!(new_year.period, "2027");
    }

    #[test]
    fn other_periods() {
        assert_eq!(period_key(VolumePeriod::Yearly, date("2026-12-31")), "2026");
        assert_eq!(
            period_key(VolumePeriod::Monthly, date("2026-02-28")),
            "2026-02"
        );
        assert_eq!(
            period_key(VolumePeriod::Daily, date("2026-02-28")),
            "2026-02-28"
        );
    }
}
